"""A persistent sorted map: a path-copying B+tree.

Every update returns a new map and leaves the old one intact, sharing all untouched nodes, so
a :class:`~metallb_core.State` can be kept, compared and reused after any transition at the
cost of O(log n) new nodes per update. Lookups, updates, floor/ceiling queries and deletes are
O(log n); iteration is in key order. Node fan-out is large (up to ``_MAX`` entries) so that the
tree is shallow and most of the work is done by :mod:`bisect` and list slicing in C.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate, chain
from operator import eq
from typing import Any, Generic, Protocol, TypeVar, overload


class _Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Comparable)
V = TypeVar("V")
T = TypeVar("T")

_MAX = 64  # entries per node before it splits
_MIN = 16  # entries per node below which it merges with a sibling
_MISSING = object()
_new = object.__new__


# A node is a pair ``(keys, items)``: in a leaf the items are values, in a branch they are
# children, and keys[i] is the smallest key under children[i]. Every leaf is at the same depth
# (the map's height), so a node's kind is known from its depth and needs no tag: plain tuples
# keep updates cheap.
_Node = tuple[list[Any], list[Any]]
_EMPTY: _Node = ([], [])


def _cut(size: int, new: int | None) -> int:
    """Where a node of ``size`` entries splits: right after entry ``new`` when it was just
    inserted (keeping both parts at least ``_MIN + 1`` long), else in the middle.

    Keys usually arrive in ascending runs (addresses lowest first, ``web-1``, ``web-2``...),
    and the next key of a run lands right after the newest one. Cutting there leaves the older
    entries in a part that is no longer growing and as full as the bound allows, where halving
    would leave a trail of half-empty nodes and a deeper tree.
    """
    if new is None or size <= 2 * _MIN + 2:
        return size // 2
    return min(max(new + 1, _MIN + 1), size - _MIN - 1)


def _split(node: _Node, new: int | None = None) -> list[_Node]:
    """One node, or two parts (see :func:`_cut`) when it grew past ``_MAX``."""
    keys, items = node
    if len(keys) <= _MAX:
        return [node]
    half = _cut(len(keys), new)
    return [(keys[:half], items[:half]), (keys[half:], items[half:])]


class PMap(Mapping[K, V], Generic[K, V]):
    """An immutable mapping with persistent updates and ordered queries.

    >>> m = PMap[int, str]().set(3, "c").set(1, "a")
    >>> list(m.items()), m.floor_item(2), m.ceiling_item(2)
    ([(1, 'a'), (3, 'c')], (1, 'a'), (3, 'c'))
    >>> m.delete(1).get(1) is None, m.get(1)
    (True, 'a')
    """

    __slots__ = ("_height", "_len", "_root")

    def __init__(self) -> None:
        self._root: _Node = _EMPTY
        self._height = 0  # branch levels above the leaves
        self._len = 0

    @classmethod
    def _make(cls, root: _Node, height: int, length: int) -> PMap[K, V]:
        new: PMap[K, V] = _new(cls)
        new._root = root
        new._height = height
        new._len = length
        return new

    @classmethod
    def from_sorted(cls, items: list[tuple[K, V]]) -> PMap[K, V]:
        """Build from items already sorted by key, without duplicates, in O(n)."""
        if not items:
            return cls()
        step = _MAX // 2 + _MAX // 4
        level: list[_Node] = [
            ([k for k, _ in items[i : i + step]], [v for _, v in items[i : i + step]])
            for i in range(0, len(items), step)
        ]
        height = 0
        while len(level) > 1:
            level = [
                ([c[0][0] for c in level[i : i + step]], level[i : i + step])
                for i in range(0, len(level), step)
            ]
            height += 1
        return cls._make(level[0], height, len(items))

    # -- Mapping ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        for keys, _ in self._leaves():
            yield from keys

    def __getitem__(self, key: K) -> V:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | T, /) -> V | T: ...
    def get(self, key: K, default: object = None, /) -> object:
        node = self._root
        h = self._height
        while h:
            i = bisect_right(node[0], key) - 1
            if i < 0:
                return default
            node = node[1][i]
            h -= 1
        keys = node[0]
        j = bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            return node[1][j]
        return default

    def __contains__(self, key: object) -> bool:
        try:
            return self.get(key, _MISSING) is not _MISSING  # type: ignore[call-overload]
        except TypeError:  # not comparable with the keys: not a key
            return False

    def __repr__(self) -> str:
        return f"PMap({dict(self.items())!r})"

    def _leaves(self) -> Iterator[_Node]:
        stack: list[tuple[_Node, int]] = [(self._root, self._height)]
        while stack:
            node, depth = stack.pop()
            if depth == 0:
                yield node
            else:
                stack.extend((child, depth - 1) for child in reversed(node[1]))

    def items(self) -> Iterator[tuple[K, V]]:  # type: ignore[override]
        """Items in ascending key order."""
        for keys, vals in self._leaves():
            yield from zip(keys, vals, strict=True)

    def values(self) -> Iterator[V]:  # type: ignore[override]
        """Values in ascending key order."""
        for _, vals in self._leaves():
            yield from vals

    # -- ordered queries -------------------------------------------------------------------

    def floor_item(self, key: K) -> tuple[K, V] | None:
        """The item with the largest key ``<= key``, or ``None``."""
        node = self._root
        h = self._height
        while h:
            i = bisect_right(node[0], key) - 1
            if i < 0:
                return None
            node = node[1][i]
            h -= 1
        keys = node[0]
        j = bisect_right(keys, key) - 1
        if j < 0:
            return None
        return keys[j], node[1][j]

    def ceiling_item(self, key: K) -> tuple[K, V] | None:
        """The item with the smallest key ``>= key``, or ``None``."""
        node = self._root
        path: list[tuple[_Node, int]] = []
        for _ in range(self._height):
            i = max(bisect_right(node[0], key) - 1, 0)
            path.append((node, i))
            node = node[1][i]
        j = bisect_left(node[0], key)
        if j < len(node[0]):
            return node[0][j], node[1][j]
        # Every key of this leaf is smaller: the answer is the first key of the next leaf.
        while path:
            branch, i = path.pop()
            if i + 1 < len(branch[1]):
                nxt: _Node = branch[1][i + 1]
                for _ in range(len(path) + 1, self._height):
                    nxt = nxt[1][0]
                return nxt[0][0], nxt[1][0]
        return None

    # -- updates ---------------------------------------------------------------------------

    def _descend(self, key: K) -> tuple[list[tuple[_Node, int]], _Node]:
        path: list[tuple[_Node, int]] = []
        node = self._root
        h = self._height
        while h:
            i = bisect_right(node[0], key) - 1
            if i < 0:  # noqa: PLR1730 - a call to max() costs more on this hot path
                i = 0
            path.append((node, i))
            node = node[1][i]
            h -= 1
        return path, node

    def set(self, key: K, value: V) -> PMap[K, V]:
        """A new map where ``key`` maps to ``value``."""
        path, (keys, vals) = self._descend(key)
        j = bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            vals = vals.copy()
            vals[j] = value
            # The keys are unchanged, so the new leaf shares them and no separator moves.
            return self._make(_copy_values(path, (keys, vals)), self._height, self._len)
        keys = keys.copy()
        keys.insert(j, key)
        vals = vals.copy()
        vals.insert(j, value)
        if len(keys) > _MAX:
            return self._rebuilt(path, _split((keys, vals), j), self._len + 1)
        # Inserted after the leaf's first key: no separator above it changes.
        copy = _copy_values if j else _copy_path
        return self._make(copy(path, (keys, vals)), self._height, self._len + 1)

    def delete(self, key: K) -> PMap[K, V]:
        """A new map without ``key`` (the same map when ``key`` is absent)."""
        return self.pop(key)[0]

    def pop(self, key: K) -> tuple[PMap[K, V], V | None]:
        """A new map without ``key``, and the value it had (``(self, None)`` when absent)."""
        # The descent is inlined: a release is a pop and little else.
        path: list[tuple[_Node, int]] = []
        node = self._root
        for _ in range(self._height):
            i = bisect_right(node[0], key) - 1
            if i < 0:
                return self, None
            path.append((node, i))
            node = node[1][i]
        keys, vals = node
        j = bisect_left(keys, key)
        if j == len(keys) or keys[j] != key:
            return self, None
        value = vals[j]
        keys = keys.copy()
        del keys[j]
        vals = vals.copy()
        del vals[j]
        if keys and (len(keys) >= _MIN or not path):
            # The leaf's first key changes only when j == 0: then the separators above move.
            root = _copy_values(path, (keys, vals)) if j else _copy_path(path, (keys, vals))
            return self._make(root, self._height, self._len - 1), value
        return self._rebuilt(path, [(keys, vals)] if keys else [], self._len - 1), value

    def split_item(self, key: K, value: V, new: K, new_value: V) -> PMap[K, V]:
        """A new map where present ``key`` maps to ``value`` and ``new -> new_value`` is added.

        The caller guarantees that no key lies between ``key`` and ``new``: the new item goes
        right after ``key``, in the same leaf when it has room (one path copy instead of two).
        """
        path, (keys, vals) = self._descend(key)
        j = bisect_left(keys, key)
        if len(keys) >= _MAX:
            return self.set(key, value).set(new, new_value)
        keys = keys.copy()
        keys.insert(j + 1, new)
        vals = vals.copy()
        vals[j] = value
        vals.insert(j + 1, new_value)
        return self._make(_copy_values(path, (keys, vals)), self._height, self._len + 1)

    def replace_key(self, old: K, new: K, value: V) -> PMap[K, V]:
        """A new map with the item of ``old`` replaced by ``new -> value``.

        The caller guarantees that ``old`` is present and no other key lies between ``old``
        and ``new``, so the item keeps its place: one path copy, no rebalancing.
        """
        path, (keys, vals) = self._descend(old)
        j = bisect_left(keys, old)
        keys = keys.copy()
        keys[j] = new
        vals = vals.copy()
        vals[j] = value
        root = _copy_path(path, (keys, vals)) if j == 0 else _copy_values(path, (keys, vals))
        return self._make(root, self._height, self._len)

    def _rebuilt(
        self, path: list[tuple[_Node, int]], parts: list[_Node], length: int
    ) -> PMap[K, V]:
        """Replace the node at the bottom of ``path`` by ``parts`` (split, merged or gone)."""
        height = self._height
        while path:
            (bkeys, children), i = path.pop()
            children = children[:i] + parts + children[i + 1 :]
            bkeys = bkeys[:i] + [p[0][0] for p in parts] + bkeys[i + 1 :]
            # Keep nodes from thinning out: merge a small part with a neighbour.
            if len(parts) == 1 and len(parts[0][0]) < _MIN and len(children) > 1:
                k = i if i + 1 < len(children) else i - 1
                (lk, li), (rk, ri) = children[k], children[k + 1]
                merged = _split((lk + rk, li + ri))
                children[k : k + 2] = merged
                bkeys[k : k + 2] = [m[0][0] for m in merged]
            parts = _split((bkeys, children), i + len(parts) - 1) if children else []
        if not parts:
            return self._make(_EMPTY, 0, length)
        if len(parts) > 1:
            return self._make(([p[0][0] for p in parts], parts), height + 1, length)
        root = parts[0]
        while height > 0 and len(root[1]) == 1:
            root = root[1][0]
            height -= 1
        return self._make(root, height, length)


def _copy_values(path: list[tuple[_Node, int]], node: _Node) -> _Node:
    """Like :func:`_copy_path` when ``node``'s first key is unchanged: branch keys are shared."""
    for (keys, children), i in reversed(path):
        children = children.copy()
        children[i] = node
        node = (keys, children)
    return node


def _copy_path(path: list[tuple[_Node, int]], node: _Node) -> _Node:
    """Copy the branches of ``path`` bottom-up, with ``node`` in place of the bottom child."""
    for (keys, children), i in reversed(path):
        children = children[:]
        children[i] = node
        first = node[0][0]
        if keys[i] != first:
            keys = keys[:]
            keys[i] = first
        node = (keys, children)
    return node


# -- a map that knows how many items each subtree holds --------------------------------------
#
# A branch of a CountedPMap is a triple ``(keys, children, counts)``: counts[i] is the number
# of items under children[i], in an ``array`` of machine integers (copied by a memcpy and not
# tracked by the garbage collector, unlike a list). Leaves stay pairs. An update copies the
# counts of each branch on its path and adjusts one entry, so updates stay O(log n); a value
# replacement shares the counts unchanged.


def _size(node: Any) -> int:
    """Items under a node: a leaf's length, or the sum of a counted branch's counts."""
    return len(node[0]) if len(node) == 2 else sum(node[2])


def _csplit(node: Any, new: int | None = None) -> list[Any]:
    """One node (leaf or counted branch), or two parts when it grew past ``_MAX``."""
    keys = node[0]
    if len(keys) <= _MAX:
        return [node]
    half = _cut(len(keys), new)
    if len(node) == 2:
        return [(keys[:half], node[1][:half]), (keys[half:], node[1][half:])]
    items, counts = node[1], node[2]
    return [
        (keys[:half], items[:half], counts[:half]),
        (keys[half:], items[half:], counts[half:]),
    ]


def _ccopy(path: list[tuple[Any, int]], node: Any, delta: int, rekey: bool) -> Any:
    """Copy the counted branches of ``path`` bottom-up around a new bottom ``node``.

    ``delta`` is the change in the number of items under it; ``rekey`` says whether its
    first key may have changed (the separators above are then refreshed).
    """
    for (keys, children, counts), i in reversed(path):
        children = children.copy()
        children[i] = node
        if delta:
            counts = counts[:]
            counts[i] += delta
        if rekey and keys[i] != node[0][0]:
            keys = keys.copy()
            keys[i] = node[0][0]
        node = (keys, children, counts)
    return node


def same_items(a: PMap[Any, Any], b: PMap[Any, Any]) -> bool:
    """Whether two maps hold equal items, without copying either.

    Where the two trees have the same shape (one was made from the other by path-copying
    updates), subtrees that are one object are equal without a look inside, so comparing a
    map with one a few updates away costs O(updates * log n); where shapes differ, the keys
    and then the values are compared in order, leaf after leaf, stopping at the first
    difference.

    >>> m = PMap[int, str]().set(1, "a").set(2, "b")
    >>> same_items(m, m.set(3, "c").delete(3)), same_items(m, m.set(2, "B"))
    (True, False)
    """
    if a is b or a._root is b._root:
        return True
    if a._len != b._len:
        return False
    if a._height == b._height:
        return _same_nodes(a._root, b._root, a._height)
    return _same_flat(a._root, a._height, b._root, b._height)


def _same_nodes(x: _Node, y: _Node, height: int) -> bool:
    """Whether two subtrees of one height, covering the same range of keys, hold equal
    items."""
    if x is y:
        return True
    if not height:
        return x[0] == y[0] and x[1] == y[1]
    if x[0] == y[0]:  # the same separators: each pair of children covers the same range
        return all(_same_nodes(cx, cy, height - 1) for cx, cy in zip(x[1], y[1], strict=True))
    return _same_flat(x, height, y, height)


def _same_flat(x: _Node, x_height: int, y: _Node, y_height: int) -> bool:
    """Whether two subtrees hold equal items, compared in order whatever their shapes."""
    xs, ys = _leaves_of(x, x_height), _leaves_of(y, y_height)
    if sum(len(leaf[0]) for leaf in xs) != sum(len(leaf[0]) for leaf in ys):
        return False
    return all(
        all(
            map(
                eq,
                chain.from_iterable(n[part] for n in xs),
                chain.from_iterable(n[part] for n in ys),
            )
        )
        for part in (0, 1)
    )


def _leaves_of(node: _Node, height: int) -> list[_Node]:
    """The leaves under ``node``, in key order."""
    level = [node]
    for _ in range(height):
        level = [child for branch in level for child in branch[1]]
    return level


class CountedPMap(PMap[K, V]):
    """A :class:`PMap` whose branches also count the items under each child.

    The counts give positions in O(log n) (:meth:`position`), and with them
    :meth:`run_end`: the end of a run of keys that are consecutive under some numbering of the
    key space, found by a descent that skips whole subtrees, whatever the run's length.

    >>> m = CountedPMap[int, str]().set(5, "a").set(6, "b").set(7, "c").set(9, "d")
    >>> m.position(7), m.run_end(5, lambda k: k), m.run_end(9, lambda k: k)
    (2, 7, 9)
    """

    __slots__ = ()

    @classmethod
    def from_sorted(cls, items: list[tuple[K, V]]) -> CountedPMap[K, V]:
        """Build from items already sorted by key, without duplicates, in O(n)."""
        if not items:
            return cls()
        step = _MAX // 2 + _MAX // 4
        level: list[Any] = [
            ([k for k, _ in items[i : i + step]], [v for _, v in items[i : i + step]])
            for i in range(0, len(items), step)
        ]
        height = 0
        while len(level) > 1:
            level = [
                (
                    [c[0][0] for c in level[i : i + step]],
                    level[i : i + step],
                    array("q", [_size(c) for c in level[i : i + step]]),
                )
                for i in range(0, len(level), step)
            ]
            height += 1
        return cls._make(level[0], height, len(items))  # type: ignore[return-value]

    def set(self, key: K, value: V) -> CountedPMap[K, V]:
        """A new map where ``key`` maps to ``value``."""
        path, (keys, vals) = self._descend(key)
        j = bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            vals = vals.copy()
            vals[j] = value
            # Same keys, same counts: only the children lists on the path are copied.
            root = _ccopy(path, (keys, vals), 0, False)
            return self._make(root, self._height, self._len)  # type: ignore[return-value]
        return self.add(key, value)[0]

    def pop(self, key: K) -> tuple[CountedPMap[K, V], V | None]:
        """A new map without ``key``, and the value it had (``(self, None)`` when absent)."""
        # The descent is inlined: release, the hot caller, is a pop and little else.
        path: list[tuple[Any, int]] = []
        node: Any = self._root
        for _ in range(self._height):
            i = bisect_right(node[0], key) - 1
            if i < 0:
                return self, None
            path.append((node, i))
            node = node[1][i]
        keys, vals = node
        j = bisect_left(keys, key)
        if j == len(keys) or keys[j] != key:
            return self, None
        value = vals[j]
        keys = keys.copy()
        del keys[j]
        vals = vals.copy()
        del vals[j]
        if keys and (len(keys) >= _MIN or not path):
            root = _ccopy(path, (keys, vals), -1, not j)
            return self._make(root, self._height, self._len - 1), value  # type: ignore[return-value]
        return self._rebuilt(path, [(keys, vals)] if keys else [], self._len - 1), value

    def add(self, key: K, value: V) -> tuple[CountedPMap[K, V], V | None]:
        """A new map with ``key -> value`` added, or ``(self, its value)`` if ``key`` is present.

        One descent where a lookup followed by :meth:`set` would make two.
        """
        path, (keys, vals) = self._descend(key)
        j = bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            return self, vals[j]
        keys = keys.copy()
        keys.insert(j, key)
        vals = vals.copy()
        vals.insert(j, value)
        if len(keys) > _MAX:
            return self._rebuilt(path, _csplit((keys, vals), j), self._len + 1), None
        root = _ccopy(path, (keys, vals), 1, not j)
        return self._make(root, self._height, self._len + 1), None  # type: ignore[return-value]

    def delete(self, key: K) -> CountedPMap[K, V]:
        """A new map without ``key`` (the same map when ``key`` is absent)."""
        return self.pop(key)[0]

    def split_item(self, key: K, value: V, new: K, new_value: V) -> CountedPMap[K, V]:
        """As :meth:`PMap.split_item` (two updates here)."""
        return self.set(key, value).set(new, new_value)

    def replace_key(self, old: K, new: K, value: V) -> CountedPMap[K, V]:
        """As :meth:`PMap.replace_key` (two updates here)."""
        return self.delete(old).set(new, value)

    def _rebuilt(
        self, path: list[tuple[_Node, int]], parts: list[Any], length: int
    ) -> CountedPMap[K, V]:
        """Replace the node at the bottom of ``path`` by ``parts`` (split, merged or gone)."""
        height = self._height
        while path:
            (bkeys, children, counts), i = path.pop()  # type: ignore[misc]
            children = children[:i] + parts + children[i + 1 :]
            bkeys = bkeys[:i] + [p[0][0] for p in parts] + bkeys[i + 1 :]
            counts = counts[:i] + array("q", [_size(p) for p in parts]) + counts[i + 1 :]
            if len(parts) == 1 and len(parts[0][0]) < _MIN and len(children) > 1:
                k = i if i + 1 < len(children) else i - 1
                left, right = children[k], children[k + 1]
                if len(left) == 2:
                    both: Any = (left[0] + right[0], left[1] + right[1])
                else:
                    both = (left[0] + right[0], left[1] + right[1], left[2] + right[2])
                merged = _csplit(both)
                children[k : k + 2] = merged
                bkeys[k : k + 2] = [m[0][0] for m in merged]
                counts[k : k + 2] = array("q", [_size(m) for m in merged])
            parts = _csplit((bkeys, children, counts), i + len(parts) - 1) if children else []
        if not parts:
            return self._make(_EMPTY, 0, length)  # type: ignore[return-value]
        if len(parts) > 1:
            top: Any = ([p[0][0] for p in parts], parts, array("q", [_size(p) for p in parts]))
            return self._make(top, height + 1, length)  # type: ignore[return-value]
        root = parts[0]
        while height > 0 and len(root[1]) == 1:
            root = root[1][0]
            height -= 1
        return self._make(root, height, length)  # type: ignore[return-value]

    # -- positional queries ----------------------------------------------------------------

    def position(self, key: K) -> int:
        """How many keys are smaller than ``key`` (its index when present), in O(log n)."""
        node: Any = self._root
        pos = 0
        for _ in range(self._height):
            i = bisect_right(node[0], key) - 1
            if i > 0:
                pos += sum(node[2][:i])
            elif i < 0:
                return 0
            node = node[1][i]
        return pos + bisect_left(node[0], key)

    def run_end(self, key: K, number: Callable[[K], int]) -> K | None:
        """The last key of the run of consecutive keys that starts at ``key``; ``None`` if absent.

        ``number`` numbers the key space, strictly increasing over the map's keys; keys ``a <
        b`` next to each other in the map are consecutive when ``number(b) == number(a) + 1``.
        Since ``number(k) - position(k)`` never decreases along the keys, the run ends at the
        last key where it still equals its value at ``key``: one descent to ``key`` for its
        position, a check of the map's last key (runs often go on to the end), then one
        descent with a binary search among the children of each node: O(log n) calls of
        ``number`` in all.
        """
        node: Any = self._root
        height = self._height
        pos = 0
        for _ in range(height):
            i = bisect_right(node[0], key) - 1
            if i > 0:
                pos += sum(node[2][:i])
            elif i < 0:
                return None
            node = node[1][i]
        keys = node[0]
        j = bisect_left(keys, key)
        if j == len(keys) or keys[j] != key:
            return None
        target = number(key) - pos - j
        node = self._root
        for _ in range(height):
            node = node[1][-1]
        last_key = node[0][-1]
        if number(last_key) - (self._len - 1) <= target:
            return last_key  # type: ignore[no-any-return]
        node = self._root
        base = 0  # items before ``node``
        for _ in range(height):
            keys, children, counts = node
            starts = list(accumulate(counts, initial=base))
            # The first child always qualifies: it starts at or before ``key``'s run.
            i = bisect_right(range(len(keys)), target, key=lambda c: number(keys[c]) - starts[c])
            base = starts[i - 1]
            node = children[i - 1]
        keys = node[0]
        j = bisect_right(range(len(keys)), target, key=lambda t: number(keys[t]) - base - t)
        return keys[j - 1]  # type: ignore[no-any-return]
