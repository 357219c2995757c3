"""The BPF filters and the prebuilt answers: what passes the kernel's filter, and that the
shortcut answers exactly what ``decide`` answers.

The filters run through a small interpreter (``cbpf.py``) against a reference predicate,
and for real in a network namespace: attached to a packet socket, with crafted frames sent
through a veth pair.
"""

from __future__ import annotations

import math
import socket
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from announcers.arp import bpf, frames, sockets
from announcers.arp.decision import InterfaceView, Verdict, decide
from announcers.arp.fastpath import ReplyTable
from announcers.base import IPAddress
from tests.support import cbpf, l2lab, netns

HOST, BROADCAST, MULTICAST, OTHERHOST, OUTGOING = 0, 1, 2, 3, 4
OUR_MAC = frames.parse_mac("02:00:00:00:00:01")
OTHER_OWN_MAC = frames.parse_mac("02:00:00:00:00:02")
ASKER = frames.parse_mac("02:00:00:00:00:99")

ipv4s = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
ipv6s = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
pkttypes = st.sampled_from([HOST, BROADCAST, MULTICAST, OTHERHOST, OUTGOING])


def arp(op: int, sender: IPv4Address, target: IPv4Address) -> bytes:
    frame = frames.arp_request(ASKER, sender, target).encode()
    return frame[:20] + op.to_bytes(2, "big") + frame[22:]


def passes(program: bytes, frame: bytes, pkttype: int = BROADCAST, **meta: int) -> bool:
    accepted, _ = cbpf.run(program, cbpf.Packet(frame, pkttype, **meta))
    return accepted > 0


# -- the ARP filter ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    announced=st.sets(ipv4s, min_size=1, max_size=60),
    sender=ipv4s,
    target=ipv4s,
    op=st.sampled_from([1, 2]),
    pick=st.sampled_from(["none", "target", "sender"]),
    pkttype=pkttypes,
)
def test_arp_filter_passes_exactly_frames_naming_an_announced_address(
    announced: set[IPv4Address],
    sender: IPv4Address,
    target: IPv4Address,
    op: int,
    pick: str,
    pkttype: int,
) -> None:
    chosen = sorted(announced)[0]
    if pick == "target":
        target = chosen
    elif pick == "sender":
        sender = chosen
    program = bpf.arp_filter(ip.packed for ip in announced)
    expected = pkttype not in (OUTGOING, OTHERHOST) and (target in announced or sender in announced)
    assert passes(program, arp(op, sender, target), pkttype) is expected


def test_arp_filter_with_nothing_announced_passes_nothing() -> None:
    program = bpf.arp_filter([])
    assert not passes(program, arp(1, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")))


@pytest.mark.parametrize("vlan", [5, 4095])
def test_a_frame_still_tagged_with_a_vlan_is_dropped(vlan: int) -> None:
    program = bpf.arp_filter([IPv4Address("10.0.0.2").packed])
    frame = arp(1, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))
    assert passes(program, frame, vlan_tag_present=1, vlan_tag=0x2000 | 0)
    assert not passes(program, frame, vlan_tag_present=1, vlan_tag=0x2000 | vlan)


def test_a_truncated_frame_is_dropped() -> None:
    program = bpf.arp_filter([IPv4Address("10.0.0.2").packed])
    frame = arp(1, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))
    assert passes(program, frame)
    assert not passes(program, frame[:40])


def lookup_steps(count: int) -> int:
    """The most instructions the ARP filter runs for any of ``count`` addresses, or a miss."""
    addresses = [IPv4Address("10.0.0.0") + 3 * i for i in range(count)]
    program = bpf.arp_filter(ip.packed for ip in addresses)
    probes = [*addresses, IPv4Address("10.0.0.1"), IPv4Address("9.0.0.0")]
    return max(
        cbpf.run(program, cbpf.Packet(arp(1, IPv4Address("192.0.2.1"), ip), BROADCAST))[1]
        for ip in probes
    )


def test_cost_per_packet_grows_with_the_logarithm_of_the_addresses_not_their_number() -> None:
    steps = {count: lookup_steps(count) for count in (8, 100, 1000)}
    # Two searches (target, then sender) of log2(n / LEAF) levels (2 instructions each)
    # plus a leaf of at most LEAF comparisons, plus a fixed header.
    for count, executed in steps.items():
        levels = max(0, math.ceil(math.log2(count / bpf.LEAF)))
        assert executed <= 12 + 2 * (2 * levels + bpf.LEAF + 2), (count, executed)
    assert steps[1000] < 60  # a linear scan would run 2,000 comparisons


def test_programs_fit_the_kernel_limit_or_fall_back_to_the_prefilter() -> None:
    thousand = [(IPv4Address("10.0.0.0") + i).packed for i in range(1000)]
    assert bpf.instructions(bpf.arp_filter(thousand)) <= bpf.BPF_MAXINSNS
    two_thousand = [(IPv4Address("10.0.0.0") + i).packed for i in range(2000)]
    target_only = bpf.arp_filter(two_thousand)
    assert bpf.instructions(target_only) <= bpf.BPF_MAXINSNS
    sender, target = IPv4Address("10.0.0.5"), IPv4Address("192.0.2.1")
    assert passes(target_only, arp(1, target, sender))  # a request for one of them
    assert not passes(target_only, arp(2, sender, target))  # a reply from one: not seen
    three_thousand = [(IPv4Address("10.0.0.0") + i).packed for i in range(3000)]
    assert bpf.arp_filter(three_thousand) == bpf.prefilter(ndp=False)
    v6 = [(IPv6Address("fd00::") + i).packed for i in range(2000)]
    assert bpf.instructions(bpf.ndp_filter(v6)) <= bpf.BPF_MAXINSNS


# -- the NDP filter ------------------------------------------------------------------------


def nd(kind: int, target: IPv6Address, *, next_header: int = 58) -> bytes:
    if kind == 135:
        frame = bytearray(
            frames.neighbor_solicitation(ASKER, IPv6Address("fe80::99"), target).encode()
        )
    else:
        frame = bytearray(frames.unsolicited_advertisement(ASKER, target).encode())
    frame[20] = next_header
    return bytes(frame)


@settings(max_examples=200, deadline=None)
@given(
    announced=st.sets(ipv6s, min_size=1, max_size=60),
    target=ipv6s,
    kind=st.sampled_from([135, 136, 128]),
    pick=st.booleans(),
    next_header=st.sampled_from([58, 17]),
    pkttype=pkttypes,
)
def test_ndp_filter_passes_neighbor_discovery_for_announced_low_bits(
    announced: set[IPv6Address],
    target: IPv6Address,
    kind: int,
    pick: bool,
    next_header: int,
    pkttype: int,
) -> None:
    if pick:
        target = sorted(announced)[0]
    frame = bytearray(nd(135, target, next_header=next_header))
    frame[54] = kind
    program = bpf.ndp_filter(ip.packed for ip in announced)
    low_bits = {ip.packed[-4:] for ip in announced}
    expected = (
        pkttype not in (OUTGOING, OTHERHOST)
        and next_header == 58
        and kind in (135, 136)
        and target.packed[-4:] in low_bits
    )
    assert passes(program, bytes(frame), pkttype) is expected


def test_prefilter_passes_every_address_but_not_other_hosts() -> None:
    frame = arp(1, IPv4Address("10.0.0.1"), IPv4Address("10.9.9.9"))
    assert passes(bpf.prefilter(ndp=False), frame, BROADCAST)
    assert not passes(bpf.prefilter(ndp=False), frame, OTHERHOST)
    assert passes(bpf.prefilter(ndp=True), nd(135, IPv6Address("fd00::9")), MULTICAST)
    assert not passes(bpf.prefilter(ndp=True), nd(135, IPv6Address("fd00::9"), next_header=17))


# -- the prebuilt answers agree with decide -------------------------------------------------

VIP4 = IPv4Address("192.0.2.10")
VIP6 = IPv6Address("2001:db8::10")
TABLE = ReplyTable(OUR_MAC, [OTHER_OWN_MAC])
for _address in (VIP4, VIP4 + 1, VIP6, VIP6 + 1):
    TABLE.add(_address)
VIEW = InterfaceView("eth0", OUR_MAC, frozenset({OUR_MAC, OTHER_OWN_MAC}))
ANNOUNCED = {ip: frozenset({"eth0"}) for ip in (VIP4, VIP4 + 1, VIP6, VIP6 + 1)}


def plain_requests() -> list[tuple[bytes, int]]:
    asker4, asker6 = IPv4Address("192.0.2.1"), IPv6Address("fe80::99")
    return [
        (frames.arp_request(ASKER, asker4, VIP4).encode(), BROADCAST),
        (frames.arp_request(ASKER, asker4, VIP4, eth_dst=OUR_MAC).encode(), HOST),
        (frames.neighbor_solicitation(ASKER, asker6, VIP6).encode(), MULTICAST),
        (frames.neighbor_solicitation(ASKER, asker6, VIP6, unicast_to=OUR_MAC).encode(), HOST),
        (
            frames.neighbor_solicitation(ASKER, IPv6Address("2001:db8::99"), VIP6).encode(),
            MULTICAST,
        ),
    ]


@pytest.mark.parametrize("index", range(5))
def test_plain_requests_take_the_shortcut_with_decides_bytes(index: int) -> None:
    frame, pkttype = plain_requests()[index]
    fast = TABLE.answer(frame, pkttype)
    decision = decide(frame, pkttype, VIEW, ANNOUNCED)
    assert fast is not None
    assert decision.verdict is Verdict.ANSWER
    assert decision.address is not None
    assert fast == (decision.reply, decision.address.packed, decision.address)


def agrees(frame: bytes, pkttype: int) -> None:
    fast = TABLE.answer(frame, pkttype)
    if fast is None:
        return  # decide is asked: nothing to compare
    decision = decide(frame, pkttype, VIEW, ANNOUNCED)
    assert decision.verdict is Verdict.ANSWER, decision
    assert decision.address is not None
    assert fast == (decision.reply, decision.address.packed, decision.address)


@settings(max_examples=500, deadline=None)
@given(
    index=st.integers(0, 4),
    flips=st.lists(st.tuples(st.integers(0, 85), st.integers(1, 255)), max_size=3),
    pkttype=pkttypes,
)
def test_a_shortcut_answer_is_always_decides_answer(
    index: int, flips: list[tuple[int, int]], pkttype: int
) -> None:
    frame = bytearray(plain_requests()[index][0])
    for position, flip in flips:
        if position < len(frame):
            frame[position] ^= flip
    agrees(bytes(frame), pkttype)


@given(frame=st.binary(max_size=128), pkttype=pkttypes)
def test_arbitrary_bytes_never_break_the_shortcut(frame: bytes, pkttype: int) -> None:
    agrees(frame, pkttype)


odd_ipv4s = st.sampled_from(
    [IPv4Address(a) for a in ("127.0.0.1", "0.0.0.0", "0.1.2.3", "224.0.0.1", "240.0.0.1")]
    + [IPv4Address("255.255.255.255"), VIP4, VIP4 + 1]
)
odd_ipv6s = st.sampled_from(
    [IPv6Address(a) for a in ("ff02::1", "::1", "::", "fe80::1", "2001:db8::10", "ff05::2")]
)
macs = st.one_of(
    st.binary(min_size=6, max_size=6), st.sampled_from([OUR_MAC, OTHER_OWN_MAC, b"\x01" * 6])
)


@given(sender=st.one_of(ipv4s, odd_ipv4s), sender_mac=macs, pkttype=pkttypes)
def test_shortcut_agrees_for_any_arp_sender(
    sender: IPv4Address, sender_mac: bytes, pkttype: int
) -> None:
    agrees(frames.arp_request(sender_mac, sender, VIP4).encode(), pkttype)


@given(source=st.one_of(ipv6s, odd_ipv6s), lla=macs, pkttype=pkttypes)
def test_shortcut_agrees_for_any_ns_source(source: IPv6Address, lla: bytes, pkttype: int) -> None:
    message = frames.NeighborSolicitation(
        frames.multicast_mac(frames.solicited_node_group(VIP6)),
        lla,
        source,
        frames.solicited_node_group(VIP6),
        VIP6,
        lla,
    )
    agrees(message.encode(), pkttype)


def test_removed_addresses_take_no_shortcut() -> None:
    table = ReplyTable(OUR_MAC)
    address: IPAddress
    for address in (VIP4, VIP6):
        table.add(address)
        table.remove(address)
    assert all(table.answer(frame, pkttype) is None for frame, pkttype in plain_requests())


# -- the filters in the kernel: attached to a socket, crafted frames sent through a veth ----


@pytest.mark.netns
@pytest.mark.parametrize("family", [4, 6])
def test_the_kernel_runs_the_filter_as_the_interpreter_does(kit: None, family: int) -> None:
    ours, theirs = l2lab.KIT_PAIRS[0]
    if family == 4:
        v4 = [IPv4Address("10.46.0.0") + 7 * i for i in range(1000)]
        program = bpf.arp_filter(ip.packed for ip in v4)
        ethertype = frames.ETH_P_ARP
        asked = [arp(1, IPv4Address("10.46.9.1"), ip) for ip in v4[::97]]
        others = [arp(1, IPv4Address("10.46.9.1"), v4[0] + 1 + i) for i in range(6)]
    else:
        v6 = [IPv6Address("fd00:46::") + 7 * i for i in range(1000)]
        program = bpf.ndp_filter(ip.packed for ip in v6)
        ethertype = frames.ETH_P_IPV6
        asked = [nd(135, ip) for ip in v6[::97]]
        others = [nd(135, v6[0] + 1 + i) for i in range(6)]
    assert bpf.instructions(program) > 1000  # the real thing, not the prefilter
    with netns.entered(l2lab.KIT_NS):
        receiver = sockets.open_packet_socket(ours, ethertype, program)
        sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sender.bind((theirs, 0))
            for frame in [*others, *asked, *others]:
                sender.send(frame)
            received = []
            receiver.settimeout(0.3)
            while True:
                try:
                    received.append(receiver.recv(4096))
                except TimeoutError:
                    break
        finally:
            sender.close()
            receiver.close()
    assert received == asked


@pytest.mark.netns
def test_packet_sockets_get_the_large_receive_buffer(kit: None) -> None:
    with netns.entered(l2lab.KIT_NS):
        sock = sockets.open_packet_socket(l2lab.KIT_PAIRS[0][0], frames.ETH_P_ARP)
        try:
            size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            sock.close()
    assert size >= sockets.RECEIVE_BUFFER  # as root, SO_RCVBUFFORCE (the kernel doubles it)
