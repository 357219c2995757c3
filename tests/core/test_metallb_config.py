"""MetalLB's configuration tests, translated to the metallb_core contract (docs/design/core-api.md).

Sources: ``internal/config/config_test.go`` on main (CRD era: IPAddressPool, L2Advertisement,
Namespace, serviceAllocation) and its v0.10 ancestor (the ConfigMap format). MetalLB's tables
only say "parse fails"; the exact messages asserted here are MetalLB's wording from
``internal/config/config.go`` (restated in docs/design/metallb-behaviour.md §13). BGP-only cases
(peers,
BFD, communities, aggregation) have no counterpart in a Layer-2 core and are left out, except
that their objects must be accepted and ignored. Every deviation is listed in
``tests/core/metallb_cases_notes.md``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest
from pydantic import ValidationError

import metallb_core as core

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def nets(*texts: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


# --------------------------------------------------------------------------------------
# Kubernetes objects, as `kubectl get -o json` items


def pool_cr(
    name: str | None,
    addresses: Sequence[str] | None = None,
    *,
    auto_assign: bool | None = None,
    avoid_buggy_ips: bool | None = None,
    allocation: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": "metallb-system"}
    if name is not None:
        metadata["name"] = name
    if labels:
        metadata["labels"] = dict(labels)
    spec: dict[str, Any] = {}
    if addresses is not None:
        spec["addresses"] = list(addresses)
    if auto_assign is not None:
        spec["autoAssign"] = auto_assign
    if avoid_buggy_ips is not None:
        spec["avoidBuggyIPs"] = avoid_buggy_ips
    if allocation is not None:
        spec["serviceAllocation"] = dict(allocation)
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": metadata,
        "spec": spec,
    }


def l2_cr(
    name: str,
    *,
    pools: Sequence[str] | None = None,
    pool_selectors: Sequence[Mapping[str, Any]] | None = None,
    node_selectors: Sequence[Mapping[str, Any]] | None = None,
    interfaces: Sequence[str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if pools is not None:
        spec["ipAddressPools"] = list(pools)
    if pool_selectors is not None:
        spec["ipAddressPoolSelectors"] = [dict(s) for s in pool_selectors]
    if node_selectors is not None:
        spec["nodeSelectors"] = [dict(s) for s in node_selectors]
    if interfaces is not None:
        spec["interfaces"] = list(interfaces)
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": spec,
    }


def namespace_cr(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def bgp_objects() -> list[dict[str, Any]]:
    """BGP-only objects from MetalLB's "config using all features"; a Layer-2 core ignores them."""
    return [
        {
            "apiVersion": "metallb.io/v1beta2",
            "kind": "BGPPeer",
            "metadata": {"name": "peer1", "namespace": "metallb-system"},
            "spec": {"myASN": 42, "peerASN": 142, "peerAddress": "1.2.3.4", "peerPort": 1179},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "BGPAdvertisement",
            "metadata": {"name": "adv1", "namespace": "metallb-system"},
            "spec": {"aggregationLength": 32, "localPref": 100, "ipAddressPools": ["pool1"]},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "Community",
            "metadata": {"name": "community", "namespace": "metallb-system"},
            "spec": {"communities": [{"name": "bar", "value": "64512:1234"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node1", "labels": {"first": "true"}},
        },
    ]


def named(cfg: core.Config, name: str) -> core.Pool:
    for candidate in cfg.pools:
        if candidate.name == name:
            return candidate
    raise AssertionError(f"no pool {name!r} in {[p.name for p in cfg.pools]}")


def advertisement(cfg: core.Config, name: str) -> core.L2Advertisement | None:
    found = [adv for adv in cfg.l2_advertisements if adv.name == name]
    assert len(found) <= 1
    return found[0] if found else None


def resources_error(objects: Sequence[Mapping[str, Any]]) -> str:
    with pytest.raises(core.ConfigError) as info:
        core.parse_resources(objects)
    return str(info.value)


def configmap_error(document: Mapping[str, Any]) -> str:
    with pytest.raises(core.ConfigError) as info:
        core.parse_configmap(document)
    return str(info.value)


def allocate_from(
    cfg: core.Config, pool: str | None, namespace: str, labels: Mapping[str, str] | None = None
) -> core.Allocation | core.AllocationError:
    """What the allocator makes of a service in ``namespace`` asking for ``pool``."""
    req = core.ServiceRequest(
        key=f"{namespace}/svc", namespace=namespace, labels=dict(labels or {}), requested_pool=pool
    )
    _, outcome = core.allocate(core.State.empty(cfg), req)
    return outcome


def assert_incompatible(outcome: core.Allocation | core.AllocationError, pool: str) -> None:
    assert isinstance(outcome, core.PoolNotCompatible), outcome
    assert outcome.message == f"pool {pool} not compatible for ip assignment"


def assert_from(outcome: core.Allocation | core.AllocationError, pool: str) -> None:
    assert isinstance(outcome, core.Allocation), outcome
    assert outcome.pool == pool


# --------------------------------------------------------------------------------------
# Pool: addresses, ranges, defaults


POOL3_ADDRESSES = [
    "40.0.0.0/25",
    "40.0.0.150-40.0.0.200",
    "40.0.0.210 - 40.0.0.240",
    "40.0.0.250 - 40.0.0.250",
]
POOL3_CIDRS = [
    "40.0.0.0/25",
    "40.0.0.150/31",
    "40.0.0.152/29",
    "40.0.0.160/27",
    "40.0.0.192/29",
    "40.0.0.200/32",
    "40.0.0.210/31",
    "40.0.0.212/30",
    "40.0.0.216/29",
    "40.0.0.224/28",
    "40.0.0.240/32",
    "40.0.0.250/32",
]


@pytest.mark.parametrize(
    ("addresses", "cidrs"),
    [
        pytest.param(
            ["10.20.0.0/16", "10.50.0.0/24"], ["10.20.0.0/16", "10.50.0.0/24"], id="cidrs"
        ),
        pytest.param(["10.20.30.40/24"], ["10.20.30.0/24"], id="host bits masked"),
        pytest.param(
            ["40.0.0.150-40.0.0.200"],
            ["40.0.0.150/31", "40.0.0.152/29", "40.0.0.160/27", "40.0.0.192/29", "40.0.0.200/32"],
            id="range",
        ),
        pytest.param(
            ["40.0.0.210 - 40.0.0.240"],
            ["40.0.0.210/31", "40.0.0.212/30", "40.0.0.216/29", "40.0.0.224/28", "40.0.0.240/32"],
            id="range with spaces",
        ),
        pytest.param(["40.0.0.250 - 40.0.0.250"], ["40.0.0.250/32"], id="one-address range"),
        pytest.param(
            ["3.3.3.2-3.3.3.254"],
            [
                "3.3.3.2/31",
                "3.3.3.4/30",
                "3.3.3.8/29",
                "3.3.3.16/28",
                "3.3.3.32/27",
                "3.3.3.64/26",
                "3.3.3.128/26",
                "3.3.3.192/27",
                "3.3.3.224/28",
                "3.3.3.240/29",
                "3.3.3.248/30",
                "3.3.3.252/31",
                "3.3.3.254/32",
            ],
            id="aggregation length by range",
        ),
        pytest.param(POOL3_ADDRESSES, POOL3_CIDRS, id="ranges expanded in place"),
        pytest.param(["2001:db8::/64"], ["2001:db8::/64"], id="ipv6"),
        pytest.param(
            ["1000::1-1000::4"], ["1000::1/128", "1000::2/127", "1000::4/128"], id="ipv6 range"
        ),
        pytest.param(
            ["10.9.0.0/24", "1.0.0.0/30", "1000::/127"],
            ["10.9.0.0/24", "1.0.0.0/30", "1000::/127"],
            id="config order kept, not sorted",
        ),
    ],
)
def test_pool_normalises_addresses_like_metallb(addresses: list[str], cidrs: list[str]) -> None:
    assert tuple(core.Pool(name="p", cidrs=addresses).cidrs) == nets(*cidrs)


def test_pool_accepts_network_objects() -> None:
    pool = core.Pool(name="p", cidrs=[ipaddress.ip_network("10.0.0.0/24"), "1000::/127"])
    assert tuple(pool.cidrs) == nets("10.0.0.0/24", "1000::/127")


def test_pool_defaults_follow_metallb() -> None:
    pool = core.Pool(name="p", cidrs=["10.0.0.0/24"])
    assert (pool.auto_assign, pool.avoid_buggy_ips, pool.service_allocation) == (True, False, None)
    assert tuple(pool.exclude) == ()
    assert dict(pool.labels) == {}


INVALID_ENTRIES = [
    pytest.param("100.200.300.400/24", 'invalid CIDR "100.200.300.400/24"', id="invalid pool CIDR"),
    pytest.param("1.2.3.0/33", 'invalid CIDR "1.2.3.0/33"', id="invalid pool CIDR prefix length"),
    pytest.param("1000::/129", 'invalid CIDR "1000::/129"', id="ipv6 prefix length over 128"),
    pytest.param(" 10.0.0.0/8", 'invalid CIDR " 10.0.0.0/8"', id="leading space not trimmed"),
    pytest.param("1.2.3.4", 'invalid CIDR "1.2.3.4"', id="single address needs /32"),
    pytest.param(
        "1.2.3.10-1.2.3.1",
        'invalid IP range "1.2.3.10-1.2.3.1": start IP "1.2.3.10" is after the end IP "1.2.3.1"',
        id="first address of the range is after the second",
    ),
    pytest.param(
        "1.2.3.x - 1.2.3.5",
        'invalid IP range "1.2.3.x - 1.2.3.5": invalid start IP "1.2.3.x "',
        id="invalid range start, quoted untrimmed",
    ),
    pytest.param(
        "1.2.3.4-1.2.3.y",
        'invalid IP range "1.2.3.4-1.2.3.y": invalid end IP "1.2.3.y"',
        id="invalid range end",
    ),
]


@pytest.mark.parametrize(("entry", "inner"), INVALID_ENTRIES)
def test_pool_rejects_invalid_address_entries_with_metallb_wording(entry: str, inner: str) -> None:
    with pytest.raises(core.ConfigError) as info:
        core.Pool(name="pool1", cidrs=[entry])
    assert not isinstance(info.value, ValidationError)
    assert f'invalid CIDR "{entry}" in pool "pool1": {inner}' in str(info.value)


@pytest.mark.parametrize(
    "entry", ["1.2.3.4-1000::1", "1000::1-1.2.3.4"], ids=["v4 to v6", "v6 to v4"]
)
def test_pool_rejects_a_range_mixing_families(entry: str) -> None:
    # Decision 4 (MetalLB silently yields no address for such a range).
    with pytest.raises(core.ConfigError):
        core.Pool(name="pool1", cidrs=[entry])


def test_pool_without_addresses_is_rejected() -> None:
    with pytest.raises(core.ConfigError) as info:
        core.Pool(name="pool1", cidrs=[])
    assert "pool has no prefixes defined" in str(info.value)


def test_pool_without_name_is_rejected() -> None:
    with pytest.raises(core.ConfigError) as info:
        core.Pool(name="", cidrs=["10.0.0.0/24"])
    assert "missing pool name" in str(info.value)


def test_pool_with_a_non_string_address_raises_config_error_not_validation_error() -> None:
    with pytest.raises(core.ConfigError) as info:
        core.Pool(name="pool1", cidrs=[cast(Any, 42)])
    assert not isinstance(info.value, ValidationError)


def test_pool_accepts_exclusions_as_addresses_cidrs_and_ranges() -> None:
    pool = core.Pool(
        name="p", cidrs=["10.0.0.0/24"], exclude=["10.0.0.1", "10.0.0.8/30", "10.0.0.20-10.0.0.21"]
    )
    usage = core.pool_usage(core.State.empty(core.Config(pools=[pool])))["p"]
    assert usage.available_ipv4 == 256 - 1 - 4 - 2


# --------------------------------------------------------------------------------------
# Config: names and overlaps


def config_error(*pools: tuple[str, Sequence[str]]) -> str:
    with pytest.raises(core.ConfigError) as info:
        core.Config(pools=[core.Pool(name=name, cidrs=list(cidrs)) for name, cidrs in pools])
    assert not isinstance(info.value, ValidationError)
    return str(info.value)


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        pytest.param(
            [("pool1", ["10.0.0.0/24"]), ("pool2", ["10.1.0.0/24"]), ("pool1", ["10.2.0.0/24"])],
            'duplicate definition of pool "pool1"',
            id="duplicate pool definition",
        ),
        pytest.param(
            [("pool1", ["10.0.0.0/8"]), ("pool2", ["10.0.0.0/8"])],
            'CIDR "10.0.0.0/8" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/8"',
            id="duplicate CIDRs",
        ),
        pytest.param(
            [("pool1", ["10.0.0.0/8"]), ("pool2", ["10.0.0.0/16"])],
            'CIDR "10.0.0.0/16" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/8"',
            id="overlapping CIDRs",
        ),
        pytest.param(
            [("pool1", ["10.0.0.0/16"]), ("pool2", ["10.0.0.0/8"])],
            'CIDR "10.0.0.0/8" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/16"',
            id="later CIDR contains an earlier one",
        ),
        pytest.param(
            [("pool1", ["10.0.0.0/30"]), ("pool2", ["10.0.0.2-10.0.0.5"])],
            'CIDR "10.0.0.2/31" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/30"',
            id="range overlapping a CIDR",
        ),
        pytest.param(
            [("pool1", ["1000::/64"]), ("pool2", ["1000::1/128"])],
            'CIDR "1000::1/128" in pool "pool2" overlaps with already defined CIDR "1000::/64"',
            id="ipv6 overlap",
        ),
    ],
)
def test_config_rejects_duplicates_and_overlaps_with_metallb_wording(
    pools: list[tuple[str, list[str]]], message: str
) -> None:
    assert config_error(*pools) == message


def test_config_rejects_overlap_inside_one_pool() -> None:
    with pytest.raises(core.ConfigError) as info:
        core.Config(pools=[core.Pool(name="p", cidrs=["10.0.0.0/8", "10.1.0.0/16"])])
    assert str(info.value) == (
        'CIDR "10.1.0.0/16" in pool "p" overlaps with already defined CIDR "10.0.0.0/8"'
    )


def test_config_accepts_adjacent_cidrs() -> None:
    cfg = core.Config(
        pools=[
            core.Pool(name="a", cidrs=["10.0.0.0/25"]),
            core.Pool(name="b", cidrs=["10.0.0.128/25"]),
        ]
    )
    assert [p.name for p in cfg.pools] == ["a", "b"]


def test_l2_advertisement_defaults_mean_every_pool_node_and_interface() -> None:
    adv = core.L2Advertisement(name="l2")
    assert (tuple(adv.pools), tuple(adv.node_selectors), tuple(adv.interfaces)) == ((), (), ())


# --------------------------------------------------------------------------------------
# parse_resources: "config using all features" (Layer-2 part)


def all_features() -> list[dict[str, Any]]:
    return [
        *bgp_objects(),
        pool_cr(
            "pool1",
            ["10.20.0.0/16", "10.50.0.0/24"],
            avoid_buggy_ips=True,
            auto_assign=False,
        ),
        pool_cr("pool2", ["30.0.0.0/8"]),
        pool_cr("pool3", POOL3_ADDRESSES),
        pool_cr("pool4", ["2001:db8::/64"]),
        l2_cr("l2adv1", pools=["pool3"]),
        l2_cr("l2adv2"),
    ]


def test_parse_resources_keeps_pools_in_resource_order() -> None:
    cfg = core.parse_resources(all_features())
    assert [p.name for p in cfg.pools] == ["pool1", "pool2", "pool3", "pool4"]


@pytest.mark.parametrize(
    ("name", "cidrs", "auto_assign", "avoid_buggy_ips"),
    [
        ("pool1", ["10.20.0.0/16", "10.50.0.0/24"], False, True),
        ("pool2", ["30.0.0.0/8"], True, False),
        ("pool3", POOL3_CIDRS, True, False),
        ("pool4", ["2001:db8::/64"], True, False),
    ],
)
def test_parse_resources_reads_every_pool_feature(
    name: str, cidrs: list[str], auto_assign: bool, avoid_buggy_ips: bool
) -> None:
    pool = named(core.parse_resources(all_features()), name)
    assert tuple(pool.cidrs) == nets(*cidrs)
    assert (pool.auto_assign, pool.avoid_buggy_ips) == (auto_assign, avoid_buggy_ips)
    assert pool.service_allocation is None


def test_parse_resources_resolves_named_pools_of_an_l2_advertisement() -> None:
    adv = advertisement(core.parse_resources(all_features()), "l2adv1")
    assert adv is not None
    assert tuple(adv.pools) == ("pool3",)


def test_parse_resources_keeps_an_unrestricted_l2_advertisement_for_every_pool() -> None:
    adv = advertisement(core.parse_resources(all_features()), "l2adv2")
    assert adv is not None
    assert tuple(adv.pools) == ()


def test_parse_resources_ignores_bgp_and_other_kinds() -> None:
    cfg = core.parse_resources(bgp_objects())
    assert (tuple(cfg.pools), tuple(cfg.l2_advertisements)) == ((), ())


def test_parse_resources_of_nothing_is_an_empty_config() -> None:
    cfg = core.parse_resources([])
    assert (tuple(cfg.pools), tuple(cfg.l2_advertisements)) == ((), ())


def test_parse_resources_carries_pool_labels() -> None:
    cfg = core.parse_resources([pool_cr("pool1", ["10.0.0.0/24"], labels={"test": "pool1"})])
    assert dict(named(cfg, "pool1").labels) == {"test": "pool1"}


# ---- serviceAllocation ----------------------------------------------------------------


def namespace_selection() -> core.Config:
    """MetalLB's "ip address pool with namespace selection"."""
    return core.parse_resources(
        [
            pool_cr(
                "pool1",
                ["10.20.0.0/16", "10.50.0.0/24"],
                avoid_buggy_ips=True,
                auto_assign=False,
                allocation={"priority": 1, "namespaces": ["test-ns1"]},
            ),
            pool_cr(
                "pool2",
                ["30.0.0.0/8"],
                allocation={
                    "priority": 2,
                    "namespaceSelectors": [{"matchLabels": {"team": "metallb"}}],
                },
            ),
            pool_cr(
                "pool3",
                ["40.0.0.0/8"],
                allocation={
                    "priority": 3,
                    "namespaceSelectors": [{"matchLabels": {"team": "red"}}],
                },
            ),
            namespace_cr("test-ns1"),
            namespace_cr("test-ns2", {"team": "metallb"}),
        ]
    )


def test_parse_resources_reads_service_allocation_priority() -> None:
    cfg = namespace_selection()
    priorities = {}
    for name in ("pool1", "pool2", "pool3"):
        allocation = named(cfg, name).service_allocation
        assert allocation is not None
        priorities[name] = allocation.priority
    assert priorities == {"pool1": 1, "pool2": 2, "pool3": 3}


def test_parse_resources_reads_service_allocation_namespaces() -> None:
    allocation = named(namespace_selection(), "pool1").service_allocation
    assert allocation is not None
    assert set(allocation.namespaces) == {"test-ns1"}


def test_namespaces_list_admits_its_namespace() -> None:
    assert_from(allocate_from(namespace_selection(), "pool1", "test-ns1"), "pool1")


def test_namespaces_list_refuses_other_namespaces() -> None:
    assert_incompatible(allocate_from(namespace_selection(), "pool1", "test-ns2"), "pool1")


def test_namespace_selector_admits_matching_namespace_objects() -> None:
    assert_from(allocate_from(namespace_selection(), "pool2", "test-ns2"), "pool2")


def test_namespace_selector_refuses_namespaces_whose_labels_do_not_match() -> None:
    assert_incompatible(allocate_from(namespace_selection(), "pool2", "test-ns1"), "pool2")


@pytest.mark.parametrize("namespace", ["test-ns1", "test-ns2", "elsewhere"])
def test_namespace_selector_matching_no_namespace_admits_no_namespace(namespace: str) -> None:
    # Decision 6 (MetalLB: the restriction silently disappears).
    assert_incompatible(allocate_from(namespace_selection(), "pool3", namespace), "pool3")


def test_namespace_selector_matching_no_namespace_never_pins_automatically() -> None:
    cfg = core.parse_resources(
        [
            pool_cr(
                "pool3",
                ["40.0.0.0/8"],
                allocation={"namespaceSelectors": [{"matchLabels": {"team": "red"}}]},
            ),
            namespace_cr("test-ns1"),
        ]
    )
    outcome = allocate_from(cfg, None, "test-ns1")
    assert isinstance(outcome, core.NoAvailableIPs), outcome
    assert outcome.message == "no available IPs"


def service_selection() -> core.Config:
    """MetalLB's "ip address pool with service selection"."""
    return core.parse_resources(
        [
            pool_cr(
                "pool1",
                ["30.0.0.0/8"],
                allocation={
                    "priority": 2,
                    "serviceSelectors": [{"matchLabels": {"team": "metallb"}}],
                },
            ),
            pool_cr(
                "pool2",
                ["40.0.0.0/8"],
                allocation={"priority": 3, "serviceSelectors": [{"matchLabels": {"team": "red"}}]},
            ),
        ]
    )


def test_service_selector_pins_the_matching_pool() -> None:
    assert_from(allocate_from(service_selection(), None, "ns", {"team": "red"}), "pool2")


def test_service_selector_refuses_services_without_the_label() -> None:
    outcome = allocate_from(service_selection(), "pool1", "ns", {"team": "red"})
    assert_incompatible(outcome, "pool1")


def namespace_and_service_selection() -> core.Config:
    """MetalLB's "ip address pool with namespace and service selection"."""
    return core.parse_resources(
        [
            pool_cr(
                "pool1",
                ["30.0.0.0/8"],
                allocation={
                    "priority": 2,
                    "namespaces": ["test-ns1"],
                    "serviceSelectors": [{"matchLabels": {"testsvc-1": "1"}}],
                },
            ),
            pool_cr(
                "pool2",
                ["40.0.0.0/8"],
                allocation={
                    "priority": 3,
                    "namespaceSelectors": [{"matchLabels": {"team": "metallb"}}],
                    "serviceSelectors": [{"matchLabels": {"testsvc-2": "2"}}],
                },
            ),
            namespace_cr("test-ns1"),
            namespace_cr("test-ns2", {"team": "metallb"}),
        ]
    )


@pytest.mark.parametrize(
    ("pool", "namespace", "labels", "admitted"),
    [
        pytest.param("pool1", "test-ns1", {"testsvc-1": "1"}, True, id="pool1 both match"),
        pytest.param("pool1", "test-ns2", {"testsvc-1": "1"}, False, id="pool1 wrong namespace"),
        pytest.param("pool1", "test-ns1", {"testsvc-2": "2"}, False, id="pool1 wrong label"),
        pytest.param("pool2", "test-ns2", {"testsvc-2": "2"}, True, id="pool2 both match"),
        pytest.param("pool2", "test-ns1", {"testsvc-2": "2"}, False, id="pool2 wrong namespace"),
        pytest.param("pool2", "test-ns2", {}, False, id="pool2 no label"),
    ],
)
def test_namespace_and_service_selection_are_both_required(
    pool: str, namespace: str, labels: dict[str, str], admitted: bool
) -> None:
    outcome = allocate_from(namespace_and_service_selection(), pool, namespace, labels)
    if admitted:
        assert_from(outcome, pool)
    else:
        assert_incompatible(outcome, pool)


def test_service_allocation_with_only_a_priority_pins_the_pool_for_every_service() -> None:
    cfg = core.parse_resources(
        [
            pool_cr("open", ["10.0.0.0/24"]),
            pool_cr("ranked", ["10.1.0.0/24"], allocation={"priority": 5}),
        ]
    )
    assert_from(allocate_from(cfg, None, "anywhere"), "ranked")


# ---- errors, first error wins ---------------------------------------------------------


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        pytest.param(
            [pool_cr(None, ["10.0.0.0/24"])],
            "parsing address pool : missing pool name",
            id="no pool name",
        ),
        pytest.param(
            [pool_cr("pool1")],
            "parsing address pool pool1: pool has no prefixes defined",
            id="address pool with no address",
        ),
        pytest.param(
            [
                pool_cr("pool1", ["10.20.0.0/16"], allocation={"namespaces": ["ns", "ns"]}),
                namespace_cr("ns"),
            ],
            "parsing address pool pool1: duplicate definition in namespaces field",
            id="ip address pool with duplicate namespace selection",
        ),
        pytest.param(
            [
                pool_cr(
                    "pool1",
                    ["30.0.0.0/8"],
                    allocation={
                        "priority": 2,
                        "serviceSelectors": [
                            {
                                "matchExpressions": [
                                    {"key": "foo", "operator": "In", "values": ["bar", "bar"]}
                                ]
                            }
                        ],
                    },
                )
            ],
            "parsing address pool pool1: "
            'duplicate definition of match expression value in label selector "bar"',
            id="ip address pool with duplicate service selection",
        ),
        pytest.param(
            [
                pool_cr("pool1", ["10.0.0.0/24"]),
                pool_cr("pool2", ["10.1.0.0/24"]),
                pool_cr("pool1", ["10.2.0.0/24"]),
            ],
            'duplicate definition of pool "pool1"',
            id="duplicate pool definition",
        ),
        pytest.param(
            [pool_cr("pool1", ["10.0.0.0/8"]), pool_cr("pool2", ["10.0.0.0/8"])],
            'CIDR "10.0.0.0/8" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/8"',
            id="duplicate CIDRs",
        ),
        pytest.param(
            [pool_cr("pool1", ["10.0.0.0/8"]), pool_cr("pool2", ["10.0.0.0/16"])],
            'CIDR "10.0.0.0/16" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/8"',
            id="overlapping CIDRs",
        ),
        pytest.param(
            [
                pool_cr("pool1", ["10.0.0.0/8"]),
                pool_cr("pool2", ["10.0.0.0/16"]),
                pool_cr("pool3", ["bogus"]),
            ],
            'CIDR "10.0.0.0/16" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/8"',
            id="pools are checked one by one in resource order",
        ),
        pytest.param(
            [pool_cr("pool1", ["bogus"]), l2_cr("adv", pools=["pool1", "pool1"])],
            'parsing address pool pool1: invalid CIDR "bogus" in pool "pool1": '
            'invalid CIDR "bogus"',
            id="pool errors come before advertisement errors",
        ),
        pytest.param(
            [
                pool_cr("testPool", ["10.20.0.0/16"]),
                l2_cr("testAdv", pools=["testPool", "testPool"]),
            ],
            'duplicate definition of ipAddressPools "testPool"',
            id="duplicate ip address pools - in L2 adv",
        ),
    ],
)
def test_parse_resources_reports_the_first_error_in_metallb_wording(
    objects: list[dict[str, Any]], message: str
) -> None:
    assert resources_error(objects) == message


@pytest.mark.parametrize(("entry", "inner"), INVALID_ENTRIES)
def test_parse_resources_wraps_address_errors_with_the_pool_name(entry: str, inner: str) -> None:
    message = resources_error([pool_cr("pool1", [entry])])
    assert message == f'parsing address pool pool1: invalid CIDR "{entry}" in pool "pool1": {inner}'


@pytest.mark.parametrize(
    ("objects", "prefix"),
    [
        pytest.param(
            [
                pool_cr(
                    "pool1",
                    ["10.20.0.0/16"],
                    allocation={
                        "priority": 1,
                        "namespaceSelectors": [
                            {"matchLabels": {"foo": "bar"}},
                            {"matchLabels": {"foo": "bar"}},
                        ],
                    },
                ),
                namespace_cr("test-ns1", {"foo": "bar"}),
            ],
            "parsing address pool pool1: duplicate definition of namespaceSelectors ",
            id="ip address pool with duplicate namespace selectors",
        ),
        pytest.param(
            [
                pool_cr("pool1", ["10.20.0.0/16"], labels={"test": "pool1"}),
                l2_cr(
                    "adv1",
                    pool_selectors=[
                        {"matchLabels": {"test": "pool1"}},
                        {"matchLabels": {"test": "pool1"}},
                    ],
                ),
            ],
            "duplicate definition of ipAddressPoolSelectors ",
            id="use duplicate ip pool selectors - in L2 adv",
        ),
        pytest.param(
            [
                pool_cr("pool1", ["10.20.0.0/16"]),
                l2_cr(
                    "l2adv1",
                    pools=["pool1"],
                    node_selectors=[
                        {"matchLabels": {"first": "true"}},
                        {"matchLabels": {"first": "true"}},
                    ],
                ),
            ],
            "duplicate definition of nodeSelectors ",
            id="use duplicate match labels in node selectors",
        ),
    ],
)
def test_parse_resources_reports_duplicate_selectors(
    objects: list[dict[str, Any]], prefix: str
) -> None:
    # MetalLB prints the Go struct of the selector after the prefix; only the prefix is ours.
    assert resources_error(objects).startswith(prefix)


# ---- L2Advertisement -------------------------------------------------------------------


def pools_with_labels() -> list[dict[str, Any]]:
    return [
        pool_cr("pool1", ["10.20.0.0/16"], labels={"test": "pool1"}),
        pool_cr("pool2", ["30.0.0.0/16"], labels={"test": "pool2"}),
    ]


def test_ip_pool_selectors_resolve_to_pool_names() -> None:
    cfg = core.parse_resources(
        [*pools_with_labels(), l2_cr("l2adv1", pool_selectors=[{"matchLabels": {"test": "pool1"}}])]
    )
    adv = advertisement(cfg, "l2adv1")
    assert adv is not None
    assert tuple(adv.pools) == ("pool1",)


def test_ip_pool_names_and_selectors_add_up() -> None:
    cfg = core.parse_resources(
        [
            *pools_with_labels(),
            l2_cr("l2adv1", pools=["pool2"], pool_selectors=[{"matchLabels": {"test": "pool1"}}]),
        ]
    )
    adv = advertisement(cfg, "l2adv1")
    assert adv is not None
    assert set(adv.pools) == {"pool1", "pool2"}


def test_ip_pool_selectors_matching_nothing_drop_the_advertisement() -> None:
    # "use non existent label for ip pool selectors": applies to no pool, never to every pool.
    cfg = core.parse_resources(
        [
            *pools_with_labels(),
            l2_cr("l2adv1", pool_selectors=[{"matchLabels": {"test": "do-not-select-pool"}}]),
        ]
    )
    assert advertisement(cfg, "l2adv1") is None


def test_advertisement_naming_only_unknown_pools_never_covers_every_pool() -> None:
    cfg = core.parse_resources([*pools_with_labels(), l2_cr("l2adv1", pools=["nope"])])
    adv = advertisement(cfg, "l2adv1")
    assert adv is None or tuple(adv.pools) != ()


def test_advertisement_interfaces_are_kept() -> None:
    cfg = core.parse_resources(
        [
            *pools_with_labels(),
            l2_cr(
                "l2adv1",
                pool_selectors=[{"matchLabels": {"test": "pool1"}}],
                interfaces=["eth0"],
            ),
        ]
    )
    adv = advertisement(cfg, "l2adv1")
    assert adv is not None
    assert tuple(adv.interfaces) == ("eth0",)


def test_advertisement_node_selectors_are_kept() -> None:
    selector = {"matchLabels": {"first": "true"}}
    cfg = core.parse_resources(
        [*pools_with_labels(), l2_cr("l2adv1", pools=["pool1"], node_selectors=[selector])]
    )
    adv = advertisement(cfg, "l2adv1")
    assert adv is not None
    expected = core.L2Advertisement(name="l2adv1", pools=["pool1"], node_selectors=[selector])
    assert tuple(adv.node_selectors) == tuple(expected.node_selectors)


def test_advertisement_without_node_selectors_means_all_nodes() -> None:
    cfg = core.parse_resources([*pools_with_labels(), l2_cr("l2adv1")])
    adv = advertisement(cfg, "l2adv1")
    assert adv is not None
    assert tuple(adv.node_selectors) == ()


def test_pools_without_advertisement_still_allocate() -> None:
    cfg = core.parse_resources([pool_cr("pool1", ["10.20.0.0/16"])])
    assert_from(allocate_from(cfg, None, "ns"), "pool1")


# --------------------------------------------------------------------------------------
# parse_configmap: the v0.10 ConfigMap format


def test_configmap_using_all_layer2_features() -> None:
    cfg = core.parse_configmap(
        {
            "peers": [
                {
                    "my-asn": 42,
                    "peer-asn": 142,
                    "peer-address": "1.2.3.4",
                    "peer-port": 1179,
                    "hold-time": "180s",
                    "router-id": "10.20.30.40",
                },
                {
                    "my-asn": 100,
                    "peer-asn": 200,
                    "peer-address": "2.3.4.5",
                    "node-selectors": [
                        {
                            "match-labels": {"foo": "bar"},
                            "match-expressions": [
                                {"key": "bar", "operator": "In", "values": ["quux"]}
                            ],
                        }
                    ],
                },
            ],
            "bgp-communities": {"bar": "64512:1234"},
            "address-pools": [
                {
                    "name": "pool1",
                    "protocol": "layer2",
                    "addresses": ["10.20.0.0/16", "10.50.0.0/24"],
                    "avoid-buggy-ips": True,
                    "auto-assign": False,
                },
                {"name": "pool3", "protocol": "layer2", "addresses": POOL3_ADDRESSES},
                {"name": "pool4", "protocol": "layer2", "addresses": ["2001:db8::/64"]},
            ],
        }
    )
    got = [
        (p.name, tuple(p.cidrs), p.auto_assign, p.avoid_buggy_ips, p.service_allocation)
        for p in cfg.pools
    ]
    assert got == [
        ("pool1", nets("10.20.0.0/16", "10.50.0.0/24"), False, True, None),
        ("pool3", nets(*POOL3_CIDRS), True, False, None),
        ("pool4", nets("2001:db8::/64"), True, False, None),
    ]


def test_configmap_accepts_bgp_pools_as_address_pools() -> None:
    cfg = core.parse_configmap(
        {"address-pools": [{"name": "pool2", "protocol": "bgp", "addresses": ["30.0.0.0/8"]}]}
    )
    assert [(p.name, tuple(p.cidrs)) for p in cfg.pools] == [("pool2", nets("30.0.0.0/8"))]


def test_empty_configmap_is_an_empty_config() -> None:
    assert tuple(core.parse_configmap({}).pools) == ()


L2 = {"protocol": "layer2"}


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        pytest.param([{}], "parsing address pool #1: missing pool name", id="no pool name"),
        pytest.param(
            [{"name": "pool1", "protocol": "bgp"}],
            "parsing address pool #1: pool has no prefixes defined",
            id="address pool with no addresses",
        ),
        pytest.param(
            [{"name": "pool1"}],
            "parsing address pool #1: pool has no prefixes defined",
            id="address pool with no protocol (prefixes are checked first)",
        ),
        pytest.param(
            [{"name": "pool1", "protocol": "babel"}],
            "parsing address pool #1: pool has no prefixes defined",
            id="address pool with unknown protocol (prefixes are checked first)",
        ),
        pytest.param(
            [{"name": "pool1", "protocol": "babel", "addresses": ["10.0.0.0/24"]}],
            'parsing address pool #1: unknown protocol "babel"',
            id="unknown protocol",
        ),
        pytest.param(
            [{"name": "pool1", "addresses": ["10.0.0.0/24"]}],
            "parsing address pool #1: address pool is missing the protocol field",
            id="missing protocol",
        ),
        pytest.param(
            [{"name": "pool1", "addresses": ["100.200.300.400/24"]}],
            'parsing address pool #1: invalid CIDR "100.200.300.400/24" in pool "pool1": '
            'invalid CIDR "100.200.300.400/24"',
            id="invalid pool CIDR (checked before the protocol)",
        ),
        pytest.param(
            [{"name": "pool1", "addresses": ["1.2.3.0/33"]}],
            'parsing address pool #1: invalid CIDR "1.2.3.0/33" in pool "pool1": '
            'invalid CIDR "1.2.3.0/33"',
            id="invalid pool CIDR prefix length",
        ),
        pytest.param(
            [{"name": "pool1", **L2, "addresses": ["1.2.3.10-1.2.3.1"]}],
            'parsing address pool #1: invalid CIDR "1.2.3.10-1.2.3.1" in pool "pool1": '
            'invalid IP range "1.2.3.10-1.2.3.1": start IP "1.2.3.10" is after the end IP '
            '"1.2.3.1"',
            id="invalid pool CIDR, first address of the range is after the second",
        ),
        pytest.param(
            [
                {"name": "pool1", **L2, "addresses": ["10.0.0.0/24"]},
                {"name": "pool1", **L2, "addresses": ["10.1.0.0/24"]},
                {"name": "pool2", **L2, "addresses": ["10.2.0.0/24"]},
            ],
            'duplicate definition of pool "pool1"',
            id="duplicate pool definition",
        ),
        pytest.param(
            [
                {"name": "pool1", **L2, "addresses": ["10.0.0.0/8"]},
                {"name": "pool2", **L2, "addresses": ["10.0.0.0/8"]},
            ],
            'CIDR "10.0.0.0/8" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/8"',
            id="duplicate CIDRs",
        ),
        pytest.param(
            [
                {"name": "pool1", **L2, "addresses": ["10.0.0.0/8"]},
                {"name": "pool2", **L2, "addresses": ["10.0.0.0/16"]},
            ],
            'CIDR "10.0.0.0/16" in pool "pool2" overlaps with already defined CIDR "10.0.0.0/8"',
            id="overlapping CIDRs",
        ),
        pytest.param(
            [{"name": "pool1", **L2, "addresses": ["10.0.0.0/24"]}, {**L2, "addresses": ["x"]}],
            "parsing address pool #2: missing pool name",
            id="pools are numbered from one",
        ),
    ],
)
def test_configmap_reports_errors_in_v0_10_wording(
    pools: list[dict[str, Any]], message: str
) -> None:
    assert configmap_error({"address-pools": pools}) == message


def test_configmap_rejects_unknown_top_level_keys() -> None:
    message = configmap_error({"adress-pools": []})
    assert message.startswith("could not parse config: ")


def test_configmap_rejects_unknown_pool_keys() -> None:
    message = configmap_error(
        {"address-pools": [{"name": "p", **L2, "addresses": ["10.0.0.0/24"], "auto-asign": True}]}
    )
    assert message.startswith("could not parse config: ")
