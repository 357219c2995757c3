"""MetalLB's allocator tests, translated to the metallb_core contract (docs/design/core-api.md).

The tables below carry the data and the expectations of MetalLB's
``internal/allocator/allocator_test.go`` (TestAssignment, TestPoolAllocation, TestAllocation,
TestBuggyIPs, TestConfigReload, TestAutoAssign, TestPoolCount, TestPoolMetrics), plus the
pool-choice rules of ``docs/design/metallb-behaviour.md`` (priorities, selectors, dual-stack,
sharing).
MetalLB only checks "an IP from this set"; metallb_core is deterministic (first fit, pools of
equal rank in config order), so these tests pin the exact address, the pool and the message.
Where a MetalLB expectation had to change (overlapping pools, Decisions 1-7), the reason is
in ``tests/core/metallb_cases_notes.md``.

Sequential MetalLB tables are run one row per test: the earlier rows are replayed, then the
row under test is checked, so a failure names the row.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import pytest

import metallb_core as core
from tests.support.builders import IP, Family, Policy, config, ips, pool

TEAM_METALLB = {"matchLabels": {"team": "metallb"}}


# --------------------------------------------------------------------------------------
# helpers


def port(spec: str) -> core.Port:
    """``"tcp/80"`` -> ``Port(protocol="tcp", port=80)``, MetalLB's test notation."""
    protocol, number = spec.split("/")
    return core.Port(protocol=protocol, port=int(number))


def family_of(texts: Sequence[str]) -> Family:
    """The service family a list of requested IPs implies."""
    versions = {ipaddress.ip_address(text).version for text in texts}
    if versions == {4, 6}:
        return "dual"
    return "ipv6" if versions == {6} else "ipv4"


Snapshot = dict[str, tuple[tuple[IP, ...], str, tuple[tuple[str, int], ...], str, str]]


def snapshot(state: core.State) -> Snapshot:
    """Everything observable about a state's allocations, as plain comparable values."""
    return {
        key: (
            tuple(held.ips),
            held.pool,
            tuple((p.protocol, p.port) for p in held.ports),
            held.sharing_key,
            held.backend_key,
        )
        for key, held in state.allocations.items()
    }


def request(
    key: str,
    family: Family = "ipv4",
    *,
    policy: Policy = "SingleStack",
    primary: Literal["ipv4", "ipv6"] = "ipv4",
    ports: Sequence[str] = (),
    sharing: str = "",
    backend: str = "",
    requested: Sequence[str] = (),
    pool: str | None = None,
    namespace: str = "",
    labels: Mapping[str, str] | None = None,
) -> core.ServiceRequest:
    """A ServiceRequest in MetalLB's test vocabulary."""
    return core.ServiceRequest(
        key=key,
        namespace=namespace,
        labels=dict(labels or {}),
        family=family,
        primary_family=primary,
        policy=policy,
        ports=[port(p) for p in ports],
        sharing_key=sharing,
        backend_key=backend,
        requested_ips=list(requested),
        requested_pool=pool,
    )


def succeed(state: core.State, req: core.ServiceRequest) -> tuple[core.State, core.Allocation]:
    """Allocate, insist on success, and check the transition left ``state`` untouched."""
    before = snapshot(state)
    new, outcome = core.allocate(state, req)
    assert isinstance(outcome, core.Allocation), f"{req.key}: expected an allocation: {outcome!r}"
    assert snapshot(state) == before, "allocate changed the old state"
    held = new.allocation(req.key)
    assert held is not None
    assert tuple(held.ips) == tuple(outcome.ips)
    assert held.pool == outcome.pool
    assert outcome.key == req.key
    return new, outcome


def fail(state: core.State, req: core.ServiceRequest) -> core.AllocationError:
    """Allocate, insist on a returned failure, and check nothing changed."""
    before = snapshot(state)
    new, outcome = core.allocate(state, req)
    assert isinstance(outcome, core.AllocationError), f"{req.key}: expected a failure: {outcome!r}"
    assert new is state, "on an error the returned state must be the input state"
    assert snapshot(state) == before
    assert outcome.reason == "AllocationFailed"
    return outcome


# --------------------------------------------------------------------------------------
# sequential tables


@dataclass(frozen=True)
class Step:
    """One row of a sequential MetalLB table: an action on a key and what must follow."""

    desc: str
    key: str
    release: bool = False
    family: Family = "ipv4"
    policy: Policy = "SingleStack"
    requested: tuple[str, ...] = ()
    pool: str | None = None
    ports: tuple[str, ...] = ()
    sharing: str = ""
    backend: str = ""
    namespace: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    want_ips: tuple[str, ...] = ()
    want_pool: str | None = None
    want_error: str | None = None  # a class name in metallb_core, resolved when the test runs
    want_message: str | None = None

    def as_request(self) -> core.ServiceRequest:
        return request(
            self.key,
            self.family,
            policy=self.policy,
            ports=self.ports,
            sharing=self.sharing,
            backend=self.backend,
            requested=self.requested,
            pool=self.pool,
            namespace=self.namespace,
            labels=dict(self.labels),
        )


def release(desc: str, key: str) -> Step:
    return Step(desc, key, release=True)


def assign(
    desc: str,
    key: str,
    requested: Sequence[str],
    *,
    pool: str | None = None,
    error: str | None = None,
    message: str | None = None,
    ports: Sequence[str] = (),
    sharing: str = "",
    backend: str = "",
    namespace: str = "",
    labels: Mapping[str, str] | None = None,
) -> Step:
    """MetalLB's ``Assign``: explicit IPs; on success the allocation is exactly those IPs."""
    family = family_of(requested)
    return Step(
        desc,
        key,
        family=family,
        policy="RequireDualStack" if family == "dual" else "SingleStack",
        requested=tuple(requested),
        ports=tuple(ports),
        sharing=sharing,
        backend=backend,
        namespace=namespace,
        labels=tuple(sorted((labels or {}).items())),
        want_ips=() if error else tuple(requested),
        want_pool=pool,
        want_error=error,
        want_message=message,
    )


def alloc(
    desc: str,
    key: str,
    family: Family = "ipv4",
    *,
    want: Sequence[str] = (),
    want_pool: str | None = None,
    error: str | None = None,
    message: str | None = None,
    pool: str | None = None,
    policy: Policy | None = None,
    ports: Sequence[str] = (),
    sharing: str = "",
) -> Step:
    """MetalLB's ``Allocate`` (``pool=None``) or ``AllocateFromPool`` (``pool`` named)."""
    if policy is None:
        policy = "RequireDualStack" if family == "dual" else "SingleStack"
    return Step(
        desc,
        key,
        family=family,
        policy=policy,
        pool=pool,
        ports=tuple(ports),
        sharing=sharing,
        want_ips=tuple(want),
        want_pool=want_pool,
        want_error=error,
        want_message=message,
    )


def apply_step(state: core.State, step: Step) -> core.State:
    """Replay a row without judging it (the row's own test does that)."""
    if step.release:
        return core.release(state, step.key)
    new, _ = core.allocate(state, step.as_request())
    return new


def check_step(state: core.State, step: Step) -> None:
    """Run one row on ``state`` and check MetalLB's expectation for it."""
    if step.release:
        before = snapshot(state)
        new = core.release(state, step.key)
        assert snapshot(state) == before
        assert new.allocation(step.key) is None
        return
    req = step.as_request()
    if step.want_error is None:
        _, got = succeed(state, req)
        assert tuple(got.ips) == ips(*step.want_ips), step.desc
        assert got.pool == step.want_pool, step.desc
        assert tuple((p.protocol, p.port) for p in got.ports) == tuple(
            (p.protocol, p.port) for p in req.ports
        )
        assert got.sharing_key == step.sharing
        assert got.backend_key == step.backend
    else:
        err = fail(state, req)
        assert isinstance(err, getattr(core, step.want_error)), f"{step.desc}: {err!r}"
        assert err.message == step.want_message, step.desc


def run_table(steps: Sequence[Step], cfg: core.Config, index: int) -> None:
    state = core.State.empty(cfg)
    for step in steps[:index]:
        state = apply_step(state, step)
    check_step(state, steps[index])


def rows(steps: Sequence[Step]) -> list[Any]:
    return [pytest.param(i, id=f"{i:02d} {step.desc}") for i, step in enumerate(steps)]


def conflict(key: str, others: str) -> str:
    return f'can\'t change sharing key for "{key}", address also in use by {others}'


# ---- TestAssignment -------------------------------------------------------------------


def assignment_config() -> core.Config:
    return config(
        pool("test", "1.2.3.4/31", "1000::4/127"),
        pool("test2", "1.2.4.0/24", "1000::4:0/120", avoid_buggy_ips=True),
        pool("test3", "1.2.5.0/24", "1000::5:0/120", avoid_buggy_ips=True, namespaces=["test-ns1"]),
        pool(
            "test4", "1.2.6.0/24", "1000::6:0/120", avoid_buggy_ips=True, selectors=[TEAM_METALLB]
        ),
        pool(
            "test5",
            "1.2.7.0/24",
            "1000::7:0/120",
            avoid_buggy_ips=True,
            priority=20,
            namespaces=["test-ns1"],
            selectors=[TEAM_METALLB],
        ),
        pool(
            "test6",
            "1.2.8.0/24",
            "1000::9:0/120",
            avoid_buggy_ips=True,
            priority=20,
            namespaces=["test-ns2"],
            selectors=[{"matchLabels": {"foo": "bar"}}],
        ),
    )


NOT_ALLOWED = "NotAllowedByConfig"
SHARING = "SharingConflict"
PORTS = "PortConflict"
INCOMPATIBLE = "PoolNotCompatible"

ASSIGNMENT: list[Step] = [
    assign("assign s1", "s1", ["1.2.3.4"], pool="test"),
    assign("s1 idempotent reassign", "s1", ["1.2.3.4"], pool="test"),
    assign("s2 can't grab s1's IP", "s2", ["1.2.3.4"], error=SHARING, message=conflict("s2", "s1")),
    assign("s2 can get the other IP", "s2", ["1.2.3.5"], pool="test"),
    assign(
        "s1 now can't grab s2's IP", "s1", ["1.2.3.5"], error=SHARING, message=conflict("s1", "s2")
    ),
    release("s1 frees its IP", "s1"),
    assign("s2 can grab s1's former IP", "s2", ["1.2.3.4"], pool="test"),
    assign("s1 can now grab s2's former IP", "s1", ["1.2.3.5"], pool="test"),
    assign(
        "s3 cannot grab a 0 buggy IP",
        "s3",
        ["1.2.4.0"],
        error=NOT_ALLOWED,
        message='["1.2.4.0"] is not allowed in config',
    ),
    assign(
        "s3 cannot grab a 255 buggy IP",
        "s3",
        ["1.2.4.255"],
        error=NOT_ALLOWED,
        message='["1.2.4.255"] is not allowed in config',
    ),
    assign("s3 can grab another IP in that pool", "s3", ["1.2.4.254"], pool="test2"),
    assign(
        "s4 takes an IP, with sharing",
        "s4",
        ["1.2.4.3"],
        pool="test2",
        ports=["tcp/80"],
        sharing="sharing",
        backend="backend",
    ),
    assign(
        "s4 changes its sharing key in place",
        "s4",
        ["1.2.4.3"],
        pool="test2",
        ports=["tcp/80"],
        sharing="share",
        backend="backend",
    ),
    assign(
        "s3 can't share with s4 (port conflict)",
        "s3",
        ["1.2.4.3"],
        ports=["tcp/80"],
        sharing="share",
        backend="backend",
        error=PORTS,
        message='port tcp/80 is already in use on "1.2.4.3"',
    ),
    assign(
        "s3 can't share with s4 (wrong sharing key)",
        "s3",
        ["1.2.4.3"],
        ports=["tcp/443"],
        sharing="othershare",
        backend="backend",
        error=SHARING,
        message=conflict("s3", "s4"),
    ),
    assign(
        "s3 can't share with s4 (wrong backend key)",
        "s3",
        ["1.2.4.3"],
        ports=["tcp/443"],
        sharing="share",
        backend="otherbackend",
        error=SHARING,
        message=conflict("s3", "s4"),
    ),
    assign(
        "s3 takes the same IP as s4",
        "s3",
        ["1.2.4.3"],
        pool="test2",
        ports=["tcp/443"],
        sharing="share",
        backend="backend",
    ),
    assign(
        "s3 can change its ports while keeping the same IP",
        "s3",
        ["1.2.4.3"],
        pool="test2",
        ports=["udp/53"],
        sharing="share",
        backend="backend",
    ),
    assign(
        "s3 can't change its sharing key while keeping the same IP",
        "s3",
        ["1.2.4.3"],
        ports=["tcp/443"],
        sharing="othershare",
        backend="backend",
        error=SHARING,
        message=conflict("s3", "s4"),
    ),
    assign(
        "s3 can't change its backend key while keeping the same IP",
        "s3",
        ["1.2.4.3"],
        ports=["tcp/443"],
        sharing="share",
        backend="otherbackend",
        error=SHARING,
        message=conflict("s3", "s4"),
    ),
    assign("s4 takes s3's former IP", "s4", ["1.2.4.254"], pool="test2"),
    # IPv6: the same story with IPv6 addresses.
    assign("ipv6 assign s1", "s1", ["1000::4"], pool="test"),
    assign("ipv6 s1 idempotent reassign", "s1", ["1000::4"], pool="test"),
    assign(
        "ipv6 s2 can't grab s1's IP", "s2", ["1000::4"], error=SHARING, message=conflict("s2", "s1")
    ),
    assign("ipv6 s2 can get the other IP", "s2", ["1000::4:5"], pool="test2"),
    assign(
        "ipv6 s1 now can't grab s2's IP",
        "s1",
        ["1000::4:5"],
        error=SHARING,
        message=conflict("s1", "s2"),
    ),
    release("ipv6 s1 frees its IP", "s1"),
    assign("ipv6 s2 can grab s1's former IP", "s2", ["1000::4"], pool="test"),
    assign("ipv6 s1 can now grab s2's former IP", "s1", ["1000::4:5"], pool="test2"),
    # (buggy IPs do not exist in IPv6)
    assign("ipv6 s3 can grab another IP in that pool", "s3", ["1000::4:ff"], pool="test2"),
    assign(
        "ipv6 s4 takes an IP, with sharing",
        "s4",
        ["1000::4:3"],
        pool="test2",
        ports=["tcp/80"],
        sharing="sharing",
        backend="backend",
    ),
    assign(
        "ipv6 s4 changes its sharing key in place",
        "s4",
        ["1000::4:3"],
        pool="test2",
        ports=["tcp/80"],
        sharing="share",
        backend="backend",
    ),
    assign(
        "ipv6 s3 can't share with s4 (port conflict)",
        "s3",
        ["1000::4:3"],
        ports=["tcp/80"],
        sharing="share",
        backend="backend",
        error=PORTS,
        message='port tcp/80 is already in use on "1000::4:3"',
    ),
    assign(
        "ipv6 s3 can't share with s4 (wrong sharing key)",
        "s3",
        ["1000::4:3"],
        ports=["tcp/443"],
        sharing="othershare",
        backend="backend",
        error=SHARING,
        message=conflict("s3", "s4"),
    ),
    assign(
        "ipv6 s3 can't share with s4 (wrong backend key)",
        "s3",
        ["1000::4:3"],
        ports=["tcp/443"],
        sharing="share",
        backend="otherbackend",
        error=SHARING,
        message=conflict("s3", "s4"),
    ),
    assign(
        "ipv6 s3 takes the same IP as s4",
        "s3",
        ["1000::4:3"],
        pool="test2",
        ports=["tcp/443"],
        sharing="share",
        backend="backend",
    ),
    assign(
        "ipv6 s3 can change its ports while keeping the same IP",
        "s3",
        ["1000::4:3"],
        pool="test2",
        ports=["udp/53"],
        sharing="share",
        backend="backend",
    ),
    assign(
        "ipv6 s3 can't change its sharing key while keeping the same IP",
        "s3",
        ["1000::4:3"],
        ports=["tcp/443"],
        sharing="othershare",
        backend="backend",
        error=SHARING,
        message=conflict("s3", "s4"),
    ),
    assign(
        "ipv6 s3 can't change its backend key while keeping the same IP",
        "s3",
        ["1000::4:3"],
        ports=["tcp/443"],
        sharing="share",
        backend="otherbackend",
        error=SHARING,
        message=conflict("s3", "s4"),
    ),
    assign("ipv6 s4 takes s3's former IP", "s4", ["1000::4:ff"], pool="test2"),
    # Dual-stack.
    release("s2 frees its IP", "s2"),
    assign("ip dual-stack assign s1", "s1", ["1.2.3.4", "1000::4"], pool="test"),
    assign(
        "ip dual-stack assign s1 from different pools",
        "s1",
        ["1.2.4.5", "1000::4"],
        error=NOT_ALLOWED,
        message='["1.2.4.5" "1000::4"] is not allowed in config',
    ),
    # Pool compatibility.
    assign(
        "attempt to assign ip from pool pinned on same namespace",
        "s1",
        ["1.2.5.10"],
        pool="test3",
        namespace="test-ns1",
    ),
    assign(
        "attempt to assign ip from pool pinned on different namespace",
        "s1",
        ["1.2.5.10"],
        namespace="testns-not-exist",
        error=INCOMPATIBLE,
        message="pool test3 not compatible for ip assignment",
    ),
    assign(
        "attempt to assign ip from pool pinned with same service label",
        "s1",
        ["1.2.6.10"],
        pool="test4",
        namespace="testns-not-exist",
        labels={"team": "metallb"},
    ),
    assign(
        "attempt to assign ip from pool pinned with different service label",
        "s1",
        ["1.2.6.10"],
        namespace="testns-not-exist",
        labels={"team": "red"},
        error=INCOMPATIBLE,
        message="pool test4 not compatible for ip assignment",
    ),
    assign(
        "attempt to assign ip from pool pinned with namespace and service label",
        "s1",
        ["1.2.7.10"],
        pool="test5",
        namespace="test-ns1",
        labels={"team": "metallb"},
    ),
    assign(
        "attempt to assign ip from pool pinned with namespace and incompatible service label",
        "s1",
        ["1.2.8.10"],
        namespace="test-ns2",
        labels={"team": "metallb"},
        error=INCOMPATIBLE,
        message="pool test6 not compatible for ip assignment",
    ),
    assign(
        "attempt to assign ip from pool pinned with service label and incompatible namespace",
        "s1",
        ["1.2.8.10"],
        namespace="testns-not-exist",
        labels={"foo": "bar"},
        error=INCOMPATIBLE,
        message="pool test6 not compatible for ip assignment",
    ),
]


@pytest.mark.parametrize("index", rows(ASSIGNMENT))
def test_explicit_assignment_follows_metallb_assignment_table(index: int) -> None:
    run_table(ASSIGNMENT, assignment_config(), index)


# ---- TestPoolAllocation (AllocateFromPool) --------------------------------------------


def pool_allocation_config() -> core.Config:
    # MetalLB's test-v4, test-v6 and test-dualstack pools reuse the CIDRs of "test"; a
    # metallb_core Config refuses overlaps, so they get their own (same shape) here.
    return config(
        pool("not_this_one", "192.168.0.0/16", "fc00::1:0/112"),
        pool("test", "1.2.3.4/31", "1.2.3.10/31", "1000::/127", "2000::/127"),
        pool("test2", "10.20.30.0/24", "fc00::2:0/120"),
        pool("test-v4", "1.2.4.4/31", "1.2.4.10/31"),
        pool("test-v6", "1001::/127", "2001::/127"),
        pool("test-dualstack", "1.2.5.4/31", "1.2.5.10/31", "1002::/127", "2002::/127"),
    )


NO_IPS = "NoAvailableIPs"
NO_IPS_IN_TEST = "no available IPs in pool test"


def from_test(desc: str, key: str, family: Family = "ipv4", *want: str, **kwargs: Any) -> Step:
    return alloc(desc, key, family, want=want, want_pool="test", pool="test", **kwargs)


def pool_test_full(desc: str, key: str, family: Family = "ipv4") -> Step:
    return alloc(desc, key, family, pool="test", error=NO_IPS, message=NO_IPS_IN_TEST)


def clear_all(label: str) -> list[Step]:
    return [release(f"s{n} clear old {label} address", f"s{n}") for n in range(1, 7)]


POOL_ALLOCATION: list[Step] = [
    from_test("s1 gets an IPv4", "s1", "ipv4", "1.2.3.4"),
    from_test("s2 gets an IPv4", "s2", "ipv4", "1.2.3.5"),
    from_test("s3 gets an IPv4", "s3", "ipv4", "1.2.3.10"),
    from_test("s4 gets an IPv4", "s4", "ipv4", "1.2.3.11"),
    pool_test_full("s5 can't get an IPv4", "s5"),
    pool_test_full("s6 can't get an IPv4", "s6"),
    release("s1 releases its IPv4", "s1"),
    from_test("s5 can now grab s1's former IPv4", "s5", "ipv4", "1.2.3.4"),
    pool_test_full("s6 still can't get an IPv4", "s6"),
    release("s5 unassigns in prep for enabling IPv4 sharing", "s5"),
    from_test(
        "s5 enables IPv4 sharing", "s5", "ipv4", "1.2.3.4", ports=["tcp/80"], sharing="share"
    ),
    from_test(
        "s6 can get an IPv4 now, with sharing",
        "s6",
        "ipv4",
        "1.2.3.4",
        ports=["tcp/443"],
        sharing="share",
    ),
    *clear_all("ipv4"),
    from_test("s1 gets an IP6", "s1", "ipv6", "1000::"),
    from_test("s2 gets an IP6", "s2", "ipv6", "1000::1"),
    from_test("s3 gets an IP6", "s3", "ipv6", "2000::"),
    from_test("s4 gets an IP6", "s4", "ipv6", "2000::1"),
    pool_test_full("s5 can't get an IP6", "s5", "ipv6"),
    pool_test_full("s6 can't get an IP6", "s6", "ipv6"),
    release("s1 releases its IP6", "s1"),
    from_test("s5 can now grab s1's former IP6", "s5", "ipv6", "1000::"),
    pool_test_full("s6 still can't get an IP6", "s6", "ipv6"),
    release("s5 unassigns in prep for enabling IP6 sharing", "s5"),
    from_test("s5 enables IP6 sharing", "s5", "ipv6", "1000::", ports=["tcp/80"], sharing="share"),
    from_test(
        "s6 can get an IP6 now, with sharing",
        "s6",
        "ipv6",
        "1000::",
        ports=["tcp/443"],
        sharing="share",
    ),
    # The "should-not-happen" case: a key already holds an IP of the wrong family.
    release("s1 clear", "s1"),
    from_test("s1 get an IPv4", "s1", "ipv4", "1.2.3.4"),
    alloc(
        "s1 get an IPv6",
        "s1",
        "ipv6",
        pool="test",
        error="FamilyMismatch",
        message="IP for wrong family assigned alloc ipv4 service family ipv6",
    ),
    *clear_all("ipv6"),
    from_test("s1 gets dual-stack IPs", "s1", "dual", "1.2.3.4", "1000::"),
    from_test("s2 gets dual-stack IPs", "s2", "dual", "1.2.3.5", "1000::1"),
    from_test("s3 gets dual-stack IPs", "s3", "dual", "1.2.3.10", "2000::"),
    from_test("s4 gets dual-stack IPs", "s4", "dual", "1.2.3.11", "2000::1"),
    pool_test_full("s5 can't get dual-stack IPs", "s5", "dual"),
    pool_test_full("s6 can't get dual-stack IPs", "s6", "dual"),
    release("s1 releases its dual-stack IPs", "s1"),
    from_test("s5 can now grab s1's former dual-stack IPs", "s5", "dual", "1.2.3.4", "1000::"),
    pool_test_full("s6 still can't get dual-stack IPs", "s6", "dual"),
    release("s5 unassigns in prep for enabling dual-stack IPs sharing", "s5"),
    from_test(
        "s5 enables dual-stack IP sharing",
        "s5",
        "dual",
        "1.2.3.4",
        "1000::",
        ports=["tcp/80"],
        sharing="share",
    ),
    from_test(
        "s6 can get dual-stack IPs now, with sharing",
        "s6",
        "dual",
        "1.2.3.4",
        "1000::",
        ports=["tcp/443"],
        sharing="share",
    ),
    *clear_all("dual-stack"),
    # PreferDualStack.
    from_test(
        "prefer s1 gets dual-stack IPs", "s1", "dual", "1.2.3.4", "1000::", policy="PreferDualStack"
    ),
    alloc(
        "prefer s2 gets ipv4 IP",
        "s2",
        "ipv4",
        pool="test-v4",
        policy="PreferDualStack",
        want=["1.2.4.4"],
        want_pool="test-v4",
    ),
    alloc(
        "prefer s3 gets ipv6 IP",
        "s3",
        "ipv6",
        pool="test-v6",
        policy="PreferDualStack",
        want=["1001::"],
        want_pool="test-v6",
    ),
    release("prefer s2 clear old ipv4 address", "s2"),
    release("prefer s3 clear old ipv6 address (see notes)", "s3"),
    alloc(
        "prefer s3 gets dualstack",
        "s3",
        "dual",
        pool="test-dualstack",
        policy="PreferDualStack",
        want=["1.2.5.4", "1002::"],
        want_pool="test-dualstack",
    ),
    release("s5 clear", "s5"),
    alloc(
        "allocating from a non-existent pool fails",
        "s5",
        "ipv4",
        pool="nonexistentpool",
        error="UnknownPool",
        message='unknown pool "nonexistentpool"',
    ),
]


@pytest.mark.parametrize("index", rows(POOL_ALLOCATION))
def test_allocation_from_named_pool_follows_metallb_pool_allocation_table(index: int) -> None:
    run_table(POOL_ALLOCATION, pool_allocation_config(), index)


# ---- TestAllocation (Allocate) --------------------------------------------------------


def allocation_config() -> core.Config:
    return config(
        pool("test1", "1.2.3.4/31", "1000::4/127"),
        pool("test2", "1.2.3.10/31", "1000::10/127"),
    )


def auto(desc: str, key: str, family: Family, pool_name: str, *want: str, **kw: Any) -> Step:
    return alloc(desc, key, family, want=want, want_pool=pool_name, **kw)


def exhausted(desc: str, key: str, family: Family) -> Step:
    return alloc(desc, key, family, error=NO_IPS, message="no available IPs")


ALLOCATION: list[Step] = [
    auto("s1 gets an IPv4", "s1", "ipv4", "test1", "1.2.3.4"),
    auto("s2 gets an IPv4", "s2", "ipv4", "test1", "1.2.3.5"),
    auto("s3 gets an IPv4", "s3", "ipv4", "test2", "1.2.3.10"),
    auto("s4 gets an IPv4", "s4", "ipv4", "test2", "1.2.3.11"),
    exhausted("s5 can't get an IPv4", "s5", "ipv4"),
    exhausted("s6 can't get an IPv4", "s6", "ipv4"),
    release("s1 gives up its IPv4", "s1"),
    auto(
        "s5 can now get an IPv4",
        "s5",
        "ipv4",
        "test1",
        "1.2.3.4",
        ports=["tcp/80"],
        sharing="share",
    ),
    exhausted("s6 still can't get an IPv4", "s6", "ipv4"),
    auto(
        "s6 can get an IPv4 with sharing",
        "s6",
        "ipv4",
        "test1",
        "1.2.3.4",
        ports=["tcp/443"],
        sharing="share",
    ),
    *clear_all("ipv4"),
    auto("s1 gets an IPv6", "s1", "ipv6", "test1", "1000::4"),
    auto("s2 gets an IPv6", "s2", "ipv6", "test1", "1000::5"),
    auto("s3 gets an IPv6", "s3", "ipv6", "test2", "1000::10"),
    auto("s4 gets an IPv6", "s4", "ipv6", "test2", "1000::11"),
    exhausted("s5 can't get an IPv6", "s5", "ipv6"),
    exhausted("s6 can't get an IPv6", "s6", "ipv6"),
    release("s1 gives up its IPv6", "s1"),
    auto(
        "s5 can now get an IPv6",
        "s5",
        "ipv6",
        "test1",
        "1000::4",
        ports=["tcp/80"],
        sharing="share",
    ),
    exhausted("s6 still can't get an IPv6", "s6", "ipv6"),
    auto(
        "s6 can get an IPv6 with sharing",
        "s6",
        "ipv6",
        "test1",
        "1000::4",
        ports=["tcp/443"],
        sharing="share",
    ),
    *clear_all("ipv6"),
    auto("s1 gets dual-stack IPs", "s1", "dual", "test1", "1.2.3.4", "1000::4"),
    auto("s2 gets dual-stack IPs", "s2", "dual", "test1", "1.2.3.5", "1000::5"),
    auto("s3 gets dual-stack IPs", "s3", "dual", "test2", "1.2.3.10", "1000::10"),
    auto("s4 gets dual-stack IPs", "s4", "dual", "test2", "1.2.3.11", "1000::11"),
    exhausted("s5 can't get dual-stack IPs", "s5", "dual"),
    exhausted("s6 can't get dual-stack IPs", "s6", "dual"),
    release("s1 gives up its IPs", "s1"),
    auto(
        "s5 can now get dual-stack IPs",
        "s5",
        "dual",
        "test1",
        "1.2.3.4",
        "1000::4",
        ports=["tcp/80"],
        sharing="share",
    ),
    exhausted("s6 still can't get dual-stack IPs", "s6", "dual"),
    auto(
        "s6 can get dual-stack IPs with sharing",
        "s6",
        "dual",
        "test1",
        "1.2.3.4",
        "1000::4",
        ports=["tcp/443"],
        sharing="share",
    ),
]


@pytest.mark.parametrize("index", rows(ALLOCATION))
def test_automatic_allocation_follows_metallb_allocation_table(index: int) -> None:
    run_table(ALLOCATION, allocation_config(), index)


# ---- TestBuggyIPs ---------------------------------------------------------------------


def buggy_config() -> core.Config:
    return config(
        pool("test", "1.2.3.0/31"),
        pool("test2", "1.2.3.254/31"),
        pool("test3", "1.2.4.0/31", avoid_buggy_ips=True),
        pool("test4", "1.2.4.254/31", avoid_buggy_ips=True),
    )


BUGGY: list[Step] = [
    auto("s1 may take a .0 address from a plain pool", "s1", "ipv4", "test", "1.2.3.0"),
    auto("s2", "s2", "ipv4", "test", "1.2.3.1"),
    auto("s3", "s3", "ipv4", "test2", "1.2.3.254"),
    auto("s4 may take a .255 address from a plain pool", "s4", "ipv4", "test2", "1.2.3.255"),
    auto("s5 skips .0 in an avoid-buggy pool", "s5", "ipv4", "test3", "1.2.4.1"),
    auto("s6 skips .255 in an avoid-buggy pool", "s6", "ipv4", "test4", "1.2.4.254"),
    exhausted("s7 finds nothing left", "s7", "ipv4"),
]


@pytest.mark.parametrize("index", rows(BUGGY))
def test_avoid_buggy_ips_follows_metallb_buggy_ips_table(index: int) -> None:
    run_table(BUGGY, buggy_config(), index)


# ---- TestAutoAssign -------------------------------------------------------------------


def auto_assign_config() -> core.Config:
    return config(
        pool("test1", "1.2.3.4/31", "1000::4/127", auto_assign=False),
        pool("test2", "1.2.3.10/31", "1000::10/127"),
    )


AUTO_ASSIGN: list[Step] = [
    auto("s1 gets an IPv4 from the auto-assign pool", "s1", "ipv4", "test2", "1.2.3.10"),
    auto("s2 gets an IPv4 from the auto-assign pool", "s2", "ipv4", "test2", "1.2.3.11"),
    exhausted("s3 can't use the manual pool", "s3", "ipv4"),
    exhausted("s4 can't use the manual pool", "s4", "ipv4"),
    exhausted("s5 can't use the manual pool", "s5", "ipv4"),
    *clear_all("ipv4"),
    auto("s1 gets an IPv6 from the auto-assign pool", "s1", "ipv6", "test2", "1000::10"),
    auto("s2 gets an IPv6 from the auto-assign pool", "s2", "ipv6", "test2", "1000::11"),
    exhausted("s3 can't use the manual pool (ipv6)", "s3", "ipv6"),
    exhausted("s4 can't use the manual pool (ipv6)", "s4", "ipv6"),
    exhausted("s5 can't use the manual pool (ipv6)", "s5", "ipv6"),
    *clear_all("ipv6 (see notes)"),
    auto("s1 gets dual-stack IPs", "s1", "dual", "test2", "1.2.3.10", "1000::10"),
    auto("s2 gets dual-stack IPs", "s2", "dual", "test2", "1.2.3.11", "1000::11"),
    exhausted("s3 can't use the manual pool (dual)", "s3", "dual"),
    exhausted("s4 can't use the manual pool (dual)", "s4", "dual"),
    exhausted("s5 can't use the manual pool (dual)", "s5", "dual"),
]


@pytest.mark.parametrize("index", rows(AUTO_ASSIGN))
def test_auto_assign_follows_metallb_auto_assign_table(index: int) -> None:
    run_table(AUTO_ASSIGN, auto_assign_config(), index)


# --------------------------------------------------------------------------------------
# TestConfigReload


def reload_start() -> core.State:
    cfg = config(
        pool("test", "1.2.3.0/30", "1000::/126"),
        pool("unused", "1.2.4.0/30", "1001::/126"),
    )
    state = core.State.empty(cfg)
    state, _ = succeed(state, request("s1", requested=["1.2.3.0"]))
    state, _ = succeed(state, request("s2", "ipv6", requested=["1000::"]))
    return state


PoolsFactory = Callable[[], list[core.Pool]]

RELOADS = [
    pytest.param(lambda: [pool("test", "1.2.3.0/30", "1000::/126")], "test", "test", id="same"),
    pytest.param(lambda: [pool("test", "1.2.3.0/24", "1000::/120")], "test", "test", id="expand"),
    pytest.param(lambda: [pool("test", "1.2.3.0/30", "1000::/126")], "test", "test", id="shrink"),
    pytest.param(
        lambda: [pool("test", "1.2.3.2/31", "1000::0/126")],
        None,
        "test",
        id="can't shrink further, removing the service allocation",
    ),
    pytest.param(
        lambda: [pool("test", "1.2.3.0/30", "1000::2/127")],
        "test",
        None,
        id="can't shrink further ipv6, removing the service allocation",
    ),
    pytest.param(
        lambda: [pool("test2", "1.2.3.0/30", "1000::0/126")], "test2", "test2", id="rename the pool"
    ),
    pytest.param(
        lambda: [
            pool("test", "1.2.3.0/31", "1000::2/127"),
            pool("test2", "1.2.3.2/31", "1000::/127"),
        ],
        "test",
        "test2",
        id="split pool",
    ),
    pytest.param(
        lambda: [pool("test2", "1.2.3.0/31", "1000::/127", avoid_buggy_ips=True)],
        None,
        "test2",
        id="enable buggy IPs not allowed",
    ),
]


@pytest.mark.parametrize(("pools", "pool_s1", "pool_s2"), RELOADS)
def test_reload_rehomes_or_drops_allocations_like_metallb(
    pools: PoolsFactory, pool_s1: str | None, pool_s2: str | None
) -> None:
    state = reload_start()
    before = snapshot(state)
    new, dropped = core.reload(state, config(*pools()))
    for key, want in (("s1", pool_s1), ("s2", pool_s2)):
        held = new.allocation(key)
        assert (held.pool if held else None) == want, key
    assert sorted(a.key for a in dropped) == sorted(
        key for key, want in (("s1", pool_s1), ("s2", pool_s2)) if want is None
    )
    assert snapshot(state) == before, "reload changed the old state"


@pytest.mark.parametrize(("pools", "pool_s1", "pool_s2"), RELOADS)
def test_orphans_lists_exactly_what_reload_drops(
    pools: PoolsFactory, pool_s1: str | None, pool_s2: str | None
) -> None:
    state = reload_start()
    cfg = config(*pools())
    _, dropped = core.reload(state, cfg)
    orphaned = core.orphans(state, cfg)
    assert sorted((a.key, tuple(a.ips)) for a in orphaned) == sorted(
        (a.key, tuple(a.ips)) for a in dropped
    )
    assert sorted(a.key for a in orphaned) == sorted(
        key for key, want in (("s1", pool_s1), ("s2", pool_s2)) if want is None
    )


def test_reload_keeps_ips_ports_and_keys_of_a_moved_allocation() -> None:
    state = core.State.empty(config(pool("old", "1.2.3.0/30")))
    state, _ = succeed(
        state, request("s1", ports=["tcp/80"], sharing="k", backend="app=a", requested=["1.2.3.1"])
    )
    new, dropped = core.reload(state, config(pool("new", "1.2.3.0/30")))
    assert dropped == ()
    assert snapshot(new) == {"s1": (ips("1.2.3.1"), "new", (("tcp", 80),), "k", "app=a")}


def test_reload_returns_dropped_allocations_as_they_were() -> None:
    state = core.State.empty(config(pool("old", "1.2.3.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"], requested=["1.2.3.1"]))
    _, dropped = core.reload(state, config(pool("other", "9.9.9.0/30")))
    assert [(a.key, tuple(a.ips), a.pool) for a in dropped] == [("s1", ips("1.2.3.1"), "old")]


def test_orphans_does_not_change_the_state() -> None:
    state = reload_start()
    before = snapshot(state)
    core.orphans(state, config(pool("other", "9.9.9.0/30")))
    assert snapshot(state) == before


def test_reloaded_state_carries_the_new_config() -> None:
    state = reload_start()
    cfg = config(pool("test", "1.2.3.0/24", "1000::/120"))
    new, _ = core.reload(state, cfg)
    assert [p.name for p in new.config.pools] == ["test"]


# --------------------------------------------------------------------------------------
# TestPoolCount -> pool_usage capacities (exact ints, Decision 3)


@pytest.mark.parametrize(
    ("cidrs", "avoid_buggy", "available_ipv4", "available_ipv6"),
    [
        pytest.param(["1.2.3.0/24"], False, 256, 0, id="/24"),
        pytest.param(["1.2.3.0/24", "2.3.4.128/25"], False, 384, 0, id="/24 and /25"),
        pytest.param(["1.2.3.0/24", "2.3.4.128/25"], True, 381, 0, id="/24 and /25, no buggy IPs"),
        pytest.param(
            ["1.2.3.0/24", "2.3.4.128/25", "1000::/64"],
            True,
            381,
            2**64,
            id="a BIG ipv6 range, exact",
        ),
        pytest.param(
            ["1.2.3.0/31", "1000::/127"], True, 1, 2, id="ipv4 and ipv6 range, buggy ipv4 only"
        ),
        pytest.param(["1000::/64", "2000::/64"], False, 0, 2**65, id="two /64, never saturated"),
        pytest.param(["1.2.3.0/31", "1.2.3.8/29"], False, 10, 0, id="network and broadcast count"),
    ],
)
def test_pool_usage_reports_metallb_capacities(
    cidrs: list[str], avoid_buggy: bool, available_ipv4: int, available_ipv6: int
) -> None:
    cfg = config(pool("test", *cidrs, avoid_buggy_ips=avoid_buggy))
    usage = core.pool_usage(core.State.empty(cfg))["test"]
    assert (usage.assigned_ipv4, usage.assigned_ipv6) == (0, 0)
    assert (usage.available_ipv4, usage.available_ipv6) == (available_ipv4, available_ipv6)


# ---- TestPoolMetrics ------------------------------------------------------------------


def metrics_config() -> core.Config:
    return config(pool("test", "1.2.3.4/30", "1000::4/126"))


@dataclass(frozen=True)
class UsageStep:
    desc: str
    key: str
    requested: tuple[str, ...]
    ports: tuple[str, ...]
    sharing: str
    in_use: int


METRICS = [
    UsageStep("assign s1", "s1", ("1.2.3.4",), (), "", 1),
    UsageStep("assign s2", "s2", ("1.2.3.5",), (), "", 2),
    UsageStep("unassign s1", "s1", (), (), "", 1),
    UsageStep("unassign s2", "s2", (), (), "", 0),
    UsageStep("assign s1 shared", "s1", ("1.2.3.4",), ("tcp/80",), "key", 1),
    UsageStep("assign s2 shared", "s2", ("1.2.3.4",), ("tcp/443",), "key", 1),
    UsageStep("assign s3 shared", "s3", ("1.2.3.4",), ("tcp/23",), "key", 1),
    UsageStep("unassign s1 shared", "s1", (), (), "", 1),
    UsageStep("unassign s2 shared", "s2", (), (), "", 1),
    UsageStep("unassign s3 shared", "s3", (), (), "", 0),
]


def usage_step(state: core.State, step: UsageStep) -> core.State:
    if not step.requested:
        return core.release(state, step.key)
    new, _ = succeed(
        state,
        request(step.key, requested=step.requested, ports=step.ports, sharing=step.sharing),
    )
    return new


def test_pool_usage_of_a_fresh_pool_counts_every_address() -> None:
    usage = core.pool_usage(core.State.empty(metrics_config()))["test"]
    assert usage == core.PoolUsage(
        assigned_ipv4=0, assigned_ipv6=0, available_ipv4=4, available_ipv6=4
    )


@pytest.mark.parametrize(
    "index", [pytest.param(i, id=f"{i:02d} {s.desc}") for i, s in enumerate(METRICS)]
)
def test_pool_usage_follows_metallb_pool_metrics_table(index: int) -> None:
    state = core.State.empty(metrics_config())
    for step in METRICS[: index + 1]:
        state = usage_step(state, step)
    in_use = METRICS[index].in_use
    usage = core.pool_usage(state)["test"]
    assert (usage.assigned_ipv4, usage.available_ipv4) == (in_use, 4 - in_use)
    assert (usage.assigned_ipv6, usage.available_ipv6) == (0, 4)


def test_pool_usage_forgets_a_removed_pool() -> None:
    state = core.State.empty(metrics_config())
    state, _ = succeed(state, request("s1", requested=["1.2.3.4"]))
    new, _ = core.reload(state, config())
    usage = core.pool_usage(new).get("test")
    assert usage is None or (
        usage.assigned_ipv4,
        usage.assigned_ipv6,
        usage.available_ipv4,
        usage.available_ipv6,
    ) == (0, 0, 0, 0)


def test_pool_usage_excludes_excluded_addresses() -> None:
    state = core.State.empty(config(pool("test", "1.2.3.0/29", exclude=["1.2.3.1", "1.2.3.4/31"])))
    usage = core.pool_usage(state)["test"]
    assert usage.available_ipv4 == 5


def test_pool_usage_counts_ipv6_assignments_separately() -> None:
    state = core.State.empty(metrics_config())
    state, _ = succeed(state, request("s1", "dual", policy="RequireDualStack"))
    usage = core.pool_usage(state)["test"]
    assert usage == core.PoolUsage(
        assigned_ipv4=1, assigned_ipv6=1, available_ipv4=3, available_ipv6=3
    )


# --------------------------------------------------------------------------------------
# Pool choice: pinned pools, priorities, selectors (docs/design/metallb-behaviour.md §6)


def test_pinned_namespace_pool_is_preferred_over_an_earlier_unrestricted_pool() -> None:
    state = core.State.empty(
        config(pool("open", "10.0.0.0/30"), pool("pinned", "10.1.0.0/30", namespaces=["ns1"]))
    )
    _, got = succeed(state, request("ns1/a", namespace="ns1"))
    assert (got.pool, tuple(got.ips)) == ("pinned", ips("10.1.0.0"))


def test_full_pinned_pool_falls_back_to_unrestricted_pools() -> None:
    state = core.State.empty(
        config(pool("open", "10.0.0.0/30"), pool("pinned", "10.1.0.0/32", namespaces=["ns1"]))
    )
    state, _ = succeed(state, request("ns1/a", namespace="ns1"))
    _, got = succeed(state, request("ns1/b", namespace="ns1"))
    assert (got.pool, tuple(got.ips)) == ("open", ips("10.0.0.0"))


def test_pool_pinned_to_another_namespace_is_never_used_automatically() -> None:
    state = core.State.empty(
        config(pool("open", "10.0.0.0/32"), pool("pinned", "10.1.0.0/30", namespaces=["ns1"]))
    )
    state, _ = succeed(state, request("ns2/a", namespace="ns2"))
    err = fail(state, request("ns2/b", namespace="ns2"))
    assert isinstance(err, core.NoAvailableIPs)
    assert err.message == "no available IPs"


def test_lower_positive_priority_number_wins() -> None:
    state = core.State.empty(
        config(
            pool("p10", "10.10.0.0/30", priority=10, namespaces=["ns1"]),
            pool("p5", "10.5.0.0/30", priority=5, namespaces=["ns1"]),
        )
    )
    _, got = succeed(state, request("ns1/a", namespace="ns1"))
    assert got.pool == "p5"


def test_unset_priority_ranks_after_every_positive_priority() -> None:
    state = core.State.empty(
        config(
            pool("p0", "10.0.0.0/30", namespaces=["ns1"]),
            pool("p7", "10.7.0.0/30", priority=7, namespaces=["ns1"]),
        )
    )
    _, got = succeed(state, request("ns1/a", namespace="ns1"))
    assert got.pool == "p7"


def test_pools_of_equal_priority_are_tried_in_config_order() -> None:
    # Decision 1: config order, not name order ("b" comes first in the config).
    state = core.State.empty(
        config(
            pool("b", "10.2.0.0/30", priority=3, namespaces=["ns1"]),
            pool("a", "10.1.0.0/30", priority=3, namespaces=["ns1"]),
        )
    )
    _, got = succeed(state, request("ns1/x", namespace="ns1"))
    assert got.pool == "b"


def test_fallback_pools_are_tried_in_config_order() -> None:
    state = core.State.empty(config(pool("zeta", "10.2.0.0/30"), pool("alpha", "10.1.0.0/30")))
    _, got = succeed(state, request("s1"))
    assert (got.pool, tuple(got.ips)) == ("zeta", ips("10.2.0.0"))


def test_fallback_moves_to_the_next_pool_when_the_first_is_full() -> None:
    state = core.State.empty(config(pool("zeta", "10.2.0.0/32"), pool("alpha", "10.1.0.0/30")))
    state, _ = succeed(state, request("s1"))
    _, got = succeed(state, request("s2"))
    assert (got.pool, tuple(got.ips)) == ("alpha", ips("10.1.0.0"))


def test_pool_pinned_by_service_selector_is_used_for_matching_services() -> None:
    state = core.State.empty(
        config(pool("open", "10.0.0.0/30"), pool("team", "10.1.0.0/30", selectors=[TEAM_METALLB]))
    )
    _, got = succeed(state, request("ns/a", namespace="ns", labels={"team": "metallb"}))
    assert got.pool == "team"


def test_pool_pinned_by_service_selector_is_skipped_for_other_services() -> None:
    state = core.State.empty(
        config(pool("team", "10.1.0.0/30", selectors=[TEAM_METALLB]), pool("open", "10.0.0.0/30"))
    )
    _, got = succeed(state, request("ns/a", namespace="ns", labels={"team": "red"}))
    assert got.pool == "open"


def test_service_selectors_of_one_pool_are_ored() -> None:
    selectors = [{"matchLabels": {"team": "red"}}, TEAM_METALLB]
    state = core.State.empty(config(pool("team", "10.1.0.0/30", selectors=selectors)))
    _, got = succeed(state, request("ns/a", namespace="ns", labels={"team": "metallb"}))
    assert got.pool == "team"


def test_auto_assign_false_pool_is_never_pinned() -> None:
    state = core.State.empty(
        config(
            pool("manual", "10.1.0.0/30", auto_assign=False, namespaces=["ns1"], priority=1),
            pool("open", "10.0.0.0/30"),
        )
    )
    _, got = succeed(state, request("ns1/a", namespace="ns1"))
    assert got.pool == "open"


@pytest.mark.parametrize(
    ("selector", "labels", "compatible"),
    [
        pytest.param({"matchLabels": {"team": "metallb"}}, {"team": "metallb"}, True, id="eq"),
        pytest.param({"matchLabels": {"team": "metallb"}}, {"team": "red"}, False, id="neq"),
        pytest.param({"matchLabels": {"team": "metallb"}}, {}, False, id="missing label"),
        pytest.param(
            {"matchLabels": {"team": "metallb", "tier": "web"}},
            {"team": "metallb"},
            False,
            id="all matchLabels needed",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "db"]}]},
            {"tier": "db"},
            True,
            id="In",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]},
            {"tier": "web"},
            False,
            id="NotIn",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]},
            {},
            True,
            id="NotIn with label absent",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            {"tier": "anything"},
            True,
            id="Exists",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
            {"tier": "anything"},
            False,
            id="DoesNotExist",
        ),
    ],
)
def test_service_selector_matching_follows_kubernetes_label_selectors(
    selector: dict[str, Any], labels: dict[str, str], compatible: bool
) -> None:
    state = core.State.empty(config(pool("sel", "10.1.0.0/30", selectors=[selector])))
    req = request("ns/a", namespace="ns", labels=labels, pool="sel")
    if compatible:
        _, got = succeed(state, req)
        assert got.pool == "sel"
    else:
        err = fail(state, req)
        assert isinstance(err, core.PoolNotCompatible)
        assert err.message == "pool sel not compatible for ip assignment"


# ---- named pools and explicit IPs -----------------------------------------------------


def test_named_pool_ignores_auto_assign_false() -> None:
    state = core.State.empty(config(pool("manual", "10.1.0.0/30", auto_assign=False)))
    _, got = succeed(state, request("s1", pool="manual"))
    assert (got.pool, tuple(got.ips)) == ("manual", ips("10.1.0.0"))


def test_named_pool_must_be_compatible_with_the_service() -> None:
    state = core.State.empty(config(pool("pinned", "10.1.0.0/30", namespaces=["ns1"])))
    err = fail(state, request("ns2/a", namespace="ns2", pool="pinned"))
    assert isinstance(err, core.PoolNotCompatible)
    assert err.message == "pool pinned not compatible for ip assignment"


def test_unknown_named_pool_is_reported() -> None:
    state = core.State.empty(config(pool("test", "10.1.0.0/30")))
    err = fail(state, request("s1", pool="nope"))
    assert isinstance(err, core.UnknownPool)
    assert err.message == 'unknown pool "nope"'


def test_exhausted_named_pool_names_the_pool() -> None:
    state = core.State.empty(config(pool("tiny", "10.1.0.0/32")))
    state, _ = succeed(state, request("s1", pool="tiny"))
    err = fail(state, request("s2", pool="tiny"))
    assert isinstance(err, core.NoAvailableIPs)
    assert err.message == "no available IPs in pool tiny"


def test_named_pool_with_other_family_free_still_reports_no_available_ips() -> None:
    # Decision 2: not MetalLB's '["<nil>"] is not allowed in config'.
    state = core.State.empty(config(pool("mixed", "10.1.0.0/32", "1000::/127")))
    state, _ = succeed(state, request("s1", pool="mixed"))
    err = fail(state, request("s2", pool="mixed"))
    assert isinstance(err, core.NoAvailableIPs)
    assert err.message == "no available IPs in pool mixed"


def test_requested_ip_may_come_from_an_auto_assign_false_pool() -> None:
    state = core.State.empty(config(pool("manual", "10.1.0.0/30", auto_assign=False)))
    _, got = succeed(state, request("s1", requested=["10.1.0.2"]))
    assert (got.pool, tuple(got.ips)) == ("manual", ips("10.1.0.2"))


def test_requested_ip_outside_every_pool_is_not_allowed() -> None:
    state = core.State.empty(config(pool("test", "10.1.0.0/30")))
    err = fail(state, request("s1", requested=["9.9.9.9"]))
    assert isinstance(err, core.NotAllowedByConfig)
    assert err.message == '["9.9.9.9"] is not allowed in config'


def test_requested_ips_keep_the_order_the_user_gave() -> None:
    # Decision 7.
    state = core.State.empty(config(pool("test", "1.2.3.4/31", "1000::4/127")))
    _, got = succeed(
        state, request("s1", "dual", policy="RequireDualStack", requested=["1000::4", "1.2.3.4"])
    )
    assert tuple(got.ips) == ips("1000::4", "1.2.3.4")


def test_requested_ips_must_match_the_service_family() -> None:
    state = core.State.empty(config(pool("test", "1.2.3.4/31", "1000::4/127")))
    err = fail(state, request("s1", "ipv6", requested=["1.2.3.4"]))
    # The contract names no class for this controller-side check: FamilyMismatch or
    # InvalidRequest (see notes); the message is MetalLB's.
    assert isinstance(err, (core.FamilyMismatch, core.InvalidRequest))
    assert (
        err.message
        == 'requested loadBalancer IP(s) ["1.2.3.4"] does not match the ipFamily of the service'
    )


def test_requested_ips_must_belong_to_the_requested_pool() -> None:
    state = core.State.empty(config(pool("pool1", "1.2.3.0/31"), pool("pool2", "3.4.5.6/32")))
    err = fail(state, request("s1", requested=["1.2.3.1"], pool="pool2"))
    assert err.message == (
        'requested loadBalancer IP(s) ["1.2.3.1"] '
        "is not compatible with requested address pool pool2"
    )


def test_requested_ips_from_the_requested_pool_are_assigned() -> None:
    state = core.State.empty(config(pool("pool1", "1.2.3.0/31"), pool("pool2", "3.4.5.6/32")))
    _, got = succeed(state, request("s1", requested=["3.4.5.6"], pool="pool2"))
    assert (got.pool, tuple(got.ips)) == ("pool2", ips("3.4.5.6"))


def test_two_requested_ips_of_one_family_are_refused() -> None:
    state = core.State.empty(config(pool("test", "1.2.3.4/31")))
    err = fail(
        state, request("s1", "dual", policy="RequireDualStack", requested=["1.2.3.4", "1.2.3.5"])
    )
    # Assign's wording, or the controller's family check that runs before it in MetalLB.
    assert err.message in {
        '"1.2.3.4" "1.2.3.5" has the same family',
        'IPFamilyForAddresses: same address family ["1.2.3.4" "1.2.3.5"]',
        'requested loadBalancer IP(s) ["1.2.3.4" "1.2.3.5"] '
        "does not match the ipFamily of the service",
    }


def test_excluded_address_is_never_handed_out() -> None:
    state = core.State.empty(config(pool("test", "1.2.3.0/30", exclude=["1.2.3.0", "1.2.3.2"])))
    state, first = succeed(state, request("s1"))
    _, second = succeed(state, request("s2"))
    assert (tuple(first.ips), tuple(second.ips)) == (ips("1.2.3.1"), ips("1.2.3.3"))


def test_excluded_address_cannot_be_requested() -> None:
    state = core.State.empty(config(pool("test", "1.2.3.0/30", exclude=["1.2.3.1"])))
    err = fail(state, request("s1", requested=["1.2.3.1"]))
    assert isinstance(err, core.NotAllowedByConfig)
    assert err.message == '["1.2.3.1"] is not allowed in config'


def test_ipv6_addresses_ending_in_zero_are_not_buggy() -> None:
    state = core.State.empty(config(pool("test2", "1000::4:0/120", avoid_buggy_ips=True)))
    _, got = succeed(state, request("s1", "ipv6"))
    assert tuple(got.ips) == ips("1000::4:0")


# ---- dual-stack pool choice (docs/design/metallb-behaviour.md §6.4, §6.5) ------------------------


def single_family_pools() -> core.Config:
    return config(pool("v4", "10.0.0.0/30"), pool("v6", "1000::/126"))


def test_prefer_dual_stack_takes_a_dual_pool_over_earlier_single_family_pools() -> None:
    state = core.State.empty(
        config(
            pool("v4", "10.0.0.0/30"),
            pool("v6", "1000::/126"),
            pool("dual", "10.9.0.0/30", "1009::/126"),
        )
    )
    _, got = succeed(state, request("s1", "dual", policy="PreferDualStack"))
    assert (got.pool, tuple(got.ips)) == ("dual", ips("10.9.0.0", "1009::"))


def test_prefer_dual_stack_without_dual_pool_takes_the_primary_family() -> None:
    state = core.State.empty(single_family_pools())
    _, got = succeed(state, request("s1", "dual", policy="PreferDualStack", primary="ipv4"))
    assert (got.pool, tuple(got.ips)) == ("v4", ips("10.0.0.0"))


def test_prefer_dual_stack_with_ipv6_primary_takes_the_ipv6_pool() -> None:
    state = core.State.empty(single_family_pools())
    _, got = succeed(state, request("s1", "dual", policy="PreferDualStack", primary="ipv6"))
    assert (got.pool, tuple(got.ips)) == ("v6", ips("1000::"))


def test_prefer_dual_stack_takes_the_secondary_family_when_primary_has_none() -> None:
    state = core.State.empty(config(pool("v6", "1000::/126")))
    _, got = succeed(state, request("s1", "dual", policy="PreferDualStack", primary="ipv4"))
    assert (got.pool, tuple(got.ips)) == ("v6", ips("1000::"))


def test_require_dual_stack_without_a_dual_pool_fails() -> None:
    err = fail(
        core.State.empty(single_family_pools()), request("s1", "dual", policy="RequireDualStack")
    )
    assert isinstance(err, core.NoAvailableIPs)
    assert err.message == "no available IPs"


def test_dual_family_with_single_stack_policy_is_not_allocated() -> None:
    state = core.State.empty(config(pool("dual", "10.9.0.0/30", "1009::/126")))
    err = fail(state, request("s1", "dual", policy="SingleStack"))
    assert err.message == "no available IPs"


def test_dual_family_with_single_stack_policy_from_named_pool_is_not_allocated() -> None:
    state = core.State.empty(config(pool("dual", "10.9.0.0/30", "1009::/126")))
    err = fail(state, request("s1", "dual", policy="SingleStack", pool="dual"))
    assert err.message == "no available IPs in pool dual for dual IPFamily"


def test_dual_stack_result_lists_ipv4_first_even_with_ipv6_primary() -> None:
    state = core.State.empty(config(pool("dual", "10.9.0.0/30", "1009::/126")))
    _, got = succeed(state, request("s1", "dual", policy="RequireDualStack", primary="ipv6"))
    assert tuple(got.ips) == ips("10.9.0.0", "1009::")


def test_dual_pool_wins_only_within_the_pinned_candidate_list() -> None:
    # The pinned list holds only an IPv4 pool: a PreferDualStack service gets IPv4 from it,
    # although an unrestricted dual-stack pool exists.
    state = core.State.empty(
        config(
            pool("dual", "10.9.0.0/30", "1009::/126"),
            pool("pinned-v4", "10.1.0.0/30", namespaces=["ns1"]),
        )
    )
    _, got = succeed(state, request("ns1/a", "dual", policy="PreferDualStack", namespace="ns1"))
    assert (got.pool, tuple(got.ips)) == ("pinned-v4", ips("10.1.0.0"))


def test_single_family_request_skips_pools_without_that_family() -> None:
    state = core.State.empty(config(pool("v4", "10.0.0.0/30"), pool("v6", "1000::/126")))
    _, got = succeed(state, request("s1", "ipv6"))
    assert (got.pool, tuple(got.ips)) == ("v6", ips("1000::"))


# ---- existing allocations, sharing, release -------------------------------------------


def test_key_keeps_its_allocation_when_a_lower_address_frees_up() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1"))
    state, _ = succeed(state, request("s2"))
    state = core.release(state, "s1")
    _, got = succeed(state, request("s2"))
    assert tuple(got.ips) == ips("10.0.0.1")


def test_key_keeps_its_ip_when_its_ports_change() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"]))
    _, got = succeed(state, request("s1", ports=["tcp/443"]))
    assert tuple(got.ips) == ips("10.0.0.0")
    assert [(p.protocol, p.port) for p in got.ports] == [("tcp", 443)]


def test_reallocating_an_identical_request_is_idempotent() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"], sharing="k"))
    again, _ = succeed(state, request("s1", ports=["tcp/80"], sharing="k"))
    assert snapshot(again) == snapshot(state)


def test_same_port_number_on_another_protocol_can_share() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/53"], sharing="dns"))
    _, got = succeed(state, request("s2", ports=["udp/53"], sharing="dns"))
    assert tuple(got.ips) == ips("10.0.0.0")


def test_sharing_needs_a_key_on_both_services() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"]))
    _, got = succeed(state, request("s2", ports=["tcp/443"], sharing="k"))
    assert tuple(got.ips) == ips("10.0.0.1")


def test_services_with_different_backend_keys_do_not_share() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"], sharing="k", backend="app=a"))
    _, got = succeed(state, request("s2", ports=["tcp/443"], sharing="k", backend="app=b"))
    assert tuple(got.ips) == ips("10.0.0.1")


def test_services_with_equal_keys_share_the_first_address() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"], sharing="k", backend="app=a"))
    _, got = succeed(state, request("s2", ports=["tcp/443"], sharing="k", backend="app=a"))
    assert tuple(got.ips) == ips("10.0.0.0")


def test_sharing_service_with_a_clashing_port_takes_the_next_address() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"], sharing="k"))
    _, got = succeed(state, request("s2", ports=["tcp/80"], sharing="k"))
    assert tuple(got.ips) == ips("10.0.0.1")


def test_sole_holder_may_change_its_sharing_key_in_place() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"], sharing="a", requested=["10.0.0.2"]))
    _, got = succeed(state, request("s1", ports=["tcp/80"], sharing="b", requested=["10.0.0.2"]))
    assert (tuple(got.ips), got.sharing_key) == (ips("10.0.0.2"), "b")


def test_shared_ip_stays_taken_while_one_sharer_remains() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1", ports=["tcp/80"], sharing="k"))
    state, _ = succeed(state, request("s2", ports=["tcp/443"], sharing="k"))
    state = core.release(state, "s1")
    _, got = succeed(state, request("s3", ports=["tcp/22"]))
    assert tuple(got.ips) == ips("10.0.0.1")


def test_released_ip_is_reused_lowest_first() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/29")))
    for key in ("s1", "s2", "s3"):
        state, _ = succeed(state, request(key))
    state = core.release(state, "s2")
    _, got = succeed(state, request("s4"))
    assert tuple(got.ips) == ips("10.0.0.1")


def test_release_of_an_unknown_key_changes_nothing() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1"))
    assert snapshot(core.release(state, "nobody")) == snapshot(state)


def test_release_leaves_the_old_state_unchanged() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(state, request("s1"))
    before = snapshot(state)
    new = core.release(state, "s1")
    assert new.allocation("s1") is None
    assert snapshot(state) == before


def test_allocation_leaves_the_old_state_unchanged() -> None:
    empty = core.State.empty(config(pool("test", "10.0.0.0/30")))
    succeed(empty, request("s1"))
    assert empty.allocation("s1") is None
    assert dict(empty.allocations) == {}


def test_allocations_view_cannot_be_used_to_change_the_state() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, held = succeed(state, request("s1"))
    view = cast(dict[str, core.Allocation], state.allocations)
    with contextlib.suppress(TypeError, AttributeError):
        view["s2"] = held
    with contextlib.suppress(TypeError, AttributeError, KeyError):
        del view["s1"]
    assert state.allocation("s2") is None
    assert state.allocation("s1") is not None


def test_empty_state_holds_its_config_and_no_allocation() -> None:
    cfg = config(pool("test", "10.0.0.0/30"))
    state = core.State.empty(cfg)
    assert [p.name for p in state.config.pools] == ["test"]
    assert dict(state.allocations) == {}


def test_state_records_the_request_keys_and_ports() -> None:
    state = core.State.empty(config(pool("test", "10.0.0.0/30")))
    state, _ = succeed(
        state, request("ns/a", ports=["TCP/80", "UDP/53"], sharing="k", backend="app=a")
    )
    assert snapshot(state) == {
        "ns/a": (ips("10.0.0.0"), "test", (("TCP", 80), ("UDP", 53)), "k", "app=a")
    }


@pytest.mark.parametrize(
    "name",
    [
        "NoAvailableIPs",
        "UnknownPool",
        "NotAllowedByConfig",
        "PoolNotCompatible",
        "SharingConflict",
        "PortConflict",
        "FamilyMismatch",
        "InvalidRequest",
    ],
)
def test_every_expected_failure_is_an_allocation_error(name: str) -> None:
    assert issubclass(getattr(core, name), core.AllocationError)


@pytest.mark.parametrize("name", ["ConfigError", "InvalidService"])
def test_boundary_errors_are_value_errors(name: str) -> None:
    assert issubclass(getattr(core, name), ValueError)
