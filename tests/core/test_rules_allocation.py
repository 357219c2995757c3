"""The rules of allocation, one example per rule.

Each test documents one rule of docs/design/core-api.md (precedence, Decisions 1, 2, 6 and 7,
immutable
states, reload, orphans, release, pool usage) or docs/design/metallb-behaviour.md §4-§12 that the
MetalLB-derived tables in ``test_metallb_allocator.py`` do not already pin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import metallb_core as core
from tests.support.builders import IP, Family, Policy, ips, pool, state_of


def request(
    key: str,
    family: Family = "ipv4",
    *,
    policy: Policy = "SingleStack",
    ports: Sequence[int] = (),
    sharing: str = "",
    requested: Sequence[str] = (),
    pool: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> core.ServiceRequest:
    return core.ServiceRequest(
        key=key,
        family=family,
        policy=policy,
        ports=[core.Port(protocol="TCP", port=p) for p in ports],
        sharing_key=sharing,
        requested_ips=list(requested),
        requested_pool=pool,
        labels=dict(labels or {}),
    )


def ok(state: core.State, req: core.ServiceRequest) -> tuple[core.State, core.Allocation]:
    new, outcome = core.allocate(state, req)
    assert isinstance(outcome, core.Allocation), outcome
    return new, outcome


def refused(state: core.State, req: core.ServiceRequest) -> core.AllocationError:
    new, outcome = core.allocate(state, req)
    assert isinstance(outcome, core.AllocationError), outcome
    assert new is state
    return outcome


def resources(*objects: dict[str, Any]) -> core.Config:
    return core.parse_resources(list(objects))


def pool_cr(
    name: str, addresses: list[str], allocation: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"addresses": addresses}
    if allocation is not None:
        spec["serviceAllocation"] = allocation
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": spec,
    }


def namespace_cr(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


# ---- lowest first, in CIDR order, per family ---------------------------------------------

INTERLEAVED = ("10.0.0.8/31", "1000::8/127", "10.0.0.0/31", "1000::/127")


def test_ipv4_addresses_are_handed_out_lowest_first_in_cidr_order() -> None:
    state = state_of(pool("p", *INTERLEAVED))
    got: list[IP] = []
    for key in ("ns/a", "ns/b", "ns/c", "ns/d"):
        state, held = ok(state, request(key))
        got.extend(held.ips)
    assert tuple(got) == ips("10.0.0.8", "10.0.0.9", "10.0.0.0", "10.0.0.1")


def test_ipv6_addresses_follow_the_ipv6_cidrs_in_config_order() -> None:
    state = state_of(pool("p", *INTERLEAVED))
    got: list[IP] = []
    for key in ("ns/a", "ns/b", "ns/c", "ns/d"):
        state, held = ok(state, request(key, "ipv6"))
        got.extend(held.ips)
    assert tuple(got) == ips("1000::8", "1000::9", "1000::", "1000::1")


def test_dual_stack_takes_the_first_free_address_of_each_family() -> None:
    _, held = ok(
        state_of(pool("p", *INTERLEAVED)), request("ns/a", "dual", policy="PreferDualStack")
    )
    assert held.ips == ips("10.0.0.8", "1000::8")


def test_requested_address_leaves_lower_addresses_to_automatic_allocation() -> None:
    state, _ = ok(state_of(pool("p", "10.0.0.0/30")), request("ns/x", requested=["10.0.0.1"]))
    got: list[IP] = []
    for key in ("ns/a", "ns/b", "ns/c"):
        state, held = ok(state, request(key))
        got.extend(held.ips)
    assert tuple(got) == ips("10.0.0.0", "10.0.0.2", "10.0.0.3")


# ---- precedence: requested IPs, requested pool, pinned pools, fallback --------------------


def test_requested_dual_stack_pair_may_come_from_an_auto_assign_false_pool() -> None:
    state = state_of(pool("manual", "10.1.0.0/30", "1001::/126", auto_assign=False))
    _, held = ok(
        state, request("ns/a", "dual", policy="RequireDualStack", requested=["10.1.0.3", "1001::2"])
    )
    assert (held.pool, held.ips) == ("manual", ips("10.1.0.3", "1001::2"))


def test_requested_ips_win_over_pinned_pools() -> None:
    state = state_of(pool("pinned", "10.1.0.0/30", namespaces=["ns"]), pool("open", "10.0.0.0/30"))
    _, held = ok(state, request("ns/a", requested=["10.0.0.3"]))
    assert (held.pool, held.ips) == ("open", ips("10.0.0.3"))


def test_requested_pool_is_used_although_an_earlier_pool_has_room() -> None:
    state = state_of(pool("first", "10.0.0.0/30"), pool("second", "10.1.0.0/30"))
    _, held = ok(state, request("ns/a", pool="second"))
    assert (held.pool, held.ips) == ("second", ips("10.1.0.0"))


def test_requested_pool_wins_over_pinned_pools() -> None:
    state = state_of(
        pool("pinned", "10.1.0.0/30", priority=1, namespaces=["ns"]), pool("open", "10.0.0.0/30")
    )
    _, held = ok(state, request("ns/a", pool="open"))
    assert held.pool == "open"


def test_every_pinned_pool_is_tried_by_priority_before_the_fallback() -> None:
    state = state_of(
        pool("open", "10.0.0.0/30"),
        pool("second", "10.2.0.0/32", priority=2, namespaces=["ns"]),
        pool("first", "10.1.0.0/32", priority=1, namespaces=["ns"]),
    )
    got: list[str] = []
    for key in ("ns/a", "ns/b", "ns/c"):
        state, held = ok(state, request(key))
        got.append(held.pool)
    assert got == ["first", "second", "open"]


def test_pinned_pools_without_priority_tie_in_config_order() -> None:
    # Decision 1: config order, not name order, and not random.
    state = state_of(
        pool("zeta", "10.2.0.0/32", namespaces=["ns"]),
        pool("alpha", "10.1.0.0/32", namespaces=["ns"]),
    )
    state, first = ok(state, request("ns/a"))
    _, second = ok(state, request("ns/b"))
    assert (first.pool, second.pool) == ("zeta", "alpha")


def test_pinned_pools_full_and_no_fallback_is_no_available_ips() -> None:
    state, _ = ok(state_of(pool("pinned", "10.1.0.0/32", namespaces=["ns"])), request("ns/a"))
    err = refused(state, request("ns/b"))
    assert isinstance(err, core.NoAvailableIPs)
    assert err.message == "no available IPs"


# ---- Decision 6: namespaceSelectors that matched nothing ----------------------------------


def red_pool_with_selectors() -> core.Config:
    """Pool ``red`` for namespaces labelled team=red (none exist) and services app=web."""
    return resources(
        pool_cr(
            "red",
            ["10.1.0.0/30"],
            {
                "namespaceSelectors": [{"matchLabels": {"team": "red"}}],
                "serviceSelectors": [{"matchLabels": {"app": "web"}}],
            },
        ),
        pool_cr("open", ["10.0.0.0/30"]),
        namespace_cr("blue", {"team": "blue"}),
    )


def test_unmatched_namespace_selectors_still_restrict_a_pool_with_service_selectors() -> None:
    # MetalLB drops the namespace restriction, so "red" would be pinned for app=web and win
    # over the unrestricted "open"; metallb_core allows no namespace, so "open" serves.
    state = core.State.empty(red_pool_with_selectors())
    _, held = ok(state, request("blue/a", labels={"app": "web"}))
    assert held.pool == "open"


def test_unmatched_namespace_selectors_refuse_the_pool_when_requested_by_name() -> None:
    state = core.State.empty(red_pool_with_selectors())
    err = refused(state, request("blue/a", labels={"app": "web"}, pool="red"))
    assert isinstance(err, core.PoolNotCompatible)
    assert err.message == "pool red not compatible for ip assignment"


def test_unmatched_namespace_selectors_refuse_requested_ips_of_the_pool() -> None:
    state = core.State.empty(red_pool_with_selectors())
    err = refused(state, request("blue/a", labels={"app": "web"}, requested=["10.1.0.1"]))
    assert isinstance(err, core.PoolNotCompatible)


def test_listed_namespaces_stay_allowed_when_namespace_selectors_match_nothing() -> None:
    cfg = resources(
        pool_cr(
            "red",
            ["10.1.0.0/30"],
            {"namespaces": ["blue"], "namespaceSelectors": [{"matchLabels": {"team": "red"}}]},
        ),
        namespace_cr("blue", {"team": "blue"}),
    )
    _, held = ok(core.State.empty(cfg), request("blue/a"))
    assert held.pool == "red"


# ---- sharing ------------------------------------------------------------------------------


def test_sharing_conflict_names_every_other_holder() -> None:
    state = state_of(pool("p", "10.0.0.0/30"))
    state, _ = ok(state, request("ns/b", sharing="k", ports=[1]))
    state, _ = ok(state, request("ns/a", sharing="k", ports=[2]))
    err = refused(state, request("ns/c", sharing="other", requested=["10.0.0.0"]))
    assert isinstance(err, core.SharingConflict)
    # MetalLB lists the holders in map order: either order is its wording.
    assert err.message in {
        f'can\'t change sharing key for "ns/c", address also in use by {holders}'
        for holders in ("ns/a,ns/b", "ns/b,ns/a")
    }


def test_dual_stack_services_with_one_key_share_both_addresses() -> None:
    state = state_of(pool("p", "10.0.0.0/30", "1000::/126"))
    state, first = ok(
        state, request("ns/a", "dual", policy="RequireDualStack", sharing="k", ports=[80])
    )
    _, second = ok(
        state, request("ns/b", "dual", policy="RequireDualStack", sharing="k", ports=[443])
    )
    assert second.ips == first.ips == ips("10.0.0.0", "1000::")


def test_shared_dual_stack_addresses_count_once_per_family() -> None:
    state = state_of(pool("p", "10.0.0.0/30", "1000::/126"))
    for key, port in (("ns/a", 80), ("ns/b", 443)):
        state, _ = ok(
            state, request(key, "dual", policy="RequireDualStack", sharing="k", ports=[port])
        )
    assert core.pool_usage(state)["p"] == core.PoolUsage(
        assigned_ipv4=1, assigned_ipv6=1, available_ipv4=3, available_ipv6=3
    )


def test_port_clash_on_one_family_moves_only_that_family() -> None:
    state = state_of(pool("p", "10.0.0.0/30", "1000::/126"))
    state, _ = ok(state, request("ns/a", "ipv6", sharing="k", ports=[80]))
    _, held = ok(state, request("ns/b", "dual", policy="RequireDualStack", sharing="k", ports=[80]))
    assert held.ips == ips("10.0.0.0", "1000::1")


# ---- dual stack from a requested pool, and Decision 2 -------------------------------------


def mixed_pool_with_ipv6_full() -> core.State:
    """Pool ``m``: 10.0.0.0/30 free, its only IPv6 address 1000:: held by ``ns/x``."""
    state, _ = ok(state_of(pool("m", "10.0.0.0/30", "1000::/128")), request("ns/x", "ipv6"))
    return state


def test_exhausted_ipv6_family_of_a_requested_pool_is_no_available_ips_in_pool() -> None:
    # Decision 2: not MetalLB's '["<nil>"] is not allowed in config'.
    err = refused(mixed_pool_with_ipv6_full(), request("ns/a", "ipv6", pool="m"))
    assert isinstance(err, core.NoAvailableIPs)
    assert err.message == "no available IPs in pool m"


def test_exhausted_family_of_an_automatic_request_is_no_available_ips() -> None:
    # No pool is named: MetalLB masks the pool choice error, with or without Decision 2.
    err = refused(mixed_pool_with_ipv6_full(), request("ns/a", "ipv6"))
    assert isinstance(err, core.NoAvailableIPs)
    assert err.message == "no available IPs"


def test_require_dual_stack_from_a_requested_pool_with_one_family_full_names_the_pool() -> None:
    err = refused(
        mixed_pool_with_ipv6_full(), request("ns/a", "dual", policy="RequireDualStack", pool="m")
    )
    assert isinstance(err, core.NoAvailableIPs)
    assert err.message == "no available IPs in pool m for dual IPFamily"


def test_prefer_dual_stack_from_a_requested_pool_with_one_family_full_takes_the_other() -> None:
    _, held = ok(
        mixed_pool_with_ipv6_full(), request("ns/a", "dual", policy="PreferDualStack", pool="m")
    )
    assert (held.pool, held.ips) == ("m", ips("10.0.0.0"))


# ---- Decision 7: requested IPs keep the user's order --------------------------------------


def test_requested_ipv6_first_order_survives_a_repeated_request() -> None:
    state = state_of(pool("p", "10.0.0.0/30", "1000::/126"))
    req = request("ns/a", "dual", policy="RequireDualStack", requested=["1000::2", "10.0.0.2"])
    state, _ = ok(state, req)
    _, again = ok(state, req)
    assert again.ips == ips("1000::2", "10.0.0.2")


def test_requested_ipv6_first_order_survives_a_reload() -> None:
    state = state_of(pool("p", "10.0.0.0/30", "1000::/126"))
    req = request("ns/a", "dual", policy="RequireDualStack", requested=["1000::2", "10.0.0.2"])
    state, _ = ok(state, req)
    new, _ = core.reload(state, core.Config(pools=[pool("q", "10.0.0.0/30", "1000::/126")]))
    held = new.allocation("ns/a")
    assert held is not None
    assert held.ips == ips("1000::2", "10.0.0.2")


# ---- an existing allocation: kept when valid, moved on a new request ----------------------


def two_pools_with_a_holding_b() -> core.State:
    """``ns/a`` holds 10.1.0.0 from the auto-assign-false pool ``b``; ``a`` is unused."""
    state = state_of(pool("a", "10.0.0.0/30"), pool("b", "10.1.0.0/30", auto_assign=False))
    state, _ = ok(state, request("ns/a", pool="b"))
    return state


def test_changing_the_requested_pool_moves_the_allocation() -> None:
    state, held = ok(two_pools_with_a_holding_b(), request("ns/a", pool="a"))
    assert (held.pool, held.ips) == ("a", ips("10.0.0.0"))
    assert core.pool_usage(state)["b"].assigned_ipv4 == 0


def test_dropping_the_requested_pool_keeps_the_allocation() -> None:
    # MetalLB's controller does not clear a Service whose pool annotation was removed.
    _, held = ok(two_pools_with_a_holding_b(), request("ns/a"))
    assert (held.pool, held.ips) == ("b", ips("10.1.0.0"))


def test_requesting_the_current_pool_keeps_the_address_even_if_a_lower_one_is_free() -> None:
    state = state_of(pool("p", "10.0.0.0/30"))
    state, _ = ok(state, request("ns/x"))
    state, _ = ok(state, request("ns/a"))
    state = core.release(state, "ns/x")
    _, held = ok(state, request("ns/a", pool="p"))
    assert held.ips == ips("10.0.0.1")


def test_changing_the_requested_ips_moves_the_allocation_and_frees_the_old_address() -> None:
    state, _ = ok(state_of(pool("p", "10.0.0.0/30")), request("ns/a", requested=["10.0.0.1"]))
    state, held = ok(state, request("ns/a", requested=["10.0.0.3"]))
    _, other = ok(state, request("ns/b", requested=["10.0.0.1"]))
    assert (held.ips, other.ips) == (ips("10.0.0.3"), ips("10.0.0.1"))


def test_a_refused_move_keeps_the_current_allocation() -> None:
    state = two_pools_with_a_holding_b()
    refused(state, request("ns/a", requested=["9.9.9.9"]))
    held = state.allocation("ns/a")
    assert held is not None
    assert (held.pool, held.ips) == ("b", ips("10.1.0.0"))


def test_existing_allocation_is_kept_when_its_pool_stops_being_auto_assign() -> None:
    state, _ = ok(state_of(pool("p", "10.0.0.0/30")), request("ns/a"))
    state, _ = core.reload(state, core.Config(pools=[pool("p", "10.0.0.0/30", auto_assign=False)]))
    _, held = ok(state, request("ns/a"))
    assert (held.pool, held.ips) == ("p", ips("10.0.0.0"))


def test_existing_allocation_the_pool_no_longer_admits_is_refused_not_moved() -> None:
    # MetalLB re-Assigns the held IPs and returns Assign's error; the controller then clears.
    state, _ = ok(state_of(pool("p", "10.0.0.0/30"), pool("open", "10.9.0.0/30")), request("ns/a"))
    state, _ = core.reload(
        state,
        core.Config(
            pools=[pool("p", "10.0.0.0/30", namespaces=["other"]), pool("open", "10.9.0.0/30")]
        ),
    )
    err = refused(state, request("ns/a"))
    assert isinstance(err, core.PoolNotCompatible)
    assert err.message == "pool p not compatible for ip assignment"


# ---- states are values --------------------------------------------------------------------


def test_failed_allocation_returns_the_input_state_object() -> None:
    state = state_of(pool("p", "10.0.0.0/30"))
    new, outcome = core.allocate(state, request("ns/a", pool="missing"))
    assert isinstance(outcome, core.UnknownPool)
    assert new is state


def test_every_earlier_state_is_unchanged_by_later_transitions() -> None:
    s0 = state_of(pool("p", "10.0.0.0/30"))
    s1, _ = ok(s0, request("ns/a"))
    s2, _ = ok(s1, request("ns/b", ports=[80], sharing="k"))
    s3 = core.release(s1, "ns/a")
    s4, _ = core.reload(s2, core.Config(pools=[pool("q", "10.0.0.0/31")]))
    assert dict(s0.allocations) == {}
    assert list(s1.allocations) == ["ns/a"]
    assert sorted(s2.allocations) == ["ns/a", "ns/b"]
    assert dict(s3.allocations) == {}
    assert {k: a.pool for k, a in s4.allocations.items()} == {"ns/a": "q", "ns/b": "q"}
    assert [p.name for p in s2.config.pools] == ["p"]


def test_releasing_twice_is_the_same_as_releasing_once() -> None:
    state, _ = ok(state_of(pool("p", "10.0.0.0/30")), request("ns/a"))
    once = core.release(state, "ns/a")
    assert core.release(once, "ns/a") == once


# ---- reload -------------------------------------------------------------------------------


def test_reload_drops_a_dual_stack_allocation_whose_addresses_land_in_two_pools() -> None:
    state, _ = ok(
        state_of(pool("p", "10.0.0.0/30", "1000::/126")),
        request("ns/a", "dual", policy="RequireDualStack"),
    )
    split = core.Config(pools=[pool("v4", "10.0.0.0/30"), pool("v6", "1000::/126")])
    new, dropped = core.reload(state, split)
    assert [a.key for a in dropped] == ["ns/a"]
    assert new.allocation("ns/a") is None


def test_reload_keeps_an_allocation_the_pool_no_longer_admits() -> None:
    # Compatibility is re-checked when the Service is next allocated, not by reload.
    state, _ = ok(state_of(pool("p", "10.0.0.0/30")), request("ns/a"))
    new, dropped = core.reload(
        state, core.Config(pools=[pool("p", "10.0.0.0/30", namespaces=["other"])])
    )
    assert dropped == ()
    assert new.allocation("ns/a") is not None


def test_reload_moves_an_allocation_into_the_pool_that_now_owns_its_address() -> None:
    state, _ = ok(state_of(pool("p", "10.0.0.0/30")), request("ns/a"))
    cfg = core.Config(pools=[pool("q", "10.0.0.0/31"), pool("r", "10.0.0.2/31")])
    new, _ = core.reload(state, cfg)
    held = new.allocation("ns/a")
    assert held is not None
    assert held.pool == "q"
    assert core.pool_usage(new)["q"].assigned_ipv4 == 1


def test_orphans_and_reload_agree_on_a_mixed_reload() -> None:
    state = state_of(pool("p", "10.0.0.0/29"))
    for key in ("ns/a", "ns/b", "ns/c", "ns/d"):
        state, _ = ok(state, request(key))
    cfg = core.Config(pools=[pool("q", "10.0.0.1/32"), pool("r", "10.0.0.3/32")])
    _, dropped = core.reload(state, cfg)
    assert core.orphans(state, cfg) == dropped
    assert sorted(a.key for a in dropped) == ["ns/a", "ns/c"]
