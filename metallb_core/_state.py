"""The allocator state: an immutable value with O(log n) persistent updates.

A :class:`State` holds the configuration and every allocation, plus indexes kept in step
with them so that no operation ever scans a pool address by address:

- ``_allocs``: key -> :class:`Allocation`.
- ``_holders``: address key -> the key of the Service holding it, or the sorted tuple of keys
  when several share it (a lone holder is stored bare: no tuple per address to allocate,
  keep and visit on a release).
  It is a :class:`~metallb_core._pmap.CountedPMap`: each branch knows how many addresses each
  of its subtrees holds, so the first free address after any point is found by one descent
  that skips every subtree whose addresses are all held (numbered by
  :meth:`~metallb_core._index.ConfigIndex.ordinal`, which counts only the addresses a pool
  may hand out), whatever the pool size or how full it is.
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
from metallb_core._pmap import CountedPMap, PMap


class State:
    """Every allocation under one configuration; an immutable value.

    Transitions (:func:`~metallb_core.allocate`, :func:`~metallb_core.release`,
    :func:`~metallb_core.reload`) return new states; the old ones stay valid and unchanged.

    >>> from metallb_core import Config, Pool
    >>> s = State.empty(Config(pools=[Pool(name="default", cidrs=["10.0.0.0/30"])]))
    >>> s.allocation("web/nginx") is None, len(s.allocations)
    (True, 0)
    """

    __slots__ = ("_allocs", "_holders", "_index", "_shared", "_usage")

    _index: ConfigIndex
    _allocs: PMap[str, Allocation]
    _holders: CountedPMap[int, str | tuple[str, ...]]
    _shared: PMap[str, tuple[int, ...]]
    _usage: tuple[int, ...]

    def __init__(self) -> None:
        raise TypeError("use State.empty(config), then allocate/release/reload")

    @classmethod
    def _make(
        cls,
        index: ConfigIndex,
        allocs: PMap[str, Allocation],
        holders: CountedPMap[int, str | tuple[str, ...]],
        shared: PMap[str, tuple[int, ...]],
        usage: tuple[int, ...],
    ) -> State:
        state = object.__new__(cls)
        _set_index(state, index)
        _set_allocs(state, allocs)
        _set_holders(state, holders)
        _set_shared(state, shared)
        _set_usage(state, usage)
        return state

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("State is immutable")

    @classmethod
    def empty(cls, config: Config) -> State:
        """A state with ``config`` and no allocation."""
        index = ConfigIndex(config)
        return cls._make(index, PMap(), CountedPMap(), PMap(), (0,) * (2 * len(config.pools)))

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
        return _as_tuple(self._holders.get(key_of(ip), ()))  # type: ignore[arg-type]

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
        holders, shared, usage = self._holders, self._shared, self._usage
        pool = self._index.by_name.get(alloc.pool)
        sharing_key = alloc.sharing_key
        for ip in alloc.ips:
            k = key_of(ip)
            holders, held = holders.pop(k)
            if type(held) is tuple:  # shared: the others keep it
                rest = tuple(h for h in held if h != key)
                holders = holders.set(k, rest if len(rest) > 1 else rest[0])
                continue
            if sharing_key:
                shared = _sorted_remove(shared, sharing_key, k)
            if pool is not None:
                counts = list(usage)
                counts[2 * pool + (k >= V6_OFFSET)] -= 1
                usage = tuple(counts)
        return State._make(self._index, allocs, holders, shared, usage)

    def _with(self, alloc: Allocation, keys: list[int], pool: int) -> State:
        """This state plus ``alloc`` (its address ``keys``, in ``pool``).

        The caller checked that the key holds nothing and that the addresses are usable.
        """
        holders, shared = self._holders, self._shared
        usage = self._usage
        for k in keys:
            holders, held = holders.add(k, alloc.key)
            if held is not None:
                holders = holders.set(k, tuple(sorted((*_as_tuple(held), alloc.key))))
                continue
            if alloc.sharing_key:
                shared = _sorted_insert(shared, alloc.sharing_key, k)
            slot = 2 * pool + (k >= V6_OFFSET)
            counts = list(usage)
            counts[slot] += 1
            usage = tuple(counts)
        return State._make(self._index, self._allocs.set(alloc.key, alloc), holders, shared, usage)


# The slots' own setters: they bypass the __setattr__ that keeps a State immutable, and cost
# less than object.__setattr__ with a name (a state is made on every transition).
_set_index = State.__dict__["_index"].__set__
_set_allocs = State.__dict__["_allocs"].__set__
_set_holders = State.__dict__["_holders"].__set__
_set_shared = State.__dict__["_shared"].__set__
_set_usage = State.__dict__["_usage"].__set__


def _as_tuple(held: str | tuple[str, ...]) -> tuple[str, ...]:
    """The holders of an address as a tuple, from the map's value."""
    return (held,) if type(held) is str else held  # type: ignore[return-value]


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
