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
from metallb_core._pmap import PMap

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
def test_every_operation_agrees_with_a_dict_and_keeps_old_versions(
    fanout: int, ops: list[tuple[str, int, int]]
) -> None:
    m: PMap[int, int] = PMap()
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
    for old_map, old_dict in history:
        assert list(old_map.items()) == sorted(old_dict.items())


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
