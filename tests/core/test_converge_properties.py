"""Properties of ``converge_all`` over random clusters: restarts never move a valid IP, and no
address is ever given to two Services that may not share it."""

from __future__ import annotations

import copy
import ipaddress
from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import metallb_core as core

CONFIG = core.Config(
    pools=[
        core.Pool(name="v4", cidrs=["10.0.0.0/29"]),
        core.Pool(name="manual", cidrs=["10.0.1.0/30"], auto_assign=False),
        core.Pool(name="v6", cidrs=["fd00::/126"]),
        core.Pool(name="dual", cidrs=["10.0.2.0/31", "fd00:2::/127"], avoid_buggy_ips=True),
    ]
)
CLUSTER_IPS = {"ipv4": ["10.96.0.1"], "ipv6": ["fd96::1"], "dual": ["10.96.0.1", "fd96::1"]}
ADDRESSES = (
    [
        str(ip)
        for n in ("10.0.0.0/29", "10.0.1.0/30", "10.0.2.0/31")
        for ip in ipaddress.ip_network(n)
    ]
    + [str(ip) for n in ("fd00::/126", "fd00:2::/127") for ip in ipaddress.ip_network(n)]
    + ["192.0.2.1"]
)


@st.composite
def services(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=12))
    out = []
    for i in range(count):
        family = draw(st.sampled_from(["ipv4", "ipv4", "ipv6", "dual"]))
        policy = (
            "SingleStack"
            if family != "dual"
            else draw(st.sampled_from(["PreferDualStack", "RequireDualStack"]))
        )
        annotations: dict[str, str] = {}
        sharing = draw(st.sampled_from(["", "", "k1", "k2"]))
        if sharing:
            annotations["metallb.io/allow-shared-ip"] = sharing
        pool = draw(st.sampled_from([None, None, None, "manual", "v4", "dual", "nope"]))
        if pool:
            annotations["metallb.io/address-pool"] = pool
        spec: dict[str, Any] = {
            "type": draw(st.sampled_from(["LoadBalancer"] * 5 + ["ClusterIP"])),
            "clusterIPs": CLUSTER_IPS[family],
            "ipFamilyPolicy": policy,
            "ports": [
                {"port": p, "protocol": "TCP"}
                for p in draw(st.sets(st.sampled_from([80, 443, 53]), min_size=1, max_size=2))
            ],
        }
        if draw(st.integers(0, 5)) == 0:
            spec["loadBalancerIP"] = draw(st.sampled_from(ADDRESSES))
        out.append(
            {
                "metadata": {"namespace": "ns", "name": f"s{i}", "annotations": annotations},
                "spec": spec,
            }
        )
    return out


def written(service: dict[str, Any], conv: core.Convergence) -> dict[str, Any]:
    svc = copy.deepcopy(service)
    if conv.ingress is not None:
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in conv.ingress]}}
    return svc


def assert_no_illegal_sharing(state: core.State) -> None:
    by_ip: dict[str, list[core.Allocation]] = defaultdict(list)
    for alloc in state.allocations.values():
        for ip in alloc.ips:
            by_ip[str(ip)].append(alloc)
    for address, holders in by_ip.items():
        if len(holders) == 1:
            continue
        first = holders[0]
        for other in holders[1:]:
            assert first.sharing_key, address
            assert first.sharing_key == other.sharing_key, address
            assert first.backend_key == other.backend_key, address
        ports = [p for h in holders for p in h.ports]
        assert len(ports) == len(set(ports)), f"port used twice on {address}"


def assert_state_matches(state: core.State, results: dict[str, core.Convergence]) -> None:
    for key, conv in results.items():
        held = state.allocation(key)
        if conv.ingress:
            assert held is not None
            assert tuple(str(ip) for ip in held.ips) == conv.ingress
            assert held.pool == conv.pool
        elif conv.ingress == ():
            assert held is None


@settings(max_examples=150, deadline=None)
@given(services(), st.randoms(use_true_random=False))
def test_restart_never_moves_an_ip_that_was_validly_held(
    cluster: list[dict[str, Any]], rnd: Any
) -> None:
    # Build a consistent cluster: the Services arrive one by one, each status written.
    state = core.State.empty(CONFIG)
    live = []
    for svc in cluster:
        state, conv = core.converge(state, svc)
        live.append(written(svc, conv))
    before = {core.request_from_service(s).key: s for s in live if s.get("status")}
    # A new controller starts empty and sees the Services in any order.
    rnd.shuffle(live)
    restored, results = core.converge_all(core.State.empty(CONFIG), live)
    for key, svc in before.items():
        was = tuple(i["ip"] for i in svc["status"]["loadBalancer"]["ingress"])
        conv = results[key]
        if was:
            assert conv.ingress == was, key
            assert [e.reason for e in conv.events if e.reason != "AdditionalAssignFailed"] == []
    assert_no_illegal_sharing(restored)
    assert_state_matches(restored, dict(results))


@st.composite
def statuses(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Services whose statuses claim arbitrary addresses, conflicting ones included."""
    out = []
    for svc in draw(services()):
        if draw(st.booleans()):
            family = (
                "dual"
                if len(svc["spec"]["clusterIPs"]) == 2
                else "ipv6"
                if ":" in svc["spec"]["clusterIPs"][0]
                else "ipv4"
            )
            v4 = [a for a in ADDRESSES if ":" not in a]
            v6 = [a for a in ADDRESSES if ":" in a]
            ips = {
                "ipv4": [draw(st.sampled_from(v4))],
                "ipv6": [draw(st.sampled_from(v6))],
                "dual": [draw(st.sampled_from(v4)), draw(st.sampled_from(v6))],
            }[family]
            svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
        out.append(svc)
    return out


@settings(max_examples=150, deadline=None)
@given(statuses())
def test_converge_all_never_hands_one_ip_to_two_incompatible_services(
    cluster: list[dict[str, Any]],
) -> None:
    state, results = core.converge_all(core.State.empty(CONFIG), cluster)
    assert_no_illegal_sharing(state)
    assert_state_matches(state, dict(results))
    pools = {p.name: p for p in CONFIG.pools}
    for conv in results.values():
        for ip in conv.ingress or ():
            assert conv.pool is not None
            assert any(ipaddress.ip_address(ip) in net for net in pools[conv.pool].cidrs)


@settings(max_examples=100, deadline=None)
@given(statuses())
def test_converging_a_written_cluster_again_changes_nothing(
    cluster: list[dict[str, Any]],
) -> None:
    state, results = core.converge_all(core.State.empty(CONFIG), cluster)
    for svc in cluster:
        key = core.request_from_service(svc).key if svc["spec"].get("clusterIPs") else None
        assert key is not None
        conv = results[key]
        again_state, again = core.converge(state, written(svc, conv))
        assert again.ingress == conv.ingress
        noisy = {"AdditionalAssignFailed", "AllocationFailed", "LoadBalancerFailed"}
        assert [e for e in again.events if e.reason not in noisy] == []
        assert again_state.allocations == state.allocations
