"""The controller: MetalLB's allocation against a Kubernetes API server.

A thin shell around :func:`metallb_core.converge_all`: it reads (lists and watches), converts
(:mod:`~announcers.kubernetes.convert`), asks the core, and writes what the core decided
(:mod:`~announcers.kubernetes.status`). It decides nothing about addresses.

How it runs
===========
* **Start-up.** List every Service and the configuration objects (``IPAddressPool``,
  ``L2Advertisement`` and ``Namespace`` objects, or the v0.10 ``config`` ConfigMap), put the
  configuration in force, and converge *every* Service in one :func:`~metallb_core.converge_all`
  pass from an empty state before handling any single change. Services whose status holds
  addresses are restored first, so a restart moves no address and writes nothing when
  nothing changed.
* **Rounds.** Then changes (Service events, configuration events, deletions) are gathered
  and handled in rounds: each round converges the Services concerned with
  ``converge_all(state, services)`` and writes the outcome. A configuration change
  (``reload``) converges every Service; a deletion that frees an address, or a round that
  frees one, converges the Services still waiting for one, at once.
* **Writes, and when the new state is adopted.** A round reads (the informer's objects),
  decides (``converge_all``), writes in the order :func:`metallb_core.next_writes` gives, and
  adopts :func:`metallb_core.settle`. The planner works against what *every* Service's status
  shows now, so at no instant does the cluster show an address in two Services that may not
  share it, whichever writes fail: writes that give addresses up go first (a Service moving
  to an address another status still shows is first written with only what it keeps); only
  then the writes that take addresses, each checked against every status and written only
  when no other Service shows the address. The state adopted holds, for each Service of the
  round, exactly what its status shows: its outcome when written, else what it still shows
  (the successful writes of a round that failed elsewhere are kept). A write the planner could
  not make (an address still shown elsewhere) is retried after a backoff.
  A status write carries the Service's ``resourceVersion``: on 409 the Service is read again
  and converged again at once. The annotations (the pool, and the inputs digest
  :data:`metallb_core.INPUTS_ANNOTATION` that lets a new leader restore unchanged Services
  first) and the Events follow a successful status write.
* **Failures.** An API server that is unreachable or answers 5xx is retried with capped
  backoff; nothing is ever cleared because a request failed (only a successful list or
  watch can say a Service is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import metallb_core as core
from announcers.kubernetes.client import (
    CONFIG_MAP,
    IP_ADDRESS_POOL,
    L2_ADVERTISEMENT,
    NAMESPACE,
    SERVICE,
    Conflict,
    JsonDict,
    Kind,
    KubeApi,
    KubeError,
    NotFound,
    Refused,
    Unavailable,
)
from announcers.kubernetes.convert import (
    CONFIGMAP_NAME,
    ConfigReading,
    Source,
    read_config,
    wants_address,
)
from announcers.kubernetes.events import EventSender
from announcers.kubernetes.informer import Backoff, ChangeType, Informer, uid
from announcers.kubernetes.leader import LeaderElector, LeaderTiming, sleep_or_stop
from announcers.kubernetes.logs import log_event
from announcers.kubernetes.metrics import Metrics
from announcers.kubernetes.status import (
    EventBook,
    annotation_patch,
    pool_status_patch,
    reference,
    status_patch,
)
from metallb_core.vocabulary import ingress_ips, object_key, service_key

_log = logging.getLogger("announcers.kubernetes.controller")

#: Reasons of the Warning events about the configuration (MetalLB only logs these).
CONFIG_INVALID = "InvalidConfiguration"
CONFIGMAP_IGNORED = "ConfigMapIgnored"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a controller runs (the CLI sets ``namespace``, ``lb_class`` and ``identity``)."""

    namespace: str = "metallb-system"
    lb_class: str | None = None
    identity: str = "metallb-core-controller"
    #: Status writes in flight at once (giving writes only; freeing writes too, see above).
    write_concurrency: int = 16
    backoff_initial: float = 0.25
    backoff_cap: float = 3.2
    #: ``timeoutSeconds`` of each watch request (the watch is then resumed).
    watch_timeout: int = 300
    leader: LeaderTiming = dataclasses.field(default_factory=LeaderTiming)
    #: Rounds of more Services than this converge in a worker thread, so the event loop
    #: (watches, Lease renewals) keeps running meanwhile.
    thread_threshold: int = 256
    #: Consecutive 409s on one Service before its retries back off too.
    conflict_limit: int = 5


@dataclasses.dataclass
class _Plan:
    """An annotation write (after the Service's status is shown)."""

    key: str
    service: JsonDict
    patch: JsonDict


@dataclasses.dataclass
class _Result:
    status_ok: bool = False
    error: KubeError | None = None
    skipped: bool = False
    blocked: bool = False


class Controller:
    """One leadership term of the controller (see the module docstring).

    ``await run(stop)`` lists, converges everything, then handles changes until ``stop`` is
    set; it returns after the round in progress. Only run it while holding the Lease
    (:func:`run` does that).
    """

    def __init__(
        self,
        api: KubeApi,
        settings: Settings | None = None,
        *,
        metrics: Metrics | None = None,
        events: EventSender | None = None,
    ) -> None:
        self.api = api
        self.settings = s = settings or Settings()
        self.metrics = metrics or Metrics()
        self.events = events or EventSender(api, EventBook(instance=s.identity))
        self._owns_events = events is None

        def backoff() -> Backoff:
            return Backoff(initial=s.backoff_initial, cap=s.backoff_cap)

        def informer(kind: Kind, handler: Any, **kwargs: Any) -> Informer:
            return Informer(
                api, kind, handler, backoff=backoff(), watch_timeout=s.watch_timeout, **kwargs
            )

        ns = s.namespace
        self.services = informer(SERVICE, self._service_changed)
        self.pools = informer(IP_ADDRESS_POOL, self._config_changed, namespace=ns)
        self.advertisements = informer(L2_ADVERTISEMENT, self._config_changed, namespace=ns)
        self.namespaces = informer(NAMESPACE, self._config_changed)
        self.configmaps = informer(
            CONFIG_MAP, self._config_changed, namespace=ns, fields={"metadata.name": "config"}
        )
        self.informers = (
            self.services,
            self.pools,
            self.advertisements,
            self.namespaces,
            self.configmaps,
        )
        #: The allocator state in force (None until a configuration is).
        self.state: core.State | None = None
        self.source: Source = "none"
        #: Set once every Service has been converged after start-up.
        self.synced = asyncio.Event()
        #: Seconds from :meth:`run` to each start-up milestone (``listed``, ``converged``,
        #: ``statuses`` written, ``synced``: annotations written too); logged with "synced".
        self.startup: dict[str, float] = {}
        #: Event-loop time at which :meth:`run` started.
        self.started_at = 0.0
        self._dirty: dict[str, None] = {}
        self._deleted: dict[str, JsonDict] = {}
        self._all = True
        self._waiting_ones = False
        self._config_dirty = True
        self._wake = asyncio.Event()
        self._retry: set[str] = set()
        self._retry_at: float | None = None
        self._backoff = backoff()
        self._conflicts: dict[str, int] = {}
        self._waiting: set[str] = set()  # LoadBalancer Services left without an address
        self._busy = False
        self._said: dict[str, object] = {}  # last configuration complaint per topic
        self._pool_wake = asyncio.Event()
        self._pool_backoff = backoff()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool_writing = False
        self._pool_refused: dict[str, JsonDict] = {}
        #: Per Service of the round, the resourceVersion its status writes must carry.
        self._versions: dict[str, str] = {}

    # -- change notifications (called by the informers, on the event loop) ------------------

    def _service_changed(
        self, change: ChangeType, key: str, new: JsonDict | None, old: JsonDict | None
    ) -> None:
        self.metrics.updates.inc()
        if change == "DELETED":
            assert old is not None
            self._deleted.setdefault(key, old)
            self._dirty.pop(key, None)
        else:
            if old is not None and new is not None and uid(old) != uid(new):
                self._deleted.setdefault(key, old)  # deleted and created again meanwhile
            self._dirty[key] = None
        self._wake.set()

    def _config_changed(
        self, change: ChangeType, key: str, new: JsonDict | None, old: JsonDict | None
    ) -> None:
        self.metrics.updates.inc()
        self._config_dirty = True
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (returns after the current round) or cancelled."""
        tasks: list[asyncio.Task[Any]] = []
        self.started_at = asyncio.get_running_loop().time()
        try:
            listed: asyncio.Future[list[None]] = asyncio.gather(
                *(informer.sync() for informer in self.informers)
            )
            stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            await asyncio.wait([listed, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not listed.done():
                listed.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listed
                return
            listed.result()
            self._milestone("listed")
            log_event(
                _log,
                logging.INFO,
                "listed",
                services=len(self.services.objects),
                pools=len(self.pools.objects),
                advertisements=len(self.advertisements.objects),
                namespaces=len(self.namespaces.objects),
                configmap=bool(self.configmaps.objects),
            )
            tasks = [asyncio.create_task(informer.run()) for informer in self.informers]
            tasks.append(asyncio.create_task(self._write_pool_statuses()))
            if self._owns_events:
                tasks.append(asyncio.create_task(self.events.run()))
            while not stop.is_set():
                for task in tasks:
                    if task.done():
                        task.result()  # a background task ended: a bug, let it out
                        raise RuntimeError(f"background task ended: {task.get_name()}")
                await self._step(stop)
                if not self.synced.is_set():
                    self._milestone("synced")
                    self.synced.set()
                    log_event(
                        _log,
                        logging.INFO,
                        "synced",
                        configured=self.state is not None,
                        allocations=0 if self.state is None else len(self.state.allocations),
                        seconds={k: round(v, 3) for k, v in self.startup.items()},
                    )
                await self._wait(stop)
        finally:
            tasks.extend(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _has_work(self) -> bool:
        return bool(
            self._dirty or self._deleted or self._all or self._waiting_ones or self._config_dirty
        )

    @property
    def settled(self) -> bool:
        """Nothing to do and nothing to retry (the state matches every Service's status)."""
        return self.synced.is_set() and not (
            self._busy
            or self._has_work()
            or self._retry
            or self._pool_wake.is_set()
            or self._pool_writing
        )

    async def _wait(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set() and not self._has_work():
            timeout: float | None = None
            if self._retry_at is not None:
                timeout = self._retry_at - loop.time()
                if timeout <= 0:
                    self._dirty.update(dict.fromkeys(sorted(self._retry)))
                    self._retry.clear()
                    self._retry_at = None
                    return
            self._wake.clear()
            waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
        # Let a burst of watch events land before the round takes its keys.
        await asyncio.sleep(0)

    async def _step(self, stop: asyncio.Event) -> None:
        self._busy = True
        try:
            if self._config_dirty:
                self._config_dirty = False
                self._apply_config()
            if self.state is None:
                # Nothing configures allocation yet: everything is converged when it is.
                self._dirty.clear()
                self._deleted.clear()
                self._all = self._waiting_ones = False
                return
            self._forget_deleted()
            if self._all:
                keys = list(self.services.objects)
                self._all = False
                self._dirty.clear()
            else:
                keys = list(self._dirty)
                self._dirty.clear()
            if self._waiting_ones:
                self._waiting_ones = False
                chosen = set(keys)
                keys += sorted(k for k in self._waiting if k not in chosen)
            if keys:
                await self._round(keys, stop)
        finally:
            self._busy = False

    def _forget_deleted(self) -> None:
        assert self.state is not None
        for key, old in self._deleted.items():
            held = self.state.allocation(key)
            self.state = core.release(self.state, key)
            if key not in self.services.objects:
                self._waiting.discard(key)
                self._retry.discard(key)
                self._conflicts.pop(key, None)
            if held is not None:
                log_event(
                    _log,
                    logging.INFO,
                    "service deleted, addresses freed",
                    service=key,
                    ips=[str(ip) for ip in held.ips],
                    uid=uid(old),
                )
                self._waiting_ones = True
        if self._deleted:
            self._state_changed()
        self._deleted.clear()

    # -- configuration ----------------------------------------------------------------------

    def _apply_config(self) -> None:
        configmap = self.configmaps.objects.get(f"{self.settings.namespace}/{CONFIGMAP_NAME}")
        reading = read_config(
            self.pools.objects.values(),
            self.advertisements.objects.values(),
            self.namespaces.objects.values(),
            configmap,
            previous=self.source,
        )
        self._complain_ignored(reading)
        if reading.error is not None:
            self.metrics.config_stale.set(1)
            self._complain_invalid(reading)
            return
        self._said.pop("invalid", None)
        if reading.config is None:
            if self.state is not None:
                self.metrics.config_stale.set(1)
                if self._said.get("missing") != self.source:
                    self._said["missing"] = self.source
                    log_event(
                        _log,
                        logging.ERROR,
                        "configuration is missing, keeping the last one in force",
                        namespace=self.settings.namespace,
                    )
            return
        self._said.pop("missing", None)
        self.metrics.config_stale.set(0)
        self.metrics.config_loaded.set(1)
        self.source = reading.source
        pools = [p.name for p in reading.config.pools]
        if self.state is None:
            self.state = core.State.empty(reading.config)
            self._all = True
            log_event(_log, logging.INFO, "configuration loaded", source=self.source, pools=pools)
        elif reading.config != self.state.config:
            self.state, dropped = core.reload(self.state, reading.config)
            self._all = True
            log_event(
                _log,
                logging.INFO,
                "configuration changed, converging every service",
                source=self.source,
                pools=pools,
                dropped={a.key: [str(ip) for ip in a.ips] for a in dropped},
            )
        self._state_changed()

    def _config_kind(self, obj: Mapping[str, Any]) -> Kind:
        if any(obj is o for o in self.pools.objects.values()):
            return IP_ADDRESS_POOL
        if any(obj is o for o in self.advertisements.objects.values()):
            return L2_ADVERTISEMENT
        return CONFIG_MAP

    def _complain_invalid(self, reading: ConfigReading) -> None:
        offender = reading.offender
        kind = self._config_kind(offender) if offender is not None else None
        meta = (offender or {}).get("metadata") or {}
        topic = (reading.error, meta.get("uid"), meta.get("resourceVersion"))
        if self._said.get("invalid") == topic:
            return
        self._said["invalid"] = topic
        log_event(
            _log,
            logging.ERROR,
            "invalid configuration, keeping the last valid one in force",
            error=reading.error,
            object=None if kind is None else f"{kind.kind} {object_key(offender or {})}",
        )
        if offender is not None and kind is not None:
            ref = reference(offender, api_version=kind.api_version, kind=kind.kind)
            message = f"{reading.error}; the last valid configuration stays in force"
            self.events.emit(
                ref,
                core.Event(type="Warning", reason=CONFIG_INVALID, message=message),
                action="LoadConfiguration",
            )

    def _complain_ignored(self, reading: ConfigReading) -> None:
        ignored = reading.ignored
        if ignored is None:
            self._said.pop("ignored", None)
            return
        meta = ignored.get("metadata") or {}
        topic = (meta.get("uid"), meta.get("resourceVersion"))
        if self._said.get("ignored") == topic:
            return
        self._said["ignored"] = topic
        message = (
            f"IPAddressPool objects exist in namespace {self.settings.namespace}: "
            f'the v0.10 ConfigMap "{meta.get("name")}" is ignored'
        )
        log_event(_log, logging.WARNING, message)
        ref = reference(ignored, api_version=CONFIG_MAP.api_version, kind=CONFIG_MAP.kind)
        self.events.emit(
            ref,
            core.Event(type="Warning", reason=CONFIGMAP_IGNORED, message=message),
            action="LoadConfiguration",
        )

    # -- a round ----------------------------------------------------------------------------

    async def _converge(
        self, state: core.State, services: list[JsonDict]
    ) -> tuple[core.State, Mapping[str, core.Convergence]]:
        lb_class = self.settings.lb_class
        if len(services) > self.settings.thread_threshold:
            # The core is pure and its states immutable: safe in another thread.
            return await asyncio.to_thread(core.converge_all, state, services, lb_class=lb_class)
        return core.converge_all(state, services, lb_class=lb_class)

    async def _round(self, keys: Iterable[str], stop: asyncio.Event) -> None:
        """Read, decide, write in the planner's order, adopt what the statuses now show."""
        before = self.state
        assert before is not None
        services = [self.services.objects[k] for k in keys if k in self.services.objects]
        if not services:
            return
        by_key = {service_key(service): service for service in services}
        after, outcomes = await self._converge(before, services)
        self._milestone("converged")
        results = await self._write_statuses(outcomes, by_key, stop)
        self._milestone("statuses")
        adopted = core.settle(after, self.services.objects, outcomes)
        self.state = adopted
        shown = [
            key
            for key, outcome in outcomes.items()
            if outcome.ingress is None or results.get(key, _Result()).status_ok
        ]
        for key in shown:
            outcome = outcomes[key]
            service = by_key[key]
            self._emit(key, service, outcome)
            if outcome.ingress == () and wants_address(service):
                self._waiting.add(key)
            elif outcome.ingress is not None or not wants_address(service):
                self._waiting.discard(key)
        annotate = [
            _Plan(key, by_key[key], patch)
            for key in shown
            if (patch := annotation_patch(by_key[key], outcomes[key])) is not None
        ]
        for key, result in (await self._write_annotations(annotate, stop)).items():
            if result.error is not None:
                results[key] = result
        failed = {k: r for k, r in results.items() if not r.status_ok or r.error is not None}
        if failed:
            self._failed(list(failed), failed)
        else:
            self._backoff.reset()
        # Addresses freed, or planned for a Service whose write failed (now free again in the
        # adopted state): the Services waiting for one may get it.
        if _freed(before, adopted, by_key) or _freed(after, adopted, by_key):
            self._waiting_ones = True
        if adopted != before:
            self._state_changed()

    async def _write_statuses(
        self,
        outcomes: Mapping[str, core.Convergence],
        decided_on: Mapping[str, JsonDict],
        stop: asyncio.Event,
    ) -> dict[str, _Result]:
        """Write the statuses batch after batch, as :func:`metallb_core.next_writes` orders
        them against what every Service shows now (the informer's objects, which each
        successful write updates). Returns, per key, whether its outcome is now shown; a key
        the planner could not write (an address it needs is still shown by another Service)
        is reported as blocked.

        Each write carries the ``resourceVersion`` of the version the outcome was decided on
        (then of our own last write of it): a Service changed meanwhile answers 409, and is
        read and converged again rather than given a stale decision."""
        self._versions = {
            key: str((service.get("metadata") or {}).get("resourceVersion") or "")
            for key, service in decided_on.items()
        }
        results = await self._write_planned(outcomes, stop)
        tidy = self._check_shown(outcomes, results, stop)
        await self._rewrite_shown(tidy, results, stop)
        return results

    async def _write_planned(
        self, outcomes: Mapping[str, core.Convergence], stop: asyncio.Event
    ) -> dict[str, _Result]:
        """The planner's batches, written until it has nothing left (or ``stop`` is set).

        Returns the results of the keys given up on: a failed write (retried in a later
        round), and a write made before whose status still does not show it (blocked)."""
        remaining = dict(outcomes)
        results: dict[str, _Result] = {}
        tried: set[tuple[str, tuple[str, ...]]] = set()
        while not stop.is_set():
            batch = await self._plan(remaining)
            if not batch:
                break
            fresh, unshown = _split_tried(batch, tried)
            for key in unshown:
                remaining.pop(key, None)
                results[key] = _Result(blocked=True)
            if not fresh:
                continue
            done = await self._write_batch(fresh, stop)
            for write, result in zip(fresh, done, strict=True):
                if not result.status_ok:
                    remaining.pop(write.key, None)
                    results[write.key] = result
        return results

    def _check_shown(
        self,
        outcomes: Mapping[str, core.Convergence],
        results: dict[str, _Result],
        stop: asyncio.Event,
    ) -> list[core.StatusWrite]:
        """Fill ``results`` for the outcomes not given up on: shown now (``status_ok``), or
        not shown, then blocked and skipped (logged), unless ``stop`` is set. Returns the
        writes that rewrite a status showing the right addresses differently (foreign
        fields, another ipMode)."""
        tidy: list[core.StatusWrite] = []
        for key, outcome in outcomes.items():
            if key in results or outcome.ingress is None:
                continue
            service = self.services.objects.get(key)
            if service is not None and tuple(ingress_ips(service)) == outcome.ingress:
                results[key] = _Result(status_ok=True)
                if status_patch(service, outcome) is not None:
                    tidy.append(core.StatusWrite(key, outcome.ingress))
            else:
                results[key] = _Result(skipped=not stop.is_set(), blocked=not stop.is_set())
                if not stop.is_set():
                    log_event(
                        _log,
                        logging.INFO,
                        "status write waits: an address is still shown by another Service",
                        service=key,
                        ingress=list(outcome.ingress),
                    )
        return tidy

    async def _rewrite_shown(
        self, tidy: list[core.StatusWrite], results: dict[str, _Result], stop: asyncio.Event
    ) -> None:
        """The right addresses, written differently, rewritten now (which moves no address);
        a failure is recorded in ``results`` and retried like an annotation's."""
        for write, result in zip(tidy, await self._write_batch(tidy, stop), strict=True):
            if result.error is not None:
                results[write.key] = _Result(status_ok=True, error=result.error)

    async def _plan(self, outcomes: Mapping[str, core.Convergence]) -> tuple[core.StatusWrite, ...]:
        """:func:`metallb_core.next_writes` against the informer's objects (in a worker thread
        for big rounds, on a copy of the mapping, which the watches keep changing)."""
        if len(outcomes) > self.settings.thread_threshold:
            view = dict(self.services.objects)
            return await asyncio.to_thread(core.next_writes, view, outcomes)
        return core.next_writes(self.services.objects, outcomes)

    async def _write_batch(
        self, batch: list[core.StatusWrite], stop: asyncio.Event
    ) -> list[_Result]:
        """One batch of status writes, concurrently (any order is safe, see the planner)."""
        gate = asyncio.Semaphore(self.settings.write_concurrency)

        async def one(write: core.StatusWrite) -> _Result:
            async with gate:
                service = self.services.objects.get(write.key)
                if stop.is_set() or service is None:
                    return _Result(skipped=True)
                return await self._write_status(write, service)

        return list(await asyncio.gather(*(one(w) for w in batch)))

    async def _write_annotations(
        self, plans: list[_Plan], stop: asyncio.Event
    ) -> dict[str, _Result]:
        """Annotation writes (pool and inputs digest), concurrently, after the statuses."""
        gate = asyncio.Semaphore(self.settings.write_concurrency)

        async def one(plan: _Plan) -> tuple[str, _Result]:
            async with gate:
                if stop.is_set():
                    return plan.key, _Result(status_ok=True, skipped=True)
                return plan.key, await self._write_annotation(plan)

        return dict(await asyncio.gather(*(one(p) for p in plans)))

    def _milestone(self, name: str) -> None:
        if not self.synced.is_set():
            self.startup.setdefault(name, asyncio.get_running_loop().time() - self.started_at)

    def _emit(self, key: str, service: JsonDict, outcome: core.Convergence) -> None:
        if not outcome.events:
            return
        current = self.services.objects.get(key, service)
        ref = reference(current, api_version=SERVICE.api_version, kind=SERVICE.kind)
        for event in outcome.events:
            self.events.emit(ref, event)

    @staticmethod
    def _where(service: JsonDict) -> tuple[str, str]:
        meta = service["metadata"]
        return meta["name"], meta.get("namespace") or "default"

    async def _write_status(self, write: core.StatusWrite, service: JsonDict) -> _Result:
        patch = status_patch(
            service, core.Convergence(key=write.key, ingress=write.ingress, pool=None)
        )
        if patch is None:
            return _Result(status_ok=True)
        version = self._versions.get(write.key)
        if version:
            patch["metadata"] = {"resourceVersion": version}
        name, namespace = self._where(service)
        try:
            written = await self.api.patch(SERVICE, name, patch, namespace=namespace, status=True)
        except KubeError as error:
            self.metrics.update_errors.inc()
            return _Result(error=error)
        self.services.fold_write(written)
        self._versions[write.key] = str(written["metadata"].get("resourceVersion") or "")
        self._conflicts.pop(write.key, None)
        log_event(
            _log,
            logging.INFO,
            "status written" if write.final else "status written (addresses given up first)",
            service=write.key,
            ingress=list(write.ingress),
        )
        return _Result(status_ok=True)

    async def _write_annotation(self, plan: _Plan) -> _Result:
        name, namespace = self._where(plan.service)
        try:
            written = await self.api.patch(SERVICE, name, plan.patch, namespace=namespace)
        except KubeError as error:
            self.metrics.update_errors.inc()
            return _Result(status_ok=True, error=error)
        ours = (plan.patch.get("metadata") or {}).get("annotations") or {}
        self.services.fold_write(written, annotations=ours)
        return _Result(status_ok=True)

    def _failed(self, keys: list[str], results: Mapping[str, _Result]) -> None:
        """Schedule the keys of a failed round: at once after conflicts, else after a backoff.

        A Service whose write met a 409 is read again first (:meth:`_reread` queues it).
        """
        errors: dict[str, KubeError] = {}
        for key, result in results.items():
            error = result.error
            if error is None:
                continue
            errors[key] = error
            level = logging.INFO if isinstance(error, Conflict) else logging.WARNING
            log_event(_log, level, "write failed", service=key, error=str(error))
            if isinstance(error, Conflict):
                self._conflicts[key] = self._conflicts.get(key, 0) + 1
                self._tasks.add(asyncio.get_running_loop().create_task(self._reread(key)))
            elif isinstance(error, NotFound):
                gone = self.services.forget(key)
                if gone is not None:
                    self._deleted.setdefault(key, gone)
        again = [k for k in keys if k in self.services.objects and k not in errors]
        quick = all(
            isinstance(e, NotFound)
            or (isinstance(e, Conflict) and self._conflicts[k] <= self.settings.conflict_limit)
            for k, e in errors.items()
        ) and bool(errors)
        if quick:
            self._dirty.update(dict.fromkeys(again))
            self._wake.set()
            return
        self._retry.update(again)
        self._retry.update(k for k, e in errors.items() if not isinstance(e, (Conflict, NotFound)))
        if self._retry_at is None:
            delay = self._backoff.next()
            self._retry_at = asyncio.get_running_loop().time() + delay
        if any(isinstance(e, Unavailable) for e in errors.values()):
            log_event(_log, logging.WARNING, "API unavailable, will retry", services=len(keys))

    async def _reread(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        if self._conflicts.get(key, 0) > self.settings.conflict_limit:
            await asyncio.sleep(self._backoff.next())
        try:
            fresh = await self.api.get(SERVICE, name, namespace=namespace)
        except NotFound:
            gone = self.services.forget(key)
            if gone is not None:
                self._deleted.setdefault(key, gone)
        except KubeError:
            return  # the watch, or the retry, will bring it
        else:
            self.services.observe(fresh)
        self._dirty[key] = None
        self._wake.set()

    # -- what follows a state change --------------------------------------------------------

    def _state_changed(self) -> None:
        if self.state is not None:
            self.metrics.set_pool_usage(core.pool_usage(self.state))
        self._pool_wake.set()

    async def _write_pool_statuses(self) -> None:
        """Keep ``IPAddressPool.status`` equal to the core's counters (background).

        Not before the first round: the empty state of start-up would write zeros.
        """
        await self.synced.wait()
        while True:
            await self._pool_wake.wait()
            self._pool_wake.clear()
            if self.state is None or self.source != "crds":
                continue
            self._pool_writing = True
            try:
                failed = await self._write_pool_status_once()
            finally:
                self._pool_writing = False
            if failed:
                await asyncio.sleep(self._pool_backoff.next())
                self._pool_wake.set()
            else:
                self._pool_backoff.reset()

    async def _write_pool_status_once(self) -> bool:
        """Write every pool status that differs from the counters; True if one failed."""
        assert self.state is not None
        failed = False
        for name, usage in core.pool_usage(self.state).items():
            pool = self.pools.objects.get(f"{self.settings.namespace}/{name}")
            patch = None if pool is None else pool_status_patch(pool, usage)
            if patch is None or self._pool_refused.get(name) == patch:
                continue
            try:
                written = await self.api.patch(
                    IP_ADDRESS_POOL, name, patch, namespace=self.settings.namespace, status=True
                )
            except NotFound:
                continue
            except Refused as error:
                # E.g. a counter beyond the int64 of MetalLB's CRD schema: the same patch
                # would be refused again; try again when the counters change.
                self._pool_refused[name] = patch
                log_event(_log, logging.ERROR, "pool status refused", pool=name, error=str(error))
                continue
            except KubeError as error:
                log_event(
                    _log, logging.WARNING, "pool status not written", pool=name, error=str(error)
                )
                failed = True
                continue
            # The answer may carry an edit of the pool's addresses whose watch event is
            # now older than the cache: fold_write reports it as a change.
            self.pools.fold_write(written)
        return failed


def _freed(before: core.State, after: core.State, keys: Iterable[str]) -> bool:
    """Whether an address that one of ``keys`` held in ``before`` is not held the same way in
    ``after``: a round changes only the allocations of the Services it converges, so only
    theirs are compared (O(round), not O(every allocation))."""
    for key in keys:
        held = before.allocation(key)
        if held is not None and after.allocation(key) != held:
            return True
    return False


def _split_tried(
    batch: Iterable[core.StatusWrite], tried: set[tuple[str, tuple[str, ...]]]
) -> tuple[list[core.StatusWrite], list[str]]:
    """The writes of ``batch`` not made before this round (now added to ``tried``), and the
    keys of those made before: written, yet their status does not show it (never seen);
    logged, and retried in a later round rather than in a loop."""
    fresh: list[core.StatusWrite] = []
    unshown: list[str] = []
    for write in batch:
        if (write.key, write.ingress) in tried:
            log_event(_log, logging.ERROR, "status write not shown", service=write.key)
            unshown.append(write.key)
            continue
        tried.add((write.key, write.ingress))
        fresh.append(write)
    return fresh, unshown


class Replica:
    """One controller replica: leader election around successive :class:`Controller` terms.

    Each leadership term starts a fresh :class:`Controller` (list, ``converge_all``): a
    replica that becomes leader, or becomes leader again, never trusts what it knew before.
    Losing the Lease stops the writes at once; ``stop`` lets the current round finish (at
    most ``shutdown_timeout`` seconds), then the Lease is released.
    """

    def __init__(
        self,
        api: KubeApi,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        shutdown_timeout: float = 6.0,
    ) -> None:
        self.api = api
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.shutdown_timeout = shutdown_timeout
        self.book = EventBook(instance=settings.identity)
        self.elector = LeaderElector(
            api,
            namespace=settings.namespace,
            identity=settings.identity,
            timing=settings.leader,
            on_change=lambda leading: self.metrics.leader.set(1 if leading else 0),
        )
        #: The controller of the current leadership term (None while following).
        self.controller: Controller | None = None
        self.terms = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Follow or lead until ``stop`` is set; the Lease is released on the way out."""
        try:
            while not stop.is_set():
                if not await self.elector.acquire(stop):
                    break
                await self._term(stop)
                if not stop.is_set():
                    await sleep_or_stop(stop, self.settings.leader.retry_period)
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self.elector.release()

    async def _term(self, stop: asyncio.Event) -> None:
        self.terms += 1
        sender = EventSender(self.api, self.book)
        controller = self.controller = Controller(
            self.api, self.settings, metrics=self.metrics, events=sender
        )
        work = asyncio.create_task(controller.run(stop))
        holding = asyncio.create_task(self.elector.hold(stop))
        sending = asyncio.create_task(sender.run())
        try:
            await asyncio.wait({work, holding}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done() and not stop.is_set():
                log_event(_log, logging.WARNING, "lost the lease, stopping writes")
                work.cancel()
            elif not work.done():
                # Stopping: the round in progress finishes its writes, within a bound.
                try:
                    async with asyncio.timeout(self.shutdown_timeout):
                        await asyncio.shield(work)
                except TimeoutError:
                    work.cancel()
            if work.done() and not work.cancelled():
                work.result()  # an exception here is a bug in the controller: let it out
            if stop.is_set():
                await sender.flush(1.0)
        finally:
            for task in (work, holding, sending):
                task.cancel()
            for task in (work, holding, sending):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.controller = None


async def run(
    api: KubeApi, settings: Settings, stop: asyncio.Event, *, metrics: Metrics | None = None
) -> None:
    """Run one controller replica until ``stop`` is set (see :class:`Replica`)."""
    await Replica(api, settings, metrics=metrics).run(stop)
