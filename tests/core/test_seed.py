"""The seed walkthrough end to end through the core: the MetalLB v0.10.3 post, step by step.

examples/seed/step-N.yaml are the post's snapshots; steps 1, 2 and 4 carry the ConfigMap as
it was edited live (pool ``default``; then ``expensive`` 10.206.65.224-233 added; then
``expensive`` shrunk to 10.206.65.224-225).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

import metallb_core as core

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"
EXPENSIVE = {"metallb.universe.tf/address-pool": "expensive"}


def documents(name: str) -> list[dict[str, Any]]:
    loaded = yaml.safe_load((SEED / name).read_text())
    items: list[dict[str, Any]] = loaded.get("items", [loaded])
    return items


def step_config(step: int) -> core.Config:
    """The config of the ConfigMap in ``step-<step>.yaml``."""
    [configmap] = [d for d in documents(f"step-{step}.yaml") if d["kind"] == "ConfigMap"]
    return core.parse_configmap(yaml.safe_load(configmap["data"]["config"]))


def step_service(step: int, name: str) -> dict[str, Any]:
    [found] = [
        d
        for d in documents(f"step-{step}.yaml")
        if d["kind"] == "Service" and d["metadata"]["name"] == name
    ]
    return found


def written(svc: dict[str, Any], conv: core.Convergence) -> dict[str, Any]:
    """The Service after the controller wrote ``conv``."""
    out = copy.deepcopy(svc)
    assert conv.ingress is not None
    out["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in conv.ingress]}}
    if conv.pool:
        out["metadata"].setdefault("annotations", {})["metallb.io/ip-allocated-from-pool"] = (
            conv.pool
        )
    return out


def reasons(conv: core.Convergence) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in conv.events]


def cidrs(config: core.Config, pool: str) -> list[str]:
    found = config.pool(pool)
    assert found is not None
    return [str(n) for n in found.cidrs]


def test_the_pools_are_the_posts_at_each_edit() -> None:
    first, second, fourth = step_config(1), step_config(2), step_config(4)
    assert [p.name for p in first.pools] == ["default"]
    assert cidrs(second, "expensive") == ["10.206.65.224/29", "10.206.65.232/31"]
    assert cidrs(fourth, "expensive") == ["10.206.65.224/31"]
    assert cidrs(fourth, "default") == cidrs(first, "default")
    expensive = second.pool("expensive")
    assert expensive is not None
    assert not expensive.auto_assign


def test_configmap_yaml_is_the_configmap_in_force_at_the_end() -> None:
    [configmap] = documents("configmap.yaml")
    assert core.parse_configmap(yaml.safe_load(configmap["data"]["config"])) == step_config(4)


def test_the_posts_services_are_in_its_namespaces() -> None:
    assert step_service(2, "nginx")["metadata"]["namespace"] == "without-istio"
    assert step_service(2, "nginx-manual")["metadata"]["namespace"] == "without-istio"
    assert "namespace" not in step_service(5, "nginx-manual-2")["metadata"]
    assert core.request_from_service(step_service(5, "nginx-manual-2")).key == (
        "default/nginx-manual-2"
    )


def test_the_walkthrough_step_by_step() -> None:
    state = core.State.empty(step_config(1))
    nginx = step_service(1, "nginx")
    state, first = core.converge(state, nginx)
    assert (first.ingress, first.pool, reasons(first)) == (
        ("10.206.65.234",),
        "default",
        [("Normal", "IPAllocated")],
    )
    nginx = written(nginx, first)

    # The live edit: MetalLB reloads the ConfigMap; nothing moves.
    state, dropped = core.reload(state, step_config(2))
    assert dropped == ()
    state, again = core.converge(state, nginx)
    assert (again.ingress, again.events) == (("10.206.65.234",), ())
    manual = step_service(2, "nginx-manual")
    state, asked = core.converge(state, manual)
    assert (asked.ingress, asked.pool) == (("10.206.65.224",), "expensive")
    assert reasons(asked) == [("Normal", "IPAllocated")]  # v0.10's documented annotation

    # kubectl -n without-istio patch service nginx-manual: spec.loadBalancerIP.
    patched = written(manual, asked)
    patched["spec"]["loadBalancerIP"] = step_service(3, "nginx-manual")["spec"]["loadBalancerIP"]
    state, moved = core.converge(state, patched)
    assert moved.ingress == ("10.206.65.225",)
    assert moved.events[0].message == 'Assigned IP ["10.206.65.225"]'

    # The pool shrinks to two addresses: the one held stays, the other is taken.
    assert core.orphans(state, step_config(4)) == ()
    state, _ = core.reload(state, step_config(4))
    state, expensive = core.converge(state, step_service(4, "nginx-expensive"))
    assert expensive.ingress == ("10.206.65.224",)

    # nginx-manual-2, created without a namespace, finds both addresses taken.
    state, pending = core.converge(state, step_service(5, "nginx-manual-2"))
    assert (pending.ingress, pending.pool) == ((), None)
    assert pending.events == (
        core.Event(
            type="Warning",
            reason="AllocationFailed",
            message=(
                'Failed to allocate IP for "default/nginx-manual-2": '
                "no available IPs in pool expensive"
            ),
        ),
    )
    assert core.pool_usage(state)["expensive"].available_ipv4 == 0


def test_v010_pool_annotation_gets_no_deprecation_warning_under_the_v010_configmap() -> None:
    config = step_config(4)
    assert config.source == "configmap"
    svc = step_service(4, "nginx-expensive")
    _, conv = core.converge(core.State.empty(config), svc)
    assert conv.pool == "expensive"
    assert reasons(conv) == [("Normal", "IPAllocated")]


def test_v010_pool_annotation_gets_a_deprecation_warning_under_the_same_pools_as_crds() -> None:
    seed = step_config(4)
    config = core.Config(pools=seed.pools, l2_advertisements=seed.l2_advertisements)
    assert config.source == "crds"
    _, conv = core.converge(core.State.empty(config), step_service(4, "nginx-expensive"))
    assert reasons(conv) == [("Normal", "IPAllocated"), ("Warning", "deprecatedAnnotation")]
    assert conv.events[-1].message == (
        "Service uses deprecated annotation metallb.universe.tf/address-pool"
    )


def test_freed_address_goes_to_the_pending_service() -> None:
    state = core.State.empty(step_config(4))
    names = ("nginx-manual", "nginx-expensive")
    for name in names:
        state, _ = core.converge(state, step_service(5, name))
    state, _ = core.converge(state, step_service(5, "nginx-manual-2"))
    state = core.release(state, "without-istio/nginx-manual")
    _, retried = core.converge(state, step_service(5, "nginx-manual-2"))
    assert retried.ingress == ("10.206.65.225",)


def test_walkthrough_state_survives_a_restart_without_moving_anyone() -> None:
    state = core.State.empty(step_config(4))
    done = []
    for name in ("nginx", "nginx-manual", "nginx-expensive"):
        svc = step_service(5, name)
        state, conv = core.converge(state, svc)
        done.append(written(svc, conv))
    pending = step_service(5, "nginx-manual-2")
    # A new controller starts empty, and sees the pending Service first in the list.
    _, results = core.converge_all(core.State.empty(step_config(4)), [pending, *done])
    for svc in done:
        key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        assert results[key].ingress == tuple(
            i["ip"] for i in svc["status"]["loadBalancer"]["ingress"]
        )
        assert results[key].events == ()
    assert results["default/nginx-manual-2"].ingress == ()
