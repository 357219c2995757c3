"""Why a Service gets the address it gets, or stays pending: every pool, and its verdict.

:func:`explain` replays :func:`~metallb_core.allocate`'s precedence for one request against a
state and says, for each pool in config order, whether it was tried, in which rank, and why it
was taken or skipped. It decides nothing itself: the verdicts come from the same functions
``allocate`` uses.
"""

from __future__ import annotations

from typing import Literal

from metallb_core._addresses import V6_OFFSET, address_of
from metallb_core._allocator import allocate, candidates, pinned_pools
from metallb_core._model import Model
from metallb_core._outcomes import AllocationError
from metallb_core._request import ServiceRequest
from metallb_core._state import State


class PoolVerdict(Model):
    """One pool's part in a request: ``taken``, ``usable`` (a later rank won), or ``skipped``."""

    pool: str
    verdict: Literal["taken", "usable", "skipped"]
    reason: str
    rank: int | None = None  # 1 = tried first; None = never tried


class Explanation(Model):
    """The path a request takes (requested IPs, requested pool, pinned or fallback pools), the
    verdict on every pool in config order, and the outcome's message."""

    key: str
    path: str
    pools: tuple[PoolVerdict, ...]
    outcome: str


def _families(req: ServiceRequest) -> str:
    return {"ipv4": "IPv4", "ipv6": "IPv6", "dual": "IPv4 and IPv6"}[req.family]


def _search_verdict(state: State, i: int, req: ServiceRequest) -> tuple[bool, str]:
    """Whether the pool has what the request needs, and the words for it."""
    pool = state._index.pools[i]
    spans = state._index.pool_spans[i]
    has4 = any(s.lo < V6_OFFSET for s in spans)
    has6 = any(s.lo >= V6_OFFSET for s in spans)
    if (req.family == "ipv4" and not has4) or (req.family == "ipv6" and not has6):
        return False, f"has no {_families(req)} addresses"
    if req.family == "dual" and req.policy != "PreferDualStack" and not (has4 and has6):
        return False, "is not dual-stack (the Service requires both families)"
    c4, c6 = candidates(state, i, req)
    found = [address_of(c) for c in (c4, c6) if c is not None]
    if req.family == "dual" and req.policy != "PreferDualStack" and len(found) < 2:
        found = []
    if req.family == "ipv4":
        found = [address_of(c4)] if c4 is not None else []
    if req.family == "ipv6":
        found = [address_of(c6)] if c6 is not None else []
    if not found:
        why = "exhausted"
        if req.sharing_key:
            why += f" (no free address, and none shared under key {req.sharing_key!r} fits)"
        elif state._index.capacity[i] != (0, 0):
            why += " (every address is held; a sharing key could share one)"
        return False, why
    words = " and ".join(str(ip) for ip in found)
    note = "" if pool.auto_assign else " (auto-assign off, but requested)"
    return True, f"has {words} free{note}"


def explain(state: State, request: ServiceRequest) -> Explanation:
    """Explain, pool by pool, what :func:`~metallb_core.allocate` does with ``request``.

    The state is the one the request would be allocated against: what the key already holds
    is released first, as the controller does before a new allocation.

    >>> from metallb_core import Config, Pool
    >>> s = State.empty(Config(pools=[Pool(name="a", cidrs=["10.0.0.0/31"], auto_assign=False),
    ...                               Pool(name="b", cidrs=["10.0.1.0/31"])]))
    >>> e = explain(s, ServiceRequest(key="web/nginx"))
    >>> [(v.pool, v.verdict) for v in e.pools], e.outcome
    ([('a', 'skipped'), ('b', 'taken')], 'Assigned IP ["10.0.1.0"]')
    """
    base = state._without(request.key)
    index = base._index
    _, result = allocate(base, request)
    outcome = (
        result.message
        if isinstance(result, AllocationError)
        else "Assigned IP [" + " ".join(f'"{ip}"' for ip in result.ips) + "]"
    )
    taken = None if isinstance(result, AllocationError) else result.pool
    verdicts: list[PoolVerdict] = []
    if request.requested_ips:
        path = "requested IPs " + ", ".join(request.requested_ips)
        for pool in index.pools:
            if pool.name == taken:
                verdicts.append(
                    PoolVerdict(pool=pool.name, verdict="taken", reason="owns them", rank=1)
                )
            else:
                verdicts.append(
                    PoolVerdict(pool=pool.name, verdict="skipped", reason="does not own them")
                )
        return Explanation(key=request.key, path=path, pools=tuple(verdicts), outcome=outcome)
    if request.requested_pool is not None:
        path = f"requested pool {request.requested_pool}"
        order = (
            [index.by_name[request.requested_pool]]
            if request.requested_pool in index.by_name
            else []
        )
    else:
        pinned = pinned_pools(index, request)
        path = (
            "pinned pools by priority, then the auto-assign pools"
            if pinned
            else "auto-assign pools"
        )
        order = pinned + [i for i in index.fallback if i not in pinned]
    rank_of = {i: r for r, i in enumerate(order, start=1)}
    taken_rank = next((rank_of[i] for i in order if index.pools[i].name == taken), None)
    for i, pool in enumerate(index.pools):
        rank = rank_of.get(i)
        if rank is None:
            verdicts.append(
                PoolVerdict(pool=pool.name, verdict="skipped", reason=_not_tried(base, i, request))
            )
            continue
        ok, words = _search_verdict(base, i, request)
        verdict: Literal["taken", "usable", "skipped"] = (
            "taken" if pool.name == taken else "usable" if ok else "skipped"
        )
        if verdict == "usable" and taken_rank is not None:
            words += (
                " (not reached: an earlier pool was taken)"
                if rank > taken_rank
                else " (passed over: a later pool offers both families)"
            )
        verdicts.append(PoolVerdict(pool=pool.name, verdict=verdict, reason=words, rank=rank))
    return Explanation(key=request.key, path=path, pools=tuple(verdicts), outcome=outcome)


def _not_tried(state: State, i: int, req: ServiceRequest) -> str:
    """Why a pool is not among those tried for this request."""
    pool = state._index.pools[i]
    if req.requested_pool is not None:
        return f"not requested (the Service asks for pool {req.requested_pool})"
    if not pool.auto_assign:
        return "auto-assign is off: used only when a Service asks for it or its IPs"
    sa = pool.service_allocation
    assert sa is not None  # pools without one are always tried
    if sa.restricts_namespaces and req.namespace not in sa.namespaces:
        if not sa.namespaces:
            return "its namespace selectors matched no namespace, so it serves none"
        return f"serves namespaces {', '.join(sorted(sa.namespaces))}, not {req.namespace}"
    if sa.service_selectors and not any(s.matches(req.labels) for s in sa.service_selectors):
        return "none of its service selectors matches the Service's labels"
    return "not pinned to this Service"
