"""The controller's start-up against the API server emulator: time and API requests per Service.

Run from the repository root (about a minute for 5,000 Services on two cores)::

    python -m benchmarks.controller_startup [--services 5000] [--concurrency 16]

The emulator (``tests/support/emulator/``) runs as a subprocess holding N LoadBalancer
Services, an ``IPAddressPool`` big enough for all of them, and the MetalLB namespace; the
controller runs in this process (real HTTP through lightkube). Rows:

- **cold start**: every Service is pending. Time from start (before the Lease is taken) to
  every status written (the first round done), and to every Event sent; the controller's
  requests divided by N, by kind.
- **restart**: the same Services, now holding their addresses, and a new controller: it must
  write no status at all (the restart contract), so its time is the list-and-converge floor.
- **pool moved (every Service moves)**: the same Services, held, under a running controller;
  then the pool's CIDR is replaced by another one, so every Service must move: time from the
  pool edit to every status showing a new address (one round), and the requests per Service.
  Every write there gives an address up and takes one nobody shows, so the write planner
  (:func:`metallb_core.next_writes`) sends them as one concurrent batch.
- **cold start, one write at a time**: ``write_concurrency=1``, the cost of not overlapping
  the writes (on a real API server, latency-bound, the gap is wider than here).
- **cpu s**: CPU seconds of this process (the controller and its client, not the emulator)
  from start to the last Event; on a shared machine it moves less than the wall times.
- **baseline: bare status PATCHes**: the same N status writes sent straight from lightkube
  with the same concurrency, no core, no annotation, no Event: what the emulator itself
  costs, in the same run. The controller's rows are read against it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from announcers.kubernetes.client import SERVICE, LightkubeApi
from announcers.kubernetes.controller import Controller, Replica, Settings
from announcers.kubernetes.leader import LeaderTiming
from metallb_core.vocabulary import ingress_ips
from tests.support.emulator import EmulatorProcess, kube_config, service_manifest

NS = "metallb-system"
POOL_CIDR = "10.128.0.0/14"  # 262,144 addresses: room for any N this script takes
MOVED_CIDR = "10.132.0.0/14"  # where the "pool moved" row sends them


@dataclasses.dataclass
class Row:
    """One line of the table."""

    scenario: str
    services: int
    to_statuses: float
    to_events: float | None
    requests: collections.Counter[str]
    #: CPU seconds of this process (the controller and its client; not the emulator's) from
    #: the start to the last Event: less disturbed than wall time on a shared machine.
    cpu: float = 0.0

    def per_service(self, *kinds: str) -> float:
        """Requests of these kinds (all when none given) per Service."""
        total = sum(n for k, n in self.requests.items() if not kinds or k in kinds)
        return total / self.services


def _kind(verb: str | None, resource: str | None, subresource: str | None) -> str:
    name = f"{resource}/{subresource}" if subresource else str(resource)
    return f"{verb} {name}"


def _count(log: Iterable[Any]) -> collections.Counter[str]:
    return collections.Counter(_kind(r.verb, r.resource, r.subresource) for r in log)


def _pool(cidr: str) -> dict[str, object]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "bench", "namespace": NS},
        "spec": {"addresses": [cidr]},
    }


def _objects(count: int, holding: bool) -> Iterator[dict[str, object]]:
    yield {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    yield _pool(POOL_CIDR)
    base = ipaddress.ip_network(POOL_CIDR).network_address
    for i in range(count):
        # Node ports would run out (2,768 of them) before the Services do.
        body = service_manifest(
            f"svc-{i:05d}", f"ns-{i % 20:02d}", allocateLoadBalancerNodePorts=False
        )
        if holding:
            ip = str(base + i)
            body["metadata"]["annotations"] = {"metallb.io/ip-allocated-from-pool": "bench"}
            body["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}
        yield body


async def _synced(replica: Replica, task: asyncio.Task[None]) -> Controller:
    """The replica's controller once its first sync is done (the replica's error, if any)."""
    while replica.controller is None or not replica.controller.synced.is_set():
        await asyncio.sleep(0.005)
        if task.done():
            task.result()
    return replica.controller


async def _quiet(controller: Controller) -> None:
    """Until the controller has nothing left to write: statuses and Events."""
    while not (controller.settled and controller.events.idle):
        await asyncio.sleep(0.005)


async def _controller(url: str, control: Any, count: int, **settings: object) -> Row:
    api = LightkubeApi(kube_config(url), trust_env=False)
    timing = LeaderTiming(lease_duration=15, renew_deadline=10, retry_period=0.2)
    replica = Replica(api, Settings(identity="bench", leader=timing, **settings))  # type: ignore[arg-type]
    stop = asyncio.Event()
    control.clear_requests()
    started = time.perf_counter()
    cpu = time.process_time()
    started_loop = asyncio.get_running_loop().time()
    task = asyncio.create_task(replica.run(stop))
    controller = await _synced(replica, task)
    # From the replica's start (Lease included) to the first round's last status write.
    startup = controller.startup
    to_statuses = controller.started_at - started_loop + startup.get("statuses", startup["synced"])
    await _quiet(controller)
    to_events = time.perf_counter() - started
    cpu = time.process_time() - cpu
    requests = _count(control.requests())
    stop.set()
    await task
    await api.close()
    return Row("", count, to_statuses, to_events, requests, cpu)


async def _moved(url: str, control: Any, count: int, concurrency: int) -> Row:
    """A running controller, every Service held; the pool moves: one round moves them all."""
    api = LightkubeApi(kube_config(url), trust_env=False)
    timing = LeaderTiming(lease_duration=15, renew_deadline=10, retry_period=0.2)
    settings = Settings(identity="bench", leader=timing, write_concurrency=concurrency)
    replica = Replica(api, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(replica.run(stop))
    controller = await _synced(replica, task)
    await _quiet(controller)
    moved = ipaddress.ip_network(MOVED_CIDR)

    def done() -> bool:
        for service in controller.services.objects.values():
            shown = ingress_ips(service)
            if not shown or ipaddress.ip_address(shown[0]) not in moved:
                return False
        return True

    control.clear_requests()
    started = time.perf_counter()
    cpu = time.process_time()
    control.seed(_pool(MOVED_CIDR))
    while not done():
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    to_statuses = time.perf_counter() - started
    await _quiet(controller)
    to_events = time.perf_counter() - started
    cpu = time.process_time() - cpu
    requests = _count(control.requests())
    stop.set()
    await task
    await api.close()
    return Row("pool moved (every Service moves)", count, to_statuses, to_events, requests, cpu)


async def _bare_patches(url: str, control: Any, count: int, concurrency: int) -> Row:
    api = LightkubeApi(kube_config(url), trust_env=False)
    base = ipaddress.ip_network(POOL_CIDR).network_address
    gate = asyncio.Semaphore(concurrency)
    control.clear_requests()

    async def one(i: int) -> None:
        patch = {"status": {"loadBalancer": {"ingress": [{"ip": str(base + i), "ipMode": "VIP"}]}}}
        async with gate:
            await api.patch(
                SERVICE, f"svc-{i:05d}", patch, namespace=f"ns-{i % 20:02d}", status=True
            )

    started = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    requests = _count(control.requests())
    await api.close()
    return Row("baseline: bare status PATCHes", count, elapsed, None, requests, cpu)


def _fresh(count: int, holding: bool) -> Any:
    server = EmulatorProcess.start()
    objects = list(_objects(count, holding))
    for start in range(0, len(objects), 1000):
        server.control.seed(*objects[start : start + 1000])
    return server


async def _run(count: int, concurrency: int) -> list[Row]:
    rows = []
    with _fresh(count, holding=False) as server:
        row = await _controller(server.url, server.control, count, write_concurrency=concurrency)
        row.scenario = "cold start"
        rows.append(row)
        row = await _controller(server.url, server.control, count, write_concurrency=concurrency)
        row.scenario = "restart (all holding)"
        rows.append(row)
        rows.append(await _moved(server.url, server.control, count, concurrency))
    with _fresh(count, holding=False) as server:
        row = await _controller(server.url, server.control, count, write_concurrency=1)
        row.scenario = "cold start, one write at a time"
        rows.append(row)
    with _fresh(count, holding=False) as server:
        rows.append(await _bare_patches(server.url, server.control, count, concurrency))
    return rows


def _table(rows: list[Row]) -> str:
    head = (
        f"{'scenario':<34} {'services':>8} {'statuses s':>10} {'events s':>9} {'cpu s':>6} "
        f"{'req/svc':>8} {'status':>7} {'annot.':>7} {'events':>7} {'other':>7}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        status = row.per_service("patch services/status")
        annotation = row.per_service("patch services")
        events = row.per_service("create events", "patch events")
        total = row.per_service()
        lines.append(
            f"{row.scenario:<34} {row.services:>8} {row.to_statuses:>10.2f} "
            f"{'-' if row.to_events is None else f'{row.to_events:.2f}':>9} {row.cpu:>6.2f} "
            f"{total:>8.3f} {status:>7.3f} {annotation:>7.3f} {events:>7.3f} "
            f"{total - status - annotation - events:>7.3f}"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with contextlib.suppress(KeyboardInterrupt):
        rows = asyncio.run(_run(args.services, args.concurrency))
        print(_table(rows))
        floor = rows[-1].to_statuses
        print(
            f"\ncold start / bare PATCH floor: {rows[0].to_statuses / floor:.2f}x; "
            f"restart writes {rows[1].per_service('patch services/status'):.0f} statuses"
        )


if __name__ == "__main__":
    main()
