"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection``.

One replica holds the Lease (``spec.holderIdentity``) and renews it every ``retry_period``;
the others try to take it every ``retry_period`` and succeed once it has not been renewed for
``lease_duration`` (measured on *their own* clock from when they last saw it change, so clock
skew between nodes does not matter) or once it is released. Every update carries the Lease's
``resourceVersion``, so of two replicas racing for it exactly one wins (the other gets 409).
A leader that cannot renew for ``renew_deadline`` stops considering itself leader, before
anybody else may take over (``renew_deadline < lease_duration``). :meth:`LeaderElector.release`
empties the holder, so a successor (or the restarted replica) takes over at its next try
instead of waiting for the Lease to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from announcers.kubernetes.client import (
    LEASE,
    AlreadyExists,
    Conflict,
    JsonDict,
    KubeApi,
    KubeError,
    NotFound,
)
from announcers.kubernetes.logs import log_event
from announcers.kubernetes.status import micro_time

_log = logging.getLogger("announcers.kubernetes.leader")

#: The controller's Lease, in the MetalLB namespace (docs/design/announcers-api.md).
CONTROLLER_LEASE = "metallb-core-controller"


@dataclasses.dataclass(frozen=True)
class LeaderTiming:
    """client-go's defaults: a 15 s lease, renewed every 2 s, given up after 10 s without."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopped."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


class LeaderElector:
    """Takes, renews and releases one Lease; see the module docstring.

    ``on_change(is_leader)`` is called whenever leadership starts or ends.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        identity: str,
        name: str = CONTROLLER_LEASE,
        timing: LeaderTiming | None = None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self.timing = timing or LeaderTiming()
        self._on_change = on_change
        self._clock = clock
        self._wall = wall
        self._observed: Any = None
        self._observed_at = 0.0
        self._lease: JsonDict | None = None  # the Lease as we last wrote it
        self.is_leader = False

    def _set_leader(self, leader: bool) -> None:
        if not leader:
            self._lease = None
        if leader != self.is_leader:
            self.is_leader = leader
            log_event(
                _log,
                logging.INFO,
                "became leader" if leader else "leadership ended",
                lease=f"{self.namespace}/{self.name}",
                identity=self.identity,
            )
            if self._on_change is not None:
                self._on_change(leader)

    def _observe(self, spec: JsonDict) -> None:
        if spec != self._observed:
            self._observed = spec
            self._observed_at = self._clock()

    def _spec(self, previous: JsonDict | None) -> JsonDict:
        now = micro_time(self._wall())
        spec = dict(previous or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            if previous is not None:
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = max(1, round(self.timing.lease_duration))
        spec["renewTime"] = now
        spec.setdefault("leaseTransitions", 0)
        return spec

    async def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's ``tryAcquireOrRenew``); True when we hold the Lease.

        A leader renews straight from the Lease it last wrote (one request); anybody else,
        or a leader whose copy is stale (409), reads the Lease first.
        """
        if self.is_leader and self._lease is not None:
            lease = self._lease
            try:
                body = {**lease, "spec": self._spec(lease.get("spec"))}
                renewed = await self.api.replace(LEASE, body)
            except KubeError:
                self._lease = None  # fall through to the slow path with a fresh read
            else:
                self._lease = renewed
                self._observe(renewed.get("spec") or {})
                return True
        try:
            lease = await self.api.get(LEASE, self.name, namespace=self.namespace)
        except NotFound:
            body = {
                "apiVersion": LEASE.api_version,
                "kind": LEASE.kind,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(None),
            }
            try:
                created = await self.api.create(LEASE, body)
            except (AlreadyExists, Conflict):
                return False
            except KubeError as error:
                self._failed(error)
                return False
            self._observe(created.get("spec") or {})
            self._lease = created
            return True
        except KubeError as error:
            self._failed(error)
            return False
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
        if holder and holder != self.identity and self._clock() < self._observed_at + duration:
            return False  # somebody else's Lease, still valid
        body = dict(lease)
        body["spec"] = self._spec(spec)
        try:
            updated = await self.api.replace(LEASE, body)
        except Conflict:
            return False  # another replica was faster
        except KubeError as error:
            self._failed(error)
            return False
        self._observe(updated.get("spec") or {})
        self._lease = updated
        return True

    def _failed(self, error: KubeError) -> None:
        log_event(
            _log,
            logging.WARNING,
            "lease request failed",
            lease=f"{self.namespace}/{self.name}",
            error=str(error),
        )

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try every ``retry_period`` until we lead (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if await self.try_acquire_or_renew():
                self._set_leader(True)
                return True
            if await sleep_or_stop(stop, self.timing.retry_period):
                break
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew every ``retry_period``; return when ``stop`` is set or leadership is lost."""
        last = self._clock()
        while not await sleep_or_stop(stop, self.timing.retry_period):
            try:
                async with asyncio.timeout(self.timing.renew_deadline):
                    renewed = await self.try_acquire_or_renew()
            except TimeoutError:
                renewed = False
            if renewed:
                last = self._clock()
            elif self._clock() - last >= self.timing.renew_deadline:
                self._set_leader(False)
                return

    async def release(self) -> bool:
        """Give the Lease up (holder emptied, duration 1 s) if we hold it; True when done."""
        if not self.is_leader:
            return False
        self._set_leader(False)
        self._lease = None
        try:
            lease = await self.api.get(LEASE, self.name, namespace=self.namespace)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return False
            now = micro_time(self._wall())
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=now, acquireTime=now)
            await self.api.replace(LEASE, {**lease, "spec": spec})
        except KubeError as error:
            log_event(
                _log,
                logging.WARNING,
                "lease not released",
                lease=f"{self.namespace}/{self.name}",
                error=str(error),
            )
            return False
        log_event(_log, logging.INFO, "lease released", lease=f"{self.namespace}/{self.name}")
        return True
