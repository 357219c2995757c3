"""Leader election and informers against the emulator (real HTTP, through lightkube)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from announcers.kubernetes.client import LEASE, SERVICE, LightkubeApi
from announcers.kubernetes.informer import Backoff, Informer
from announcers.kubernetes.leader import LeaderElector, LeaderTiming
from tests.support.emulator import ApiServerEmulator

from .controller_kit import LEASES, NS, client_for, service

FAST = LeaderTiming(lease_duration=3.0, renew_deadline=1.0, retry_period=0.2)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def api(apiserver: ApiServerEmulator) -> AsyncIterator[LightkubeApi]:
    client = client_for(apiserver)
    yield client
    await client.close()


def elector(api: LightkubeApi, identity: str, **kwargs: Any) -> LeaderElector:
    return LeaderElector(api, namespace=NS, identity=identity, **kwargs)


def _holder(apiserver: ApiServerEmulator) -> Any:
    lease = apiserver.read(LEASES, NS, "metallb-core-controller")
    return None if lease is None else lease["spec"].get("holderIdentity")


async def test_of_two_candidates_one_leads(api: LightkubeApi, apiserver: ApiServerEmulator) -> None:
    a, b = elector(api, "a"), elector(api, "b")
    results = [await a.try_acquire_or_renew(), await b.try_acquire_or_renew()]
    assert results == [True, False]
    assert _holder(apiserver) == "a"


async def test_racing_candidates_get_one_lease(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    candidates = [elector(api, f"c{i}") for i in range(5)]
    results = await asyncio.gather(*(c.try_acquire_or_renew() for c in candidates))
    assert results.count(True) == 1
    assert _holder(apiserver) == f"c{results.index(True)}"


async def test_released_lease_is_taken_at_once(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    a, b = elector(api, "a"), elector(api, "b")
    stop = asyncio.Event()
    await a.acquire(stop)
    assert not await b.try_acquire_or_renew()
    assert await a.release()
    assert await b.try_acquire_or_renew()
    lease = apiserver.read(LEASES, NS, "metallb-core-controller")
    assert lease is not None
    assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseTransitions"]) == ("b", 1)


async def test_expired_lease_is_taken_after_its_duration_on_our_clock(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    clock = Clock()
    a = elector(api, "a")
    b = elector(api, "b", clock=clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.now += 14.9
    assert not await b.try_acquire_or_renew()
    clock.now += 0.2
    assert await b.try_acquire_or_renew()
    assert _holder(apiserver) == "b"


async def test_renewal_is_one_request(api: LightkubeApi, apiserver: ApiServerEmulator) -> None:
    a = elector(api, "a")
    await a.acquire(asyncio.Event())
    apiserver.request_log.clear()
    assert await a.try_acquire_or_renew()
    assert apiserver.request_log.by_verb() == {("update", "leases"): 1}


async def test_leader_with_a_stale_copy_reads_again(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    a = elector(api, "a")
    await a.acquire(asyncio.Event())
    await api.patch(
        LEASE, "metallb-core-controller", {"metadata": {"labels": {"x": "y"}}}, namespace=NS
    )
    assert await a.try_acquire_or_renew()
    assert _holder(apiserver) == "a"


async def test_leader_that_cannot_renew_steps_down(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    changes: list[bool] = []
    a = elector(api, "a", timing=FAST, on_change=changes.append)
    stop = asyncio.Event()
    await a.acquire(stop)
    await apiserver.go_away("refuse", seconds=5)
    await asyncio.wait_for(a.hold(stop), 5)
    await apiserver.come_back()
    assert changes == [True, False]
    assert not a.is_leader


# -- informers ------------------------------------------------------------------------------------


async def _informer(
    api: LightkubeApi, seen: list[tuple[str, str]]
) -> tuple[Informer, asyncio.Task[None]]:
    informer = Informer(
        api,
        SERVICE,
        lambda change, key, new, old: seen.append((change, key)),
        backoff=Backoff(initial=0.05, cap=0.2),
    )
    await informer.sync()
    return informer, asyncio.create_task(informer.run())


async def test_informer_resumes_after_a_break_without_replaying(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    apiserver.seed(service("a"))
    seen: list[tuple[str, str]] = []
    informer, task = await _informer(api, seen)
    await apiserver.wait_for(lambda: apiserver.request_log.count(verb="watch") == 1)
    await apiserver.go_away("refuse", seconds=0.3)
    apiserver.seed(service("b"))
    await apiserver.wait_for(lambda: ("ADDED", "default/b") in seen, timeout=5)
    task.cancel()
    assert seen == [("ADDED", "default/a"), ("ADDED", "default/b")]
    assert set(informer.objects) == {"default/a", "default/b"}


async def test_informer_lists_again_after_expiry_and_reports_deletions(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    apiserver.seed(service("a"), service("b"))
    seen: list[tuple[str, str]] = []
    informer, task = await _informer(api, seen)
    await apiserver.wait_for(lambda: apiserver.request_log.count(verb="watch") == 1)
    await apiserver.go_away("refuse", seconds=0.3)
    apiserver.remove("v1/services", "default", "a")
    apiserver.compact()
    await apiserver.wait_for(lambda: ("DELETED", "default/a") in seen, timeout=5)
    task.cancel()
    assert set(informer.objects) == {"default/b"}
    assert apiserver.request_log.count(verb="list", resource="services") == 2


async def test_informer_ignores_the_echo_of_an_observed_write(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    apiserver.seed(service("a"))
    seen: list[tuple[str, str]] = []
    informer, task = await _informer(api, seen)
    task.cancel()  # the echo then waits in the watch history until the watch resumes
    labels = {"metadata": {"labels": {"x": "y"}}}
    informer.observe(await api.patch(SERVICE, "a", labels, namespace="default"))
    task = asyncio.create_task(informer.run())
    relabel = {"metadata": {"labels": {"x": "z"}}}
    await api.patch(SERVICE, "a", relabel, namespace="default")
    await apiserver.wait_for(lambda: len(seen) == 2, timeout=5)
    task.cancel()
    assert seen == [("ADDED", "default/a"), ("MODIFIED", "default/a")]
    assert informer.objects["default/a"]["metadata"]["labels"] == {"x": "z"}


async def test_fold_write_reports_what_another_writer_changed_in_between(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    """The answer to our write can carry somebody else's change whose watch event is then
    older than the cache (and ignored): fold_write reports that change once, and nothing
    for what our own writes changed (the status, the annotations we set)."""
    apiserver.seed(service("a"))
    seen: list[tuple[str, str]] = []
    informer, task = await _informer(api, seen)
    task.cancel()  # the watch is down while the others write
    await api.patch(SERVICE, "a", {"spec": {"loadBalancerIP": "192.0.2.7"}}, namespace="default")
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    informer.fold_write(await api.patch(SERVICE, "a", status, namespace="default", status=True))
    assert seen == [("ADDED", "default/a"), ("MODIFIED", "default/a")]
    ours = {"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "p"}}}
    written = await api.patch(SERVICE, "a", ours, namespace="default")
    informer.fold_write(written, annotations=ours["metadata"]["annotations"])
    informer.fold_write(await api.patch(SERVICE, "a", status, namespace="default", status=True))
    assert len(seen) == 2  # our own writes are no news
    task = asyncio.create_task(informer.run())  # the stale events of all that are ignored
    await api.patch(SERVICE, "a", {"metadata": {"labels": {"x": "y"}}}, namespace="default")
    await apiserver.wait_for(lambda: len(seen) == 3, timeout=5)
    await asyncio.sleep(0.2)
    task.cancel()
    assert seen[2] == ("MODIFIED", "default/a")
    assert len(seen) == 3
    assert informer.objects["default/a"]["spec"]["loadBalancerIP"] == "192.0.2.7"
