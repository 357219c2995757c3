"""The allocator's transitions: allocate, release, reload; and the queries orphans, pool_usage.

The rules are MetalLB main's (``internal/allocator``), restated in docs/design/metallb-behaviour.md
§4-§12,
with docs/design/core-api.md's decisions where MetalLB is random or quirky. Candidate addresses
come from
the state's indexes, never from a scan: see :mod:`metallb_core._state`.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Mapping, Sequence
from typing import cast

from metallb_core._addresses import V6_OFFSET, IPAddress, address_of, key_of, parse_go_ip
from metallb_core._config import Config, Pool
from metallb_core._index import ConfigIndex, _Span
from metallb_core._outcomes import (
    Allocation,
    AllocationError,
    FamilyMismatch,
    InvalidRequest,
    NoAvailableIPs,
    NotAllowedByConfig,
    PoolNotCompatible,
    PoolUsage,
    PortConflict,
    SharingConflict,
    UnknownPool,
    trusted_allocation,
)
from metallb_core._request import ServiceRequest
from metallb_core._state import Record, State, _as_tuple, allocation_of

Outcome = tuple[State, Allocation] | AllocationError


def go_quote(items: Sequence[object | None]) -> str:
    """A list as Go's ``%q`` prints it: ``["1.2.3.4" "<nil>"]``."""
    return "[" + " ".join(f'"{"<nil>" if i is None else i}"' for i in items) + "]"


def family_of(ips: Sequence[str]) -> str:
    """``ipv4``, ``ipv6`` or ``dual`` for 1-2 addresses; ``ValueError`` with MetalLB's text."""
    if len(ips) not in (1, 2):
        raise ValueError(f"IPFamilyForAddresses: invalid ips length {len(ips)} {go_quote(ips)}")
    parsed = [parse_go_ip(ip) for ip in ips]
    if None in parsed:
        raise ValueError(f"IPFamilyForAddresses: Invalid address {go_quote(ips)}")
    versions = [ip.version for ip in parsed if ip is not None]
    if len(versions) == 2:
        if versions[0] == versions[1]:
            raise ValueError(f"IPFamilyForAddresses: same address family {go_quote(ips)}")
        return "dual"
    return "ipv4" if versions[0] == 4 else "ipv6"


# -- the availability predicate and the search ---------------------------------------------


def unusable_reason(state: State, k: int, req: ServiceRequest) -> AllocationError | None:
    """Why ``req`` may not use address key ``k`` (sharing or ports), or ``None`` if it may."""
    others = [h for h in _as_tuple(state._holders.get(k, ())) if h != req.key]
    if not others:
        return None
    _, _, _, sharing_key, backend_key = state._allocs[others[0]]
    if not (
        sharing_key
        and req.sharing_key
        and sharing_key == req.sharing_key
        and backend_key == req.backend_key
    ):
        return SharingConflict(
            message=f'can\'t change sharing key for "{req.key}", address also in use by '
            + ",".join(others),
            holders=tuple(others),
        )
    in_use = {p for h in others for p in state._allocs[h][2]}
    for port in req.ports:
        if port in in_use:
            return PortConflict(message=f'port {port} is already in use on "{address_of(k)}"')
    return None


def _first_usable(state: State, span: _Span, req: ServiceRequest) -> int | None:
    """The lowest address of one pool CIDR that ``req`` may use, or ``None``."""
    index = state._index
    x = index.next_usable(span.lo)
    if x <= span.hi:
        # When x is held: the end of its run of held addresses with nothing usable between
        # them. The first usable address after that is free.
        end = state._holders.run_end(x, index.ordinal)
        if end is not None:
            x = index.next_usable(end + 1)
    free = x if x <= span.hi else None
    if req.sharing_key:
        # A held address is usable too when it is shared under the same key: the lowest wins.
        held = state._shared.get(req.sharing_key, ())
        limit = span.hi if free is None else free - 1
        i = bisect.bisect_left(held, span.lo)
        while i < len(held) and held[i] <= limit:
            if unusable_reason(state, held[i], req) is None:
                return held[i]
            i += 1
    return free


def candidates(
    state: State, pool: int, req: ServiceRequest, both: bool = False
) -> tuple[int | None, int | None]:
    """The first usable IPv4 and IPv6 keys of a pool, walking its CIDRs in config order.

    Only the families the request can use are searched unless ``both`` is set.
    """
    want = (
        (True, True)
        if both or req.family == "dual"
        else (req.family == "ipv4", req.family == "ipv6")
    )
    found: list[int | None] = [None, None]
    for span in state._index.pool_spans[pool]:
        fam = 0 if span.lo < V6_OFFSET else 1
        if want[fam] and found[fam] is None:
            found[fam] = _first_usable(state, span, req)
    return found[0], found[1]


# -- Assign ----------------------------------------------------------------------------------


def assign(state: State, req: ServiceRequest, ips: Sequence[IPAddress | None]) -> Outcome:
    """MetalLB's Assign: give exactly ``ips`` to ``req.key``, replacing what it held."""
    index = state._index
    keys = [None if ip is None else key_of(ip) for ip in ips]
    owners = {None if k is None else index.owner(k) for k in keys}
    owner = owners.pop() if len(owners) == 1 else None
    if owner is None or not ips:
        return NotAllowedByConfig(message=f"{go_quote(ips)} is not allowed in config")
    pool = index.pools[owner]
    if pool.service_allocation is not None and not pool.service_allocation.allows(
        req.namespace, req.labels
    ):
        return PoolNotCompatible(
            message=f"pool {pool.name} not compatible for ip assignment", pool=pool.name
        )
    addresses = cast(list[IPAddress], ips)
    if len(addresses) > 2:
        return InvalidRequest(message=f"more than two addresses {go_quote(addresses)}")
    if len(addresses) == 2 and addresses[0].version == addresses[1].version:
        return InvalidRequest(message=f'"{addresses[0]}" "{addresses[1]}" has the same family')
    for k in keys:
        reason = unusable_reason(state, cast(int, k), req)
        if reason is not None:
            return reason
    alloc = trusted_allocation(
        req.key, tuple(addresses), pool.name, req.ports, req.sharing_key, req.backend_key
    )
    record: Record = (
        cast(tuple[int, ...], tuple(keys)),
        owner,
        req.ports,
        req.sharing_key,
        req.backend_key,
    )
    return state._without(req.key)._with(req.key, record), alloc


def commit_found(state: State, req: ServiceRequest, pool: int, keys: list[int]) -> Outcome:
    """Assign for addresses the search found in ``pool``, to a key that holds nothing.

    The search only returns addresses that ``pool`` owns and that ``req`` may use, of distinct
    families, so of Assign's checks only the pool's compatibility with the Service is left.
    """
    spec = state._index.pools[pool]
    if spec.service_allocation is not None and not spec.service_allocation.allows(
        req.namespace, req.labels
    ):
        return PoolNotCompatible(
            message=f"pool {spec.name} not compatible for ip assignment", pool=spec.name
        )
    ips = tuple([address_of(k) for k in keys])
    alloc = trusted_allocation(req.key, ips, spec.name, req.ports, req.sharing_key, req.backend_key)
    record: Record = (tuple(keys), pool, req.ports, req.sharing_key, req.backend_key)
    return state._with(req.key, record), alloc


# -- pool choice and selection -------------------------------------------------------------


def pinned_pools(index: ConfigIndex, req: ServiceRequest) -> list[int]:
    """Pools reserved for this Service (namespace or selector), best priority first.

    As in MetalLB, only auto-assign pools whose ``service_allocation`` names the Service's
    namespace or has a service selector, and that are compatible with the Service; equal
    priorities keep config order (docs/design/core-api.md decision 1).
    """
    if not index.with_allocation:
        return []
    pinned = []
    for i in index.with_allocation:
        sa = index.pools[i].service_allocation
        assert sa is not None
        if sa.allows(req.namespace, req.labels) and (
            req.namespace in sa.namespaces or sa.effective_service_selectors
        ):
            pinned.append(i)
    return sorted(pinned, key=lambda i: index.pools[i].service_allocation.rank)  # type: ignore[union-attr]


def choose_pool(
    state: State, pools: Sequence[int], req: ServiceRequest
) -> tuple[int, int | None, int | None] | None:
    """MetalLB's family-aware pool choice (§6.4) over ``pools`` in order."""
    primary_fallback = secondary_fallback = None
    for i in pools:
        c4, c6 = candidates(state, i, req)
        if c4 is None and c6 is None:
            continue
        if (req.family == "ipv4" and c4 is not None) or (req.family == "ipv6" and c6 is not None):
            return i, c4, c6
        if c4 is not None and c6 is not None:
            return i, c4, c6
        if req.family == "dual" and req.policy == "PreferDualStack":
            primary, secondary = (c4, c6) if req.primary_family == "ipv4" else (c6, c4)
            if primary is not None and primary_fallback is None:
                primary_fallback = (i, c4, c6)
            if secondary is not None and secondary_fallback is None:
                secondary_fallback = (i, c4, c6)
    return primary_fallback or secondary_fallback


def select(
    pool: Pool, c4: int | None, c6: int | None, req: ServiceRequest
) -> list[int] | AllocationError:
    """MetalLB's selection from the chosen pool (§6.5); an exhausted family is NoAvailableIPs."""
    if req.family != "dual":
        chosen = c4 if req.family == "ipv4" else c6
        if chosen is None:
            return NoAvailableIPs(message=f"no available IPs in pool {pool.name}", pool=pool.name)
        return [chosen]
    both = [c for c in (c4, c6) if c is not None]
    if req.policy == "PreferDualStack" and both:
        return both
    if req.policy == "RequireDualStack" and len(both) == 2:
        return both
    return NoAvailableIPs(
        message=f"no available IPs in pool {pool.name} for dual IPFamily", pool=pool.name
    )


def allocate_auto(state: State, req: ServiceRequest) -> Outcome:
    """Pinned pools by priority, then the unrestricted auto-assign pools (§6.1)."""
    index = state._index
    for pools in (pinned_pools(index, req), index.fallback):
        if not pools:
            continue
        choice = choose_pool(state, pools, req)
        if choice is None:
            continue
        i, c4, c6 = choice
        picked = select(index.pools[i], c4, c6, req)
        if isinstance(picked, AllocationError):
            continue
        outcome = commit_found(state, req, i, picked)
        if not isinstance(outcome, AllocationError):
            return outcome
    return NoAvailableIPs(message="no available IPs")


def allocate_from_pool(state: State, req: ServiceRequest, name: str) -> Outcome:
    """AllocateFromPool (§7): the named pool only, auto-assign or not."""
    i = state._index.by_name.get(name)
    if i is None:
        return UnknownPool(message=f'unknown pool "{name}"', pool=name)
    pool = state._index.pools[i]
    c4, c6 = candidates(state, i, req)
    if c4 is None and c6 is None:
        return NoAvailableIPs(message=f"no available IPs in pool {name}", pool=name)
    picked = select(pool, c4, c6, req)
    if isinstance(picked, AllocationError):
        return picked
    return commit_found(state, req, i, picked)


def allocate_requested(state: State, req: ServiceRequest) -> Outcome:
    """Explicitly requested IPs (§11.4 step 4): family check, Assign, pool check."""
    ips = [ipaddress.ip_address(ip) for ip in req.requested_ips]  # canonical, validated
    try:
        family = family_of(req.requested_ips)
    except ValueError as err:
        return InvalidRequest(message=str(err))
    if family != req.family:
        return FamilyMismatch(
            message=f"requested loadBalancer IP(s) {go_quote(ips)} does not match "
            "the ipFamily of the service"
        )
    outcome = assign(state, req, ips)
    if isinstance(outcome, AllocationError):
        return outcome
    if req.requested_pool is not None and outcome[1].pool != req.requested_pool:
        return InvalidRequest(
            message=f"requested loadBalancer IP(s) {go_quote(ips)} is not compatible "
            f"with requested address pool {req.requested_pool}"
        )
    return outcome


def add_family(state: State, req: ServiceRequest) -> Outcome:
    """PreferDualStack top-up (§9): add the missing family from the pool already used."""
    held = state.allocation(req.key)
    assert held is not None
    assert len(held.ips) == 1
    i = state._index.by_name.get(held.pool)
    if i is None:
        return UnknownPool(message=f'unknown pool "{held.pool}"', pool=held.pool)
    c4, c6 = candidates(state, i, req, both=True)
    missing = c6 if held.ips[0].version == 4 else c4
    if missing is None:
        return NoAvailableIPs(message=f"no available IPs in pool {held.pool}", pool=held.pool)
    return assign(state, req, [held.ips[0], address_of(missing)])


def _held_family(ips: Sequence[IPAddress]) -> str:
    return family_of([str(ip) for ip in ips])


def _allocate(state: State, req: ServiceRequest) -> Outcome:
    if req.requested_ips:
        return allocate_requested(state, req)
    held = state.allocation(req.key)
    if held is not None:
        if req.requested_pool is None:
            return assign(state, req, held.ips)
        family = _held_family(held.ips)
        if req.policy != "PreferDualStack" and family != req.family:
            return FamilyMismatch(
                message=f"IP for wrong family assigned alloc {family} service family {req.family}"
            )
        if held.pool == req.requested_pool:
            return assign(state, req, held.ips)
    # A new allocation: what the key held (in another pool) is free for it to take.
    base = state if held is None else state._without(req.key)
    if req.requested_pool is not None:
        return allocate_from_pool(base, req, req.requested_pool)
    return allocate_auto(base, req)


def allocate(state: State, request: ServiceRequest) -> tuple[State, Allocation | AllocationError]:
    """Give ``request.key`` addresses, with MetalLB's precedence and rules.

    Requested IPs first (in any pool, auto-assign or not), else the requested pool, else the
    pools pinned to the Service by priority, else the unrestricted auto-assign pools; inside a
    pool, the lowest usable address in CIDR order. A key that already holds an allocation keeps
    it when it is still valid (its ports and keys are updated); a requested pool or requested
    IPs it does not match move it. On an error, the state returned is ``state`` itself.

    >>> from metallb_core import Config, Pool, ServiceRequest
    >>> s = State.empty(Config(pools=[Pool(name="default", cidrs=["10.0.0.0/30"])]))
    >>> s, a = allocate(s, ServiceRequest(key="web/nginx"))
    >>> [str(ip) for ip in a.ips], a.pool
    (['10.0.0.0'], 'default')
    """
    outcome = _allocate(state, request)
    if isinstance(outcome, AllocationError):
        return state, outcome
    return outcome


def release(state: State, key: str) -> State:
    """The state without ``key``'s allocation (``state`` itself for an unknown key)."""
    return state._without(key)


def _rehome(state: State, config: Config) -> tuple[list[tuple[str, Record]], list[Allocation]]:
    """The records kept under ``config`` (with their new pool index), and the dropped ones."""
    index = ConfigIndex(config)
    kept: list[tuple[str, Record]] = []
    dropped: list[Allocation] = []
    for key, record in state._allocs.items():
        keys, _, ports, sharing_key, backend_key = record
        owners = {index.owner(k) for k in keys}
        owner = owners.pop() if len(owners) == 1 else None
        if owner is None:
            dropped.append(allocation_of(state._index, key, record))
        else:
            kept.append((key, (keys, owner, ports, sharing_key, backend_key)))
    return kept, dropped


def reload(state: State, config: Config) -> tuple[State, tuple[Allocation, ...]]:
    """Put ``config`` in force; allocations no pool owns any more are dropped and returned.

    As MetalLB main: an allocation whose addresses a pool still owns is kept (moved to that
    pool's name if it changed); compatibility and auto-assign are re-checked only when the
    Service is next converged. Use :func:`orphans` to refuse such a reload instead.
    """
    kept, dropped = _rehome(state, config)
    new = State.empty(config)
    for key, record in kept:
        new = new._with(key, record)
    return new, tuple(dropped)


def orphans(state: State, config: Config) -> tuple[Allocation, ...]:
    """The allocations :func:`reload` would drop under ``config``, in key order."""
    return tuple(_rehome(state, config)[1])


def pool_usage(state: State) -> Mapping[str, PoolUsage]:
    """Per pool, in config order: distinct addresses in use and still available, per family."""
    index = state._index
    usage: dict[str, PoolUsage] = {}
    for i, pool in enumerate(index.pools):
        used4, used6 = state._usage[2 * i], state._usage[2 * i + 1]
        cap4, cap6 = index.capacity[i]
        usage[pool.name] = PoolUsage(
            assigned_ipv4=used4,
            assigned_ipv6=used6,
            available_ipv4=cap4 - used4,
            available_ipv6=cap6 - used6,
        )
    return usage
