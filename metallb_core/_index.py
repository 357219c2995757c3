"""What a configuration means for the allocator, computed once per configuration.

The index answers, in O(log C) for C CIDRs in the whole config: which pool owns an address
(taking ``exclude`` and ``avoid_buggy_ips`` into account), and which is the next address at
or after a given one that some pool could hand out. Capacities are exact integers.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from metallb_core._addresses import (
    V6_OFFSET,
    bounds,
    buggy_between,
    is_buggy,
    merge_intervals,
)
from metallb_core._config import Config, Pool

NEVER = 1 << 200
"""A key above every address: "no such address"."""


class _Span:
    """One pool CIDR as a key interval."""

    __slots__ = ("excl_ends", "excl_removed", "excl_starts", "hi", "lo", "pool", "skip_buggy")

    def __init__(self, lo: int, hi: int, pool: int, avoid_buggy: bool, excl: list[tuple[int, int]]):
        self.lo = lo
        self.hi = hi
        self.pool = pool
        self.skip_buggy = avoid_buggy and lo < V6_OFFSET
        self.excl_starts = [a for a, _ in excl]
        self.excl_ends = [b for _, b in excl]
        # excl_removed[j]: usable addresses the first j exclusions take away (an address both
        # excluded and avoided is taken away once).
        self.excl_removed = [0]
        for a, b in excl:
            gone = b - a + 1 - (buggy_between(a, b) if self.skip_buggy else 0)
            self.excl_removed.append(self.excl_removed[-1] + gone)


class ConfigIndex:
    """Derived lookup tables for one :class:`Config`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pools: tuple[Pool, ...] = config.pools
        self.by_name: Mapping[str, int] = {p.name: i for i, p in enumerate(config.pools)}
        spans: list[_Span] = []
        self.pool_spans: list[tuple[_Span, ...]] = []
        self.capacity: list[tuple[int, int]] = []
        for i, pool in enumerate(config.pools):
            excluded = merge_intervals(bounds(n) for n in pool.exclude)
            own: list[_Span] = []
            cap = [0, 0]
            for net in pool.cidrs:
                lo, hi = bounds(net)
                excl = [(max(a, lo), min(b, hi)) for a, b in excluded if a <= hi and b >= lo]
                span = _Span(lo, hi, i, pool.avoid_buggy_ips, excl)
                own.append(span)
                cap[0 if net.version == 4 else 1] += self._usable_count(span, lo, hi)
            spans.extend(own)
            self.pool_spans.append(tuple(own))
            self.capacity.append((cap[0], cap[1]))
        spans.sort(key=lambda s: s.lo)
        self._spans = spans
        self._starts = [s.lo for s in spans]
        # _before[i]: usable addresses in the spans before spans[i] (all pools together).
        self._before = [0]
        for span in spans:
            self._before.append(self._before[-1] + self._usable_count(span, span.lo, span.hi))
        # Pools tried when a Service names none: unrestricted auto-assign pools, config order.
        self.fallback: tuple[int, ...] = tuple(
            i for i, p in enumerate(config.pools) if p.auto_assign and p.service_allocation is None
        )
        self.with_allocation: tuple[int, ...] = tuple(
            i
            for i, p in enumerate(config.pools)
            if p.auto_assign and p.service_allocation is not None
        )

    @staticmethod
    def _usable_count(span: _Span, lo: int, hi: int) -> int:
        """Addresses of ``span`` in ``[lo, hi]`` that can be handed out."""
        total = hi - lo + 1
        if span.skip_buggy:
            total -= buggy_between(lo, hi)
        for a, b in zip(span.excl_starts, span.excl_ends, strict=True):
            a, b = max(a, lo), min(b, hi)
            if a <= b:
                total -= b - a + 1
                if span.skip_buggy:
                    total += buggy_between(a, b)  # already subtracted once as buggy
        return total

    def _span_at(self, key: int) -> _Span | None:
        i = bisect.bisect_right(self._starts, key) - 1
        if i >= 0 and self._spans[i].hi >= key:
            return self._spans[i]
        return None

    def owner(self, key: int) -> int | None:
        """The pool that may hand out ``key``, or ``None`` (outside, excluded or avoided)."""
        span = self._span_at(key)
        if span is None or (span.skip_buggy and is_buggy(key)):
            return None
        j = bisect.bisect_right(span.excl_starts, key) - 1
        if j >= 0 and span.excl_ends[j] >= key:
            return None
        return span.pool

    def ordinal(self, key: int) -> int:
        """How many addresses ``<= key`` some pool may hand out, in O(log C + log X).

        Two usable addresses ``a < b`` have nothing usable between them exactly when
        ``ordinal(b) == ordinal(a) + 1``: the numbering the free-address search runs on.

        >>> from metallb_core import Config, Pool
        >>> ix = ConfigIndex(Config(pools=[Pool(name="p", cidrs=["10.0.0.0/30"])]))
        >>> from metallb_core._addresses import key_of
        >>> from ipaddress import ip_address
        >>> ix.ordinal(key_of(ip_address("10.0.0.0"))), ix.ordinal(key_of(ip_address("10.0.0.9")))
        (1, 4)
        """
        i = bisect.bisect_right(self._starts, key) - 1
        if i < 0:
            return 0
        span = self._spans[i]
        if key >= span.hi:
            return self._before[i + 1]
        lo = span.lo
        count = key - lo + 1
        if span.skip_buggy:
            count -= buggy_between(lo, key)
        j = bisect.bisect_right(span.excl_starts, key) - 1
        if j >= 0:
            count -= span.excl_removed[j]
            end = min(span.excl_ends[j], key)
            a = span.excl_starts[j]
            count -= end - a + 1
            if span.skip_buggy:
                count += buggy_between(a, end)
        return self._before[i] + count

    def next_usable(self, key: int) -> int:
        """The smallest key ``>= key`` that its pool may hand out, or :data:`NEVER`."""
        i = bisect.bisect_right(self._starts, key) - 1
        if i < 0 or self._spans[i].hi < key:
            i += 1
            if i >= len(self._spans):
                return NEVER
            key = self._spans[i].lo
        while True:
            span = self._spans[i]
            moved = False
            j = bisect.bisect_right(span.excl_starts, key) - 1
            if j >= 0 and span.excl_ends[j] >= key:
                key = span.excl_ends[j] + 1
                moved = True
            elif span.skip_buggy and is_buggy(key):
                key += 1 if key & 0xFF == 0 else 2
                moved = True
            if not moved:
                return key
            if key > span.hi:
                i += 1
                if i >= len(self._spans):
                    return NEVER
                key = self._spans[i].lo
