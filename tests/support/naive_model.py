"""A deliberately naive model of ``metallb_core``'s allocator, for tiny pools.

The model is the oracle of the stateful tests. It trades every bit of cleverness for
obviousness: addresses are enumerated one by one in pool order, the first fit is found by
scanning from the start, holders of an address are found by scanning every allocation, and
ranges are walked address by address instead of being summarised into CIDRs. It shares no
code with ``metallb_core`` and never imports it, so a bug in the core cannot hide in both.

It follows MetalLB main (``/work/shared/docs/design/metallb-behaviour.md`` §2, §4-§10, §12, §14) and
the decisions of ``docs/design/core-api.md``:

* pools of equal rank are tried in config order (decision 1);
* a single-family request on a pool whose family is exhausted gets
  ``no available IPs in pool <name>`` (decision 2);
* requested IPs keep the order given (decision 7);
* reload drops what no pool owns any more and moves the rest to their owning pool (decision 5);
* "a key that already holds an allocation keeps it when still valid": with a requested pool
  it is not in, the key gets a new allocation from that pool (MetalLB's allocator would hand
  back the held addresses and leave the move to the controller); requested IPs always win,
  as in MetalLB's Assign; without either, the held addresses are kept whatever the request's
  family (MetalLB's ``Allocate`` does not look at the family of what is held);
* requested IPs of another family than the Service's are a ``FamilyMismatch``;
* ``exclude``d addresses are treated like buggy ones: never offered, never owned.

Scope and known simplifications (the stateful test stays inside them):

* Every request is expected to carry at least one port, as Kubernetes LoadBalancer Services
  do. The recorded sharing key of an address is then the key of its holders, so MetalLB's
  "forget the key when the port table empties" quirk (§10) and the "forget it when the holder
  set empties" variant agree; the model implements the latter.
* A ``service_allocation`` with neither namespaces nor service selectors pins the pool for
  every Service: MetalLB's CRD parser gives such a block a match-everything selector (§6.2),
  and ``core.ServiceAllocation`` does the same when built directly.
* Capacities are counted by enumeration: do not hand the model a /64.

Example:

>>> pool = ModelPool("p", ("10.0.0.0/30",), avoid_buggy_ips=True)
>>> model = NaiveAllocator.empty((pool,))
>>> model, outcome = model.allocate(ModelRequest("ns/a", ports=(("TCP", 80),)))
>>> outcome.ips, outcome.pool
((IPv4Address('10.0.0.1'),), 'p')
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Family = Literal["ipv4", "ipv6", "dual"]
SingleFamily = Literal["ipv4", "ipv6"]
Policy = Literal["SingleStack", "PreferDualStack", "RequireDualStack"]
PortSpec = tuple[str, int]
Selector = Mapping[str, object]


@dataclass(frozen=True)
class Span:
    """An inclusive interval of addresses of one family, walked one address at a time.

    >>> [str(ip) for ip in Span.parse("10.0.0.6 - 10.0.0.8")]
    ['10.0.0.6', '10.0.0.7', '10.0.0.8']
    """

    first: IPAddress
    last: IPAddress

    @classmethod
    @functools.cache
    def parse(cls, entry: str) -> Span:
        """Parse a CIDR (host bits masked), an ``a-b`` range or a single address."""
        if "-" in entry:
            # MetalLB splits at the first "-" and trims each side.
            start_text, end_text = entry.split("-", 1)
            start = ipaddress.ip_address(start_text.strip())
            end = ipaddress.ip_address(end_text.strip())
            if start.version != end.version or int(start) > int(end):
                raise ValueError(f"invalid range {entry!r}")
            return cls(start, end)
        network = ipaddress.ip_network(entry, strict=False)
        return cls(network.network_address, network.broadcast_address)

    def __iter__(self) -> Iterator[IPAddress]:
        """Every address of the span, lowest first."""
        current = self.first
        while True:
            yield current
            if current == self.last:
                return
            current = current + 1

    def __contains__(self, ip: object) -> bool:
        """Whether ``ip`` is an address of the same family inside the span."""
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return ip.version == self.first.version and int(self.first) <= int(ip) <= int(self.last)


def family_of_address(ip: IPAddress) -> SingleFamily:
    """``"ipv4"`` or ``"ipv6"``."""
    return "ipv4" if ip.version == 4 else "ipv6"


def family_of_list(ips: Sequence[IPAddress]) -> Family | None:
    """The family of a list of 1-2 addresses (§8.1), or ``None`` when it has none."""
    if len(ips) == 1:
        return family_of_address(ips[0])
    if len(ips) == 2 and ips[0].version != ips[1].version:
        return "dual"
    return None


def go_quote_list(ips: Sequence[IPAddress]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["10.0.0.1" "2001:db8::1"]``."""
    return "[" + " ".join(f'"{ip}"' for ip in ips) + "]"


def selector_matches(selector: Selector, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics: ``matchLabels`` and ``matchExpressions`` ANDed.

    >>> selector_matches({"matchLabels": {"tier": "gold"}}, {"tier": "gold", "app": "x"})
    True
    >>> selector_matches({}, {})
    True
    """
    match_labels = selector.get("matchLabels") or {}
    assert isinstance(match_labels, Mapping)
    for key, value in match_labels.items():
        if labels.get(str(key)) != value:
            return False
    expressions = selector.get("matchExpressions") or []
    assert isinstance(expressions, Sequence)
    for expression in expressions:
        assert isinstance(expression, Mapping)
        key = str(expression["key"])
        operator = expression["operator"]
        values = list(expression.get("values") or [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _short_repr(value: object) -> str:
    """A dataclass repr naming only the fields that differ from their defaults."""
    parts = []
    for item in fields(value):  # type: ignore[arg-type]
        current = getattr(value, item.name)
        if item.default is not MISSING:
            default: object = item.default
        elif item.default_factory is not MISSING:
            default = item.default_factory()
        else:
            parts.append(repr(current))
            continue
        if current != default:
            parts.append(f"{item.name}={current!r}")
    return f"{type(value).__name__}({', '.join(parts)})"


@dataclass(frozen=True)
class ModelServiceAllocation:
    """A pool's ``serviceAllocation``: priority (0 = unset), namespaces, service selectors."""

    priority: int = 0
    namespaces: frozenset[str] = frozenset()
    service_selectors: tuple[Selector, ...] = ()


@dataclass(frozen=True, repr=False)
class ModelPool:
    """A pool as the model sees it: entries are CIDR or ``a-b`` strings, in config order."""

    name: str
    entries: tuple[str, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    exclude: tuple[str, ...] = ()
    service_allocation: ModelServiceAllocation | None = None

    __repr__ = _short_repr

    def spans(self) -> tuple[Span, ...]:
        """The pool's entries as spans, in config order."""
        return tuple(Span.parse(entry) for entry in self.entries)

    def addresses(self) -> Iterator[IPAddress]:
        """Every address the pool's entries cover, in MetalLB's iteration order (§4)."""
        for span in self.spans():
            yield from span

    def is_buggy(self, ip: IPAddress) -> bool:
        """An IPv4 ``.0`` or ``.255`` address in an ``avoid_buggy_ips`` pool."""
        return self.avoid_buggy_ips and ip.version == 4 and int(ip) % 256 in (0, 255)

    def is_excluded(self, ip: IPAddress) -> bool:
        """Whether an ``exclude`` entry covers ``ip``."""
        return any(ip in Span.parse(entry) for entry in self.exclude)

    def offers(self, ip: IPAddress) -> bool:
        """Whether the pool owns ``ip`` and may hand it out (§2, plus ``exclude``)."""
        return (
            any(ip in span for span in self.spans())
            and not self.is_buggy(ip)
            and not self.is_excluded(ip)
        )

    def offered(self) -> Iterator[IPAddress]:
        """The addresses the pool may hand out, in iteration order."""
        return (ip for ip in self.addresses() if self.offers(ip))

    def compatible(self, request: ModelRequest) -> bool:
        """Pool-service compatibility (§6.2): namespaces AND (any selector)."""
        allocation = self.service_allocation
        if allocation is None:
            return True
        if allocation.namespaces and request.namespace not in allocation.namespaces:
            return False
        return not allocation.service_selectors or any(
            selector_matches(selector, request.labels) for selector in allocation.service_selectors
        )


@dataclass(frozen=True, repr=False)
class ModelRequest:
    """What a Service asks of the allocator (the model's mirror of ``core.ServiceRequest``)."""

    key: str
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    family: Family = "ipv4"
    primary_family: SingleFamily = "ipv4"
    policy: Policy = "SingleStack"
    ports: tuple[PortSpec, ...] = ()
    sharing_key: str = ""
    backend_key: str = ""
    requested_ips: tuple[str, ...] = ()
    requested_pool: str | None = None

    __repr__ = _short_repr


@dataclass(frozen=True)
class ModelAllocation:
    """What a key holds: its IPs in order, the owning pool, ports and keys."""

    key: str
    ips: tuple[IPAddress, ...]
    pool: str
    ports: tuple[PortSpec, ...]
    sharing_key: str
    backend_key: str


@dataclass(frozen=True)
class ModelError:
    """An expected failure: ``kind`` is the name of the ``metallb_core`` class."""

    kind: str
    message: str


Outcome = ModelAllocation | ModelError


@dataclass(frozen=True)
class ModelUsage:
    """The model's ``PoolUsage``."""

    assigned_ipv4: int
    assigned_ipv6: int
    available_ipv4: int
    available_ipv6: int


def _sharing_compatible(holder: ModelAllocation, sharing_key: str, backend_key: str) -> bool:
    # §4: both keys non-empty and equal, and the same backend key.
    return (
        holder.sharing_key != ""
        and sharing_key != ""
        and holder.sharing_key == sharing_key
        and holder.backend_key == backend_key
    )


@dataclass(frozen=True)
class NaiveAllocator:
    """The model's state: the config's pools and the allocations by key. Never mutated."""

    pools: tuple[ModelPool, ...]
    allocations: Mapping[str, ModelAllocation]

    @classmethod
    def empty(cls, pools: Sequence[ModelPool]) -> NaiveAllocator:
        """A model with no allocation."""
        return cls(tuple(pools), {})

    # -- queries ------------------------------------------------------------------------

    def pool_named(self, name: str) -> ModelPool | None:
        """The pool called ``name``, if any."""
        return next((pool for pool in self.pools if pool.name == name), None)

    def holders(self, ip: IPAddress) -> list[ModelAllocation]:
        """Every allocation holding ``ip``, by brute force."""
        return [alloc for alloc in self.allocations.values() if ip in alloc.ips]

    def owning_pool(self, ips: Sequence[IPAddress]) -> ModelPool | None:
        """The first pool offering every address of ``ips`` (§2)."""
        if not ips:
            return None
        return next((pool for pool in self.pools if all(pool.offers(ip) for ip in ips)), None)

    def availability_error(self, ip: IPAddress, request: ModelRequest) -> ModelError | None:
        """Why ``ip`` cannot go to ``request`` (§4), or ``None`` if it can."""
        others = [alloc for alloc in self.holders(ip) if alloc.key != request.key]
        if not others:
            return None
        # With ports on every request, all holders of a shared address carry the recorded key.
        if not _sharing_compatible(others[0], request.sharing_key, request.backend_key):
            names = ",".join(sorted(alloc.key for alloc in others))
            return ModelError(
                "SharingConflict",
                f'can\'t change sharing key for "{request.key}", address also in use by {names}',
            )
        for protocol, port in request.ports:
            if any((protocol, port) in alloc.ports for alloc in others):
                return ModelError(
                    "PortConflict", f'port {protocol}/{port} is already in use on "{ip}"'
                )
        return None

    def candidates(
        self, pool: ModelPool, request: ModelRequest
    ) -> tuple[IPAddress | None, IPAddress | None]:
        """The first usable IPv4 and IPv6 address of ``pool`` for ``request`` (§4)."""
        found: dict[int, IPAddress] = {}
        for ip in pool.offered():
            if ip.version not in found and self.availability_error(ip, request) is None:
                found[ip.version] = ip
        return found.get(4), found.get(6)

    def usage(self) -> dict[str, ModelUsage]:
        """``pool_usage``: distinct held addresses, and offered minus held, per family."""
        result: dict[str, ModelUsage] = {}
        for pool in self.pools:
            offered = list(pool.offered())
            held = {
                ip
                for alloc in self.allocations.values()
                if alloc.pool == pool.name
                for ip in alloc.ips
            }
            held4 = sum(1 for ip in held if ip.version == 4)
            held6 = len(held) - held4
            offered4 = sum(1 for ip in offered if ip.version == 4)
            offered6 = len(offered) - offered4
            result[pool.name] = ModelUsage(held4, held6, offered4 - held4, offered6 - held6)
        return result

    # -- transitions ----------------------------------------------------------------------

    def allocate(self, request: ModelRequest) -> tuple[NaiveAllocator, Outcome]:
        """MetalLB's precedence: requested IPs, requested pool, pinned pools, auto-assign pools."""
        if request.requested_ips:
            return self._allocate_requested_ips(request)
        if request.requested_pool is not None:
            return self._allocate_from_pool(request, request.requested_pool)
        return self._allocate_auto(request)

    def release(self, key: str) -> NaiveAllocator:
        """Forget ``key``'s allocation (a no-op for an unknown key)."""
        return NaiveAllocator(
            self.pools, {k: alloc for k, alloc in self.allocations.items() if k != key}
        )

    def reload(
        self, pools: Sequence[ModelPool]
    ) -> tuple[NaiveAllocator, tuple[ModelAllocation, ...]]:
        """Switch to ``pools``: drop what no pool owns, move the rest to its owner (§12)."""
        new = NaiveAllocator(tuple(pools), {})
        kept: dict[str, ModelAllocation] = {}
        dropped: list[ModelAllocation] = []
        for key in sorted(self.allocations):
            alloc = self.allocations[key]
            owner = new.owning_pool(alloc.ips)
            if owner is None:
                dropped.append(alloc)
            else:
                kept[key] = replace(alloc, pool=owner.name)
        return NaiveAllocator(tuple(pools), kept), tuple(dropped)

    # -- the three paths ------------------------------------------------------------------

    def _assign(
        self, request: ModelRequest, ips: Sequence[IPAddress]
    ) -> tuple[NaiveAllocator, Outcome]:
        # §5, checks in MetalLB's order; the first failure changes nothing.
        pool = self.owning_pool(ips)
        if pool is None:
            return self, ModelError(
                "NotAllowedByConfig", f"{go_quote_list(ips)} is not allowed in config"
            )
        if not pool.compatible(request):
            return self, ModelError(
                "PoolNotCompatible", f"pool {pool.name} not compatible for ip assignment"
            )
        if len(ips) > 2:
            return self, ModelError(
                "InvalidRequest", f"more than two addresses {go_quote_list(ips)}"
            )
        if len(ips) == 2 and ips[0].version == ips[1].version:
            return self, ModelError("InvalidRequest", f'"{ips[0]}" "{ips[1]}" has the same family')
        for ip in ips:
            error = self.availability_error(ip, request)
            if error is not None:
                return self, error
        allocation = ModelAllocation(
            key=request.key,
            ips=tuple(ips),
            pool=pool.name,
            ports=tuple(request.ports),
            sharing_key=request.sharing_key,
            backend_key=request.backend_key,
        )
        allocations = {k: a for k, a in self.allocations.items() if k != request.key}
        allocations[request.key] = allocation
        return NaiveAllocator(self.pools, allocations), allocation

    def _allocate_requested_ips(self, request: ModelRequest) -> tuple[NaiveAllocator, Outcome]:
        # §11.4 step 4.
        ips = [ipaddress.ip_address(text.strip()) for text in request.requested_ips]
        if family_of_list(ips) != request.family:
            return self, ModelError(
                "FamilyMismatch",
                f"requested loadBalancer IP(s) {go_quote_list(ips)} "
                "does not match the ipFamily of the service",
            )
        new, outcome = self._assign(request, ips)
        if (
            isinstance(outcome, ModelAllocation)
            and request.requested_pool is not None
            and outcome.pool != request.requested_pool
        ):
            return self, ModelError(
                "InvalidRequest",
                f"requested loadBalancer IP(s) {go_quote_list(ips)} "
                f"is not compatible with requested address pool {request.requested_pool}",
            )
        return new, outcome

    def _select(
        self, pool: ModelPool, request: ModelRequest, v4: IPAddress | None, v6: IPAddress | None
    ) -> tuple[IPAddress, ...] | ModelError:
        # §6.5, with decision 2 for an exhausted family.
        if request.family == "ipv4":
            return (
                (v4,)
                if v4 is not None
                else ModelError("NoAvailableIPs", f"no available IPs in pool {pool.name}")
            )
        if request.family == "ipv6":
            return (
                (v6,)
                if v6 is not None
                else ModelError("NoAvailableIPs", f"no available IPs in pool {pool.name}")
            )
        if v4 is not None and v6 is not None and request.policy != "SingleStack":
            return (v4, v6)
        if request.policy == "PreferDualStack":
            single = v4 if v4 is not None else v6
            assert single is not None  # a pool with no candidate is never selected from
            return (single,)
        return ModelError(
            "NoAvailableIPs", f"no available IPs in pool {pool.name} for dual IPFamily"
        )

    def _allocate_from_pool(
        self, request: ModelRequest, pool_name: str
    ) -> tuple[NaiveAllocator, Outcome]:
        # §7.
        existing = self.allocations.get(request.key)
        if existing is not None:
            held = family_of_list(existing.ips)
            if request.policy != "PreferDualStack" and held != request.family:
                return self, ModelError(
                    "FamilyMismatch",
                    f"IP for wrong family assigned alloc {held} service family {request.family}",
                )
            if existing.pool == pool_name:
                return self._assign(request, existing.ips)
            # Held elsewhere: a new allocation from the requested pool, as if the key held
            # nothing; on failure the key keeps what it had.
            moved, outcome = self.release(request.key)._allocate_from_pool(request, pool_name)
            return (self, outcome) if isinstance(outcome, ModelError) else (moved, outcome)
        pool = self.pool_named(pool_name)
        if pool is None:
            return self, ModelError("UnknownPool", f'unknown pool "{pool_name}"')
        v4, v6 = self.candidates(pool, request)
        if v4 is None and v6 is None:
            return self, ModelError("NoAvailableIPs", f"no available IPs in pool {pool_name}")
        selection = self._select(pool, request, v4, v6)
        if isinstance(selection, ModelError):
            return self, selection
        return self._assign(request, selection)

    def _choose(self, pools: Sequence[ModelPool], request: ModelRequest) -> ModelPool | None:
        # §6.4, the family-aware pool choice.
        primary_fallback: ModelPool | None = None
        secondary_fallback: ModelPool | None = None
        for pool in pools:
            v4, v6 = self.candidates(pool, request)
            if v4 is None and v6 is None:
                continue
            if request.family == "ipv4" and v4 is not None:
                return pool
            if request.family == "ipv6" and v6 is not None:
                return pool
            if v4 is not None and v6 is not None:
                return pool
            if request.family == "dual" and request.policy == "PreferDualStack":
                primary = v4 if request.primary_family == "ipv4" else v6
                if primary is not None and primary_fallback is None:
                    primary_fallback = pool
                if primary is None and secondary_fallback is None:
                    secondary_fallback = pool
        return primary_fallback if primary_fallback is not None else secondary_fallback

    def _try_pools(
        self, pools: Sequence[ModelPool], request: ModelRequest
    ) -> tuple[NaiveAllocator, ModelAllocation] | None:
        pool = self._choose(pools, request)
        if pool is None:
            return None
        selection = self._select(pool, request, *self.candidates(pool, request))
        if isinstance(selection, ModelError):
            return None
        new, outcome = self._assign(request, selection)
        if isinstance(outcome, ModelError):
            return None
        return new, outcome

    def pinned_pools(self, request: ModelRequest) -> list[ModelPool]:
        """The pinned candidates of §6.1 step 2, sorted by priority then config order."""
        pinned = [
            pool
            for pool in self.pools
            if pool.service_allocation is not None
            and pool.auto_assign
            and pool.compatible(request)
            and (
                request.namespace in pool.service_allocation.namespaces
                or bool(pool.service_allocation.service_selectors)
                or not pool.service_allocation.namespaces
            )
        ]

        def rank(pool: ModelPool) -> tuple[int, int]:
            assert pool.service_allocation is not None
            priority = pool.service_allocation.priority
            return (0, priority) if priority > 0 else (1, 0)

        # sorted() is stable: equal ranks stay in config order (decision 1).
        return sorted(pinned, key=rank)

    def fallback_pools(self) -> list[ModelPool]:
        """The auto-assign pools without a ``service_allocation``, in config order."""
        return [pool for pool in self.pools if pool.auto_assign and pool.service_allocation is None]

    def _allocate_auto(self, request: ModelRequest) -> tuple[NaiveAllocator, Outcome]:
        # §6.1.
        existing = self.allocations.get(request.key)
        if existing is not None:
            return self._assign(request, existing.ips)
        for pools in (self.pinned_pools(request), self.fallback_pools()):
            result = self._try_pools(pools, request)
            if result is not None:
                return result
        return self, ModelError("NoAvailableIPs", "no available IPs")
