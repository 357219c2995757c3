"""The speaker: announces each Service's addresses from the node MetalLB's election picks.

A thin shell around the core, run on every node: it reads (lists and watches Services,
EndpointSlices, Nodes, the speakers' Leases and the configuration), asks the core which node
announces each Service and on which interfaces (:func:`metallb_core.elect`), what this node
must withdraw and announce (:func:`metallb_core.plan_announcements`), what changed and which
Events say so (:func:`metallb_core.report_announcements`) and whether it may act at all
(:func:`metallb_core.speaker_frozen`), and tells its :class:`~announcers.base.Announcer` to
``withdraw`` and ``announce`` accordingly. It decides nothing itself.

How it runs
===========
* **Liveness.** A :class:`~announcers.kubernetes.liveness.LivenessSource` says which nodes'
  speakers are alive and whether this speaker may act on its view (its *standing*); it is
  fed every speaker Lease the speaker's watch sees, and calls back when either changes, so a
  change re-runs the election of every Service at once. By default
  (:class:`~announcers.kubernetes.liveness.ProbeLiveness`) the speakers probe each other over
  UDP and a death is a conditional write to the dead node's Lease; ``liveness="lease"``
  (:class:`~announcers.kubernetes.liveness.LeaseLiveness`) keeps the per-node Lease renewed
  every ``renew_period`` instead. See ``docs/speaker.md``.
* **Contact.** Standing ``frozen`` (the API server is unreachable, or this speaker has not
  seen itself join yet): it keeps announcing what it announced and changes nothing, and says
  so; nothing is announced before it has joined. Standing ``fenced`` (cut off from every
  other speaker *and* the API server, or another speaker of this node took over): it
  withdraws everything until that ends.
* **Rounds.** Changes are gathered and handled in rounds, on the event loop: a Service or
  EndpointSlice change re-elects that Service, a Node, configuration, liveness or local
  interface change re-elects every Service. Then the announcer is told the difference:
  withdrawals first, then announcements (an address shared by several Services is announced
  once and withdrawn when the last one lets it go). An announcement that fails is retried
  with capped backoff.
* **ServiceL2Status.** One per Service this node serves, written in the background by
  :class:`~announcers.kubernetes.l2status.L2StatusWriter` (created on announce, deleted on
  withdraw, nothing written when nothing changed).
* **Events.** ``nodeAssigned`` (``announcing from node "<node>" with protocol "layer2"``)
  when this node starts announcing a Service, ``announceFailed`` (Warning) when it won a
  Service but has none of the interfaces its L2Advertisements allow, as MetalLB.
* **Shutdown.** On ``stop``: withdraw everything, *then* leave (the Lease given up), so the
  next node takes over as soon as it sees the Lease change (graceful handover), then
  delete this node's ServiceL2Status objects and send the pending Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal

import metallb_core as core
from announcers.arp.interfaces import SelectedInterface
from announcers.base import Announcer
from announcers.kubernetes.client import (
    CONFIG_MAP,
    ENDPOINT_SLICE,
    IP_ADDRESS_POOL,
    L2_ADVERTISEMENT,
    LEASE,
    NODE,
    SERVICE,
    JsonDict,
    Kind,
    KubeApi,
)
from announcers.kubernetes.convert import (
    CONFIGMAP_NAME,
    Source,
    endpoint_slice_service,
    read_config,
)
from announcers.kubernetes.events import EventSender
from announcers.kubernetes.informer import Backoff, ChangeType, Informer
from announcers.kubernetes.l2status import L2StatusWriter, PodRef
from announcers.kubernetes.liveness import (
    DEFAULT_PROBE_PORT,
    LEASE_LABELS,
    LeaseLiveness,
    LivenessSource,
    ProbeLiveness,
)
from announcers.kubernetes.logs import log_event
from announcers.kubernetes.membership import ProbeTiming
from announcers.kubernetes.speaker_metrics import SpeakerMetrics
from announcers.kubernetes.status import CreateEvent, EventBook, EventWrite, reference

_log = logging.getLogger("announcers.kubernetes.speaker")

#: Seconds a speaker Lease stays fresh without a renewal (``leaseDurationSeconds``).
DEFAULT_LEASE_DURATION = 1
#: Seconds between two renewals of this node's Lease.
DEFAULT_RENEW_PERIOD = 0.25
#: The ``reportingController`` of the speaker's Events.
REPORTING_CONTROLLER = "metallb-core/speaker"

IPAddress = IPv4Address | IPv6Address
Pair = tuple[IPAddress, str]
InterfaceSource = Callable[[], Sequence[SelectedInterface]]


@dataclasses.dataclass(frozen=True)
class SpeakerSettings:
    """How a speaker runs (the CLI sets ``node``, ``namespace`` and the Lease timing)."""

    node: str
    namespace: str = "metallb-system"
    #: ``probe``: UDP probes between speakers, deaths written to the API (the default);
    #: ``lease``: the per-node Lease renewed every ``renew_period`` (the design before).
    liveness: Literal["probe", "lease"] = "probe"
    lease_duration: int = DEFAULT_LEASE_DURATION
    renew_period: float = DEFAULT_RENEW_PERIOD
    #: The UDP probe socket's host ("": every address, the Lease then carries this node's
    #: address towards ``api_host``) and port (0: any free one, for tests).
    probe_address: str = ""
    probe_port: int = DEFAULT_PROBE_PORT
    #: Probe on an ephemeral port when ``probe_port`` is taken on this host (the command line
    #: sets it when ``--probe-port`` is not given: several speakers in one network namespace).
    probe_port_fallback: bool = False
    #: The API server's host, to find this node's own address for the probes.
    api_host: str = ""
    probe_timing: ProbeTiming = dataclasses.field(default_factory=ProbeTiming)
    #: Seconds between two checks that the API server answers (a GET of the own Lease).
    contact_period: float = 2.0
    #: Seconds between two scans of the local interfaces (MetalLB: 10 s).
    interface_rescan: float = 10.0
    #: ``timeoutSeconds`` of each watch request (the watch is then resumed).
    watch_timeout: int = 300
    backoff_initial: float = 0.25
    backoff_cap: float = 3.2
    #: Seconds given to releasing the Lease, then to sending the last Events, on stop.
    release_timeout: float = 2.0
    flush_timeout: float = 1.0
    #: The speaker's Pod (name, uid): the owner of its ServiceL2Status objects, when known.
    pod: PodRef | None = None

    def __post_init__(self) -> None:
        if not self.node:
            raise ValueError("the node name must not be empty")
        if self.liveness not in ("probe", "lease"):
            raise ValueError(f"liveness must be 'probe' or 'lease', not {self.liveness!r}")
        if not 0 <= self.probe_port < 65536:
            raise ValueError(f"the probe port must be 0-65535, not {self.probe_port}")
        if self.lease_duration < 1:
            raise ValueError(f"the lease duration must be at least 1 s, not {self.lease_duration}")
        if not 0 < self.renew_period < self.lease_duration:
            raise ValueError(
                f"the renew period ({self.renew_period:g} s) must be positive and shorter "
                f"than the lease duration ({self.lease_duration} s)"
            )


class SpeakerEventBook(EventBook):
    """The controller's :class:`~announcers.kubernetes.status.EventBook`, reporting as the
    speaker (``reportingController: metallb-core/speaker``, action ``Announce``)."""

    def __init__(self, *, instance: str, capacity: int = 4096) -> None:
        super().__init__(instance=instance, action="Announce", capacity=capacity)

    def record(
        self,
        ref: Mapping[str, Any],
        event: core.Event,
        now: datetime.datetime,
        *,
        action: str | None = None,
    ) -> EventWrite:
        """See :meth:`EventBook.record`."""
        write = super().record(ref, event, now, action=action)
        if isinstance(write, CreateEvent):
            write.body["reportingController"] = REPORTING_CONTROLLER
        return write


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Speaker:
    """One node's speaker (see the module docstring).

    ``interfaces`` returns the interfaces this node may announce on (with the families each
    serves), e.g. ``lambda: announcers.arp.discover_interfaces(explicit)``; it is called at
    start and every ``interface_rescan`` seconds. ``await run(stop)`` returns once ``stop``
    is set and the shutdown is done; cancelling it instead stops at once, like a crash: the
    Lease is left to expire and nothing is withdrawn.
    """

    def __init__(
        self,
        api: KubeApi,
        announcer: Announcer,
        settings: SpeakerSettings,
        *,
        interfaces: InterfaceSource,
        metrics: SpeakerMetrics | None = None,
        events: EventSender | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.api = api
        self.announcer = announcer
        self.settings = s = settings
        self.node = s.node
        self.metrics = metrics or SpeakerMetrics(node=s.node)
        self.metrics.watch_announcer(announcer)
        self.events = events or EventSender(api, SpeakerEventBook(instance=f"speaker/{s.node}"))
        self._owns_events = events is None
        self._interface_source = interfaces
        self._clock = clock
        self._wall = wall

        ns = s.namespace
        self.services = self._informer(SERVICE, self._service_changed)
        self.slices = self._informer(ENDPOINT_SLICE, self._slice_changed)
        self.nodes = self._informer(NODE, self._node_changed)
        self.leases = self._informer(LEASE, self._lease_changed, namespace=ns, labels=LEASE_LABELS)
        self.pools = self._informer(IP_ADDRESS_POOL, self._config_changed, namespace=ns)
        self.advertisements = self._informer(L2_ADVERTISEMENT, self._config_changed, namespace=ns)
        self.configmaps = self._informer(
            CONFIG_MAP, self._config_changed, namespace=ns, fields={"metadata.name": CONFIGMAP_NAME}
        )
        self.informers = (
            self.services,
            self.slices,
            self.nodes,
            self.leases,
            self.pools,
            self.advertisements,
            self.configmaps,
        )
        self.liveness = self._make_liveness(clock, wall)
        self.l2status = L2StatusWriter(
            api,
            namespace=ns,
            node=s.node,
            pod=s.pod,
            backoff=Backoff(initial=s.backoff_initial, cap=s.backoff_cap),
        )
        #: Nodes whose speaker is alive, as of the last check.
        self.alive: frozenset[str] = frozenset()
        #: True while this speaker may not act on its view (see "Contact").
        self.frozen = True
        #: True while this speaker withdrew everything because it is cut off (see "Contact").
        self.fenced = False
        #: The configuration in force (None until one is).
        self.config: core.Config | None = None
        self.source: Source = "none"
        #: The latest election of every LoadBalancer Service, by key.
        self.elections: dict[str, core.Announcement | core.NotAnnounced] = {}
        #: What this speaker has told the announcer to answer for, now.
        self.announced: set[Pair] = set()
        #: What this node serves, as of the last round (the core's report).
        self.report = core.AnnounceReport.empty()
        #: Set after the first round made in contact with the API server.
        self.synced = asyncio.Event()
        self.rounds = 0
        self._interfaces: tuple[SelectedInterface, ...] = ()
        self._local: tuple[core.NodeInterface, ...] = ()
        self._next_scan = 0.0
        self._slices_of: dict[str, dict[str, JsonDict]] = {}
        self._slice_owner: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._all = True
        self._config_dirty = True
        self._wake = asyncio.Event()
        self._retry_keys: set[str] = set()
        self._retry_all = False  # a withdraw failed: look at everything again
        self._retry_at: float | None = None
        self._retry_backoff = Backoff(initial=s.backoff_initial, cap=s.backoff_cap)
        self._said: dict[str, object] = {}
        self._lease_task: asyncio.Task[None] | None = None

    def _informer(self, kind: Kind, handler: Any, **kwargs: Any) -> Informer:
        """An informer on ``kind`` with this speaker's backoff and watch timeout."""
        s = self.settings
        backoff = Backoff(initial=s.backoff_initial, cap=s.backoff_cap)
        return Informer(
            self.api, kind, handler, backoff=backoff, watch_timeout=s.watch_timeout, **kwargs
        )

    def _make_liveness(
        self, clock: Callable[[], float], wall: Callable[[], datetime.datetime]
    ) -> LivenessSource:
        """The liveness source the settings ask for: Leases, or probes between speakers."""
        s = self.settings
        api = self.api
        ns = s.namespace
        if s.liveness == "lease":
            return LeaseLiveness(
                api,
                namespace=ns,
                node=s.node,
                duration=s.lease_duration,
                renew_period=s.renew_period,
                metrics=self.metrics,
                clock=clock,
                wall=wall,
            )
        probes = ProbeLiveness(
            api,
            namespace=ns,
            node=s.node,
            timing=s.probe_timing,
            bind=(s.probe_address or "0.0.0.0", s.probe_port),
            any_port_if_taken=s.probe_port_fallback,
            api_host=s.api_host,
            contact_period=s.contact_period,
            metrics=self.metrics,
            on_change=self._liveness_changed,
            clock=clock,
            wall=wall,
        )
        self.metrics.watch_probes(probes.detector.counts)
        return probes

    # -- change notifications (called by the informers, on the event loop) ------------------

    def _touch(self, key: str | None) -> None:
        if key is not None:
            self._dirty.add(key)
            self._wake.set()

    def _service_changed(
        self, change: ChangeType, key: str, new: JsonDict | None, old: JsonDict | None
    ) -> None:
        self.metrics.updates.inc()
        self._touch(key)

    def _slice_changed(
        self, change: ChangeType, key: str, new: JsonDict | None, old: JsonDict | None
    ) -> None:
        self.metrics.updates.inc()
        before = self._slice_owner.pop(key, None)
        if before is not None:
            self._slices_of.get(before, {}).pop(key, None)
            if not self._slices_of.get(before):
                self._slices_of.pop(before, None)
            self._touch(before)
        owner = None if new is None else endpoint_slice_service(new)
        if owner is not None and new is not None:
            self._slice_owner[key] = owner
            self._slices_of.setdefault(owner, {})[key] = new
            self._touch(owner)

    def _node_changed(
        self, change: ChangeType, key: str, new: JsonDict | None, old: JsonDict | None
    ) -> None:
        self.metrics.updates.inc()
        self._all = True
        self._wake.set()

    def _config_changed(
        self, change: ChangeType, key: str, new: JsonDict | None, old: JsonDict | None
    ) -> None:
        self.metrics.updates.inc()
        self._config_dirty = True
        self._wake.set()

    def _lease_changed(
        self, change: ChangeType, key: str, new: JsonDict | None, old: JsonDict | None
    ) -> None:
        self.liveness.observe(key, new)
        self._check_alive()

    def _liveness_changed(self) -> None:
        self._check_alive()
        self._wake.set()

    def _check_alive(self) -> None:
        alive = self.liveness.alive(self._clock())
        if alive is self.alive or alive == self.alive:
            return
        log_event(
            _log,
            logging.INFO,
            "speakers alive changed",
            alive=sorted(alive),
            joined=sorted(alive - self.alive),
            left=sorted(self.alive - alive),
        )
        self.alive = alive
        self.metrics.alive_nodes.set(len(alive))
        self._all = True
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down (see the module docstring)."""
        tasks: list[asyncio.Task[Any]] = []
        try:
            if not await self._list(stop):
                return
            tasks = [asyncio.create_task(i.run(), name=f"watch {i.what}") for i in self.informers]
            self._lease_task = asyncio.create_task(self.liveness.run(), name="liveness")
            tasks.append(self._lease_task)
            tasks.append(asyncio.create_task(self.l2status.run(), name="servicel2status"))
            if self._owns_events:
                tasks.append(asyncio.create_task(self.events.run(), name="events"))
            while not stop.is_set():
                for task in tasks:
                    if task.done():
                        task.result()  # a background task ended: a bug, let it out
                        raise RuntimeError(f"background task ended: {task.get_name()}")
                self._step()
                await self._wait(stop)
            await self._shut_down()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _list(self, stop: asyncio.Event) -> bool:
        listed: asyncio.Future[list[None]] = asyncio.gather(*(i.sync() for i in self.informers))
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        await asyncio.wait([listed, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not listed.done():
            listed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listed
            return False
        listed.result()
        log_event(
            _log,
            logging.INFO,
            "listed",
            node=self.node,
            services=len(self.services.objects),
            endpoint_slices=len(self.slices.objects),
            nodes=len(self.nodes.objects),
            leases=len(self.leases.objects),
        )
        return True

    def _has_work(self) -> bool:
        return bool(self._dirty or self._all or self._config_dirty)

    def _deadline(self) -> float | None:
        times = [self._next_scan]
        expiry = self.liveness.next_deadline(self._clock())
        if expiry is not None:
            times.append(expiry)
        if self._retry_at is not None:
            times.append(self._retry_at)
        return min(times)

    async def _wait(self, stop: asyncio.Event) -> None:
        # Frozen, a round changes nothing: only a wake-up (its own Lease seen fresh again
        # comes as one) or a timer is worth a look, never the work piled up meanwhile.
        while not stop.is_set() and (self.frozen or not self._has_work()):
            deadline = self._deadline()
            timeout = None if deadline is None else deadline - self._clock()
            if timeout is not None and timeout <= 0:
                return
            self._wake.clear()
            waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
            done, pending = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if not done or self.frozen:
                # A timer (a Lease may have gone stale, a retry or a scan is due), or, when
                # frozen, any news: it may be our own Lease seen fresh again.
                return
        # Let a burst of watch events land before the round takes its keys.
        await asyncio.sleep(0)

    @property
    def settled(self) -> bool:
        """Nothing to do and nothing to retry (for tests)."""
        return self.synced.is_set() and not (
            self._has_work() or self._retry_keys or self._retry_all or self.frozen
        )

    def _step(self) -> None:
        now = self._clock()
        if self._config_dirty:
            self._config_dirty = False
            self._apply_config()
        if now >= self._next_scan:
            self._scan_interfaces(now)
        self._release_retries(now)
        self._check_alive()
        if not self._in_contact(now):
            return
        self._say_if_no_node()
        if self.config is None:
            self._dirty.clear()
            self._all = False
            return
        keys = self._take_keys()
        if keys:
            self._elect(keys)
            self._apply()
        self.rounds += 1
        self.synced.set()

    def _release_retries(self, now: float) -> None:
        """Once the retry time has come, mark what failed before as work for this round."""
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._dirty |= self._retry_keys
            self._all = self._all or self._retry_all
            self._retry_keys.clear()
            self._retry_all = False

    def _in_contact(self, now: float) -> bool:
        """Follow the liveness standing: freeze (or fence) or thaw; True when free to act.

        Fenced, everything is withdrawn once; frozen, what is announced stays as it is.
        Back in contact, everything is looked at again.
        """
        standing = self.liveness.standing(now)
        if standing == "fenced":
            self.frozen = True
            if not self.fenced:
                self.fenced = True
                log_event(
                    _log,
                    logging.WARNING,
                    "fenced: withdrawing everything until in touch again",
                    lease=self.liveness.where,
                    announced=len(self.announced),
                )
                self._withdraw_everything()
            return False
        if standing == "frozen":
            if not self.frozen:
                self.frozen = True
                log_event(
                    _log,
                    logging.WARNING,
                    "not in contact with the API server (or not joined yet); "
                    "keeping what is announced, changing nothing until it is",
                    lease=self.liveness.where,
                    announced=len(self.announced),
                )
            return False
        if self.frozen:
            self.frozen = False
            self.fenced = False
            self._all = True
            log_event(_log, logging.INFO, "in contact", lease=self.liveness.where)
        return True

    def _say_if_no_node(self) -> None:
        """Warn once (until it appears) that no Node object has this node's name."""
        if self.node not in self.nodes.objects and self._said.get("no node") is None:
            self._said["no node"] = True
            log_event(
                _log,
                logging.WARNING,
                "no Node object has this node's name: this speaker will never be elected",
                node=self.node,
            )
        elif self.node in self.nodes.objects:
            self._said.pop("no node", None)

    def _take_keys(self) -> set[str]:
        """The Services to elect this round (all after a global change), clearing the marks."""
        if self._all:
            keys: set[str] = set(self.services.objects) | set(self.elections)
            self._all = False
        else:
            keys = set(self._dirty)
        self._dirty.clear()
        return keys

    # -- configuration and interfaces -------------------------------------------------------

    def _apply_config(self) -> None:
        configmap = self.configmaps.objects.get(f"{self.settings.namespace}/{CONFIGMAP_NAME}")
        reading = read_config(
            self.pools.objects.values(),
            self.advertisements.objects.values(),
            (),  # Namespaces only restrict allocation, never announcement
            configmap,
            previous=self.source,
        )
        if reading.error is not None:
            self.metrics.config_stale.set(1)
            if self._said.get("invalid") != reading.error:
                self._said["invalid"] = reading.error
                log_event(
                    _log,
                    logging.ERROR,
                    "invalid configuration, keeping the last valid one in force",
                    error=reading.error,
                )
            return
        self._said.pop("invalid", None)
        if reading.config is None:
            if self.config is not None:
                self.metrics.config_stale.set(1)
                if self._said.get("missing") != self.source:
                    self._said["missing"] = self.source
                    log_event(_log, logging.ERROR, "configuration is missing, keeping the last one")
            return
        self._said.pop("missing", None)
        self.metrics.config_stale.set(0)
        self.metrics.config_loaded.set(1)
        self.source = reading.source
        if reading.config != self.config:
            self.config = reading.config
            self._all = True
            log_event(
                _log,
                logging.INFO,
                "configuration in force",
                source=self.source,
                pools=[p.name for p in reading.config.pools],
                advertisements=[a.name for a in reading.config.l2_advertisements],
            )

    def _scan_interfaces(self, now: float) -> None:
        self._next_scan = now + self.settings.interface_rescan
        try:
            found = tuple(self._interface_source())
        except (OSError, ValueError) as error:
            log_event(_log, logging.WARNING, "interfaces not scanned", error=str(error))
            return
        if found != self._interfaces:
            log_event(
                _log,
                logging.INFO,
                "interfaces",
                ipv4=[i.name for i in found if i.ipv4],
                ipv6=[i.name for i in found if i.ipv6],
            )
            self._interfaces = found
            self._local = tuple(
                core.NodeInterface(name=i.name, ipv4=i.ipv4, ipv6=i.ipv6) for i in found
            )
            self._all = True

    # -- a round ----------------------------------------------------------------------------

    def _endpoints(self, key: str) -> core.ServiceEndpoints:
        return core.ServiceEndpoints.from_slices(self._slices_of.get(key, {}).values())

    def _elect(self, keys: set[str]) -> None:
        assert self.config is not None
        nodes = [
            core.NodeFacts.from_node(obj, speaker_alive=name in self.alive)
            for name, obj in self.nodes.objects.items()
        ]
        for key in sorted(keys):
            service = self.services.objects.get(key)
            if service is None or (service.get("spec") or {}).get("type") != "LoadBalancer":
                self.elections.pop(key, None)
                continue
            self.elections[key] = core.elect(self.config, service, nodes, self._endpoints(key))

    def _apply(self) -> None:
        plan = core.plan_announcements(
            self.node, self.elections.values(), self._local, self.announced
        )
        for pair in plan.withdraw:
            try:
                self.announcer.withdraw(*pair)
            except Exception as error:
                log_event(
                    _log,
                    logging.ERROR,
                    "withdraw failed",
                    ip=str(pair[0]),
                    interface=pair[1],
                    error=repr(error),
                )
                self._retry(set(), everything=True)
                continue
            self.announced.discard(pair)
        for pair in plan.announce:
            try:
                self.announcer.announce(*pair)
            except Exception as error:
                log_event(
                    _log,
                    logging.ERROR,
                    "announce failed",
                    ip=str(pair[0]),
                    interface=pair[1],
                    services=sorted(plan.want[pair]),
                    error=repr(error),
                )
                self._retry(set(plan.want[pair]))
                continue
            self.announced.add(pair)
        if not (self._retry_keys or self._retry_all):
            self._retry_backoff.reset()
        self._report(plan)

    def _retry(self, keys: set[str], *, everything: bool = False) -> None:
        self._retry_keys |= keys
        self._retry_all = self._retry_all or everything
        if self._retry_at is None:
            self._retry_at = self._clock() + self._retry_backoff.next()

    def _report(self, plan: core.AnnouncePlan) -> None:
        """Logs, Events and metrics for what changed in this round (the core says what)."""
        self.report, changes = core.report_announcements(
            plan, self.announced, self.report, self.elections
        )
        for change in changes:
            if change.kind == "announcing" and change.service is not None:
                log_event(
                    _log,
                    logging.INFO,
                    "announcing",
                    service=change.key,
                    ips=[str(ip) for ip in change.service.ips],
                    interfaces=list(change.service.interfaces),
                    pool=change.service.pool,
                )
            elif change.kind == "withdrawn":
                log_event(_log, logging.INFO, "withdrawn", service=change.key, reason=change.reason)
            elif change.kind == "announceFailed":
                log_event(
                    _log,
                    logging.WARNING,
                    "none of the allowed interfaces exists on this node",
                    service=change.key,
                    allowed=list(change.allowed),
                    local=[i.name for i in self._interfaces],
                )
            elif change.kind == "noInterface":
                log_event(_log, logging.WARNING, "no interface to announce on", service=change.key)
            for event in change.events:
                self._emit(change.key, event)
        self.metrics.set_announced(
            {(key, str(ip)) for key, served in self.report.serving.items() for ip in served.ips}
        )
        self.l2status.update(self.report.serving, self.alive)

    def _emit(self, key: str, event: core.Event) -> None:
        service = self.services.objects.get(key)
        if service is None:
            return
        self.events.emit(
            reference(service, api_version=SERVICE.api_version, kind=SERVICE.kind), event
        )

    # -- shutdown ---------------------------------------------------------------------------

    def _withdraw_everything(self) -> None:
        for pair in core.plan_announcements(self.node, (), (), self.announced).withdraw:
            with contextlib.suppress(Exception):
                self.announcer.withdraw(*pair)
        if self.announced:
            log_event(_log, logging.INFO, "withdrew everything", addresses=len(self.announced))
        self.announced.clear()
        self.report = core.AnnounceReport.empty()
        self.metrics.set_announced(set())

    async def _shut_down(self) -> None:
        self._withdraw_everything()
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.release_timeout):
                await self.liveness.leave()
        self.l2status.update({}, self.alive)  # after the handover: delete this node's statuses
        await self.l2status.drain(self.settings.flush_timeout)
        await self.events.flush(self.settings.flush_timeout)


async def run(
    api: KubeApi,
    announcer: Announcer,
    settings: SpeakerSettings,
    stop: asyncio.Event,
    *,
    interfaces: InterfaceSource,
    metrics: SpeakerMetrics | None = None,
) -> None:
    """Run one speaker until ``stop`` is set (see :class:`Speaker`)."""
    await Speaker(api, announcer, settings, interfaces=interfaces, metrics=metrics).run(stop)
