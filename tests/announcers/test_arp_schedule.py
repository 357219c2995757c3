"""When announcement rounds are due: MetalLB's rhythm, and the optional refresh."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from announcers.arp.schedule import RoundSchedule

T0 = 1000.0


def rounds_sent(schedule: RoundSchedule[str], until: float, step: float = 0.01) -> list[float]:
    """Drive the schedule with a clock ticking every ``step`` and record when rounds go out."""
    sent = []
    now = T0
    while now <= until:
        sent += [now - T0 for _ in schedule.due(now)]
        now = round(now + step, 6)
    return sent


def test_takeover_rounds_follow_at_1_1_s_until_5_s() -> None:
    schedule: RoundSchedule[str] = RoundSchedule()
    schedule.start("vip", T0)
    assert list(schedule.times("vip", until=T0 + 60)) == pytest.approx(
        [T0 + 1.1, T0 + 2.2, T0 + 3.3, T0 + 4.4]
    )


def test_four_rounds_follow_the_first_one_when_driven_by_a_clock() -> None:
    schedule: RoundSchedule[str] = RoundSchedule()
    schedule.start("vip", T0)
    assert rounds_sent(schedule, T0 + 10) == pytest.approx([1.1, 2.2, 3.3, 4.4], abs=0.011)


def test_no_round_is_due_after_the_window_without_refresh() -> None:
    schedule: RoundSchedule[str] = RoundSchedule()
    schedule.start("vip", T0)
    schedule.due(T0 + 4.5)
    assert schedule.next_deadline() is None


def test_refresh_repeats_a_round_after_the_last_one_forever() -> None:
    schedule: RoundSchedule[str] = RoundSchedule(refresh=30.0)
    schedule.start("vip", T0)
    assert list(schedule.times("vip", until=T0 + 100)) == pytest.approx(
        [T0 + 1.1, T0 + 2.2, T0 + 3.3, T0 + 4.4, T0 + 34.4, T0 + 64.4, T0 + 94.4]
    )


def test_cancel_stops_the_rounds() -> None:
    schedule: RoundSchedule[str] = RoundSchedule(refresh=1.0)
    schedule.start("vip", T0)
    schedule.cancel("vip")
    assert schedule.due(T0 + 100) == []


def test_each_key_has_its_own_rhythm() -> None:
    schedule: RoundSchedule[str] = RoundSchedule()
    schedule.start("a", T0)
    schedule.start("b", T0 + 0.5)
    assert schedule.due(T0 + 1.2) == ["a"]
    assert schedule.due(T0 + 1.7) == ["b"]


def test_a_late_clock_sends_one_round_not_a_burst() -> None:
    schedule: RoundSchedule[str] = RoundSchedule()
    schedule.start("vip", T0)
    assert schedule.due(T0 + 3.4) == ["vip"]
    assert schedule.next_deadline() == pytest.approx(T0 + 4.4)


def test_window_shorter_than_interval_schedules_nothing_more() -> None:
    schedule: RoundSchedule[str] = RoundSchedule(interval=1.1, window=1.0)
    schedule.start("vip", T0)
    assert "vip" not in schedule


def test_restart_begins_a_new_window() -> None:
    schedule: RoundSchedule[str] = RoundSchedule()
    schedule.start("vip", T0)
    schedule.start("vip", T0 + 3.0)
    assert schedule.next_deadline() == pytest.approx(T0 + 4.1)


@pytest.mark.parametrize(
    ("interval", "window", "refresh"),
    [
        (0.0, 5.0, None),
        (-1.0, 5.0, None),
        (1.1, -1.0, None),
        (1.1, 5.0, 0.0),
        (float("nan"), 5.0, None),
    ],
)
def test_invalid_timings_are_rejected(
    interval: float, window: float, refresh: float | None
) -> None:
    with pytest.raises(ValueError, match="must be"):
        RoundSchedule(interval, window, refresh)


@given(
    interval=st.floats(0.05, 5.0),
    window=st.floats(0.0, 20.0),
)
def test_rounds_are_every_interval_up_to_the_window(interval: float, window: float) -> None:
    schedule: RoundSchedule[str] = RoundSchedule(interval, window)
    schedule.start("vip", T0)
    times = list(schedule.times("vip", until=T0 + 100))
    assert times == pytest.approx([T0 + k * interval for k in range(1, len(times) + 1)])
    assert all(t - T0 <= window + 1e-6 for t in times)
    assert (len(times) + 1) * interval > window - 1e-6  # no round missing at the end


class NaiveSchedule:
    """The obvious O(n) reference: every key's next round, scanned on every question."""

    def __init__(self, interval: float, window: float, refresh: float | None) -> None:
        self.interval, self.window, self.refresh = interval, window, refresh
        self.entries: dict[str, tuple[float, float]] = {}  # key -> (started, next due)

    def advance(self, started: float, due: float) -> float | None:
        step = round((due - started) / self.interval)
        following = started + (step + 1) * self.interval
        if following <= started + self.window + 1e-9:
            return following
        return None if self.refresh is None else due + self.refresh

    def start(self, key: str, now: float) -> None:
        following = self.advance(now, now)
        if following is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = (now, following)

    def due(self, now: float) -> set[str]:
        keys = {key for key, (_, due) in self.entries.items() if due <= now}
        for key in keys:
            started, due = self.entries[key]
            while due <= now:
                following = self.advance(started, due)
                if following is None:
                    del self.entries[key]
                    break
                due = following
            else:
                self.entries[key] = (started, due)
        return keys

    def next_deadline(self) -> float | None:
        return min((due for _, due in self.entries.values()), default=None)


operations = st.lists(
    st.tuples(
        st.sampled_from(["start", "cancel", "due", "due"]),
        st.sampled_from("abcde"),
        st.floats(0.0, 3.0),
    ),
    max_size=40,
)


@given(ops=operations, refresh=st.sampled_from([None, 0.7, 2.5]))
def test_the_heap_schedule_behaves_as_the_naive_one(
    ops: list[tuple[str, str, float]], refresh: float | None
) -> None:
    schedule: RoundSchedule[str] = RoundSchedule(1.1, 5.0, refresh)
    naive = NaiveSchedule(1.1, 5.0, refresh)
    now = T0
    for action, key, step in ops:
        now += step
        if action == "start":
            schedule.start(key, now)
            naive.start(key, now)
        elif action == "cancel":
            schedule.cancel(key)
            naive.entries.pop(key, None)
        else:
            due = schedule.due(now)
            assert len(due) == len(set(due))
            assert set(due) == naive.due(now)
        assert schedule.next_deadline() == naive.next_deadline()
        assert len(schedule) == len(naive.entries)
