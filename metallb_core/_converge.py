"""The controller's decision for one Service (MetalLB's ``convergeBalancer``), as a pure function.

:func:`converge` takes the allocator state and a Service dict and returns the new state and a
:class:`Convergence`: what ``status.loadBalancer.ingress`` and the
``metallb.io/ip-allocated-from-pool`` annotation must hold, and the events to emit, with
MetalLB's reasons and messages. A controller converts, calls this, and writes; it decides
nothing. The steps follow docs/design/metallb-behaviour.md §11.2.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from metallb_core._allocator import add_family, allocate, assign, family_of, go_quote
from metallb_core._errors import InvalidService
from metallb_core._model import Model
from metallb_core._outcomes import AllocationError, PortConflict, SharingConflict
from metallb_core._service import (
    ADDRESS_POOL,
    ALLOW_SHARED_IP,
    DEPRECATED,
    LOADBALANCER_IPS,
    STABLE,
    _go_list,
    annotation,
    check_service,
    cluster_ips,
    desired_ips,
    policy,
    request_from_service,
    service_annotations,
    service_family,
    service_request,
)
from metallb_core._service import ports as service_ports
from metallb_core._state import State
from metallb_core.vocabulary import ALLOCATED_FROM_POOL, ingress_ips, service_key


class Event(Model):
    """A Kubernetes event to emit on the Service: type, reason and message (MetalLB's).

    >>> Event(type="Normal", reason="IPAllocated", message='Assigned IP ["10.0.0.1"]').reason
    'IPAllocated'
    """

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


class Convergence(Model):
    """What the controller must write for one Service after :func:`converge`.

    ``ingress`` is the list of IPs ``status.loadBalancer.ingress`` must hold, in allocation
    order; ``()`` clears it. ``None`` means write nothing: the Service is not ours (another
    ``loadBalancerClass``), or MetalLB would stop with an error before writing (its status and
    annotation stay as they are; ``events`` still go out). ``pool`` is the value of the
    ``metallb.io/ip-allocated-from-pool`` annotation (``None``: remove it, unless ``ingress`` is
    ``None``).
    """

    key: str
    ingress: tuple[str, ...] | None
    pool: str | None
    events: tuple[Event, ...] = ()


def _normal(reason: str, message: str) -> Event:
    return Event(type="Normal", reason=reason, message=message)


def _warning(reason: str, message: str) -> Event:
    return Event(type="Warning", reason=reason, message=message)


def is_ours(service: Mapping[str, Any], lb_class: str | None) -> bool:
    """Whether a controller running with ``--lb-class lb_class`` handles this Service.

    A ``spec`` that is not an object reads as no class (the Service is then refused by
    :func:`converge` with the field named)."""
    spec = service.get("spec") if isinstance(service, Mapping) else None
    cls = spec.get("loadBalancerClass") if isinstance(spec, Mapping) else None
    return (cls or None) == lb_class


class _Step:
    """The working values of one convergence."""

    def __init__(self, state: State, service: Mapping[str, Any]) -> None:
        self.state = state
        self.service = service
        self.key = service_key(service)
        self.events: list[Event] = []
        self.cleared_by: AllocationError | None = None

    def clear(self) -> None:
        self.state = self.state._without(self.key)

    def done(self, ingress: tuple[str, ...] | None, pool: str | None) -> Convergence:
        """The result; when it changes what the Service holds, the write that follows carries
        MetalLB's ``deprecatedAnnotation`` warnings, errors or not (``SetBalancer`` writes
        whatever changed and warns on every write); none under a v0.10 ConfigMap, whose
        documented keys those annotations are."""
        if ingress is not None and self.state.config.source != "configmap":
            notes = service_annotations(self.service)
            changed = ingress != tuple(ingress_ips(self.service)) or pool != notes.get(
                ALLOCATED_FROM_POOL
            )
            if changed:
                self.events.extend(
                    _warning("deprecatedAnnotation", f"Service uses deprecated annotation {name}")
                    for name in sorted(notes)
                    if name.startswith(DEPRECATED)
                )
        return Convergence(key=self.key, ingress=ingress, pool=pool, events=tuple(self.events))

    def unchanged(self) -> Convergence:
        """Write nothing (MetalLB returns an error here): only the events go out."""
        return self.done(None, None)


def _family_checked(
    step: _Step, service: Mapping[str, Any], current: list[str], pol: str
) -> tuple[list[str], str] | None:
    """Step 6: the current IPs, cleared when their family does not fit the ClusterIPs', and
    the Service's family; None when the ClusterIPs' family cannot be read (write nothing)."""
    if not current:
        step.clear()
        return [], ""
    spec = service.get("spec") or {}
    try:
        lb_family = family_of(current)
    except ValueError as err:
        step.events.append(
            _warning(
                "nolbIPsIPFamily",
                f"Failed to retrieve LBIPs IPFamily for {go_quote(current)}: {err}",
            )
        )
        lb_family = "unknown"
    try:
        family = service_family(service)
    except InvalidService as err:
        step.events.append(
            _warning(
                "noclusterIPsIPFamily",
                "Failed to retrieve ClusterIPs IPFamily for "
                f"{go_quote(spec.get('clusterIPs') or [])} {spec.get('clusterIP') or ''}: "
                f"{err}",
            )
        )
        return None
    if lb_family == "unknown" or (
        lb_family != family and not (family == "dual" and pol == "PreferDualStack")
    ):
        step.clear()
        return [], family
    return current, family


def _reassigned(
    step: _Step, service: Mapping[str, Any], current: list[str], family: str
) -> list[str] | None:
    """Step 7: the current IPs when they may stay (re-assigned in ``step.state``), [] when
    they go (cleared), None when the requested IPs are invalid (write nothing)."""
    if not current:
        return current
    current = [str(ipaddress.ip_address(ip)) for ip in current]
    outcome = assign(
        step.state,
        service_request(service, family=family, with_requests=False),
        [ipaddress.ip_address(c) for c in current],
    )
    if isinstance(outcome, AllocationError):
        step.events.append(
            _normal(
                "ClearAssignment",
                f'current IP for "{step.key}" not allowed by config, will attempt for new IP '
                f"assignment: {outcome.message}",
            )
        )
        step.cleared_by = outcome
        step.clear()
        return []
    step.state, alloc = outcome
    wanted_pool = annotation(service, ADDRESS_POOL)
    if wanted_pool and wanted_pool != alloc.pool:
        step.clear()
        return []
    try:
        wanted = desired_ips(service)
    except InvalidService as err:
        step.events.append(
            _warning("LoadBalancerFailed", f"invalid requested loadbalancer IPs: {err}")
        )
        return None
    if wanted and sorted(wanted) != sorted(current):
        step.clear()
        return []
    return current


def _topped_up(step: _Step, service: Mapping[str, Any], current: list[str]) -> list[str]:
    """Step 8: a PreferDualStack Service holding one family gets the other from its pool
    when it can; the IPs it holds afterwards."""
    topped = add_family(step.state, request_from_service(service))
    if isinstance(topped, AllocationError):
        step.events.append(
            _normal(
                "AdditionalAssignFailed",
                f"cannot assign additional IP in PreferDualStack: {topped.message}",
            )
        )
        return current
    step.state, alloc = topped
    added = [str(ip) for ip in alloc.ips if str(ip) not in current]
    step.events.append(_normal("IPAllocated", f'Assigned additional IP "{added[0]}"'))
    return [str(ip) for ip in alloc.ips]


def _allocated(step: _Step, service: Mapping[str, Any]) -> bool:
    """Step 9: a new allocation into ``step.state``; False (and an AllocationFailed
    warning) when there is none."""
    try:
        request = request_from_service(service)
    except InvalidService as err:
        failed = str(err)
    else:
        new_state, result = allocate(step.state, request)
        if not isinstance(result, AllocationError):
            step.state = new_state
            ips = [str(ip) for ip in result.ips]
            step.events.append(_normal("IPAllocated", f"Assigned IP {go_quote(ips)}"))
            return True
        failed = result.message
    step.events.append(
        _warning("AllocationFailed", f'Failed to allocate IP for "{step.key}": {failed}')
    )
    return False


def _converge(
    state: State, service: Mapping[str, Any], lb_class: str | None, restore_only: bool = False
) -> tuple[State, Convergence, AllocationError | None]:
    """One convergence; with ``restore_only``, only steps 1-7 (re-assign what the status
    records, or clear it), never a new address: the first pass of :func:`converge_all`."""
    step = _Step(state, service)
    key = step.key
    if not is_ours(service, lb_class):
        return state, step.done(None, None), None
    check_service(service)
    spec = service.get("spec") or {}
    # 1-3: not a LoadBalancer, no pool at all, no ClusterIP: clear, allocate nothing.
    if spec.get("type") != "LoadBalancer" or not state.config.pools or not cluster_ips(service):
        step.clear()
        return step.state, step.done((), None), None
    cips = cluster_ips(service)
    pol = policy(service)
    # 5: RequireDualStack needs two ClusterIPs.
    if pol == "RequireDualStack" and len(cips) < 2:
        step.events.append(
            _warning(
                "not enough clusterips",
                f"Service requires dual stack but not enough clusterips {_go_list(cips)}",
            )
        )
        step.clear()
        return step.state, step.done((), None), None
    # 4: the current IPs: the status is the truth. A key whose status holds no address is
    # cleared in step 6 before anything is allocated, whatever this state held for it.
    current = ingress_ips(service)
    # 6: the current IPs' family against the ClusterIPs' family.
    checked = _family_checked(step, service, current, pol)
    if checked is None:
        return state, step.unchanged(), None
    current, family = checked
    # 7: the current IPs are re-assigned when still allowed.
    kept = _reassigned(step, service, current, family)
    if kept is None:
        return step.state, step.unchanged(), None
    current = kept
    if restore_only:
        return step.state, step.done(None, None), step.cleared_by
    # 8: PreferDualStack top-up from the same pool.
    if len(current) == 1 and pol == "PreferDualStack" and family == "dual":
        current = _topped_up(step, service, current)
    # 9: a new allocation.
    if not current and not _allocated(step, service):
        return step.state, step.done((), None), step.cleared_by
    # 11: write back, in allocation order.
    final = step.state.allocation(key)
    assert final is not None
    ingress = tuple(str(ip) for ip in final.ips)
    return step.state, step.done(ingress, final.pool), step.cleared_by


def converge(
    state: State, service: Mapping[str, Any], *, lb_class: str | None = None
) -> tuple[State, Convergence]:
    """MetalLB's convergeBalancer for one Service dict: the new state and what to write.

    A Service that cannot be read gets a Warning ``AllocationFailed`` event and an empty
    status, never an exception. Converging the same Service again with its status written
    changes nothing and emits nothing, except the events MetalLB repeats on purpose while a
    problem lasts (``AllocationFailed``, ``AdditionalAssignFailed``, ``LoadBalancerFailed``).

    >>> from metallb_core import Config, Pool
    >>> s = State.empty(Config(pools=[Pool(name="default", cidrs=["10.0.0.0/30"])]))
    >>> svc = {"metadata": {"namespace": "web", "name": "nginx"},
    ...        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
    ...                 "ports": [{"port": 80, "protocol": "TCP"}]}}
    >>> s, c = converge(s, svc)
    >>> c.ingress, c.pool, [e.message for e in c.events]
    (('10.0.0.0',), 'default', ['Assigned IP ["10.0.0.0"]'])
    """
    try:
        new_state, result, _ = _converge(state, service, lb_class)
    except InvalidService as err:
        key = service_key(service)
        event = _warning("AllocationFailed", f'Failed to allocate IP for "{key}": {err}')
        return state._without(key), Convergence(key=key, ingress=(), pool=None, events=(event,))
    return new_state, result


#: The annotation recording :func:`inputs_digest` of the inputs that decided a Service's
#: status, written by the controller just after the status.
INPUTS_ANNOTATION = "metallb-core.io/allocation-inputs"

_SPEC_INPUTS = (
    "type",
    "loadBalancerClass",
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "ipFamilyPolicy",
    "externalTrafficPolicy",
    "loadBalancerIP",
)
_NOTE_INPUTS = (ADDRESS_POOL, LOADBALANCER_IPS, ALLOW_SHARED_IP)


def inputs_digest(service: Mapping[str, Any]) -> str:
    """A digest of everything about a Service that decides its addresses.

    It covers the namespace, the labels, the ``metallb.io/`` and ``metallb.universe.tf/``
    annotations ``address-pool``, ``loadBalancerIPs`` and ``allow-shared-ip``, and the spec
    fields the allocation reads (type, class, ClusterIPs, families and policy, ports as
    protocol and number, traffic policy and, with ``Local``, the selector,
    ``loadBalancerIP``). The controller records it in :data:`INPUTS_ANNOTATION` when it writes
    a status (and again when these inputs change); :func:`converge_all` restores the Services
    whose record still matches first, so a Service that changed nothing is never the one
    evicted by a Service that changed while no controller ran. It leaves the status out on
    purpose: a record stays true for a Service that does not change, even when the write
    that followed its last status write was lost.

    >>> svc = {"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}
    >>> inputs_digest(svc) == inputs_digest({**svc, "status": {"x": 1}})
    True
    >>> inputs_digest(svc) == inputs_digest({**svc, "spec": {"ports": [{"port": 443}]}})
    False
    """
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    notes = service_annotations(service)
    local = spec.get("externalTrafficPolicy") == "Local"
    inputs = {
        "namespace": meta.get("namespace") or "default",
        "labels": meta.get("labels") or {},
        "annotations": {
            k: v
            for k, v in notes.items()
            if k.startswith((STABLE, DEPRECATED))
            and k.removeprefix(STABLE).removeprefix(DEPRECATED) in _NOTE_INPUTS
        },
        "spec": {k: spec.get(k) for k in _SPEC_INPUTS},
        "ports": [[p.protocol, p.port] for p in service_ports(service)],
        "selector": spec.get("selector") if local else None,
    }
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def unchanged_rank(service: Mapping[str, Any]) -> int:
    """0 when the Service's recorded :func:`inputs_digest` matches its inputs now, 1 when it
    has no record, 2 when the record differs (the Service changed since its status was
    written) or the Service cannot be read."""
    try:
        recorded = service_annotations(service).get(INPUTS_ANNOTATION)
        if not recorded:
            return 1
        return 0 if recorded == inputs_digest(service) else 2
    except InvalidService:
        return 2


def restore_order(service: Mapping[str, Any]) -> tuple[bool, int, int, bool, str, str]:
    """Sort key of :func:`converge_all`: Services holding IPs first, among them those whose
    inputs did not change since their status was written (:func:`unchanged_rank`), then more
    ingress IPs first, then oldest, then by key."""
    meta = service.get("metadata") if isinstance(service, Mapping) else None
    created = meta.get("creationTimestamp") if isinstance(meta, Mapping) else None
    held = len(ingress_ips(service))
    return (
        held == 0,
        unchanged_rank(service) if held else 1,
        -held,
        created is None,
        str(created or ""),
        service_key(service),
    )


def converge_all(
    state: State, services: Iterable[Mapping[str, Any]], *, lb_class: str | None = None
) -> tuple[State, Mapping[str, Convergence]]:
    """Converge every Service, restoring state after a restart without moving anyone.

    Two passes. First every address recorded in a status is restored (re-assigned, nothing
    new handed out), so that nothing can take an address recorded in another Service's
    status: neither a pending Service nor a PreferDualStack top-up. Then every Service is
    converged against that state, those holding IPs first. Among those, the Services whose
    :data:`INPUTS_ANNOTATION` still matches their inputs (:func:`inputs_digest`) come first,
    then those without one, then those that changed since their status was written, so an
    address two statuses claim stays with the Service that changed nothing (as a running
    controller would have decided when the change came); then more ingress entries first. In
    both passes, ties are broken by ``metadata.creationTimestamp`` (oldest first, those
    without one last) and then by key, so the result does not depend on the order of
    ``services``. A Service that cannot be read gets a Warning ``AllocationFailed`` naming the
    field and value, never an exception. When two statuses hold the same address without being
    allowed to share it, the first restored keeps it and the other gets, besides MetalLB's
    ``ClearAssignment``, a Warning ``IPConflict`` and a new allocation. The mapping is keyed
    by ``namespace/name``, in processing order.
    """
    ordered = sorted(services, key=restore_order)
    for service in ordered:
        if ingress_ips(service):
            with contextlib.suppress(InvalidService):  # reported by the second pass
                state = _converge(state, service, lb_class, restore_only=True)[0]
    results: dict[str, Convergence] = {}
    for service in ordered:
        try:
            state, result, cleared_by = _converge(state, service, lb_class)
        except InvalidService:
            state, result = converge(state, service, lb_class=lb_class)
            cleared_by = None
        if isinstance(cleared_by, (SharingConflict, PortConflict)) and ingress_ips(service):
            conflict = _warning(
                "IPConflict",
                f"IP(s) {go_quote(ingress_ips(service))} in this Service's status are held by "
                f"a Service restored before it ({cleared_by.message}); "
                "this Service gets a new allocation",
            )
            result = Convergence(
                key=result.key,
                ingress=result.ingress,
                pool=result.pool,
                events=(*result.events, conflict),
            )
        results[result.key] = result
    return state, results
