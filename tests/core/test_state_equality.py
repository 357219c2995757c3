"""State equality: the same configuration and allocations, however the states were built.

``State.__eq__`` compares the persistent maps structurally (skipping shared subtrees) instead
of copying them; these tests check it against the plain definition, on trees of one shape
and of different shapes.
"""

from __future__ import annotations

import random
import subprocess
import sys
from ipaddress import ip_address
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import metallb_core as core
from metallb_core._pmap import PMap, same_items

CONFIG = core.Config(pools=[core.Pool(name="p", cidrs=["10.0.0.0/22"])])


def with_ip(state: core.State, i: int, n: int) -> core.State:
    """``state`` where Service ``ns/s<i>`` holds the ``n``-th address of 10.0.0.0/22."""
    address = str(ip_address("10.0.0.0") + n)
    request = core.ServiceRequest(key=f"ns/s{i:04}", requested_ips=[address])
    state, result = core.allocate(state, request)
    assert not isinstance(result, core.AllocationError)
    return state


def built(pairs: list[tuple[int, int]], config: core.Config = CONFIG) -> core.State:
    state = core.State.empty(config)
    for i, n in pairs:
        state = with_ip(state, i, n)
    return state


def plain_equal(a: core.State, b: core.State) -> bool:
    return a.config == b.config and dict(a.allocations) == dict(b.allocations)


#: ``(Service number, address number)`` pairs: distinct Services on distinct addresses.
holdings = st.lists(st.integers(0, 1023), unique=True, max_size=300).map(
    lambda addresses: list(enumerate(addresses))
)


def test_a_state_equals_itself_and_its_unchanged_successor() -> None:
    state = built([(i, i) for i in range(200)])
    assert state == state  # noqa: PLR0124 - the identity shortcut is what is tested
    again, _ = core.allocate(state, core.ServiceRequest(key="ns/extra"))
    assert again != state
    assert core.release(again, "ns/extra") == state
    assert state == built([(i, i) for i in range(200)])


def test_a_changed_record_or_configuration_is_not_equal() -> None:
    state = built([(i, i) for i in range(200)])
    moved = built([*((i, i) for i in range(199)), (199, 500)])
    assert state != moved
    other = core.Config(pools=[core.Pool(name="q", cidrs=["10.0.0.0/22"])])
    assert built([(1, 1)]) != built([(1, 1)], other)
    assert built([(1, 1)]) != "not a state"


@settings(max_examples=60, deadline=None)
@given(holdings, st.randoms(use_true_random=False), st.integers(0, 3))
def test_equality_is_the_plain_one_whatever_the_order_of_building(
    pairs: list[tuple[int, int]], rnd: random.Random, change: int
) -> None:
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    a, b = built(pairs), built(shuffled)
    if change == 1 and pairs:
        b = core.release(b, f"ns/s{pairs[0][0]:04}")
    elif change == 2 and pairs:  # the last Service moves to a free address
        key = pairs[-1][0]
        free = next(m for m in range(1024) if m not in {v for _, v in pairs})
        b = with_ip(core.release(b, f"ns/s{key:04}"), key, free)
    assert (a == b) == plain_equal(a, b)
    assert (b == a) == plain_equal(a, b)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 600),
    st.lists(st.integers(0, 2000), max_size=50),
    st.randoms(use_true_random=False),
)
def test_same_items_is_dict_equality(size: int, edits: list[int], rnd: random.Random) -> None:
    """Maps of up to three levels, built in two orders (so of different shapes), edited."""
    items = {k: rnd.randrange(4) for k in rnd.sample(range(2000), size)}
    order = list(items.items())
    a = PMap[int, int]()
    for k, v in order:
        a = a.set(k, v)
    rnd.shuffle(order)
    b = PMap[int, int]()
    for k, v in order:
        b = b.set(k, v)
    c = a
    for k in edits:
        c = c.delete(k) if k in c else c.set(k, 0)
    changed = b
    for k in rnd.sample(sorted(items), min(size, 2)):  # other values, same keys
        changed = changed.set(k, items[k] + 1)
    for x, y in [(a, b), (a, c), (b, c), (c, a), (a, changed), (changed, b), (c, c.set(-1, 0))]:
        assert same_items(x, y) == (dict(x.items()) == dict(y.items()))


def test_the_benchmark_runs_and_agrees_with_the_old_comparison() -> None:
    """``benchmarks/state_equality.py`` at a tiny size: it asserts, per case, that
    ``State.__eq__`` and the baseline agree (no timing is checked here)."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.state_equality",
            "--allocations",
            "300",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )
    assert (done.returncode, done.stderr) == (0, "")
    rows = {line[:32].strip(): line[32:].split()[0] for line in done.stdout.splitlines()[2:]}
    assert rows == {
        "itself": "True",
        "successor, equal": "True",
        "one Service moved": "False",
        "one Service more": "False",
        "equal, built in another order": "True",
    }
