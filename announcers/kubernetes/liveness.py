"""Speaker liveness through Kubernetes itself: one ``coordination.k8s.io/v1`` Lease per node.

Each speaker keeps the Lease ``metallb-core-speaker-<node>`` in the MetalLB namespace alive
(:class:`NodeLease`: ``spec.renewTime`` patched every renew period, ``holderIdentity`` the
node's name, ``leaseDurationSeconds`` the lease duration). Every speaker watches all of them
and judges each one with :class:`Liveness`: a node is alive while its Lease is *fresh*, i.e.
it was last seen to change less than ``leaseDurationSeconds`` ago.

"Ago" is measured on the watching speaker's own monotonic clock, from the moment it *saw*
the change (as client-go's leader election and the node lifecycle controller do), so clock
skew between nodes does not matter. Only a Lease seen for the first time is dated by its
``renewTime`` against the local wall clock (clamped to ``[0, duration]``): a speaker that
starts does not take a dead node's Lease for a live one, and a skewed clock delays the
verdict by one renew period at most. A Lease whose ``holderIdentity`` is empty was given up
(:meth:`NodeLease.release`, on SIGTERM): its node is not alive, at once.

Silence is only evidence when the channel works: if this speaker's own connection to the
API server breaks, every other Lease stops changing too, in an order that owes nothing to
who died. So another node's Lease counts as stale only once this speaker has *seen its own
Lease renewed twice* since it last saw the other one change (two, because the last renewals
of two live speakers before an outage can straddle each other by up to one renew period).
With the defaults (renewed every 0.25 s, stale after 1 s) that evidence is there long before
the lease runs out, so it delays nothing; when the channel is down it never comes, and
nobody is declared dead for the outage.

:class:`Liveness` is pure (times are passed in); :class:`NodeLease` does the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from announcers.kubernetes.client import LEASE, Conflict, JsonDict, KubeApi, KubeError, NotFound
from announcers.kubernetes.logs import log_event
from announcers.kubernetes.status import micro_time

_log = logging.getLogger("announcers.kubernetes.liveness")

LEASE_PREFIX = "metallb-core-speaker-"
#: The labels of every speaker Lease; the speakers watch Leases with this selector.
LEASE_LABELS: Mapping[str, str] = {
    "app.kubernetes.io/name": "metallb-core",
    "app.kubernetes.io/component": "speaker",
}
_NAME_LIMIT = 253


def lease_name(node: str) -> str:
    """The name of ``node``'s Lease (a DNS subdomain, hashed down when too long).

    >>> lease_name("worker-1")
    'metallb-core-speaker-worker-1'
    """
    name = LEASE_PREFIX + node
    if len(name) <= _NAME_LIMIT:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:16]
    return f"{LEASE_PREFIX}{node[: _NAME_LIMIT - len(LEASE_PREFIX) - 17]}-{digest}"


def parse_micro_time(text: str) -> datetime.datetime | None:
    """A Kubernetes ``MicroTime`` (RFC 3339, UTC, any fraction), or None if it does not parse.

    >>> parse_micro_time("2026-01-02T03:04:05.250000Z").microsecond
    250000
    """
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


@dataclasses.dataclass
class _Seen:
    holder: str
    renew_time: str
    duration: float
    observed_at: float
    own_renewals_then: int = 0

    @property
    def expires_at(self) -> float:
        return self.observed_at + self.duration


class Liveness:
    """Which nodes' speakers are alive, judged from their Leases (see the module docstring).

    ``me`` is this speaker's node: its own Lease's renewals are the evidence that silence
    means death (None: judge by freshness alone).

    >>> live = Liveness()
    >>> wall = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    >>> lease = {"spec": {"holderIdentity": "n1", "leaseDurationSeconds": 1,
    ...                   "renewTime": micro_time(wall)}}
    >>> live.observe("ns/l1", lease, now=100.0, wall=wall)
    >>> live.alive(100.5), live.alive(101.0), live.next_expiry(100.5)
    (frozenset({'n1'}), frozenset(), 101.0)
    """

    def __init__(self, me: str | None = None) -> None:
        self.me = me
        self._leases: dict[str, _Seen] = {}
        self._own_renewals = 0  # changes of our own Lease seen so far

    def observe(
        self, key: str, lease: Mapping[str, Any] | None, *, now: float, wall: datetime.datetime
    ) -> None:
        """Take in the latest version of the Lease ``key`` (None: it was deleted)."""
        if lease is None:
            self._leases.pop(key, None)
            return
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        renewed = str(spec.get("renewTime") or "")
        try:
            duration = max(0.0, float(spec.get("leaseDurationSeconds") or 0))
        except (TypeError, ValueError):
            duration = 0.0
        before = self._leases.get(key)
        if before is not None and (before.holder, before.renew_time) == (holder, renewed):
            before.duration = duration
            return
        if before is not None:
            observed = now
        else:
            stamp = parse_micro_time(renewed)
            age = duration if stamp is None else (wall - stamp).total_seconds()
            observed = now - min(max(age, 0.0), duration)
        if holder and holder == self.me:
            self._own_renewals += 1
        self._leases[key] = _Seen(holder, renewed, duration, observed, self._own_renewals)

    def _alive(self, seen: _Seen, now: float) -> bool:
        if not seen.holder:
            return False  # given up
        if now < seen.expires_at:
            return True
        if self.me is None or seen.holder == self.me:
            return False
        # Stale, but is our channel working? Only if our own Lease kept changing since.
        return self._own_renewals - seen.own_renewals_then < 2

    def alive(self, now: float) -> frozenset[str]:
        """The nodes holding a fresh Lease at ``now`` (or a stale one, while this speaker
        has no evidence that its own view is current)."""
        return frozenset(s.holder for s in self._leases.values() if self._alive(s, now))

    def next_expiry(self, now: float) -> float | None:
        """When the next fresh Lease goes stale (None: none is fresh)."""
        times = [s.expires_at for s in self._leases.values() if s.holder and now < s.expires_at]
        return min(times) if times else None


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class NodeLease:
    """Keeps this node's Lease alive, and gives it up.

    ``await run()`` renews every ``renew_period`` seconds (at a fixed rate: a slow request
    delays no later tick) until cancelled. A renewal is one merge PATCH of ``spec``; a
    missing Lease is created. ``await release()`` empties ``holderIdentity`` with a
    conditional write on the last version this speaker wrote, so it never gives up a Lease
    that a newer speaker of the same node (a rolling update) has renewed since.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        node: str,
        duration: int,
        renew_period: float,
        on_renewed: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.node = node
        self.name = lease_name(node)
        self.duration = duration
        self.renew_period = renew_period
        self._on_renewed = on_renewed
        self._clock = clock
        self._wall = wall
        self._version = ""  # resourceVersion of our last write
        self._written: list[str] = []  # the last renewTimes we wrote
        self._acquired = False
        self.failures = 0  # consecutive failed renewals

    def _spec(self, now: str) -> JsonDict:
        spec: JsonDict = {
            "holderIdentity": self.node,
            "leaseDurationSeconds": self.duration,
            "renewTime": now,
        }
        if not self._acquired:
            spec["acquireTime"] = now
        return spec

    def _wrote(self, lease: Mapping[str, Any], now: str) -> None:
        self._version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        self._written = [*self._written[-2:], now]
        self._acquired = True

    async def renew(self) -> bool:
        """One renewal (creating the Lease if needed); True when it was written."""
        now = micro_time(self._wall())
        try:
            try:
                lease = await self.api.patch(
                    LEASE, self.name, {"spec": self._spec(now)}, namespace=self.namespace
                )
            except NotFound:
                body = {
                    "apiVersion": LEASE.api_version,
                    "kind": LEASE.kind,
                    "metadata": {
                        "name": self.name,
                        "namespace": self.namespace,
                        "labels": dict(LEASE_LABELS),
                    },
                    "spec": {**self._spec(now), "acquireTime": now, "leaseTransitions": 0},
                }
                lease = await self.api.create(LEASE, body)
                log_event(_log, logging.INFO, "lease created", lease=self.where)
        except KubeError as error:
            self.failures += 1
            if self.failures == 1 or self.failures % 20 == 0:
                log_event(
                    _log,
                    logging.WARNING,
                    "lease not renewed",
                    lease=self.where,
                    error=str(error),
                    failures=self.failures,
                )
            self._report(False)
            return False
        if self.failures:
            log_event(_log, logging.INFO, "lease renewed again", lease=self.where)
        self.failures = 0
        self._wrote(lease, now)
        self._report(True)
        return True

    def _report(self, ok: bool) -> None:
        if self._on_renewed is not None:
            self._on_renewed(ok)

    @property
    def where(self) -> str:
        """``namespace/name`` of the Lease, for logs."""
        return f"{self.namespace}/{self.name}"

    async def run(self) -> None:
        """Renew at a fixed rate until cancelled."""
        tick = self._clock()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self.duration, self.renew_period)):
                    await self.renew()
            tick += self.renew_period
            now = self._clock()
            while tick <= now:  # late (a slow request): skip to the next tick, no burst
                tick += self.renew_period
            await asyncio.sleep(tick - now)

    async def release(self) -> bool:
        """Give the Lease up (``holderIdentity`` emptied) if it is still ours; True when done."""
        if not self._acquired:
            return False
        self._acquired = False
        for _ in range(2):
            patch = {
                "metadata": {"resourceVersion": self._version},
                "spec": {"holderIdentity": None, "renewTime": micro_time(self._wall())},
            }
            try:
                await self.api.patch(LEASE, self.name, patch, namespace=self.namespace)
            except Conflict:
                # Our last renewal may have landed without us reading the answer: if the
                # Lease still carries one of our renewTimes, it is ours to give up.
                try:
                    lease = await self.api.get(LEASE, self.name, namespace=self.namespace)
                except KubeError:
                    return False
                spec = lease.get("spec") or {}
                if spec.get("renewTime") not in self._written or not spec.get("holderIdentity"):
                    log_event(
                        _log, logging.INFO, "lease renewed by another speaker", lease=self.where
                    )
                    return False
                self._version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
                continue
            except KubeError as error:
                log_event(
                    _log, logging.WARNING, "lease not released", lease=self.where, error=str(error)
                )
                return False
            log_event(_log, logging.INFO, "lease released", lease=self.where)
            return True
        return False
