"""The speaker's rules: elect (which node announces a Service, docs/design/l2-reference.md §1.5),
the
interface x family pairing, the announce/withdraw diff and its events, the freeze rule."""

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


# -- interface x family pairing ------------------------------------------------------------------

V4, V6 = IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10")
ETH0 = core.NodeInterface(name="eth0")  # both families
ETH1 = core.NodeInterface(name="eth1", ipv6=False)  # no link-local address: IPv4 only
ETH2 = core.NodeInterface(name="eth2", ipv4=False)  # no IFF_BROADCAST: IPv6 only


def won(
    key: str = "web/nginx",
    *ips: str,
    node: str = "n1",
    interfaces: tuple[str, ...] = (),
    pool: str = "p",
) -> Announcement:
    return Announcement(
        key=key, node=node, ips=ips or (VIP,), pool=pool, interfaces=interfaces, eligible=(node,)
    )


def text(pairs: Any) -> list[tuple[str, str]]:
    return [(str(ip), name) for ip, name in pairs]


def test_each_address_is_paired_with_every_interface_serving_its_family() -> None:
    pairs = core.announce_pairs(won("a/b", VIP, str(V6)), [ETH0, ETH1, ETH2])
    assert text(pairs) == [
        (VIP, "eth0"),
        (VIP, "eth1"),
        (str(V6), "eth0"),
        (str(V6), "eth2"),
    ]


def test_pairing_keeps_only_the_interfaces_the_advertisements_allow() -> None:
    pairs = core.announce_pairs(won("a/b", VIP, interfaces=("eth1", "eth9")), [ETH0, ETH1])
    assert text(pairs) == [(VIP, "eth1")]


def test_allowed_interface_serving_the_other_family_only_pairs_nothing() -> None:
    assert core.announce_pairs(won("a/b", str(V6), interfaces=("eth1",)), [ETH0, ETH1]) == ()


def test_node_interface_reports_the_family_it_serves() -> None:
    assert (ETH1.serves(V4), ETH1.serves(V6), ETH2.serves(V4), ETH2.serves(V6)) == (
        True,
        False,
        False,
        True,
    )


def test_node_interface_with_a_bad_field_names_it() -> None:
    with pytest.raises(ValueError, match="ipv4"):
        core.NodeInterface(name="eth0", ipv4="maybe")


# -- the announce/withdraw diff ------------------------------------------------------------------


def test_plan_announces_what_this_node_won_and_ignores_the_others() -> None:
    mine, theirs = won("a/mine", VIP), won("a/theirs", "192.0.2.11", node="n2")
    plan = core.plan_announcements("n1", [mine, theirs], [ETH0], set())
    assert (text(plan.announce), text(plan.withdraw)) == ([(VIP, "eth0")], [])
    assert set(plan.won) == {"a/mine"}


def test_plan_withdraws_what_was_announced_and_is_no_longer_won() -> None:
    lost = won("a/b", VIP, node="n2")
    nobody = NotAnnounced(key="a/c", reason="noServingEndpoints", message="none")
    held: set[tuple[IPv4Address | IPv6Address, str]] = {(V4, "eth0"), (V6, "eth0")}
    plan = core.plan_announcements("n1", [lost, nobody], [ETH0], held)
    assert (text(plan.withdraw), plan.announce) == ([(VIP, "eth0"), (str(V6), "eth0")], ())


def test_plan_changes_nothing_when_everything_won_is_announced() -> None:
    plan = core.plan_announcements("n1", [won("a/b", VIP)], [ETH0, ETH1], set())
    again = core.plan_announcements("n1", [won("a/b", VIP)], [ETH0, ETH1], set(plan.want))
    assert (again.announce, again.withdraw) == ((), ())


def test_an_address_shared_by_two_services_is_one_pair_wanted_by_both() -> None:
    plan = core.plan_announcements("n1", [won("a/x", VIP), won("a/y", VIP)], [ETH0], set())
    assert text(plan.announce) == [(VIP, "eth0")]
    assert plan.want[(V4, "eth0")] == {"a/x", "a/y"}


def test_an_address_still_wanted_by_another_service_is_not_withdrawn() -> None:
    plan = core.plan_announcements(
        "n1", [won("a/x", VIP), won("a/y", VIP, node="n2")], [ETH0], {(V4, "eth0")}
    )
    assert (plan.withdraw, plan.announce) == ((), ())


def test_plan_orders_ipv4_before_ipv6_then_by_address_and_interface() -> None:
    elections = [won("a/b", str(V6), "192.0.2.20", VIP)]
    plan = core.plan_announcements("n1", elections, [ETH1, ETH0], set())
    assert text(plan.announce) == [
        (VIP, "eth0"),
        (VIP, "eth1"),
        ("192.0.2.20", "eth0"),
        ("192.0.2.20", "eth1"),
        (str(V6), "eth0"),
    ]


def test_won_with_allowed_interfaces_missing_here_is_failed() -> None:
    plan = core.plan_announcements("n1", [won("a/b", VIP, interfaces=("eth9",))], [ETH0], set())
    assert (plan.failed, plan.unusable, plan.announce) == (frozenset({"a/b"}), frozenset(), ())


def test_won_with_no_interface_at_all_is_unusable_not_failed() -> None:
    plan = core.plan_announcements("n1", [won("a/b", str(V6))], [ETH1], set())
    assert (plan.failed, plan.unusable) == (frozenset(), frozenset({"a/b"}))


def test_dual_stack_service_with_one_family_usable_is_neither_failed_nor_unusable() -> None:
    plan = core.plan_announcements("n1", [won("a/b", VIP, str(V6))], [ETH1], set())
    assert (text(plan.announce), plan.failed, plan.unusable) == (
        [(VIP, "eth1")],
        frozenset(),
        frozenset(),
    )


# -- the round's changes and their events --------------------------------------------------------


def round_of(
    elections: list[Announcement | NotAnnounced],
    before: core.AnnounceReport,
    *,
    interfaces: tuple[core.NodeInterface, ...] = (ETH0,),
    refuse: frozenset[tuple[Any, str]] = frozenset(),
    held: frozenset[tuple[Any, str]] = frozenset(),
) -> tuple[core.AnnounceReport, tuple[core.AnnounceChange, ...]]:
    """Plan, act as an announcer that refuses ``refuse``, report."""
    plan = core.plan_announcements("n1", elections, interfaces, held)
    announced = (set(held) - set(plan.withdraw)) | (set(plan.announce) - refuse)
    by_key = {e.key: e for e in elections}
    return core.report_announcements(plan, announced, before, by_key)


def kinds(changes: tuple[core.AnnounceChange, ...]) -> list[tuple[str, str]]:
    return [(c.kind, c.key) for c in changes]


EMPTY = core.AnnounceReport.empty()


def test_starting_to_announce_sends_node_assigned() -> None:
    report, changes = round_of([won("a/b", VIP)], EMPTY)
    assert kinds(changes) == [("announcing", "a/b")]
    (change,) = changes
    assert [e.reason for e in change.events] == ["nodeAssigned"]
    assert change.service == report.serving["a/b"]
    assert (change.service.node, change.service.interfaces, change.service.pool) == (
        "n1",
        ("eth0",),
        "p",
    )


def test_a_round_with_nothing_new_reports_no_change() -> None:
    report, _ = round_of([won("a/b", VIP)], EMPTY)
    held = frozenset(core.plan_announcements("n1", [won("a/b", VIP)], [ETH0], ()).want)
    again, changes = round_of([won("a/b", VIP)], report, held=held)
    assert (changes, again) == ((), report)


def test_an_announce_refused_by_the_announcer_is_not_reported_as_serving() -> None:
    report, changes = round_of([won("a/b", VIP)], EMPTY, refuse=frozenset({(V4, "eth0")}))
    assert (report.serving, changes) == ({}, ())


def test_new_addresses_send_node_assigned_again_but_a_new_interface_does_not() -> None:
    report, _ = round_of([won("a/b", VIP)], EMPTY)
    more, changes = round_of([won("a/b", VIP)], report, interfaces=(ETH0, ETH1))
    assert changes == ()
    assert more.serving["a/b"].interfaces == ("eth0", "eth1")
    _, changes = round_of([won("a/b", VIP, "192.0.2.11")], report)
    assert kinds(changes) == [("announcing", "a/b")]


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (won("a/b", VIP, node="n2"), "announced by n2"),
        (
            NotAnnounced(key="a/b", reason="noServingEndpoints", message="no endpoint"),
            "noServingEndpoints: no endpoint",
        ),
        (None, "service gone"),
    ],
)
def test_withdrawal_says_who_announces_now_or_why_nobody_does(
    now: Announcement | NotAnnounced | None, reason: str
) -> None:
    report, _ = round_of([won("a/b", VIP)], EMPTY)
    _, changes = round_of([now] if now is not None else [], report)
    assert [(c.kind, c.key, c.reason, c.events) for c in changes] == [
        ("withdrawn", "a/b", reason, ())
    ]


def test_missing_allowed_interfaces_send_announce_failed_per_address_once() -> None:
    elections: list[Announcement | NotAnnounced] = [won("a/b", VIP, str(V6), interfaces=("eth9",))]
    report, changes = round_of(elections, EMPTY)
    (change,) = changes
    assert (change.kind, change.allowed) == ("announceFailed", ("eth9",))
    assert [e.message for e in change.events] == [
        elections[0].announce_failed(V4).message,  # type: ignore[union-attr]
        elections[0].announce_failed(V6).message,  # type: ignore[union-attr]
    ]
    assert round_of(elections, report)[1] == ()


def test_no_interface_at_all_is_said_once_without_event() -> None:
    report, changes = round_of([won("a/b", str(V6))], EMPTY, interfaces=(ETH1,))
    assert [(c.kind, c.events) for c in changes] == [("noInterface", ())]
    assert round_of([won("a/b", str(V6))], report, interfaces=(ETH1,))[1] == ()


def test_changes_come_announcing_then_withdrawn_each_sorted_by_key() -> None:
    report, _ = round_of([won("a/old2", "192.0.2.30"), won("a/old1", "192.0.2.31")], EMPTY)
    _, changes = round_of([won("a/new2", "192.0.2.40"), won("a/new1", "192.0.2.41")], report)
    assert kinds(changes) == [
        ("announcing", "a/new1"),
        ("announcing", "a/new2"),
        ("withdrawn", "a/old1"),
        ("withdrawn", "a/old2"),
    ]


# -- the freeze rule -----------------------------------------------------------------------------


def test_a_speaker_that_does_not_see_itself_alive_is_frozen() -> None:
    assert core.speaker_frozen("n1", frozenset({"n2"}))
    assert core.speaker_frozen("n1", frozenset())
    assert not core.speaker_frozen("n1", frozenset({"n1"}))


# -- properties of the diff ----------------------------------------------------------------------

addresses = st.sampled_from([V4, IPv4Address("192.0.2.11"), V6, IPv6Address("2001:db8::11")])
local_interfaces = st.lists(
    st.builds(
        core.NodeInterface,
        name=st.sampled_from(["eth0", "eth1", "eth2"]),
        ipv4=st.booleans(),
        ipv6=st.booleans(),
    ),
    max_size=3,
    unique_by=lambda i: i.name,
)
elections_strategy = st.lists(
    st.builds(
        lambda key, ips, node, allowed: won(
            key, *(str(ip) for ip in ips), node=node, interfaces=tuple(sorted(allowed))
        ),
        key=st.sampled_from(["a/x", "a/y", "a/z", "b/x"]),
        ips=st.lists(addresses, min_size=1, max_size=2, unique=True),
        node=st.sampled_from(["n1", "n2"]),
        allowed=st.sets(st.sampled_from(["eth0", "eth1", "eth9"]), max_size=2),
    ),
    max_size=5,
    unique_by=lambda e: e.key,
)
held_strategy = st.sets(st.tuples(addresses, st.sampled_from(["eth0", "eth1", "eth2"])))


@given(elections=elections_strategy, interfaces=local_interfaces, held=held_strategy)
def test_acting_on_a_plan_leaves_exactly_what_is_wanted_and_a_second_plan_is_empty(
    elections: list[Announcement], interfaces: list[core.NodeInterface], held: set[Any]
) -> None:
    plan = core.plan_announcements("n1", elections, interfaces, held)
    assert not set(plan.withdraw) & set(plan.announce)
    assert set(plan.withdraw) <= held
    assert not set(plan.announce) & held
    after = (held - set(plan.withdraw)) | set(plan.announce)
    assert after == set(plan.want)
    again = core.plan_announcements("n1", elections, interfaces, after)
    assert (again.withdraw, again.announce) == ((), ())


@given(elections=elections_strategy, interfaces=local_interfaces)
def test_wanted_pairs_are_exactly_won_addresses_on_allowed_interfaces_of_their_family(
    elections: list[Announcement], interfaces: list[core.NodeInterface]
) -> None:
    plan = core.plan_announcements("n1", elections, interfaces, set())
    expected: dict[tuple[Any, str], set[str]] = {}
    for e in elections:
        if e.node != "n1":
            continue
        for ip in e.ips:
            for i in interfaces:
                family_ok = i.ipv4 if ip.version == 4 else i.ipv6
                if family_ok and (not e.interfaces or i.name in e.interfaces):
                    expected.setdefault((ip, i.name), set()).add(e.key)
    assert plan.want == expected
    lacking = {
        e.key
        for e in elections
        if e.node == "n1" and not any(e.key in keys for keys in expected.values())
    }
    assert plan.failed | plan.unusable == lacking
    assert not plan.failed & plan.unusable


@given(
    first=elections_strategy,
    second=elections_strategy,
    interfaces=local_interfaces,
    refused=held_strategy,
)
def test_reported_changes_match_the_difference_of_what_is_served(
    first: list[Announcement],
    second: list[Announcement],
    interfaces: list[core.NodeInterface],
    refused: set[Any],
) -> None:
    before, _ = round_of(list(first), EMPTY, interfaces=tuple(interfaces))
    held = frozenset(core.plan_announcements("n1", first, interfaces, ()).want)
    after, changes = round_of(
        list(second), before, interfaces=tuple(interfaces), held=held, refuse=frozenset(refused)
    )
    started = {c.key for c in changes if c.kind == "announcing"}
    stopped = {c.key for c in changes if c.kind == "withdrawn"}
    assert stopped == before.serving.keys() - after.serving.keys()
    assert started == {
        k
        for k, s in after.serving.items()
        if k not in before.serving or before.serving[k].ips != s.ips
    }
    assert all(s.node == "n1" and s.interfaces for s in after.serving.values())
