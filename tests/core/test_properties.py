"""Property tests of address arithmetic: range covers, capacities with big ints, exclusions.

``ipaddress.summarize_address_range`` appears only as an oracle; the minimality, order and
exactness of a cover are also checked directly. Set ``CI`` in the environment for a
derandomized run.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metallb_core as core

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CI = bool(os.environ.get("CI"))
_ci_options: dict[str, Any] = {"derandomize": True, "database": None} if CI else {}
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, **_ci_options)

BITS = {4: 32, 6: 128}


def address(version: int, value: int) -> IPAddress:
    """The address of ``value`` in family ``version``."""
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


@st.composite
def intervals(
    draw: st.DrawFn, version: int, low: int = 0, high: int | None = None
) -> tuple[int, int]:
    """``(first, last)`` inside ``[low, high]``, of any order of magnitude, often aligned."""
    top = (1 << BITS[version]) - 1 if high is None else high
    magnitude = draw(st.integers(0, (top - low).bit_length()))
    length = draw(st.integers(0, (1 << magnitude) - 1)) if magnitude else 0
    length = min(length, top - low)
    # Aligned starts make the cover's big blocks appear; unaligned ones its ragged ends.
    align = draw(st.integers(0, magnitude))
    first = draw(st.integers(low, top - length))
    first = max(low, first - first % (1 << align))
    return first, first + length


def range_text(first: IPAddress, last: IPAddress, left: str = "", right: str = "") -> str:
    """An ``a-b`` entry with the given white space around the dash."""
    return f"{first}{left}-{right}{last}"


def pool_of(cidrs: Sequence[str], **options: Any) -> core.Pool:
    """A pool named ``p``."""
    return core.Pool(name="p", cidrs=list(cidrs), **options)


def fresh_usage(pool: core.Pool) -> core.PoolUsage:
    """The usage of ``pool`` in an empty state."""
    return core.pool_usage(core.State.empty(core.Config(pools=[pool])))["p"]


def merged_size(spans: Sequence[tuple[int, int]]) -> int:
    """The number of integers in the union of inclusive intervals."""
    total, reach = 0, -1
    for first, last in sorted(spans):
        if last > reach:
            total += last - max(first, reach + 1) + 1
            reach = last
    return total


# -- range covers -------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(version=st.sampled_from((4, 6)), data=st.data())
def test_range_cover_is_exact_ascending_and_minimal(version: int, data: st.DataObject) -> None:
    first, last = data.draw(intervals(version))
    start, end = address(version, first), address(version, last)
    cover = pool_of([range_text(start, end)]).cidrs

    assert all(net.version == version for net in cover)
    # Exact and ascending: starts at the first address, each block follows the previous one
    # without gap or overlap, and the last block ends at the last address.
    assert int(cover[0].network_address) == first
    for previous, current in itertools.pairwise(cover):
        assert int(current.network_address) == int(previous.broadcast_address) + 1
    assert int(cover[-1].broadcast_address) == last
    # Minimal: no block could grow into its parent without leaving the range.
    for net in cover:
        if net.prefixlen > 0:
            parent = net.supernet()
            assert not first <= int(parent.network_address) <= int(parent.broadcast_address) <= last
    assert list(cover) == list(ipaddress.summarize_address_range(start, end))


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    left=st.sampled_from(("", " ", "  ", "\t")),
    right=st.sampled_from(("", " ", "  ", "\t")),
)
def test_white_space_around_the_dash_is_ignored(data: st.DataObject, left: str, right: str) -> None:
    first, last = data.draw(intervals(4))
    start, end = address(4, first), address(4, last)
    spaced = pool_of([range_text(start, end, left, right)]).cidrs
    assert spaced == pool_of([range_text(start, end)]).cidrs


@PROPERTY_SETTINGS
@given(data=st.data())
def test_range_is_replaced_in_place_among_cidrs(data: st.DataObject) -> None:
    # The range stays inside 10.0.0.0/8; the CIDRs around it lie elsewhere.
    first, last = data.draw(intervals(4, 0x0A000000, 0x0AFFFFFF))
    start, end = address(4, first), address(4, last)
    cidrs = pool_of(["2001:db8::/64", range_text(start, end), "192.168.0.0/24"]).cidrs
    assert cidrs == (
        ipaddress.IPv6Network("2001:db8::/64"),
        *ipaddress.summarize_address_range(start, end),
        ipaddress.IPv4Network("192.168.0.0/24"),
    )


@PROPERTY_SETTINGS
@given(version=st.sampled_from((4, 6)), data=st.data())
def test_cidr_host_bits_are_masked(version: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, (1 << BITS[version]) - 1))
    length = data.draw(st.integers(0, BITS[version]))
    text = f"{address(version, value)}/{length}"
    assert pool_of([text]).cidrs == (ipaddress.ip_network(text, strict=False),)


@PROPERTY_SETTINGS
@given(version=st.sampled_from((4, 6)), data=st.data())
def test_range_ending_before_it_starts_is_a_config_error(version: int, data: st.DataObject) -> None:
    first, last = data.draw(intervals(version))
    if first == last:
        last += 1 if last < (1 << BITS[version]) - 1 else -1
        first, last = min(first, last), max(first, last)
    with pytest.raises(core.ConfigError):
        pool_of([range_text(address(version, last), address(version, first))])


@PROPERTY_SETTINGS
@given(v4=st.integers(0, 2**32 - 1), v6=st.integers(0, 2**128 - 1), v4_first=st.booleans())
def test_range_mixing_families_is_a_config_error(v4: int, v6: int, v4_first: bool) -> None:
    ends = (address(4, v4), address(6, v6))
    start, end = ends if v4_first else ends[::-1]
    with pytest.raises(core.ConfigError):
        pool_of([range_text(start, end)])


# -- capacities ---------------------------------------------------------------------------


def test_fresh_ipv6_slash_64_has_exactly_2_to_the_64_available() -> None:
    assert fresh_usage(pool_of(["2001:db8::/64"])) == core.PoolUsage(
        assigned_ipv4=0, assigned_ipv6=0, available_ipv4=0, available_ipv6=2**64
    )


@PROPERTY_SETTINGS
@given(lengths=st.lists(st.integers(1, 128), min_size=1, max_size=6, unique=True))
def test_ipv6_capacity_is_the_exact_sum_of_prefix_sizes(lengths: list[int]) -> None:
    # Disjoint by construction: largest first, each /n at the next multiple of its size.
    # Distinct lengths from 1 up never add up to more than the address space.
    cidrs, cursor = [], 0
    for length in sorted(lengths):
        size = 1 << (128 - length)
        cursor = -(-cursor // size) * size
        cidrs.append(f"{ipaddress.IPv6Address(cursor)}/{length}")
        cursor += size
    # An IPv4 CIDR after huge IPv6 ones: MetalLB's counter would have saturated by now.
    usage = fresh_usage(pool_of([*cidrs, "10.0.0.0/30"]))
    assert usage.available_ipv6 == sum(1 << (128 - length) for length in lengths)
    assert (usage.assigned_ipv4, usage.assigned_ipv6, usage.available_ipv4) == (0, 0, 4)


@PROPERTY_SETTINGS
@given(count=st.integers(1, 5), length=st.integers(0, 64))
def test_each_allocation_from_a_huge_pool_takes_exactly_one_address(
    count: int, length: int
) -> None:
    pool = pool_of([f"::/{length}"])
    state = core.State.empty(core.Config(pools=[pool]))
    for n in range(count):
        request = core.ServiceRequest(key=f"ns/s{n}", family="ipv6", primary_family="ipv6")
        state, outcome = core.allocate(state, request)
        assert isinstance(outcome, core.Allocation)
    usage = core.pool_usage(state)["p"]
    assert (usage.assigned_ipv6, usage.available_ipv6) == (count, (1 << (128 - length)) - count)


@PROPERTY_SETTINGS
@given(data=st.data(), length=st.integers(8, 64))
def test_ipv6_exclusions_subtract_exactly_their_union(data: st.DataObject, length: int) -> None:
    network = ipaddress.IPv6Network(f"2001:db8::/{length}", strict=False)
    base, top = int(network.network_address), int(network.broadcast_address)
    spans = data.draw(st.lists(intervals(6, base, top), min_size=1, max_size=4))
    exclude = [range_text(address(6, first), address(6, last)) for first, last in spans]
    usage = fresh_usage(pool_of([str(network)], exclude=exclude))
    assert usage.available_ipv6 == (1 << (128 - length)) - merged_size(spans)


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    length=st.integers(22, 32),
    avoid_buggy_ips=st.booleans(),
    as_cidrs=st.booleans(),
)
def test_ipv4_capacity_matches_enumeration(
    data: st.DataObject, length: int, avoid_buggy_ips: bool, as_cidrs: bool
) -> None:
    network = ipaddress.IPv4Network(f"10.1.0.0/{length}")
    first_key, last_key = int(network.network_address), int(network.broadcast_address)
    spans = data.draw(st.lists(intervals(4, first_key, last_key), max_size=4))
    exclude: list[str] = []
    for first, last in spans:
        if as_cidrs:
            blocks = ipaddress.summarize_address_range(address(4, first), address(4, last))
            exclude.extend(str(block) for block in blocks)
        else:
            exclude.append(range_text(address(4, first), address(4, last)))
    usage = fresh_usage(pool_of([str(network)], avoid_buggy_ips=avoid_buggy_ips, exclude=exclude))
    expected = sum(
        1
        for value in range(first_key, last_key + 1)
        if not any(first <= value <= last for first, last in spans)
        and not (avoid_buggy_ips and value % 256 in (0, 255))
    )
    assert (usage.available_ipv4, usage.available_ipv6) == (expected, 0)


@PROPERTY_SETTINGS
@given(length=st.integers(8, 24))
def test_avoid_buggy_removes_two_addresses_per_slash_24(length: int) -> None:
    usage = fresh_usage(pool_of([f"10.0.0.0/{length}"], avoid_buggy_ips=True))
    assert usage.available_ipv4 == (1 << (32 - length)) - 2 * (1 << (24 - length))
