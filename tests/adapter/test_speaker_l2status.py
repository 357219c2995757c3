"""ServiceL2Status: the announcing speaker writes one per Service, MetalLB's shape, and keeps
it true through failover, handover and withdrawal, writing nothing when nothing changed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import metallb_core as core
from announcers.kubernetes.client import (
    ENDPOINT_SLICE,
    L2_ADVERTISEMENT,
    NODE,
    SERVICE,
    LightkubeApi,
)
from announcers.kubernetes.l2status import SERVICE_L2_STATUS, PodRef
from tests.support.emulator import ApiServerEmulator, metallb_crds

from .controller_kit import NS
from .controller_kit import client_for as _client_for
from .speaker_kit import (
    NODES,
    advertisement,
    announced_in_status,
    basics,
    endpoints,
    fleet,
    holding,
    l2status_writes,
    l2statuses,
    node,
)

VIP = "192.0.2.10"
WEB = "default/web"


@contextlib.asynccontextmanager
async def client_for(apiserver: ApiServerEmulator) -> AsyncIterator[LightkubeApi]:
    api = _client_for(apiserver)
    try:
        yield api
    finally:
        await api.close()


def winner(ip: str = VIP, nodes: tuple[str, ...] = NODES) -> str:
    chosen = core.announcing_node(ip, nodes)
    assert chosen is not None
    return chosen


def seed_web(apiserver: ApiServerEmulator, **ad: Any) -> None:
    apiserver.seed(*basics(), advertisement(**ad), holding("web", VIP))
    apiserver.seed(endpoints("web", "n1"))


async def test_announcing_node_writes_one_status_as_metallb_does(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver, interfaces=["eth0", "eth9"])
    pod = PodRef("speaker-abcde", "0b6c5a3e-1111-2222-3333-444455556666")
    async with fleet(apiserver, pod=pod) as group:
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, winner())})
        await group.settled()
        (status,) = l2statuses(apiserver)
        meta = status["metadata"]
        assert (status["apiVersion"], status["kind"]) == ("metallb.io/v1beta1", "ServiceL2Status")
        assert meta["namespace"] == NS
        assert meta["name"].startswith("l2-")
        assert meta["labels"] == {
            "metallb.io/node": winner(),
            "metallb.io/service-name": "web",
            "metallb.io/service-namespace": "default",
        }
        assert meta["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}
        ]
        assert status["status"] == {
            "node": winner(),
            "serviceName": "web",
            "serviceNamespace": "default",
            "interfaces": [{"name": "eth0"}],  # allowed and present: eth9 does not exist here
        }


async def test_status_names_no_interface_when_every_interface_is_allowed(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, winner())})
        (status,) = l2statuses(apiserver)
        assert "interfaces" not in status["status"]
        assert "ownerReferences" not in status["metadata"]  # no Pod known


async def test_cluster_wide_list_shows_who_announces_each_service(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    apiserver.seed(
        holding("api", "192.0.2.11", namespace="shop"), endpoints("api", "n2", namespace="shop")
    )
    async with fleet(apiserver) as group:
        expected = {(WEB, winner()), ("shop/api", winner("192.0.2.11"))}
        await group.wait_for(lambda: announced_in_status(apiserver) == expected)
        async with client_for(apiserver) as api:  # kubectl get servicel2statuses -A
            listed = await api.list(SERVICE_L2_STATUS)
        assert {(s["status"]["serviceNamespace"], s["status"]["node"]) for s in listed.items} == {
            ("default", winner()),
            ("shop", winner("192.0.2.11")),
        }


async def test_hard_death_moves_the_status_to_the_successor_and_removes_the_dead_ones(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        first = winner()
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, first)})
        await group[first].crash()
        after = winner(nodes=tuple(n for n in NODES if n != first))
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, after)})
        await group.settled()
        assert len(l2statuses(apiserver)) == 1


async def test_graceful_stop_deletes_its_status_and_the_successor_writes_its_own(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        first = winner()
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, first)})
        (old,) = l2statuses(apiserver)
        await group[first].halt()
        after = winner(nodes=tuple(n for n in NODES if n != first))
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, after)})
        await group.settled()
        deletes = apiserver.request_log.select(verb="delete", resource="servicel2statuses")
        assert [(d.name, d.namespace) for d in deletes] == [(old["metadata"]["name"], NS)]


async def test_withdrawal_deletes_the_status(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver)
    async with fleet(apiserver) as group:
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, winner())})
        async with client_for(apiserver) as api:
            await api.delete(ENDPOINT_SLICE, "web-slice", namespace="default")
            await group.wait_for(lambda: l2statuses(apiserver) == [])
            apiserver.seed(endpoints("web", "n1"))
            await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, winner())})
            await api.delete(SERVICE, "web", namespace="default")
            await group.wait_for(lambda: l2statuses(apiserver) == [])


async def test_nothing_is_written_when_nothing_changed(apiserver: ApiServerEmulator) -> None:
    seed_web(apiserver, interfaces=["eth0"])
    async with fleet(apiserver) as group:
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, winner())})
        await group.settled()
        assert l2status_writes(apiserver) == 2  # create, then the status
        async with client_for(apiserver) as api:
            # A Node change and an unrelated Service re-elect everything: same answer.
            await api.patch(NODE, "n3", {"metadata": {"labels": {"zone": "b"}}})
            apiserver.seed(holding("other", "198.51.100.1"))
        await group.settled()
        assert l2status_writes(apiserver) == 2


async def test_status_deleted_by_another_node_is_written_again(
    apiserver: ApiServerEmulator,
) -> None:
    # After a partition, a node that took this one for dead deletes its status; this node
    # still announces the Service, so it writes its status again.
    seed_web(apiserver)
    async with fleet(apiserver, nodes=("n1",)) as group:
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, "n1")})
        (old,) = l2statuses(apiserver)
        async with client_for(apiserver) as api:
            await api.delete(SERVICE_L2_STATUS, old["metadata"]["name"], namespace=NS)

        def rewritten() -> bool:
            names = [s["metadata"]["name"] for s in l2statuses(apiserver)]
            return len(names) == 1 and names[0] != old["metadata"]["name"]

        await group.wait_for(rewritten)
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, "n1")})


async def test_new_allowed_interfaces_update_the_status_in_place(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver, interfaces=["eth0"])
    async with fleet(apiserver) as group:
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, winner())})
        (before,) = l2statuses(apiserver)
        async with client_for(apiserver) as api:
            await api.patch(
                L2_ADVERTISEMENT, "l2", {"spec": {"interfaces": ["eth1"]}}, namespace=NS
            )

        def moved() -> bool:
            statuses = l2statuses(apiserver)
            return [s["status"].get("interfaces") for s in statuses] == [[{"name": "eth1"}]]

        await group.wait_for(moved)
        assert l2statuses(apiserver)[0]["metadata"]["name"] == before["metadata"]["name"]


async def test_restarted_speaker_adopts_its_status_without_writing(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    apiserver.seed(node("n9", {"kubernetes.io/hostname": "n9"}))
    async with fleet(apiserver, nodes=("n1",)) as group:
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, "n1")})
        await group.settled()
        await group["n1"].crash()  # nothing withdrawn, nothing deleted
        writes = l2status_writes(apiserver)
        group.start("n1")
        await group.all_alive()
        await group.wait_for(lambda: group["n1"].holds() != set())
        await group.settled()
        await group.wait_for(lambda: group["n1"].speaker.l2status.idle)
        assert l2status_writes(apiserver) == writes
        assert announced_in_status(apiserver) == {(WEB, "n1")}


async def test_restarted_speaker_deletes_its_statuses_it_no_longer_serves(
    apiserver: ApiServerEmulator,
) -> None:
    seed_web(apiserver)
    async with fleet(apiserver, nodes=("n1",)) as group:
        await group.wait_for(lambda: announced_in_status(apiserver) == {(WEB, "n1")})
        await group["n1"].crash()
        async with client_for(apiserver) as api:
            await api.delete(ENDPOINT_SLICE, "web-slice", namespace="default")
        group.start("n1")
        await group.wait_for(lambda: l2statuses(apiserver) == [])


async def test_speaker_announces_without_the_crd_and_writes_once_it_exists() -> None:
    async with ApiServerEmulator(strict=True, install_metallb_crds=False) as apiserver:
        await apiserver.start()
        pools, advertisements, statuses = metallb_crds()
        apiserver.seed(pools, advertisements)
        seed_web(apiserver)
        async with fleet(apiserver) as group:
            await group.announced_by(VIP, {winner()})
            apiserver.seed(statuses)
            await group.wait_for(
                lambda: announced_in_status(apiserver) == {(WEB, winner())}, timeout=15
            )
