"""ConfigIndex.ordinal, the numbering the free-address search runs on, against a brute count."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_core import Config, Pool
from metallb_core._addresses import key_of
from metallb_core._index import ConfigIndex

BASE = key_of(ip_address("10.0.0.0"))

# Pools over 10.0.0.0-10.0.3.255: CIDRs with gaps between them, exclusions (addresses, CIDRs
# and ranges, some over .0/.255) and avoid_buggy_ips on some pools.
CIDRS = ["10.0.0.0/26", "10.0.0.96/27", "10.0.0.192/26", "10.0.1.0/24", "10.0.2.248/29"]
EXCLUDES = {
    "10.0.0.0/26": ["10.0.0.0", "10.0.0.10-10.0.0.20"],
    "10.0.1.0/24": ["10.0.1.250-10.0.1.255", "10.0.1.0/30", "10.0.1.128"],
    "10.0.2.248/29": ["10.0.2.255"],
}


@settings(max_examples=60, deadline=None)
@given(
    chosen=st.lists(st.sampled_from(CIDRS), min_size=1, max_size=5, unique=True),
    buggy=st.lists(st.booleans(), min_size=5, max_size=5),
    excluding=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_ordinal_counts_the_addresses_some_pool_may_hand_out(
    chosen: list[str], buggy: list[bool], excluding: list[bool]
) -> None:
    pools = [
        Pool(
            name=f"p{i}",
            cidrs=[cidr],
            exclude=EXCLUDES.get(cidr, []) if excluding[i] else [],
            avoid_buggy_ips=buggy[i],
        )
        for i, cidr in enumerate(chosen)
    ]
    index = ConfigIndex(Config(pools=pools))
    count = 0
    for key in range(BASE - 3, BASE + 4 * 256 + 3):
        if index.owner(key) is not None:
            count += 1
        assert index.ordinal(key) == count


@pytest.mark.parametrize("cidrs", [["2001:db8::/120", "2001:db8::1:0/126"], ["10.0.0.0/30"]])
def test_ordinal_of_the_last_address_is_the_capacity(cidrs: list[str]) -> None:
    index = ConfigIndex(Config(pools=[Pool(name=f"p{i}", cidrs=[c]) for i, c in enumerate(cidrs)]))
    top = max(key_of(ip_address(c.split("/")[0])) for c in cidrs) + 1000
    assert index.ordinal(top) == sum(a + b for a, b in index.capacity)
