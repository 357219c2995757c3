"""The allocation benchmark's functions, at a tiny size: core and baseline must agree.

These are correctness checks of the comparison (both allocators hand out the same addresses,
so the benchmark compares like with like), never timing assertions.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metallb_core as core
from benchmarks.baseline_firstfit import (
    FirstFitAllocator,
    FirstFitError,
    FirstFitPool,
)
from benchmarks.core_allocation import (
    IPV4_BIG,
    IPV6_BIG,
    Sizes,
    allocate_baseline,
    allocate_core,
    baseline_empty,
    baseline_filled,
    core_empty,
    core_requests,
    family_of,
    first_addresses,
    next_baseline,
    next_core,
    release_baseline,
    release_core,
    run_all,
    service_keys,
)

TINY = Sizes(
    sequential=60,
    fill=40,
    next_probes=3,
    baseline_next_probes=2,
    cold_start=30,
    memory=20,
    repeats=1,
)


@pytest.mark.parametrize("cidr", [IPV4_BIG, IPV6_BIG])
def test_sequential_allocations_agree_with_the_baseline(cidr: str) -> None:
    keys = service_keys(60)
    _, _, core_addresses = allocate_core(core_empty(cidr), core_requests(keys, family_of(cidr)))
    _, base_addresses = allocate_baseline(baseline_empty(cidr), keys, family_of(cidr))
    assert core_addresses == base_addresses


@pytest.mark.parametrize("cidr", [IPV4_BIG, IPV6_BIG])
def test_sequential_allocations_are_the_first_addresses_of_the_pool(cidr: str) -> None:
    keys = service_keys(10)
    _, _, addresses = allocate_core(core_empty(cidr), core_requests(keys, family_of(cidr)))
    assert addresses == first_addresses(cidr, 10)
    assert addresses[1] == str(ip_address(addresses[0]) + 1)


@pytest.mark.parametrize("cidr", ["10.1.0.0/26", "2001:db8::/120"])
def test_next_allocation_into_a_filled_pool_agrees_with_the_baseline(cidr: str) -> None:
    keys = service_keys(40)
    family = family_of(cidr)
    _, state, _ = allocate_core(core_empty(cidr), core_requests(keys, family))
    [newcomer] = core_requests(["bench/newcomer"], family)
    _, core_address = next_core(state, newcomer, probes=2)
    _, base_address = next_baseline(baseline_filled(cidr, keys), "bench/newcomer", family, 2)
    assert core_address == base_address == first_addresses(cidr, 41)[40]


def test_baseline_next_allocation_leaves_the_baseline_unchanged() -> None:
    keys = service_keys(5)
    allocator = baseline_filled("10.1.0.0/29", keys)
    next_baseline(allocator, "bench/newcomer", "ipv4", probes=3)
    assert len(allocator) == 5
    assert allocator.allocation("bench/newcomer") is None


def test_reallocation_after_shuffled_releases_agrees_with_the_baseline() -> None:
    cidr = "10.1.0.0/24"
    keys = service_keys(50)
    gone = random.Random(7).sample(keys, 20)
    _, full, _ = allocate_core(core_empty(cidr), core_requests(keys, "ipv4"))
    _, after = release_core(full, gone)
    allocator = baseline_filled(cidr, keys)
    release_baseline(allocator, gone)
    newcomers = service_keys(25, "new")
    _, _, core_addresses = allocate_core(after, core_requests(newcomers, "ipv4"))
    _, base_addresses = allocate_baseline(allocator, newcomers, "ipv4")
    assert core_addresses == base_addresses


def test_core_release_of_everything_leaves_no_allocation() -> None:
    keys = service_keys(30)
    _, full, _ = allocate_core(core_empty(IPV4_BIG), core_requests(keys, "ipv4"))
    _, empty = release_core(full, list(reversed(keys)))
    assert len(empty.allocations) == 0
    assert core.pool_usage(empty)["bench"].assigned_ipv4 == 0


def test_tiny_run_has_every_target_and_no_disagreement() -> None:
    rows = run_all(TINY)
    targets = [r.target for r in rows if r.target is not None]
    assert targets == [
        ">= 50,000/s",
        ">= 50,000/s",
        ">= 200x faster",
        ">= 100,000/s",
        "<= 300 MB",
        "<= 300 MB",
    ]
    assert [note for r in rows for note in r.notes] == []


# -- a differential check of the baseline itself, with sharing, ports and buggy addresses ----

POOL_CIDRS = ("10.0.0.0/29", "10.0.1.254/31")
Op = tuple[str, int, int, str]  # ("allocate" | "release", service, port, sharing key)

ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(["allocate", "allocate", "release"]),
        st.integers(0, 9),
        st.sampled_from([80, 443]),
        st.sampled_from(["", "", "s1"]),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops_strategy, avoid_buggy=st.booleans())
def test_baseline_and_core_agree_on_every_step(ops: list[Op], avoid_buggy: bool) -> None:
    state = core.State.empty(
        core.Config(
            pools=[core.Pool(name="p", cidrs=list(POOL_CIDRS), avoid_buggy_ips=avoid_buggy)]
        )
    )
    allocator = FirstFitAllocator([FirstFitPool("p", POOL_CIDRS, avoid_buggy_ips=avoid_buggy)])
    for action, service, port, sharing in ops:
        key = f"ns/s{service}"
        if action == "release":
            state = core.release(state, key)
            allocator.release(key)
            continue
        request = core.ServiceRequest(
            key=key, ports=[core.Port(protocol="TCP", port=port)], sharing_key=sharing
        )
        state, outcome = core.allocate(state, request)
        try:
            base: list[str] | None = [
                str(ip) for ip in allocator.allocate(key, "ipv4", [("TCP", port)], sharing)
            ]
        except FirstFitError:
            base = None
        ours = [str(ip) for ip in outcome.ips] if isinstance(outcome, core.Allocation) else None
        assert ours == base, (action, key, port, sharing)


@pytest.mark.parametrize("count", [1, 7, 60])
def test_speaker_rules_benchmark_compares_like_with_like(count: int) -> None:
    # The core's round and the former inline round want and serve the same pairs.
    from benchmarks.speaker_rules import outcomes

    ours, theirs = outcomes(count)
    assert ours == theirs
    assert ours[0]  # something is wanted: the comparison is not vacuous


# -- the ARP/NS line-rate benchmark, as a smoke run in network namespaces ---------------------


@pytest.mark.netns
def test_arp_line_rate_quick_run_measures_the_kernel_and_the_announcer(tmp_path: Path) -> None:
    """A tiny run: both responders answer in the benchmark's lab, each answer is matched
    to its request (no stray or duplicate answers), and the verdict lines are printed.
    Not a timing check: the figures themselves are for the benchmark to report."""
    if os.geteuid() != 0:
        reason = "needs root (network namespaces)"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is a failure)")
        pytest.skip(reason)
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.arp_line_rate", "--quick", "--json", str(out)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    kinds = [(r["family"], r["responder"], r["load"]) for r in rows]
    busy = "announcer, busy-poll 2000 us"
    assert sorted(kinds) == sorted(
        [
            (family, responder, load)
            for family in ("ARP", "NS")
            for responder in ("kernel", "announcer")
            for load in ("idle", "2 busy processes")
        ]
        + [
            (family, responder, "idle")
            for family in ("ARP", "NS")
            for responder in ("kernel", busy)
        ]
    )
    for row in rows:
        assert row["sent"] == 300, row  # 1,000/s for 0.3 s, every request captured
        assert row["answered_pct"] > 0, row
        assert row["duplicates"] == 0, row
        assert row["p50_us"] is not None, row
        assert row["seen_p50_us"] is not None, row
    assert all(row["announcer_cpu_pct"] >= 0 for row in rows)
    assert "p50 <= 3x the kernel's, ARP 1,000/s, 2 addresses, idle:" in result.stdout
    assert "p50 <= 3x the kernel's, ARP 1,000/s, 2 addresses, idle, busy-poll 2000 us:" in (
        result.stdout
    )
