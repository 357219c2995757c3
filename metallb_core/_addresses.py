"""Addresses, CIDRs and ranges: parsing with MetalLB's (Go's) rules, and exact arithmetic.

Internally an address is an integer *key* in one space for both families: an IPv4 address is
its integer value and an IPv6 address is its integer value plus ``2**32``, so that ordered
structures can hold both without ever mixing them up. Sizes and counts are computed by
arithmetic, never by enumerating addresses, so an IPv6 /64 costs what an IPv4 /30 costs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def _to_address(value: object) -> IPAddress:
    if isinstance(value, (IPv4Address, IPv6Address)):
        return value
    if isinstance(value, (str, int)):
        return ipaddress.ip_address(value)
    raise ValueError(f"not an IP address: {value!r}")


AddressField = Annotated[IPAddress, PlainValidator(_to_address), PlainSerializer(str)]
"""An address as a model field: address objects pass as they are (pydantic's own IP
validation re-parses their text, which costs more than the rest of an allocation)."""

V6_OFFSET = 1 << 32
"""IPv6 keys start here; every IPv4 key is below."""


class AddressError(ValueError):
    """An address, CIDR or range that does not parse; the message is MetalLB's inner text."""


def key_of(ip: IPAddress) -> int:
    """The ordering key of an address."""
    # isinstance, not the ``version`` property: this runs on every update of the state.
    return int(ip) if isinstance(ip, IPv4Address) else int(ip) + V6_OFFSET


def address_of(key: int) -> IPAddress:
    """The address of a key (the inverse of :func:`key_of`)."""
    return IPv4Address(key) if key < V6_OFFSET else IPv6Address(key - V6_OFFSET)


def bounds(net: IPNetwork) -> tuple[int, int]:
    """The first and last key of a network, inclusive."""
    lo = key_of(net.network_address)
    return lo, lo + net.num_addresses - 1


def parse_ip(text: str) -> IPAddress | None:
    """An address with Go's ``net.ParseIP`` rules (no zone, no prefix), or ``None``."""
    if "%" in text or "/" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_go_ip(text: str) -> IPAddress | None:
    """An address as Go's ``net.ParseIP`` sees it: an IPv4-mapped IPv6 address is IPv4.

    This is how MetalLB reads requested IPs and ClusterIPs: ``::ffff:10.0.0.1`` is 10.0.0.1.
    """
    ip = parse_ip(text)
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_cidr(text: str) -> IPNetwork | None:
    """A CIDR with Go's ``net.ParseCIDR`` rules, host bits masked, or ``None``.

    Unlike :func:`ipaddress.ip_network`, a prefix length is required, a netmask is refused and
    surrounding white space is an error, as in MetalLB.
    """
    addr, sep, length = text.partition("/")
    if not sep or not length.isascii() or not length.isdigit():
        return None
    ip = parse_ip(addr)
    if ip is None or int(length) > ip.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{ip}/{int(length)}", strict=False)


def range_cover(start: IPAddress, end: IPAddress) -> tuple[IPNetwork, ...]:
    """The minimal ascending list of CIDRs covering ``start``..``end`` inclusive.

    >>> [str(n) for n in range_cover(IPv4Address("40.0.0.250"), IPv4Address("40.0.0.252"))]
    ['40.0.0.250/31', '40.0.0.252/32']
    """
    nets: Iterable[IPNetwork] = ipaddress.summarize_address_range(start, end)
    return tuple(nets)


def parse_entry(entry: str) -> tuple[IPNetwork, ...]:
    """A pool ``addresses`` entry (CIDR or ``a-b`` range) as CIDRs, in order.

    Raises :class:`AddressError` with MetalLB's inner message. Unlike MetalLB, a range whose
    start is after its end, or whose ends are of different families, is an error
    (docs/design/core-api.md
    decision 4).
    """
    if "-" not in entry:
        net = parse_cidr(entry)
        if net is None:
            raise AddressError(f'invalid CIDR "{entry}"')
        return (net,)
    raw_start, _, raw_end = entry.partition("-")
    start = parse_ip(raw_start.strip())
    if start is None:
        raise AddressError(f'invalid IP range "{entry}": invalid start IP "{raw_start}"')
    end = parse_ip(raw_end.strip())
    if end is None:
        raise AddressError(f'invalid IP range "{entry}": invalid end IP "{raw_end}"')
    if start.version != end.version:
        raise AddressError(
            f'invalid IP range "{entry}": start IP "{start}" and end IP "{end}" '
            "are of different families"
        )
    if start > end:  # type: ignore[operator]
        raise AddressError(
            f'invalid IP range "{entry}": start IP "{start}" is after the end IP "{end}"'
        )
    return range_cover(start, end)


def parse_exclude(entry: str) -> tuple[IPNetwork, ...]:
    """An ``exclude`` entry: a single address, a CIDR or a range."""
    single = parse_ip(entry.strip())
    if single is not None:
        return (ipaddress.ip_network(single),)
    return parse_entry(entry.strip())


# -- avoid-buggy-ips arithmetic --------------------------------------------------------------


def _buggy_below(n: int) -> int:
    """How many IPv4 keys in ``[0, n)`` end in .0 or .255."""
    return 2 * (n >> 8) + (1 if n & 0xFF else 0)


def buggy_between(lo: int, hi: int) -> int:
    """How many IPv4 keys in ``[lo, hi]`` end in .0 or .255 (0 for IPv6 keys)."""
    if lo >= V6_OFFSET or hi < lo:
        return 0
    return _buggy_below(hi + 1) - _buggy_below(lo)


def is_buggy(key: int) -> bool:
    """Whether an IPv4 key ends in .0 or .255 (never true for IPv6)."""
    return key < V6_OFFSET and (key & 0xFF) in (0, 0xFF)


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, merged, non-adjacent-free intervals (touching intervals are merged too)."""
    merged: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)
