"""Allocation benchmark: ``metallb_core`` against a naive first-fit allocator (issue 2).

Run from the repository root, on an otherwise quiet machine::

    python -m benchmarks.core_allocation [--repeats 3]

Both allocators run side by side in this one process on the same inputs: Services with one
port (``TCP/80``), no sharing key, single-stack. The baseline is
:class:`benchmarks.baseline_firstfit.FirstFitAllocator`, MetalLB main's algorithm (per-address
dictionaries, first fit from the start of the pool). Times are CPU time of this process
(:func:`time.process_time`, so other processes on the machine do not count), best of
``--repeats`` runs, with the garbage collector enabled as it is in a controller (collected
before each run). Requests are built before the clock starts: only ``allocate`` (which returns
the new state: the commit) and ``release`` are timed; the timed loop keeps the state and drops
each returned allocation, as a controller does once the status is written, and the addresses
are checked from the final state afterwards. Memory is what :mod:`tracemalloc` sees
still allocated once the allocations are made and everything else is dropped.

Every row also checks that the two allocators handed out the same addresses, so a fast wrong
answer cannot pass. The exit status is 0 when every target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import metallb_core as core
from benchmarks.baseline_firstfit import FirstFitAllocator, FirstFitPool

PORT = ("TCP", 80)
CORE_PORTS = (core.Port(protocol="TCP", port=80),)
BASELINE_PORTS = (PORT,)

IPV4_BIG = "10.0.0.0/8"
IPV6_BIG = "2001:db8::/64"
IPV4_SLASH16 = "10.1.0.0/16"


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is; the defaults are the targets of issue 2."""

    sequential: int = 100_000
    """Allocations made one after the other into an empty /8 and /64, and then released."""
    fill: int = 65_000
    """Allocations already held in the /16 when the next one is timed."""
    next_probes: int = 2_000
    """Next allocations timed per run for the core (the state is immutable: same work each)."""
    baseline_next_probes: int = 5
    """Next allocations timed per run for the baseline (each is undone, untimed)."""
    cold_start: int = 5_000
    """Pending Services allocated into an empty /8 by both: the baseline's O(n^2) case."""
    memory: int = 100_000
    """Allocations held when memory is measured."""
    repeats: int = 3


# -- inputs ---------------------------------------------------------------------------------


Family = Literal["ipv4", "ipv6"]


def family_of(cidr: str) -> Family:
    """``ipv4`` or ``ipv6`` for a CIDR string."""
    return "ipv4" if ipaddress.ip_network(cidr).version == 4 else "ipv6"


def service_keys(n: int, prefix: str = "svc") -> list[str]:
    """``n`` distinct Service keys, ``bench/<prefix>-<i>``."""
    return [f"bench/{prefix}-{i}" for i in range(n)]


def core_requests(keys: Sequence[str], family: Family) -> list[core.ServiceRequest]:
    """One single-stack request per key, each with the port ``TCP/80``."""
    return [core.ServiceRequest(key=k, family=family, ports=CORE_PORTS) for k in keys]


def core_empty(cidr: str) -> core.State:
    """An empty core state with one auto-assign pool ``bench`` holding ``cidr``."""
    return core.State.empty(core.Config(pools=[core.Pool(name="bench", cidrs=[cidr])]))


def baseline_empty(cidr: str) -> FirstFitAllocator:
    """An empty baseline with one auto-assign pool ``bench`` holding ``cidr``."""
    return FirstFitAllocator([FirstFitPool("bench", (cidr,))])


def baseline_filled(cidr: str, keys: Sequence[str]) -> FirstFitAllocator:
    """A baseline where ``keys[i]`` holds the i-th address of ``cidr``.

    It is built with explicit ``assign`` calls, as MetalLB restores the addresses recorded in
    Service status at start-up; filling it by ``allocate`` would cost O(n^2) probes.
    """
    allocator = baseline_empty(cidr)
    first = ipaddress.ip_network(cidr).network_address
    for i, key in enumerate(keys):
        allocator.assign(key, [first + i], BASELINE_PORTS)
    return allocator


# -- timed operations -----------------------------------------------------------------------


def cpu_seconds(action: Callable[[], object]) -> float:
    """CPU time of this process spent in ``action()``, after a collection."""
    gc.collect()
    start = time.process_time()
    action()
    return time.process_time() - start


def allocate_core(
    state: core.State, requests: Sequence[core.ServiceRequest]
) -> tuple[float, core.State, list[str]]:
    """Allocate ``requests`` one after the other: (CPU seconds, final state, addresses).

    The timed loop keeps the states and drops each returned allocation, as a controller does
    once it has written the Service's status; the addresses are read from the final state
    afterwards, in request order. (Keeping every returned allocation alive until the end
    would add five objects per allocation for the garbage collector to visit: the harness's
    cost, not the allocator's.)
    """
    refused: list[core.AllocationError] = []
    final = state

    def run() -> None:
        nonlocal final
        s = state
        for request in requests:
            s, outcome = core.allocate(s, request)
            if isinstance(outcome, core.AllocationError):
                refused.append(outcome)
        final = s

    seconds = cpu_seconds(run)
    if refused:
        raise RuntimeError(f"core refused a benchmark allocation: {refused[0].message}")
    addresses: list[str] = []
    for request in requests:
        held = final.allocation(request.key)
        assert held is not None, request.key
        addresses.extend(str(ip) for ip in held.ips)
    return seconds, final, addresses


def allocate_baseline(
    allocator: FirstFitAllocator, keys: Sequence[str], family: Family
) -> tuple[float, list[str]]:
    """Allocate ``keys`` one after the other in the baseline: (CPU seconds, addresses).

    As for the core, the timed loop drops what ``allocate`` returns; the addresses are read
    from the allocator afterwards.
    """

    def run() -> None:
        for key in keys:
            allocator.allocate(key, family, BASELINE_PORTS)

    seconds = cpu_seconds(run)
    addresses: list[str] = []
    for key in keys:
        held = allocator.allocation(key)
        assert held is not None, key
        addresses.extend(str(ip) for ip in held)
    return seconds, addresses


def release_core(state: core.State, keys: Sequence[str]) -> tuple[float, core.State]:
    """Release ``keys`` one after the other: (CPU seconds, final state)."""
    final = state

    def run() -> None:
        nonlocal final
        s = state
        for key in keys:
            s = core.release(s, key)
        final = s

    return cpu_seconds(run), final


def release_baseline(allocator: FirstFitAllocator, keys: Sequence[str]) -> float:
    """Release ``keys`` one after the other in the baseline (mutated): CPU seconds."""

    def run() -> None:
        for key in keys:
            allocator.release(key)

    return cpu_seconds(run)


def next_core(state: core.State, request: core.ServiceRequest, probes: int) -> tuple[float, str]:
    """CPU seconds of one allocation of ``request`` from ``state`` (mean of ``probes``)."""
    outcome: core.Allocation | core.AllocationError | None = None

    def run() -> None:
        nonlocal outcome
        for _ in range(probes):
            _, outcome = core.allocate(state, request)

    seconds = cpu_seconds(run) / probes
    if not isinstance(outcome, core.Allocation):
        raise RuntimeError(f"core refused the next allocation: {outcome}")
    return seconds, ",".join(str(ip) for ip in outcome.ips)


def next_baseline(
    allocator: FirstFitAllocator, key: str, family: Family, probes: int
) -> tuple[float, str]:
    """CPU seconds of one baseline allocation of ``key`` (mean of ``probes``, each undone)."""
    total = 0.0
    address = ""
    for _ in range(probes):
        gc.collect()
        start = time.process_time()
        ips = allocator.allocate(key, family, BASELINE_PORTS)
        total += time.process_time() - start
        allocator.release(key)
        address = ",".join(str(ip) for ip in ips)
    return total / probes, address


def held_bytes_core(cidr: str, n: int) -> int:
    """Bytes still allocated (tracemalloc) by a core state holding ``n`` allocations."""
    family = family_of(cidr)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        state = core_empty(cidr)
        keys = service_keys(n)
        for key in keys:
            request = core.ServiceRequest(key=key, family=family, ports=CORE_PORTS)
            state, outcome = core.allocate(state, request)
            assert isinstance(outcome, core.Allocation), outcome
        del keys, request, outcome
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(state.allocations) == n
    return held


def held_bytes_baseline(cidr: str, n: int) -> int:
    """Bytes still allocated (tracemalloc) by a baseline holding ``n`` allocations."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        allocator = baseline_filled(cidr, service_keys(n))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(allocator) == n
    return held


# -- rows -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table; ``target`` is ``None`` for an informative row."""

    name: str
    core: str
    baseline: str
    versus: str
    target: str | None
    passed: bool | None
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL``, or ``info``."""
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


def best(runs: Sequence[float]) -> float:
    """The best (smallest) of several timings."""
    return min(runs)


def rate(n: int, seconds: float) -> str:
    """``n / seconds`` as a rounded per-second figure."""
    return f"{n / seconds:,.0f}/s"


def micro(seconds: float) -> str:
    """Seconds as microseconds or milliseconds, whichever reads better."""
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.1f} us"


def mib(n_bytes: float) -> str:
    """Bytes as MB (10^6 bytes, as the target is written)."""
    return f"{n_bytes / 1e6:,.1f} MB"


def first_addresses(cidr: str, n: int) -> list[str]:
    """The first ``n`` addresses of ``cidr``: what first fit hands out into an empty pool."""
    first = ipaddress.ip_network(cidr).network_address
    return [str(first + i) for i in range(n)]


def sequential_row(cidr: str, sizes: Sizes) -> tuple[Row, core.State, list[str]]:
    """``sizes.sequential`` allocations into an empty ``cidr``; returns the last state too.

    Running the baseline on this many would take O(n^2) probes (hours); its addresses are
    known though, the first ``n`` of the pool, and the core's are checked against them.
    """
    family = family_of(cidr)
    keys = service_keys(sizes.sequential)
    requests = core_requests(keys, family)
    timings: list[float] = []
    state = core_empty(cidr)
    addresses: list[str] = []
    for _ in range(sizes.repeats):
        seconds, state, addresses = allocate_core(core_empty(cidr), requests)
        timings.append(seconds)
    per_second = sizes.sequential / best(timings)
    row = Row(
        name=f"allocate+commit, {sizes.sequential:,} sequential into {cidr}",
        core=f"{per_second:,.0f}/s",
        baseline="O(n^2): see cold start",
        versus="",
        target=">= 50,000/s",
        passed=per_second >= 50_000,
    )
    if addresses != first_addresses(cidr, sizes.sequential):
        row.passed = False
        row.notes.append("the core did not hand out the pool's first addresses in order")
    return row, state, keys


def cold_start_row(cidr: str, sizes: Sizes) -> Row:
    """``sizes.cold_start`` pending Services into an empty ``cidr``, in both allocators."""
    family = family_of(cidr)
    keys = service_keys(sizes.cold_start, "pending")
    requests = core_requests(keys, family)
    core_runs, base_runs = [], []
    core_addresses: list[str] = []
    base_addresses: list[str] = []
    for _ in range(sizes.repeats):
        seconds, _, core_addresses = allocate_core(core_empty(cidr), requests)
        core_runs.append(seconds)
        seconds, base_addresses = allocate_baseline(baseline_empty(cidr), keys, family)
        base_runs.append(seconds)
    c, b = best(core_runs), best(base_runs)
    row = Row(
        name=f"cold start: {sizes.cold_start:,} pending Services into {cidr}",
        core=f"{micro(c)} total",
        baseline=f"{micro(b)} total",
        versus=f"{b / c:,.0f}x faster",
        target=None,
        passed=None,
    )
    if core_addresses != base_addresses:
        row.passed = False
        row.notes.append("core and baseline handed out different addresses")
    return row


def next_allocation_row(cidr: str, fill: int, sizes: Sizes, target: float | None) -> Row:
    """The next allocation into ``cidr`` already holding ``fill`` sequential allocations."""
    family = family_of(cidr)
    keys = service_keys(fill)
    state = core_empty(cidr)
    for request in core_requests(keys, family):
        state, outcome = core.allocate(state, request)
        assert isinstance(outcome, core.Allocation), outcome
    newcomer = "bench/newcomer"
    [request] = core_requests([newcomer], family)
    core_times: list[float] = []
    core_address = ""
    for _ in range(sizes.repeats):
        seconds, core_address = next_core(state, request, sizes.next_probes)
        core_times.append(seconds)
    del state
    allocator = baseline_filled(cidr, keys)
    base_times: list[float] = []
    base_address = ""
    for _ in range(sizes.repeats):
        seconds, base_address = next_baseline(
            allocator, newcomer, family, sizes.baseline_next_probes
        )
        base_times.append(seconds)
    c, b = best(core_times), best(base_times)
    speedup = b / c
    row = Row(
        name=f"next allocation, {cidr} holding {fill:,}",
        core=micro(c),
        baseline=micro(b),
        versus=f"{speedup:,.0f}x faster",
        target=None if target is None else f">= {target:,.0f}x faster",
        passed=None if target is None else speedup >= target,
    )
    if core_address != base_address:
        row.passed = False
        row.notes.append(f"next address differs: core {core_address}, baseline {base_address}")
    return row


def release_row(cidr: str, state: core.State, keys: Sequence[str], sizes: Sizes) -> Row:
    """Release every allocation of ``state`` (sequential into ``cidr``), in shuffled order."""
    order = list(keys)
    random.Random(2).shuffle(order)
    core_runs: list[float] = []
    base_runs: list[float] = []
    final = state
    for _ in range(sizes.repeats):
        seconds, final = release_core(state, order)
        core_runs.append(seconds)
        allocator = baseline_filled(cidr, keys)
        base_runs.append(release_baseline(allocator, order))
        del allocator
    c, b = best(core_runs), best(base_runs)
    per_second = len(order) / c
    row = Row(
        name=f"release, {len(order):,} in shuffled order from {cidr}",
        core=f"{per_second:,.0f}/s",
        baseline=rate(len(order), b),
        versus=f"{b / c:,.2f}x",
        target=">= 100,000/s",
        passed=per_second >= 100_000,
    )
    usage = core.pool_usage(final)["bench"]
    if len(final.allocations) != 0 or usage.assigned_ipv4 or usage.assigned_ipv6:
        row.passed = False
        row.notes.append("the core state is not empty after releasing everything")
    return row


def memory_row(cidr: str, sizes: Sizes) -> Row:
    """Memory held by ``sizes.memory`` allocations in ``cidr``, core and baseline."""
    c = held_bytes_core(cidr, sizes.memory)
    b = held_bytes_baseline(cidr, sizes.memory)
    return Row(
        name=f"memory, {sizes.memory:,} allocations held in {cidr}",
        core=f"{mib(c)} ({c / sizes.memory:,.0f} B each)",
        baseline=f"{mib(b)} ({b / sizes.memory:,.0f} B each)",
        versus=f"{c / b:,.2f}x the baseline",
        target="<= 300 MB",
        passed=c <= 300e6,
    )


def run_all(sizes: Sizes, progress: Callable[[str], None] = lambda _: None) -> list[Row]:
    """Every scenario, in table order."""
    rows: list[Row] = []
    progress(f"sequential {IPV4_BIG}")
    row, state_v4, keys_v4 = sequential_row(IPV4_BIG, sizes)
    rows.append(row)
    progress(f"sequential {IPV6_BIG}")
    rows.append(sequential_row(IPV6_BIG, sizes)[0])
    progress("cold start")
    rows.append(cold_start_row(IPV4_BIG, sizes))
    progress(f"next allocation {IPV4_SLASH16}")
    rows.append(next_allocation_row(IPV4_SLASH16, sizes.fill, sizes, target=200))
    progress(f"next allocation {IPV6_BIG}")
    rows.append(next_allocation_row(IPV6_BIG, sizes.sequential, sizes, target=None))
    progress("release")
    rows.append(release_row(IPV4_BIG, state_v4, keys_v4, sizes))
    del state_v4
    progress("memory")
    rows.append(memory_row(IPV4_BIG, sizes))
    rows.append(memory_row(IPV6_BIG, sizes))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table, notes below it."""
    header = ("scenario", "metallb_core", "first-fit baseline", "core vs baseline", "target", "")
    cells = [header] + [
        (r.name, r.core, r.baseline, r.versus, r.target or "-", r.status) for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
        lines.extend(f"! {r.name}: {note}" for note in r.notes)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table; 0 when every target passes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=Sizes.repeats, help="best of N runs")
    args = parser.parse_args(argv)
    sizes = Sizes(repeats=args.repeats)
    started = time.monotonic()
    rows = run_all(
        sizes,
        progress=lambda what: print(
            f"[{time.monotonic() - started:5.0f} s] {what}", file=sys.stderr, flush=True
        ),
    )
    print(f"Python {sys.version.split()[0]}, CPU time, best of {sizes.repeats}")
    print(format_table(rows))
    print(f"({time.monotonic() - started:,.0f} s in all)")
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
