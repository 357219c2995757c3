"""Classic BPF socket filters for the announcer's packet sockets, assembled here. Pure.

A packet socket without a filter wakes its process for every ARP packet (or every IPv6
packet) on the link. With one of these programs attached (``SO_ATTACH_FILTER``), the kernel
keeps everything else away from the process:

- :func:`arp_filter`: ARP packets whose target (TPA) or sender (SPA) address is announced
  on the interface: the requests to answer, and the gratuitous ARPs and replies that
  reveal a conflict (from about 1,300 to 2,600 addresses, TPA only: requests and
  gratuitous ARPs);
- :func:`ndp_filter`: ICMPv6 Neighbor Solicitations and Advertisements whose target's low
  32 bits are those of an announced address (a rare false positive with equal low bits is
  dropped by the exact check in user space).

Both first drop what the kernel marked ``PACKET_OUTGOING`` (our own transmissions) or
``PACKET_OTHERHOST`` (unicast to another MAC, or 802.1Q-tagged with a VLAN this host has no
interface for), and anything still carrying a VLAN tag with a non-zero VLAN id.

**Cost per packet does not grow with the number of addresses**: the address lookup is a
binary search, compiled to a tree of ``jgt`` comparisons ending in leaves of at most
:data:`LEAF` ``jeq`` comparisons: for 1,000 addresses, 7 levels and at most 8 comparisons;
the kernel JIT-compiles it. Size grows linearly (about 1.5 instructions per address and
tree); a program over the kernel's limit of 4,096 instructions (``BPF_MAXINSNS``; about
2,600 addresses per interface for ARP and NDP) is replaced by the :func:`prefilter`
(packet type and VLAN checks, and for NDP the ICMPv6 type), and the exact check is the
user-space dictionary lookup alone, which is O(1) too.

>>> program = arp_filter([bytes([192, 0, 2, 10])])
>>> len(program) % INSTRUCTION_SIZE, instructions(program) < BPF_MAXINSNS
(0, True)
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "ACCEPT",
    "BPF_MAXINSNS",
    "INSTRUCTION_SIZE",
    "LEAF",
    "arp_filter",
    "instructions",
    "ndp_filter",
    "prefilter",
]

BPF_MAXINSNS = 4096
INSTRUCTION_SIZE = 8  # struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
LEAF = 8
"""At most this many ``jeq`` comparisons at the end of a search."""
ACCEPT = 0xFFFF  # bytes of the packet to keep: all of an ARP or NDP frame

# Opcodes (linux/filter.h, linux/bpf_common.h).
LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
AND_K = 0x54
JA, JEQ_K, JGT_K = 0x05, 0x15, 0x25
RET_K = 0x06
# Ancillary loads: SKF_AD_OFF + SKF_AD_PKTTYPE / _VLAN_TAG / _VLAN_TAG_PRESENT.
SKF_AD_OFF = -0x1000
AD_PKTTYPE = (SKF_AD_OFF + 4) & 0xFFFFFFFF
AD_VLAN_TAG = (SKF_AD_OFF + 44) & 0xFFFFFFFF
AD_VLAN_TAG_PRESENT = (SKF_AD_OFF + 48) & 0xFFFFFFFF

# Offsets in an Ethernet frame (the kernel strips an 802.1Q tag before the filter runs).
ARP_SPA, ARP_TPA = 28, 38
IPV6_NEXT_HEADER, ICMPV6_TYPE, ND_TARGET_LOW = 20, 54, 74
IPPROTO_ICMPV6, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT = 58, 135, 136


@dataclass(frozen=True, slots=True)
class _Insn:
    code: int
    jt: int | str = 0
    jf: int | str = 0
    k: int | str = 0


_Item = _Insn | str  # a string alone is a label for the next instruction


def _assemble(items: Sequence[_Item]) -> bytes:
    labels: dict[str, int] = {}
    position = 0
    for item in items:
        if isinstance(item, str):
            labels[item] = position
        else:
            position += 1
    out = bytearray()
    position = 0
    for item in items:
        if isinstance(item, str):
            continue

        def offset(target: int | str, *, position: int = position) -> int:
            return target if isinstance(target, int) else labels[target] - position - 1

        jt, jf = offset(item.jt), offset(item.jf)
        k = offset(item.k) if item.code == JA else item.k
        assert isinstance(k, int)
        if not (0 <= jt <= 255 and 0 <= jf <= 255 and 0 <= k <= 0xFFFFFFFF):
            raise ValueError(f"jump out of range at instruction {position}")
        out += struct.pack("=HBBI", item.code, jt, jf, k)
        position += 1
    return bytes(out)


_counter = itertools.count()


def _label(kind: str) -> str:
    return f"{kind}{next(_counter)}"


def _header() -> list[_Item]:
    """Drop outgoing copies, frames for other hosts or VLANs, and tagged frames."""
    drop, untagged = _label("drop"), _label("untagged")
    return [
        _Insn(LD_W_ABS, k=AD_PKTTYPE),
        _Insn(JEQ_K, jt=drop, k=socket.PACKET_OUTGOING),
        _Insn(JEQ_K, jt=drop, k=socket.PACKET_OTHERHOST),
        _Insn(LD_W_ABS, k=AD_VLAN_TAG_PRESENT),
        _Insn(JEQ_K, jt=untagged, k=0),
        _Insn(LD_W_ABS, k=AD_VLAN_TAG),
        _Insn(AND_K, k=0x0FFF),
        _Insn(JEQ_K, jt=untagged, k=0),  # VLAN 0: priority tag only, same network
        drop,
        _Insn(RET_K, k=0),
        untagged,
    ]


def _search(keys: Sequence[int], miss: str | None) -> list[_Item]:
    """Accept if the accumulator is one of ``keys`` (sorted, distinct); otherwise jump to
    ``miss`` (or drop, if None). A binary search: ``jgt`` nodes, ``jeq`` leaves."""
    if len(keys) <= LEAF:
        hit = _label("hit")
        leaf: list[_Item] = [_Insn(JEQ_K, jt=hit, k=key) for key in keys]
        leaf.append(_Insn(RET_K, k=0) if miss is None else _Insn(JA, k=miss))
        return [*leaf, hit, _Insn(RET_K, k=ACCEPT)]
    middle = len(keys) // 2
    right = _label("right")
    return [
        _Insn(JGT_K, jt=0, jf=1, k=keys[middle - 1]),  # greater: take the jump to the right
        _Insn(JA, k=right),
        *_search(keys[:middle], miss),
        right,
        *_search(keys[middle:], miss),
    ]


def instructions(program: bytes) -> int:
    """How many instructions ``program`` holds."""
    return len(program) // INSTRUCTION_SIZE


def _ndp_type_check() -> list[_Item]:
    drop, nd = _label("drop"), _label("nd")
    return [
        _Insn(LD_B_ABS, k=IPV6_NEXT_HEADER),
        _Insn(JEQ_K, jf=drop, k=IPPROTO_ICMPV6),
        _Insn(LD_B_ABS, k=ICMPV6_TYPE),
        _Insn(JEQ_K, jt=nd, k=NEIGHBOR_SOLICITATION),
        _Insn(JEQ_K, jt=nd, k=NEIGHBOR_ADVERTISEMENT),
        drop,
        _Insn(RET_K, k=0),
        nd,
    ]


def prefilter(ndp: bool) -> bytes:
    """The cheap filter: packet type and VLAN checks (and for NDP, ICMPv6 NS or NA only);
    every address passes. Attached at once when an address is added, until the exact
    filter is rebuilt, and for good when the exact one would be too long."""
    body: list[_Item] = _header()
    if ndp:
        body += _ndp_type_check()
    return _assemble([*body, _Insn(RET_K, k=ACCEPT)])


def _or_prefilter(program: bytes, ndp: bool) -> bytes:
    return program if instructions(program) <= BPF_MAXINSNS else prefilter(ndp)


def arp_filter(addresses: Iterable[bytes]) -> bytes:
    """Accept ARP whose TPA or SPA is one of ``addresses`` (4-byte packed IPv4)."""
    keys = sorted({int.from_bytes(address, "big") for address in addresses})
    if not keys:
        return _assemble([*_header(), _Insn(RET_K, k=0)])
    by_sender = _label("sender")
    program = _assemble(
        [
            *_header(),
            _Insn(LD_W_ABS, k=ARP_TPA),
            *_search(keys, by_sender),
            by_sender,
            _Insn(LD_W_ABS, k=ARP_SPA),
            *_search(keys, None),
        ]
    )
    if instructions(program) > BPF_MAXINSNS:
        # Too many for two searches: the target alone still passes every request and every
        # gratuitous ARP for our addresses; only a foreign reply to a third host is missed.
        program = _assemble([*_header(), _Insn(LD_W_ABS, k=ARP_TPA), *_search(keys, None)])
    return _or_prefilter(program, ndp=False)


def ndp_filter(addresses: Iterable[bytes]) -> bytes:
    """Accept Neighbor Solicitations and Advertisements whose target ends in the low
    32 bits of one of ``addresses`` (16-byte packed IPv6)."""
    keys = sorted({int.from_bytes(address[-4:], "big") for address in addresses})
    if not keys:
        return _assemble([*_header(), _Insn(RET_K, k=0)])
    program = _assemble(
        [
            *_header(),
            *_ndp_type_check(),
            _Insn(LD_W_ABS, k=ND_TARGET_LOW),
            *_search(keys, None),
        ]
    )
    return _or_prefilter(program, ndp=True)
