"""The speaker against the API server emulator: three in-process speakers, each with a
MockAnnouncer, and every eligibility rule seen from what the nodes announce."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import metallb_core as core
from announcers.kubernetes.client import (
    ENDPOINT_SLICE,
    L2_ADVERTISEMENT,
    NODE,
    SERVICE,
)
from announcers.kubernetes.liveness import lease_name
from announcers.mock import MockAnnouncer
from tests.support.emulator import ApiServerEmulator

from .controller_kit import NS, client_for, configmap, layer2
from .speaker_kit import (
    EXCLUDE,
    LEASES,
    NODES,
    advertisement,
    basics,
    endpoints,
    events_of,
    fleet,
    holding,
    node,
)

VIP = "192.0.2.10"


def winner(ip: str = VIP, nodes: tuple[str, ...] = NODES) -> str:
    chosen = core.announcing_node(ip, nodes)
    assert chosen is not None
    return chosen


def seed_web(apiserver: ApiServerEmulator, *ips: str, **kwargs: Any) -> None:
    """Config with one L2Advertisement, the Nodes, and a Service ``web`` served anywhere."""
    apiserver.seed(*basics(), advertisement(), holding("web", *(ips or (VIP,)), **kwargs))
    apiserver.seed(endpoints("web", "n1"))


# -- the election ---------------------------------------------------------------------------------


async def test_only_the_elected_node_announces(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        await group.settled()
        assert group.announcers_of(VIP) == {winner()}


async def test_winner_announces_ipv4_on_every_interface_and_ipv6_where_it_has_a_link_local(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver, VIP, "2001:db8::10", ipFamilyPolicy="PreferDualStack")
    async with fleet(apiserver) as group:
        await group.announced_by("2001:db8::10", {winner()})
        await group.settled()
        assert group[winner()].holds() == {
            (VIP, "eth0"),
            (VIP, "eth1"),
            ("2001:db8::10", "eth0"),
        }


async def test_both_families_go_to_the_node_elected_for_the_first_ip(
    apiserver: ApiServerEmulator,
) -> None:
    v6 = "2001:db8::10"
    seed_web(apiserver, v6, VIP, ipFamilyPolicy="PreferDualStack")
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner(v6)})
        assert group.announcers_of(v6) == {winner(v6)}


async def test_new_ingress_ip_moves_the_announcement(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver)
    other = next(f"192.0.2.{i}" for i in range(20, 60) if winner(f"192.0.2.{i}") != winner())
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        apiserver.seed(holding("web", other))
        await group.announced_by(other, {winner(other)})
        await group.announced_by(VIP, set())


async def test_deleted_service_is_withdrawn(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        apiserver.remove("v1/services", "default", "web")
        await group.announced_by(VIP, set())


async def test_address_shared_by_two_services_stays_until_both_are_gone(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    apiserver.seed(holding("api", VIP), endpoints("api", "n2"))
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        apiserver.remove("v1/services", "default", "web")
        await group.settled()
        assert group.announcers_of(VIP) == {winner()}
        apiserver.remove("v1/services", "default", "api")
        await group.announced_by(VIP, set())


# -- rule: serving endpoints ----------------------------------------------------------------------


async def test_service_without_serving_endpoint_is_announced_by_nobody(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(
        *basics(), advertisement(), holding("web", VIP), endpoints("web", "n1", ready=False)
    )
    async with fleet(apiserver) as group:
        await group.settled()
        assert group.announcers_of(VIP) == set()
        apiserver.seed(endpoints("web", "n1", ready=True))
        await group.announced_by(VIP, {winner()})


async def test_last_serving_endpoint_going_away_withdraws(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        apiserver.remove(ENDPOINT_SLICE.api_version + "/endpointslices", "default", "web-slice")
        await group.announced_by(VIP, set())


async def test_local_policy_announces_from_the_node_with_the_endpoint(
    apiserver: ApiServerEmulator,
) -> None:
    first, second = (n for n in NODES if n != winner())
    apiserver.seed(*basics(), advertisement())
    apiserver.seed(holding("web", VIP, externalTrafficPolicy="Local"), endpoints("web", first))
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {first})
        apiserver.seed(endpoints("web", second))
        await group.announced_by(VIP, {second})


async def test_local_policy_with_the_endpoint_on_no_speaker_node_announces_nowhere(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(*basics(), node("n9"), advertisement())
    apiserver.seed(holding("web", VIP, externalTrafficPolicy="Local"), endpoints("web", "n9"))
    async with fleet(apiserver) as group:
        await group.settled()
        assert group.announcers_of(VIP) == set()


# -- rule: L2Advertisements ------------------------------------------------------------------------


async def test_no_advertisement_means_nobody_announces_until_one_covers_the_pool(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(*basics(), holding("web", VIP), endpoints("web", "n1"))
    async with fleet(apiserver) as group:
        await group.settled()
        assert group.announcers_of(VIP) == set()
        apiserver.seed(advertisement(ipAddressPools=["p"]))
        await group.announced_by(VIP, {winner()})


async def test_service_selectors_leave_the_service_out_until_it_matches(
    apiserver: ApiServerEmulator,
) -> None:
    ad = advertisement(serviceSelectors=[{"matchLabels": {"expose": "l2"}}])
    apiserver.seed(*basics(), ad, holding("web", VIP), endpoints("web", "n1"))
    async with fleet(apiserver) as group:
        await group.settled()
        assert group.announcers_of(VIP) == set()
        apiserver.seed(holding("web", VIP, labels={"expose": "l2"}))
        await group.announced_by(VIP, {winner()})


async def test_node_selectors_pick_the_nodes_that_may_announce(
    apiserver: ApiServerEmulator,
) -> None:
    loser = next(n for n in NODES if n != winner())
    ad = advertisement(nodeSelectors=[{"matchLabels": {"kubernetes.io/hostname": loser}}])
    apiserver.seed(*basics(), ad, holding("web", VIP), endpoints("web", "n1"))
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {loser})


async def test_advertisement_interfaces_restrict_where_it_is_announced(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(*basics(), advertisement(interfaces=["eth1"]), holding("web", VIP))
    apiserver.seed(endpoints("web", "n1"))
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        await group.settled()
        assert group[winner()].holds() == {(VIP, "eth1")}


async def test_winner_without_the_allowed_interface_warns_and_nobody_announces(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(*basics(), advertisement(interfaces=["bond7"]))
    async with fleet(apiserver) as group:
        apiserver.seed(holding("web", VIP), endpoints("web", "n1"))  # once all are alive
        await group.wait_for(lambda: bool(events_of(apiserver, "announceFailed")))
        await group.settled()
        assert group.announcers_of(VIP) == set()
        (event,) = events_of(apiserver, "announceFailed")  # before the fleet stops: handovers
    assert (event["type"], event["note"]) == (
        "Warning",
        f'the interfaces specified by LB IP "{VIP}" doesn\'t exist in assigned node '
        f'"{winner()}" with protocol "layer2"',
    )


async def test_configmap_layer2_pool_is_announced(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(
        *basics(pools=[configmap({"address-pools": [layer2("cm", "192.0.2.0/24")]})]),
        holding("web", VIP),
        endpoints("web", "n1"),
    )
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})


# -- rules on the nodes ----------------------------------------------------------------------------


async def test_labelling_the_winner_excluded_moves_the_announcement(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    rest = tuple(n for n in NODES if n != winner())
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        api = client_for(apiserver)
        await api.patch(NODE, winner(), {"metadata": {"labels": {EXCLUDE: ""}}})
        await api.close()
        await group.announced_by(VIP, {winner(nodes=rest)})


async def test_network_unavailable_winner_gives_the_address_up(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    rest = tuple(n for n in NODES if n != winner())
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        apiserver.seed(node(winner(), {"kubernetes.io/hostname": winner()}, unavailable=True))
        await group.announced_by(VIP, {winner(nodes=rest)})


async def test_node_without_a_node_object_never_announces(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(*basics(*(n for n in NODES if n != winner())), advertisement())
    apiserver.seed(holding("web", VIP), endpoints("web", "n1"))
    rest = tuple(n for n in NODES if n != winner())
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner(nodes=rest)})


# -- liveness -------------------------------------------------------------------------------------


async def test_crashed_winner_is_declared_dead_by_a_prober_and_replaced(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    rest = tuple(n for n in NODES if n != winner())
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        await group[winner()].crash()
        await group.announced_by(VIP, {winner(nodes=rest)})
        lease = apiserver.read(LEASES, NS, lease_name(winner()))
        assert lease is not None
        assert lease["spec"].get("holderIdentity") is None
        assert lease["metadata"]["annotations"]["metallb-core.io/declared-dead-by"] in rest


async def test_crashed_winner_is_replaced_once_its_lease_goes_stale_with_lease_liveness(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    rest = tuple(n for n in NODES if n != winner())
    async with fleet(apiserver, liveness="lease") as group:
        await group.announced_by(VIP, {winner()})
        await group[winner()].crash()
        await group.announced_by(VIP, {winner(nodes=rest)})
        lease = apiserver.read(LEASES, NS, lease_name(winner()))
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == winner()  # not released: it went stale


class LeaseWatchingAnnouncer(MockAnnouncer):
    """Records who holds ``node``'s Lease at each withdraw."""

    def __init__(self, apiserver: ApiServerEmulator, node: str) -> None:
        super().__init__()
        self.apiserver = apiserver
        self.node = node
        self.holders: list[object] = []

    def withdraw(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        lease = self.apiserver.read(LEASES, NS, lease_name(self.node)) or {}
        self.holders.append((lease.get("spec") or {}).get("holderIdentity"))
        super().withdraw(ip, interface)


async def test_stopped_winner_withdraws_then_gives_its_lease_up(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    rest = tuple(n for n in NODES if n != winner())
    announcer = LeaseWatchingAnnouncer(apiserver, winner())
    async with fleet(apiserver, nodes=rest) as group:
        stopped = group.start(winner(), announcer=announcer)
        await group.announced_by(VIP, {winner()})
        await stopped.halt()
        assert announcer.holders == [winner(), winner()]  # eth0, eth1: the Lease still held
        lease = apiserver.read(LEASES, NS, lease_name(winner()))
        assert lease is not None
        assert lease["spec"].get("holderIdentity") is None
        await group.announced_by(VIP, {winner(nodes=rest)})


async def test_returning_node_takes_its_address_back(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        await group[winner()].halt()
        await group.wait_for(lambda: len(group.announcers_of(VIP)) == 1)
        group.start(winner())
        await group.announced_by(VIP, {winner()})


async def test_speaker_cut_off_from_the_api_keeps_what_it_announces(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        await apiserver.go_away("503")
        await group.wait_for(lambda: all(m.speaker.frozen for m in group.running()))
        assert group.announcers_of(VIP) == {winner()}
        await apiserver.come_back()
        await group.wait_for(lambda: not any(m.speaker.frozen for m in group.running()))
        await group.settled()
        assert group.announcers_of(VIP) == {winner()}


# -- events and retries ---------------------------------------------------------------------------


async def test_node_assigned_event_names_the_announcing_node(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(*basics(), advertisement())
    async with fleet(apiserver) as group:
        apiserver.seed(holding("web", VIP), endpoints("web", "n1"))  # once all are alive
        await group.announced_by(VIP, {winner()})
        await group.wait_for(lambda: bool(events_of(apiserver, "nodeAssigned")))
        await group.settled()
        (event,) = events_of(apiserver, "nodeAssigned")  # before the fleet stops: handovers
    assert (event["type"], event["note"], event["regarding"]["name"]) == (
        "Normal",
        f'announcing from node "{winner()}" with protocol "layer2"',
        "web",
    )
    assert event["reportingController"] == "metallb-core/speaker"


async def test_failed_announcement_is_retried(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver)
    announcer = MockAnnouncer()
    announcer.fail("announce", error=OSError("no buffer space"), times=2)
    async with fleet(apiserver, nodes=()) as group:
        member = group.start(winner(), announcer=announcer)
        await group.wait_for(lambda: member.holds() == {(VIP, "eth0"), (VIP, "eth1")})
        assert sum(call.failed for call in announcer.calls) == 2


async def test_metrics_count_announced_addresses_and_live_speakers(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        await group.settled()
        metrics = group[winner()].speaker.metrics
        labels = {"service": "default/web", "protocol": "layer2", "node": winner(), "ip": VIP}
        assert metrics.value("metallb_speaker_announced", **labels) == 1.0
        assert metrics.value("metallb_core_speaker_announced_ips") == 1.0
        assert metrics.value("metallb_core_speaker_alive_nodes") == 3.0
        assert metrics.value("metallb_core_speaker_liveness_writes_total", reason="join") == 1
        assert (metrics.value("metallb_core_speaker_probes_total", result="acked") or 0) >= 1
        other = group[next(n for n in NODES if n != winner())].speaker.metrics
        assert other.value("metallb_core_speaker_announced_ips") == 0.0


async def test_deleting_the_advertisement_withdraws(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        api = client_for(apiserver)
        await api.patch(
            L2_ADVERTISEMENT, "l2", {"spec": {"ipAddressPools": ["nope"]}}, namespace=NS
        )
        await api.close()
        await group.announced_by(VIP, set())


async def test_service_that_stops_being_a_load_balancer_is_withdrawn(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.announced_by(VIP, {winner()})
        api = client_for(apiserver)
        await api.patch(SERVICE, "web", {"spec": {"type": "ClusterIP"}}, namespace="default")
        await api.close()
        await group.announced_by(VIP, set())
