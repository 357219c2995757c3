"""The decision table: what the responder does with every kind of received frame."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from announcers.arp import frames
from announcers.arp.decision import Announced, InterfaceView, Verdict, bad_ipv4_sender, decide

OUR_MAC = frames.parse_mac("02:00:00:00:00:01")
OUR_OTHER_MAC = frames.parse_mac("02:00:00:00:00:02")  # our eth1
CLIENT_MAC = frames.parse_mac("02:00:00:00:00:99")
STRANGER_MAC = frames.parse_mac("02:00:00:00:00:77")
CLIENT4 = IPv4Address("192.0.2.1")
CLIENT6 = IPv6Address("2001:db8::1")
CLIENT6_LL = IPv6Address("fe80::99")
VIP4 = IPv4Address("192.0.2.10")  # on eth0
VIP4_ETH1 = IPv4Address("192.0.2.11")  # on eth1 only
OTHER4 = IPv4Address("192.0.2.12")  # announced nowhere
VIP6 = IPv6Address("2001:db8::10")
VIP6_ETH1 = IPv6Address("2001:db8::11")
OTHER6 = IPv6Address("2001:db8::12")

ETH0 = InterfaceView("eth0", OUR_MAC, frozenset({OUR_MAC, OUR_OTHER_MAC}))
ANNOUNCED: Announced = {
    VIP4: frozenset({"eth0"}),
    VIP4_ETH1: frozenset({"eth1"}),
    VIP6: frozenset({"eth0"}),
    VIP6_ETH1: frozenset({"eth1"}),
}
HOST, BROADCAST, MULTICAST, OTHERHOST, OUTGOING = (
    socket.PACKET_HOST,
    socket.PACKET_BROADCAST,
    socket.PACKET_MULTICAST,
    socket.PACKET_OTHERHOST,
    socket.PACKET_OUTGOING,
)


def request(target: IPv4Address, *, to: bytes = frames.BROADCAST_MAC) -> frames.ArpFrame:
    return frames.arp_request(CLIENT_MAC, CLIENT4, target, eth_dst=to)


def solicitation(
    target: IPv6Address, *, unicast_to: bytes | None = None, src: IPv6Address = CLIENT6_LL
) -> frames.NeighborSolicitation:
    return frames.neighbor_solicitation(CLIENT_MAC, src, target, unicast_to=unicast_to)


def with_hop_limit(frame: frames.NeighborSolicitation, hop_limit: int) -> bytes:
    return frames.NeighborSolicitation(
        frame.eth_dst,
        frame.eth_src,
        frame.src,
        frame.dst,
        frame.target,
        frame.source_lla,
        hop_limit,
    ).encode()


def without_source_option(frame: frames.NeighborSolicitation) -> bytes:
    return frames.NeighborSolicitation(
        frame.eth_dst, frame.eth_src, frame.src, frame.dst, frame.target, None
    ).encode()


def corrupt_checksum(frame: bytes) -> bytes:
    broken = bytearray(frame)
    broken[56] ^= 0xFF
    return bytes(broken)


def foreign_reply_claiming(ip: IPv4Address) -> bytes:
    question = frames.arp_request(CLIENT_MAC, CLIENT4, ip)
    return frames.arp_reply(question, STRANGER_MAC).encode()


def echo_request() -> bytes:
    udp = bytearray(solicitation(VIP6).encode())
    udp[54] = 128  # ICMPv6 echo request (checksum now wrong, but the type is checked first)
    return bytes(udp)


def ipv6_udp() -> bytes:
    udp = bytearray(solicitation(VIP6).encode())
    udp[20] = 17
    return bytes(udp)


@dataclass(frozen=True)
class Case:
    frame: bytes
    pkttype: int
    verdict: Verdict


CASES: dict[str, Case] = {
    # ARP
    "broadcast request for our address": Case(request(VIP4).encode(), BROADCAST, Verdict.ANSWER),
    "unicast request to our MAC (arping, kernel refresh)": Case(
        request(VIP4, to=OUR_MAC).encode(), HOST, Verdict.ANSWER
    ),
    "unicast request to another MAC": Case(
        request(VIP4, to=STRANGER_MAC).encode(), OTHERHOST, Verdict.NOT_ADDRESSED_TO_US
    ),
    "request for an address announced nowhere": Case(
        request(OTHER4).encode(), BROADCAST, Verdict.NOT_OUR_ADDRESS
    ),
    "request for an address announced on another interface": Case(
        request(VIP4_ETH1).encode(), BROADCAST, Verdict.WRONG_INTERFACE
    ),
    "copy of our own request going out": Case(
        request(VIP4).encode(), OUTGOING, Verdict.OUTGOING_COPY
    ),
    "probe from 0.0.0.0 for our address": Case(
        frames.arp_request(CLIENT_MAC, frames.UNSPECIFIED_IPV4, VIP4).encode(),
        BROADCAST,
        Verdict.PROBE,
    ),
    "probe from 0.0.0.0 for another address": Case(
        frames.arp_request(CLIENT_MAC, frames.UNSPECIFIED_IPV4, OTHER4).encode(),
        BROADCAST,
        Verdict.NOT_OUR_ADDRESS,
    ),
    "stranger's gratuitous request for our address": Case(
        frames.gratuitous_arp_request(STRANGER_MAC, VIP4).encode(), BROADCAST, Verdict.CONFLICT
    ),
    "stranger's gratuitous reply for our address": Case(
        frames.gratuitous_arp_reply(STRANGER_MAC, VIP4).encode(), BROADCAST, Verdict.CONFLICT
    ),
    "stranger answering a request for our address, seen in promiscuous mode": Case(
        # OTHERHOST could as well be another VLAN, where the address may be someone else's.
        foreign_reply_claiming(VIP4),
        OTHERHOST,
        Verdict.NOT_ADDRESSED_TO_US,
    ),
    "stranger answering a request for our address, to our MAC": Case(
        frames.arp_reply(frames.arp_request(OUR_MAC, CLIENT4, VIP4), STRANGER_MAC).encode(),
        HOST,
        Verdict.CONFLICT,
    ),
    "stranger's broadcast reply for our address (MetalLB's announcement)": Case(
        frames.ArpFrame(
            frames.BROADCAST_MAC, STRANGER_MAC, 2, STRANGER_MAC, VIP4, frames.BROADCAST_MAC, VIP4
        ).encode(),
        BROADCAST,
        Verdict.CONFLICT,
    ),
    "stranger's gratuitous request for an address of another interface": Case(
        frames.gratuitous_arp_request(STRANGER_MAC, VIP4_ETH1).encode(),
        BROADCAST,
        Verdict.WRONG_INTERFACE,
    ),
    "reply about someone else": Case(foreign_reply_claiming(OTHER4), HOST, Verdict.NOT_A_REQUEST),
    "our own announcement seen on this interface": Case(
        frames.gratuitous_arp_request(OUR_MAC, VIP4).encode(), BROADCAST, Verdict.OWN_FRAME
    ),
    "request from our other interface": Case(
        frames.arp_request(OUR_OTHER_MAC, CLIENT4, VIP4).encode(), BROADCAST, Verdict.OWN_FRAME
    ),
    "truncated ARP": Case(request(VIP4).encode()[:30], BROADCAST, Verdict.MALFORMED),
    "ARP for another protocol": Case(
        request(VIP4).encode()[:16] + b"\x86\xdd" + request(VIP4).encode()[18:],
        BROADCAST,
        Verdict.MALFORMED,
    ),
    "runt frame": Case(b"\xff" * 10, BROADCAST, Verdict.MALFORMED),
    "IPv4 frame": Case(
        frames.EthernetHeader(OUR_MAC, CLIENT_MAC, frames.ETH_P_IP).encode() + bytes(20),
        HOST,
        Verdict.NOT_A_REQUEST,
    ),
    # NDP
    "multicast solicitation for our address": Case(
        solicitation(VIP6).encode(), MULTICAST, Verdict.ANSWER
    ),
    "unicast NUD solicitation to our MAC": Case(
        solicitation(VIP6, unicast_to=OUR_MAC).encode(), HOST, Verdict.ANSWER
    ),
    "unicast NUD solicitation without a source option": Case(
        without_source_option(solicitation(VIP6, unicast_to=OUR_MAC)), HOST, Verdict.ANSWER
    ),
    "unicast solicitation to another MAC": Case(
        solicitation(VIP6, unicast_to=STRANGER_MAC).encode(),
        OTHERHOST,
        Verdict.NOT_ADDRESSED_TO_US,
    ),
    "solicitation sent to another address's group": Case(
        frames.NeighborSolicitation(
            frames.multicast_mac(frames.solicited_node_group(OTHER6)),
            CLIENT_MAC,
            CLIENT6_LL,
            frames.solicited_node_group(OTHER6),
            VIP6,
            CLIENT_MAC,
        ).encode(),
        MULTICAST,
        Verdict.NOT_ADDRESSED_TO_US,
    ),
    "multicast solicitation without a source option": Case(
        without_source_option(solicitation(VIP6)), MULTICAST, Verdict.MALFORMED
    ),
    "solicitation with hop limit 254": Case(
        with_hop_limit(solicitation(VIP6), 254), MULTICAST, Verdict.MALFORMED
    ),
    "solicitation with a bad checksum": Case(
        corrupt_checksum(solicitation(VIP6).encode()), MULTICAST, Verdict.MALFORMED
    ),
    "DAD probe from :: for our address": Case(
        solicitation(VIP6, src=frames.UNSPECIFIED_IPV6).encode(), MULTICAST, Verdict.PROBE
    ),
    "DAD probe from :: carrying a source option": Case(
        frames.NeighborSolicitation(
            frames.multicast_mac(frames.solicited_node_group(VIP6)),
            CLIENT_MAC,
            frames.UNSPECIFIED_IPV6,
            frames.solicited_node_group(VIP6),
            VIP6,
            CLIENT_MAC,
        ).encode(),
        MULTICAST,
        Verdict.MALFORMED,
    ),
    "solicitation for an address announced nowhere": Case(
        solicitation(OTHER6).encode(), MULTICAST, Verdict.NOT_OUR_ADDRESS
    ),
    "solicitation for an address announced on another interface": Case(
        solicitation(VIP6_ETH1).encode(), MULTICAST, Verdict.WRONG_INTERFACE
    ),
    "copy of our own advertisement going out": Case(
        frames.unsolicited_advertisement(OUR_MAC, VIP6).encode(), OUTGOING, Verdict.OUTGOING_COPY
    ),
    "stranger's unsolicited advertisement for our address": Case(
        frames.unsolicited_advertisement(STRANGER_MAC, VIP6).encode(), MULTICAST, Verdict.CONFLICT
    ),
    "our own advertisement seen on this interface": Case(
        frames.unsolicited_advertisement(OUR_MAC, VIP6).encode(), MULTICAST, Verdict.OWN_FRAME
    ),
    "advertisement about someone else": Case(
        frames.unsolicited_advertisement(STRANGER_MAC, OTHER6).encode(),
        MULTICAST,
        Verdict.NOT_A_REQUEST,
    ),
    "ICMPv6 echo request": Case(echo_request(), HOST, Verdict.NOT_A_REQUEST),
    # Frames of another VLAN: the kernel strips the 802.1Q tag and marks them OTHERHOST.
    "request from another VLAN": Case(
        request(VIP4).encode(), OTHERHOST, Verdict.NOT_ADDRESSED_TO_US
    ),
    "solicitation from another VLAN": Case(
        solicitation(VIP6).encode(), OTHERHOST, Verdict.NOT_ADDRESSED_TO_US
    ),
    # Senders no host may use (the kernel's arp_process and ndisc_recv_ns drop them).
    **{
        f"request from {sender}": Case(
            frames.arp_request(CLIENT_MAC, IPv4Address(sender), VIP4).encode(),
            BROADCAST,
            Verdict.BAD_SENDER,
        )
        for sender in ("255.255.255.255", "224.0.0.1", "239.1.2.3", "127.0.0.1", "0.1.2.3")
    },
    "request from a multicast MAC": Case(
        frames.arp_request(frames.parse_mac("01:00:5e:00:00:01"), CLIENT4, VIP4).encode(),
        BROADCAST,
        Verdict.BAD_SENDER,
    ),
    "solicitation from ff02::1": Case(
        solicitation(VIP6, src=IPv6Address("ff02::1")).encode(), MULTICAST, Verdict.BAD_SENDER
    ),
    "solicitation from ::1": Case(
        solicitation(VIP6, src=IPv6Address("::1")).encode(), MULTICAST, Verdict.BAD_SENDER
    ),
    "stranger's announcement from a multicast source": Case(
        frames.unsolicited_advertisement(STRANGER_MAC, VIP6, src=IPv6Address("ff02::1")).encode(),
        MULTICAST,
        Verdict.BAD_SENDER,
    ),
    "UDP over IPv6": Case(ipv6_udp(), HOST, Verdict.NOT_A_REQUEST),
}


@pytest.mark.parametrize("name", list(CASES))
def test_decision_table(name: str) -> None:
    case = CASES[name]
    assert decide(case.frame, case.pkttype, ETH0, ANNOUNCED).verdict is case.verdict


def test_arp_answer_is_the_unicast_reply_from_our_mac() -> None:
    question = request(VIP4)
    decision = decide(question.encode(), BROADCAST, ETH0, ANNOUNCED)
    assert decision.reply == frames.arp_reply(question, OUR_MAC).encode()


def test_ndp_answer_is_the_solicited_advertisement_from_our_mac() -> None:
    question = solicitation(VIP6, unicast_to=OUR_MAC)
    decision = decide(question.encode(), HOST, ETH0, ANNOUNCED)
    assert decision.reply == frames.solicited_advertisement(question, OUR_MAC).encode()


def test_multicast_solicitation_answer_has_override_and_target_option() -> None:
    decision = decide(solicitation(VIP6).encode(), MULTICAST, ETH0, ANNOUNCED)
    assert decision.reply is not None
    answer = frames.decode_neighbor_discovery(decision.reply)
    assert isinstance(answer, frames.NeighborAdvertisement)
    assert (answer.solicited, answer.override, answer.target_lla) == (True, True, OUR_MAC)
    assert len(decision.reply) == 86


def test_unicast_solicitation_answer_is_the_kernels_78_bytes_without_override() -> None:
    decision = decide(solicitation(VIP6, unicast_to=OUR_MAC).encode(), HOST, ETH0, ANNOUNCED)
    assert decision.reply is not None
    answer = frames.decode_neighbor_discovery(decision.reply)
    assert isinstance(answer, frames.NeighborAdvertisement)
    assert (answer.solicited, answer.override, answer.target_lla) == (True, False, None)
    assert (answer.src, answer.dst, answer.eth_dst) == (VIP6, CLIENT6_LL, CLIENT_MAC)
    assert len(decision.reply) == 78


@given(ip=st.ip_addresses(v=4))
def test_bad_ipv4_sender_is_what_the_kernel_calls_martian(ip: IPv4Address) -> None:
    first = ip.packed[0]
    martian = (first == 0 and int(ip) != 0) or first == 127 or 224 <= first <= 239
    assert bad_ipv4_sender(ip) is (martian or ip == IPv4Address("255.255.255.255"))


def test_answer_without_source_option_goes_to_the_ethernet_source() -> None:
    frame = without_source_option(solicitation(VIP6, unicast_to=OUR_MAC))
    decision = decide(frame, HOST, ETH0, ANNOUNCED)
    assert decision.reply is not None
    assert decision.reply[:6] == CLIENT_MAC


def test_conflict_names_the_address_and_the_other_mac() -> None:
    frame = frames.gratuitous_arp_request(STRANGER_MAC, VIP4).encode()
    decision = decide(frame, BROADCAST, ETH0, ANNOUNCED)
    assert (decision.address, decision.peer_mac) == (VIP4, STRANGER_MAC)


def test_nothing_announced_means_nothing_answered() -> None:
    assert decide(request(VIP4).encode(), BROADCAST, ETH0, {}).verdict is Verdict.NOT_OUR_ADDRESS


def test_interface_view_counts_its_own_mac_as_own() -> None:
    assert OUR_MAC in InterfaceView("eth0", OUR_MAC).own_macs


any_pkttype = st.sampled_from([HOST, BROADCAST, MULTICAST, OTHERHOST, OUTGOING])


@given(frame=st.binary(max_size=128), pkttype=any_pkttype)
def test_any_bytes_get_a_verdict_and_only_answers_carry_a_reply(frame: bytes, pkttype: int) -> None:
    decision = decide(frame, pkttype, ETH0, ANNOUNCED)
    assert (decision.reply is not None) == (decision.verdict is Verdict.ANSWER)


@given(
    case=st.sampled_from(list(CASES.values())),
    position=st.integers(0, 85),
    flip=st.integers(1, 255),
)
def test_corrupted_frames_get_a_verdict(case: Case, position: int, flip: int) -> None:
    frame = bytearray(case.frame)
    if position < len(frame):
        frame[position] ^= flip
    decision = decide(bytes(frame), case.pkttype, ETH0, ANNOUNCED)
    if decision.verdict is Verdict.ANSWER:
        # Whatever was changed, an answer is only ever for an address announced here.
        assert decision.address in (VIP4, VIP6)


@given(case=st.sampled_from(list(CASES.values())))
def test_outgoing_copies_are_never_answered(case: Case) -> None:
    assert decide(case.frame, OUTGOING, ETH0, ANNOUNCED).verdict is Verdict.OUTGOING_COPY
