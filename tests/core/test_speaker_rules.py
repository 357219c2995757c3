"""elect: which node announces a Service (L2_REFERENCE.md §1.5), one rule per test."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import metallb_core as core
from metallb_core import Announcement, NodeFacts, NotAnnounced, ServiceEndpoints, elect

EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"
NODES = ("n1", "n2", "n3", "n4")


def config(*ads: core.L2Advertisement, pools: tuple[core.Pool, ...] = ()) -> core.Config:
    default_pools = (
        core.Pool(name="p", cidrs=["192.0.2.0/24", "2001:db8::/64"]),
        core.Pool(name="q", cidrs=["198.51.100.0/24"]),
    )
    return core.Config(pools=pools or default_pools, l2_advertisements=ads)


def ad(name: str = "l2", **fields: Any) -> core.L2Advertisement:
    return core.L2Advertisement(name=name, **fields)


def service(
    *ips: str,
    labels: dict[str, str] | None = None,
    local: bool = False,
    annotations: dict[str, str] | None = None,
    type: str = "LoadBalancer",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "web", "name": "nginx"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {"type": type}
    if local:
        spec["externalTrafficPolicy"] = "Local"
    ingress = [{"ip": ip} for ip in ips]
    return {"metadata": meta, "spec": spec, "status": {"loadBalancer": {"ingress": ingress}}}


def nodes(*names: str, **changes: Any) -> list[NodeFacts]:
    return [NodeFacts(name=name, **changes) for name in names or NODES]


ANYWHERE = ServiceEndpoints(serving=1)
VIP = "192.0.2.10"


def winner(*names: str, ip: str = VIP) -> str:
    chosen = core.announcing_node(ip, names)
    assert chosen is not None
    return chosen


def announced(result: Announcement | NotAnnounced) -> Announcement:
    assert isinstance(result, Announcement), result
    return result


def refused(result: Announcement | NotAnnounced) -> NotAnnounced:
    assert isinstance(result, NotAnnounced), result
    return result


# -- the election among eligible nodes --------------------------------------------------------


def test_every_node_eligible_elects_announcing_node_over_all_of_them() -> None:
    result = announced(elect(config(ad()), service(VIP), nodes(), ANYWHERE))
    assert result.node == winner(*NODES)
    assert result.eligible == NODES


def test_election_hashes_the_first_ingress_ip_so_both_families_share_a_node() -> None:
    result = announced(elect(config(ad()), service("2001:db8::10", VIP), nodes(), ANYWHERE))
    assert result.node == winner(*NODES, ip="2001:db8::10")
    assert result.ips == (IPv6Address("2001:db8::10"), IPv4Address(VIP))


def test_ipv4_mapped_ingress_ip_is_announced_and_hashed_as_ipv4() -> None:
    result = announced(elect(config(ad()), service("::ffff:192.0.2.10"), nodes(), ANYWHERE))
    assert result.ips == (IPv4Address(VIP),)
    assert result.node == winner(*NODES)


def test_node_order_does_not_change_the_result() -> None:
    forward = elect(config(ad()), service(VIP), nodes(*NODES), ANYWHERE)
    backward = elect(config(ad()), service(VIP), nodes(*reversed(NODES)), ANYWHERE)
    assert forward == backward


def test_a_repeated_node_name_takes_its_last_facts() -> None:
    facts = [NodeFacts(name="n1"), NodeFacts(name="n1", speaker_alive=False), NodeFacts(name="n2")]
    result = announced(elect(config(ad()), service(VIP), facts, ANYWHERE))
    assert (result.node, result.eligible) == ("n2", ("n2",))


# -- rule: the speaker is alive ----------------------------------------------------------------


def test_node_whose_speaker_is_not_alive_is_not_eligible() -> None:
    first = winner(*NODES)
    facts = [NodeFacts(name=n, speaker_alive=n != first) for n in NODES]
    result = announced(elect(config(ad()), service(VIP), facts, ANYWHERE))
    assert first not in result.eligible
    assert result.node == winner(*(n for n in NODES if n != first))


def test_no_live_speaker_means_nobody_announces_and_says_why() -> None:
    result = refused(
        elect(config(ad()), service(VIP), nodes("n1", "n2", speaker_alive=False), ANYWHERE)
    )
    assert result.reason == "noEligibleNode"
    assert result.message == ("no eligible node: n1 (speaker not alive); n2 (speaker not alive)")


def test_no_node_at_all_means_nobody_announces() -> None:
    result = refused(elect(config(ad()), service(VIP), [], ANYWHERE))
    assert (result.reason, result.message) == (
        "noEligibleNode",
        "no eligible node: no node is known",
    )


def test_long_list_of_refused_nodes_is_shortened() -> None:
    many = nodes(*(f"n{i:02}" for i in range(12)), speaker_alive=False)
    result = refused(elect(config(ad()), service(VIP), many, ANYWHERE))
    assert result.message.endswith("n09 (speaker not alive); and 2 more")


# -- rule: NetworkUnavailable ------------------------------------------------------------------


def test_node_with_network_unavailable_is_not_eligible() -> None:
    first = winner(*NODES)
    facts = [NodeFacts(name=n, network_unavailable=n == first) for n in NODES]
    result = announced(elect(config(ad()), service(VIP), facts, ANYWHERE))
    assert first not in result.eligible


def test_network_unavailable_is_read_from_the_node_condition() -> None:
    node = {
        "metadata": {"name": "n1"},
        "status": {"conditions": [{"type": "NetworkUnavailable", "status": "True"}]},
    }
    assert NodeFacts.from_node(node, speaker_alive=True).network_unavailable


def test_network_unavailable_false_condition_leaves_the_node_usable() -> None:
    node = {
        "metadata": {"name": "n1"},
        "status": {
            "conditions": [
                {"type": "NetworkUnavailable", "status": "False"},
                {"type": "Ready", "status": "True"},
            ]
        },
    }
    assert not NodeFacts.from_node(node, speaker_alive=True).network_unavailable


def test_node_facts_carry_labels_and_the_liveness_given() -> None:
    node = {"metadata": {"name": "n1", "labels": {"zone": "a"}}}
    facts = NodeFacts.from_node(node, speaker_alive=False)
    assert (facts.name, dict(facts.labels), facts.speaker_alive) == ("n1", {"zone": "a"}, False)


# -- rule: exclude-from-external-load-balancers -------------------------------------------------


@pytest.mark.parametrize("value", ["", "true", "false"])
def test_node_labelled_excluded_with_any_value_is_not_eligible(value: str) -> None:
    first = winner(*NODES)
    facts = [NodeFacts(name=n, labels={EXCLUDE: value} if n == first else {}) for n in NODES]
    result = announced(elect(config(ad()), service(VIP), facts, ANYWHERE))
    assert first not in result.eligible


def test_excluded_node_is_named_with_the_label() -> None:
    facts = [NodeFacts(name="n1", labels={EXCLUDE: ""})]
    result = refused(elect(config(ad()), service(VIP), facts, ANYWHERE))
    assert result.message == f"no eligible node: n1 (labelled {EXCLUDE})"


# -- rule: an L2Advertisement covers the pool -----------------------------------------------


def test_no_advertisement_at_all_means_nobody_announces() -> None:
    result = refused(elect(config(), service(VIP), nodes(), ANYWHERE))
    assert (result.reason, result.pool) == ("noAdvertisement", "p")


def test_advertisement_of_another_pool_does_not_cover_the_service() -> None:
    result = refused(elect(config(ad(pools=["q"])), service(VIP), nodes(), ANYWHERE))
    assert result.message == 'no L2Advertisement covers pool "p"'


def test_advertisement_naming_the_pool_covers_it() -> None:
    result = elect(
        config(ad(pools=["q"]), ad("mine", pools=["p"])), service(VIP), nodes(), ANYWHERE
    )
    assert announced(result).pool == "p"


# -- rule: the pool -----------------------------------------------------------------------------


def test_pool_is_the_one_owning_the_ingress_ip() -> None:
    result = announced(elect(config(ad()), service("198.51.100.7"), nodes(), ANYWHERE))
    assert result.pool == "q"


def test_allocated_from_pool_annotation_names_the_pool() -> None:
    annotations = {"metallb.io/ip-allocated-from-pool": "p"}
    result = announced(
        elect(config(ad(pools=["p"])), service(VIP, annotations=annotations), nodes(), ANYWHERE)
    )
    assert result.pool == "p"


def test_annotation_naming_a_pool_that_does_not_hold_the_ip_is_ignored() -> None:
    annotations = {"metallb.io/ip-allocated-from-pool": "q"}
    result = announced(
        elect(config(ad(pools=["p"])), service(VIP, annotations=annotations), nodes(), ANYWHERE)
    )
    assert result.pool == "p"


def test_ingress_ip_outside_every_pool_is_not_announced() -> None:
    result = refused(elect(config(ad()), service("203.0.113.1"), nodes(), ANYWHERE))
    assert (result.reason, result.message) == ("ipNotAllowed", "no pool holds 203.0.113.1")


def test_ingress_ips_of_two_pools_are_not_announced() -> None:
    result = refused(elect(config(ad()), service(VIP, "198.51.100.7"), nodes(), ANYWHERE))
    assert result.reason == "ipNotAllowed"


# -- rule: serviceSelectors ---------------------------------------------------------------------


def test_service_selector_that_does_not_match_keeps_the_service_unannounced() -> None:
    selective = ad(service_selectors=[{"matchLabels": {"tier": "front"}}])
    result = refused(
        elect(config(selective), service(VIP, labels={"tier": "back"}), nodes(), ANYWHERE)
    )
    assert result.reason == "serviceNotSelected"
    assert result.message == (
        'the serviceSelectors of the L2Advertisements of pool "p" (l2) do not select the service'
    )


def test_service_selector_that_matches_announces() -> None:
    selective = ad(service_selectors=[{"matchLabels": {"tier": "front"}}])
    result = elect(config(selective), service(VIP, labels={"tier": "front"}), nodes(), ANYWHERE)
    assert announced(result).node == winner(*NODES)


def test_nodes_of_an_advertisement_that_leaves_the_service_out_are_not_eligible() -> None:
    first = winner(*NODES)
    others = [n for n in NODES if n != first]
    hostname_in = {"key": "kubernetes.io/hostname", "operator": "In", "values": others}
    both = config(
        ad("front", service_selectors=[{"matchLabels": {"tier": "front"}}]),
        ad("back", node_selectors=[{"matchExpressions": [hostname_in]}]),
    )
    facts = [NodeFacts(name=n, labels={"kubernetes.io/hostname": n}) for n in NODES]
    result = announced(elect(both, service(VIP, labels={"tier": "back"}), facts, ANYWHERE))
    assert result.eligible == tuple(others)


# -- rule: nodeSelectors ------------------------------------------------------------------------


def test_node_not_matching_the_node_selectors_is_not_eligible() -> None:
    facts = [NodeFacts(name=n, labels={"role": "edge" if n == "n3" else "worker"}) for n in NODES]
    edge = ad(node_selectors=[{"matchLabels": {"role": "edge"}}])
    result = announced(elect(config(edge), service(VIP), facts, ANYWHERE))
    assert (result.node, result.eligible) == ("n3", ("n3",))


def test_node_selected_by_any_advertisement_of_the_pool_is_eligible() -> None:
    facts = [NodeFacts(name=n, labels={"zone": n}) for n in NODES]
    two = config(
        ad("a", node_selectors=[{"matchLabels": {"zone": "n1"}}]),
        ad("b", node_selectors=[{"matchLabels": {"zone": "n2"}}]),
    )
    result = announced(elect(two, service(VIP), facts, ANYWHERE))
    assert result.eligible == ("n1", "n2")


def test_node_selected_by_no_advertisement_is_named_in_the_message() -> None:
    edge = ad(node_selectors=[{"matchLabels": {"role": "edge"}}])
    result = refused(elect(config(edge), service(VIP), nodes("n1"), ANYWHERE))
    assert result.message == (
        "no eligible node: n1 (not selected by the nodeSelectors of any L2Advertisement)"
    )


# -- rule: serving endpoints --------------------------------------------------------------------


def test_service_without_serving_endpoint_is_announced_by_nobody() -> None:
    result = refused(elect(config(ad()), service(VIP), nodes(), ServiceEndpoints()))
    assert result.reason == "noServingEndpoints"


def test_local_policy_elects_among_nodes_hosting_a_serving_endpoint() -> None:
    endpoints = ServiceEndpoints(serving=2, nodes=frozenset({"n2", "n4"}))
    result = announced(elect(config(ad()), service(VIP, local=True), nodes(), endpoints))
    assert result.eligible == ("n2", "n4")
    assert result.node == winner("n2", "n4")


def test_local_policy_with_endpoints_only_on_ineligible_nodes_announces_nowhere() -> None:
    endpoints = ServiceEndpoints(serving=1, nodes=frozenset({"n2"}))
    facts = [NodeFacts(name=n, speaker_alive=n != "n2") for n in NODES]
    result = refused(elect(config(ad()), service(VIP, local=True), facts, endpoints))
    assert result.reason == "noEligibleNode"
    assert "n1 (no serving endpoint on the node (externalTrafficPolicy: Local))" in result.message


def test_local_policy_with_endpoints_on_no_node_announces_nowhere() -> None:
    result = elect(config(ad()), service(VIP, local=True), nodes(), ServiceEndpoints(serving=3))
    assert refused(result).reason == "noEligibleNode"


def test_cluster_policy_ignores_where_the_endpoints_are() -> None:
    endpoints = ServiceEndpoints(serving=1, nodes=frozenset({"n2"}))
    result = announced(elect(config(ad()), service(VIP), nodes(), endpoints))
    assert result.eligible == NODES


def slice_of(*endpoints: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "endpoints": list(endpoints),
    }


@pytest.mark.parametrize(
    "conditions",
    [{}, {"ready": True}, {"ready": False, "serving": True}, {"ready": None, "serving": False}],
    ids=["unset", "ready", "serving-not-ready", "ready-unset-not-serving"],
)
def test_endpoint_that_can_serve_counts(conditions: dict[str, Any]) -> None:
    found = ServiceEndpoints.from_slices([slice_of({"conditions": conditions, "nodeName": "n1"})])
    assert found == ServiceEndpoints(serving=1, nodes=frozenset({"n1"}))


@pytest.mark.parametrize(
    "conditions",
    [{"ready": False}, {"ready": False, "serving": False}, {"ready": False, "terminating": True}],
    ids=["not-ready", "neither", "terminating"],
)
def test_endpoint_that_cannot_serve_does_not_count(conditions: dict[str, Any]) -> None:
    found = ServiceEndpoints.from_slices([slice_of({"conditions": conditions, "nodeName": "n1"})])
    assert found == ServiceEndpoints()


def test_endpoint_without_node_counts_but_is_on_no_node() -> None:
    found = ServiceEndpoints.from_slices([slice_of({"conditions": {"ready": True}})])
    assert found == ServiceEndpoints(serving=1, nodes=frozenset())


def test_endpoints_of_every_slice_are_counted() -> None:
    slices = [
        slice_of({"nodeName": "n1"}, {"nodeName": "n2"}),
        slice_of({"nodeName": "n2"}),
        {"endpoints": None},
    ]
    assert ServiceEndpoints.from_slices(slices) == ServiceEndpoints(
        serving=3, nodes=frozenset({"n1", "n2"})
    )


# -- interfaces ---------------------------------------------------------------------------------


def test_advertisement_without_interfaces_allows_every_interface() -> None:
    result = announced(elect(config(ad()), service(VIP), nodes(), ANYWHERE))
    assert (result.interfaces, result.allows("anything")) == ((), True)


def test_interfaces_are_the_union_over_the_advertisements_selecting_the_node() -> None:
    two = config(ad("a", interfaces=["eth1"]), ad("b", interfaces=["eth0", "eth1"]))
    result = announced(elect(two, service(VIP), nodes(), ANYWHERE))
    assert result.interfaces == ("eth0", "eth1")
    assert not result.allows("eth2")


def test_one_advertisement_without_interfaces_allows_every_interface() -> None:
    two = config(ad("a", interfaces=["eth1"]), ad("b"))
    result = announced(elect(two, service(VIP), nodes(), ANYWHERE))
    assert result.interfaces == ()


def test_interfaces_of_advertisements_not_selecting_the_winner_do_not_count() -> None:
    facts = [NodeFacts(name=n, labels={"zone": "a" if n == "n1" else "b"}) for n in NODES]
    two = config(
        ad("a", interfaces=["eth0"], node_selectors=[{"matchLabels": {"zone": "a"}}]),
        ad("b", interfaces=["eth1"], node_selectors=[{"matchLabels": {"zone": "b"}}]),
    )
    result = announced(elect(two, service(VIP), facts, ANYWHERE))
    assert result.interfaces == (("eth0",) if result.node == "n1" else ("eth1",))


def test_interfaces_of_advertisements_leaving_the_service_out_do_not_count() -> None:
    two = config(
        ad("a", interfaces=["eth0"]),
        ad("b", service_selectors=[{"matchLabels": {"tier": "x"}}]),
    )
    result = announced(elect(two, service(VIP), nodes(), ANYWHERE))
    assert result.interfaces == ("eth0",)


# -- what is not a Service to announce --------------------------------------------------------


def test_service_that_is_not_a_load_balancer_is_not_announced() -> None:
    result = refused(elect(config(ad()), service(VIP, type="ClusterIP"), nodes(), ANYWHERE))
    assert result.reason == "notLoadBalancer"


def test_service_without_ingress_ip_is_not_announced() -> None:
    result = refused(elect(config(ad()), service(), nodes(), ANYWHERE))
    assert result.reason == "noIPAllocated"


def test_ingress_ip_that_does_not_parse_is_not_announced() -> None:
    result = refused(elect(config(ad()), service("10.0.0.300"), nodes(), ANYWHERE))
    assert (result.reason, result.message) == ("invalidIP", 'invalid LoadBalancer IP "10.0.0.300"')


def test_hostname_only_ingress_entries_are_not_addresses() -> None:
    svc = service(VIP)
    svc["status"]["loadBalancer"]["ingress"].insert(0, {"hostname": "lb.example"})
    assert announced(elect(config(ad()), svc, nodes(), ANYWHERE)).ips == (IPv4Address(VIP),)


def test_key_names_the_service() -> None:
    assert elect(config(ad()), service(VIP), nodes(), ANYWHERE).key == "web/nginx"


# -- events -------------------------------------------------------------------------------------


def test_node_assigned_event_is_metallbs() -> None:
    result = announced(elect(config(ad()), service(VIP), nodes("n1"), ANYWHERE))
    assert result.event() == core.Event(
        type="Normal",
        reason="nodeAssigned",
        message='announcing from node "n1" with protocol "layer2"',
    )


def test_announce_failed_event_is_metallbs() -> None:
    result = announced(elect(config(ad(interfaces=["eth9"])), service(VIP), nodes("n1"), ANYWHERE))
    assert result.announce_failed(IPv4Address(VIP)) == core.Event(
        type="Warning",
        reason="announceFailed",
        message='the interfaces specified by LB IP "192.0.2.10" doesn\'t exist in assigned node '
        '"n1" with protocol "layer2"',
    )


# -- properties ---------------------------------------------------------------------------------

node_names = st.lists(
    st.text(alphabet="abcdefgh123-", min_size=1, max_size=6), min_size=1, max_size=8, unique=True
)
facts_strategy = node_names.flatmap(
    lambda names: st.tuples(
        *(
            st.builds(
                NodeFacts,
                name=st.just(name),
                labels=st.sampled_from([{}, {EXCLUDE: ""}, {"role": "edge"}]),
                speaker_alive=st.booleans(),
                network_unavailable=st.booleans(),
            )
            for name in names
        )
    )
)
edge_only = st.sampled_from([(), ({"matchLabels": {"role": "edge"}},)])


def naive_eligible(
    facts: tuple[NodeFacts, ...], selectors: tuple[dict[str, Any], ...], hosts: frozenset[str]
) -> list[str]:
    """The rules, restated plainly: alive, network up, not excluded, selected, has endpoint."""
    return sorted(
        f.name
        for f in facts
        if f.speaker_alive
        and not f.network_unavailable
        and EXCLUDE not in f.labels
        and (not selectors or f.labels.get("role") == "edge")
        and f.name in hosts
    )


@given(facts=facts_strategy, selectors=edge_only, data=st.data())
def test_winner_is_announcing_node_over_exactly_the_nodes_passing_every_rule(
    facts: tuple[NodeFacts, ...], selectors: tuple[dict[str, Any], ...], data: st.DataObject
) -> None:
    hosts = frozenset(data.draw(st.sets(st.sampled_from([f.name for f in facts]))))
    endpoints = ServiceEndpoints(serving=1, nodes=hosts)
    result = elect(
        config(ad(node_selectors=list(selectors))), service(VIP, local=True), facts, endpoints
    )
    expected = naive_eligible(facts, selectors, hosts)
    if expected:
        chosen = announced(result)
        assert (chosen.eligible, chosen.node) == (
            tuple(expected),
            core.announcing_node(VIP, expected),
        )
    else:
        assert refused(result).reason == "noEligibleNode"


@given(names=node_names.filter(lambda names: len(names) > 1), data=st.data())
def test_removing_a_node_that_did_not_win_changes_nothing(
    names: list[str], data: st.DataObject
) -> None:
    before = announced(elect(config(ad()), service(VIP), nodes(*names), ANYWHERE))
    gone = data.draw(st.sampled_from([n for n in names if n != before.node]))
    rest = [n for n in names if n != gone]
    assert announced(elect(config(ad()), service(VIP), nodes(*rest), ANYWHERE)).node == before.node
