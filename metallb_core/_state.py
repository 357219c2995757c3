"""The allocator state: an immutable value with O(log n) persistent updates.

A :class:`State` holds the configuration and every allocation, plus indexes kept in step
with them so that no operation ever scans a pool address by address:

- ``_allocs``: Service key -> its record: ``(address keys, pool index, ports, sharing key,
  backend key)``. The state keeps records, not :class:`Allocation` objects. A record is
  one tuple for the garbage collector to visit (its tuple of address keys holds only integers,
  which the collector stops tracking) where an allocation is five (the model, its field dict
  and field set, its address tuple and its address objects): a state of 100,000 allocations
  makes collections several times cheaper and holds a quarter of the memory. A release reads
  the address keys and the pool from the record directly. :meth:`State.allocation` and
  :attr:`State.allocations` build allocations from records on demand (equal values each
  time, not the same objects).
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
from collections.abc import Iterator, Mapping

from metallb_core._addresses import V6_OFFSET, address_of, key_of
from metallb_core._config import Config
from metallb_core._index import ConfigIndex
from metallb_core._outcomes import Allocation, trusted_allocation
from metallb_core._pmap import CountedPMap, PMap, same_items
from metallb_core._request import Port

Record = tuple[tuple[int, ...], int, tuple[Port, ...], str, str]
"""What a state keeps per Service key: ``(address keys in the allocation's order, index of the
pool in the configuration, ports, sharing key, backend key)``."""


def allocation_of(index: ConfigIndex, key: str, record: Record) -> Allocation:
    """The allocation that ``key``'s ``record`` stands for, under ``index``'s configuration."""
    keys, pool, ports, sharing_key, backend_key = record
    ips = tuple([address_of(k) for k in keys])
    return trusted_allocation(key, ips, index.pools[pool].name, ports, sharing_key, backend_key)


class _Allocations(Mapping[str, Allocation]):
    """A read-only view of a state's allocations, by key, in key order."""

    __slots__ = ("_index", "_records")

    def __init__(self, index: ConfigIndex, records: PMap[str, Record]) -> None:
        self._index = index
        self._records = records

    def __getitem__(self, key: str) -> Allocation:
        return allocation_of(self._index, key, self._records[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def values(self) -> Iterator[Allocation]:  # type: ignore[override]
        """The allocations in key order."""
        return (allocation for _, allocation in self.items())

    def items(self) -> Iterator[tuple[str, Allocation]]:  # type: ignore[override]
        """``(key, allocation)`` pairs in key order."""
        return ((k, allocation_of(self._index, k, r)) for k, r in self._records.items())

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {a!r}' for k, a in self.items())}}}"


class State:
    """Every allocation under one configuration; an immutable value.

    Transitions (:func:`~metallb_core.allocate`, :func:`~metallb_core.release`,
    :func:`~metallb_core.reload`) return new states; the old ones stay valid and unchanged.
    Everything public is read-only (properties and methods; there is no ``__dict__`` to add
    attributes to). The private slots are set once, by ``_make``; no ``__setattr__`` guards
    them, because one would make every transition pay a Python call per slot.

    >>> from metallb_core import Config, Pool
    >>> s = State.empty(Config(pools=[Pool(name="default", cidrs=["10.0.0.0/30"])]))
    >>> s.allocation("web/nginx") is None, len(s.allocations)
    (True, 0)
    """

    __slots__ = ("_allocs", "_holders", "_index", "_shared", "_usage")

    _index: ConfigIndex
    _allocs: PMap[str, Record]
    _holders: CountedPMap[int, str | tuple[str, ...]]
    _shared: PMap[str, tuple[int, ...]]
    _usage: tuple[int, ...]

    def __init__(self) -> None:
        raise TypeError("use State.empty(config), then allocate/release/reload")

    @classmethod
    def empty(cls, config: Config) -> State:
        """A state with ``config`` and no allocation."""
        index = ConfigIndex(config)
        return _make(index, PMap(), CountedPMap(), PMap(), (0,) * (2 * len(config.pools)))

    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self._index.config

    def allocation(self, key: str) -> Allocation | None:
        """The allocation held by ``key`` (``namespace/name``), or ``None``."""
        record = self._allocs.get(key)
        return None if record is None else allocation_of(self._index, key, record)

    @property
    def allocations(self) -> Mapping[str, Allocation]:
        """Every allocation, by key, in key order (a read-only view)."""
        return _Allocations(self._index, self._allocs)

    def holders(self, ip: object) -> tuple[str, ...]:
        """The keys holding ``ip`` (an address object), in key order."""
        return _as_tuple(self._holders.get(key_of(ip), ()))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        """Same configuration and same allocations.

        Under one configuration, equal records stand for equal allocations (the other maps
        are derived from the records), so only the records are compared: without copying
        them, skipping every subtree the two states share (a state and the states made from
        it share all but the paths they changed), and at once when they are one object.
        """
        if self is other:
            return True
        if not isinstance(other, State):
            return NotImplemented
        if self._index is not other._index and self.config != other.config:
            return False
        return same_items(self._allocs, other._allocs)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<State pools={len(self.config.pools)} allocations={len(self._allocs)}>"

    # -- primitive updates (private: callers check validity first) -------------------------

    def _without(self, key: str) -> State:
        """This state with ``key``'s allocation removed (itself when ``key`` holds nothing)."""
        allocs, record = self._allocs.pop(key)
        if record is None:
            return self
        holders, shared, usage = self._holders, self._shared, self._usage
        keys, pool, _, sharing_key, _ = record
        for k in keys:
            holders, held = holders.pop(k)
            if type(held) is tuple:  # shared: the others keep it
                rest = tuple(h for h in held if h != key)
                holders = holders.set(k, rest if len(rest) > 1 else rest[0])
                continue
            if sharing_key:
                shared = _sorted_remove(shared, sharing_key, k)
            counts = list(usage)
            counts[2 * pool + (k >= V6_OFFSET)] -= 1
            usage = tuple(counts)
        return _make(self._index, allocs, holders, shared, usage)

    def _with(self, key: str, record: Record) -> State:
        """This state plus ``key``'s allocation, given as its ``record``.

        The caller checked that the key holds nothing and that the addresses are usable.
        """
        holders, shared = self._holders, self._shared
        usage = self._usage
        keys, pool, _, sharing_key, _ = record
        for k in keys:
            holders, held = holders.add(k, key)
            if held is not None:
                holders = holders.set(k, tuple(sorted((*_as_tuple(held), key))))
                continue
            if sharing_key:
                shared = _sorted_insert(shared, sharing_key, k)
            slot = 2 * pool + (k >= V6_OFFSET)
            counts = list(usage)
            counts[slot] += 1
            usage = tuple(counts)
        return _make(self._index, self._allocs.set(key, record), holders, shared, usage)


def _make(
    index: ConfigIndex,
    allocs: PMap[str, Record],
    holders: CountedPMap[int, str | tuple[str, ...]],
    shared: PMap[str, tuple[int, ...]],
    usage: tuple[int, ...],
) -> State:
    """A new state with these parts; the only place a state's slots are ever set."""
    state: State = _new(State)
    state._index = index
    state._allocs = allocs
    state._holders = holders
    state._shared = shared
    state._usage = usage
    return state


_new = object.__new__


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
