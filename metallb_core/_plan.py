"""Which statuses to write, in which order, and the state once some writes failed: pure.

The controller asks :func:`~metallb_core.converge_all` what every Service of a round must
show, then writes those statuses one batch at a time. A status write can fail (409, 5xx, an
outage) or be cut short (a new leader), so the cluster (the statuses as written so far) goes
through every intermediate combination of old and new statuses. This module decides the
writes so that **at no instant does the cluster show an address in two Services that may not
share it**, whatever subset of the writes succeeds:

* :func:`next_writes` gives the writes that are safe *now*, against the statuses every
  Service shows now: first every write that gives an address up (a Service moving to an
  address that nobody shows is written in one go; one moving to an address another Service
  still shows is first written with only the addresses it keeps, often none); only when no
  such write is left, the writes that only take addresses, each checked against every
  Service's current status (and against the other writes of the batch). Within a batch the
  writes may go out in any order, concurrently; any of them may fail.
* :func:`settle` is the state to adopt once the writes are done: a Service whose status shows
  its outcome keeps the outcome's allocation; every other one holds what its status shows
  (successful writes of a round that failed elsewhere are kept), so the next round cannot hand
  out an address a status still shows.

Two Services may share an address as in the allocator: the same non-empty sharing key, the
same backend key, and no port in common (:func:`may_share`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from metallb_core._allocator import assign, family_of, release
from metallb_core._converge import Convergence
from metallb_core._errors import InvalidService
from metallb_core._outcomes import AllocationError
from metallb_core._service import service_request
from metallb_core._state import State
from metallb_core.vocabulary import ingress_ips


@dataclasses.dataclass(frozen=True)
class StatusWrite:
    """One status write: ``key`` must show ``ingress`` (``()`` clears it).

    ``final`` is False for an interim write that only gives addresses up, on the way to the
    Service's outcome (which a later batch writes).
    """

    key: str
    ingress: tuple[str, ...]
    final: bool = True


def _canonical(ips: Iterable[str]) -> Iterator[str]:
    """Status IPs in canonical form (``2001:DB8::1`` is ``2001:db8::1``); others as they are."""
    for ip in ips:
        try:
            yield str(ipaddress.ip_address(ip))
        except ValueError:
            yield ip


def _sharing(service: Mapping[str, Any]) -> tuple[str, str, frozenset[tuple[str, int]]] | None:
    try:
        request = service_request(service, family="ipv4", with_requests=False)
    except InvalidService:
        return None
    ports = frozenset((p.protocol, p.port) for p in request.ports)
    return request.sharing_key, request.backend_key, ports


def may_share(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two Service dicts may show the same address: the same non-empty
    ``allow-shared-ip`` key, the same backend key and no port in common (a Service that
    cannot be read shares with nobody).

    >>> def svc(port, key="k"):
    ...     return {"metadata": {"annotations": {"metallb.io/allow-shared-ip": key}},
    ...             "spec": {"ports": [{"port": port}]}}
    >>> may_share(svc(80), svc(443)), may_share(svc(80), svc(80)), may_share(svc(80, ""), svc(1))
    (True, False, False)
    """
    x, y = _sharing(a), _sharing(b)
    if x is None or y is None:
        return False
    return bool(x[0]) and x[0] == y[0] and x[1] == y[1] and not (x[2] & y[2])


def _index(services: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for key, service in services.items():
        for ip in _canonical(ingress_ips(service)):
            shown.setdefault(ip, []).append(key)
    return shown


#: A Service whose status must change: its key, the addresses it shows now, its target.
_Pending = tuple[str, tuple[str, ...], tuple[str, ...]]


def _pending(
    services: Mapping[str, Mapping[str, Any]], outcomes: Mapping[str, Convergence]
) -> list[_Pending]:
    """The outcomes whose Service exists and shows something other than the outcome's
    ingress (an outcome that writes nothing, ``ingress`` None, is never pending)."""
    pending: list[_Pending] = []
    for key, outcome in outcomes.items():
        service = services.get(key)
        if outcome.ingress is None or service is None:
            continue
        current = tuple(ingress_ips(service))
        if current != outcome.ingress:
            pending.append((key, current, outcome.ingress))
    return pending


class _Claims:
    """Who shows each address now, and who the batch being planned gives it to."""

    def __init__(self, services: Mapping[str, Mapping[str, Any]]) -> None:
        self._services = services
        self._shown = _index(services)
        self._claimed: dict[str, list[str]] = {}

    def _clashes(self, key: str, ip: str) -> bool:
        """Whether ``ip`` is shown by, or given in this batch to, a Service other than
        ``key`` that may not share it with ``key``."""
        holders = (*self._shown.get(ip, ()), *self._claimed.get(ip, ()))
        return any(
            other != key and not may_share(self._services[key], self._services[other])
            for other in holders
        )

    def claim(self, key: str, ips: Iterable[str]) -> bool:
        """Give ``ips`` to ``key`` in this batch if none clashes (see :meth:`_clashes`);
        whether it did (all or nothing; nothing to give always succeeds)."""
        wanted = list(_canonical(ips))
        if any(self._clashes(key, ip) for ip in wanted):
            return False
        for ip in wanted:
            self._claimed.setdefault(ip, []).append(key)
        return True


def _gained(current: tuple[str, ...], target: tuple[str, ...]) -> list[str]:
    """The addresses of ``target`` that ``current`` does not show yet."""
    return [ip for ip in target if ip not in current]


def _give_ups(pending: list[_Pending], claims: _Claims) -> list[StatusWrite]:
    """The writes of the Services that give an address up: the whole target when what it
    gains is free, else an interim write of only the addresses it keeps."""
    gives: list[StatusWrite] = []
    for key, current, target in pending:
        if all(ip in target for ip in current):
            continue
        if claims.claim(key, _gained(current, target)):
            gives.append(StatusWrite(key, target))
        else:
            gives.append(StatusWrite(key, tuple(ip for ip in current if ip in target), False))
    return gives


def _takes(pending: list[_Pending], claims: _Claims) -> list[StatusWrite]:
    """The writes of the Services whose gained addresses are free now (and not given to
    another write of the batch)."""
    return [
        StatusWrite(key, target)
        for key, current, target in pending
        if claims.claim(key, _gained(current, target))
    ]


def next_writes(
    services: Mapping[str, Mapping[str, Any]], outcomes: Mapping[str, Convergence]
) -> tuple[StatusWrite, ...]:
    """The status writes that are safe now, as one batch (any order, any subset may fail).

    ``services`` is every Service as the cluster shows it now (``namespace/name`` to the
    Service dict, status included), ``outcomes`` what the round decided for some of them.
    Call it again once the batch is written (with the statuses as they now are, and without
    the outcomes whose write failed, to retry later); an empty answer ends the round. What is
    left unwritten then is blocked: an address it needs is still shown by another Service.

    The writes that give an address up come first, alone in their batch; only when none is
    left, the writes that only take addresses (see the module docstring).
    """
    pending = _pending(services, outcomes)
    if not pending:
        return ()
    claims = _Claims(services)
    gives = _give_ups(pending, claims)
    if gives:
        return tuple(gives)
    return tuple(_takes(pending, claims))


def _hold(state: State, service: Mapping[str, Any], key: str) -> State:
    """``state`` (where ``key`` holds nothing) with ``key`` holding exactly what its status
    shows, when the allocator allows it (else unchanged)."""
    ips = list(_canonical(ingress_ips(service)))
    if not ips:
        return state
    try:
        request = service_request(service, family=family_of(ips), with_requests=False)
    except (InvalidService, ValueError):
        return state
    try:
        addresses = [ipaddress.ip_address(ip) for ip in ips]
    except ValueError:
        return state
    outcome = assign(state, request, addresses)
    if isinstance(outcome, AllocationError):
        return state
    return outcome[0]


def settle(
    after: State, services: Mapping[str, Mapping[str, Any]], outcomes: Mapping[str, Convergence]
) -> State:
    """The state to adopt after a round's writes, some of which may have failed.

    ``after`` is the state the round computed with ``outcomes``; ``services`` the Services as
    the cluster shows them once the writes are done. A Service whose status shows its outcome
    (or whose outcome writes nothing) keeps ``after``'s allocation; a deleted one holds
    nothing; every other one holds exactly what its status shows, so what a failed round did
    write is kept and what it did not write is not.
    """
    state = after
    unwritten: list[str] = []
    for key, outcome in outcomes.items():
        if outcome.ingress is None:
            continue
        service = services.get(key)
        if service is None or tuple(ingress_ips(service)) != outcome.ingress:
            # Released first, all of them: what one of them was to take must not stop
            # another from holding what its status still shows.
            state = release(state, key)
            if service is not None:
                unwritten.append(key)
    for key in unwritten:
        state = _hold(state, services[key], key)
    return state
