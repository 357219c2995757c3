"""``State.__eq__`` against the previous implementation, which copied every record (issue 13).

Run from the repository root::

    python -m benchmarks.state_equality [--allocations 50000] [--repeats 5]

The baseline is the comparison ``State.__eq__`` made before: the configurations, then two
dicts built from every record of each state. Both run side by side in this process on the
same states, and each row checks that they agree. Times are CPU time of this process
(:func:`time.process_time`), best of ``--repeats``, per comparison.

Rows: a state with itself; with its successor after an allocation and a release (equal,
sharing all but one path); with one where one Service moved (same size, one record
differs); with one holding one more Service; and with an equal state built in another
order (different tree shapes: the slowest case, a walk of both).
"""

from __future__ import annotations

import argparse
import operator
import random
import time
from collections.abc import Callable
from functools import partial
from ipaddress import ip_address

import metallb_core as core

CONFIG = core.Config(pools=[core.Pool(name="p", cidrs=["10.0.0.0/14"])])


def baseline_eq(a: core.State, b: core.State) -> bool:
    """The comparison before issue 13: copy every record of both states into dicts."""
    return a.config == b.config and dict(a._allocs.items()) == dict(b._allocs.items())


def build(keys: list[int]) -> core.State:
    """Service ``ns/s<k>`` holds the ``k``-th address of the pool, allocated in this order."""
    state = core.State.empty(CONFIG)
    first = ip_address("10.0.0.0")
    for k in keys:
        request = core.ServiceRequest(key=f"ns/s{k:06}", requested_ips=[str(first + k)])
        state, result = core.allocate(state, request)
        assert not isinstance(result, core.AllocationError), result
    return state


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def cases(n: int) -> list[tuple[str, core.State, core.State]]:
    keys = list(range(n))
    state = build(keys)
    extra, _ = core.allocate(state, core.ServiceRequest(key="ns/extra"))
    successor = core.release(extra, "ns/extra")
    moved, _ = core.allocate(
        core.release(state, f"ns/s{n // 2:06}"),
        core.ServiceRequest(key=f"ns/s{n // 2:06}", requested_ips=[str(ip_address("10.3.0.0"))]),
    )
    shuffled = list(keys)
    random.Random(13).shuffle(shuffled)
    return [
        ("itself", state, state),
        ("successor, equal", state, successor),
        ("one Service moved", state, moved),
        ("one Service more", state, extra),
        ("equal, built in another order", state, build(shuffled)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"State equality at {args.allocations:,} allocations (CPU time per comparison)")
    print(f"{'case':32} {'equal':>6} {'baseline':>12} {'State.__eq__':>14} {'speed-up':>10}")
    for name, a, b in cases(args.allocations):
        expected = baseline_eq(a, b)
        assert (a == b) == expected, name
        old = best(partial(baseline_eq, a, b), args.repeats)
        new = best(partial(operator.eq, a, b), args.repeats)
        ratio = f"{old / new:,.0f}x" if new > 0 else "-"
        print(f"{name:32} {expected!s:>6} {old * 1e3:9.3f} ms {new * 1e3:11.3f} ms {ratio:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
