"""Continuous checks of what the cluster shows, for the controller's fault and sequence tests.

:class:`Watchdog` hooks into the emulator (``ApiServerEmulator.observers``): it is called
synchronously on every stored change, so it sees *every* instant of the cluster, however short,
not samples. It records a violation when

* a status change makes an address shown by two Services that may not share it (the sharing
  rules of the core, :func:`metallb_core.may_share`, judged with the Services as they are at
  that instant; clashes an edit of a Service makes are the user's, and are not counted);
* a Service loses or changes an address while neither it (its spec, labels or annotations,
  other than the two the controller writes) changed since its status was last written, nor
  any ``IPAddressPool`` since the write before (a write can follow a decision made just
  before a pool edit the controller had not seen yet).

:func:`fixpoint_problems` checks the end state: converging every Service afresh
(:func:`metallb_core.converge_all` from an empty state, as a new leader would) writes nothing,
so every Service that can be served is, and no status shows an address twice.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import metallb_core as core
from metallb_core.vocabulary import ingress_ips as ingress_list
from metallb_core.vocabulary import object_key
from tests.support.emulator import ApiServerEmulator

SERVICES = "v1/services"


def ingress_ips(service: Mapping[str, Any]) -> tuple[str, ...]:
    """The addresses a Service shows, as a tuple (comparable with ``Convergence.ingress``)."""
    return tuple(ingress_list(service))


POOLS = "metallb.io/v1beta1/ipaddresspools"
OURS = ("metallb.io/ip-allocated-from-pool", core.INPUTS_ANNOTATION)

JsonDict = dict[str, Any]


def inputs(service: Mapping[str, Any]) -> Any:
    """What a user may change on a Service (everything but status and our two annotations)."""
    meta = service.get("metadata") or {}
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in OURS}
    return (meta.get("uid"), meta.get("labels") or {}, notes, service.get("spec"))


class Watchdog:
    """Checks every change the emulator stores (see the module docstring)."""

    def __init__(self, apiserver: ApiServerEmulator) -> None:
        self.services: dict[str, JsonDict] = {
            object_key(s): s for s in apiserver.list_stored(SERVICES)
        }
        self.violations: list[str] = []
        self.changes = 0
        self.status_writes = 0
        self._pool_epoch = 0
        #: Per Service: the pool epochs of the status write before its last one and of its
        #: last one. A status write may follow a decision made before a pool edit that the
        #: controller had not seen yet (nothing orders a Service write after a pool edit), so
        #: a loss is excused by a pool edit since the write *before* the last.
        self._written: dict[str, tuple[int, int]] = {key: (0, 0) for key in self.services}
        self._edited: set[str] = set()
        #: The last changes of each Service (for the violation messages).
        self.trail: dict[str, list[str]] = {}
        apiserver.observers.append(self)
        self._apiserver = apiserver

    def detach(self) -> None:
        self._apiserver.observers.remove(self)

    def __call__(self, resource: str, kind: str, old: JsonDict | None, new: JsonDict) -> None:
        self.changes += 1
        if resource == POOLS:
            if _pool_edit(kind, old, new):
                self._pool_epoch += 1
            return
        if resource != SERVICES:
            return
        key = object_key(new)
        if kind == "DELETED":
            self._forget(key)
        else:
            self._service_changed(key, kind, new)

    def _forget(self, key: str) -> None:
        """Drop a deleted Service."""
        self.services.pop(key, None)
        self._written.pop(key, None)
        self._edited.discard(key)

    def _trace(self, key: str, kind: str, previous: JsonDict | None, new: JsonDict) -> list[str]:
        """Append the change to ``key``'s trail (its last 8 changes) and return the trail."""
        notes = (new.get("metadata") or {}).get("annotations") or {}
        trail = self.trail.setdefault(key, [])
        trail.append(
            f"#{self.changes} {kind} ingress={list(ingress_ips(new))} "
            f"edit={previous is not None and inputs(previous) != inputs(new)} "
            f"digest={str(notes.get(core.INPUTS_ANNOTATION))[:6]}"
        )
        del trail[:-8]
        return trail

    def _service_changed(self, key: str, kind: str, new: JsonDict) -> None:
        """A Service added or modified: note a user edit, and check a status change."""
        previous = self.services.get(key)
        trail = self._trace(key, kind, previous, new)
        if previous is not None and inputs(previous)[0] != inputs(new)[0]:
            previous = None  # deleted and created again
        self.services[key] = new
        before = ingress_ips(previous) if previous is not None else ()
        now = ingress_ips(new)
        if previous is not None and inputs(previous) != inputs(new):
            self._edited.add(key)
        if before == now:
            if previous is None:
                self._written[key] = (self._pool_epoch, self._pool_epoch)
            return
        self.status_writes += 1
        self._check_clashes(key, new, before, now)
        self._check_loss(key, before, now, trail)
        self._record_write(key)

    def _check_clashes(
        self, key: str, new: JsonDict, before: tuple[str, ...], now: tuple[str, ...]
    ) -> None:
        """Record each address ``key`` gained that another Service, which may not share it,
        shows."""
        for ip in set(now) - set(before):
            for other_key, other in self.services.items():
                if other_key != key and ip in ingress_ips(other) and not core.may_share(new, other):
                    self.violations.append(
                        f"{ip} shown by {key} and {other_key} (change {self.changes}): "
                        f"{self.trail.get(key)} / {self.trail.get(other_key)}"
                    )

    def _check_loss(
        self, key: str, before: tuple[str, ...], now: tuple[str, ...], trail: list[str]
    ) -> None:
        """Record a lost address when neither ``key`` was edited since its last status write
        nor a pool since the write before."""
        lost = set(before) - set(now)
        epoch = self._pool_epoch
        earlier, _ = self._written.get(key, (epoch, epoch))
        if lost and key not in self._edited and earlier == epoch:
            self.violations.append(
                f"{key} lost {sorted(lost)} without a change of its own or of a pool "
                f"(change {self.changes}, pool epoch {self._pool_epoch}): {trail}; now on "
                + str(
                    {
                        k: self.trail.get(k)
                        for k, o in self.services.items()
                        if set(ingress_ips(o)) & lost
                    }
                )
            )

    def _record_write(self, key: str) -> None:
        """A status write of ``key``: shift its pool epochs, forget its edits."""
        epoch = self._pool_epoch
        _, last = self._written.get(key, (epoch, epoch))
        self._written[key] = (last, epoch)
        self._edited.discard(key)


def _pool_edit(kind: str, old: JsonDict | None, new: JsonDict) -> bool:
    """Whether a pool change is an edit: added, deleted or its spec changed (its status
    counters are not)."""
    return old is None or kind == "DELETED" or old.get("spec") != new.get("spec")


def config_of(apiserver: ApiServerEmulator) -> core.Config:
    """The configuration the stored objects give (IPAddressPools, L2Advertisements)."""
    objects = [
        *apiserver.list_stored(POOLS),
        *apiserver.list_stored("metallb.io/v1beta1/l2advertisements"),
        *apiserver.list_stored("v1/namespaces"),
    ]
    return core.parse_resources(copy.deepcopy(objects))


def fixpoint_problems(apiserver: ApiServerEmulator) -> list[str]:
    """What a new leader would still write (empty when the cluster is settled and served)."""
    services = apiserver.list_stored(SERVICES)
    _, outcomes = core.converge_all(core.State.empty(config_of(apiserver)), services)
    by_key = {object_key(s): s for s in services}
    problems = []
    for key, outcome in outcomes.items():
        shown = ingress_ips(by_key[key])
        if outcome.ingress is not None and outcome.ingress != shown:
            problems.append(f"{key} shows {list(shown)}, a new leader would write {outcome}")
    seen: dict[str, str] = {}
    for key, service in by_key.items():
        for ip in ingress_ips(service):
            other = seen.get(ip)
            if other is not None and not core.may_share(service, by_key[other]):
                problems.append(f"{ip} shown by {key} and {other}")
            seen[ip] = key
    return problems
