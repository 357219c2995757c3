"""Issue 10's three sequences, end to end: never one address in two Services' status.

A :class:`~.cluster_checks.Watchdog` sees every change the emulator stores, so an address
shown twice for a millisecond fails the test as surely as one shown for seconds.
"""

from __future__ import annotations

import copy

import metallb_core as core
from announcers.kubernetes.client import SERVICE
from tests.support.emulator import ApiServerEmulator, api_error

from .cluster_checks import Watchdog, fixpoint_problems
from .controller_kit import (
    NS,
    SERVICES,
    client_for,
    events_about,
    ips_of,
    namespace,
    pool,
    quiet,
    reasons,
    running,
    service,
)

POOL_A = pool("pool-a", "10.77.0.0-10.77.0.9")
POOL_R = pool("pool-r", "10.77.1.10-10.77.1.19")


def _edit(apiserver: ApiServerEmulator, name: str, change: object) -> None:
    """Change a stored Service as a user would (status kept), even while the API is away."""
    stored = copy.deepcopy(apiserver.read(SERVICES, "default", name))
    assert stored is not None
    change(stored)  # type: ignore[operator]
    apiserver.seed(stored)


def _swap_pools(apiserver: ApiServerEmulator) -> None:
    def to(pool_name: str) -> object:
        def change(s: dict[str, object]) -> None:
            s["metadata"]["annotations"]["metallb.io/address-pool"] = pool_name  # type: ignore[index]

        return change

    _edit(apiserver, "a", to("pool-r"))
    _edit(apiserver, "b", to("pool-a"))


async def _two_pools(apiserver: ApiServerEmulator) -> Watchdog:
    apiserver.seed(namespace(NS), POOL_A, POOL_R)
    apiserver.seed(
        service("a", annotations={"metallb.io/address-pool": "pool-a"}),
        service("b", annotations={"metallb.io/address-pool": "pool-r"}),
    )
    async with running(apiserver, identity="first") as first:
        await quiet(apiserver, first.replica)
    assert (ips_of(apiserver, "a"), ips_of(apiserver, "b")) == (("10.77.0.0",), ("10.77.1.10",))
    return Watchdog(apiserver)


async def test_sequence_1_swapped_pools_in_a_new_term(apiserver: ApiServerEmulator) -> None:
    watchdog = await _two_pools(apiserver)
    _swap_pools(apiserver)  # while no controller runs
    apiserver.seed(service("pending"))
    async with running(apiserver, identity="second") as second:
        await quiet(apiserver, second.replica)
    assert watchdog.violations == []
    assert ips_of(apiserver, "a") == ("10.77.1.10",)
    assert ips_of(apiserver, "b") == ("10.77.0.0",)
    assert ips_of(apiserver, "pending") == ("10.77.0.1",)
    assert fixpoint_problems(apiserver) == []


async def test_sequence_1_swapped_pools_during_an_outage(apiserver: ApiServerEmulator) -> None:
    watchdog = await _two_pools(apiserver)
    async with running(apiserver, identity="second") as second:
        await quiet(apiserver, second.replica)
        await apiserver.go_away("refuse", seconds=4)
        _swap_pools(apiserver)
        await apiserver.wait_for(lambda: apiserver.available, timeout=10)
        await apiserver.wait_for(lambda: ips_of(apiserver, "a") == ("10.77.1.10",), timeout=30)
        await quiet(apiserver, second.replica, timeout=30)
    assert watchdog.violations == []
    assert ips_of(apiserver, "b") == ("10.77.0.0",)
    assert fixpoint_problems(apiserver) == []


async def test_sequence_2_a_failed_write_does_not_undo_the_others(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("p", "10.77.0.10-10.77.0.14"))
    apiserver.seed(*(service(f"h{i}") for i in range(2)))
    async with running(apiserver, identity="first") as first:
        await quiet(apiserver, first.replica)
    watchdog = Watchdog(apiserver)
    # In the next term's first round, h0 moves (it asks for .14 now) and x and y take
    # addresses; h0's write and y's write fail (500, 409).
    _edit(
        apiserver,
        "h0",
        lambda s: s["spec"].__setitem__("loadBalancerIP", "10.77.0.14"),
    )
    apiserver.seed(service("x"), service("y"))
    path = "/api/v1/namespaces/default/services/{}/status"
    apiserver["patch", path.format("y")][:1] << api_error(409, "Conflict", "touched")
    # kmock counts the matching requests made before the reaction too: h0's first status
    # write was the first term's.
    apiserver["patch", path.format("h0")][1:2] << api_error(500)
    async with running(apiserver, identity="second") as second:
        await second.synced()
        api = client_for(apiserver)
        await api.create(SERVICE, service("z"))
        await api.close()
        await quiet(apiserver, second.replica, timeout=30)
    failures = apiserver.request_log.select(verb="patch", resource="services", subresource="status")
    assert sorted((r.name, r.status) for r in failures if (r.status or 0) >= 400) == [
        ("h0", 500),
        ("y", 409),
    ]
    assert watchdog.violations == []
    assert fixpoint_problems(apiserver) == []
    shown = {n: ips_of(apiserver, n) for n in ("h0", "h1", "x", "y", "z")}
    assert shown["h0"] == ("10.77.0.14",)
    assert sorted(ip for ips in shown.values() for ip in ips) == [
        f"10.77.0.{i}" for i in range(10, 15)
    ]


def _sharing(name: str, port: int) -> dict[str, object]:
    return service(name, ports=[port], annotations={"metallb.io/allow-shared-ip": "k"})


async def _sharers(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), POOL_A)
    apiserver.seed(_sharing("s1", 80))
    apiserver.seed(_sharing("s2", 443))  # created after s1


def _collide(s: dict[str, object]) -> None:
    s["spec"]["ports"] = [{"name": "p443", "port": 443, "protocol": "TCP"}]  # type: ignore[index]


async def test_sequence_3_the_unchanged_sharer_is_kept_by_a_new_leader(
    apiserver: ApiServerEmulator,
) -> None:
    await _sharers(apiserver)
    async with running(apiserver, identity="first") as first:
        await quiet(apiserver, first.replica)
    assert ips_of(apiserver, "s1") == ips_of(apiserver, "s2") == ("10.77.0.0",)
    watchdog = Watchdog(apiserver)
    _edit(apiserver, "s1", _collide)  # while no leader runs
    async with running(apiserver, identity="second") as second:
        await quiet(apiserver, second.replica)
    assert watchdog.violations == []
    assert ips_of(apiserver, "s2") == ("10.77.0.0",)
    assert ips_of(apiserver, "s1") == ("10.77.0.1",)
    assert ("Warning", "IPConflict") in reasons(events_about(apiserver, "s1"))
    assert fixpoint_problems(apiserver) == []


async def test_sequence_3_a_running_leader_moves_the_changed_one(
    apiserver: ApiServerEmulator,
) -> None:
    await _sharers(apiserver)
    async with running(apiserver) as ctl:
        await quiet(apiserver, ctl.replica)
        watchdog = Watchdog(apiserver)
        api = client_for(apiserver)
        await api.patch(
            SERVICE, "s1", {"spec": {"ports": [{"name": "p443", "port": 443, "protocol": "TCP"}]}}
        )
        await api.close()
        await apiserver.wait_for(lambda: ips_of(apiserver, "s1") == ("10.77.0.1",))
        await quiet(apiserver, ctl.replica)
    assert watchdog.violations == []
    assert ips_of(apiserver, "s2") == ("10.77.0.0",)
    assert fixpoint_problems(apiserver) == []


async def test_the_inputs_digest_is_written_with_the_status(apiserver: ApiServerEmulator) -> None:
    await _sharers(apiserver)
    async with running(apiserver) as ctl:
        await quiet(apiserver, ctl.replica)
    stored = apiserver.read(SERVICES, "default", "s1")
    assert stored is not None
    notes = stored["metadata"]["annotations"]
    assert notes[core.INPUTS_ANNOTATION] == core.inputs_digest(stored)


async def test_an_entry_with_foreign_fields_is_rewritten_in_place(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), POOL_A)
    body = service("a")
    body["status"] = {"loadBalancer": {"ingress": [{"ip": "10.77.0.3", "hostname": "x"}]}}
    apiserver.seed(body)
    watchdog = Watchdog(apiserver)
    async with running(apiserver) as ctl:
        await quiet(apiserver, ctl.replica)
    stored = apiserver.read(SERVICES, "default", "a")
    assert stored is not None
    assert stored["status"]["loadBalancer"]["ingress"] == [{"ip": "10.77.0.3", "ipMode": "VIP"}]
    assert watchdog.violations == []
