"""Core outcomes to Kubernetes writes: pure functions, no I/O, no clock (time is passed in).

* :func:`status_patch` / :func:`annotation_patch`: what a :class:`metallb_core.Convergence`
  means for a Service, as JSON merge patches, or None when the object already says it (so
  a restart writes nothing).
* :func:`pool_status`: ``IPAddressPool.status`` from :func:`metallb_core.pool_usage`.
* :class:`EventBook`: ``events.k8s.io/v1`` Event bodies, and the bookkeeping that turns a
  repeat of the same event into an update of its ``series``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
from collections.abc import Mapping
from typing import Any

import metallb_core as core
from metallb_core.vocabulary import ALLOCATED_FROM_POOL, JsonDict

#: ``status.loadBalancer.ingress[*].ipMode`` for a Layer-2 address: traffic reaches the node
#: with the load-balancer IP as destination.
IP_MODE = "VIP"
#: The reporting controller of every Event (a qualified name, as the API requires).
REPORTING_CONTROLLER = "metallb-core/controller"
#: Event ``note`` limit of ``events.k8s.io/v1``.
NOTE_LIMIT = 1024


def ingress_entries(ips: tuple[str, ...]) -> list[JsonDict]:
    """``status.loadBalancer.ingress``: one ``{"ip", "ipMode": "VIP"}`` per address, in order.

    >>> ingress_entries(("10.0.0.1",))
    [{'ip': '10.0.0.1', 'ipMode': 'VIP'}]
    """
    return [{"ip": ip, "ipMode": IP_MODE} for ip in ips]


def _status_says(service: Mapping[str, Any], ips: tuple[str, ...]) -> bool:
    """Whether the Service's status already holds exactly ``ips`` the way we write them.

    An entry without ``ipMode`` counts as ours: API servers without the field drop it, and
    rewriting it there would be a write on every restart.
    """
    entries = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if len(entries) != len(ips):
        return False
    for entry, ip in zip(entries, ips, strict=True):
        if not isinstance(entry, Mapping) or entry.get("ip") != ip:
            return False
        if set(entry) - {"ip", "ipMode"} or entry.get("ipMode", IP_MODE) != IP_MODE:
            return False
    return True


def status_patch(service: Mapping[str, Any], outcome: core.Convergence) -> JsonDict | None:
    """The merge patch for the ``status`` subresource, or None when nothing must change.

    It carries the Service's ``resourceVersion``: written over a newer version, it is a 409,
    and the controller reads the Service again instead of writing a stale decision.

    >>> svc = {"metadata": {"resourceVersion": "7"}, "status": {"loadBalancer": {}}}
    >>> patch = status_patch(svc, core.Convergence(key="a/b", ingress=("10.0.0.1",), pool="p"))
    >>> patch["metadata"], patch["status"]["loadBalancer"]["ingress"]
    ({'resourceVersion': '7'}, [{'ip': '10.0.0.1', 'ipMode': 'VIP'}])
    """
    if outcome.ingress is None or _status_says(service, outcome.ingress):
        return None
    version = (service.get("metadata") or {}).get("resourceVersion")
    # null removes the key: an empty status.loadBalancer, as Kubernetes shows a pending one.
    ingress = ingress_entries(outcome.ingress) if outcome.ingress else None
    patch: JsonDict = {"status": {"loadBalancer": {"ingress": ingress}}}
    if version:
        patch = {"metadata": {"resourceVersion": version}, **patch}
    return patch


def annotation_patch(service: Mapping[str, Any], outcome: core.Convergence) -> JsonDict | None:
    """The merge patch setting (or removing) ``metallb.io/ip-allocated-from-pool`` and the
    inputs digest (:data:`metallb_core.INPUTS_ANNOTATION`, see
    :func:`metallb_core.inputs_digest`), or None when both already say it.

    ``service`` is the version the outcome was decided from: the digest records the inputs
    that decided the status (a Service without addresses carries none).

    >>> annotation_patch({"metadata": {}}, core.Convergence(key="a/b", ingress=(), pool=None))
    >>> given = core.Convergence(key="a/b", ingress=("10.0.0.1",), pool="p")
    >>> notes = annotation_patch({"metadata": {}}, given)["metadata"]["annotations"]
    >>> notes["metallb.io/ip-allocated-from-pool"], len(notes[core.INPUTS_ANNOTATION])
    ('p', 32)
    """
    if outcome.ingress is None:
        return None
    notes = (service.get("metadata") or {}).get("annotations") or {}
    digest = core.inputs_digest(service) if outcome.ingress else None
    wanted = {ALLOCATED_FROM_POOL: outcome.pool, core.INPUTS_ANNOTATION: digest}
    if all(notes.get(k) == v for k, v in wanted.items()):
        return None
    return {"metadata": {"annotations": wanted}}


def pool_status(usage: core.PoolUsage) -> JsonDict:
    """``IPAddressPool.status`` from the core's counters (exact integers).

    >>> pool_status(core.PoolUsage(assigned_ipv4=1, assigned_ipv6=0,
    ...                            available_ipv4=15, available_ipv6=0))
    {'assignedIPv4': 1, 'assignedIPv6': 0, 'availableIPv4': 15, 'availableIPv6': 0}
    """
    return {
        "assignedIPv4": usage.assigned_ipv4,
        "assignedIPv6": usage.assigned_ipv6,
        "availableIPv4": usage.available_ipv4,
        "availableIPv6": usage.available_ipv6,
    }


def pool_status_patch(pool: Mapping[str, Any], usage: core.PoolUsage) -> JsonDict | None:
    """The merge patch for an ``IPAddressPool``'s ``status``, or None when it is current."""
    wanted = pool_status(usage)
    current = pool.get("status") or {}
    if all(current.get(k) == v for k, v in wanted.items()):
        return None
    return {"status": wanted}


# -- Events -----------------------------------------------------------------------------------


def micro_time(now: datetime.datetime) -> str:
    """A ``MicroTime`` string (RFC 3339, microseconds, UTC).

    >>> micro_time(datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC))
    '2026-01-02T03:04:05.000006Z'
    """
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reference(obj: Mapping[str, Any], *, api_version: str, kind: str) -> JsonDict:
    """An ``ObjectReference`` to ``obj`` (for ``Event.regarding``).

    The API version and kind are given: objects inside a list answer do not carry them.

    >>> reference({"metadata": {"namespace": "web", "name": "nginx", "uid": "u1"}},
    ...           api_version="v1", kind="Service")
    {'apiVersion': 'v1', 'kind': 'Service', 'name': 'nginx', 'namespace': 'web', 'uid': 'u1'}
    """
    meta = obj.get("metadata") or {}
    ref: JsonDict = {"apiVersion": api_version, "kind": kind, "name": meta.get("name") or ""}
    for field in ("namespace", "uid", "resourceVersion"):
        if meta.get(field):
            ref[field] = meta[field]
    return ref


@dataclasses.dataclass(frozen=True)
class CreateEvent:
    """Create a new Event (``body`` is the whole object)."""

    key: tuple[str, ...]
    namespace: str
    body: JsonDict


@dataclasses.dataclass(frozen=True)
class UpdateSeries:
    """Patch an existing Event's ``series`` (a repeat of it)."""

    key: tuple[str, ...]
    namespace: str
    name: str
    patch: JsonDict


EventWrite = CreateEvent | UpdateSeries


@dataclasses.dataclass
class _Sent:
    name: str
    count: int


class EventBook:
    """Builds Event writes and remembers what was sent, so a repeat becomes a series update.

    Two events are the same when they regard the same object (by uid) with the same type,
    reason, action and note. The book keeps the last ``capacity`` of them (oldest forgotten
    first); a forgotten or failed one is simply created again.

    >>> book = EventBook(instance="controller-0")
    >>> svc = reference({"metadata": {"namespace": "web", "name": "nginx", "uid": "u1"}},
    ...                 api_version="v1", kind="Service")
    >>> event = core.Event(type="Warning", reason="AllocationFailed", message="no available IPs")
    >>> now = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    >>> first = book.record(svc, event, now)
    >>> first.body["reason"], first.body["regarding"]["name"]
    ('AllocationFailed', 'nginx')
    >>> book.record(svc, event, now).patch["series"]["count"]
    2
    """

    def __init__(self, *, instance: str, action: str = "Allocate", capacity: int = 4096) -> None:
        self.instance = instance[:128]
        self.action = action
        self.capacity = capacity
        self._sent: collections.OrderedDict[tuple[str, ...], _Sent] = collections.OrderedDict()
        self._serial = 0

    def key(self, ref: Mapping[str, Any], event: core.Event, action: str) -> tuple[str, ...]:
        """The identity of an event: who it regards (``ref``) and what it says."""
        return (
            ref.get("namespace", ""),
            ref["kind"],
            ref["name"],
            ref.get("uid", ""),
            event.type,
            event.reason,
            action,
            event.message,
        )

    def _name(self, regarding_name: str, now: datetime.datetime) -> str:
        self._serial += 1
        stamp = int(now.timestamp() * 1e9)
        suffix = hashlib.sha256(f"{self.instance}/{self._serial}".encode()).hexdigest()[:6]
        return f"{regarding_name[:200]}.{stamp:x}{suffix}"

    def record(
        self,
        ref: Mapping[str, Any],
        event: core.Event,
        now: datetime.datetime,
        *,
        action: str | None = None,
    ) -> EventWrite:
        """The write for ``event`` about ``ref`` (see :func:`reference`) at ``now``: a create,
        or a series update."""
        act = action or self.action
        key = self.key(ref, event, act)
        namespace = ref.get("namespace") or "default"
        sent = self._sent.get(key)
        if sent is not None:
            sent.count += 1
            self._sent.move_to_end(key)
            patch = {"series": {"count": sent.count, "lastObservedTime": micro_time(now)}}
            return UpdateSeries(key=key, namespace=namespace, name=sent.name, patch=patch)
        name = self._name(ref["name"], now)
        note = event.message if len(event.message) <= NOTE_LIMIT else event.message[:1021] + "..."
        body: JsonDict = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "eventTime": micro_time(now),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": act,
            "reason": event.reason,
            "note": note,
            "type": event.type,
            "regarding": dict(ref),
        }
        self._sent[key] = _Sent(name=name, count=1)
        while len(self._sent) > self.capacity:
            self._sent.popitem(last=False)
        return CreateEvent(key=key, namespace=namespace, body=body)

    def forget(self, key: tuple[str, ...]) -> None:
        """Forget an event (its create failed, or it is gone): the next repeat creates it."""
        self._sent.pop(key, None)

    def __len__(self) -> int:
        return len(self._sent)
