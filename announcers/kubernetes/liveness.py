"""Speaker liveness: which nodes' speakers are alive, as the speaker asks it.

The speaker talks to a :class:`LivenessSource` (the seam): it feeds it every speaker Lease
its watch sees, asks :meth:`~LivenessSource.alive` and :meth:`~LivenessSource.standing`, and
is called back when they change. Two sources:

:class:`ProbeLiveness` (``--liveness probe``, the default)
    Membership is in the API, detection on the data plane. Each speaker's Lease
    ``metallb-core-speaker-<node>`` says it is a member (``holderIdentity``, its UDP probe
    address and an incarnation token in annotations); it is written only to join, to leave,
    and by *another* speaker to declare this one dead. The speakers probe each other over
    UDP (:mod:`announcers.kubernetes.membership`: ring monitors, indirect probes); a verdict
    is a merge PATCH conditional on the ``resourceVersion`` the judge saw, so that the API
    server's optimistic concurrency settles every race and no consensus is built here. A
    node is alive while its Lease has a holder. Steady state: no write, no watch event.

:class:`LeaseLiveness` (``--liveness lease``, the design before, kept as a baseline)
    Each speaker keeps its Lease alive (:class:`NodeLease`: ``spec.renewTime`` patched every
    renew period) and every speaker judges the others' with :class:`Liveness`: a node is
    alive while its Lease is *fresh*, i.e. it was last seen to change less than
    ``leaseDurationSeconds`` ago on the watching speaker's own monotonic clock (clock skew
    does not matter; a Lease seen for the first time is dated by its ``renewTime``). A
    Lease whose ``holderIdentity`` is empty was given up (SIGTERM). Silence is only evidence
    when the channel works: another node's Lease counts as stale only once this speaker has
    *seen its own Lease renewed twice* since it last saw the other one change. A renewal
    cut off by the client timeout is logged and counted.

:class:`Liveness` and :mod:`~announcers.kubernetes.membership` are pure (times are passed
in); :class:`NodeLease` and :class:`ProbeLiveness` do the requests and the datagrams.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import errno
import hashlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import metallb_core as core
from announcers.kubernetes.client import LEASE, Conflict, JsonDict, KubeApi, KubeError, NotFound
from announcers.kubernetes.informer import Backoff
from announcers.kubernetes.logs import log_event
from announcers.kubernetes.membership import (
    Address,
    Dead,
    Detector,
    ProbeTiming,
    Send,
    decode,
    encode,
)
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
        on_timeout: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.node = node
        self.name = lease_name(node)
        self._on_timeout = on_timeout
        self.timeouts = 0  # renewals cut off by the client-side timeout
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
        """Renew at a fixed rate until cancelled; a renewal cut off by the timeout is logged
        and counted as a failed one (``on_timeout`` too)."""
        tick = self._clock()
        while True:
            try:
                async with asyncio.timeout(max(self.duration, self.renew_period)):
                    await self.renew()
            except TimeoutError:
                self.failures += 1
                self.timeouts += 1
                log_event(
                    _log,
                    logging.WARNING,
                    "lease renewal timed out",
                    lease=self.where,
                    timeout=max(self.duration, self.renew_period),
                    failures=self.failures,
                )
                self._report(False)
                if self._on_timeout is not None:
                    self._on_timeout()
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


# -- the seam: what the speaker asks --------------------------------------------------------------

#: ``member``: act on the view; ``frozen``: keep what is announced, change nothing (the view
#: cannot be trusted: no contact with the API server); ``fenced``: withdraw everything (this
#: node is cut off from everyone, or another speaker of this node took over).
Standing = Literal["member", "frozen", "fenced"]


class LivenessMetrics(Protocol):
    """What a liveness source counts (``SpeakerMetrics`` has it)."""

    def renewed(self, ok: bool) -> None: ...
    def liveness_write(self, reason: str) -> None: ...
    def liveness_error(self, request: str, error: str) -> None: ...


class LivenessSource(Protocol):
    """Which nodes' speakers are alive, as the speaker asks it.

    The speaker feeds every speaker Lease it sees to :meth:`observe`, runs :meth:`run` in the
    background, asks :meth:`alive` and :meth:`standing` in each round, and is called back
    (``on_change``, given at construction) whenever either may have changed. On stop it
    withdraws, cancels :meth:`run`, then awaits :meth:`leave`.
    """

    where: str

    def observe(self, key: str, lease: Mapping[str, Any] | None) -> None: ...
    def alive(self, now: float) -> frozenset[str]: ...
    def standing(self, now: float) -> Standing: ...
    def next_deadline(self, now: float) -> float | None: ...
    async def run(self) -> None: ...
    async def leave(self) -> bool: ...


class LeaseLiveness:
    """``--liveness lease``: the design before issue 11 (each node renews its Lease every
    ``renew_period``; alive while fresh, see :class:`Liveness`), kept as the baseline."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        node: str,
        duration: int,
        renew_period: float,
        metrics: LivenessMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.node = node
        self._clock = clock
        self._wall = wall
        self.liveness = Liveness(me=node)
        self.lease = NodeLease(
            api,
            namespace=namespace,
            node=node,
            duration=duration,
            renew_period=renew_period,
            on_renewed=None if metrics is None else metrics.renewed,
            on_timeout=None
            if metrics is None
            else lambda: metrics.liveness_error("renew", "timeout"),
            clock=clock,
            wall=wall,
        )
        self.where = self.lease.where

    def observe(self, key: str, lease: Mapping[str, Any] | None) -> None:
        """See :meth:`LivenessSource.observe`."""
        self.liveness.observe(key, lease, now=self._clock(), wall=self._wall())

    def alive(self, now: float) -> frozenset[str]:
        """See :meth:`Liveness.alive`."""
        return self.liveness.alive(now)

    def standing(self, now: float) -> Standing:
        """``member`` while this node's own Lease is seen fresh, else ``frozen`` (the core's
        freeze rule, :func:`metallb_core.speaker_frozen`)."""
        return "frozen" if core.speaker_frozen(self.node, self.liveness.alive(now)) else "member"

    def next_deadline(self, now: float) -> float | None:
        """When the next fresh Lease goes stale."""
        return self.liveness.next_expiry(now)

    async def run(self) -> None:
        """Renew until cancelled."""
        await self.lease.run()

    async def leave(self) -> bool:
        """Give the Lease up."""
        return await self.lease.release()


# -- probes between speakers, the API decides ------------------------------------------------------

PROBE_ANNOTATION = "metallb-core.io/probe-address"
INCARNATION_ANNOTATION = "metallb-core.io/incarnation"
DEAD_BY_ANNOTATION = "metallb-core.io/declared-dead-by"
#: The UDP port speakers probe each other on (MetalLB's memberlist port).
DEFAULT_PROBE_PORT = 7946


def format_address(address: Address) -> str:
    """``host:port`` (``[host]:port`` for IPv6).

    >>> format_address(("10.0.0.1", 7946)), format_address(("fd00::1", 7946))
    ('10.0.0.1:7946', '[fd00::1]:7946')
    """
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: object) -> Address | None:
    """The inverse of :func:`format_address` (None when it does not parse).

    >>> parse_address("[fd00::1]:7946"), parse_address("10.0.0.1:x")
    (('fd00::1', 7946), None)
    """
    if not isinstance(text, str) or ":" not in text:
        return None
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        return None
    return (host, number) if 0 < number < 65536 else None


def route_source(host: str) -> str:
    """The local address this node uses to reach ``host`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class _Record:
    holder: str
    address: Address | None
    incarnation: str
    version: str
    name: str
    dead_by: str = ""


def _record(lease: Mapping[str, Any]) -> _Record:
    meta = lease.get("metadata") or {}
    notes = meta.get("annotations") or {}
    spec = lease.get("spec") or {}
    return _Record(
        holder=str(spec.get("holderIdentity") or ""),
        address=parse_address(notes.get(PROBE_ANNOTATION)),
        incarnation=str(notes.get(INCARNATION_ANNOTATION) or ""),
        version=str(meta.get("resourceVersion") or ""),
        name=str(meta.get("name") or ""),
        dead_by=str(notes.get(DEAD_BY_ANNOTATION) or ""),
    )


class ProbeLiveness:
    """``--liveness probe`` (the default): membership in the API, detection over UDP.

    A node is alive while its Lease has a holder (:meth:`alive`: every speaker reads the same
    objects). The Lease is written only when this speaker joins (start-up, or rejoining after
    a verdict), leaves (:meth:`leave`), or condemns another node: the :class:`Detector`'s
    verdicts, each a write conditional on the ``resourceVersion`` this speaker saw, so that
    the API settles every race. See ``docs/speaker.md`` for the failure model.

    ``bind`` is the UDP socket's address (port 0: any, for tests); ``advertise`` the host put
    in the Lease for the others to probe (default: the bound host, or this node's address
    towards the API server when bound to every address).
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        node: str,
        timing: ProbeTiming | None = None,
        bind: Address = ("0.0.0.0", DEFAULT_PROBE_PORT),
        any_port_if_taken: bool = False,
        advertise: str = "",
        api_host: str = "",
        contact_period: float = 2.0,
        request_timeout: float = 2.0,
        metrics: LivenessMetrics | None = None,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.node = node
        self.name = lease_name(node)
        self.where = f"{namespace}/{self.name}"
        self.timing = timing or ProbeTiming()
        self._rng = rng or random.Random()
        self.detector = Detector(node, self.timing, sample=self._rng.sample)
        self.incarnation = f"{self._rng.getrandbits(64):016x}"
        self.bind = bind
        #: When the port of ``bind`` is taken: probe on an ephemeral port (the Lease publishes
        #: it) instead of failing; for the default port only, never for one asked for.
        self.any_port_if_taken = any_port_if_taken
        self._advertise = advertise
        self._api_host = api_host
        self.address: Address | None = None
        self.contact_period = contact_period
        self.request_timeout = request_timeout
        self._metrics = metrics
        self.on_change = on_change
        self._clock = clock
        self._wall = wall
        self._records: dict[str, _Record] = {}
        self._alive: frozenset[str] = frozenset()
        self._own_key = f"{namespace}/{self.name}"
        self._joined = False  # our record, with our incarnation, seen at least once
        self._out_since: float | None = None  # declared dead (or released) since then
        self._superseded = False  # another speaker of this node joined after us
        self._contact = False
        self._fenced = False
        self._leaving = False
        self._rejoin = Backoff(initial=1.0, cap=30.0)
        self._rejoin_at = 0.0
        self._joined_at = 0.0
        self._sock: socket.socket | None = None
        self._wake_prober = asyncio.Event()
        self._wake_api = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._condemning: set[str] = set()
        #: Datagrams to or from these addresses are dropped (tests: a partition).
        self.blocked: set[Address] = set()
        #: Verdicts this speaker wrote, and the ones the API refused (for tests, benchmarks).
        self.condemned: list[str] = []
        self.refused = 0

    # -- the view ----------------------------------------------------------------------------

    def observe(self, key: str, lease: Mapping[str, Any] | None) -> None:
        """Take in the latest version of a speaker Lease (None: deleted).

        O(1) unless the membership changes (a join, a leave, a verdict): then the ring is
        rebuilt once, O(N log N)."""
        before = self._records.get(key)
        if lease is None:
            self._records.pop(key, None)
            after = None
        else:
            after = self._records[key] = _record(lease)
        membership = (before.holder, before.address) if before is not None else None
        if membership != ((after.holder, after.address) if after is not None else None):
            self._members_changed()
        self._refresh()

    def _members_changed(self) -> None:
        members = {r.holder: r.address for r in self._records.values() if r.holder and r.address}
        self.detector.set_members(members, now=self._clock())
        self._alive = frozenset(r.holder for r in self._records.values() if r.holder)
        self._wake_prober.set()

    def _refresh(self) -> None:
        now = self._clock()
        own = self._records.get(self._own_key)
        if own is not None and own.holder == self.node and own.incarnation == self.incarnation:
            if not self._joined or self._out_since is not None:
                log_event(_log, logging.INFO, "joined", lease=self.where, probe=self._probe_text)
                self._joined_at = now
            self._joined = True
            self._out_since = None
        elif self._joined and not self._leaving:
            if own is not None and own.holder == self.node:
                if not self._superseded:
                    log_event(
                        _log,
                        logging.WARNING,
                        "another speaker of this node joined: standing down",
                        lease=self.where,
                    )
                self._superseded = True
            elif self._out_since is None:
                self._out_since = now
                if now - self._joined_at > 300.0:
                    self._rejoin.reset()  # the last verdict was long ago: start small again
                self._rejoin_at = now + self._rejoin.next()
                who = "" if own is None else own.dead_by
                log_event(
                    _log,
                    logging.WARNING,
                    "declared dead: withdrawing, rejoining once probes are answered",
                    lease=self.where,
                    by=who or None,
                    rejoin_in=round(self._rejoin_at - now, 2),
                )
                self._wake_api.set()
        self._notify()

    @property
    def _probe_text(self) -> str | None:
        return None if self.address is None else format_address(self.address)

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def alive(self, now: float) -> frozenset[str]:
        """The nodes whose Lease has a holder."""
        return self._alive

    def standing(self, now: float) -> Standing:
        """See :data:`Standing`."""
        if self._superseded or self._fenced:
            return "fenced"
        if not self._joined or not self._contact:
            return "frozen"
        return "member"

    def next_deadline(self, now: float) -> float | None:
        """None: every change is reported through ``on_change``."""
        return None

    @property
    def in_good_standing(self) -> bool:
        """Joined, not declared dead, in contact: only such a speaker condemns others."""
        return (
            self._joined
            and self._out_since is None
            and self._contact
            and not (self._superseded or self._leaving or self._fenced)
        )

    # -- running -----------------------------------------------------------------------------

    def _open(self) -> socket.socket:
        host, port = self.bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.bind((host, port))
        except OSError as error:
            if not (self.any_port_if_taken and error.errno == errno.EADDRINUSE):
                sock.close()
                raise
            log_event(
                _log,
                logging.WARNING,
                "probe port taken: probing on an ephemeral port (published in the Lease)",
                port=port,
            )
            sock.bind((host, 0))
        bound = sock.getsockname()
        advertise = self._advertise
        if not advertise:
            unspecified = host in ("0.0.0.0", "::", "")
            advertise = route_source(self._api_host) if unspecified and self._api_host else host
            if advertise in ("0.0.0.0", "::", ""):
                advertise = "127.0.0.1"
        self.address = (advertise, int(bound[1]))
        return sock

    async def run(self) -> None:
        """Probe and answer over UDP, join, keep in contact, rejoin; until cancelled."""
        loop = asyncio.get_running_loop()
        self._sock = self._open()
        loop.add_reader(self._sock.fileno(), self._drain)
        log_event(_log, logging.INFO, "probing", probe=self._probe_text, timing=str(self.timing))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._probe_loop())
                group.create_task(self._api_loop())
        finally:
            loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            for task in list(self._tasks):
                task.cancel()

    def _drain(self) -> None:
        sock = self._sock
        if sock is None:
            return
        cluster = self.namespace
        while True:
            try:
                data, source = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP port unreachable reported on the socket
            if (source[0], source[1]) in self.blocked:
                continue
            message = decode(data, cluster)
            if message is not None:
                actions = self.detector.receive(message, (source[0], source[1]), now=self._clock())
                self._carry(actions)

    def _carry(self, actions: list[Send | Dead]) -> None:
        for action in actions:
            if isinstance(action, Dead):
                task = asyncio.get_running_loop().create_task(self._condemn(action.node))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                continue
            if self._sock is not None and action.to not in self.blocked:
                with contextlib.suppress(OSError):
                    self._sock.sendto(encode(action.message, self.namespace), action.to)

    async def _probe_loop(self) -> None:
        while True:
            deadline = self.detector.next_deadline()
            now = self._clock()
            wait = 1.0 if deadline is None else max(0.0, deadline - now)
            if wait > 0:
                self._wake_prober.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(wait, 1.0)):
                        await self._wake_prober.wait()
            self._drain()  # what came in while we slept counts before any deadline is judged
            now = self._clock()
            self._carry(self.detector.tick(now))
            self._check_isolation(now)

    def _check_isolation(self, now: float) -> None:
        # A condemned speaker announces nothing: its isolation changes nothing.
        isolated = self._joined and self._out_since is None and self.detector.isolated(now)
        if isolated and self._contact:
            self._wake_api.set()  # is the API still there? If not, fence.
        fenced = isolated and not self._contact
        if fenced != self._fenced:
            self._fenced = fenced
            log_event(
                _log,
                logging.WARNING if fenced else logging.INFO,
                "cut off from every peer and the API server: withdrawing everything"
                if fenced
                else "in touch again: no longer fenced",
                lease=self.where,
            )
            self._notify()

    async def _api_loop(self) -> None:
        backoff = Backoff(initial=0.25, cap=3.2)
        while not await self._join():
            await asyncio.sleep(backoff.next())
        checked = self._clock()
        while True:
            now = self._clock()
            if self._wake_api.is_set() or now - checked >= self.contact_period:
                woken = self._wake_api.is_set()
                self._wake_api.clear()
                await self._check_contact()
                checked = self._clock()
                if woken:
                    await asyncio.sleep(1.0)  # at most one extra check a second when woken
                continue
            wait = checked + self.contact_period - now
            out = self._out_since is not None and not (self._superseded or self._leaving)
            if out and self._out_since is not None and now >= self._rejoin_at:
                # Rejoin once our probes are answered *and* the others reach us.
                if self.detector.answered_since(self._out_since) and self.detector.reached_since(
                    self._out_since
                ):
                    await self._join()
                    continue
                if self.address is not None:
                    self._carry(self.detector.self_check(self.address))
                wait = min(wait, 0.5)
            elif out:
                wait = min(wait, self._rejoin_at - now + 0.01)
            self._wake_api.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._wake_api.wait()

    def _set_contact(self, ok: bool) -> None:
        if ok != self._contact:
            self._contact = ok
            if ok:
                log_event(_log, logging.INFO, "in contact with the API server", lease=self.where)
            else:
                log_event(
                    _log,
                    logging.WARNING,
                    "API server unreachable: keeping what is announced, changing nothing",
                    lease=self.where,
                )
            self._check_isolation(self._clock())
            self._notify()

    async def _request(self, what: str, call: Callable[[], Any]) -> JsonDict | None:
        """One API call with the request timeout; failures counted and logged (None)."""
        try:
            async with asyncio.timeout(self.request_timeout):
                result: JsonDict = await call()
        except TimeoutError:
            self._count_error(what, "timeout")
            log_event(
                _log,
                logging.WARNING,
                "liveness request timed out",
                request=what,
                lease=self.where,
                timeout=self.request_timeout,
            )
            self._set_contact(False)
            return None
        except (Conflict, NotFound):
            raise
        except KubeError as error:
            self._count_error(what, "refused")
            log_event(
                _log,
                logging.WARNING,
                "liveness request failed",
                request=what,
                lease=self.where,
                error=str(error),
            )
            self._set_contact(False)
            return None
        self._set_contact(True)
        return result

    def _count_error(self, what: str, error: str) -> None:
        if self._metrics is not None:
            self._metrics.liveness_error(what, error)

    def _count_write(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.liveness_write(reason)

    async def _check_contact(self) -> None:
        try:
            lease = await self._request(
                "check", lambda: self.api.get(LEASE, self.name, namespace=self.namespace)
            )
        except NotFound:
            self._set_contact(True)
            self.observe(self._own_key, None)
            return
        if lease is not None:
            self._fold(lease)

    def _fold(self, lease: JsonDict) -> None:
        key = f"{self.namespace}/{(lease.get('metadata') or {}).get('name') or ''}"
        before = self._records.get(key)
        fresh = _record(lease)
        if (
            before is not None
            and before.version.isdigit()
            and fresh.version.isdigit()
            and int(fresh.version) < int(before.version)
        ):
            return  # the watch brought newer news already
        self.observe(key, lease)

    def _spec(self, now: str, *, transitions: int) -> JsonDict:
        return {
            "holderIdentity": self.node,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _notes(self) -> dict[str, str | None]:
        assert self.address is not None
        return {
            PROBE_ANNOTATION: format_address(self.address),
            INCARNATION_ANNOTATION: self.incarnation,
            DEAD_BY_ANNOTATION: None,
        }

    async def _join(self) -> bool:
        """Write our record (create it, or take it over by a conditional write)."""
        if self.address is None:
            return False
        now = micro_time(self._wall())
        try:
            current = await self._request(
                "join", lambda: self.api.get(LEASE, self.name, namespace=self.namespace)
            )
            if current is None:
                return False
            meta = current.get("metadata") or {}
            spec = current.get("spec") or {}
            transitions = int(spec.get("leaseTransitions") or 0)
            if spec.get("holderIdentity") != self.node:
                transitions += 1
            patch: JsonDict = {
                "metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    "annotations": self._notes(),
                },
                "spec": {
                    **self._spec(now, transitions=transitions),
                    "leaseDurationSeconds": None,
                },
            }
            written = await self._request(
                "join",
                lambda: self.api.patch(LEASE, self.name, patch, namespace=self.namespace),
            )
        except NotFound:
            notes = {k: v for k, v in self._notes().items() if v is not None}
            body = {
                "apiVersion": LEASE.api_version,
                "kind": LEASE.kind,
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": dict(LEASE_LABELS),
                    "annotations": notes,
                },
                "spec": self._spec(now, transitions=0),
            }
            try:
                written = await self._request("join", lambda: self.api.create(LEASE, body))
            except (Conflict, NotFound):
                self._count_error("join", "conflict")
                return False
        except Conflict:
            self._count_error("join", "conflict")
            return False
        if written is None:
            return False
        self._count_write("join")
        self._superseded = False
        self._fold(written)
        return True

    async def _condemn(self, node: str) -> None:
        """Claim ``node``'s death: a write conditional on the version we saw.

        First a fresh read of our own Lease: a speaker condemned itself meanwhile (the two
        sides of a partition condemning each other) writes nothing, so that one side of a
        partition survives, the first whose verdict the API took."""
        if node in self._condemning:
            return
        self._condemning.add(node)
        try:
            await self._condemn_once(node)
        finally:
            self._condemning.discard(node)

    async def _condemn_once(self, node: str) -> None:
        record = next((r for r in self._records.values() if r.holder == node), None)
        if record is None or not self.in_good_standing:
            return
        await asyncio.sleep(self._rng.uniform(0.0, 0.05))  # two racing sides rarely tie
        try:
            mine = await self._request(
                "check", lambda: self.api.get(LEASE, self.name, namespace=self.namespace)
            )
        except NotFound:
            return
        if mine is None:
            return
        self._fold(mine)
        record = next((r for r in self._records.values() if r.holder == node), None)
        if record is None or not self.in_good_standing:
            return
        patch: JsonDict = {
            "metadata": {
                "resourceVersion": record.version,
                "annotations": {DEAD_BY_ANNOTATION: self.node},
            },
            "spec": {"holderIdentity": None, "renewTime": micro_time(self._wall())},
        }
        try:
            written = await self._request(
                "verdict",
                lambda: self.api.patch(LEASE, record.name, patch, namespace=self.namespace),
            )
        except (Conflict, NotFound):
            # Rejoined, released or condemned by another monitor meanwhile: the API says.
            self.refused += 1
            self._count_error("verdict", "conflict")
            log_event(_log, logging.INFO, "verdict refused: the Lease changed", node=node)
            with contextlib.suppress(KubeError):
                fresh = await self._request(
                    "check", lambda: self.api.get(LEASE, record.name, namespace=self.namespace)
                )
                if fresh is not None:
                    self._fold(fresh)
            return
        if written is None:
            return
        self.condemned.append(node)
        self._count_write("verdict")
        log_event(_log, logging.WARNING, "declared dead", node=node, lease=record.name)
        self._fold(written)

    async def leave(self) -> bool:
        """Give our record up (``holderIdentity`` emptied) if it is still ours; True if done."""
        self._leaving = True
        for _ in range(2):
            own = self._records.get(self._own_key)
            if (
                own is None
                or own.holder != self.node
                or own.incarnation != self.incarnation
                or not self._joined
            ):
                return False
            give_up: JsonDict = {
                "metadata": {"resourceVersion": own.version},
                "spec": {"holderIdentity": None, "renewTime": micro_time(self._wall())},
            }
            try:
                written = await self._request(
                    "leave",
                    lambda p=give_up: self.api.patch(  # type: ignore[misc]
                        LEASE, self.name, p, namespace=self.namespace
                    ),
                )
            except Conflict:
                try:
                    fresh = await self._request(
                        "leave", lambda: self.api.get(LEASE, self.name, namespace=self.namespace)
                    )
                except KubeError:
                    return False
                if fresh is None:
                    return False
                self._records[self._own_key] = _record(fresh)
                continue
            except NotFound:
                return False
            if written is None:
                return False
            self._count_write("leave")
            self._records[self._own_key] = _record(written)
            log_event(_log, logging.INFO, "lease released", lease=self.where)
            return True
        return False
