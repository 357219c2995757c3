"""converge rules that MetalLB's own cases do not pin: warnings on every write."""

from __future__ import annotations

from typing import Any

import metallb_core as core

CONFIG = core.Config(pools=[core.Pool(name="p", cidrs=["10.0.0.0/31"])])
DEPRECATED_POOL = {"metallb.universe.tf/address-pool": "p"}


def holding(ip: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "svc",
            "annotations": {**DEPRECATED_POOL, "metallb.io/ip-allocated-from-pool": "p"},
        },
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.1",
            "ports": [{"port": 80, "protocol": "TCP"}],
            **spec,
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


def reasons(conv: core.Convergence) -> list[str]:
    return [e.reason for e in conv.events]


def test_clearing_a_status_warns_about_deprecated_annotations() -> None:
    _, conv = core.converge(core.State.empty(CONFIG), holding("10.0.0.0", type="ClusterIP"))
    assert conv.ingress == ()
    assert reasons(conv) == ["deprecatedAnnotation"]


def test_failed_reallocation_after_a_clear_warns_about_deprecated_annotations() -> None:
    # The status holds an address no pool owns: cleared, and the pool is empty of others.
    state = core.State.empty(CONFIG)
    for name in ("a", "b"):
        svc = holding("10.0.0.0")
        del svc["status"]
        svc["metadata"]["name"] = name
        state, _ = core.converge(state, svc)
    _, conv = core.converge(state, holding("192.0.2.1"))
    assert conv.ingress == ()
    assert reasons(conv) == ["ClearAssignment", "AllocationFailed", "deprecatedAnnotation"]


def test_unchanged_service_gets_no_deprecation_warning() -> None:
    _, conv = core.converge(core.State.empty(CONFIG), holding("10.0.0.0"))
    assert conv.ingress == ("10.0.0.0",)
    assert conv.events == ()


def test_service_of_another_class_is_left_alone_without_events() -> None:
    svc = holding("10.0.0.0", loadBalancerClass="other")
    state, conv = core.converge(core.State.empty(CONFIG), svc)
    assert (conv.ingress, conv.pool, conv.events) == (None, None, ())
    assert state.allocations == {}


def test_restart_top_up_never_takes_an_address_recorded_in_another_status() -> None:
    # 'dual' has one usable IPv4 address (10.0.2.0 is avoided), held by 'single'; 'prefer'
    # holds only IPv6. Restored first ("ns/prefer" < "ns/single"), prefer's top-up must not
    # take 10.0.2.1 before single is restored.
    config = core.Config(
        pools=[core.Pool(name="dual", cidrs=["10.0.2.0/31", "fd00:2::/127"], avoid_buggy_ips=True)]
    )

    def svc(name: str, cluster_ips: list[str], ingress: list[str], policy: str) -> dict[str, Any]:
        return {
            "metadata": {"namespace": "ns", "name": name, "annotations": {}},
            "spec": {
                "type": "LoadBalancer",
                "clusterIPs": cluster_ips,
                "ipFamilyPolicy": policy,
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}},
        }

    services = [
        svc("prefer", ["10.96.0.1", "fd96::1"], ["fd00:2::"], "PreferDualStack"),
        svc("single", ["10.96.0.2"], ["10.0.2.1"], "SingleStack"),
    ]
    _, results = core.converge_all(core.State.empty(config), services)
    assert results["ns/single"].ingress == ("10.0.2.1",)
    assert results["ns/single"].events == ()
    assert results["ns/prefer"].ingress == ("fd00:2::",)
    assert [e.reason for e in results["ns/prefer"].events] == ["AdditionalAssignFailed"]
