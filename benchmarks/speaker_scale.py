"""Liveness cost at scale: 10 to 300 simulated speakers, projected to 1,000.

Run from the repository root (no root needed; about 3 minutes)::

    python -m benchmarks.speaker_scale [--window 10] [--probe 10 100 300] [--lease 10 30 100]

Each configuration runs in a fresh process: ``N`` simulated speakers, each the speaker's real
liveness component fed by a Lease watch exactly as the speaker feeds it (``observe`` then
``alive`` per event), against a faithful in-process stand-in for the API server's Lease
objects: conditional merge PATCHes, creates, GETs, ``resourceVersion``s, and a watch that
delivers every write to every speaker (each delivery JSON-encoded and decoded once, the
parse a real watcher pays).

* ``probe`` (the default design): :class:`~announcers.kubernetes.liveness.ProbeLiveness`, real
  UDP probes on loopback between the N speakers; then one speaker is killed and the time to
  its verdict and the writes it cost are measured.
* ``lease`` (the baseline, before issue 11): :class:`~announcers.kubernetes.liveness.LeaseLiveness`,
  each node renewing its Lease every 0.25 s. From 100 speakers it saturates the one core the
  whole simulation has: the figures are then what one core achieved, and the CPU per speaker
  is projected from the measured cost per watch event at the nominal rate (4 writes per node
  per second, each delivered to N speakers).

Reported per configuration, steady state (nothing changing): liveness writes per second
cluster-wide and per node per minute, watch events per second cluster-wide, reads per second,
UDP datagrams per second, CPU per speaker in millicores (process CPU time / window / N) and
memory per speaker (resident-set growth / N); then a projection to 1,000 nodes.
Targets (issue 11): <= 6 liveness writes per node per minute; watch events O(N); speaker CPU
<= 50m at 100 nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from announcers.kubernetes.client import AlreadyExists, Conflict, Kind, NotFound
from announcers.kubernetes.liveness import LeaseLiveness, ProbeLiveness, lease_name
from announcers.kubernetes.membership import Detector, Send

NS = "metallb-system"
Watcher = Callable[[str, dict[str, Any]], None]


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """JSON merge patch (RFC 7386) in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping):
            child = target.get(key)
            if not isinstance(child, dict):
                child = target[key] = {}
            merge(child, value)
        else:
            target[key] = copy.deepcopy(value)


class LeaseStore:
    """The API server's Lease objects, in process (see the module docstring)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.watchers: list[Watcher] = []
        self.writes = self.reads = self.events = 0

    def subscribe(self, watcher: Watcher) -> None:
        for name, obj in self.objects.items():
            watcher(f"{NS}/{name}", copy.deepcopy(obj))
        self.watchers.append(watcher)

    def _publish(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        data = json.dumps(obj)
        key = f"{NS}/{obj['metadata']['name']}"
        for watcher in list(self.watchers):
            self.events += 1
            watcher(key, json.loads(data))
        return copy.deepcopy(obj)

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        await asyncio.sleep(0)
        self.reads += 1
        obj = self.objects.get(name)
        if obj is None:
            raise NotFound(404, "NotFound", name)
        return copy.deepcopy(obj)

    async def create(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        name = body["metadata"]["name"]
        if name in self.objects:
            raise AlreadyExists(409, "AlreadyExists", name)
        self.version += 1
        obj = copy.deepcopy(dict(body))
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[name] = obj
        return self._publish(obj)

    async def patch(
        self, kind: Kind, name: str, patch: Mapping[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        await asyncio.sleep(0)
        obj = self.objects.get(name)
        if obj is None:
            raise NotFound(404, "NotFound", name)
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != obj["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", name)
        merge(obj, patch)
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        return self._publish(obj)


def rss() -> int:
    """Resident set size of this process, bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class CountingDetector(Detector):
    """Counts the datagrams a detector sends."""

    sent = 0

    def tick(self, now: float) -> list[Any]:
        actions = super().tick(now)
        CountingDetector.sent += sum(isinstance(a, Send) for a in actions)
        return actions

    def receive(self, message: Any, source: Any, *, now: float) -> list[Any]:
        actions = super().receive(message, source, now=now)
        CountingDetector.sent += sum(isinstance(a, Send) for a in actions)
        return actions


async def one(design: str, n: int, window: float) -> dict[str, Any]:
    store = LeaseStore()
    api = cast(Any, store)
    base = rss()
    sources: list[Any] = []
    tasks: list[asyncio.Task[Any]] = []
    rng = random.Random(1)
    for i in range(n):
        node = f"node-{i:04d}"
        live: Any
        if design == "probe":
            live = ProbeLiveness(
                api, namespace=NS, node=node, bind=("127.0.0.1", 0), rng=random.Random(i)
            )
            live.detector.__class__ = CountingDetector
        else:
            live = LeaseLiveness(api, namespace=NS, node=node, duration=1, renew_period=0.25)

        def handler(key: str, obj: dict[str, Any], live: Any = live) -> None:
            live.observe(key, obj)
            live.alive(time.monotonic())  # the speaker's _check_alive, per event

        store.subscribe(handler)
        sources.append(live)
        tasks.append(asyncio.create_task(live.run()))
        if i % 20 == 19:
            await asyncio.sleep(rng.uniform(0.0, 0.05))  # spread the phases
    settle = 3.0 if design == "probe" else 2.0
    await asyncio.sleep(settle)
    members = sum(1 for o in store.objects.values() if (o.get("spec") or {}).get("holderIdentity"))
    writes0, reads0, events0 = store.writes, store.reads, store.events
    sent0 = CountingDetector.sent
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    result: dict[str, Any] = {
        "design": design,
        "n": n,
        "members": members,
        "window": wall,
        "writes_per_s": (store.writes - writes0) / wall,
        "reads_per_s": (store.reads - reads0) / wall,
        "events_per_s": (store.events - events0) / wall,
        "datagrams_per_s": (CountingDetector.sent - sent0) / wall,
        "cpu_cores": cpu / wall,
        "rss_per_speaker": (rss() - base) / n,
    }
    if design == "probe":
        victim = tasks[n // 2]
        victim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await victim
        died = time.monotonic()
        writes1, events1 = store.writes, store.events
        name = lease_name(f"node-{n // 2:04d}")
        while (store.objects[name].get("spec") or {}).get("holderIdentity"):
            await asyncio.sleep(0.005)
            if time.monotonic() - died > 10:
                break
        result["verdict_after"] = time.monotonic() - died
        await asyncio.sleep(1.0)
        result["death_writes"] = store.writes - writes1
        result["death_events"] = store.events - events1
        result["false_verdicts"] = sum(
            1 for s in sources for who in s.condemned if who != f"node-{n // 2:04d}"
        )
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return result


def measure(design: str, n: int, window: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.speaker_scale", "--one", design, str(n),
         "--window", str(window)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--probe", type=int, nargs="*", default=[10, 100, 300])
    parser.add_argument("--lease", type=int, nargs="*", default=[10, 30, 100])
    parser.add_argument("--one", nargs=2, metavar=("DESIGN", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(asyncio.run(one(args.one[0], int(args.one[1]), args.window))))
        return 0
    rows = [measure("probe", n, args.window) for n in args.probe]
    rows += [measure("lease", n, args.window) for n in args.lease]
    print(f"Steady state, {args.window:g} s measured per configuration (one process, one core)\n")
    print("| design | N | liveness writes/s | writes/node/min | watch events/s | reads/s | "
          "UDP datagrams/s | CPU per speaker | memory per speaker |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        nominal = 4 * r["n"] if r["design"] == "lease" else 0
        saturated = nominal and r["writes_per_s"] < 0.9 * nominal
        cpu = r["cpu_cores"] / r["n"] * 1000
        projected = ""
        if saturated:
            projected = (
                f" (saturated: {r['writes_per_s'] / nominal:.0%} of the writes; "
                f"{cpu * nominal / max(r['writes_per_s'], 1e-9):.0f}m at full rate)"
            )
        label = "probe (default)" if r["design"] == "probe" else "lease (baseline)"
        print(
            f"| {label} | {r['n']} | {r['writes_per_s']:.1f} | "
            f"{r['writes_per_s'] / r['n'] * 60:.2f} | {r['events_per_s']:.0f} | "
            f"{r['reads_per_s']:.1f} | {r['datagrams_per_s']:.0f} | {cpu:.2f}m{projected} | "
            f"{r['rss_per_speaker'] / 1024:.0f} KiB |"
        )
    deaths = [r for r in rows if "verdict_after" in r]
    if deaths:
        print("\n| probe design, one speaker killed | N | verdict after | writes | "
              "watch events | false verdicts |\n|---|---|---|---|---|---|")  # fmt: skip
        for r in deaths:
            print(
                f"| | {r['n']} | {r['verdict_after']:.2f} s | {r['death_writes']} | "
                f"{r['death_events']} | {r['false_verdicts']} |"
            )
    print("\nProjection to 1,000 nodes (from the largest measured N of each design):")
    for design in ("probe", "lease"):
        mine = [r for r in rows if r["design"] == design]
        if not mine:
            continue
        big = max(mine, key=lambda r: r["n"])
        if design == "probe":
            cpu = big["cpu_cores"] / big["n"] * 1000
            mem = big["rss_per_speaker"] * 1000 / big["n"]  # the records grow with N
            print(
                f"- probe: 0 liveness writes and 0 watch events per second in steady state; "
                f"{big['reads_per_s'] / big['n'] * 1000:.0f} reads/s cluster-wide; "
                f"{big['datagrams_per_s'] / big['n']:.0f} datagrams/s per node (constant); "
                f"CPU per speaker ~{cpu:.1f}m (constant per node); memory per speaker "
                f"<= {max(mem, big['rss_per_speaker']) / 1024:.0f} KiB "
                "(one record per member, linear); a death: 1 write, 1,000 watch events."
            )
        else:
            per_event = big["cpu_cores"] / max(big["events_per_s"], 1e-9)
            events = 4 * 1000 * 1000
            print(
                f"- lease: 4,000 writes/s (240 per node per minute), {events:,} watch events/s "
                f"cluster-wide; at the cost per event measured at N={big['n']} "
                f"({per_event * 1e6:.1f} us, and growing with N: alive() scans every Lease), "
                f"{per_event * events / 1000 * 1000:.0f}m per speaker at least."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
