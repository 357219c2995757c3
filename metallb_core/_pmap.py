"""A persistent sorted map: a path-copying B+tree.

Every update returns a new map and leaves the old one intact, sharing all untouched nodes, so
a :class:`~metallb_core.State` can be kept, compared and reused after any transition at the
cost of O(log n) new nodes per update. Lookups, updates, floor/ceiling queries and deletes are
O(log n); iteration is in key order. Node fan-out is large (up to ``_MAX`` entries) so that the
tree is shallow and most of the work is done by :mod:`bisect` and list slicing in C.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar, overload


class _Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Comparable)
V = TypeVar("V")
T = TypeVar("T")

_MAX = 64  # entries per node before it splits
_MIN = 16  # entries per node below which it merges with a sibling


class _Leaf:
    __slots__ = ("keys", "vals")

    def __init__(self, keys: list[Any], vals: list[Any]) -> None:
        self.keys = keys
        self.vals = vals


class _Branch:
    # keys[i] is the smallest key stored under children[i].
    __slots__ = ("children", "keys")

    def __init__(self, keys: list[Any], children: list[_Node]) -> None:
        self.keys = keys
        self.children = children


_Node = _Leaf | _Branch


def _size(node: _Node) -> int:
    return len(node.keys)


def _split(node: _Node) -> list[_Node]:
    """One node, or two halves when it grew past ``_MAX``."""
    n = len(node.keys)
    if n <= _MAX:
        return [node]
    half = n // 2
    if isinstance(node, _Leaf):
        return [
            _Leaf(node.keys[:half], node.vals[:half]),
            _Leaf(node.keys[half:], node.vals[half:]),
        ]
    return [
        _Branch(node.keys[:half], node.children[:half]),
        _Branch(node.keys[half:], node.children[half:]),
    ]


def _concat(left: _Node, right: _Node) -> _Node:
    if isinstance(left, _Leaf):
        assert isinstance(right, _Leaf)
        return _Leaf(left.keys + right.keys, left.vals + right.vals)
    assert isinstance(right, _Branch)
    return _Branch(left.keys + right.keys, left.children + right.children)


class PMap(Mapping[K, V], Generic[K, V]):
    """An immutable mapping with persistent updates and ordered queries.

    >>> m = PMap[int, str]().set(3, "c").set(1, "a")
    >>> list(m.items()), m.floor_item(2), m.ceiling_item(2)
    ([(1, 'a'), (3, 'c')], (1, 'a'), (3, 'c'))
    >>> m.delete(1).get(1) is None, m.get(1)
    (True, 'a')
    """

    __slots__ = ("_len", "_root")

    def __init__(self) -> None:
        self._root: _Node = _Leaf([], [])
        self._len = 0

    @classmethod
    def _make(cls, root: _Node, length: int) -> PMap[K, V]:
        new: PMap[K, V] = cls.__new__(cls)
        new._root = root
        new._len = length
        return new

    @classmethod
    def from_sorted(cls, items: list[tuple[K, V]]) -> PMap[K, V]:
        """Build from items already sorted by key, without duplicates, in O(n)."""
        if not items:
            return cls()
        step = _MAX // 2 + _MAX // 4
        level: list[_Node] = [
            _Leaf([k for k, _ in items[i : i + step]], [v for _, v in items[i : i + step]])
            for i in range(0, len(items), step)
        ]
        while len(level) > 1:
            level = [
                _Branch([c.keys[0] for c in level[i : i + step]], level[i : i + step])
                for i in range(0, len(level), step)
            ]
        return cls._make(level[0], len(items))

    # -- Mapping ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        for leaf in self._leaves():
            yield from leaf.keys

    def __getitem__(self, key: K) -> V:
        node = self._root
        while isinstance(node, _Branch):
            i = bisect_right(node.keys, key) - 1
            if i < 0:
                raise KeyError(key)
            node = node.children[i]
        j = bisect_left(node.keys, key)
        if j < len(node.keys) and node.keys[j] == key:
            value: V = node.vals[j]
            return value
        raise KeyError(key)

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | T, /) -> V | T: ...
    def get(self, key: K, default: object = None, /) -> object:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __repr__(self) -> str:
        return f"PMap({dict(self.items())!r})"

    def items_in_order(self) -> Iterator[tuple[K, V]]:
        """Items in ascending key order (``items()`` is the same order)."""
        for leaf in self._leaves():
            yield from zip(leaf.keys, leaf.vals, strict=True)

    def _leaves(self) -> Iterator[_Leaf]:
        stack: list[_Node] = [self._root]
        while stack:
            node = stack.pop()
            if isinstance(node, _Leaf):
                yield node
            else:
                stack.extend(reversed(node.children))

    # -- ordered queries -------------------------------------------------------------------

    def floor_item(self, key: K) -> tuple[K, V] | None:
        """The item with the largest key ``<= key``, or ``None``."""
        node = self._root
        while isinstance(node, _Branch):
            i = bisect_right(node.keys, key) - 1
            if i < 0:
                return None
            node = node.children[i]
        j = bisect_right(node.keys, key) - 1
        if j < 0:
            return None
        return node.keys[j], node.vals[j]

    def ceiling_item(self, key: K) -> tuple[K, V] | None:
        """The item with the smallest key ``>= key``, or ``None``."""
        node = self._root
        path: list[tuple[_Branch, int]] = []
        while isinstance(node, _Branch):
            i = max(bisect_right(node.keys, key) - 1, 0)
            path.append((node, i))
            node = node.children[i]
        j = bisect_left(node.keys, key)
        if j < len(node.keys):
            return node.keys[j], node.vals[j]
        # Every key of this leaf is smaller: the answer is the first key of the next leaf.
        while path:
            branch, i = path.pop()
            if i + 1 < len(branch.children):
                nxt: _Node = branch.children[i + 1]
                while isinstance(nxt, _Branch):
                    nxt = nxt.children[0]
                return nxt.keys[0], nxt.vals[0]
        return None

    # -- updates ---------------------------------------------------------------------------

    def set(self, key: K, value: V) -> PMap[K, V]:
        """A new map where ``key`` maps to ``value``."""
        path: list[tuple[_Branch, int]] = []
        node = self._root
        while isinstance(node, _Branch):
            i = max(bisect_right(node.keys, key) - 1, 0)
            path.append((node, i))
            node = node.children[i]
        j = bisect_left(node.keys, key)
        if j < len(node.keys) and node.keys[j] == key:
            vals = node.vals[:]
            vals[j] = value
            # The keys are unchanged, so the new leaf shares them.
            return self._make(self._rebuild(path, [_Leaf(node.keys, vals)]), self._len)
        keys = node.keys[:]
        vals = node.vals[:]
        keys.insert(j, key)
        vals.insert(j, value)
        leaf = _Leaf(keys, vals)
        parts = _split(leaf) if len(keys) > _MAX else [leaf]
        return self._make(self._rebuild(path, parts), self._len + 1)

    def delete(self, key: K) -> PMap[K, V]:
        """A new map without ``key`` (the same map when ``key`` is absent)."""
        path: list[tuple[_Branch, int]] = []
        node = self._root
        while isinstance(node, _Branch):
            i = bisect_right(node.keys, key) - 1
            if i < 0:
                return self
            path.append((node, i))
            node = node.children[i]
        j = bisect_left(node.keys, key)
        if j >= len(node.keys) or node.keys[j] != key:
            return self
        leaf = _Leaf(node.keys[:j] + node.keys[j + 1 :], node.vals[:j] + node.vals[j + 1 :])
        parts: list[_Node] = [leaf] if leaf.keys else []
        return self._make(self._rebuild(path, parts), self._len - 1)

    @staticmethod
    def _rebuild(path: list[tuple[_Branch, int]], parts: list[_Node]) -> _Node:
        """Replace the child at the bottom of ``path`` by ``parts``, copying the path upward."""
        while path:
            branch, i = path.pop()
            if len(parts) == 1 and (_size(parts[0]) >= _MIN or len(branch.children) == 1):
                # The common case: one child replaced; copy this node's two lists only.
                part = parts[0]
                children = branch.children[:]
                children[i] = part
                keys = branch.keys
                if keys[i] != part.keys[0]:
                    keys = keys[:]
                    keys[i] = part.keys[0]
                parts = [_Branch(keys, children)]
                continue
            children = branch.children[:i] + parts + branch.children[i + 1 :]
            keys = branch.keys[:i] + [p.keys[0] for p in parts] + branch.keys[i + 1 :]
            # Keep nodes from thinning out: merge a small part with a neighbour.
            if len(parts) == 1 and len(children) > 1:
                k = i if i + 1 < len(children) else i - 1
                merged = _split(_concat(children[k], children[k + 1]))
                children[k : k + 2] = merged
                keys[k : k + 2] = [m.keys[0] for m in merged]
            parts = _split(_Branch(keys, children)) if children else []
        if not parts:
            return _Leaf([], [])
        if len(parts) > 1:
            return _Branch([p.keys[0] for p in parts], parts)
        root = parts[0]
        while isinstance(root, _Branch) and len(root.children) == 1:
            root = root.children[0]
        return root
