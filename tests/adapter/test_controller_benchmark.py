"""benchmarks/controller_startup.py at a tiny size: it measures what it says (never timing)."""

from __future__ import annotations

from benchmarks.controller_startup import _run, _table


async def test_benchmark_counts_three_writes_per_cold_service_and_none_on_restart() -> None:
    cold, restart, moved, serial, bare = await _run(12, 4)
    assert [r.per_service("patch services/status") for r in (cold, restart, serial, bare)] == [
        1.0,
        0.0,
        1.0,
        1.0,
    ]
    # Every Service moves to an address nobody shows: one status write each, no interim.
    assert moved.per_service("patch services/status") == 1.0
    assert cold.per_service("patch services") == 1.0
    assert cold.per_service("create events") == 1.0
    assert restart.per_service("patch services", "create events", "patch events") == 0.0
    assert _table([cold, restart, moved, serial, bare]).count("\n") == 6
