"""End to end, in network namespaces: the API server emulator, the controller and one speaker
per node as real processes, and a client on the same bridge (see :mod:`tests.support.speaker_lab`).

What is asserted is what a client sees: which node's HTTP server answers ``curl`` to the
Service's address after the client forgot its neighbours (so it asks ARP or NDP afresh),
which MACs answer ``arping`` or ``ndisc6``, and, for failover, the client kernel's neighbour
entry moving to the new node's MAC by itself (gratuitous ARP, unsolicited Neighbor
Advertisement); and who the ServiceL2Status objects name.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

import metallb_core as core
from tests.support import netns
from tests.support.speaker_lab import (
    EXCLUDE,
    IFACE,
    MAC,
    NODES,
    SPARE,
    TOOLS,
    SpeakerLab,
    wait_until,
)

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeakerLab]:
    netns.require(*TOOLS)
    lab = SpeakerLab(tmp_path_factory.mktemp("m6lab"))
    try:
        lab.build()
        yield lab
    finally:
        lab.destroy()


@pytest.fixture
def lab(built: SpeakerLab) -> SpeakerLab:
    built.reset()
    return built


def elected(address: str, nodes: tuple[str, ...] = NODES) -> str:
    chosen = core.announcing_node(address, nodes)
    assert chosen is not None
    return chosen


def others(*excluded: str) -> tuple[str, ...]:
    return tuple(n for n in NODES if n not in excluded)


def test_curl_from_the_client_reaches_the_service_through_the_elected_node(
    lab: SpeakerLab,
) -> None:
    address = lab.create_service("seed")
    lab.set_endpoints("seed", NODES[0])
    winner = elected(address)
    lab.served_by(address, winner)
    assert lab.responders(address) == {MAC[winner]}
    wait_until(lambda: bool(lab.events("nodeAssigned", "seed")), 5.0, "the nodeAssigned event")
    (event,) = lab.events("nodeAssigned", "seed")
    assert event["note"] == f'announcing from node "{winner}" with protocol "layer2"'


def test_hard_death_of_the_announcing_node_moves_the_address(lab: SpeakerLab) -> None:
    address = lab.create_service("hard")
    lab.set_endpoints("hard", *NODES)
    winner = elected(address)
    lab.served_by(address, winner)
    wait_until(lambda: lab.status_nodes("hard") == {winner}, 10.0, "the ServiceL2Status")
    lab.speakers[winner].stop(signal.SIGKILL)
    lab.port_down(winner)
    successor = elected(address, others(winner))
    lab.served_by(address, successor)
    # Never given up by the dead node: a speaker that probed it wrote the verdict.
    assert lab.lease_holder(winner) is None
    verdict = lab.lease(winner)
    assert verdict["metadata"]["annotations"]["metallb-core.io/declared-dead-by"] in others(winner)
    # The successor replaced the dead node's ServiceL2Status with its own, owned by its Pod.
    wait_until(lambda: lab.status_nodes("hard") == {successor}, 10.0, "the successor's status")
    (status,) = [s for s in lab.l2statuses() if s["status"]["serviceName"] == "hard"]
    (owner,) = status["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("Pod", lab.pod_env(successor)["POD_NAME"])


def _neighbour_follows(lab: SpeakerLab, address: str, node: str) -> None:
    """The client's own neighbour entry moves to ``node``'s MAC (nothing flushed), and the
    client reaches ``node`` through it."""
    wait_until(lambda: lab.neighbour(address) == MAC[node], 10.0, f"neighbour entry -> {node}")
    assert lab.curl(address) == node


def test_ipv6_curl_and_ndisc6_reach_the_elected_node(lab: SpeakerLab) -> None:
    address = lab.create_service("six", ipv6=True)
    assert ip_address(address).version == 6
    lab.set_endpoints("six", NODES[0])
    winner = elected(address)
    lab.served_by(address, winner)
    assert lab.responders(address) == {MAC[winner]}  # ndisc6: one Neighbor Advertisement
    assert lab.curl(address) == winner
    assert lab.neighbour(address) == MAC[winner]


def test_ipv6_hard_death_moves_the_address_and_the_client_neighbour_entry(
    lab: SpeakerLab,
) -> None:
    address = lab.create_service("hard6", ipv6=True)
    lab.set_endpoints("hard6", *NODES)
    winner = elected(address)
    lab.served_by(address, winner)
    assert lab.curl(address) == winner  # the client holds a neighbour entry for the winner
    assert lab.neighbour(address) == MAC[winner]
    lab.speakers[winner].stop(signal.SIGKILL)
    lab.port_down(winner)
    successor = elected(address, others(winner))
    _neighbour_follows(lab, address, successor)  # the successor's unsolicited NA
    assert lab.responders(address) == {MAC[successor]}
    wait_until(lambda: lab.status_nodes("hard6") == {successor}, 10.0, "the successor's status")


def test_ipv6_sigterm_hands_over(lab: SpeakerLab) -> None:
    address = lab.create_service("soft6", ipv6=True)
    lab.set_endpoints("soft6", *NODES)
    winner = elected(address)
    lab.served_by(address, winner)
    assert lab.curl(address) == winner
    assert lab.speakers[winner].stop(signal.SIGTERM) == 0
    successor = elected(address, others(winner))
    _neighbour_follows(lab, address, successor)
    assert lab.responders(address) == {MAC[successor]}
    assert lab.lease_holder(winner) is None
    wait_until(lambda: lab.status_nodes("soft6") == {successor}, 10.0, "the successor's status")


def test_ipv4_hard_death_moves_the_client_neighbour_entry(lab: SpeakerLab) -> None:
    address = lab.create_service("garp")
    lab.set_endpoints("garp", *NODES)
    winner = elected(address)
    lab.served_by(address, winner)
    assert lab.curl(address) == winner
    assert lab.neighbour(address) == MAC[winner]
    lab.speakers[winner].stop(signal.SIGKILL)
    lab.port_down(winner)
    _neighbour_follows(lab, address, elected(address, others(winner)))  # gratuitous ARP


def test_sigterm_withdraws_then_hands_the_lease_over(lab: SpeakerLab) -> None:
    address = lab.create_service("soft")
    lab.set_endpoints("soft", *NODES)
    winner = elected(address)
    lab.served_by(address, winner)
    assert lab.speakers[winner].stop(signal.SIGTERM) == 0
    lab.served_by(address, elected(address, others(winner)))
    assert lab.lease_holder(winner) is None
    said = [m["msg"] for m in lab.messages(winner)]
    assert said.index("withdrew everything") < said.index("lease released")


def test_node_labelled_excluded_gives_its_address_away(lab: SpeakerLab) -> None:
    address = lab.create_service("excluded")
    lab.set_endpoints("excluded", *NODES)
    winner = elected(address)
    lab.served_by(address, winner)
    lab.label_node(winner, {EXCLUDE: ""})
    lab.served_by(address, elected(address, others(winner)))
    assert lab.responders(address) == {MAC[elected(address, others(winner))]}


def test_local_traffic_policy_follows_the_endpoint(lab: SpeakerLab) -> None:
    address = lab.create_service("local", local=True)
    first, second = others(elected(address))  # never the node the hash alone would pick
    lab.set_endpoints("local", first)
    lab.served_by(address, first)
    lab.set_endpoints("local", second)
    lab.served_by(address, second)


def test_advertisement_node_selectors_and_interfaces(lab: SpeakerLab) -> None:
    only = {"matchLabels": {"kubernetes.io/hostname": NODES[2]}}
    lab.set_advertisement(nodeSelectors=[only], interfaces=[SPARE])
    address = lab.create_service("picky")
    lab.set_endpoints("picky", *NODES)

    def announced_on(interfaces: list[str]) -> bool:
        return any(
            m["msg"] == "announcing" and m.get("interfaces") == interfaces
            for m in lab.messages(NODES[2])
        )

    wait_until(lambda: announced_on([SPARE]), 10.0, "third node announces on the spare")
    # Announced on an interface the client is not on: nobody answers on the bridge.
    assert lab.responders(address) == set()
    lab.set_advertisement(nodeSelectors=[only], interfaces=[IFACE])
    lab.served_by(address, NODES[2])
    assert lab.responders(address) == {MAC[NODES[2]]}
    assert not any(m["msg"] == "announcing" for n in NODES[:2] for m in lab.messages(n))
