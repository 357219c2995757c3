"""When to send announcement rounds. Pure: the caller passes the time in.

MetalLB's rhythm: a round at once when an address is taken over, then one every 1.1 s
until 5 s have passed, so rounds go out at 0, 1.1, 2.2, 3.3 and 4.4 s. The 1.1 s spacing
lands each round after the 1 s ARP ``locktime`` of Linux clients. With a refresh period, a
round then follows every ``refresh`` seconds after the last one, for as long as the address
is held (switch FDB entries age out in 300 s, gateway ARP caches often last longer).

>>> schedule = RoundSchedule()
>>> schedule.start("vip", now=100.0)  # the caller sends the first round itself
>>> [round(t - 100.0, 1) for t in schedule.times("vip", until=200.0)]
[1.1, 2.2, 3.3, 4.4]
>>> schedule.due(now=101.2)
['vip']
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_WINDOW", "RoundSchedule"]

DEFAULT_INTERVAL = 1.1
"""Seconds between the rounds that follow a takeover (MetalLB's 1100 ms ticker)."""
DEFAULT_WINDOW = 5.0
"""Seconds after a takeover during which rounds are repeated every interval."""

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Entry:
    started: float
    next_due: float


class RoundSchedule(Generic[K]):
    """Tracks, per key (typically ``(address, interface)``), when the next round is due.

    ``interval``: spacing of the rounds after a takeover; ``window``: how long after the
    takeover those rounds continue (a round is sent at ``k * interval`` while that is at
    most ``window``); ``refresh``: if set, a round every ``refresh`` seconds after the last
    one, forever.

    A heap orders the rounds: :meth:`next_deadline` is O(1) (amortised) and :meth:`due`
    costs O(log n) per round it returns, so a thread that asks on every wake-up pays
    nothing for the number of addresses held.
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        window: float = DEFAULT_WINDOW,
        refresh: float | None = None,
    ) -> None:
        if not interval > 0 or not math.isfinite(interval):
            raise ValueError(f"interval must be a positive number of seconds, not {interval}")
        if not window >= 0 or not math.isfinite(window):
            raise ValueError(f"window must be a non-negative number of seconds, not {window}")
        if refresh is not None and (not refresh > 0 or not math.isfinite(refresh)):
            raise ValueError(f"refresh must be a positive number of seconds, not {refresh}")
        self.interval = interval
        self.window = window
        self.refresh = refresh
        self._entries: dict[K, _Entry] = {}
        # (due, tie-breaker, key, entry); stale items (cancelled, restarted) are skipped.
        self._heap: list[tuple[float, int, K, _Entry]] = []
        self._tie = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def start(self, key: K, now: float) -> None:
        """``key`` was just taken over and its first round sent at ``now``: schedule the rest.

        Starting a key that is already scheduled restarts its rounds.
        """
        entry = _Entry(started=now, next_due=now)
        if self._advance(entry):
            self._entries[key] = entry
            self._push(key, entry)
        else:
            self._entries.pop(key, None)

    def cancel(self, key: K) -> None:
        """No more rounds for ``key`` (a no-op if none are scheduled)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """No more rounds for anything."""
        self._entries.clear()
        self._heap.clear()

    def _push(self, key: K, entry: _Entry) -> None:
        heapq.heappush(self._heap, (entry.next_due, next(self._tie), key, entry))

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            due, _, key, entry = heap[0]
            if self._entries.get(key) is entry and entry.next_due == due:
                return
            heapq.heappop(heap)

    def next_deadline(self) -> float | None:
        """When the earliest round is due, or ``None`` if none is scheduled."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[K]:
        """The keys whose round is due at ``now``, each once, scheduling their next round.

        A round that is late by more than a whole interval is not repeated to catch up.
        """
        keys: list[K] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return keys
            _, _, key, entry = heapq.heappop(self._heap)
            keys.append(key)
            # Skip rounds that were missed (a suspended process), but keep the grid.
            while entry.next_due <= now:
                if not self._advance(entry):
                    del self._entries[key]
                    break
            else:
                self._push(key, entry)

    def times(self, key: K, until: float) -> Iterator[float]:
        """The times of the rounds still to come for ``key``, up to ``until`` (for tests and
        documentation; does not change the schedule)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        probe = _Entry(entry.started, entry.next_due)
        while probe.next_due <= until:
            yield probe.next_due
            if not self._advance(probe):
                return

    def _advance(self, entry: _Entry) -> bool:
        """Move ``entry`` to its next round; ``False`` if there is none."""
        # Count whole intervals from the start so that floating-point drift cannot add or
        # drop a round at the end of the window.
        step = round((entry.next_due - entry.started) / self.interval)
        next_in_window = entry.started + (step + 1) * self.interval
        if next_in_window <= entry.started + self.window + 1e-9:
            entry.next_due = next_in_window
            return True
        if self.refresh is None:
            return False
        entry.next_due += self.refresh
        return True
