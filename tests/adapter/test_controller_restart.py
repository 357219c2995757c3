"""Restart safety, write conflicts and API outages, end to end."""

from __future__ import annotations

import asyncio

from announcers.kubernetes.client import SERVICE
from tests.support.emulator import ApiServerEmulator, api_error

from .controller_kit import (
    NS,
    SERVICES,
    annotation_of,
    client_for,
    events_about,
    every_address,
    ips_of,
    namespace,
    pool,
    quiet,
    reasons,
    running,
    service,
)

RANGE = "10.0.0.0-10.0.1.253"  # 510 addresses


def _statuses(apiserver: ApiServerEmulator) -> dict[str, tuple[str, ...]]:
    return {
        s["metadata"]["name"]: tuple(
            e["ip"] for e in (s["status"]["loadBalancer"].get("ingress") or [])
        )
        for s in apiserver.list_stored(SERVICES)
    }


async def test_restart_moves_no_address_and_rewrites_no_status(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("p", RANGE))
    apiserver.seed(*(service(f"web-{i:03d}") for i in range(510)))
    async with running(apiserver, identity="first") as first:
        await first.synced()
        await quiet(apiserver, first.replica, timeout=60)
        # 50 more Services, listed (and created) before the others would be: pending.
        apiserver.seed(*(service(f"a-pending-{i:02d}") for i in range(50)))
        await quiet(apiserver, first.replica, timeout=30)
    gone = [f"web-{i:03d}" for i in range(0, 510, 51)]  # 10 holes, while no controller runs
    for name in gone:
        apiserver.remove(SERVICES, "default", name)
    before = _statuses(apiserver)
    held = {name for name, ips in before.items() if ips}
    apiserver.request_log.clear()
    async with running(apiserver, identity="second") as second:
        await second.synced()
        await quiet(apiserver, second.replica, timeout=30)
    after = _statuses(apiserver)
    rewritten = {
        r.name
        for r in apiserver.request_log.select(verb="patch", resource="services")
        if r.name in held
    }
    assert len(held) == 500
    assert rewritten == set()
    assert {name: after[name] for name in held} == {name: before[name] for name in held}
    freed = {ip for name in gone for ip in _ips_before_removal(name)}
    newly = {name: ips for name, ips in after.items() if name not in held and ips}
    assert len(newly) == 10
    assert {ip for ips in newly.values() for ip in ips} == freed
    assert len(every_address(apiserver)) == len(set(every_address(apiserver))) == 510


def _ips_before_removal(name: str) -> list[str]:
    # web-NNN got address NNN of the range (allocated in name order by the first controller).
    index = int(name.split("-")[1])
    return [f"10.0.{index // 256}.{index % 256}"]


async def test_restart_after_the_walkthrough_writes_nothing(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/30"))
    apiserver.seed(*(service(f"s{i}") for i in range(5)))
    async with running(apiserver, identity="first") as first:
        await quiet(apiserver, first.replica)
    apiserver.request_log.clear()
    async with running(apiserver, identity="second") as second:
        await quiet(apiserver, second.replica)
    writes = [
        (r.verb, r.resource)
        for r in apiserver.request_log
        if r.method in ("PATCH", "PUT", "POST") and r.resource != "leases"
    ]
    # Only the pending Service's AllocationFailed, again (a new controller, a new Event).
    assert writes == [("create", "events")]
    assert reasons(events_about(apiserver, "s4")) == [("Warning", "AllocationFailed")] * 2


async def test_conflict_on_every_first_status_write_is_retried(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/28"))
    apiserver.conflict_on_first_status_write()
    apiserver.seed(*(service(f"s{i}") for i in range(8)))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await apiserver.wait_for(lambda: all(ips_of(apiserver, f"s{i}") for i in range(8)))
        api = client_for(apiserver)
        await api.create(SERVICE, service("late"))
        await apiserver.wait_for(lambda: ips_of(apiserver, "late"))
        await quiet(apiserver, ctl.replica)
        await api.close()
    conflicts = apiserver.request_log.select(
        verb="patch", resource="services", subresource="status", status=409
    )
    assert {r.name for r in conflicts} == {*(f"s{i}" for i in range(8)), "late"}
    assert [ips_of(apiserver, f"s{i}")[0] for i in range(8)] == [f"192.0.2.{i}" for i in range(8)]
    assert ips_of(apiserver, "late") == ("192.0.2.8",)
    for name in [*(f"s{i}" for i in range(8)), "late"]:
        allocated = [e for e in events_about(apiserver, name) if e["reason"] == "IPAllocated"]
        assert len(allocated) == 1
        assert "series" not in allocated[0]


async def test_failed_status_write_is_retried_and_not_adopted_meanwhile(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/31"))
    apiserver["patch", "/api/v1/namespaces/default/services/first/status"][:3] << api_error(500)
    apiserver.seed(service("first"))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await apiserver.wait_for(lambda: ips_of(apiserver, "first"), timeout=10)
        await quiet(apiserver, ctl.replica)
    failed = apiserver.request_log.select(name="first", subresource="status", status=500)
    assert len(failed) == 3
    assert ips_of(apiserver, "first") == ("192.0.2.0",)
    assert annotation_of(apiserver, "first") == "p"


async def _history_never_cleared(apiserver: ApiServerEmulator, name: str) -> bool:
    had = False
    for version in apiserver.history(SERVICES, "default", name):
        if version is None:
            return True  # deleted: its story ends here
        ips = (version.get("status") or {}).get("loadBalancer", {}).get("ingress")
        if had and not ips:
            return False
        had = had or bool(ips)
    return True


async def test_api_away_for_ten_seconds_clears_nothing_and_catches_up(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/30"))
    apiserver.seed(service("a"), service("b"), service("c"), service("d"), service("e"))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await apiserver.wait_for(lambda: len(every_address(apiserver)) == 4)
        await quiet(apiserver, ctl.replica)
        before = _statuses(apiserver)
        await apiserver.go_away("refuse", seconds=10)
        # Meanwhile, other clients (through another API server) delete one and add one.
        holder = next(name for name, ips in before.items() if ips)
        apiserver.remove(SERVICES, "default", holder)
        await asyncio.sleep(10)
        await apiserver.wait_for(lambda: apiserver.available, timeout=5)
        await apiserver.wait_for(lambda: ips_of(apiserver, "e"), timeout=15)
        await quiet(apiserver, ctl.replica, timeout=15)
        assert not ctl.task.done()
        # It could not renew its Lease for longer than its deadline: it stepped down and
        # came back as leader for a second term, which started from a fresh list.
        assert ctl.replica.terms == 2
    after = _statuses(apiserver)
    assert ips_of(apiserver, "e") == before[holder]
    assert {n: ips for n, ips in after.items() if n != "e"} == {
        n: ips for n, ips in before.items() if n not in (holder, "e")
    }
    for name in after:
        assert await _history_never_cleared(apiserver, name)


async def test_api_answering_503_is_waited_out(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/30"))
    apiserver.seed(service("a"))
    async with running(apiserver) as ctl:
        await apiserver.wait_for(lambda: ips_of(apiserver, "a"))
        await quiet(apiserver, ctl.replica)
        await apiserver.go_away("503", seconds=2)
        apiserver.seed(service("b"))
        await apiserver.wait_for(lambda: apiserver.available, timeout=5)
        await apiserver.wait_for(lambda: ips_of(apiserver, "b"), timeout=15)
        assert not ctl.task.done()
    assert ips_of(apiserver, "a") == ("192.0.2.0",)
    assert ips_of(apiserver, "b") == ("192.0.2.1",)
    assert ("Normal", "IPAllocated") in reasons(events_about(apiserver, "b"))
