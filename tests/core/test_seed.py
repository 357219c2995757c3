"""The seed walkthrough end to end through ``converge``: MetalLB's user path, step by step."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

import metallb_core as core

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"


def seed_config() -> core.Config:
    configmap = yaml.safe_load((SEED / "configmap.yaml").read_text())
    return core.parse_configmap(yaml.safe_load(configmap["data"]["config"]))


def service(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    return {
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "protocol": "TCP"}],
            **spec,
        },
    }


def written(svc: dict[str, Any], conv: core.Convergence) -> dict[str, Any]:
    """The Service after the controller wrote ``conv``."""
    out = copy.deepcopy(svc)
    assert conv.ingress is not None
    out["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in conv.ingress]}}
    if conv.pool:
        out["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] = conv.pool
    return out


def reasons(conv: core.Convergence) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in conv.events]


EXPENSIVE = {"metallb.universe.tf/address-pool": "expensive"}


def test_service_gets_the_first_address_of_the_auto_assign_pool() -> None:
    _, conv = core.converge(core.State.empty(seed_config()), service("nginx", "without-istio"))
    assert (conv.ingress, conv.pool) == (("10.206.65.234",), "default")
    assert reasons(conv) == [("Normal", "IPAllocated")]


def test_auto_assign_false_pool_is_used_only_when_asked_for() -> None:
    state = core.State.empty(seed_config())
    state, plain = core.converge(state, service("plain"))
    _, asked = core.converge(state, service("nginx-manual", annotations=dict(EXPENSIVE)))
    assert plain.pool == "default"
    assert (asked.ingress, asked.pool) == (("10.206.65.224",), "expensive")


def test_stable_pool_annotation_selects_the_pool_without_a_deprecation_warning() -> None:
    annotations = {"metallb.io/address-pool": "expensive"}
    _, conv = core.converge(core.State.empty(seed_config()), service("m", annotations=annotations))
    assert conv.pool == "expensive"
    assert reasons(conv) == [("Normal", "IPAllocated")]


def test_v010_pool_annotation_gets_no_deprecation_warning_under_the_v010_configmap() -> None:
    config = seed_config()
    assert config.source == "configmap"
    _, conv = core.converge(core.State.empty(config), service("m", annotations=EXPENSIVE))
    assert conv.pool == "expensive"
    assert reasons(conv) == [("Normal", "IPAllocated")]


def test_v010_pool_annotation_gets_a_deprecation_warning_under_the_same_pools_as_crds() -> None:
    seed = seed_config()
    config = core.Config(pools=seed.pools, l2_advertisements=seed.l2_advertisements)
    assert config.source == "crds"
    _, conv = core.converge(core.State.empty(config), service("m", annotations=EXPENSIVE))
    assert reasons(conv) == [("Normal", "IPAllocated"), ("Warning", "deprecatedAnnotation")]
    assert conv.events[-1].message == (
        "Service uses deprecated annotation metallb.universe.tf/address-pool"
    )


def test_patching_load_balancer_ip_moves_the_service() -> None:
    state = core.State.empty(seed_config())
    svc = service("nginx-manual", annotations=dict(EXPENSIVE))
    state, first = core.converge(state, svc)
    patched = written(svc, first)
    patched["spec"]["loadBalancerIP"] = "10.206.65.225"
    state, moved = core.converge(state, patched)
    assert moved.ingress == ("10.206.65.225",)
    assert moved.events[0].message == 'Assigned IP ["10.206.65.225"]'
    holder = state.allocation("default/nginx-manual")
    assert holder is not None
    assert [str(ip) for ip in holder.ips] == ["10.206.65.225"]


def test_exhausted_pool_leaves_service_pending_with_a_warning() -> None:
    state = core.State.empty(seed_config())
    for name in ("a", "b"):
        state, _ = core.converge(state, service(name, annotations=dict(EXPENSIVE)))
    state, third = core.converge(state, service("c", annotations=dict(EXPENSIVE)))
    assert third.ingress == ()
    assert third.pool is None
    assert third.events == (
        core.Event(
            type="Warning",
            reason="AllocationFailed",
            message='Failed to allocate IP for "default/c": no available IPs in pool expensive',
        ),
    )


def test_freed_address_goes_to_the_pending_service() -> None:
    state = core.State.empty(seed_config())
    for name in ("a", "b", "c"):
        state, _ = core.converge(state, service(name, annotations=dict(EXPENSIVE)))
    holder = state.allocation("default/a")
    assert holder is not None
    state = core.release(state, "default/a")
    _, retried = core.converge(state, service("c", annotations=dict(EXPENSIVE)))
    assert retried.ingress == tuple(str(ip) for ip in holder.ips)


def test_walkthrough_state_survives_a_restart_without_moving_anyone() -> None:
    state = core.State.empty(seed_config())
    services = [
        service("nginx", "without-istio"),
        service("nginx-manual", annotations=dict(EXPENSIVE), loadBalancerIP="10.206.65.225"),
        service("second", annotations=dict(EXPENSIVE)),
    ]
    done = []
    for svc in services:
        state, conv = core.converge(state, svc)
        done.append(written(svc, conv))
    pending = service("third", annotations=dict(EXPENSIVE))
    # A new controller starts empty, and sees the pending Service first in the list.
    _, results = core.converge_all(core.State.empty(seed_config()), [pending, *done])
    for svc in done:
        key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        assert results[key].ingress == tuple(
            i["ip"] for i in svc["status"]["loadBalancer"]["ingress"]
        )
        assert results[key].events == ()
    assert results["default/third"].ingress == ()
