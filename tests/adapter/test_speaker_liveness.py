"""Speaker liveness: judging Leases (pure, times given) and keeping one (against the emulator)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from announcers.kubernetes.client import LEASE, LightkubeApi
from announcers.kubernetes.liveness import (
    LEASE_LABELS,
    Liveness,
    NodeLease,
    lease_name,
    parse_micro_time,
)
from announcers.kubernetes.status import micro_time
from tests.support.emulator import ApiServerEmulator

from .controller_kit import NS, client_for
from .speaker_kit import LEASES

WALL = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)


def lease(
    holder: str | None, renewed: datetime.datetime = WALL, duration: int = 1
) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaseDurationSeconds": duration, "renewTime": micro_time(renewed)}
    if holder is not None:
        spec["holderIdentity"] = holder
    return {"spec": spec}


def later(seconds: float) -> datetime.datetime:
    return WALL + datetime.timedelta(seconds=seconds)


# -- Liveness (pure) ------------------------------------------------------------------------------


def test_lease_is_fresh_for_its_duration_after_it_was_seen() -> None:
    live = Liveness()
    live.observe("a", lease("n1"), now=10.0, wall=WALL)
    assert (live.alive(10.99), live.alive(11.0)) == (frozenset({"n1"}), frozenset())


def test_a_renewal_seen_restarts_the_duration_on_our_clock() -> None:
    live = Liveness()
    live.observe("a", lease("n1"), now=10.0, wall=WALL)
    # The renewTime says 5 s later, our clock 0.5 s: our clock counts, not theirs.
    live.observe("a", lease("n1", later(5)), now=10.5, wall=WALL)
    assert (live.alive(11.4), live.alive(11.5)) == (frozenset({"n1"}), frozenset())


def test_seeing_the_same_version_again_does_not_refresh_it() -> None:
    live = Liveness()
    live.observe("a", lease("n1"), now=10.0, wall=WALL)
    live.observe("a", lease("n1"), now=10.9, wall=WALL)
    assert live.alive(11.0) == frozenset()


def test_lease_seen_first_is_dated_by_its_renew_time() -> None:
    live = Liveness()
    live.observe("a", lease("n1", WALL, duration=2), now=10.0, wall=later(1.5))
    assert (live.alive(10.4), live.alive(10.5)) == (frozenset({"n1"}), frozenset())


def test_lease_seen_first_long_after_its_renewal_is_stale_at_once() -> None:
    live = Liveness()
    live.observe("a", lease("n1"), now=10.0, wall=later(3600))
    assert live.alive(10.0) == frozenset()


def test_renew_time_in_the_future_counts_from_now() -> None:
    live = Liveness()
    live.observe("a", lease("n1", later(30)), now=10.0, wall=WALL)
    assert (live.alive(10.9), live.alive(11.0)) == (frozenset({"n1"}), frozenset())


def test_lease_without_a_readable_renew_time_is_stale_at_first_sight() -> None:
    live = Liveness()
    live.observe(
        "a", {"spec": {"holderIdentity": "n1", "leaseDurationSeconds": 1}}, now=10.0, wall=WALL
    )
    assert live.alive(10.0) == frozenset()


def test_given_up_lease_means_not_alive_at_once() -> None:
    live = Liveness()
    live.observe("a", lease("n1"), now=10.0, wall=WALL)
    live.observe("a", lease(None, later(0.1)), now=10.1, wall=WALL)
    assert live.alive(10.1) == frozenset()


def test_deleted_lease_means_not_alive_at_once() -> None:
    live = Liveness()
    live.observe("a", lease("n1"), now=10.0, wall=WALL)
    live.observe("a", None, now=10.1, wall=WALL)
    assert live.alive(10.1) == frozenset()


def test_next_expiry_is_the_earliest_fresh_lease_going_stale() -> None:
    live = Liveness()
    live.observe("a", lease("n1"), now=10.0, wall=WALL)
    live.observe("b", lease("n2", duration=3), now=10.5, wall=WALL)
    assert (live.next_expiry(10.6), live.next_expiry(11.2), live.next_expiry(13.5)) == (
        11.0,
        13.5,
        None,
    )


def renewals(live: Liveness, key: str, holder: str, times: list[float]) -> None:
    for now in times:
        live.observe(key, lease(holder, later(now)), now=now, wall=later(now))


def test_stale_peer_stays_alive_while_our_own_lease_is_not_seen_renewed() -> None:
    live = Liveness(me="me")
    renewals(live, "mine", "me", [10.0])
    renewals(live, "peer", "n1", [10.1])
    # Nothing more comes (our watch is down): the peer's silence proves nothing.
    assert live.alive(12.0) == frozenset({"n1"})


def test_stale_peer_is_dead_once_our_own_lease_was_seen_renewed_twice_since() -> None:
    live = Liveness(me="me")
    renewals(live, "mine", "me", [9.9])
    renewals(live, "peer", "n1", [10.0])
    renewals(live, "mine", "me", [10.25])
    assert live.alive(11.0) == frozenset({"me", "n1"})  # one renewal since: not enough
    renewals(live, "mine", "me", [10.5])
    assert live.alive(11.0) == frozenset({"me"})


def test_our_own_lease_is_judged_by_freshness_alone() -> None:
    live = Liveness(me="me")
    renewals(live, "mine", "me", [10.0])
    assert live.alive(11.0) == frozenset()


def test_parse_micro_time_reads_kubernetes_time_formats() -> None:
    assert parse_micro_time("2026-03-01T12:00:00Z") == WALL
    assert parse_micro_time("2026-03-01T12:00:00.5+00:00") == later(0.5)
    assert parse_micro_time("yesterday") is None


def test_lease_names_of_long_node_names_stay_valid_and_distinct() -> None:
    long_a, long_b = "a" * 250, "a" * 249 + "b"
    names = {lease_name(long_a), lease_name(long_b)}
    assert len(names) == 2
    assert all(len(name) <= 253 for name in names)


# -- NodeLease (against the emulator) --------------------------------------------------------


@pytest_asyncio.fixture
async def api(apiserver: ApiServerEmulator) -> AsyncIterator[LightkubeApi]:
    client = client_for(apiserver)
    yield client
    await client.close()


def node_lease(api: LightkubeApi, node: str = "n1", **kwargs: Any) -> NodeLease:
    return NodeLease(api, namespace=NS, node=node, duration=1, renew_period=0.25, **kwargs)


async def test_first_renewal_creates_the_labelled_lease(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    assert await node_lease(api, wall=lambda: WALL).renew()
    stored = apiserver.read(LEASES, NS, "metallb-core-speaker-n1")
    assert stored is not None
    assert stored["metadata"]["labels"] == dict(LEASE_LABELS)
    assert stored["spec"] == {
        "holderIdentity": "n1",
        "leaseDurationSeconds": 1,
        "renewTime": micro_time(WALL),
        "acquireTime": micro_time(WALL),
        "leaseTransitions": 0,
    }


async def test_renewal_is_one_patch_of_the_renew_time(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    times = iter([WALL, later(0.25)])
    keeper = node_lease(api, wall=lambda: next(times))
    await keeper.renew()
    apiserver.request_log.clear()
    await keeper.renew()
    assert [(r.verb, r.resource) for r in apiserver.request_log] == [("patch", "leases")]
    stored = apiserver.read(LEASES, NS, "metallb-core-speaker-n1")
    assert stored is not None
    assert stored["spec"]["renewTime"] == micro_time(later(0.25))
    assert stored["spec"]["acquireTime"] == micro_time(WALL)


async def test_release_empties_the_holder(api: LightkubeApi, apiserver: ApiServerEmulator) -> None:
    keeper = node_lease(api)
    await keeper.renew()
    assert await keeper.release()
    stored = apiserver.read(LEASES, NS, "metallb-core-speaker-n1")
    assert stored is not None
    assert stored["spec"].get("holderIdentity") is None


async def test_release_leaves_a_lease_renewed_by_a_newer_speaker_of_the_node(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    old, new = node_lease(api), node_lease(api)
    await old.renew()
    await new.renew()  # a rolling update: the new pod renews the same Lease
    assert not await old.release()
    stored = apiserver.read(LEASES, NS, "metallb-core-speaker-n1")
    assert stored is not None
    assert stored["spec"]["holderIdentity"] == "n1"


async def test_release_of_a_lease_changed_since_but_still_carrying_our_renewal_works(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    keeper = node_lease(api)
    await keeper.renew()
    # A newer version we did not write (as when the answer to our last renewal is lost).
    await api.patch(LEASE, keeper.name, {"metadata": {"annotations": {"x": "y"}}}, namespace=NS)
    assert await keeper.release()
    stored = apiserver.read(LEASES, NS, keeper.name)
    assert stored is not None
    assert stored["spec"].get("holderIdentity") is None


async def test_release_without_a_renewal_does_nothing(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    assert not await node_lease(api).release()
    assert apiserver.request_log.count(resource="leases") == 0


async def test_failed_renewals_are_counted_and_reported(
    api: LightkubeApi, apiserver: ApiServerEmulator
) -> None:
    reports: list[bool] = []
    keeper = node_lease(api, on_renewed=reports.append)
    await keeper.renew()
    await apiserver.go_away("503")
    await keeper.renew()
    await keeper.renew()
    await apiserver.come_back()
    await keeper.renew()
    assert reports == [True, False, False, True]
    assert keeper.failures == 0


@pytest.mark.parametrize("period", [0.0, 1.0, 2.5])
def test_speaker_settings_refuse_a_renew_period_not_shorter_than_the_lease(period: float) -> None:
    from announcers.kubernetes.speaker import SpeakerSettings

    with pytest.raises(ValueError, match="renew period"):
        SpeakerSettings(node="n1", lease_duration=1, renew_period=period)
