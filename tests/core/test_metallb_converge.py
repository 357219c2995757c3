"""MetalLB's controller tests, translated to ``request_from_service``, ``converge`` and friends.

Sources: ``controller/controller_test.go`` (TestControllerMutation, TestControllerConfig,
TestDeleteRecyclesIP, TestControllerReassign, TestControllerDualStackConfig), the
convergeBalancer steps of ``controller/service.go`` (events, clears, requested IPs, pool
annotation, PreferDualStack top-up; docs/design/metallb-behaviour.md §11) and the restart e2e test
(§11.6).
MetalLB's mutation test only checks "a Warning was logged" and the written Service; here every
event is pinned by type, reason and message, and the written status by ``ingress`` and ``pool``.
MetalLB's pool5 overlaps pool1 and pool3, which a metallb_core Config refuses, so it has its own
CIDRs here (5.6.7.0/31, 5000::/127); see ``tests/core/metallb_cases_notes.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import metallb_core as core
from tests.support.builders import IP, ips, pool, state_of

EventTuple = tuple[str, str, str]

ALLOCATED_FROM = "metallb.io/ip-allocated-from-pool"
ADDRESS_POOL = "metallb.io/address-pool"
LB_IPS = "metallb.io/loadBalancerIPs"
SHARED = "metallb.io/allow-shared-ip"
OLD_ADDRESS_POOL = "metallb.universe.tf/address-pool"
OLD_LB_IPS = "metallb.universe.tf/loadBalancerIPs"
OLD_SHARED = "metallb.universe.tf/allow-shared-ip"

REQUIRE = "RequireDualStack"
PREFER = "PreferDualStack"
DUAL = ["1.2.3.4", "3000::1"]
PLEASE = "please sir may I have an IP address thank you"


# --------------------------------------------------------------------------------------
# Services and expectations


def service(
    name: str = "test",
    namespace: str = "default",
    *,
    type_: str = "LoadBalancer",
    cluster_ips: Sequence[str] | None = ("1.2.3.4",),
    cluster_ip: str | None = None,
    policy: str | None = None,
    families: Sequence[str] | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    lb_ip: str | None = None,
    ingress: Sequence[str | Mapping[str, str]] = (),
    etp: str | None = None,
    selector: Mapping[str, str] | None = None,
    ports: Sequence[tuple[str, int]] = (),
    lb_class: str | None = None,
) -> dict[str, Any]:
    """A Kubernetes Service as a JSON dict; only the fields given are set."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    if labels:
        metadata["labels"] = dict(labels)
    spec: dict[str, Any] = {"type": type_}
    if cluster_ips:
        spec["clusterIPs"] = list(cluster_ips)
    optional = {
        "clusterIP": cluster_ip,
        "ipFamilyPolicy": policy,
        "ipFamilies": None if families is None else list(families),
        "loadBalancerIP": lb_ip,
        "externalTrafficPolicy": etp,
        "selector": None if selector is None else dict(selector),
        "ports": [{"protocol": proto, "port": number} for proto, number in ports] or None,
        "loadBalancerClass": lb_class,
    }
    spec.update({field: value for field, value in optional.items() if value is not None})
    svc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": spec,
    }
    if ingress:
        entries = [{"ip": e} if isinstance(e, str) else dict(e) for e in ingress]
        svc["status"] = {"loadBalancer": {"ingress": entries}}
    return svc


def go_list(addresses: Sequence[str]) -> str:
    """Go's ``%q`` of a list of IPs: ``["1.2.3.0" "1000::"]``."""
    return "[" + " ".join(f'"{a}"' for a in addresses) + "]"


def normal(reason: str, message: str) -> EventTuple:
    return ("Normal", reason, message)


def warning(reason: str, message: str) -> EventTuple:
    return ("Warning", reason, message)


def assigned(*addresses: str) -> EventTuple:
    return normal("IPAllocated", f"Assigned IP {go_list(addresses)}")


def failed(key: str, err: str) -> EventTuple:
    return warning("AllocationFailed", f'Failed to allocate IP for "{key}": {err}')


def cleared(key: str, err: str) -> EventTuple:
    return normal(
        "ClearAssignment",
        f'current IP for "{key}" not allowed by config, will attempt for new IP assignment: {err}',
    )


def deprecated(key: str) -> EventTuple:
    return warning("deprecatedAnnotation", f"Service uses deprecated annotation {key}")


def key_of(svc: Mapping[str, Any]) -> str:
    return f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"


def snapshot(state: core.State) -> dict[str, tuple[tuple[IP, ...], str, str, str]]:
    return {
        key: (tuple(held.ips), held.pool, held.sharing_key, held.backend_key)
        for key, held in state.allocations.items()
    }


def events(conv: core.Convergence) -> list[EventTuple]:
    return [(e.type, e.reason, e.message) for e in conv.events]


def converge(
    state: core.State, svc: Mapping[str, Any], *, lb_class: str | None = None
) -> tuple[core.State, core.Convergence]:
    """``core.converge`` plus the invariants every call must keep."""
    before_state = snapshot(state)
    before_svc = copy.deepcopy(svc)
    new, conv = core.converge(state, svc, lb_class=lb_class)
    assert svc == before_svc, "converge mutated the Service"
    assert snapshot(state) == before_state, "converge changed the old state"
    assert conv.key == key_of(svc)
    if conv.ingress:
        held = new.allocation(conv.key)
        assert held is not None, "status says IPs but the state holds none"
        assert tuple(held.ips) == ips(*conv.ingress)
        assert held.pool == conv.pool
    elif conv.ingress == ():
        assert new.allocation(conv.key) is None, "status cleared but the state still holds IPs"
        assert conv.pool is None
    return new, conv


def written(svc: Mapping[str, Any], conv: core.Convergence) -> dict[str, Any]:
    """The Service as the adapter writes it back: status ingress and the pool annotation."""
    out = copy.deepcopy(dict(svc))
    if conv.ingress is None:
        return out
    status = out.setdefault("status", {})
    status["loadBalancer"] = (
        {"ingress": [{"ip": ip} for ip in conv.ingress]} if conv.ingress else {}
    )
    annotations = out["metadata"].setdefault("annotations", {})
    if conv.pool:
        annotations[ALLOCATED_FROM] = conv.pool
    else:
        annotations.pop(ALLOCATED_FROM, None)
    return out


# --------------------------------------------------------------------------------------
# TestControllerMutation


def controller_state() -> core.State:
    team = [{"matchLabels": {"team": "metallb"}}]
    return state_of(
        pool("pool1", "1.2.3.0/31"),
        pool("pool2", "3.4.5.6/32", auto_assign=False),
        pool("pool3", "1000::/127"),
        pool("pool4", "2000::1/128", auto_assign=False),
        pool("pool5", "5.6.7.0/31", "5000::/127"),
        pool("pool6", "7.8.9.0/31", namespaces=["test-ns1"], priority=10),
        pool("pool7", "10.11.12.0/31", namespaces=["test-ns1"], priority=11),
        pool("pool8", "13.14.15.0/31", selectors=team, priority=9),
        pool("pool9", "16.17.18.0/31", namespaces=["test-ns2"]),
        pool("pool10", "19.20.21.0/31", selectors=team, priority=8),
        pool("pool11", "22.23.24.0/31", namespaces=["test-ns1"], selectors=team, priority=8),
        pool("pool12", "25.26.27.0/31", namespaces=["test-ns1"], selectors=team, priority=5),
    )


K = "default/test"
WRONG_FAMILY = "does not match the ipFamily of the service"

MUTATIONS = [
    pytest.param(service(type_="ClusterIP"), (), None, [], id="simple non-LoadBalancer"),
    pytest.param(service(), ("1.2.3.0",), "pool1", [assigned("1.2.3.0")], id="simple LoadBalancer"),
    pytest.param(
        service(lb_ip="1.2.3.1"),
        ("1.2.3.1",),
        "pool1",
        [assigned("1.2.3.1")],
        id="request specific IP",
    ),
    pytest.param(
        service(annotations={LB_IPS: "1.2.3.1"}),
        ("1.2.3.1",),
        "pool1",
        [assigned("1.2.3.1")],
        id="request specific IP via custom annotation",
    ),
    pytest.param(
        service(annotations={LB_IPS: "1.2.3.1"}, lb_ip="1.2.3.2"),
        (),
        None,
        [
            failed(
                K,
                "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP",
            )
        ],
        id="request IP from both svc.spec.LoadBalancerIP and custom annotation",
    ),
    pytest.param(
        service(lb_ip=PLEASE),
        (),
        None,
        [failed(K, f'invalid spec.loadBalancerIP "{PLEASE}"')],
        id="request invalid IP",
    ),
    pytest.param(
        service(annotations={LB_IPS: "1.2.3.1", ADDRESS_POOL: "pool2"}),
        (),
        None,
        [
            failed(
                K,
                'requested loadBalancer IP(s) ["1.2.3.1"] '
                "is not compatible with requested address pool pool2",
            )
        ],
        id="incompatible ip and address pool annotations",
    ),
    pytest.param(
        service(annotations={LB_IPS: PLEASE}),
        (),
        None,
        [failed(K, f'invalid metallb.io/loadBalancerIPs: "{PLEASE}"')],
        id="request invalid IP via custom annotation",
    ),
    pytest.param(
        service(annotations={LB_IPS: "1.2.3.1,1.2.3.2"}),
        (),
        None,
        [failed(K, 'IPFamilyForAddresses: same address family ["1.2.3.1" "1.2.3.2"]')],
        id="request two IPs from same ip family via custom annotation",
    ),
    pytest.param(
        service(lb_ip="1.2.3.4", ingress=["1.2.3.1"]),
        (),
        None,
        [failed(K, '["1.2.3.4"] is not allowed in config')],
        id="request infeasible IP",
    ),
    pytest.param(
        service(annotations={ADDRESS_POOL: "pool1"}),
        ("1.2.3.0",),
        "pool1",
        [assigned("1.2.3.0")],
        id="request IP from specific pool",
    ),
    pytest.param(
        service(annotations={ADDRESS_POOL: "pool2"}, ingress=["1.2.3.0"]),
        ("3.4.5.6",),
        "pool2",
        [assigned("3.4.5.6")],
        id="switch to a different specific pool",
    ),
    pytest.param(
        service(annotations={ADDRESS_POOL: "does-not-exist"}),
        (),
        None,
        [failed(K, 'unknown pool "does-not-exist"')],
        id="unknown pool requested",
    ),
    pytest.param(
        service(ingress=["2.3.4.5"]),
        ("1.2.3.0",),
        "pool1",
        [cleared(K, '["2.3.4.5"] is not allowed in config'), assigned("1.2.3.0")],
        id="invalid IP assigned",
    ),
    pytest.param(
        service(ingress=[{"hostname": "foo.bar.local"}, "10.10.10.10"]),
        ("1.2.3.0",),
        "pool1",
        [cleared(K, '["10.10.10.10"] is not allowed in config'), assigned("1.2.3.0")],
        id="invalid ingress state",
    ),
    pytest.param(
        service(type_="NodePort", ingress=["1.2.3.0"]),
        (),
        None,
        [],
        id="former LoadBalancer, now NodePort",
    ),
    pytest.param(
        service(lb_ip="3.4.5.6"),
        ("3.4.5.6",),
        "pool2",
        [assigned("3.4.5.6")],
        id="request layer2 service",
    ),
    pytest.param(
        service(lb_ip="3.4.5.6", etp="Local"),
        ("3.4.5.6",),
        "pool2",
        [assigned("3.4.5.6")],
        id="Layer2 service with local traffic policy",
    ),
    pytest.param(service(cluster_ips=None), (), None, [], id="No ClusterIP"),
    pytest.param(
        service(lb_ip="1.2.3.1", cluster_ips=["3000::1"]),
        (),
        None,
        [failed(K, f'requested loadBalancer IP(s) ["1.2.3.1"] {WRONG_FAMILY}')],
        id="request IP from wrong ip-family (ipv4)",
    ),
    pytest.param(
        service(annotations={LB_IPS: "1.2.3.1"}, cluster_ips=["3000::1"]),
        (),
        None,
        [failed(K, f'requested loadBalancer IP(s) ["1.2.3.1"] {WRONG_FAMILY}')],
        id="request IP from wrong ip-family (ipv4) via custom annotation",
    ),
    pytest.param(
        service(lb_ip="1000::"),
        (),
        None,
        [failed(K, f'requested loadBalancer IP(s) ["1000::"] {WRONG_FAMILY}')],
        id="request IP from wrong ip-family (ipv6)",
    ),
    pytest.param(
        service(annotations={LB_IPS: "1000::"}),
        (),
        None,
        [failed(K, f'requested loadBalancer IP(s) ["1000::"] {WRONG_FAMILY}')],
        id="request IP from wrong ip-family (ipv6) via custom annotation",
    ),
    pytest.param(
        service(ingress=["1000::"]),
        ("1.2.3.0",),
        "pool1",
        [assigned("1.2.3.0")],
        id="IP from wrong ip-family (ipv6) assigned",
    ),
    pytest.param(
        service(cluster_ips=["3000::1"], ingress=["1.2.3.0"]),
        ("1000::",),
        "pool3",
        [assigned("1000::")],
        id="IP from wrong ip-family (ipv4) assigned",
    ),
    pytest.param(
        service(cluster_ips=DUAL, policy=REQUIRE),
        ("5.6.7.0", "5000::"),
        "pool5",
        [assigned("5.6.7.0", "5000::")],
        id="simple dual-stack LoadBalancer",
    ),
    pytest.param(
        service(annotations={ADDRESS_POOL: "pool5"}, cluster_ips=DUAL, policy=REQUIRE),
        ("5.6.7.0", "5000::"),
        "pool5",
        [assigned("5.6.7.0", "5000::")],
        id="request IPs from specific pool",
    ),
    pytest.param(
        service(cluster_ips=DUAL, policy=PREFER),
        ("5.6.7.0", "5000::"),
        "pool5",
        [assigned("5.6.7.0", "5000::")],
        id="simple dual-stack LoadBalancer with PreferDualStack policy",
    ),
    pytest.param(
        service(namespace="test-ns1", policy=PREFER),
        ("7.8.9.0",),
        "pool6",
        [assigned("7.8.9.0")],
        id="single-stack LoadBalancer with PreferDualStack policy",
    ),
    pytest.param(
        service(annotations={ADDRESS_POOL: "pool5"}, cluster_ips=DUAL, policy=PREFER),
        ("5.6.7.0", "5000::"),
        "pool5",
        [assigned("5.6.7.0", "5000::")],
        id="request IPs from dualstack pool with PreferDualStack policy",
    ),
    pytest.param(
        service(
            annotations={ADDRESS_POOL: "pool1"}, cluster_ips=["1.2.3.4", "1000::"], policy=PREFER
        ),
        ("1.2.3.0",),
        "pool1",
        [assigned("1.2.3.0")],
        id="request IP from single-stack ipv4 pool with PreferDualStack policy",
    ),
    pytest.param(
        service(annotations={ADDRESS_POOL: "pool3"}, cluster_ips=["1000::1"], policy=PREFER),
        ("1000::",),
        "pool3",
        [assigned("1000::")],
        id="request IP from single-stack ipv6 pool with PreferDualStack policy",
    ),
    pytest.param(
        service(cluster_ips=DUAL, lb_ip="1.2.3.1"),
        (),
        None,
        [failed(K, f'requested loadBalancer IP(s) ["1.2.3.1"] {WRONG_FAMILY}')],
        id="request specific loadbalancer IP with dual-stack",
    ),
    pytest.param(
        service(annotations={LB_IPS: "1.2.3.1"}, cluster_ips=DUAL),
        (),
        None,
        [failed(K, f'requested loadBalancer IP(s) ["1.2.3.1"] {WRONG_FAMILY}')],
        id="request specific loadbalancer IPv4 address via custom annotation for dual-stack",
    ),
    pytest.param(
        service(annotations={LB_IPS: "5.6.7.0,5000::"}, cluster_ips=DUAL, policy=REQUIRE),
        ("5.6.7.0", "5000::"),
        "pool5",
        [assigned("5.6.7.0", "5000::")],
        id="request dual-stack loadbalancer IPs via custom annotation",
    ),
    pytest.param(
        service(
            cluster_ips=["3000::1", "5.6.7.8"],
            policy=REQUIRE,
            ingress=[{"hostname": "foo.bar.local"}, "1000::"],
        ),
        ("5.6.7.0", "5000::"),
        "pool5",
        [assigned("5.6.7.0", "5000::")],
        id="request dual-stack loadbalancer with invalid ingress",
    ),
    pytest.param(
        service(annotations={LB_IPS: "5.6.7.0,5000::"}, cluster_ips=None, cluster_ip="1.2.3.4"),
        (),
        None,
        [failed(K, f'requested loadBalancer IP(s) ["5.6.7.0" "5000::"] {WRONG_FAMILY}')],
        id="request dual-stack loadbalancer IPs via custom annotation in a single stack cluster",
    ),
    pytest.param(
        service(namespace="test-ns1"),
        ("7.8.9.0",),
        "pool6",
        [assigned("7.8.9.0")],
        id="request IP for service from namespace specific ip pool",
    ),
    pytest.param(
        service(namespace="test-ns2"),
        ("16.17.18.0",),
        "pool9",
        [assigned("16.17.18.0")],
        id="request IP for service from no priority namespace specific ip pool",
    ),
    pytest.param(
        service(labels={"team": "metallb"}),
        ("19.20.21.0",),
        "pool10",
        [assigned("19.20.21.0")],
        id="request IP for service from service label specific ip pool",
    ),
    pytest.param(
        service(namespace="test-ns1", labels={"team": "metallb"}),
        ("25.26.27.0",),
        "pool12",
        [assigned("25.26.27.0")],
        id="request IP for service from ip pool having both namespace and service label",
    ),
    pytest.param(
        service(ingress=["1.2.3.0", "1.2.3.1", "1.2.3.2"]),
        ("1.2.3.0",),
        "pool1",
        [
            warning(
                "nolbIPsIPFamily",
                'Failed to retrieve LBIPs IPFamily for ["1.2.3.0" "1.2.3.1" "1.2.3.2"]: '
                'IPFamilyForAddresses: invalid ips length 3 ["1.2.3.0" "1.2.3.1" "1.2.3.2"]',
            ),
            assigned("1.2.3.0"),
        ],
        id="simple LoadBalancer, ips already assigned but can't determine family",
    ),
]


@pytest.mark.parametrize(("svc", "ingress", "pool_name", "want_events"), MUTATIONS)
def test_converge_follows_metallb_controller_mutation_table(
    svc: dict[str, Any],
    ingress: tuple[str, ...],
    pool_name: str | None,
    want_events: list[EventTuple],
) -> None:
    _, conv = converge(controller_state(), svc)
    assert conv.ingress == ingress
    assert conv.pool == pool_name
    assert events(conv) == want_events


# A PreferDualStack service holding one IP retries the missing family on every converge, so
# it is not silent the second time (see the top-up tests below).
RETRIES_TOP_UP = {
    "single-stack LoadBalancer with PreferDualStack policy",
    "request IP from single-stack ipv4 pool with PreferDualStack policy",
    "request IP from single-stack ipv6 pool with PreferDualStack policy",
}
STABLE = [p for p in MUTATIONS if p.values[1] and p.id not in RETRIES_TOP_UP]


@pytest.mark.parametrize(("svc", "ingress", "pool_name", "want_events"), STABLE)
def test_converged_service_stays_put_on_the_next_converge(
    svc: dict[str, Any],
    ingress: tuple[str, ...],
    pool_name: str | None,
    want_events: list[EventTuple],
) -> None:
    state, conv = converge(controller_state(), svc)
    _, again = converge(state, written(svc, conv))
    assert (again.ingress, again.pool, events(again)) == (ingress, pool_name, [])


@pytest.mark.parametrize(("svc", "ingress", "pool_name", "want_events"), STABLE)
def test_converged_service_is_restored_silently_after_a_restart(
    svc: dict[str, Any],
    ingress: tuple[str, ...],
    pool_name: str | None,
    want_events: list[EventTuple],
) -> None:
    _, conv = converge(controller_state(), svc)
    restored, again = converge(controller_state(), written(svc, conv))
    assert (again.ingress, again.pool, events(again)) == (ingress, pool_name, [])
    held = restored.allocation(key_of(svc))
    assert held is not None
    assert tuple(held.ips) == ips(*ingress)


# --------------------------------------------------------------------------------------
# loadBalancerClass


def test_service_of_another_load_balancer_class_is_not_touched() -> None:
    state = controller_state()
    new, conv = core.converge(state, service(lb_class="other", ingress=["9.9.9.9"]))
    assert (conv.ingress, conv.pool, events(conv)) == (None, None, [])
    assert snapshot(new) == snapshot(state)


def test_service_of_the_configured_load_balancer_class_is_handled() -> None:
    _, conv = converge(controller_state(), service(lb_class="metallb"), lb_class="metallb")
    assert conv.ingress == ("1.2.3.0",)


def test_service_without_class_is_not_touched_when_a_class_is_configured() -> None:
    state = controller_state()
    new, conv = core.converge(state, service(ingress=["1.2.3.0"]), lb_class="metallb")
    assert (conv.ingress, events(conv)) == (None, [])
    assert snapshot(new) == snapshot(state)


# --------------------------------------------------------------------------------------
# TestControllerConfig, TestDeleteRecyclesIP, TestControllerReassign, dual-stack config


def test_empty_pool_set_leaves_an_unallocated_service_alone() -> None:
    _, conv = converge(core.State.empty(core.Config()), service())
    assert (conv.ingress, conv.pool, events(conv)) == ((), None, [])


def test_pools_arriving_let_the_service_allocate() -> None:
    _, conv = converge(state_of(pool("default", "1.2.3.0/24")), service())
    assert (conv.ingress, conv.pool, events(conv)) == (
        ("1.2.3.0",),
        "default",
        [assigned("1.2.3.0")],
    )


def test_removing_every_pool_clears_an_allocated_service_silently() -> None:
    svc = service()
    state, conv = converge(state_of(pool("default", "1.2.3.0/24")), svc)
    state, dropped = core.reload(state, core.Config())
    assert [a.key for a in dropped] == [K]
    _, again = converge(state, written(svc, conv))
    assert (again.ingress, again.pool, events(again)) == ((), None, [])


def test_pending_service_fails_while_the_pool_is_full() -> None:
    state, _ = converge(state_of(pool("default", "1.2.3.0/32")), service("svc1"))
    _, conv = converge(state, service("svc2"))
    assert (conv.ingress, events(conv)) == ((), [failed("default/svc2", "no available IPs")])


def test_deleted_service_frees_its_ip_for_a_pending_service() -> None:
    state, _ = converge(state_of(pool("default", "1.2.3.0/32")), service("svc1"))
    state, _ = converge(state, service("svc2"))
    state = core.release(state, "default/svc1")
    _, conv = converge(state, service("svc2"))
    assert (conv.ingress, events(conv)) == (("1.2.3.0",), [assigned("1.2.3.0")])


def test_adding_a_pool_keeps_the_current_allocation() -> None:
    svc = service()
    state, conv = converge(state_of(pool("default", "1.2.3.0/24", "1000::1/127")), svc)
    cfg = core.Config(
        pools=[pool("default", "1.2.3.0/24", "1000::1/127"), pool("second", "4.5.6.0/24")]
    )
    state, dropped = core.reload(state, cfg)
    assert dropped == ()
    _, again = converge(state, written(svc, conv))
    assert (again.ingress, again.pool, events(again)) == (("1.2.3.0",), "default", [])


def test_removing_the_pool_reallocates_from_the_remaining_pool() -> None:
    svc = service()
    state, conv = converge(state_of(pool("default", "1.2.3.0/24", "1000::1/127")), svc)
    state, _ = core.reload(state, core.Config(pools=[pool("second", "4.5.6.0/24")]))
    _, again = converge(state, written(svc, conv))
    assert again.ingress == ("4.5.6.0",)
    assert again.pool == "second"
    assert events(again) == [
        cleared(K, '["1.2.3.0"] is not allowed in config'),
        assigned("4.5.6.0"),
    ]


def test_dual_stack_service_gets_both_families_from_a_dual_pool() -> None:
    svc = service(cluster_ips=["1.2.3.4", "1000::"], policy=REQUIRE)
    _, conv = converge(state_of(pool("default", "1.2.3.0/24", "1000::1/127")), svc)
    assert (conv.ingress, conv.pool) == (("1.2.3.0", "1000::"), "default")
    assert events(conv) == [assigned("1.2.3.0", "1000::")]


def test_former_load_balancer_releases_its_ip() -> None:
    svc = service()
    state, conv = converge(state_of(pool("default", "1.2.3.0/32")), svc)
    node_port = written(svc, conv)
    node_port["spec"]["type"] = "NodePort"
    state, again = converge(state, node_port)
    assert (again.ingress, events(again)) == ((), [])
    _, other = converge(state, service("other"))
    assert other.ingress == ("1.2.3.0",)


# --------------------------------------------------------------------------------------
# dual-stack policies


def test_require_dual_stack_with_a_single_cluster_ip_is_refused() -> None:
    _, conv = converge(controller_state(), service(policy=REQUIRE))
    assert (conv.ingress, conv.pool) == ((), None)
    assert events(conv) == [
        warning(
            "not enough clusterips",
            "Service requires dual stack but not enough clusterips [1.2.3.4]",
        )
    ]


def test_prefer_dual_stack_adds_the_missing_family_once_the_pool_has_it() -> None:
    svc = service(cluster_ips=DUAL, policy=PREFER)
    state, conv = converge(state_of(pool("p", "1.2.3.0/31")), svc)
    assert conv.ingress == ("1.2.3.0",)
    state, _ = core.reload(state, core.Config(pools=[pool("p", "1.2.3.0/31", "1000::/127")]))
    _, again = converge(state, written(svc, conv))
    assert (again.ingress, again.pool) == (("1.2.3.0", "1000::"), "p")
    assert events(again) == [normal("IPAllocated", 'Assigned additional IP "1000::"')]


def test_prefer_dual_stack_reports_the_missing_family_on_every_converge() -> None:
    # Decision 2 applied to the top-up (MetalLB: '["1.2.3.0" "<nil>"] is not allowed in config').
    svc = service(cluster_ips=DUAL, policy=PREFER)
    state, conv = converge(state_of(pool("p", "1.2.3.0/31")), svc)
    _, again = converge(state, written(svc, conv))
    assert (again.ingress, again.pool) == (("1.2.3.0",), "p")
    assert events(again) == [
        normal(
            "AdditionalAssignFailed",
            "cannot assign additional IP in PreferDualStack: no available IPs in pool p",
        )
    ]


def test_prefer_dual_stack_top_up_stays_in_the_current_pool() -> None:
    svc = service(cluster_ips=DUAL, policy=PREFER)
    state, conv = converge(state_of(pool("v4", "1.2.3.0/31"), pool("other-v6", "1000::/127")), svc)
    assert (conv.ingress, conv.pool) == (("1.2.3.0",), "v4")
    _, again = converge(state, written(svc, conv))
    assert again.ingress == ("1.2.3.0",)
    assert [e[1] for e in events(again)] == ["AdditionalAssignFailed"]


# --------------------------------------------------------------------------------------
# requested IPs and pools on an allocated service


def test_requested_ips_keep_the_user_order_in_status() -> None:
    svc = service(annotations={LB_IPS: "5000::,5.6.7.0"}, cluster_ips=DUAL, policy=REQUIRE)
    state, conv = converge(controller_state(), svc)
    assert conv.ingress == ("5000::", "5.6.7.0")
    assert events(conv) == [assigned("5000::", "5.6.7.0")]
    _, again = converge(state, written(svc, conv))
    assert (again.ingress, events(again)) == (("5000::", "5.6.7.0"), [])


def test_changing_the_requested_ip_moves_the_service_without_a_clear_event() -> None:
    _, conv = converge(controller_state(), service(lb_ip="1.2.3.1", ingress=["1.2.3.0"]))
    assert (conv.ingress, events(conv)) == (("1.2.3.1",), [assigned("1.2.3.1")])


def test_invalid_requested_ips_on_an_allocated_service_warn_without_clearing() -> None:
    svc = service(annotations={LB_IPS: "abc"}, ingress=["1.2.3.0"])
    _, conv = converge(controller_state(), svc)
    assert events(conv) == [
        warning(
            "LoadBalancerFailed",
            'invalid requested loadbalancer IPs: invalid metallb.io/loadBalancerIPs: "abc"',
        )
    ]
    # MetalLB returns before writing: the status keeps its IP (or is left alone entirely).
    assert conv.ingress in (None, ("1.2.3.0",))


def test_unparsable_cluster_ips_of_an_allocated_service_warn_without_clearing() -> None:
    svc = service(cluster_ips=["abc"], cluster_ip="abc", ingress=["1.2.3.0"])
    _, conv = converge(controller_state(), svc)
    assert events(conv) == [
        warning(
            "noclusterIPsIPFamily",
            'Failed to retrieve ClusterIPs IPFamily for ["abc"] abc: '
            'IPFamilyForAddresses: Invalid address ["abc"]',
        )
    ]
    assert conv.ingress in (None, ("1.2.3.0",))


def test_unparsable_cluster_ips_fail_a_new_allocation() -> None:
    _, conv = converge(controller_state(), service(cluster_ips=["abc"], cluster_ip="abc"))
    assert conv.ingress == ()
    assert events(conv) == [failed(K, 'IPFamilyForAddresses: Invalid address ["abc"]')]


def test_single_cluster_ip_field_gives_the_family() -> None:
    _, conv = converge(controller_state(), service(cluster_ips=None, cluster_ip="1000::1"))
    assert (conv.ingress, conv.pool) == (("1000::",), "pool3")


def test_services_with_the_same_sharing_key_share_an_ip() -> None:
    state = state_of(pool("p", "1.2.3.0/30"))
    state, first = converge(state, service("a", annotations={SHARED: "k"}, ports=[("TCP", 80)]))
    _, second = converge(state, service("b", annotations={SHARED: "k"}, ports=[("TCP", 443)]))
    assert (first.ingress, second.ingress) == (("1.2.3.0",), ("1.2.3.0",))


def test_services_with_clashing_ports_do_not_share() -> None:
    state = state_of(pool("p", "1.2.3.0/30"))
    state, _ = converge(state, service("a", annotations={SHARED: "k"}, ports=[("TCP", 80)]))
    _, second = converge(state, service("b", annotations={SHARED: "k"}, ports=[("TCP", 80)]))
    assert second.ingress == ("1.2.3.1",)


# ---- deprecated annotations ------------------------------------------------------------


def test_deprecated_pool_annotation_is_still_read() -> None:
    _, conv = converge(controller_state(), service(annotations={OLD_ADDRESS_POOL: "pool2"}))
    assert (conv.ingress, conv.pool) == (("3.4.5.6",), "pool2")


def test_deprecated_annotation_is_warned_about_when_the_status_is_written() -> None:
    _, conv = converge(controller_state(), service(annotations={OLD_ADDRESS_POOL: "pool2"}))
    assert events(conv) == [assigned("3.4.5.6"), deprecated(OLD_ADDRESS_POOL)]


def test_deprecated_annotation_is_not_warned_about_when_nothing_changes() -> None:
    svc = service(annotations={OLD_ADDRESS_POOL: "pool2"})
    state, conv = converge(controller_state(), svc)
    _, again = converge(state, written(svc, conv))
    assert (again.ingress, events(again)) == (("3.4.5.6",), [])


def test_stable_annotation_wins_over_the_deprecated_one() -> None:
    svc = service(annotations={ADDRESS_POOL: "pool1", OLD_ADDRESS_POOL: "pool2"})
    _, conv = converge(controller_state(), svc)
    assert (conv.ingress, conv.pool) == (("1.2.3.0",), "pool1")


# --------------------------------------------------------------------------------------
# converge_all: restart restore (docs/design/metallb-behaviour.md §11.6)


def converge_all(
    state: core.State, services: Sequence[dict[str, Any]], *, lb_class: str | None = None
) -> tuple[core.State, Mapping[str, core.Convergence]]:
    before = copy.deepcopy(list(services))
    before_state = snapshot(state)
    new, results = core.converge_all(state, services, lb_class=lb_class)
    assert list(services) == before, "converge_all mutated a Service"
    assert snapshot(state) == before_state, "converge_all changed the old state"
    return new, results


def holding(name: str, *addresses: str, pool_name: str = "p", **kwargs: Any) -> dict[str, Any]:
    svc = service(name, ingress=list(addresses), **kwargs)
    svc["metadata"].setdefault("annotations", {})[ALLOCATED_FROM] = pool_name
    return svc


def test_converge_all_restores_recorded_ips_before_allocating_pending_services() -> None:
    services = [service("a"), holding("b", "1.2.3.0")]
    _, results = converge_all(state_of(pool("p", "1.2.3.0/31")), services)
    assert (results["default/b"].ingress, events(results["default/b"])) == (("1.2.3.0",), [])
    assert (results["default/a"].ingress, events(results["default/a"])) == (
        ("1.2.3.1",),
        [assigned("1.2.3.1")],
    )


# Issue 3 asks that the loser of a status conflict at restore be reported with a Warning, never
# silently: besides MetalLB's Normal ClearAssignment, converge_all adds a Warning IPConflict.
def test_converge_all_converges_services_with_more_ingress_entries_first() -> None:
    services = [
        holding("single", "1.2.3.0"),
        holding("dual", "1.2.3.0", "1000::", cluster_ips=DUAL, policy=REQUIRE),
    ]
    _, results = converge_all(state_of(pool("p", "1.2.3.0/31", "1000::/127")), services)
    dual, single = results["default/dual"], results["default/single"]
    assert (dual.ingress, events(dual)) == (("1.2.3.0", "1000::"), [])
    assert single.ingress == ("1.2.3.1",)
    assert events(single) == [
        cleared(
            "default/single",
            'can\'t change sharing key for "default/single", address also in use by default/dual',
        ),
        assigned("1.2.3.1"),
        (
            "Warning",
            "IPConflict",
            'IP(s) ["1.2.3.0"] in this Service\'s status are held by a Service restored before it '
            '(can\'t change sharing key for "default/single", address also in use by '
            "default/dual); this Service gets a new allocation",
        ),
    ]


def test_converge_all_keeps_pending_services_pending_when_the_pool_is_full() -> None:
    services = [service("p1"), holding("c1", "1.2.3.0"), service("p2"), holding("c2", "1.2.3.1")]
    _, results = converge_all(state_of(pool("p", "1.2.3.0/31")), services)
    assert {key: conv.ingress for key, conv in results.items()} == {
        "default/p1": (),
        "default/p2": (),
        "default/c1": ("1.2.3.0",),
        "default/c2": ("1.2.3.1",),
    }
    assert events(results["default/p1"]) == [failed("default/p1", "no available IPs")]


def test_converge_all_returns_the_state_holding_every_allocation() -> None:
    services = [service("a"), holding("b", "1.2.3.0")]
    state, _ = converge_all(state_of(pool("p", "1.2.3.0/31")), services)
    assert snapshot(state) == {
        "default/a": (ips("1.2.3.1"), "p", "", ""),
        "default/b": (ips("1.2.3.0"), "p", "", ""),
    }


def test_converge_all_keeps_ips_across_repeated_restarts() -> None:
    services = [service("a"), service("b"), service("c"), service("d")]
    _, results = converge_all(state_of(pool("p", "1.2.3.0/31")), services)
    first = {key: conv.ingress for key, conv in results.items()}
    assert sorted(v for v in first.values() if v) == [("1.2.3.0",), ("1.2.3.1",)]
    current = [written(svc, results[key_of(svc)]) for svc in services]
    for _ in range(5):
        _, results = converge_all(state_of(pool("p", "1.2.3.0/31")), current)
        assert {key: conv.ingress for key, conv in results.items()} == first
        for key, ingress in first.items():
            if ingress:
                assert events(results[key]) == []


def test_converge_all_skips_services_of_another_class() -> None:
    services = [service("mine"), service("theirs", lb_class="other")]
    _, results = converge_all(state_of(pool("p", "1.2.3.0/31")), services)
    assert results["default/theirs"].ingress is None
    assert results["default/mine"].ingress == ("1.2.3.0",)


# --------------------------------------------------------------------------------------
# request_from_service


def test_request_key_is_namespace_slash_name() -> None:
    req = core.request_from_service(service("web", "shop"))
    assert (req.key, req.namespace) == ("shop/web", "shop")


def test_request_carries_the_service_labels() -> None:
    req = core.request_from_service(service(labels={"team": "metallb"}))
    assert dict(req.labels) == {"team": "metallb"}


@pytest.mark.parametrize(
    ("cluster_ips", "cluster_ip", "family"),
    [
        pytest.param(["1.2.3.4"], None, "ipv4", id="ipv4"),
        pytest.param(["3000::1"], None, "ipv6", id="ipv6"),
        pytest.param(["1.2.3.4", "3000::1"], None, "dual", id="dual"),
        pytest.param(["3000::1", "1.2.3.4"], None, "dual", id="dual, ipv6 first"),
        pytest.param(None, "3000::1", "ipv6", id="clusterIP when clusterIPs is absent"),
        pytest.param(["1.2.3.4"], "3000::1", "ipv4", id="clusterIPs wins over clusterIP"),
    ],
)
def test_request_family_comes_from_the_cluster_ips(
    cluster_ips: list[str] | None, cluster_ip: str | None, family: str
) -> None:
    req = core.request_from_service(service(cluster_ips=cluster_ips, cluster_ip=cluster_ip))
    assert req.family == family


@pytest.mark.parametrize(
    ("families", "primary"),
    [(None, "ipv4"), (["IPv4", "IPv6"], "ipv4"), (["IPv6", "IPv4"], "ipv6"), (["IPv6"], "ipv6")],
)
def test_request_primary_family_is_the_first_ip_family(
    families: list[str] | None, primary: str
) -> None:
    req = core.request_from_service(service(cluster_ips=DUAL, families=families, policy=PREFER))
    assert req.primary_family == primary


@pytest.mark.parametrize("policy", [None, "SingleStack", PREFER, REQUIRE])
def test_request_policy_comes_from_ip_family_policy(policy: str | None) -> None:
    req = core.request_from_service(service(cluster_ips=DUAL, policy=policy))
    assert req.policy == (policy or "SingleStack")


def test_request_ports_keep_protocol_and_number() -> None:
    req = core.request_from_service(service(ports=[("TCP", 80), ("UDP", 53)]))
    assert [(p.protocol, p.port) for p in req.ports] == [("TCP", 80), ("UDP", 53)]


@pytest.mark.parametrize(
    ("annotations", "sharing"),
    [
        pytest.param({}, "", id="none"),
        pytest.param({SHARED: "k"}, "k", id="stable"),
        pytest.param({OLD_SHARED: "old"}, "old", id="deprecated"),
        pytest.param({SHARED: "new", OLD_SHARED: "old"}, "new", id="stable wins"),
        pytest.param({SHARED: "", OLD_SHARED: "old"}, "", id="empty stable still wins"),
    ],
)
def test_request_sharing_key_reads_both_annotation_prefixes(
    annotations: dict[str, str], sharing: str
) -> None:
    assert core.request_from_service(service(annotations=annotations)).sharing_key == sharing


@pytest.mark.parametrize(
    ("annotations", "requested_pool"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({ADDRESS_POOL: "pool1"}, "pool1", id="stable"),
        pytest.param({OLD_ADDRESS_POOL: "pool2"}, "pool2", id="deprecated"),
        pytest.param({ADDRESS_POOL: "pool1", OLD_ADDRESS_POOL: "pool2"}, "pool1", id="stable wins"),
    ],
)
def test_request_pool_reads_both_annotation_prefixes(
    annotations: dict[str, str], requested_pool: str | None
) -> None:
    req = core.request_from_service(service(annotations=annotations))
    assert req.requested_pool == requested_pool


@pytest.mark.parametrize(
    ("annotations", "lb_ip", "requested"),
    [
        pytest.param({}, None, [], id="none"),
        pytest.param({}, "1.2.3.1", ["1.2.3.1"], id="spec.loadBalancerIP"),
        pytest.param({LB_IPS: "1.2.3.0, 1000::"}, None, ["1.2.3.0", "1000::"], id="annotation"),
        pytest.param({LB_IPS: "1000::,1.2.3.0"}, None, ["1000::", "1.2.3.0"], id="user order"),
        pytest.param({OLD_LB_IPS: "1.2.3.1"}, None, ["1.2.3.1"], id="deprecated annotation"),
    ],
)
def test_request_ips_come_from_the_annotation_or_the_spec(
    annotations: dict[str, str], lb_ip: str | None, requested: list[str]
) -> None:
    req = core.request_from_service(service(annotations=annotations, lb_ip=lb_ip, cluster_ips=DUAL))
    assert [str(ip) for ip in req.requested_ips] == requested


@pytest.mark.parametrize(
    ("etp", "selector", "backend"),
    [
        pytest.param("Local", {"tier": "web", "app": "foo"}, "app=foo,tier=web", id="Local"),
        pytest.param("Local", None, "", id="Local, no selector"),
        pytest.param("Cluster", {"app": "foo"}, "", id="Cluster"),
        pytest.param(None, {"app": "foo"}, "", id="unset"),
    ],
)
def test_request_backend_key_is_the_selector_for_local_traffic_policy(
    etp: str | None, selector: dict[str, str] | None, backend: str
) -> None:
    req = core.request_from_service(service(etp=etp, selector=selector))
    assert req.backend_key == backend


@pytest.mark.parametrize(
    ("svc", "message"),
    [
        pytest.param(
            service(annotations={LB_IPS: "1.2.3.1"}, lb_ip="1.2.3.2"),
            "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP",
            id="both",
        ),
        pytest.param(service(lb_ip="abc"), 'invalid spec.loadBalancerIP "abc"', id="spec"),
        pytest.param(
            service(annotations={LB_IPS: "1.2.3.1,abc"}),
            'invalid metallb.io/loadBalancerIPs: "1.2.3.1,abc"',
            id="annotation, whole value quoted",
        ),
        pytest.param(
            service(annotations={OLD_LB_IPS: "abc"}),
            'invalid metallb.io/loadBalancerIPs: "abc"',
            id="deprecated annotation, stable key named",
        ),
        pytest.param(
            service(annotations={LB_IPS: "1.2.3.1,1.2.3.2"}),
            'IPFamilyForAddresses: same address family ["1.2.3.1" "1.2.3.2"]',
            id="two IPs of one family",
        ),
    ],
)
def test_request_from_invalid_service_raises_with_metallb_wording(
    svc: dict[str, Any], message: str
) -> None:
    with pytest.raises(core.InvalidService) as info:
        core.request_from_service(svc)
    assert str(info.value) == message


def test_request_from_service_does_not_mutate_the_service() -> None:
    svc = service(annotations={LB_IPS: "1.2.3.0"}, ports=[("TCP", 80)], labels={"a": "b"})
    before = copy.deepcopy(svc)
    core.request_from_service(svc)
    assert svc == before
