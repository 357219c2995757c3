"""Fault injection: two controller processes, a seeded plan of Service and pool changes, and
every fault the emulator can make, while a watchdog checks every instant of the cluster.

Per seed: two replicas (``tests.adapter.chaos_replica``, real processes with the tests'
3 s Lease), 20 Services to start with, then at least 150 operations: Services created,
deleted and edited (pool annotation, ports, sharing key, ``spec.loadBalancerIP``, type,
labels) and pool edits (one pool grows, shrinks, comes back), made straight in the
emulator's store as a user's ``kubectl`` would, some while the API is away. Faults, at
seeded points of the plan: the leader killed with SIGKILL (twice) and stopped with SIGTERM
(a new replica replaces each), 409s on the first status write of every object for a while,
Service and Event writes failing with 500/503 at a 15 % rate and answers slowed by up to
50 ms, watches cut, the watch history compacted (resumes get 410), and a 2-5 s outage.

The :class:`~.cluster_checks.Watchdog` fails the run if any instant shows an address in two
Services that may not share it, or a Service loses an address without a change of its own or
of a pool. At the end (faults off) the cluster must reach the fixpoint: a new leader would
write nothing, so every Service that can be served is.

``METALLB_CHAOS_SEEDS`` (e.g. ``1-20`` or ``3,7``) runs other seeds than CI's two. A failing
run prints the replicas' logs, with the stack of every asyncio task of the replicas still
running (SIGUSR1 makes ``chaos_replica`` write them): what a stuck leader waits for.
"""

from __future__ import annotations

import asyncio
import copy
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.emulator import ApiServerEmulator

from .cluster_checks import Watchdog, fixpoint_problems
from .controller_kit import LEASES, NS, REPO, SERVICES, namespace, pool, service

POOLS = "metallb.io/v1beta1/ipaddresspools"
P2_SHAPES = (["10.80.1.0/29"], ["10.80.1.0/29", "10.80.2.0/30"], ["10.80.1.0/30"])
PORTS = (80, 443, 53, 8080)


def _seeds() -> list[int]:
    text = os.environ.get("METALLB_CHAOS_SEEDS", "1,2")
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


class Replicas:
    """The controller processes, by identity."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self.started = 0

    async def start(self) -> str:
        self.started += 1
        identity = f"replica-{self.started}"
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with (self.logs / f"{identity}.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.adapter.chaos_replica",
                self.url,
                identity,
                cwd=REPO,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"ready"
        self.running[identity] = process
        return identity

    async def stop(self, identity: str, sig: int) -> None:
        process = self.running.pop(identity)
        process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        for identity in list(self.running):
            await self.stop(identity, signal.SIGTERM)


def _leader(apiserver: ApiServerEmulator) -> str | None:
    lease = apiserver.read(LEASES, NS, "metallb-core-controller")
    holder = None if lease is None else lease["spec"].get("holderIdentity")
    return holder if isinstance(holder, str) and holder else None


class Plan:
    """The seeded user: Service operations and pool edits, straight into the store."""

    def __init__(self, apiserver: ApiServerEmulator, rng: random.Random) -> None:
        self.apiserver = apiserver
        self.rng = rng
        self.names: list[str] = []
        self.created = 0
        self.p2 = 0
        self.done: dict[str, int] = {}

    def _new_service(self) -> dict[str, Any]:
        rng = self.rng
        self.created += 1
        name = f"s{self.created:03d}"
        notes: dict[str, str] = {}
        if rng.random() < 0.4:
            notes["metallb.io/address-pool"] = rng.choice(["p1", "p2"])
        if rng.random() < 0.35:
            notes["metallb.io/allow-shared-ip"] = rng.choice(["k1", "k2"])
        self.names.append(name)
        return service(name, ports=[rng.choice(PORTS)], annotations=notes)

    def create(self) -> None:
        self.apiserver.seed(self._new_service())

    def delete(self) -> None:
        name = self.names.pop(self.rng.randrange(len(self.names)))
        self.apiserver.remove(SERVICES, "default", name)

    def edit(self) -> str:
        rng = self.rng
        name = rng.choice(self.names)
        stored = copy.deepcopy(self.apiserver.read(SERVICES, "default", name))
        assert stored is not None
        meta, spec = stored["metadata"], stored["spec"]
        notes = meta.setdefault("annotations", {})
        kind = rng.choice(["pool", "ports", "share", "ip", "type", "labels"])
        if kind == "pool":
            choice = rng.choice(["p1", "p2", None, "nope"])
            if choice is None:
                notes.pop("metallb.io/address-pool", None)
            else:
                notes["metallb.io/address-pool"] = choice
        elif kind == "ports":
            spec["ports"] = [{"name": "p", "port": rng.choice(PORTS), "protocol": "TCP"}]
        elif kind == "share":
            if notes.pop("metallb.io/allow-shared-ip", None) is None:
                notes["metallb.io/allow-shared-ip"] = rng.choice(["k1", "k2"])
        elif kind == "ip":
            if spec.pop("loadBalancerIP", None) is None:
                spec["loadBalancerIP"] = rng.choice(
                    [f"10.80.0.{rng.randrange(16)}", f"10.80.1.{rng.randrange(8)}"]
                )
        elif kind == "type":
            spec["type"] = "ClusterIP" if spec.get("type") == "LoadBalancer" else "LoadBalancer"
            if spec["type"] == "ClusterIP":
                spec.pop("loadBalancerIP", None)
                for port in spec["ports"]:
                    port.pop("nodePort", None)
        else:
            meta["labels"] = {"tier": rng.choice(["a", "b"])}
        self.apiserver.seed(stored)
        return kind

    def edit_pool(self) -> None:
        self.p2 = (self.p2 + 1 + self.rng.randrange(2)) % len(P2_SHAPES)
        self.apiserver.seed(pool("p2", *P2_SHAPES[self.p2]))

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.07:
            self.edit_pool()
            what = "pool edit"
        elif roll < 0.35 or len(self.names) < 8:
            self.create()
            what = "create"
        elif roll < 0.55:
            self.delete()
            what = "delete"
        else:
            what = f"edit {self.edit()}"
        self.done[what] = self.done.get(what, 0) + 1


@pytest_asyncio.fixture
async def chaos_apiserver() -> AsyncIterator[ApiServerEmulator]:
    async with ApiServerEmulator() as emulator:
        await emulator.start()
        yield emulator


async def _settled(apiserver: ApiServerEmulator, timeout: float) -> list[str]:
    """Wait until the cluster is at the fixpoint and stays there for 2 s; the problems left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    calm_since: float | None = None
    while True:
        problems = fixpoint_problems(apiserver)
        now = loop.time()
        if problems:
            calm_since = None
        elif calm_since is None:
            calm_since = now
        elif now - calm_since >= 2.0:
            return []
        if now > deadline:
            return problems
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("seed", _seeds())
async def test_no_address_twice_through_faults(
    chaos_apiserver: ApiServerEmulator, tmp_path: Path, seed: int
) -> None:
    apiserver = chaos_apiserver
    rng = random.Random(seed)
    apiserver.seed(namespace(NS), pool("p1", "10.80.0.0/28"), pool("p2", *P2_SHAPES[0]))
    plan = Plan(apiserver, rng)
    for _ in range(20):
        plan.create()
    watchdog = Watchdog(apiserver)
    replicas = Replicas(apiserver.base_url, tmp_path)
    operations = 160
    points = rng.sample(range(10, operations - 10), 9)
    faults = dict(
        zip(
            points,
            [
                "kill",
                "term",
                "kill",
                "conflicts on",
                "flaky on",
                "drop watches",
                "expire watches",
                "outage",
                "conflicts off",
            ],
            strict=True,
        )
    )
    happened: list[str] = []
    try:
        await replicas.start()
        await replicas.start()
        for i in range(operations):
            fault = faults.get(i)
            if fault is not None:
                happened.append(await _fault(apiserver, replicas, rng, fault))
            plan.step()
            await asyncio.sleep(rng.uniform(0, 0.08))
        apiserver.chaos()
        apiserver.conflict_on_first_status_write(False)
        if not apiserver.available:
            await apiserver.come_back()
        problems = await _settled(apiserver, timeout=60)
        if problems:
            for process in replicas.running.values():
                process.send_signal(signal.SIGUSR1)  # their task stacks, into their logs
            await asyncio.sleep(0.5)
    finally:
        apiserver.chaos()
        if not apiserver.available:
            await apiserver.come_back()
        await replicas.close()
        watchdog.detach()
    logs = {p.name: p.read_text()[-40000:] for p in sorted(tmp_path.glob("*.log"))}
    print("\n".join([*watchdog.violations, *problems, *happened]))
    if watchdog.violations or problems:
        print(f"leader: {_leader(apiserver)}; pools: {apiserver.list_stored(POOLS)}")
        for name, text in logs.items():
            print(f"--- {name}\n{text}")
    assert watchdog.violations == [], (watchdog.violations, happened)
    assert problems == [], (problems, happened)
    assert sum(plan.done.values()) == operations
    assert watchdog.status_writes > 20  # the controllers did work through it all
    assert len([h for h in happened if h.startswith(("killed", "stopped"))]) == 3


async def _fault(
    apiserver: ApiServerEmulator, replicas: Replicas, rng: random.Random, fault: str
) -> str:
    if fault in ("kill", "term"):
        leader = _leader(apiserver)
        if leader not in replicas.running:
            leader = rng.choice(sorted(replicas.running))
        await replicas.stop(leader, signal.SIGKILL if fault == "kill" else signal.SIGTERM)
        await replicas.start()
        return f"{'killed' if fault == 'kill' else 'stopped'} {leader}"
    if fault == "conflicts on":
        apiserver.conflict_on_first_status_write(True)
    elif fault == "conflicts off":
        apiserver.conflict_on_first_status_write(False)
    elif fault == "flaky on":
        apiserver.chaos(slowness=0.05, flakiness=0.15, seed=rng.randrange(2**32))
    elif fault == "drop watches":
        apiserver.drop_watches()
    elif fault == "expire watches":
        apiserver.compact()
        apiserver.drop_watches()
    elif fault == "outage":
        seconds = rng.uniform(2, 5)
        await apiserver.go_away("refuse", seconds=seconds)
        return f"outage {seconds:.1f} s"
    return fault
