"""The rules of reading a Kubernetes Service, one example per rule.

``request_from_service`` (docs/design/core-api.md "Requests"; docs/design/metallb-behaviour.md §4
backend and sharing
keys, §8.1 family, §11.3 requested IPs). ``test_metallb_converge.py`` already pins the common
cases of each field; these examples add the edges: the stable annotation winning even when
empty, white space, defaults, and every ``InvalidService`` message of §8.1 and §11.3.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pydantic import ValidationError

import metallb_core as core

ADDRESS_POOL = "metallb.io/address-pool"
LB_IPS = "metallb.io/loadBalancerIPs"
SHARED = "metallb.io/allow-shared-ip"
OLD_ADDRESS_POOL = "metallb.universe.tf/address-pool"
OLD_LB_IPS = "metallb.universe.tf/loadBalancerIPs"
OLD_SHARED = "metallb.universe.tf/allow-shared-ip"


def service(
    *,
    annotations: Mapping[str, str] | None = None,
    cluster_ips: Sequence[str] | None = ("10.96.0.1",),
    cluster_ip: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A LoadBalancer Service ``shop/web``; ``spec`` entries are added to its spec as given."""
    metadata: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    body: dict[str, Any] = {"type": "LoadBalancer", **spec}
    if cluster_ips is not None:
        body["clusterIPs"] = list(cluster_ips)
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    return {"metadata": metadata, "spec": body}


def invalid(svc: Mapping[str, Any]) -> str:
    """The message of the InvalidService ``request_from_service`` raises."""
    with pytest.raises(core.InvalidService) as info:
        core.request_from_service(svc)
    assert not isinstance(info.value, ValidationError)
    return str(info.value)


def addresses(req: core.ServiceRequest) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(text) for text in req.requested_ips]


# ---- identity and defaults ----------------------------------------------------------------


def test_service_without_labels_has_no_labels() -> None:
    assert dict(core.request_from_service(service()).labels) == {}


def test_service_without_a_namespace_is_keyed_in_the_default_namespace() -> None:
    svc = {"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1"}}
    req = core.request_from_service(svc)
    assert (req.key, req.namespace) == ("default/web", "default")


def test_ports_keep_service_order_with_tcp_as_the_default_protocol() -> None:
    svc = service(
        ports=[
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
            {"port": 80},
            {"port": 9, "protocol": "SCTP"},
        ]
    )
    req = core.request_from_service(svc)
    assert [str(p) for p in req.ports] == ["UDP/53", "TCP/80", "SCTP/9"]


def test_primary_family_comes_from_ip_families_not_the_cluster_ip_order() -> None:
    req = core.request_from_service(
        service(cluster_ips=["fd00::1", "10.96.0.1"], ipFamilyPolicy="PreferDualStack")
    )
    assert (req.family, req.primary_family) == ("dual", "ipv4")


def test_service_without_requests_asks_for_no_pool_and_no_address() -> None:
    req = core.request_from_service(service())
    assert (req.requested_pool, tuple(req.requested_ips), req.sharing_key) == (None, (), "")


def test_backend_key_is_empty_for_a_local_service_with_an_empty_selector() -> None:
    req = core.request_from_service(service(externalTrafficPolicy="Local", selector={}))
    assert req.backend_key == ""


# ---- the stable annotation wins, even when empty ------------------------------------------


def test_empty_stable_pool_annotation_wins_over_the_deprecated_one() -> None:
    svc = service(annotations={ADDRESS_POOL: "", OLD_ADDRESS_POOL: "legacy"})
    assert core.request_from_service(svc).requested_pool is None


def test_empty_stable_ips_annotation_wins_over_the_deprecated_one() -> None:
    svc = service(annotations={LB_IPS: "", OLD_LB_IPS: "10.0.0.1"})
    assert tuple(core.request_from_service(svc).requested_ips) == ()


def test_empty_stable_ips_annotation_lets_spec_load_balancer_ip_through() -> None:
    svc = service(annotations={LB_IPS: ""}, loadBalancerIP="10.0.0.7")
    assert addresses(core.request_from_service(svc)) == [ipaddress.ip_address("10.0.0.7")]


def test_empty_stable_sharing_annotation_means_no_sharing() -> None:
    svc = service(annotations={SHARED: "", OLD_SHARED: "legacy"})
    assert core.request_from_service(svc).sharing_key == ""


# ---- requested IPs ------------------------------------------------------------------------


def test_loadbalancer_ips_items_are_trimmed() -> None:
    svc = service(
        annotations={LB_IPS: " 10.0.0.1 ,\t1000::1 "}, cluster_ips=["10.96.0.1", "fd00::1"]
    )
    assert addresses(core.request_from_service(svc)) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("1000::1"),
    ]


def test_requested_ipv6_address_is_read_in_any_spelling() -> None:
    svc = service(annotations={LB_IPS: "2001:DB8:0:0::1"}, cluster_ips=["fd00::1"])
    assert addresses(core.request_from_service(svc)) == [ipaddress.ip_address("2001:db8::1")]


@pytest.mark.parametrize(
    "svc",
    [
        pytest.param(service(annotations={LB_IPS: "::ffff:10.0.0.1"}), id="annotation"),
        pytest.param(service(loadBalancerIP="::ffff:10.0.0.1"), id="spec.loadBalancerIP"),
    ],
)
def test_ipv4_mapped_requested_address_is_the_ipv4_address(svc: dict[str, Any]) -> None:
    # Go's net.ParseIP reads "::ffff:10.0.0.1" as the IPv4 address 10.0.0.1 (To4() is not nil):
    # MetalLB's getDesiredLbIPs finds family ipv4, Assigns 10.0.0.1 and writes "10.0.0.1" in
    # the status (controller/service.go, internal/ipfamily/ipfamily.go).
    state = core.State.empty(core.Config(pools=[core.Pool(name="p", cidrs=["10.0.0.0/30"])]))
    _, outcome = core.allocate(state, core.request_from_service(svc))
    assert isinstance(outcome, core.Allocation), outcome
    assert outcome.ips == (ipaddress.IPv4Address("10.0.0.1"),)


# ---- InvalidService: docs/design/metallb-behaviour.md §11.3 --------------------------------------


@pytest.mark.parametrize(
    ("svc", "message"),
    [
        pytest.param(
            service(annotations={OLD_LB_IPS: "10.0.0.1"}, loadBalancerIP="10.0.0.2"),
            "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP",
            id="deprecated annotation and spec",
        ),
        pytest.param(
            service(annotations={LB_IPS: "10.0.0.1,"}),
            'invalid metallb.io/loadBalancerIPs: "10.0.0.1,"',
            id="trailing comma",
        ),
        pytest.param(
            service(annotations={LB_IPS: "10.0.0.0/24"}),
            'invalid metallb.io/loadBalancerIPs: "10.0.0.0/24"',
            id="CIDR in annotation",
        ),
        pytest.param(
            service(annotations={LB_IPS: "fe80::1%eth0"}),
            'invalid metallb.io/loadBalancerIPs: "fe80::1%eth0"',
            id="zone in annotation",
        ),
        pytest.param(
            service(annotations={LB_IPS: "10.0.0.1,1000::1,10.0.0.2"}),
            'IPFamilyForAddresses: invalid ips length 3 ["10.0.0.1" "1000::1" "10.0.0.2"]',
            id="three addresses",
        ),
        pytest.param(
            service(loadBalancerIP=" 10.0.0.1"),
            'invalid spec.loadBalancerIP " 10.0.0.1"',
            id="spec not trimmed",
        ),
        pytest.param(
            service(loadBalancerIP="10.0.0.1/32"),
            'invalid spec.loadBalancerIP "10.0.0.1/32"',
            id="CIDR in spec",
        ),
    ],
)
def test_invalid_requested_ips_raise_metallb_messages(svc: dict[str, Any], message: str) -> None:
    assert invalid(svc) == message


# ---- InvalidService: docs/design/metallb-behaviour.md §8.1 (the Service family) ------------------


@pytest.mark.parametrize(
    ("cluster_ips", "cluster_ip", "message"),
    [
        pytest.param(
            ["None"], None, 'IPFamilyForAddresses: Invalid address ["None"]', id="headless"
        ),
        pytest.param(
            None, "None", 'IPFamilyForAddresses: Invalid address ["None"]', id="clusterIP None"
        ),
        pytest.param(
            ["10.96.0.1", "bogus"],
            None,
            'IPFamilyForAddresses: Invalid address ["10.96.0.1" "bogus"]',
            id="second unparsable",
        ),
        pytest.param(
            ["fd00::1", "fd00::2"],
            None,
            'IPFamilyForAddresses: same address family ["fd00::1" "fd00::2"]',
            id="two ipv6",
        ),
        pytest.param(
            ["10.96.0.1", "fd00::1", "10.96.0.2"],
            None,
            'IPFamilyForAddresses: invalid ips length 3 ["10.96.0.1" "fd00::1" "10.96.0.2"]',
            id="three",
        ),
    ],
)
def test_unreadable_cluster_ips_raise_metallb_messages(
    cluster_ips: list[str] | None, cluster_ip: str | None, message: str
) -> None:
    assert invalid(service(cluster_ips=cluster_ips, cluster_ip=cluster_ip)) == message


def test_service_without_any_cluster_ip_is_invalid() -> None:
    # MetalLB's controller clears such a Service before reading it (§11.2 step 3), so no
    # wording is pinned: allocateIPs would say "invalid ClusterIPs [[]] [], can't determine
    # family", ipfamily.ForService 'IPFamilyForAddresses: Invalid address [""]'.
    assert invalid(service(cluster_ips=None))


# ---- other bad input: InvalidService, never a pydantic ValidationError --------------------


@pytest.mark.parametrize(
    "svc",
    [
        pytest.param(service(ipFamilyPolicy="Sometimes"), id="ipFamilyPolicy"),
        pytest.param(service(ports=[{"port": "http"}]), id="port not a number"),
        pytest.param(service(ports=[{"protocol": "TCP"}]), id="port missing"),
    ],
)
def test_other_bad_service_input_is_invalid_service(svc: dict[str, Any]) -> None:
    assert invalid(svc)
