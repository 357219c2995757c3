"""The allocator against the naive model: a hypothesis state machine on tiny pools.

Every step runs one of ``allocate``, ``release`` or ``reload`` on both ``metallb_core`` and
the brute-force model of :mod:`tests.support.naive_model`, and then checks:

* the outcome and the allocations equal the model's (first fit, pools of equal rank in
  config order: decision 1 of docs/design/core-api.md), and so does ``pool_usage``, exactly;
* no address is held by two keys unless sharing is legal (same non-empty sharing key, same
  backend key, disjoint ports);
* every address lies inside its pool and is neither excluded nor buggy;
* ``NoAvailableIPs`` comes only when a brute-force search over the eligible pools, written
  independently of the model, agrees that there is no usable address;
* a failed ``allocate`` returns the state it was given;
* every state produced so far still reads as it did when it was produced;
* the same call twice gives the same result, and arguments are not mutated.

The pools live in a fixed universe: each pool name always has the same CIDRs and the same
``serviceAllocation`` selection, while a config draws which pools exist, in which order, and
their ``auto_assign``, ``avoid_buggy_ips``, ``exclude`` and priority. Each service key has a
fixed shape (namespace, labels, family, policy, requested IPs or pool); each ``allocate``
draws its ports, sharing key and backend key. Every request carries at least one port, as
Kubernetes LoadBalancer Services do.

Set ``CI`` in the environment for a derandomized run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import metallb_core as core
from tests.support.naive_model import (
    IPAddress,
    ModelAllocation,
    ModelError,
    ModelPool,
    ModelRequest,
    ModelServiceAllocation,
    ModelUsage,
    NaiveAllocator,
    Outcome,
    PortSpec,
)

# -- the universe -------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolShape:
    """What a pool name always stands for, and the per-config choices it allows."""

    entries: tuple[str, ...]
    excludes: tuple[tuple[str, ...], ...]
    namespaces: frozenset[str] | None = None  # None: no serviceAllocation at all
    service_selectors: tuple[Mapping[str, Any], ...] = ()


POOL_SHAPES: dict[str, PoolShape] = {
    # CIDRs out of address order: first fit follows the config, not the addresses.
    "v4": PoolShape(
        ("10.0.0.8/31", "10.0.0.0/29"),
        ((), ("10.0.0.1",), ("10.0.0.2 - 10.0.0.4",), ("10.0.0.4/30", "10.0.0.9")),
    ),
    "v6": PoolShape(
        ("2001:db8::5-2001:db8::7", "2001:db8::/126"),
        ((), ("2001:db8::",), ("2001:db8::2-2001:db8::5",)),
    ),
    # A dual-stack pool whose IPv4 part is a range that is not a CIDR, with a .255 in it.
    "dual": PoolShape(
        ("10.0.1.253-10.0.1.255", "2001:db8:1::/126"),
        ((), ("10.0.1.254",), ("2001:db8:1::/127",)),
    ),
    "pinned": PoolShape(
        ("10.0.2.0/30", "2001:db8:2::/127"),
        ((), ("10.0.2.1",)),
        namespaces=frozenset({"ns1"}),
    ),
    "gold": PoolShape(
        ("10.0.3.0/31",),
        ((), ("10.0.3.0",)),
        namespaces=frozenset(),
        service_selectors=(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]},
        ),
    ),
    # serviceAllocation with a priority only: pinned for every Service.
    "anyone": PoolShape(
        ("10.0.4.0/31", "2001:db8:4::/128"),
        ((), ("10.0.4.1",)),
        namespaces=frozenset(),
    ),
}
# The same addresses under another name: a reload moves allocations to it.
POOL_SHAPES["v4-renamed"] = POOL_SHAPES["v4"]
ALIASES = {"v4-renamed": "v4"}

# Keys with one shape each, that mostly get addresses.
PROFILES: tuple[ModelRequest, ...] = (
    ModelRequest("ns1/web", namespace="ns1"),
    ModelRequest("ns3/plain", namespace="ns3"),
    # Eligible for both pinned pools: their priorities decide.
    ModelRequest("ns1/gold", namespace="ns1", labels={"tier": "gold"}),
    ModelRequest("ns2/gold", namespace="ns2", labels={"tier": "gold"}),
    ModelRequest("ns2/v6", namespace="ns2", family="ipv6", primary_family="ipv6"),
    ModelRequest("ns1/dual-require", namespace="ns1", family="dual", policy="RequireDualStack"),
    ModelRequest(
        "ns2/dual-prefer",
        namespace="ns2",
        labels={"tier": "gold"},
        family="dual",
        primary_family="ipv6",
        policy="PreferDualStack",
    ),
    ModelRequest("ns3/from-v4", namespace="ns3", requested_pool="v4"),
    ModelRequest(
        "ns3/v6-from-dual",
        namespace="ns3",
        family="ipv6",
        primary_family="ipv6",
        requested_pool="dual",
    ),
    ModelRequest(
        "ns3/prefer-from-dual",
        namespace="ns3",
        family="dual",
        policy="PreferDualStack",
        requested_pool="dual",
    ),
    ModelRequest("ns3/fixed", namespace="ns3", requested_ips=("10.0.0.3",)),
    ModelRequest(
        "ns3/fixed-pair",
        namespace="ns3",
        family="dual",
        policy="RequireDualStack",
        requested_ips=("2001:db8:1::2", "10.0.1.254"),
    ),
)

# Keys that change shape from call to call, and requests that are mostly refused.
ODD_PROFILES: tuple[ModelRequest, ...] = (
    ModelRequest("ns2/wants-pinned", namespace="ns2", requested_pool="pinned"),
    ModelRequest("ns3/wants-nothing", namespace="ns3", requested_pool="nope"),
    ModelRequest(
        "ns3/fixed-wrong-pool", namespace="ns3", requested_ips=("10.0.0.6",), requested_pool="dual"
    ),
    ModelRequest("ns3/fixed-wrong-family", namespace="ns3", requested_ips=("2001:db8::6",)),
    # Keys whose request changes shape from call to call: held addresses are kept, moved
    # to a requested pool or to requested IPs, or refused for a family change.
    *(
        replace(shape, key="ns1/mover", namespace="ns1")
        for shape in (
            ModelRequest(""),
            ModelRequest("", requested_pool="v4"),
            ModelRequest("", requested_pool="dual"),
            ModelRequest("", requested_pool="pinned"),
            ModelRequest("", family="ipv6", primary_family="ipv6"),
            ModelRequest("", family="ipv6", primary_family="ipv6", requested_pool="dual"),
            ModelRequest("", requested_ips=("10.0.0.3",)),
        )
    ),
    *(
        replace(shape, key="ns2/dual-mover", namespace="ns2", family="dual")
        for shape in (
            ModelRequest("", policy="PreferDualStack"),
            ModelRequest("", policy="PreferDualStack", requested_pool="dual"),
            ModelRequest("", policy="RequireDualStack", requested_pool="pinned"),
            ModelRequest("", policy="RequireDualStack", requested_pool="dual"),
            ModelRequest(
                "", policy="RequireDualStack", requested_ips=("2001:db8:1::3", "10.0.1.253")
            ),
        )
    ),
)

PORT_SETS: tuple[tuple[PortSpec, ...], ...] = (
    (("TCP", 80),),
    (("TCP", 443),),
    (("UDP", 53),),
    (("TCP", 80), ("UDP", 53)),
    (("UDP", 80),),  # the same number as TCP/80: ports differ by protocol too
)
SHARING_KEYS = ("s", "", "t")
BACKEND_KEYS = ("", "app=x")
KEYS = (
    *sorted({profile.key for profile in PROFILES + ODD_PROFILES}),
    "ns9/never-allocated",
)

# The most specific classes first: an outcome is named after the first it is an instance of.
ERROR_KINDS = (
    "NoAvailableIPs",
    "UnknownPool",
    "NotAllowedByConfig",
    "PoolNotCompatible",
    "SharingConflict",
    "PortConflict",
    "FamilyMismatch",
    "InvalidRequest",
    "AllocationError",
)


@st.composite
def pool_sets(draw: st.DrawFn) -> tuple[ModelPool, ...]:
    """A config of the universe: some pools, in some order, with per-config options."""
    names = draw(st.permutations(sorted(POOL_SHAPES)))
    chosen = [name for name in names if draw(st.booleans())]
    pools = []
    for name in chosen:
        if ALIASES.get(name) in chosen:
            continue  # two names for the same addresses would overlap
        shape = POOL_SHAPES[name]
        allocation = None
        if shape.namespaces is not None:
            allocation = ModelServiceAllocation(
                priority=draw(st.sampled_from((1, 0, 2))),
                namespaces=shape.namespaces,
                service_selectors=shape.service_selectors,
            )
        pools.append(
            ModelPool(
                name,
                shape.entries,
                auto_assign=draw(st.sampled_from((True, True, False))),
                avoid_buggy_ips=draw(st.booleans()),
                exclude=draw(st.sampled_from(shape.excludes)),
                service_allocation=allocation,
            )
        )
    return tuple(pools)


# -- conversions --------------------------------------------------------------------------


def core_config(pools: Sequence[ModelPool]) -> core.Config:
    """The ``core.Config`` a model config stands for."""
    core_pools = []
    for pool in pools:
        allocation = None
        if pool.service_allocation is not None:
            allocation = core.ServiceAllocation(
                priority=pool.service_allocation.priority,
                namespaces=sorted(pool.service_allocation.namespaces),
                service_selectors=list(pool.service_allocation.service_selectors),
            )
        core_pools.append(
            core.Pool(
                name=pool.name,
                cidrs=list(pool.entries),
                auto_assign=pool.auto_assign,
                avoid_buggy_ips=pool.avoid_buggy_ips,
                exclude=list(pool.exclude),
                service_allocation=allocation,
            )
        )
    return core.Config(pools=core_pools)


def core_request(request: ModelRequest) -> core.ServiceRequest:
    """The ``core.ServiceRequest`` a model request stands for."""
    return core.ServiceRequest(
        key=request.key,
        namespace=request.namespace,
        labels=dict(request.labels),
        family=request.family,
        primary_family=request.primary_family,
        policy=request.policy,
        ports=[core.Port(protocol=protocol, port=port) for protocol, port in request.ports],
        sharing_key=request.sharing_key,
        backend_key=request.backend_key,
        requested_ips=list(request.requested_ips),
        requested_pool=request.requested_pool,
    )


def normalised(allocation: ModelAllocation) -> ModelAllocation:
    """Ports in a canonical order: their order carries no meaning."""
    return replace(allocation, ports=tuple(sorted(allocation.ports)))


def from_core_allocation(allocation: Any) -> ModelAllocation:
    """A ``core.Allocation`` as a model allocation."""
    return normalised(
        ModelAllocation(
            key=allocation.key,
            ips=tuple(allocation.ips),
            pool=allocation.pool,
            ports=tuple((port.protocol, port.port) for port in allocation.ports),
            sharing_key=allocation.sharing_key,
            backend_key=allocation.backend_key,
        )
    )


def from_core_outcome(outcome: Any) -> Outcome:
    """A ``core.allocate`` outcome as a model outcome."""
    if isinstance(outcome, core.AllocationError):
        assert outcome.reason == "AllocationFailed", outcome
        kind = next(name for name in ERROR_KINDS if isinstance(outcome, getattr(core, name)))
        return ModelError(kind, outcome.message)
    assert isinstance(outcome, core.Allocation), outcome
    return from_core_allocation(outcome)


def expected_outcome(outcome: Outcome) -> Outcome:
    """A model outcome, normalised like the core's."""
    return normalised(outcome) if isinstance(outcome, ModelAllocation) else outcome


def usage_of(state: core.State) -> dict[str, ModelUsage]:
    """``core.pool_usage`` as model usages."""
    return {
        name: ModelUsage(
            usage.assigned_ipv4, usage.assigned_ipv6, usage.available_ipv4, usage.available_ipv6
        )
        for name, usage in core.pool_usage(state).items()
    }


@dataclass(frozen=True)
class Snapshot:
    """Everything observable about a state, as plain values."""

    config: str
    allocations: dict[str, ModelAllocation]
    usage: dict[str, ModelUsage]


def allocations_of(state: core.State) -> dict[str, ModelAllocation]:
    """``state.allocations`` as model allocations."""
    return {key: from_core_allocation(alloc) for key, alloc in state.allocations.items()}


def snapshot(state: core.State) -> Snapshot:
    """Read a state completely."""
    return Snapshot(repr(state.config), allocations_of(state), usage_of(state))


# -- independent checks -------------------------------------------------------------------


def holders_of(allocations: Mapping[str, ModelAllocation], ip: IPAddress) -> list[ModelAllocation]:
    """The allocations holding ``ip``."""
    return [alloc for alloc in allocations.values() if ip in alloc.ips]


def assert_sharing_is_legal(allocations: Mapping[str, ModelAllocation]) -> None:
    """Two keys on one address: same non-empty sharing key, same backend, disjoint ports."""
    addresses = {ip for alloc in allocations.values() for ip in alloc.ips}
    for ip in addresses:
        holders = holders_of(allocations, ip)
        if len(holders) < 2:
            continue
        first = holders[0]
        for other in holders[1:]:
            assert first.sharing_key != "", (ip, holders)
            assert (other.sharing_key, other.backend_key) == (
                first.sharing_key,
                first.backend_key,
            ), (ip, holders)
        ports = [port for holder in holders for port in holder.ports]
        assert len(ports) == len(set(ports)), (ip, holders)


def assert_addresses_inside_pools(
    allocations: Mapping[str, ModelAllocation], pools: Sequence[ModelPool]
) -> None:
    """Every address is offered by the allocation's pool: inside it, not buggy, not excluded."""
    by_name = {pool.name: pool for pool in pools}
    for key, alloc in allocations.items():
        assert alloc.key == key
        assert alloc.pool in by_name, alloc
        assert 1 <= len(alloc.ips) <= 2, alloc
        assert len({ip.version for ip in alloc.ips}) == len(alloc.ips), alloc
        for ip in alloc.ips:
            assert by_name[alloc.pool].offers(ip), (ip, alloc)


def usable(
    allocations: Mapping[str, ModelAllocation], ip: IPAddress, request: ModelRequest
) -> bool:
    """Whether ``request`` may take ``ip``, judged from the holders alone."""
    others = [alloc for alloc in holders_of(allocations, ip) if alloc.key != request.key]
    return all(
        request.sharing_key != ""
        and (alloc.sharing_key, alloc.backend_key) == (request.sharing_key, request.backend_key)
        and not set(alloc.ports) & set(request.ports)
        for alloc in others
    )


def has_room(
    pool: ModelPool, allocations: Mapping[str, ModelAllocation], request: ModelRequest
) -> bool:
    """Whether ``pool`` holds usable addresses enough for ``request``'s family and policy."""
    versions = {ip.version for ip in pool.offered() if usable(allocations, ip, request)}
    if request.family == "ipv4":
        return 4 in versions
    if request.family == "ipv6":
        return 6 in versions
    if request.policy == "PreferDualStack":
        return bool(versions)
    return versions == {4, 6}


def eligible_pools(pools: Sequence[ModelPool], request: ModelRequest) -> list[ModelPool]:
    """The pools a new allocation for ``request`` may come from."""
    if request.requested_pool is not None:
        return [pool for pool in pools if pool.name == request.requested_pool]
    eligible = []
    for pool in pools:
        allocation = pool.service_allocation
        if not pool.auto_assign:
            continue
        pinned = allocation is not None and (
            request.namespace in allocation.namespaces
            or bool(allocation.service_selectors)
            or not allocation.namespaces
        )
        if allocation is None or (pinned and pool.compatible(request)):
            eligible.append(pool)
    return eligible


# -- the machine --------------------------------------------------------------------------

CI = bool(os.environ.get("CI"))
_ci_options: dict[str, Any] = {"derandomize": True, "database": None} if CI else {}
STATEFUL_SETTINGS = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # The explain phase replays a failing run hundreds of times to annotate it: minutes here.
    phases=[phase for phase in Phase if phase is not Phase.explain],
    **_ci_options,
)


class AllocatorMachine(RuleBasedStateMachine):
    """Runs allocate, release and reload on the core and on the naive model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.model = NaiveAllocator.empty(())
        self.state: core.State | None = None
        self.history: list[tuple[core.State, Snapshot]] = []

    @property
    def current(self) -> core.State:
        """The core's current state."""
        assert self.state is not None
        return self.state

    def adopt(self, state: core.State, model: NaiveAllocator) -> None:
        """Move on to ``state``, after checking it against ``model``, and remember it."""
        self.state, self.model = state, model
        seen = snapshot(state)
        for key in KEYS:
            held = state.allocation(key)
            assert (None if held is None else from_core_allocation(held)) == seen.allocations.get(
                key
            )
        assert_sharing_is_legal(seen.allocations)
        assert_addresses_inside_pools(seen.allocations, model.pools)
        assert seen.allocations == {
            key: normalised(alloc) for key, alloc in model.allocations.items()
        }
        assert seen.usage == model.usage()
        self.history.append((state, seen))

    @initialize(pools=pool_sets())
    def start(self, pools: tuple[ModelPool, ...]) -> None:
        """Begin from an empty state on a drawn config."""
        config = core_config(pools)
        state = core.State.empty(config)
        assert state.config == config
        self.adopt(state, NaiveAllocator.empty(pools))

    # Three allocate rules, so that Hypothesis's swarm testing (which switches rules off per
    # run) sometimes makes runs of shared addresses only, or of odd requests only.
    @rule(
        profile=st.sampled_from(PROFILES),
        ports=st.sampled_from(PORT_SETS),
        sharing_key=st.sampled_from(SHARING_KEYS),
        backend_key=st.sampled_from(BACKEND_KEYS),
    )
    def allocate(
        self,
        profile: ModelRequest,
        ports: tuple[PortSpec, ...],
        sharing_key: str,
        backend_key: str,
    ) -> None:
        """Allocate for a key of one shape, with drawn ports and keys."""
        self.check_allocate(
            replace(profile, ports=ports, sharing_key=sharing_key, backend_key=backend_key)
        )

    @rule(profile=st.sampled_from(PROFILES), ports=st.sampled_from(PORT_SETS))
    def allocate_shared(self, profile: ModelRequest, ports: tuple[PortSpec, ...]) -> None:
        """Allocate under the common sharing key: shared addresses and port conflicts."""
        self.check_allocate(replace(profile, ports=ports, sharing_key="s"))

    @rule(
        profile=st.sampled_from(ODD_PROFILES),
        ports=st.sampled_from(PORT_SETS),
        sharing_key=st.sampled_from(SHARING_KEYS),
    )
    def allocate_odd(
        self, profile: ModelRequest, ports: tuple[PortSpec, ...], sharing_key: str
    ) -> None:
        """Allocate for a key that changes shape, or a request that is mostly refused."""
        self.check_allocate(replace(profile, ports=ports, sharing_key=sharing_key))

    def check_allocate(self, request: ModelRequest) -> None:
        """Allocate on both sides; compare with the model and with brute force."""
        before = self.current
        before_seen = snapshot(before)
        wire = core_request(request)
        wire_text = repr(wire)

        state, raw = core.allocate(before, wire)
        again_state, again_raw = core.allocate(before, wire)
        outcome = from_core_outcome(raw)
        assert repr(wire) == wire_text, "allocate mutated its request"
        assert from_core_outcome(again_raw) == outcome, "allocate is not deterministic"
        assert snapshot(again_state) == snapshot(state), "allocate is not deterministic"

        if isinstance(outcome, ModelError):
            assert snapshot(state) == before_seen, "a failed allocate changed the state"
            if outcome.kind == "NoAvailableIPs" and request.key not in before_seen.allocations:
                roomy = [
                    pool.name
                    for pool in eligible_pools(self.model.pools, request)
                    if has_room(pool, before_seen.allocations, request)
                ]
                assert not roomy, f"NoAvailableIPs although {roomy} have room for {request}"

        # Coverage, shown by pytest --hypothesis-show-statistics.
        event(f"allocate -> {outcome.kind if isinstance(outcome, ModelError) else 'allocated'}")
        model, expected = self.model.allocate(request)
        assert outcome == expected_outcome(expected)
        self.adopt(state, model)

    @rule(key=st.sampled_from(KEYS))
    def release(self, key: str) -> None:
        """Release one key (possibly one that holds nothing)."""
        before = self.current
        state = core.release(before, key)
        assert snapshot(core.release(before, key)) == snapshot(state)
        assert state.allocation(key) is None
        self.adopt(state, self.model.release(key))

    @rule(pools=pool_sets())
    def reload(self, pools: tuple[ModelPool, ...]) -> None:
        """Switch to another config of the universe; compare what is dropped."""
        before = self.current
        config = core_config(pools)
        config_text = repr(config)
        orphans = core.orphans(before, config)
        state, dropped = core.reload(before, config)
        again_state, again_dropped = core.reload(before, config)
        assert repr(config) == config_text, "reload mutated its config"
        assert again_dropped == dropped
        assert snapshot(again_state) == snapshot(state)
        assert state.config == config

        model, expected_dropped = self.model.reload(pools)

        def by_key(allocations: Sequence[Any]) -> list[ModelAllocation]:
            return sorted(
                (from_core_allocation(alloc) for alloc in allocations), key=lambda a: a.key
            )

        event(f"reload -> dropped {min(len(dropped), 2)}{'+' if len(dropped) > 2 else ''}")
        expected = [normalised(alloc) for alloc in expected_dropped]
        assert by_key(dropped) == expected
        assert by_key(orphans) == expected
        self.adopt(state, model)

    @invariant()
    def old_states_are_unchanged(self) -> None:
        """Every state produced so far still holds what it held.

        Config and usage are compared in ``teardown`` only: reading them is what costs.
        """
        for state, seen in self.history:
            assert allocations_of(state) == seen.allocations

    def teardown(self) -> None:
        """Every state produced still reads exactly as it did, config and usage included."""
        for state, seen in self.history:
            assert snapshot(state) == seen


AllocatorMachine.TestCase.settings = STATEFUL_SETTINGS
TestAllocatorAgainstModel = AllocatorMachine.TestCase
