"""L2Announcer beyond the shared contract: the frames it sends and when, unicast requests,
group memberships, conflicts, counters, interfaces that go away and come back.

In-process, in namespace ``m4k`` (two veth pairs without any address); a raw client on the
far end of each veth asks and listens.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from announcers.arp import L2Announcer, UnsupportedInterfaceError, frames
from announcers.arp import announcer as announcer_module
from announcers.base import IPAddress
from tests.support import l2lab, netns

pytestmark = pytest.mark.netns

IFACE, PEER = l2lab.KIT_PAIRS[0]
VIP4 = IPv4Address("10.46.0.100")
VIP6 = IPv6Address("fd00:46::100")


@pytest.fixture
def inside(kit: None) -> Iterator[None]:
    with netns.entered(l2lab.KIT_NS):
        yield


@pytest.fixture
def client(inside: None) -> Iterator[l2lab.WireClient]:
    wire = l2lab.WireClient(PEER)
    try:
        yield wire
    finally:
        wire.close()


@pytest.fixture
def make(inside: None) -> Iterator[type[L2Announcer]]:
    made: list[L2Announcer] = []

    class Tracked(L2Announcer):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for announcer in made:
        announcer.close()


def our_mac() -> bytes:
    return frames.parse_mac(l2lab.KIT_MACS[IFACE])


def arps(received: list[bytes]) -> list[frames.ArpFrame]:
    """The ARP frames among ``received`` (the kernel's own IPv6 traffic is on the wire too)."""
    found = []
    for frame in received:
        try:
            found.append(frames.ArpFrame.decode(frame))
        except frames.FrameError:
            continue
    return found


def gratuitous_arps(received: list[bytes], ip: IPv4Address) -> list[frames.ArpFrame]:
    return [a for a in arps(received) if a.is_request and a.sender_ip == a.target_ip == ip]


def unsolicited_nas(received: list[bytes], ip: IPv6Address) -> list[frames.NeighborAdvertisement]:
    found = []
    for frame in received:
        try:
            message = frames.decode_neighbor_discovery(frame)
        except frames.FrameError:
            continue
        if (
            isinstance(message, frames.NeighborAdvertisement)
            and message.target == ip
            and not message.solicited
        ):
            found.append(message)
    return found


def memberships(interface: str) -> dict[str, int]:
    """The IPv6 groups joined on ``interface`` in this thread's namespace, with their users."""
    groups = {}
    for line in Path("/proc/thread-self/net/igmp6").read_text().splitlines():
        fields = line.split()
        if fields[1] == interface:
            groups[fields[2]] = int(fields[3])
    return groups


def group_hex(ip: IPv6Address) -> str:
    return frames.solicited_node_group(ip).packed.hex()


def test_unicast_arp_request_to_our_mac_is_answered(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make().announce(VIP4, IFACE)
    assert client.who_has(VIP4, unicast_to=our_mac()) == our_mac()


def test_unicast_nud_solicitation_is_answered(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make().announce(VIP6, IFACE)
    assert client.who_has(VIP6, unicast_to=our_mac()) == our_mac()


def test_request_for_a_withdrawn_address_among_others_is_not_answered(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    announcer = make()
    announcer.announce(VIP4, IFACE)
    announcer.announce(VIP4 + 1, IFACE)
    announcer.withdraw(VIP4, IFACE)
    assert client.who_has(VIP4) is None
    assert client.who_has(VIP4 + 1) == our_mac()


def test_first_round_is_on_the_wire_when_announce_returns(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    announcer = make()
    announcer.announce(VIP4, IFACE)
    announcer.announce(VIP6, IFACE)
    received = client.listen(0.2)  # the next round is 1.1 s away
    [arp] = gratuitous_arps(received, VIP4)
    [na] = unsolicited_nas(received, VIP6)
    assert (arp.eth_dst, arp.sender_mac) == (frames.BROADCAST_MAC, our_mac())
    assert (na.override, na.target_lla, na.dst) == (True, our_mac(), frames.ALL_NODES)


def test_unsolicited_na_comes_from_the_link_local_address(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make().announce(VIP6, IFACE)
    [na] = unsolicited_nas(client.listen(0.2), VIP6)
    assert na.src.is_link_local


def test_rounds_repeat_every_interval_until_the_window_ends(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    announcer = make(interval=0.2, window=0.7)  # rounds at 0, 0.2, 0.4 and 0.6 s
    announcer.announce(VIP4, IFACE)
    announcer.announce(VIP6, IFACE)
    received = client.listen(1.2)
    assert (len(gratuitous_arps(received, VIP4)), len(unsolicited_nas(received, VIP6))) == (4, 4)


def test_refresh_keeps_announcing_after_the_window(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make(interval=0.1, window=0.1, refresh=0.15).announce(VIP4, IFACE)
    # Without refresh there would be 2 rounds; with it, one every 0.15 s after those.
    assert len(gratuitous_arps(client.listen(0.8), VIP4)) >= 4


def test_withdraw_stops_the_rounds(make: type[L2Announcer], client: l2lab.WireClient) -> None:
    announcer = make(interval=0.05, window=2.0)
    announcer.announce(VIP4, IFACE)
    announcer.withdraw(VIP4, IFACE)
    assert len(gratuitous_arps(client.listen(0.3), VIP4)) == 1


def test_without_takeover_announcements_it_only_answers(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make(announce_on_takeover=False).announce(VIP4, IFACE)
    assert gratuitous_arps(client.listen(0.2), VIP4) == []
    assert client.who_has(VIP4) == our_mac()


def test_probe_from_unspecified_address_is_not_answered(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make().announce(VIP4, IFACE)
    probe = frames.arp_request(l2lab.KIT_CLIENT_MAC, frames.UNSPECIFIED_IPV4, VIP4)
    client.listen(0.01)
    client.sock.send(probe.encode())
    replies = [a for a in arps(client.listen(0.3)) if a.op == frames.ArpOp.REPLY]
    assert replies == []


def test_solicited_node_group_is_joined_once_per_group_and_left_after_the_last(
    make: type[L2Announcer],
) -> None:
    # Same low 24 bits, so the same solicited-node group.
    first, second = IPv6Address("fd00:46::1:100"), IPv6Address("fd00:47::1:100")
    group = group_hex(first)
    announcer = make()
    announcer.announce(first, IFACE)
    announcer.announce(second, IFACE)
    joined_by_both = memberships(IFACE).get(group)
    announcer.withdraw(first, IFACE)
    joined_after_one = memberships(IFACE).get(group)
    announcer.withdraw(second, IFACE)
    assert (joined_by_both, joined_after_one, memberships(IFACE).get(group)) == (1, 1, None)


def test_close_leaves_the_groups(make: type[L2Announcer]) -> None:
    announcer = make()
    announcer.announce(VIP6, IFACE)
    announcer.close()
    assert group_hex(VIP6) not in memberships(IFACE)


def test_foreign_announcement_of_our_address_is_a_logged_conflict(
    make: type[L2Announcer], client: l2lab.WireClient, caplog: pytest.LogCaptureFixture
) -> None:
    announcer = make()
    announcer.announce(VIP4, IFACE)
    caplog.set_level(logging.WARNING, logger="announcers.arp")
    client.sock.send(frames.gratuitous_arp_request(l2lab.KIT_CLIENT_MAC, VIP4).encode())
    l2lab.wait_for(lambda: announcer.counters().conflicts == 1, 2.0, "the conflict")
    assert "02:00:00:00:c0:01 also claims 10.46.0.100" in caplog.text


def test_counters_count_answers_and_announcements(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    announcer = make(window=0.0)
    announcer.announce(VIP4, IFACE)
    announcer.announce(VIP6, IFACE)
    client.who_has(VIP4)
    client.who_has(VIP4)
    client.who_has(VIP6)
    counters = announcer.counters(IFACE)
    assert (
        counters.arp_answered,
        counters.ndp_answered,
        counters.arp_announcements,
        counters.ndp_announcements,
    ) == (2, 1, 1, 1)


def test_interface_down_and_up_is_answered_again(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make().announce(VIP4, IFACE)
    netns.sh("ip", "link", "set", IFACE, "down")
    netns.sh("ip", "link", "set", IFACE, "up")
    l2lab.wait_for(lambda: client.who_has(VIP4, timeout=0.2) == our_mac(), 5.0, "an answer")


def test_interface_recreated_is_answered_again(
    make: type[L2Announcer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(announcer_module, "_REVIVE_EVERY", 0.1)
    spare, spare_peer = "m4kx0", "m4ky0"

    def create() -> None:
        netns.sh("ip", "link", "add", spare, "type", "veth", "peer", "name", spare_peer)
        netns.sh("ip", "link", "set", spare, "up")
        netns.sh("ip", "link", "set", spare_peer, "up")

    create()
    try:
        announcer = make()
        announcer.announce(VIP4, spare)
        netns.sh("ip", "link", "delete", spare)
        create()
        client = l2lab.WireClient(spare_peer)
        try:
            l2lab.wait_for(lambda: client.who_has(VIP4, timeout=0.2) is not None, 5.0, "answer")
            # The new socket gets the exact filter again, not only the prefilter.
            l2lab.wait_for(lambda: not announcer.filters_pending, 2.0, "the exact filter")
            before = announcer.counters(spare).received
            client.sock.send(arp_question_for(VIP4 + 9))
            client.listen(0.2)
            assert announcer.counters(spare).received == before
        finally:
            client.close()
    finally:
        netns.sh("ip", "link", "delete", spare, check=False)


def test_loopback_is_not_an_ethernet_interface(make: type[L2Announcer]) -> None:
    with pytest.raises(UnsupportedInterfaceError):
        make().announce(VIP4, "lo")


def test_close_stops_the_thread(make: type[L2Announcer]) -> None:
    announcer = make()
    announcer.announce(VIP4, IFACE)
    announcer.close()
    assert [t for t in threading.enumerate() if t.name == "l2-announcer"] == []


@pytest.mark.parametrize(
    "address",
    [IPv4Address("0.0.0.0"), IPv4Address("127.0.0.1"), IPv4Address("224.0.0.1"),
     IPv4Address("255.255.255.255"), IPv6Address("::"), IPv6Address("::1"), IPv6Address("ff02::1")],
)  # fmt: skip
def test_addresses_that_cannot_be_announced_are_rejected(address: IPAddress) -> None:
    announcer = L2Announcer()
    with pytest.raises(ValueError, match="cannot be announced"):
        announcer.announce(address, IFACE)


def test_a_string_is_not_an_address() -> None:
    with pytest.raises(TypeError):
        L2Announcer().announce("10.0.0.1", IFACE)  # type: ignore[arg-type]


@pytest.mark.parametrize("busy_poll", [-0.001, math.nan, math.inf])
def test_a_busy_poll_that_is_not_seconds_is_refused_by_name(busy_poll: float) -> None:
    with pytest.raises(ValueError, match=r"busy_poll: expected seconds >= 0"):
        L2Announcer(busy_poll=busy_poll)


def _cpu_while_idle(seconds: float) -> float:
    """CPU time this process used while the test itself only slept for ``seconds``."""
    before = time.process_time()
    time.sleep(seconds)
    return time.process_time() - before


def test_busy_polling_polls_after_a_frame_only_and_keeps_every_promise(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    """With ``busy_poll`` the thread polls instead of sleeping after a frame, for that long
    and no longer; meanwhile withdraws still take effect at once, new addresses are
    answered, the rounds still leave on time, and close() still stops the thread."""
    announcer = make(busy_poll=0.6, interval=0.1, window=0.35)
    announcer.announce(VIP4, IFACE)
    time.sleep(0.5)  # the first address's rounds are over; no frame has come yet
    assert _cpu_while_idle(0.3) < 0.1  # asleep: nothing to poll for

    assert client.who_has(VIP4) == our_mac()  # a frame: polling from now on for 0.6 s
    assert _cpu_while_idle(0.2) > 0.05  # polling, not sleeping
    announcer.withdraw(VIP4, IFACE)
    assert client.who_has(VIP4) is None
    announcer.announce(VIP4 + 1, IFACE)  # rounds at 0, 0.1, 0.2 and 0.3 s
    received = client.listen(0.5)
    assert len(gratuitous_arps(received, VIP4 + 1)) == 4
    assert client.who_has(VIP4 + 1) == our_mac()

    time.sleep(0.7)  # no frame for longer than busy_poll: asleep again
    assert _cpu_while_idle(0.3) < 0.1
    assert client.who_has(VIP4 + 1) == our_mac()  # and woken as before
    announcer.close()
    assert [t for t in threading.enumerate() if t.name == "l2-announcer"] == []


# -- odd frames, built by hand: only what RFC 826 / RFC 4861 and the kernel answer is answered --


def answers(client: l2lab.WireClient, frame: bytes, duration: float = 0.3) -> list[bytes]:
    """The ARP replies and solicited Neighbor Advertisements received after sending ``frame``."""
    client.drain()
    client.sock.send(frame)
    arp_reply = (b"\x08\x06", 20, b"\x00\x02")
    advertisement = (b"\x86\xdd", 54, b"\x88")
    return [
        received
        for received in client.listen(duration)
        for ethertype, at, kind in (arp_reply, advertisement)
        if received[12:14] == ethertype and received[at : at + len(kind)] == kind
    ]


def tagged(frame: bytes, vlan: int) -> bytes:
    """``frame`` with an 802.1Q tag for ``vlan`` inserted after the MAC addresses."""
    return frame[:12] + (0x8100).to_bytes(2, "big") + vlan.to_bytes(2, "big") + frame[12:]


def arp_question(sender: IPv4Address = l2lab.KIT_CLIENT4) -> bytes:
    return frames.arp_request(l2lab.KIT_CLIENT_MAC, sender, VIP4).encode()


def nd_question(src: IPv6Address = l2lab.KIT_CLIENT6) -> bytes:
    return frames.neighbor_solicitation(l2lab.KIT_CLIENT_MAC, src, VIP6).encode()


@pytest.mark.parametrize("family", ["ARP", "NS"])
def test_tagged_request_from_another_vlan_is_not_answered(
    make: type[L2Announcer], client: l2lab.WireClient, family: str
) -> None:
    announcer = make(announce_on_takeover=False)
    announcer.announce(VIP4, IFACE)
    announcer.announce(VIP6, IFACE)
    question = arp_question() if family == "ARP" else nd_question()
    assert len(answers(client, question)) == 1  # the same frame untagged: answered
    assert answers(client, tagged(question, 5)) == []


@pytest.mark.parametrize("sender", ["255.255.255.255", "224.0.0.1", "127.0.0.1", "0.0.0.7"])
def test_arp_request_from_an_impossible_sender_is_not_answered(
    make: type[L2Announcer], client: l2lab.WireClient, sender: str
) -> None:
    make(announce_on_takeover=False).announce(VIP4, IFACE)
    assert answers(client, arp_question(IPv4Address(sender))) == []


def test_solicitation_from_a_multicast_source_is_not_answered(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make(announce_on_takeover=False).announce(VIP6, IFACE)
    assert len(answers(client, nd_question())) == 1
    assert answers(client, nd_question(IPv6Address("ff02::1"))) == []


def test_unicast_probe_gets_the_kernels_78_byte_answer(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    make(announce_on_takeover=False).announce(VIP6, IFACE)
    probe = frames.neighbor_solicitation(
        l2lab.KIT_CLIENT_MAC, l2lab.KIT_CLIENT6, VIP6, unicast_to=our_mac()
    )
    [reply] = answers(client, probe.encode())
    assert reply == frames.solicited_advertisement(probe, our_mac()).encode()
    answer = frames.decode_neighbor_discovery(reply)
    assert isinstance(answer, frames.NeighborAdvertisement)
    assert (len(reply), answer.solicited, answer.override, answer.target_lla) == (
        78,
        True,
        False,
        None,
    )


def test_a_thread_that_fails_is_restarted_logged_and_counted(
    make: type[L2Announcer],
    client: l2lab.WireClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    announcer = make(announce_on_takeover=False)
    announcer.announce(VIP4, IFACE)
    original = announcer_module.L2Announcer._receive
    failures: list[int] = []

    def fail_once(self: L2Announcer, *args: object) -> None:
        if not failures:
            failures.append(1)
            raise RuntimeError("injected")
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(announcer_module.L2Announcer, "_receive", fail_once)
    caplog.set_level(logging.INFO, logger="announcers.arp")
    client.who_has(VIP4, timeout=0.05)  # wakes the thread, which fails on it
    l2lab.wait_for(lambda: announcer.counters().thread_restarts == 1, 3.0, "the restart")
    l2lab.wait_for(lambda: announcer.healthy, 3.0, "a healthy announcer")
    assert client.who_has(VIP4) == our_mac()
    assert "thread failed; restarting it" in caplog.text
    assert "RuntimeError: injected" in caplog.text


# -- conflicts are re-asserted, rate-limited ------------------------------------------------


STRANGER_MAC = frames.parse_mac("02:00:00:00:5e:01")


def foreign_claim(ip: IPAddress) -> bytes:
    if isinstance(ip, IPv4Address):
        return frames.gratuitous_arp_request(STRANGER_MAC, ip).encode()
    return frames.unsolicited_advertisement(STRANGER_MAC, ip).encode()


def our_rounds(received: list[bytes], ip: IPAddress) -> int:
    if isinstance(ip, IPv4Address):
        found = [a for a in gratuitous_arps(received, ip) if a.sender_mac == our_mac()]
        return len(found)
    return len([na for na in unsolicited_nas(received, ip) if na.target_lla == our_mac()])


@pytest.mark.parametrize("ip", [VIP4, VIP6], ids=["ipv4", "ipv6"])
def test_a_foreign_claim_is_reasserted_at_once_then_rate_limited(
    make: type[L2Announcer],
    client: l2lab.WireClient,
    caplog: pytest.LogCaptureFixture,
    ip: IPAddress,
) -> None:
    announcer = make(window=0.0, reassert_every=0.6)  # one round at announce, no more
    announcer.announce(ip, IFACE)
    client.listen(0.05)
    caplog.set_level(logging.WARNING, logger="announcers.arp")
    client.sock.send(foreign_claim(ip))
    at_once = our_rounds(client.listen(0.2), ip)
    for _ in range(5):  # a storm of claims within the limit
        client.sock.send(foreign_claim(ip))
    within_limit = our_rounds(client.listen(0.2), ip)
    l2lab.wait_for(lambda: announcer.counters().conflicts == 6, 2.0, "six conflicts")
    client.listen(0.3)  # past the 0.6 s limit
    client.sock.send(foreign_claim(ip))
    after_limit = our_rounds(client.listen(0.2), ip)
    assert (at_once, within_limit, after_limit) == (1, 0, 1)
    assert announcer.counters().reasserts == 2
    assert f"also claims {ip} on {IFACE}" in caplog.text
    assert "re-asserting with an announcement round" in caplog.text


def test_a_claim_of_a_withdrawn_address_is_not_reasserted(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    announcer = make(window=0.0)
    announcer.announce(VIP4, IFACE)
    announcer.announce(VIP4 + 1, IFACE)
    announcer.withdraw(VIP4, IFACE)
    client.listen(0.05)
    client.sock.send(foreign_claim(VIP4))
    assert our_rounds(client.listen(0.3), VIP4) == 0
    assert announcer.counters().reasserts == 0


# -- the kernel filter -----------------------------------------------------------------------


def test_the_kernel_filter_keeps_requests_for_other_addresses_away(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    announcer = make(announce_on_takeover=False)
    for i in range(50):
        announcer.announce(VIP4 + i, IFACE)
        announcer.announce(VIP6 + i, IFACE)
    l2lab.wait_for(lambda: not announcer.filters_pending, 2.0, "the exact filters")
    client.listen(0.1)
    before = announcer.counters().received
    for i in range(20):
        client.sock.send(arp_question_for(VIP4 + 100 + i))
        client.sock.send(
            frames.neighbor_solicitation(
                l2lab.KIT_CLIENT_MAC, l2lab.KIT_CLIENT6, VIP6 + 100 + i
            ).encode()
        )
    client.listen(0.2)
    ignored = announcer.counters().received - before
    assert (client.who_has(VIP4 + 7), client.who_has(VIP6 + 7)) == (our_mac(), our_mac())
    assert (ignored, announcer.counters().received - before) == (0, 2)


def test_a_withdrawn_address_is_filtered_out_and_an_added_one_passes_at_once(
    make: type[L2Announcer], client: l2lab.WireClient
) -> None:
    announcer = make(announce_on_takeover=False)
    announcer.announce(VIP4, IFACE)
    l2lab.wait_for(lambda: not announcer.filters_pending, 2.0, "the exact filter")
    announcer.announce(VIP4 + 1, IFACE)
    assert client.who_has(VIP4 + 1) == our_mac()  # before any rebuild: the prefilter
    announcer.withdraw(VIP4, IFACE)
    l2lab.wait_for(lambda: not announcer.filters_pending, 2.0, "the rebuilt filter")
    before = announcer.counters().received
    assert client.who_has(VIP4) is None
    assert announcer.counters().received == before


def arp_question_for(target: IPv4Address) -> bytes:
    return frames.arp_request(l2lab.KIT_CLIENT_MAC, l2lab.KIT_CLIENT4, target).encode()
