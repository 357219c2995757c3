"""Bad Service objects never raise: any JSON value in any field of a Service.

``request_from_service`` raises only :class:`metallb_core.InvalidService`, naming the field;
``converge`` and ``converge_all`` never raise: a Service they cannot read gets a Warning
``AllocationFailed`` naming the field and value, and an empty status.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metallb_core as core
from metallb_core._converge import is_ours
from metallb_core._service import check_service
from metallb_core.vocabulary import ingress_ips

CONFIG = core.Config(pools=[core.Pool(name="p", cidrs=["10.0.0.0/29", "fd00::/125"])])

BASE: dict[str, Any] = {
    "metadata": {
        "namespace": "web",
        "name": "nginx",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"app": "nginx"},
        "annotations": {
            "metallb.io/allow-shared-ip": "k",
            "metallb.io/ip-allocated-from-pool": "p",
        },
    },
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [{"port": 80, "protocol": "TCP"}],
        "selector": {"app": "nginx"},
        "externalTrafficPolicy": "Local",
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.3", "ipMode": "VIP"}]}},
}

PATHS: list[tuple[Any, ...]] = [
    (),
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "creationTimestamp"),
    ("metadata", "labels"),
    ("metadata", "labels", "app"),
    ("metadata", "annotations"),
    ("metadata", "annotations", "metallb.io/allow-shared-ip"),
    ("metadata", "annotations", "metallb.io/address-pool"),
    ("metadata", "annotations", "metallb.io/loadBalancerIPs"),
    ("metadata", "annotations", "metallb.universe.tf/address-pool"),
    ("metadata", "annotations", "metallb.io/ip-allocated-from-pool"),
    ("spec",),
    ("spec", "type"),
    ("spec", "loadBalancerClass"),
    ("spec", "clusterIP"),
    ("spec", "clusterIPs"),
    ("spec", "clusterIPs", 0),
    ("spec", "ipFamilies"),
    ("spec", "ipFamilyPolicy"),
    ("spec", "ports"),
    ("spec", "ports", 0),
    ("spec", "ports", 0, "port"),
    ("spec", "ports", 0, "protocol"),
    ("spec", "selector"),
    ("spec", "selector", "app"),
    ("spec", "externalTrafficPolicy"),
    ("spec", "loadBalancerIP"),
    ("status",),
    ("status", "loadBalancer"),
    ("status", "loadBalancer", "ingress"),
    ("status", "loadBalancer", "ingress", 0),
    ("status", "loadBalancer", "ingress", 0, "ip"),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(["10.0.0.1", "fd00::1", "abc", "LoadBalancer", "IPv6", "Local"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _set(node: Any, step: Any, value: Any) -> None:
    if isinstance(node, list):
        while len(node) <= step:
            node.append(None)
    node[step] = value


def put(service: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``service`` with ``value`` at ``path`` (parents created or replaced as needed)."""
    if not path:
        return value
    out = copy.deepcopy(service) if isinstance(service, dict) else {}
    node: Any = out
    for step, following in itertools.pairwise(path):
        if isinstance(node, dict):
            child = node.get(step)
        else:
            child = node[step] if step < len(node) else None
        want = list if isinstance(following, int) else dict
        if not isinstance(child, want):
            child = want()
            _set(node, step, child)
        node = child
    _set(node, path[-1], value)
    return out


@st.composite
def bad_services(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], Any]:
    paths = draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique=True))
    service: Any = BASE
    for path in paths:
        service = put(service, path, draw(json_values))
    return paths, service


def _names(path: tuple[Any, ...]) -> list[str]:
    return [str(p).lower() for p in path if isinstance(p, str)]


@settings(max_examples=600, deadline=None)
@given(bad_services())
def test_request_from_service_raises_only_invalid_service_naming_the_field(
    drawn: tuple[list[tuple[Any, ...]], Any],
) -> None:
    paths, service = drawn
    try:
        core.request_from_service(service)
    except core.InvalidService as err:
        message = str(err).lower()
        assert message
        if len(paths) == 1 and len(paths[0]) >= 2:
            words = _names(paths[0])
            # MetalLB's own wording names ClusterIPs by the family check that failed.
            synonyms = {"clusterip": "ipfamilyforaddresses", "clusterips": "ipfamilyforaddresses"}
            assert any(w in message or synonyms.get(w, w) in message for w in words) or (
                "service" in message
            ), (paths, message)


@settings(max_examples=600, deadline=None)
@given(bad_services(), st.sampled_from([None, "other"]))
def test_converge_never_raises(drawn: tuple[list[tuple[Any, ...]], Any], lb_class: Any) -> None:
    _, service = drawn
    state = core.State.empty(CONFIG)
    new_state, result = core.converge(state, service, lb_class=lb_class)
    assert isinstance(result, core.Convergence)
    problem = None
    try:
        check_service(service)
    except core.InvalidService as err:
        problem = str(err)
    readable = problem is None
    if problem is not None and is_ours(service, lb_class):
        assert result.ingress == ()
        assert [(e.type, e.reason) for e in result.events] == [("Warning", "AllocationFailed")]
        assert problem in result.events[0].message
    # The state holds what the status will show: the outcome, or (nothing written) the status.
    held = new_state.allocation(result.key)
    ips = () if held is None else tuple(str(ip) for ip in held.ips)
    if result.ingress is not None:
        assert ips == result.ingress
    elif readable and is_ours(service, lb_class):
        assert ips in ((), tuple(ingress_ips(service)))
    others = [BASE, put(BASE, ("metadata", "name"), "other")]
    _, results = core.converge_all(state, [service, *others], lb_class=lb_class)
    assert all(isinstance(r, core.Convergence) for r in results.values())


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        (("spec", "ports"), [80], "invalid spec.ports[0]: 80 is not an object"),
        (("spec", "ports"), "80", 'invalid spec.ports: "80" is not a list'),
        (
            ("metadata", "annotations"),
            ["a"],
            'invalid metadata.annotations: ["a"] is not an object',
        ),
        (("spec", "selector"), ["app"], 'invalid spec.selector: ["app"] is not an object'),
        (
            ("spec", "clusterIPs"),
            "10.96.0.10",
            'invalid spec.clusterIPs: "10.96.0.10" is not a list',
        ),
        (("spec", "ports", 0), None, "invalid spec.ports[0]: null is not an object"),
        (("spec", "loadBalancerIP"), "abc", 'invalid spec.loadBalancerIP "abc"'),
    ],
)
def test_the_issue_s_examples_name_field_and_value(
    path: tuple[Any, ...], value: Any, says: str
) -> None:
    service = put(BASE, path, value)
    service = put(service, ("status",), None)
    with pytest.raises(core.InvalidService) as caught:
        core.request_from_service(service)
    assert str(caught.value) == says
    _, result = core.converge(core.State.empty(CONFIG), service)
    assert result.ingress == ()
    assert [(e.type, e.reason, e.message) for e in result.events] == [
        ("Warning", "AllocationFailed", f'Failed to allocate IP for "web/nginx": {says}')
    ]
