"""Two controller replicas as subprocesses: only the Lease holder writes; SIGTERM hands over.

``python -m announcers.kubernetes controller`` runs for real here (its own interpreter,
kubeconfig file, signals). Each replica gets its own bearer token, so the emulator's
request log says who made every request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from announcers.kubernetes.client import SERVICE
from tests.support.emulator import ApiServerEmulator

from .controller_kit import (
    LEASES,
    NS,
    client_for,
    every_address,
    ips_of,
    namespace,
    pool,
    quiet,
    running,
    service,
    start_controller,
    terminate,
    write_kubeconfig,
)

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _resource(path: str) -> str:
    """``services``, ``services/status``, ``events``... from an API path."""
    parts = path.strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) >= 3 and rest[2] != "status":
        rest = rest[2:]
    return rest[0] + (f"/{rest[2]}" if len(rest) == 3 else "")


def _writers(requests: Iterable[Any]) -> dict[str, set[str]]:
    """Per bearer token, what it wrote (``services/status``, ``events``, ...); every token
    that made a request is a key."""
    out: dict[str, set[str]] = {}
    for request in requests:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        wrote = out.setdefault(token, set())
        if getattr(request.method, "value", request.method) in WRITES:
            wrote.add(_resource(request.url.path))
    return out


def _holder(apiserver: ApiServerEmulator) -> Any:
    lease = apiserver.read(LEASES, NS, "metallb-core-controller")
    return None if lease is None else lease["spec"].get("holderIdentity")


async def _replica(apiserver: ApiServerEmulator, tmp_path: Path, token: str) -> Any:
    config = write_kubeconfig(tmp_path / f"{token}.yaml", apiserver.base_url, token)
    return await start_controller("--kubeconfig", str(config), "--metrics-port", "0")


async def test_only_the_leader_writes(apiserver: ApiServerEmulator, tmp_path: Path) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/28"), service("first"))
    leader = await _replica(apiserver, tmp_path, "replica-a")
    try:
        await apiserver.wait_for(lambda: ips_of(apiserver, "first"), timeout=20)
        follower = await _replica(apiserver, tmp_path, "replica-b")
        try:
            await apiserver.wait_for(lambda: "replica-b" in _writers(apiserver), timeout=20)
            api = client_for(apiserver)
            for i in range(3):
                await api.create(SERVICE, service(f"later-{i}"))
            await api.close()
            await apiserver.wait_for(
                lambda: all(ips_of(apiserver, f"later-{i}") for i in range(3)), timeout=10
            )
        finally:
            status_b, _ = await terminate(follower)
    finally:
        status_a, _ = await terminate(leader)
    writers = _writers(apiserver)
    assert (status_a, status_b) == (0, 0)
    assert writers["replica-b"] == set()
    assert writers["replica-a"] == {
        "services/status",
        "services",
        "events",
        "leases",
        "ipaddresspools/status",
    }


def test_writers_reads_collections_and_subresources() -> None:
    class _Request:
        def __init__(self, method: str, path: str, token: str) -> None:
            from yarl import URL

            self.method = method
            self.url = URL(f"http://x{path}")
            self.headers = {"Authorization": f"Bearer {token}"}

    fake: Any = [
        _Request("PATCH", "/api/v1/namespaces/d/services/web/status", "a"),
        _Request("POST", "/apis/events.k8s.io/v1/namespaces/d/events", "a"),
        _Request("PATCH", "/api/v1/namespaces/d/services/web", "a"),
        _Request("GET", "/api/v1/services", "b"),
    ]
    assert _writers(fake) == {"a": {"services/status", "events", "services"}, "b": set()}


async def test_sigterm_releases_the_lease_and_the_follower_takes_over(
    apiserver: ApiServerEmulator, tmp_path: Path
) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/28"), service("first"))
    leader = await _replica(apiserver, tmp_path, "replica-a")
    await apiserver.wait_for(lambda: ips_of(apiserver, "first"), timeout=20)
    first_holder = _holder(apiserver)
    follower = await _replica(apiserver, tmp_path, "replica-b")
    try:
        await apiserver.wait_for(lambda: "replica-b" in _writers(apiserver), timeout=20)
        status_a, stderr_a = await terminate(leader, timeout=10)
        await apiserver.wait_for(lambda: _holder(apiserver) not in (None, first_holder), timeout=10)
        holders = [
            v["spec"].get("holderIdentity")
            for v in apiserver.history(LEASES, NS, "metallb-core-controller")
            if v is not None
        ]
        api = client_for(apiserver)
        await api.create(SERVICE, service("after"))
        await api.close()
        await apiserver.wait_for(lambda: ips_of(apiserver, "after"), timeout=10)
    finally:
        status_b, _ = await terminate(follower)
        if leader.returncode is None:
            await terminate(leader)
    last_held = max(i for i, holder in enumerate(holders) if holder == first_holder)
    assert status_a == 0
    assert holders[last_held + 1] is None  # emptied on the way out, then taken over
    assert ips_of(apiserver, "first") == ("192.0.2.0",)
    assert ips_of(apiserver, "after") == ("192.0.2.1",)
    assert status_b == 0
    assert all(json.loads(line)["level"] for line in stderr_a.splitlines() if line.strip())


async def test_sigterm_during_a_cold_start_exits_cleanly_and_the_next_moves_nothing(
    apiserver: ApiServerEmulator, tmp_path: Path
) -> None:
    apiserver.seed(namespace(NS), pool("p", "10.0.0.0/20"))
    apiserver.seed(*(service(f"s{i:03d}", allocateLoadBalancerNodePorts=False) for i in range(800)))
    first = await _replica(apiserver, tmp_path, "replica-a")
    await apiserver.wait_for(
        lambda: apiserver.request_log.count(subresource="status", resource="services") >= 20,
        timeout=30,
    )
    status, _ = await terminate(first, timeout=10)  # killed (-9) if it took longer
    written = {f"s{i:03d}": ips_of(apiserver, f"s{i:03d}") for i in range(800)}
    done = {name: ips for name, ips in written.items() if ips}
    async with running(apiserver, identity="second") as second:
        await apiserver.wait_for(lambda: all(ips_of(apiserver, n) for n in written), timeout=60)
        await quiet(apiserver, second.replica, timeout=30)
    assert status == 0
    assert 0 < len(done) < 800  # it stopped in the middle
    assert _holder(apiserver) in (None, "second")
    assert {name: ips_of(apiserver, name) for name in done} == done
    addresses = every_address(apiserver)
    assert len(addresses) == len(set(addresses)) == 800
