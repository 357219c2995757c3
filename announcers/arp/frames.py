"""Ethernet frames for ARP (RFC 826) and IPv6 Neighbor Discovery (RFC 4861), as pure values.

Encode a frame to the exact bytes that go on the wire, or decode wire bytes to a frame.
No sockets, no clock: the socket shell in :mod:`announcers.arp.announcer` only reads bytes,
asks :mod:`announcers.arp.decision`, and writes what this module built.

The forms this project sends, and why (measured against Linux clients, see ``docs/layer2.md``):

- Answer to an ARP request: a unicast reply to the requester (:func:`arp_reply`).
- Announcement, IPv4: a gratuitous ARP in *request* form, SPA = TPA = the address
  (:func:`gratuitous_arp_request`). Linux applies it even within its 1 s ``locktime``; a
  broadcast reply counts as gratuitous only when THA = SHA (:func:`gratuitous_arp_reply`).
- Answer to a Neighbor Solicitation: exactly the Linux kernel's answer, sourced from the
  target address itself: S=1, O=1 and a Target link-layer address option to a multicast
  solicitation, S=1, O=0 and no option to a unicast one (:func:`solicited_advertisement`).
- Announcement, IPv6: an unsolicited NA to ff02::1 with S=0, O=1 and a *Target* link-layer
  address option (:func:`unsolicited_advertisement`); an NA with O=0 or with only a Source
  link-layer option does not move a Linux client's neighbour entry.

>>> mac = parse_mac("02:00:00:00:00:01")
>>> frame = gratuitous_arp_request(mac, IPv4Address("192.0.2.10"))
>>> len(frame.encode())
42
>>> ArpFrame.decode(frame.encode()) == frame
True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address

__all__ = [
    "ALL_NODES",
    "ALL_NODES_MAC",
    "BROADCAST_MAC",
    "ETH_P_ARP",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "ICMPV6_NEIGHBOR_ADVERTISEMENT",
    "ICMPV6_NEIGHBOR_SOLICITATION",
    "IPPROTO_ICMPV6",
    "ND_HOP_LIMIT",
    "UNSPECIFIED_IPV4",
    "UNSPECIFIED_IPV6",
    "ZERO_MAC",
    "ArpFrame",
    "ArpOp",
    "EthernetHeader",
    "FrameError",
    "NeighborAdvertisement",
    "NeighborSolicitation",
    "NotNeighborDiscoveryError",
    "arp_reply",
    "arp_request",
    "decode_neighbor_discovery",
    "format_mac",
    "gratuitous_arp_reply",
    "gratuitous_arp_request",
    "icmpv6_checksum",
    "multicast_mac",
    "neighbor_solicitation",
    "parse_mac",
    "solicited_advertisement",
    "solicited_node_group",
    "unsolicited_advertisement",
]

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
ICMPV6_NEIGHBOR_SOLICITATION = 135
ICMPV6_NEIGHBOR_ADVERTISEMENT = 136
ND_HOP_LIMIT = 255
"""RFC 4861 §7.1: a receiver drops any Neighbor Discovery message with another hop limit."""

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
UNSPECIFIED_IPV4 = IPv4Address("0.0.0.0")
UNSPECIFIED_IPV6 = IPv6Address("::")

_ETHERNET = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_ICMPV6_HEAD = struct.Struct("!BBH")

_ARP_HTYPE_ETHERNET = 1
_OPTION_SOURCE_LLA = 1
_OPTION_TARGET_LLA = 2
_NA_ROUTER = 0x80000000
_NA_SOLICITED = 0x40000000
_NA_OVERRIDE = 0x20000000
_NS_LENGTH = 24  # type, code, checksum, reserved, target
_LLA_OPTION_LENGTH = 8  # type, length (in units of 8 bytes), 6-byte MAC


class FrameError(ValueError):
    """The bytes are not a well-formed frame of the expected kind."""


class NotNeighborDiscoveryError(FrameError):
    """A well-formed frame that simply is not a Neighbor Solicitation or Advertisement."""


class ArpOp(IntEnum):
    """ARP opcodes (RFC 826)."""

    REQUEST = 1
    REPLY = 2


def parse_mac(text: str) -> bytes:
    """The 6 bytes of a MAC address written as ``aa:bb:cc:dd:ee:ff`` (or with ``-``).

    >>> parse_mac("02:00:00:00:00:0a").hex()
    '02000000000a'
    """
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise FrameError(f"not a MAC address: {text!r}")
    try:
        return bytes(int(part, 16) for part in parts)
    except ValueError:
        raise FrameError(f"not a MAC address: {text!r}") from None


def format_mac(mac: bytes) -> str:
    """``aa:bb:cc:dd:ee:ff`` text of a 6-byte MAC address.

    >>> format_mac(b"\\x02\\x00\\x00\\x00\\x00\\x0a")
    '02:00:00:00:00:0a'
    """
    return ":".join(f"{byte:02x}" for byte in mac)


def _check_mac(name: str, mac: bytes) -> None:
    if len(mac) != 6:
        raise FrameError(f"{name} must be 6 bytes, not {len(mac)}")


def solicited_node_group(address: IPv6Address) -> IPv6Address:
    """The solicited-node multicast group of ``address`` (RFC 4291 §2.7.1).

    >>> solicited_node_group(IPv6Address("2001:db8::12:3456"))
    IPv6Address('ff02::1:ff12:3456')
    """
    return IPv6Address(int(IPv6Address("ff02::1:ff00:0")) | (int(address) & 0xFFFFFF))


def multicast_mac(group: IPv6Address) -> bytes:
    """The Ethernet multicast MAC of an IPv6 multicast group: ``33:33`` + low 32 bits
    (RFC 2464 §7).

    >>> format_mac(multicast_mac(IPv6Address("ff02::1:ff12:3456")))
    '33:33:ff:12:34:56'
    """
    return b"\x33\x33" + group.packed[-4:]


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """An Ethernet II header: destination, source, EtherType."""

    dst: bytes
    src: bytes
    ethertype: int

    def __post_init__(self) -> None:
        _check_mac("destination MAC", self.dst)
        _check_mac("source MAC", self.src)
        if not 0 <= self.ethertype <= 0xFFFF:
            raise FrameError(f"EtherType out of range: {self.ethertype}")

    def encode(self) -> bytes:
        """The 14 header bytes."""
        return _ETHERNET.pack(self.dst, self.src, self.ethertype)

    @classmethod
    def decode(cls, frame: bytes) -> tuple[EthernetHeader, bytes]:
        """The header and the payload that follows it."""
        if len(frame) < _ETHERNET.size:
            raise FrameError(f"{len(frame)} bytes is too short for an Ethernet header")
        dst, src, ethertype = _ETHERNET.unpack_from(frame)
        return cls(dst, src, ethertype), frame[_ETHERNET.size :]


@dataclass(frozen=True, slots=True)
class ArpFrame:
    """An Ethernet frame carrying an ARP packet for IPv4 over Ethernet (42 bytes).

    ``sender_mac``/``sender_ip`` are the RFC's SHA/SPA, ``target_mac``/``target_ip`` its
    THA/TPA. ``op`` is kept as a plain int so that any opcode decodes.
    """

    eth_dst: bytes
    eth_src: bytes
    op: int
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address

    def __post_init__(self) -> None:
        for name in ("eth_dst", "eth_src", "sender_mac", "target_mac"):
            _check_mac(name, getattr(self, name))
        if not 0 <= self.op <= 0xFFFF:
            raise FrameError(f"ARP opcode out of range: {self.op}")

    @property
    def is_request(self) -> bool:
        """Opcode 1."""
        return self.op == ArpOp.REQUEST

    @property
    def is_gratuitous(self) -> bool:
        """SPA = TPA, the announcement form (RFC 5227 §2.3)."""
        return self.sender_ip == self.target_ip

    def encode(self) -> bytes:
        """The 42 frame bytes (the NIC pads to the Ethernet minimum)."""
        return EthernetHeader(self.eth_dst, self.eth_src, ETH_P_ARP).encode() + _ARP.pack(
            _ARP_HTYPE_ETHERNET,
            ETH_P_IP,
            6,
            4,
            self.op,
            self.sender_mac,
            self.sender_ip.packed,
            self.target_mac,
            self.target_ip.packed,
        )

    @classmethod
    def decode(cls, frame: bytes) -> ArpFrame:
        """Decode an Ethernet+ARP frame; trailing padding is ignored.

        Raises :class:`FrameError` unless it is ARP for IPv4 over Ethernet.
        """
        header, payload = EthernetHeader.decode(frame)
        if header.ethertype != ETH_P_ARP:
            raise FrameError(f"EtherType {header.ethertype:#06x} is not ARP")
        if len(payload) < _ARP.size:
            raise FrameError(f"{len(payload)} bytes is too short for an ARP packet")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(payload)
        if (htype, ptype, hlen, plen) != (_ARP_HTYPE_ETHERNET, ETH_P_IP, 6, 4):
            raise FrameError("not ARP for IPv4 over Ethernet")
        return cls(
            eth_dst=header.dst,
            eth_src=header.src,
            op=op,
            sender_mac=sha,
            sender_ip=IPv4Address(spa),
            target_mac=tha,
            target_ip=IPv4Address(tpa),
        )


def arp_request(
    mac: bytes, sender_ip: IPv4Address, target_ip: IPv4Address, *, eth_dst: bytes = BROADCAST_MAC
) -> ArpFrame:
    """An ARP request "who has ``target_ip``? tell ``sender_ip``", broadcast by default."""
    return ArpFrame(
        eth_dst=eth_dst,
        eth_src=mac,
        op=ArpOp.REQUEST,
        sender_mac=mac,
        sender_ip=sender_ip,
        target_mac=ZERO_MAC,
        target_ip=target_ip,
    )


def arp_reply(request: ArpFrame, mac: bytes) -> ArpFrame:
    """The answer to ``request``: "``request.target_ip`` is at ``mac``", unicast to the
    requester.

    >>> mac = parse_mac("02:00:00:00:00:01")
    >>> asker = parse_mac("02:00:00:00:00:99")
    >>> question = arp_request(asker, IPv4Address("192.0.2.1"), IPv4Address("192.0.2.10"))
    >>> answer = arp_reply(question, mac)
    >>> (answer.sender_ip, format_mac(answer.eth_dst))
    (IPv4Address('192.0.2.10'), '02:00:00:00:00:99')
    """
    return ArpFrame(
        eth_dst=request.sender_mac,
        eth_src=mac,
        op=ArpOp.REPLY,
        sender_mac=mac,
        sender_ip=request.target_ip,
        target_mac=request.sender_mac,
        target_ip=request.sender_ip,
    )


def gratuitous_arp_request(mac: bytes, ip: IPv4Address) -> ArpFrame:
    """The announcement this project sends: a broadcast request with SPA = TPA = ``ip``.

    THA is zero, as RFC 5227 §2.3 asks; Linux ignores THA in a request.
    """
    return ArpFrame(
        eth_dst=BROADCAST_MAC,
        eth_src=mac,
        op=ArpOp.REQUEST,
        sender_mac=mac,
        sender_ip=ip,
        target_mac=ZERO_MAC,
        target_ip=ip,
    )


def gratuitous_arp_reply(mac: bytes, ip: IPv4Address) -> ArpFrame:
    """The reply form of an announcement, with THA = SHA: the only reply form that Linux
    treats as gratuitous within its ``locktime`` (a reply with THA = ff:ff:... is ignored).
    """
    return ArpFrame(
        eth_dst=BROADCAST_MAC,
        eth_src=mac,
        op=ArpOp.REPLY,
        sender_mac=mac,
        sender_ip=ip,
        target_mac=mac,
        target_ip=ip,
    )


def _ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _pseudo_header(src: IPv6Address, dst: IPv6Address, length: int) -> bytes:
    # RFC 8200 §8.1: source, destination, upper-layer length (32 bits), 3 zero bytes, next header.
    return src.packed + dst.packed + struct.pack("!I3xB", length, IPPROTO_ICMPV6)


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, message: bytes) -> int:
    """The ICMPv6 checksum of ``message`` (whose checksum field must be zero) from ``src``
    to ``dst`` (RFC 4443 §2.3).

    >>> hex(icmpv6_checksum(IPv6Address("::1"), IPv6Address("::1"), bytes(8)))
    '0xffbb'
    """
    return ~_ones_complement_sum(_pseudo_header(src, dst, len(message)) + message) & 0xFFFF


def _lla_option(kind: int, mac: bytes) -> bytes:
    return bytes((kind, 1)) + mac


def _ipv6_frame(
    *,
    eth_dst: bytes,
    eth_src: bytes,
    src: IPv6Address,
    dst: IPv6Address,
    hop_limit: int,
    message: bytearray,
) -> bytes:
    struct.pack_into("!H", message, 2, icmpv6_checksum(src, dst, bytes(message)))
    ipv6 = _IPV6.pack(6 << 28, len(message), IPPROTO_ICMPV6, hop_limit, src.packed, dst.packed)
    return EthernetHeader(eth_dst, eth_src, ETH_P_IPV6).encode() + ipv6 + bytes(message)


def _check_ipv6_fields(hop_limit: int, target: IPv6Address) -> None:
    if not 0 <= hop_limit <= 255:
        raise FrameError(f"hop limit out of range: {hop_limit}")
    if not isinstance(target, IPv6Address):
        raise FrameError(f"target must be an IPv6 address, not {target!r}")


@dataclass(frozen=True, slots=True)
class NeighborSolicitation:
    """An Ethernet frame carrying IPv6 + ICMPv6 Neighbor Solicitation (type 135).

    ``source_lla`` is the Source link-layer address option, ``None`` when absent (as in
    DAD probes from ``::``).
    """

    eth_dst: bytes
    eth_src: bytes
    src: IPv6Address
    dst: IPv6Address
    target: IPv6Address
    source_lla: bytes | None
    hop_limit: int = ND_HOP_LIMIT

    def __post_init__(self) -> None:
        _check_mac("eth_dst", self.eth_dst)
        _check_mac("eth_src", self.eth_src)
        if self.source_lla is not None:
            _check_mac("source_lla", self.source_lla)
        _check_ipv6_fields(self.hop_limit, self.target)

    def encode(self) -> bytes:
        """The frame bytes, checksum computed (86 bytes with the option, 78 without)."""
        message = bytearray(
            _ICMPV6_HEAD.pack(ICMPV6_NEIGHBOR_SOLICITATION, 0, 0) + bytes(4) + self.target.packed
        )
        if self.source_lla is not None:
            message += _lla_option(_OPTION_SOURCE_LLA, self.source_lla)
        return _ipv6_frame(
            eth_dst=self.eth_dst,
            eth_src=self.eth_src,
            src=self.src,
            dst=self.dst,
            hop_limit=self.hop_limit,
            message=message,
        )


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement:
    """An Ethernet frame carrying IPv6 + ICMPv6 Neighbor Advertisement (type 136).

    ``router``, ``solicited`` and ``override`` are the R, S and O flags; ``target_lla`` is
    the Target link-layer address option, ``None`` when absent.
    """

    eth_dst: bytes
    eth_src: bytes
    src: IPv6Address
    dst: IPv6Address
    target: IPv6Address
    router: bool
    solicited: bool
    override: bool
    target_lla: bytes | None
    hop_limit: int = ND_HOP_LIMIT

    def __post_init__(self) -> None:
        _check_mac("eth_dst", self.eth_dst)
        _check_mac("eth_src", self.eth_src)
        if self.target_lla is not None:
            _check_mac("target_lla", self.target_lla)
        _check_ipv6_fields(self.hop_limit, self.target)

    def encode(self) -> bytes:
        """The frame bytes, checksum computed (86 bytes with the option)."""
        flags = (
            (_NA_ROUTER if self.router else 0)
            | (_NA_SOLICITED if self.solicited else 0)
            | (_NA_OVERRIDE if self.override else 0)
        )
        message = bytearray(
            _ICMPV6_HEAD.pack(ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0)
            + struct.pack("!I", flags)
            + self.target.packed
        )
        if self.target_lla is not None:
            message += _lla_option(_OPTION_TARGET_LLA, self.target_lla)
        return _ipv6_frame(
            eth_dst=self.eth_dst,
            eth_src=self.eth_src,
            src=self.src,
            dst=self.dst,
            hop_limit=self.hop_limit,
            message=message,
        )


def _options(data: bytes) -> dict[int, bytes]:
    """The link-layer address options, by type; the first of each type wins (RFC 4861 §4.6
    lets a receiver ignore duplicates). Unknown options are skipped."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        if len(data) - offset < 2:
            raise FrameError("truncated ND option")
        kind, units = data[offset], data[offset + 1]
        if units == 0:
            raise FrameError("ND option of length 0")  # RFC 4861 §4.6: MUST be discarded
        end = offset + units * 8
        if end > len(data):
            raise FrameError("ND option runs past the end of the message")
        if kind in (_OPTION_SOURCE_LLA, _OPTION_TARGET_LLA) and kind not in found:
            if units != 1:
                raise FrameError("link-layer address option is not 8 bytes")
            found[kind] = data[offset + 2 : offset + 8]
        offset = end
    return found


def decode_neighbor_discovery(  # noqa: C901 - a flat table: one FrameError per header check
    frame: bytes,
) -> NeighborSolicitation | NeighborAdvertisement:
    """Decode an Ethernet+IPv6+ICMPv6 NS or NA frame, checking the checksum.

    Raises :class:`NotNeighborDiscoveryError` for a frame that is something else (not IPv6,
    not ICMPv6, another ICMPv6 type), and :class:`FrameError` for a malformed one (truncated,
    bad checksum, code other than 0, bad options, multicast target). The hop limit is
    returned, not checked: the caller decides (RFC 4861 wants 255).
    """
    header, payload = EthernetHeader.decode(frame)
    if header.ethertype != ETH_P_IPV6:
        raise NotNeighborDiscoveryError(f"EtherType {header.ethertype:#06x} is not IPv6")
    if len(payload) < _IPV6.size:
        raise FrameError(f"{len(payload)} bytes is too short for an IPv6 header")
    version_class_flow, length, next_header, hop_limit, src_b, dst_b = _IPV6.unpack_from(payload)
    if version_class_flow >> 28 != 6:
        raise FrameError("IP version is not 6")
    if next_header != IPPROTO_ICMPV6:
        raise NotNeighborDiscoveryError(f"next header {next_header} is not ICMPv6")
    message = payload[_IPV6.size : _IPV6.size + length]
    if len(message) != length:
        raise FrameError("IPv6 payload length runs past the end of the frame")
    if len(message) < _ICMPV6_HEAD.size:
        raise FrameError("truncated ICMPv6 header")
    kind, code, _ = _ICMPV6_HEAD.unpack_from(message)
    if kind not in (ICMPV6_NEIGHBOR_SOLICITATION, ICMPV6_NEIGHBOR_ADVERTISEMENT):
        raise NotNeighborDiscoveryError(f"ICMPv6 type {kind} is not NS or NA")
    src, dst = IPv6Address(src_b), IPv6Address(dst_b)
    if _ones_complement_sum(_pseudo_header(src, dst, length) + message) != 0xFFFF:
        raise FrameError("bad ICMPv6 checksum")
    if code != 0:
        raise FrameError(f"ICMPv6 code {code} is not 0")
    if len(message) < _NS_LENGTH:
        raise FrameError("truncated neighbor discovery message")
    target = IPv6Address(message[8:24])
    if target.is_multicast:
        raise FrameError("multicast target")
    options = _options(message[_NS_LENGTH:])
    if kind == ICMPV6_NEIGHBOR_SOLICITATION:
        return NeighborSolicitation(
            eth_dst=header.dst,
            eth_src=header.src,
            src=src,
            dst=dst,
            target=target,
            source_lla=options.get(_OPTION_SOURCE_LLA),
            hop_limit=hop_limit,
        )
    (flags,) = struct.unpack_from("!I", message, 4)
    return NeighborAdvertisement(
        eth_dst=header.dst,
        eth_src=header.src,
        src=src,
        dst=dst,
        target=target,
        router=bool(flags & _NA_ROUTER),
        solicited=bool(flags & _NA_SOLICITED),
        override=bool(flags & _NA_OVERRIDE),
        target_lla=options.get(_OPTION_TARGET_LLA),
        hop_limit=hop_limit,
    )


def neighbor_solicitation(
    mac: bytes, src: IPv6Address, target: IPv6Address, *, unicast_to: bytes | None = None
) -> NeighborSolicitation:
    """A Neighbor Solicitation for ``target`` from ``src`` at ``mac``.

    Multicast to the target's solicited-node group by default; with ``unicast_to`` (a MAC),
    a unicast NUD probe to the target address itself. From ``::`` it is a DAD probe and has
    no Source link-layer option.
    """
    if unicast_to is None:
        group = solicited_node_group(target)
        eth_dst, dst = multicast_mac(group), group
    else:
        eth_dst, dst = unicast_to, target
    return NeighborSolicitation(
        eth_dst=eth_dst,
        eth_src=mac,
        src=src,
        dst=dst,
        target=target,
        source_lla=None if src == UNSPECIFIED_IPV6 else mac,
    )


def solicited_advertisement(
    solicitation: NeighborSolicitation, mac: bytes
) -> NeighborAdvertisement:
    """The answer to ``solicitation``: "``target`` is at ``mac``", from the target address to
    the soliciting address, exactly as the Linux kernel answers for its own address
    (``ndisc_recv_ns``, measured in network namespaces):

    - to a **multicast** solicitation (address resolution): S=1, O=1 and a Target
      link-layer option carrying ``mac`` (86 bytes);
    - to a **unicast** solicitation (a reachability probe sent to our MAC, RFC 4861 §7.2.4):
      S=1, O=0 and no option (78 bytes). The asker already holds our MAC; the answer only
      confirms it.

    The source is the target address rather than a link-local address because ndisc6 (and
    perhaps other user-space clients) ignore answers from another source. The frame goes to
    the Source link-layer address if the solicitation had one, else back to its Ethernet
    source.

    >>> asker = parse_mac("02:00:00:00:00:99")
    >>> probe = neighbor_solicitation(
    ...     asker, IPv6Address("fe80::99"), IPv6Address("2001:db8::10"), unicast_to=bytes(6)
    ... )
    >>> answer = solicited_advertisement(probe, parse_mac("02:00:00:00:00:01"))
    >>> (answer.solicited, answer.override, answer.target_lla, len(answer.encode()))
    (True, False, None, 78)
    """
    multicast = solicitation.dst.is_multicast
    return NeighborAdvertisement(
        eth_dst=solicitation.source_lla or solicitation.eth_src,
        eth_src=mac,
        src=solicitation.target,
        dst=solicitation.src,
        target=solicitation.target,
        router=False,
        solicited=True,
        override=multicast,
        target_lla=mac if multicast else None,
    )


def unsolicited_advertisement(
    mac: bytes, target: IPv6Address, *, src: IPv6Address | None = None
) -> NeighborAdvertisement:
    """The announcement this project sends: an NA to ff02::1 with S=0, O=1 and a Target
    link-layer option carrying ``mac``.

    ``src`` should be the interface's link-local address (RFC 4861 §7.2.6); without one, the
    target address itself is used.
    """
    return NeighborAdvertisement(
        eth_dst=ALL_NODES_MAC,
        eth_src=mac,
        src=target if src is None else src,
        dst=ALL_NODES,
        target=target,
        router=False,
        solicited=False,
        override=True,
        target_lla=mac,
    )
