"""The allocator state: an immutable value with O(log n) persistent updates.

A :class:`State` holds the configuration and every allocation, plus indexes kept in step
with them so that no operation ever scans a pool address by address:

- ``_allocs``: key -> :class:`Allocation`.
- ``_holders``: address key -> sorted keys of the Services holding it (several when shared).
- ``_runs``: maximal runs of held addresses, start -> end, where two held addresses belong to
  one run when nothing between them could be handed out (addresses outside every pool,
  excluded or avoided ones). The first free address after any point is then found with one or
  two lookups, whatever the pool size or how full it is.
- ``_shared``: sharing key -> sorted address keys whose holders use that key.
- ``_usage``: per pool, the number of distinct held IPv4 and IPv6 addresses.

All of them are :class:`~metallb_core._pmap.PMap` values (or tuples), shared between
successive states, so keeping an old state costs nothing and needs no undo.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from metallb_core._addresses import V6_OFFSET, key_of
from metallb_core._config import Config
from metallb_core._index import ConfigIndex
from metallb_core._outcomes import Allocation
from metallb_core._pmap import PMap


class State:
    """Every allocation under one configuration; an immutable value.

    Transitions (:func:`~metallb_core.allocate`, :func:`~metallb_core.release`,
    :func:`~metallb_core.reload`) return new states; the old ones stay valid and unchanged.

    >>> from metallb_core import Config, Pool
    >>> s = State.empty(Config(pools=[Pool(name="default", cidrs=["10.0.0.0/30"])]))
    >>> s.allocation("web/nginx") is None, len(s.allocations)
    (True, 0)
    """

    __slots__ = ("_allocs", "_holders", "_index", "_runs", "_shared", "_usage")

    _index: ConfigIndex
    _allocs: PMap[str, Allocation]
    _holders: PMap[int, tuple[str, ...]]
    _runs: PMap[int, int]
    _shared: PMap[str, tuple[int, ...]]
    _usage: tuple[int, ...]

    def __init__(self) -> None:
        raise TypeError("use State.empty(config), then allocate/release/reload")

    @classmethod
    def _make(
        cls,
        index: ConfigIndex,
        allocs: PMap[str, Allocation],
        holders: PMap[int, tuple[str, ...]],
        runs: PMap[int, int],
        shared: PMap[str, tuple[int, ...]],
        usage: tuple[int, ...],
    ) -> State:
        state = object.__new__(cls)
        setter = object.__setattr__
        setter(state, "_index", index)
        setter(state, "_allocs", allocs)
        setter(state, "_holders", holders)
        setter(state, "_runs", runs)
        setter(state, "_shared", shared)
        setter(state, "_usage", usage)
        return state

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("State is immutable")

    @classmethod
    def empty(cls, config: Config) -> State:
        """A state with ``config`` and no allocation."""
        index = ConfigIndex(config)
        return cls._make(index, PMap(), PMap(), PMap(), PMap(), (0,) * (2 * len(config.pools)))

    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self._index.config

    def allocation(self, key: str) -> Allocation | None:
        """The allocation held by ``key`` (``namespace/name``), or ``None``."""
        return self._allocs.get(key)

    @property
    def allocations(self) -> Mapping[str, Allocation]:
        """Every allocation, by key, in key order (a read-only view)."""
        return self._allocs

    def holders(self, ip: object) -> tuple[str, ...]:
        """The keys holding ``ip`` (an address object), in key order."""
        return self._holders.get(key_of(ip), ())  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return self.config == other.config and dict(self._allocs.items()) == dict(
            other._allocs.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<State pools={len(self.config.pools)} allocations={len(self._allocs)}>"

    # -- primitive updates (private: callers check validity first) -------------------------

    def _without(self, key: str) -> State:
        """This state with ``key``'s allocation removed (itself when ``key`` holds nothing)."""
        allocs, alloc = self._allocs.pop(key)
        if alloc is None:
            return self
        return self._minus(alloc, allocs)

    def _minus(self, alloc: Allocation, allocs: PMap[str, Allocation] | None = None) -> State:
        key = alloc.key
        if allocs is None:
            allocs = self._allocs.delete(key)
        holders, runs, shared = self._holders, self._runs, self._shared
        usage = self._usage
        pool = self._index.by_name.get(alloc.pool)
        for ip in alloc.ips:
            k = key_of(ip)
            holders, held = holders.pop(k)
            if held is not None and len(held) > 1:
                holders = holders.set(k, tuple(h for h in held if h != key))
                continue
            runs = _runs_remove(runs, holders, self._index, k)
            if alloc.sharing_key:
                shared = _sorted_remove(shared, alloc.sharing_key, k)
            if pool is not None:
                slot = 2 * pool + (k >= V6_OFFSET)
                usage = (*usage[:slot], usage[slot] - 1, *usage[slot + 1 :])
        return State._make(self._index, allocs, holders, runs, shared, usage)

    def _with(self, alloc: Allocation, keys: list[int], pool: int) -> State:
        """This state plus ``alloc`` (its address ``keys``, in ``pool``).

        The caller checked that the key holds nothing and that the addresses are usable.
        """
        holders, runs, shared = self._holders, self._runs, self._shared
        usage = self._usage
        for k in keys:
            held = holders.get(k)
            if held:
                holders = holders.set(k, tuple(sorted((*held, alloc.key))))
                continue
            holders = holders.set(k, (alloc.key,))
            runs = _runs_add(runs, self._index, k)
            if alloc.sharing_key:
                shared = _sorted_insert(shared, alloc.sharing_key, k)
            slot = 2 * pool + (k >= V6_OFFSET)
            usage = (*usage[:slot], usage[slot] + 1, *usage[slot + 1 :])
        return State._make(
            self._index, self._allocs.set(alloc.key, alloc), holders, runs, shared, usage
        )


def _runs_add(runs: PMap[int, int], index: ConfigIndex, k: int) -> PMap[int, int]:
    left = runs.floor_item(k)
    right = runs.ceiling_item(k + 1)
    join_left = left is not None and index.next_usable(left[1] + 1) >= k
    join_right = right is not None and index.next_usable(k + 1) >= right[0]
    if left is not None and join_left:
        if right is not None and join_right:
            return runs.delete(right[0]).set(left[0], right[1])
        return runs.set(left[0], k)
    if right is not None and join_right:
        return runs.delete(right[0]).set(k, right[1])
    return runs.set(k, k)


def _runs_remove(
    runs: PMap[int, int], holders_after: PMap[int, tuple[str, ...]], index: ConfigIndex, k: int
) -> PMap[int, int]:
    found = runs.floor_item(k)
    assert found is not None, "a held address is always inside a run"
    assert found[1] >= k, "a held address is always inside a run"
    start, end = found
    # Runs start and end on held addresses: trim each remaining part to its held ends. Every
    # usable address inside a run is held, so a usable neighbour of k is the end sought.
    if start < k:
        last = k - 1 if index.owner(k - 1) is not None else _held_before(holders_after, k)
        if k < end:
            first = k + 1 if index.owner(k + 1) is not None else _held_after(holders_after, k)
            return runs.split_item(start, last, first, end)  # nothing lies between them
        return runs.set(start, last)  # same key: a value replacement, no rebalancing
    if k < end:
        first = k + 1 if index.owner(k + 1) is not None else _held_after(holders_after, k)
        return runs.replace_key(start, first, end)  # nothing lies between start and first
    return runs.delete(start)


def _held_before(holders: PMap[int, tuple[str, ...]], k: int) -> int:
    found = holders.floor_item(k - 1)
    assert found is not None
    return found[0]


def _held_after(holders: PMap[int, tuple[str, ...]], k: int) -> int:
    found = holders.ceiling_item(k + 1)
    assert found is not None
    return found[0]


def _sorted_insert(
    index: PMap[str, tuple[int, ...]], name: str, k: int
) -> PMap[str, tuple[int, ...]]:
    keys = index.get(name, ())
    i = bisect.bisect_left(keys, k)
    return index.set(name, (*keys[:i], k, *keys[i:]))


def _sorted_remove(
    index: PMap[str, tuple[int, ...]], name: str, k: int
) -> PMap[str, tuple[int, ...]]:
    keys = index.get(name, ())
    rest = tuple(x for x in keys if x != k)
    return index.set(name, rest) if rest else index.delete(name)
