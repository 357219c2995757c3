"""The persistent sorted map under the state: every operation against a dict, old versions kept.

Node sizes are shrunk so that a few hundred operations exercise splits, merges and root
changes at several depths.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_core import _pmap
from metallb_core._pmap import CountedPMap, PMap

OPS = st.lists(
    st.tuples(
        st.sampled_from(["set", "pop", "delete", "rekey", "split"]),
        st.integers(0, 300),
        st.integers(),
    ),
    max_size=300,
)


@pytest.fixture(params=[4, 6, 64], ids=lambda n: f"fanout{n}")
def fanout(request: pytest.FixtureRequest) -> Iterator[int]:
    saved = (_pmap._MAX, _pmap._MIN)
    _pmap._MAX, _pmap._MIN = request.param, max(1, request.param // 4)
    yield request.param
    _pmap._MAX, _pmap._MIN = saved


def check(m: PMap[int, int], d: dict[int, int]) -> None:
    assert list(m.items()) == sorted(d.items())
    assert len(m) == len(d)
    for q in range(-1, 305, 7):
        below = [x for x in d if x <= q]
        above = [x for x in d if x >= q]
        assert m.floor_item(q) == ((max(below), d[max(below)]) if below else None)
        assert m.ceiling_item(q) == ((min(above), d[min(above)]) if above else None)
        assert m.get(q) == d.get(q)
        assert (q in m) == (q in d)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
@pytest.mark.parametrize("kind", [PMap, CountedPMap])
def test_every_operation_agrees_with_a_dict_and_keeps_old_versions(
    fanout: int, kind: type[PMap[int, int]], ops: list[tuple[str, int, int]]
) -> None:
    m: PMap[int, int] = kind()
    d: dict[int, int] = {}
    history: list[tuple[PMap[int, int], dict[int, int]]] = []
    for op, k, v in ops:
        history.append((m, dict(d)))
        keys = sorted(d)
        if op == "set":
            m, d[k] = m.set(k, v), v
        elif op == "pop":
            m, got = m.pop(k)
            assert got == d.pop(k, None)
        elif op == "delete":
            m = m.delete(k)
            d.pop(k, None)
        elif keys:
            old = keys[k % len(keys)]
            after = keys[keys.index(old) + 1] if old != keys[-1] else old + 50
            if op == "rekey" and after - old > 1:
                new = (old + after) // 2  # stays between its neighbours
                m = m.replace_key(old, new, v)
                del d[old]
                d[new] = v
            elif op == "split" and after - old > 2:
                new = old + 2
                m = m.split_item(old, v, new, v + 1)
                d[old], d[new] = v, v + 1
        check(m, d)
        if isinstance(m, CountedPMap):
            check_counts(m)
    for old_map, old_dict in history:
        assert list(old_map.items()) == sorted(old_dict.items())
        if isinstance(old_map, CountedPMap):
            check_counts(old_map)


def test_from_sorted_builds_the_same_map_as_repeated_sets(fanout: int) -> None:
    items = [(k, k * k) for k in range(0, 1000, 3)]
    built = PMap[int, int].from_sorted(items)
    assert list(built.items()) == items
    check(built.delete(0).set(1, 1), {**dict(items[1:]), 1: 1})


def test_a_hundred_thousand_keys_keep_a_shallow_tree() -> None:
    m: PMap[int, int] = PMap()
    for k in range(100_000):
        m = m.set(k, k)
    assert m._height <= 3
    for k in range(0, 100_000, 2):
        m = m.delete(k)
    assert len(m) == 50_000
    assert m.floor_item(10) == (9, 9)
    assert m.ceiling_item(10) == (11, 11)


def leaf_sizes(m: PMap[int, int] | PMap[str, int]) -> list[int]:
    return [len(keys) for keys, _ in m._leaves()]


@pytest.mark.parametrize("kind", [PMap, CountedPMap])
def test_ascending_inserts_leave_every_leaf_but_the_last_three_quarters_full(
    kind: type[PMap[int, int]],
) -> None:
    m = kind()
    for k in range(5_000):
        m = m.set(k, k)
    sizes = leaf_sizes(m)
    # A full leaf that grows at its end keeps _MAX - _MIN keys; halving would keep 32.
    assert set(sizes[:-1]) == {_pmap._MAX - _pmap._MIN}
    assert list(m.items()) == [(k, k) for k in range(5_000)]


@pytest.mark.parametrize("kind", [PMap, CountedPMap])
def test_descending_inserts_leave_every_leaf_but_the_first_three_quarters_full(
    kind: type[PMap[int, int]],
) -> None:
    m = kind()
    for k in reversed(range(5_000)):
        m = m.set(k, k)
    assert set(leaf_sizes(m)[1:]) == {_pmap._MAX - _pmap._MIN}


def test_service_names_in_creation_order_fill_leaves_past_halfway() -> None:
    # "svc-1", "svc-2", ..., "svc-10", ...: each key lands right after the newest one of a
    # run in the middle of a leaf (svc-12 after svc-11, before svc-2), not at a leaf's end.
    m: PMap[str, int] = PMap()
    for i in range(20_000):
        m = m.set(f"ns/svc-{i}", i)
    sizes = leaf_sizes(m)
    assert sum(sizes) / len(sizes) >= 0.6 * _pmap._MAX
    assert m._height == 2


# -- CountedPMap: per-subtree counts, positions and runs -------------------------------------


def check_counts(m: CountedPMap[int, int]) -> None:
    """Every branch's counts are the sizes of its subtrees; every leaf is at the same depth."""

    def size(node: object, depth: int) -> int:
        keys, items = node[0], node[1]  # type: ignore[index]
        if depth == 0:
            return len(keys)
        counts = node[2]  # type: ignore[index]
        sizes = [size(child, depth - 1) for child in items]
        assert list(counts) == sizes
        return sum(sizes)

    assert size(m._root, m._height) == len(m)


def brute_run_end(keys: list[int], start: int, number: dict[int, int]) -> int:
    i = keys.index(start)
    while i + 1 < len(keys) and number[keys[i + 1]] == number[keys[i]] + 1:
        i += 1
    return keys[i]


COUNTED_OPS = st.lists(
    st.tuples(st.sampled_from(["set", "add", "pop"]), st.integers(0, 200)), max_size=250
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=COUNTED_OPS, holes=st.sets(st.integers(0, 200)))
def test_counted_map_positions_and_runs_agree_with_a_sorted_list(
    fanout: int, ops: list[tuple[str, int]], holes: set[int]
) -> None:
    # The numbering skips ``holes`` (the addresses no pool may hand out): two keys with only
    # holes between them are consecutive.
    usable = [k for k in range(201) if k not in holes]
    number = {k: i for i, k in enumerate(usable)}
    m: CountedPMap[int, int] = CountedPMap()
    d: dict[int, int] = {}
    history: list[tuple[CountedPMap[int, int], dict[int, int]]] = []
    for op, k in ops:
        history.append((m, dict(d)))
        if op == "set":
            m, d[k] = m.set(k, -k), -k
        elif op == "add":
            m, existing = m.add(k, k)
            assert existing == d.get(k)
            d.setdefault(k, k)
        else:
            m, got = m.pop(k)
            assert got == d.pop(k, None)
        check_counts(m)
        keys = sorted(d)
        for q in range(0, 202, 9):
            assert m.position(q) == sum(1 for x in keys if x < q)
        held = [x for x in keys if x in number]
        sub: CountedPMap[int, int] = CountedPMap.from_sorted([(x, d[x]) for x in held])
        for x in held[:: max(1, len(held) // 8)]:
            assert sub.run_end(x, number.__getitem__) == brute_run_end(held, x, number)
        assert sub.run_end(201, number.__getitem__) is None
    for old_map, old_dict in history:
        assert list(old_map.items()) == sorted(old_dict.items())


def test_run_end_of_a_key_absent_from_the_map_is_none(fanout: int) -> None:
    m: CountedPMap[int, int] = CountedPMap.from_sorted([(k, k) for k in range(0, 400, 2)])
    assert m.run_end(3, lambda k: k) is None
    assert m.run_end(-1, lambda k: k) is None


def test_run_end_follows_a_run_across_leaves_to_its_last_key(fanout: int) -> None:
    keys = [*range(100), *range(150, 4000)]
    m: CountedPMap[int, int] = CountedPMap.from_sorted([(k, k) for k in keys])
    assert m._height >= 2
    assert m.run_end(0, lambda k: k) == 99
    assert m.run_end(37, lambda k: k) == 99
    assert m.run_end(150, lambda k: k) == 3999
    # With 100..149 unnumbered (no pool hands them out), the two runs are one.
    assert m.run_end(5, lambda k: k if k < 100 else k - 50) == 3999


def test_counted_from_sorted_counts_every_subtree(fanout: int) -> None:
    items = [(k, k) for k in range(0, 1000, 3)]
    built: CountedPMap[int, int] = CountedPMap.from_sorted(items)
    check_counts(built)
    assert list(built.items()) == items
    assert built.position(500) == len([k for k, _ in items if k < 500])
