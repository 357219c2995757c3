"""Golden bytes and round trips for every frame of announcers.arp.frames.

The golden frames marked "captured" were recorded with tcpdump in the test lab: arping and
ndisc6 asking, the Linux 6.18 kernel answering for its own address. The answers this
module builds for the same questions must be byte-for-byte the kernel's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from announcers.arp import frames
from announcers.arp.frames import (
    ArpFrame,
    FrameError,
    NeighborAdvertisement,
    NeighborSolicitation,
    NotNeighborDiscoveryError,
)

CLIENT_MAC = frames.parse_mac("02:00:00:04:00:0c")
NODE_MAC = frames.parse_mac("02:00:00:04:00:01")

# Captured: arping 10.44.0.1 from 10.44.0.12 (THA ff:ff:ff:ff:ff:ff, as iputils sends it).
ARPING_REQUEST = bytes.fromhex(
    "ffffffffffff 02000004000c 08060001 0800 06 04 0001 02000004000c 0a2c000c ffffffffffff 0a2c0001"
)
# Captured: the kernel of 10.44.0.1 (MAC 02:00:00:04:00:01) answering it.
KERNEL_ARP_REPLY = bytes.fromhex(
    "02000004000c 020000040001 08060001 0800 06 04 0002 020000040001 0a2c0001 02000004000c 0a2c000c"
)
# Captured: ndisc6 fd00:44::1 from fe80::ff:fe04:c (flow label 0x66981, Source-LLA option).
NDISC6_SOLICITATION = bytes.fromhex(
    "3333ff000001 02000004000c 86dd"
    "60066981 0020 3a ff fe80000000000000000000fffe04000c ff0200000000000000000001ff000001"
    "87 00 7cb7 00000000 fd000044000000000000000000000001 01 01 02000004000c"
)
# Captured: the kernel of fd00:44::1 answering it: S=1, O=1, from the target, Target-LLA.
KERNEL_SOLICITED_NA = bytes.fromhex(
    "02000004000c 020000040001 86dd"
    "60000000 0020 3a ff fd000044000000000000000000000001 fe80000000000000000000fffe04000c"
    "88 00 1b82 60000000 fd000044000000000000000000000001 02 01 020000040001"
)
# Captured (Linux 6.18, veth between two namespaces): a unicast reachability probe from
# fd00:99::2 (02:00:00:aa:00:02) to fd00:99::1 at its MAC, with a Source-LLA option ...
UNICAST_SOLICITATION = bytes.fromhex(
    "0200 00aa 0001 0200 00aa 0002 86dd 6000 0000 0020 3aff fd00 0099 0000 0000 0000"
    "0000 0000 0002 fd00 0099 0000 0000 0000 0000 0000 0001 8700 7c26 0000 0000 fd00"
    "0099 0000 0000 0000 0000 0000 0001 0101 0200 00aa 0002"
)
# ... and the kernel's 78-byte answer: S=1, O=0, no Target-LLA option.
KERNEL_UNICAST_NA = bytes.fromhex(
    "0200 00aa 0002 0200 00aa 0001 86dd 6000 0000 0018 3aff fd00 0099 0000 0000 0000"
    "0000 0000 0001 fd00 0099 0000 0000 0000 0000 0000 0002 8800 3edb 4000 0000 fd00"
    "0099 0000 0000 0000 0000 0000 0001"
)

macs = st.binary(min_size=6, max_size=6)
ipv4s = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
ipv6s = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
unicast_ipv6s = ipv6s.filter(lambda address: not address.is_multicast)
hop_limits = st.integers(0, 255)


def test_arp_reply_to_arping_is_byte_identical_to_the_kernels() -> None:
    request = ArpFrame.decode(ARPING_REQUEST)
    assert frames.arp_reply(request, NODE_MAC).encode() == KERNEL_ARP_REPLY


def test_captured_arp_request_decodes_to_its_fields() -> None:
    assert ArpFrame.decode(ARPING_REQUEST) == ArpFrame(
        eth_dst=frames.BROADCAST_MAC,
        eth_src=CLIENT_MAC,
        op=frames.ArpOp.REQUEST,
        sender_mac=CLIENT_MAC,
        sender_ip=IPv4Address("10.44.0.12"),
        target_mac=frames.BROADCAST_MAC,
        target_ip=IPv4Address("10.44.0.1"),
    )


def test_solicited_na_to_ndisc6_is_byte_identical_to_the_kernels() -> None:
    solicitation = frames.decode_neighbor_discovery(NDISC6_SOLICITATION)
    assert isinstance(solicitation, NeighborSolicitation)
    assert frames.solicited_advertisement(solicitation, NODE_MAC).encode() == KERNEL_SOLICITED_NA


def test_na_to_a_unicast_probe_is_byte_identical_to_the_kernels() -> None:
    solicitation = frames.decode_neighbor_discovery(UNICAST_SOLICITATION)
    assert isinstance(solicitation, NeighborSolicitation)
    answer = frames.solicited_advertisement(solicitation, frames.parse_mac("02:00:00:aa:00:01"))
    assert answer.encode() == KERNEL_UNICAST_NA
    assert len(KERNEL_UNICAST_NA) == 78


def test_captured_solicitation_decodes_to_its_fields() -> None:
    assert frames.decode_neighbor_discovery(NDISC6_SOLICITATION) == NeighborSolicitation(
        eth_dst=frames.parse_mac("33:33:ff:00:00:01"),
        eth_src=CLIENT_MAC,
        src=IPv6Address("fe80::ff:fe04:c"),
        dst=IPv6Address("ff02::1:ff00:1"),
        target=IPv6Address("fd00:44::1"),
        source_lla=CLIENT_MAC,
    )


def test_captured_kernel_advertisement_decodes_with_solicited_and_override() -> None:
    advertisement = frames.decode_neighbor_discovery(KERNEL_SOLICITED_NA)
    assert isinstance(advertisement, NeighborAdvertisement)
    assert (advertisement.router, advertisement.solicited, advertisement.override) == (
        False,
        True,
        True,
    )
    assert advertisement.target_lla == NODE_MAC


def test_gratuitous_request_golden_bytes() -> None:
    frame = frames.gratuitous_arp_request(NODE_MAC, IPv4Address("10.44.0.100"))
    assert frame.encode() == bytes.fromhex(
        "ffffffffffff 020000040001 0806"  # broadcast, from us, ARP
        "0001 0800 06 04 0001"  # Ethernet/IPv4, request
        "020000040001 0a2c0064"  # SHA = us, SPA = the address
        "000000000000 0a2c0064"  # THA = 0 (RFC 5227), TPA = the address
    )


def test_gratuitous_reply_form_has_target_mac_equal_to_sender_mac() -> None:
    frame = frames.gratuitous_arp_reply(NODE_MAC, IPv4Address("10.44.0.100"))
    assert frame.encode() == bytes.fromhex(
        "ffffffffffff 020000040001 0806"
        "0001 0800 06 04 0002"
        "020000040001 0a2c0064"
        "020000040001 0a2c0064"
    )


def test_arp_request_golden_bytes() -> None:
    frame = frames.arp_request(CLIENT_MAC, IPv4Address("10.44.0.12"), IPv4Address("10.44.0.1"))
    assert frame.encode() == bytes.fromhex(
        "ffffffffffff 02000004000c 0806"
        "0001 0800 06 04 0001 02000004000c 0a2c000c 000000000000 0a2c0001"
    )


def test_unsolicited_na_golden_bytes() -> None:
    frame = frames.unsolicited_advertisement(
        NODE_MAC, IPv6Address("fd00:44::100"), src=IPv6Address("fe80::ff:fe04:1")
    )
    assert frame.encode() == bytes.fromhex(
        "333300000001 020000040001 86dd"  # all-nodes MAC, from us, IPv6
        "60000000 0020 3a ff"  # version 6, 32 bytes of ICMPv6, hop limit 255
        "fe80000000000000000000fffe040001 ff020000000000000000000000000001"
        "88 00 58d0"  # NA, code 0, checksum (tcpdump: "sum ok")
        "20000000"  # R=0 S=0 O=1
        "fd000044000000000000000000000100"  # target
        "02 01 020000040001"  # Target link-layer address option
    )


def test_unicast_nud_solicitation_golden_bytes() -> None:
    frame = frames.neighbor_solicitation(
        CLIENT_MAC, IPv6Address("fe80::ff:fe04:c"), IPv6Address("fd00:44::1"), unicast_to=NODE_MAC
    )
    assert frame.encode() == bytes.fromhex(
        "020000040001 02000004000c 86dd"
        "60000000 0020 3a ff fe80000000000000000000fffe04000c fd000044000000000000000000000001"
        "87 00 7d77 00000000 fd000044000000000000000000000001 01 01 02000004000c"
    )


def test_dad_solicitation_has_no_source_option_and_goes_to_the_group() -> None:
    frame = frames.neighbor_solicitation(
        CLIENT_MAC, frames.UNSPECIFIED_IPV6, IPv6Address("fd00:44::1")
    )
    encoded = frame.encode()
    assert len(encoded) == 78
    assert encoded[:6] == frames.parse_mac("33:33:ff:00:00:01")
    assert frame.source_lla is None


def test_solicited_node_group_keeps_the_low_24_bits() -> None:
    assert frames.solicited_node_group(IPv6Address("2001:db8::ab:cdef:1234")) == IPv6Address(
        "ff02::1:ffef:1234"
    )


def test_multicast_mac_is_3333_and_the_low_32_bits() -> None:
    assert frames.multicast_mac(IPv6Address("ff02::1:ffef:1234")) == bytes.fromhex("3333ffef1234")


def test_checksum_of_the_captured_kernel_advertisement() -> None:
    message = bytearray(KERNEL_SOLICITED_NA[54:])
    message[2:4] = b"\0\0"
    checksum = frames.icmpv6_checksum(
        IPv6Address("fd00:44::1"), IPv6Address("fe80::ff:fe04:c"), bytes(message)
    )
    assert checksum == 0x1B82


@given(st.text(max_size=20))
def test_parse_mac_rejects_or_round_trips(text: str) -> None:
    try:
        mac = frames.parse_mac(text)
    except FrameError:
        return
    assert frames.parse_mac(frames.format_mac(mac)) == mac


@given(macs)
def test_mac_text_round_trip(mac: bytes) -> None:
    assert frames.parse_mac(frames.format_mac(mac)) == mac


@given(
    eth_dst=macs,
    eth_src=macs,
    op=st.integers(0, 0xFFFF),
    sender_mac=macs,
    sender_ip=ipv4s,
    target_mac=macs,
    target_ip=ipv4s,
    padding=st.binary(max_size=18),
)
def test_arp_frame_round_trip(
    eth_dst: bytes,
    eth_src: bytes,
    op: int,
    sender_mac: bytes,
    sender_ip: IPv4Address,
    target_mac: bytes,
    target_ip: IPv4Address,
    padding: bytes,
) -> None:
    frame = ArpFrame(eth_dst, eth_src, op, sender_mac, sender_ip, target_mac, target_ip)
    encoded = frame.encode()
    assert len(encoded) == 42
    assert ArpFrame.decode(encoded + padding) == frame  # the NIC pads to 60 bytes


@given(
    eth_dst=macs,
    eth_src=macs,
    src=ipv6s,
    dst=ipv6s,
    target=unicast_ipv6s,
    source_lla=st.none() | macs,
    hop_limit=hop_limits,
)
def test_neighbor_solicitation_round_trip(
    eth_dst: bytes,
    eth_src: bytes,
    src: IPv6Address,
    dst: IPv6Address,
    target: IPv6Address,
    source_lla: bytes | None,
    hop_limit: int,
) -> None:
    frame = NeighborSolicitation(eth_dst, eth_src, src, dst, target, source_lla, hop_limit)
    assert frames.decode_neighbor_discovery(frame.encode()) == frame


@given(
    eth_dst=macs,
    eth_src=macs,
    src=ipv6s,
    dst=ipv6s,
    target=unicast_ipv6s,
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    target_lla=st.none() | macs,
    hop_limit=hop_limits,
)
def test_neighbor_advertisement_round_trip(
    eth_dst: bytes,
    eth_src: bytes,
    src: IPv6Address,
    dst: IPv6Address,
    target: IPv6Address,
    flags: tuple[bool, bool, bool],
    target_lla: bytes | None,
    hop_limit: int,
) -> None:
    router, solicited, override = flags
    frame = NeighborAdvertisement(
        eth_dst, eth_src, src, dst, target, router, solicited, override, target_lla, hop_limit
    )
    assert frames.decode_neighbor_discovery(frame.encode()) == frame


@given(mac=macs, ip=ipv4s)
def test_gratuitous_request_is_a_request_with_sender_ip_equal_to_target_ip(
    mac: bytes, ip: IPv4Address
) -> None:
    frame = ArpFrame.decode(frames.gratuitous_arp_request(mac, ip).encode())
    assert frame.is_request
    assert frame.is_gratuitous
    assert frame.eth_dst == frames.BROADCAST_MAC


@given(mac=macs, target=unicast_ipv6s, src=ipv6s)
def test_unsolicited_na_has_override_target_option_and_no_solicited_flag(
    mac: bytes, target: IPv6Address, src: IPv6Address
) -> None:
    frame = frames.decode_neighbor_discovery(
        frames.unsolicited_advertisement(mac, target, src=src).encode()
    )
    assert isinstance(frame, NeighborAdvertisement)
    assert (frame.solicited, frame.override, frame.target_lla) == (False, True, mac)
    assert (frame.dst, frame.eth_dst) == (frames.ALL_NODES, frames.ALL_NODES_MAC)


@given(frame=st.binary(max_size=120))
def test_arbitrary_bytes_decode_or_raise_frame_error(frame: bytes) -> None:
    for decode in (ArpFrame.decode, frames.decode_neighbor_discovery):
        with contextlib.suppress(FrameError):
            decode(frame)


@given(position=st.integers(54, 85), flip=st.integers(1, 255))
def test_any_corrupted_icmpv6_byte_is_rejected(position: int, flip: int) -> None:
    corrupted = bytearray(KERNEL_SOLICITED_NA)
    corrupted[position] ^= flip
    with pytest.raises(FrameError):
        frames.decode_neighbor_discovery(bytes(corrupted))


def test_truncated_arp_is_rejected() -> None:
    with pytest.raises(FrameError):
        ArpFrame.decode(KERNEL_ARP_REPLY[:41])


def test_arp_for_another_protocol_is_rejected() -> None:
    other = bytearray(KERNEL_ARP_REPLY)
    other[16:18] = b"\x86\xdd"  # protocol type IPv6
    with pytest.raises(FrameError):
        ArpFrame.decode(bytes(other))


def test_non_icmpv6_ipv6_is_not_neighbor_discovery() -> None:
    udp = bytearray(KERNEL_SOLICITED_NA)
    udp[20] = 17
    with pytest.raises(NotNeighborDiscoveryError):
        frames.decode_neighbor_discovery(bytes(udp))


def test_echo_request_is_not_neighbor_discovery() -> None:
    message = bytearray(b"\x80\x00\x00\x00" + bytes(4))
    src, dst = IPv6Address("fe80::1"), IPv6Address("fe80::2")
    struct.pack_into("!H", message, 2, frames.icmpv6_checksum(src, dst, bytes(message)))
    ipv6 = struct.pack("!IHBB16s16s", 6 << 28, len(message), 58, 64, src.packed, dst.packed)
    frame = frames.EthernetHeader(NODE_MAC, CLIENT_MAC, frames.ETH_P_IPV6).encode() + ipv6
    with pytest.raises(NotNeighborDiscoveryError):
        frames.decode_neighbor_discovery(frame + bytes(message))


def test_option_of_length_zero_is_rejected() -> None:
    frame = frames.neighbor_solicitation(
        CLIENT_MAC, IPv6Address("fe80::1"), IPv6Address("fd00::1")
    ).encode()
    broken = bytearray(frame)
    broken[-7] = 0  # the option's length byte
    # Fix the checksum so that only the option is wrong.
    message = bytearray(broken[54:])
    message[2:4] = b"\0\0"
    checksum = frames.icmpv6_checksum(
        IPv6Address("fe80::1"), frames.solicited_node_group(IPv6Address("fd00::1")), bytes(message)
    )
    struct.pack_into("!H", broken, 56, checksum)
    with pytest.raises(FrameError, match="length 0"):
        frames.decode_neighbor_discovery(bytes(broken))


def test_six_byte_mac_is_required() -> None:
    with pytest.raises(FrameError):
        frames.gratuitous_arp_request(b"\x02\x00", IPv4Address("192.0.2.1"))


def _pcap(path: Path, packets: list[bytes]) -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    records = b"".join(struct.pack("<IIII", 0, 0, len(p), len(p)) + p for p in packets)
    path.write_bytes(header + records)


def test_tcpdump_reads_every_sent_form_as_intended(tmp_path: Path) -> None:
    """An independent decoder (tcpdump) agrees on the forms and the ICMPv6 checksums."""
    if shutil.which("tcpdump") is None:
        if os.environ.get("CI"):
            pytest.fail("tcpdump is missing (CI is set)")
        pytest.skip("needs tcpdump")
    vip4, vip6 = IPv4Address("10.44.0.100"), IPv6Address("fd00:44::100")
    solicitation = frames.neighbor_solicitation(CLIENT_MAC, IPv6Address("fd00:44::c"), vip6)
    packets = [
        frames.gratuitous_arp_request(NODE_MAC, vip4).encode(),
        frames.unsolicited_advertisement(NODE_MAC, vip6, src=IPv6Address("fe80::1")).encode(),
        frames.solicited_advertisement(solicitation, NODE_MAC).encode(),
    ]
    path = tmp_path / "sent.pcap"
    _pcap(path, packets)
    out = subprocess.run(
        ["tcpdump", "-r", str(path), "-nn", "-vv"], capture_output=True, text=True, check=True
    ).stdout
    assert "Request who-has 10.44.0.100 tell 10.44.0.100" in out
    assert out.count("[icmp6 sum ok]") == 2
    assert "tgt is fd00:44::100, Flags [override]" in out
    assert "tgt is fd00:44::100, Flags [solicited, override]" in out
    assert out.count("destination link-address option (2)") == 2
