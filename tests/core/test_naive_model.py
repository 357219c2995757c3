"""Worked examples for the naive allocator model, so that it can be trusted as an oracle.

Each expectation is worked out by hand from docs/design/metallb-behaviour.md and
docs/design/core-api.md, not by
running the model.
"""

from __future__ import annotations

from ipaddress import ip_address

from tests.support.naive_model import (
    ModelAllocation,
    ModelError,
    ModelPool,
    ModelRequest,
    ModelServiceAllocation,
    ModelUsage,
    NaiveAllocator,
    Outcome,
    Span,
)

HTTP = (("TCP", 80),)
HTTPS = (("TCP", 443),)


def ips_of(outcome: Outcome) -> list[str]:
    """The allocated addresses as strings; fails the test on an error outcome."""
    assert isinstance(outcome, ModelAllocation), outcome
    return [str(ip) for ip in outcome.ips]


def request(key: str, **fields: object) -> ModelRequest:
    """A request with one port unless told otherwise."""
    fields.setdefault("ports", HTTP)
    return ModelRequest(key, **fields)  # type: ignore[arg-type]


def test_range_is_walked_in_place_in_config_order() -> None:
    pool = ModelPool("p", ("10.0.0.8/31", "10.0.0.3 - 10.0.0.4", "10.0.0.0/32"))
    assert [str(ip) for ip in pool.addresses()] == [
        "10.0.0.8",
        "10.0.0.9",
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.0",
    ]


def test_cidr_host_bits_are_masked() -> None:
    assert Span.parse("10.20.30.40/30") == Span(
        ip_address("10.20.30.40"), ip_address("10.20.30.43")
    )


def test_first_fit_follows_cidr_order_not_address_order() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.8/30", "10.0.0.0/30"))])
    _, outcome = model.allocate(request("ns/a"))
    assert ips_of(outcome) == ["10.0.0.8"]


def test_network_address_is_handed_out_without_avoid_buggy() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    _, outcome = model.allocate(request("ns/a"))
    assert ips_of(outcome) == ["10.0.0.0"]


def test_avoid_buggy_skips_dot_zero_and_dot_255() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.254-10.0.1.1",), avoid_buggy_ips=True)])
    model, first = model.allocate(request("ns/a"))
    _, second = model.allocate(request("ns/b"))
    assert ips_of(first) + ips_of(second) == ["10.0.0.254", "10.0.1.1"]


def test_avoid_buggy_has_no_effect_on_ipv6() -> None:
    pool = ModelPool("p", ("2001:db8::/127",), avoid_buggy_ips=True)
    model = NaiveAllocator.empty([pool])
    _, outcome = model.allocate(request("ns/a", family="ipv6"))
    assert ips_of(outcome) == ["2001:db8::"]


def test_excluded_addresses_are_skipped() -> None:
    pool = ModelPool("p", ("10.0.0.0/29",), exclude=("10.0.0.0-10.0.0.1", "10.0.0.2/32"))
    _, outcome = NaiveAllocator.empty([pool]).allocate(request("ns/a"))
    assert ips_of(outcome) == ["10.0.0.3"]


def test_compatible_sharing_keys_share_an_address() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, first = model.allocate(request("ns/a", sharing_key="s"))
    _, second = model.allocate(request("ns/b", sharing_key="s", ports=HTTPS))
    assert ips_of(first) == ips_of(second) == ["10.0.0.0"]


def test_overlapping_port_moves_a_sharer_to_the_next_address() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, _ = model.allocate(request("ns/a", sharing_key="s"))
    _, second = model.allocate(request("ns/b", sharing_key="s"))
    assert ips_of(second) == ["10.0.0.1"]


def test_different_backend_keys_do_not_share() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, _ = model.allocate(request("ns/a", sharing_key="s", backend_key="app=a"))
    _, second = model.allocate(request("ns/b", sharing_key="s", backend_key="app=b", ports=HTTPS))
    assert ips_of(second) == ["10.0.0.1"]


def test_empty_sharing_keys_do_not_share() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, _ = model.allocate(request("ns/a"))
    _, second = model.allocate(request("ns/b", ports=HTTPS))
    assert ips_of(second) == ["10.0.0.1"]


def test_requested_ip_held_by_an_incompatible_key_is_a_sharing_conflict() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, _ = model.allocate(request("ns/a", sharing_key="s"))
    after, outcome = model.allocate(
        request("ns/b", sharing_key="t", ports=HTTPS, requested_ips=("10.0.0.0",))
    )
    assert outcome == ModelError(
        "SharingConflict",
        'can\'t change sharing key for "ns/b", address also in use by ns/a',
    )
    assert after is model


def test_requested_ip_with_a_taken_port_is_a_port_conflict() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, _ = model.allocate(request("ns/a", sharing_key="s"))
    _, outcome = model.allocate(request("ns/b", sharing_key="s", requested_ips=("10.0.0.0",)))
    assert outcome == ModelError("PortConflict", 'port TCP/80 is already in use on "10.0.0.0"')


def test_requested_ip_outside_every_pool_is_not_allowed() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    _, outcome = model.allocate(request("ns/a", requested_ips=("10.0.1.4",)))
    assert outcome == ModelError("NotAllowedByConfig", '["10.0.1.4"] is not allowed in config')


def test_requested_buggy_ip_is_not_allowed() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",), avoid_buggy_ips=True)])
    _, outcome = model.allocate(request("ns/a", requested_ips=("10.0.0.0",)))
    assert outcome == ModelError("NotAllowedByConfig", '["10.0.0.0"] is not allowed in config')


def test_requested_pair_split_across_pools_is_not_allowed() -> None:
    pools = [ModelPool("v4", ("10.0.0.0/30",)), ModelPool("v6", ("2001:db8::/126",))]
    _, outcome = NaiveAllocator.empty(pools).allocate(
        request(
            "ns/a",
            family="dual",
            policy="RequireDualStack",
            requested_ips=("10.0.0.1", "2001:db8::1"),
        )
    )
    assert outcome == ModelError(
        "NotAllowedByConfig", '["10.0.0.1" "2001:db8::1"] is not allowed in config'
    )


def test_requested_ips_keep_the_given_order_and_ignore_auto_assign() -> None:
    pool = ModelPool("p", ("10.0.0.0/30", "2001:db8::/126"), auto_assign=False)
    _, outcome = NaiveAllocator.empty([pool]).allocate(
        request(
            "ns/a",
            family="dual",
            policy="RequireDualStack",
            requested_ips=("2001:db8::2", "10.0.0.3"),
        )
    )
    assert ips_of(outcome) == ["2001:db8::2", "10.0.0.3"]


def test_requested_ip_in_a_pool_pinned_elsewhere_is_not_compatible() -> None:
    pinned = ModelServiceAllocation(priority=1, namespaces=frozenset({"ns1"}))
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",), service_allocation=pinned)])
    _, outcome = model.allocate(request("ns2/a", namespace="ns2", requested_ips=("10.0.0.1",)))
    assert outcome == ModelError("PoolNotCompatible", "pool p not compatible for ip assignment")


def test_auto_assign_false_pool_is_skipped_by_automatic_allocation() -> None:
    pools = [
        ModelPool("manual", ("10.0.0.0/30",), auto_assign=False),
        ModelPool("auto", ("10.0.1.0/30",)),
    ]
    _, outcome = NaiveAllocator.empty(pools).allocate(request("ns/a"))
    assert ips_of(outcome) == ["10.0.1.0"]


def test_requested_pool_ignores_auto_assign() -> None:
    pools = [ModelPool("manual", ("10.0.0.0/30",), auto_assign=False)]
    _, outcome = NaiveAllocator.empty(pools).allocate(request("ns/a", requested_pool="manual"))
    assert isinstance(outcome, ModelAllocation)
    assert (ips_of(outcome), outcome.pool) == (["10.0.0.0"], "manual")


def test_unknown_requested_pool() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    _, outcome = model.allocate(request("ns/a", requested_pool="nope"))
    assert outcome == ModelError("UnknownPool", 'unknown pool "nope"')


def test_exhausted_family_of_requested_pool_is_no_available_ips_in_pool() -> None:
    model = NaiveAllocator.empty([ModelPool("d", ("10.0.0.0/32", "2001:db8::/127"))])
    model, _ = model.allocate(request("ns/a", requested_pool="d"))
    _, outcome = model.allocate(request("ns/b", requested_pool="d"))
    assert outcome == ModelError("NoAvailableIPs", "no available IPs in pool d")


def test_exhausted_pools_give_no_available_ips() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/32",))])
    model, _ = model.allocate(request("ns/a"))
    after, outcome = model.allocate(request("ns/b"))
    assert outcome == ModelError("NoAvailableIPs", "no available IPs")
    assert after is model


def test_pinned_pools_are_tried_by_priority_then_config_order() -> None:
    def pinned(priority: int) -> ModelServiceAllocation:
        return ModelServiceAllocation(priority=priority, namespaces=frozenset({"ns1"}))

    pools = [
        ModelPool("free", ("10.0.9.0/30",)),
        ModelPool("zero", ("10.0.0.0/30",), service_allocation=pinned(0)),
        ModelPool("two-a", ("10.0.2.0/30",), service_allocation=pinned(2)),
        ModelPool("two-b", ("10.0.3.0/30",), service_allocation=pinned(2)),
        ModelPool("one", ("10.0.1.0/32",), service_allocation=pinned(1)),
    ]
    model = NaiveAllocator.empty(pools)
    assert [pool.name for pool in model.pinned_pools(request("ns1/a", namespace="ns1"))] == [
        "one",
        "two-a",
        "two-b",
        "zero",
    ]
    model, first = model.allocate(request("ns1/a", namespace="ns1"))
    _, second = model.allocate(request("ns1/b", namespace="ns1"))
    assert (ips_of(first), ips_of(second)) == (["10.0.1.0"], ["10.0.2.0"])


def test_other_namespaces_skip_pinned_pools() -> None:
    pinned = ModelServiceAllocation(priority=1, namespaces=frozenset({"ns1"}))
    pools = [
        ModelPool("pinned", ("10.0.0.0/30",), service_allocation=pinned),
        ModelPool("free", ("10.0.9.0/30",)),
    ]
    _, outcome = NaiveAllocator.empty(pools).allocate(request("ns2/a", namespace="ns2"))
    assert ips_of(outcome) == ["10.0.9.0"]


def test_service_selector_pins_matching_services_only() -> None:
    gold = ModelServiceAllocation(service_selectors=({"matchLabels": {"tier": "gold"}},))
    pools = [
        ModelPool("gold", ("10.0.0.0/30",), service_allocation=gold),
        ModelPool("free", ("10.0.9.0/30",)),
    ]
    model = NaiveAllocator.empty(pools)
    model, golden = model.allocate(request("ns/a", labels={"tier": "gold"}))
    _, plain = model.allocate(request("ns/b", labels={"tier": "bronze"}))
    assert (ips_of(golden), ips_of(plain)) == (["10.0.0.0"], ["10.0.9.0"])


def test_full_pinned_pool_falls_back_to_auto_assign_pools() -> None:
    pinned = ModelServiceAllocation(priority=1, namespaces=frozenset({"ns1"}))
    pools = [
        ModelPool("pinned", ("10.0.0.0/32",), service_allocation=pinned),
        ModelPool("free", ("10.0.9.0/30",)),
    ]
    model = NaiveAllocator.empty(pools)
    model, _ = model.allocate(request("ns1/a", namespace="ns1"))
    _, outcome = model.allocate(request("ns1/b", namespace="ns1"))
    assert ips_of(outcome) == ["10.0.9.0"]


def test_prefer_dual_stack_takes_a_dual_pool_over_earlier_single_pools() -> None:
    pools = [
        ModelPool("v4", ("10.0.0.0/30",)),
        ModelPool("v6", ("2001:db8::/126",)),
        ModelPool("dual", ("2001:db8:1::/126", "10.0.1.0/30")),
    ]
    _, outcome = NaiveAllocator.empty(pools).allocate(
        request("ns/a", family="dual", policy="PreferDualStack", primary_family="ipv6")
    )
    # IPv4 first in automatic dual-stack results, whatever the primary family.
    assert ips_of(outcome) == ["10.0.1.0", "2001:db8:1::"]


def test_prefer_dual_stack_without_dual_pool_takes_the_primary_family() -> None:
    pools = [ModelPool("v4", ("10.0.0.0/30",)), ModelPool("v6", ("2001:db8::/126",))]
    _, outcome = NaiveAllocator.empty(pools).allocate(
        request("ns/a", family="dual", policy="PreferDualStack", primary_family="ipv6")
    )
    assert ips_of(outcome) == ["2001:db8::"]


def test_require_dual_stack_without_dual_pool_gets_no_available_ips() -> None:
    pools = [ModelPool("v4", ("10.0.0.0/30",)), ModelPool("v6", ("2001:db8::/126",))]
    _, outcome = NaiveAllocator.empty(pools).allocate(
        request("ns/a", family="dual", policy="RequireDualStack")
    )
    assert outcome == ModelError("NoAvailableIPs", "no available IPs")


def test_require_dual_stack_from_a_single_family_pool_names_the_pool() -> None:
    model = NaiveAllocator.empty([ModelPool("v4", ("10.0.0.0/30",))])
    _, outcome = model.allocate(
        request("ns/a", family="dual", policy="RequireDualStack", requested_pool="v4")
    )
    assert outcome == ModelError("NoAvailableIPs", "no available IPs in pool v4 for dual IPFamily")


def test_existing_allocation_survives_auto_assign_turning_off() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, first = model.allocate(request("ns/a"))
    model, _ = model.reload([ModelPool("p", ("10.0.0.0/30",), auto_assign=False)])
    _, again = model.allocate(request("ns/a", ports=HTTPS))
    assert isinstance(again, ModelAllocation)
    assert (ips_of(again), again.ports) == (ips_of(first), HTTPS)


def test_changing_sharing_key_of_a_shared_address_fails_and_keeps_state() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, _ = model.allocate(request("ns/a", sharing_key="s"))
    model, _ = model.allocate(request("ns/b", sharing_key="s", ports=HTTPS))
    after, outcome = model.allocate(request("ns/a", sharing_key="t"))
    assert outcome == ModelError(
        "SharingConflict",
        'can\'t change sharing key for "ns/a", address also in use by ns/b',
    )
    assert after is model


def test_sole_holder_may_change_its_sharing_key() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, _ = model.allocate(request("ns/a", sharing_key="s"))
    _, outcome = model.allocate(request("ns/a", sharing_key="t"))
    assert isinstance(outcome, ModelAllocation)
    assert (ips_of(outcome), outcome.sharing_key) == (["10.0.0.0"], "t")


def test_released_address_is_reused_lowest_first() -> None:
    model = NaiveAllocator.empty([ModelPool("p", ("10.0.0.0/30",))])
    model, _ = model.allocate(request("ns/a"))
    model, _ = model.allocate(request("ns/b"))
    model = model.release("ns/a")
    _, outcome = model.allocate(request("ns/c"))
    assert ips_of(outcome) == ["10.0.0.0"]


def test_reload_drops_what_no_pool_owns_and_moves_the_rest() -> None:
    model = NaiveAllocator.empty([ModelPool("old", ("10.0.0.0/29",))])
    model, _ = model.allocate(request("ns/a"))  # 10.0.0.0
    model, _ = model.allocate(request("ns/b"))  # 10.0.0.1
    model, _ = model.allocate(request("ns/c"))  # 10.0.0.2
    new_pools = [ModelPool("new", ("10.0.0.0/30",), avoid_buggy_ips=True, exclude=("10.0.0.2",))]
    model, dropped = model.reload(new_pools)
    assert [alloc.key for alloc in dropped] == ["ns/a", "ns/c"]
    assert {key: alloc.pool for key, alloc in model.allocations.items()} == {"ns/b": "new"}


def test_usage_counts_a_shared_address_once_and_skips_buggy_and_excluded() -> None:
    pool = ModelPool(
        "p", ("10.0.0.0/29", "2001:db8::/126"), avoid_buggy_ips=True, exclude=("10.0.0.7",)
    )
    model = NaiveAllocator.empty([pool])
    model, _ = model.allocate(request("ns/a", sharing_key="s"))
    model, _ = model.allocate(request("ns/b", sharing_key="s", ports=HTTPS))
    model, _ = model.allocate(request("ns/c", family="ipv6"))
    # 8 IPv4 addresses minus .0 (buggy) and .7 (excluded); 4 IPv6 addresses.
    assert model.usage() == {"p": ModelUsage(1, 1, 5, 3)}


def test_requested_pool_the_key_is_not_in_moves_it() -> None:
    pools = [ModelPool("a", ("10.0.0.0/30",)), ModelPool("b", ("10.0.1.0/30",))]
    model = NaiveAllocator.empty(pools)
    model, _ = model.allocate(request("ns/a"))
    model, moved = model.allocate(request("ns/a", requested_pool="b"))
    assert isinstance(moved, ModelAllocation)
    assert (ips_of(moved), moved.pool) == (["10.0.1.0"], "b")
    assert model.holders(ip_address("10.0.0.0")) == []


def test_failed_move_keeps_what_the_key_held() -> None:
    pools = [ModelPool("a", ("10.0.0.0/30",)), ModelPool("b", ("10.0.1.0/32",))]
    model = NaiveAllocator.empty(pools)
    model, _ = model.allocate(request("ns/b", requested_pool="b"))
    model, held = model.allocate(request("ns/a"))
    after, outcome = model.allocate(request("ns/a", requested_pool="b"))
    assert outcome == ModelError("NoAvailableIPs", "no available IPs in pool b")
    assert after.allocations["ns/a"] == held


def test_requested_pool_with_the_held_family_changed_is_a_family_mismatch() -> None:
    model = NaiveAllocator.empty([ModelPool("d", ("10.0.0.0/30", "2001:db8::/126"))])
    model, _ = model.allocate(request("ns/a", requested_pool="d"))
    _, outcome = model.allocate(
        request("ns/a", family="ipv6", primary_family="ipv6", requested_pool="d")
    )
    assert outcome == ModelError(
        "FamilyMismatch", "IP for wrong family assigned alloc ipv4 service family ipv6"
    )


def test_requested_ips_of_another_family_are_a_family_mismatch() -> None:
    model = NaiveAllocator.empty([ModelPool("d", ("10.0.0.0/30", "2001:db8::/126"))])
    _, outcome = model.allocate(request("ns/a", family="ipv6", requested_ips=("10.0.0.1",)))
    assert outcome == ModelError(
        "FamilyMismatch",
        'requested loadBalancer IP(s) ["10.0.0.1"] does not match the ipFamily of the service',
    )


def test_requested_ips_outside_the_requested_pool_are_refused() -> None:
    pools = [ModelPool("a", ("10.0.0.0/30",)), ModelPool("b", ("10.0.1.0/30",))]
    model = NaiveAllocator.empty(pools)
    after, outcome = model.allocate(
        request("ns/a", requested_ips=("10.0.0.1",), requested_pool="b")
    )
    assert outcome == ModelError(
        "InvalidRequest",
        'requested loadBalancer IP(s) ["10.0.0.1"] is not compatible with requested address pool b',
    )
    assert after is model


def test_priority_only_service_allocation_pins_the_pool_for_everyone() -> None:
    pools = [
        ModelPool("free", ("10.0.9.0/30",)),
        ModelPool("first", ("10.0.0.0/30",), service_allocation=ModelServiceAllocation(priority=5)),
    ]
    _, outcome = NaiveAllocator.empty(pools).allocate(request("ns/a", namespace="ns"))
    assert ips_of(outcome) == ["10.0.0.0"]
