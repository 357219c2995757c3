"""Helpers for the controller's end-to-end tests: objects, a running replica, and waiting.

The controller runs in-process (on the test's event loop, talking real HTTP to the
emulator through lightkube) or as a subprocess (``python -m announcers.kubernetes
controller``). Tests wait for *observable* outcomes (a status, an Event), never for time;
:func:`quiet` waits until the controller has seen the latest version of every object and
has nothing left to do, which is what "it wrote nothing" needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from announcers.kubernetes.client import LightkubeApi
from announcers.kubernetes.controller import Controller, Replica, Settings
from announcers.kubernetes.leader import LeaderTiming
from announcers.kubernetes.metrics import Metrics
from metallb_core.vocabulary import object_key
from tests.support.emulator import ApiServerEmulator, kube_config, kubeconfig_dict, service_manifest

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed"
NS = "metallb-system"
SERVICES = "v1/services"
EVENTS = "events.k8s.io/v1/events"
POOLS = "metallb.io/v1beta1/ipaddresspools"
LEASES = "coordination.k8s.io/v1/leases"
#: Fast Lease timing for in-process replicas (client-go's defaults are 15 s / 10 s / 2 s).
FAST = LeaderTiming(lease_duration=3.0, renew_deadline=2.0, retry_period=0.2)

JsonDict = dict[str, Any]


# -- objects ------------------------------------------------------------------------------------


def namespace(name: str, **labels: str) -> JsonDict:
    """A Namespace object."""
    meta: JsonDict = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def seed_configmap() -> JsonDict:
    """The walkthrough's v0.10 ConfigMap (pools ``default`` and ``expensive``)."""
    loaded: JsonDict = yaml.safe_load((SEED / "configmap.yaml").read_text())
    return loaded


def configmap(document: Mapping[str, Any] | str) -> JsonDict:
    """A v0.10 ``config`` ConfigMap in the MetalLB namespace."""
    text = document if isinstance(document, str) else yaml.safe_dump(dict(document))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": NS},
        "data": {"config": text},
    }


def layer2(name: str, *addresses: str, **extra: Any) -> JsonDict:
    """A v0.10 layer2 address pool entry."""
    return {"name": name, "protocol": "layer2", "addresses": list(addresses), **extra}


def pool(name: str, *addresses: str, **spec: Any) -> JsonDict:
    """An ``IPAddressPool`` in the MetalLB namespace."""
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": list(addresses), **spec},
    }


def service(name: str, namespace: str = "default", **kwargs: Any) -> JsonDict:
    """A LoadBalancer Service (``service_manifest`` keywords)."""
    return service_manifest(name, namespace, **kwargs)


def holding(name: str, ips: Iterable[str], pool_name: str, namespace: str = "default") -> JsonDict:
    """A Service as a previous controller left it: status and annotation written."""
    body = service(name, namespace, annotations={"metallb.io/ip-allocated-from-pool": pool_name})
    body["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}}
    return body


# -- reading the emulator -------------------------------------------------------------------------


def ips_of(apiserver: ApiServerEmulator, name: str, namespace: str = "default") -> tuple[str, ...]:
    """The ingress IPs of a stored Service (empty when none or when it does not exist)."""
    stored = apiserver.read(SERVICES, namespace, name)
    if stored is None:
        return ()
    entries = (stored.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    return tuple(e["ip"] for e in entries)


def annotation_of(
    apiserver: ApiServerEmulator, name: str, namespace: str = "default"
) -> str | None:
    """The ``metallb.io/ip-allocated-from-pool`` annotation of a stored Service."""
    stored = apiserver.read(SERVICES, namespace, name) or {}
    notes = (stored.get("metadata") or {}).get("annotations") or {}
    value = notes.get("metallb.io/ip-allocated-from-pool")
    return None if value is None else str(value)


def events_about(
    apiserver: ApiServerEmulator, name: str, namespace: str = "default", kind: str = "Service"
) -> list[JsonDict]:
    """The ``events.k8s.io/v1`` Events regarding one object, oldest first."""
    found = [
        e
        for e in apiserver.list_stored(EVENTS)
        if e["regarding"].get("name") == name
        and e["regarding"].get("kind") == kind
        and e["regarding"].get("namespace", namespace) == namespace
    ]
    return sorted(found, key=lambda e: str(e["eventTime"]))


def reasons(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(type, reason) of each Event."""
    return [(e["type"], e["reason"]) for e in events]


def every_address(apiserver: ApiServerEmulator) -> list[str]:
    """Every ingress IP of every stored Service (duplicates kept, to be spotted)."""
    out: list[str] = []
    for stored in apiserver.list_stored(SERVICES):
        entries = (stored.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        out.extend(e["ip"] for e in entries)
    return out


def caught_up(apiserver: ApiServerEmulator, controller: Controller) -> bool:
    """Whether the controller has seen the latest version of every object it watches."""
    for informer in controller.informers:
        resource = f"{informer.kind.api_version}/{informer.kind.plural}"
        stored = apiserver.list_stored(resource, informer.namespace)
        if informer.fields and "metadata.name" in informer.fields:
            stored = [
                s for s in stored if s["metadata"]["name"] == informer.fields["metadata.name"]
            ]
        want = {object_key(o): o["metadata"].get("resourceVersion") for o in stored}
        have = {k: o["metadata"].get("resourceVersion") for k, o in informer.objects.items()}
        if want != have:
            return False
    return True


async def quiet(apiserver: ApiServerEmulator, replica: Replica, timeout: float = 10.0) -> None:
    """Wait until the leading replica has seen everything, settled, and sent its Events."""

    def done() -> bool:
        controller = replica.controller
        return (
            controller is not None
            and caught_up(apiserver, controller)
            and controller.settled
            and controller.events.idle
        )

    await apiserver.wait_for(done, timeout=timeout)
    # Everything it was told has been handled; a second look after the pool-status writer
    # (background) had its turn catches its writes too.
    await asyncio.sleep(0)
    await apiserver.wait_for(done, timeout=timeout)


# -- a running replica ----------------------------------------------------------------------------


@dataclasses.dataclass
class Running:
    """An in-process replica and what drives it."""

    replica: Replica
    api: LightkubeApi
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def controller(self) -> Controller:
        """The leading term's controller (fails while following)."""
        assert self.replica.controller is not None, "not leading"
        return self.replica.controller

    @property
    def metrics(self) -> Metrics:
        """The replica's metrics."""
        return self.replica.metrics

    async def synced(self, timeout: float = 10.0) -> Controller:
        """Wait until the replica leads and has converged everything once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.replica.controller is None or not self.replica.controller.synced.is_set():
            if self.task.done():
                self.task.result()
            if loop.time() > deadline:
                raise TimeoutError("the controller did not sync")
            await asyncio.sleep(0.01)
        return self.replica.controller

    async def halt(self) -> None:
        """SIGTERM's path: stop, let it finish its writes, release the Lease."""
        self.stop.set()
        await asyncio.wait_for(self.task, 10)
        await self.api.close()


@contextlib.asynccontextmanager
async def running(
    apiserver: ApiServerEmulator,
    *,
    identity: str = "controller-0",
    token: str = "emulator-token",
    **settings: Any,
) -> AsyncIterator[Running]:
    """An in-process controller replica against ``apiserver`` (fast Lease timing)."""
    from lightkube import KubeConfig

    config = KubeConfig.from_dict(kubeconfig_dict(apiserver.base_url, token=token))
    api = LightkubeApi(config, trust_env=False)
    settings.setdefault("leader", FAST)
    replica = Replica(api, Settings(identity=identity, **settings))
    stop = asyncio.Event()
    task = asyncio.create_task(replica.run(stop))
    handle = Running(replica=replica, api=api, stop=stop, task=task)
    try:
        yield handle
    finally:
        if not task.done():
            await handle.halt()
        else:
            await api.close()
            task.result()


def client_for(apiserver: ApiServerEmulator) -> LightkubeApi:
    """A dict-based lightkube client for the test itself (to change objects)."""
    return LightkubeApi(kube_config(apiserver.base_url), trust_env=False)


# -- the controller as a subprocess ---------------------------------------------------------------


def write_kubeconfig(path: Path, url: str, token: str) -> Path:
    """A kubeconfig file with its own bearer token (the emulator accepts any)."""
    path.write_text(yaml.safe_dump(kubeconfig_dict(url, token=token)))
    return path


async def start_adapter(
    command: str, *args: str, prefix: tuple[str, ...] = ()
) -> asyncio.subprocess.Process:
    """``[PREFIX] python -m announcers.kubernetes COMMAND ARGS`` (stderr captured), with this
    checkout importable and no proxy settings."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "announcers.kubernetes",
        command,
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def start_controller(*args: str) -> asyncio.subprocess.Process:
    """``python -m announcers.kubernetes controller ARGS`` (stderr captured)."""
    return await start_adapter("controller", *args)


async def terminate(process: asyncio.subprocess.Process, timeout: float = 10.0) -> tuple[int, str]:
    """SIGTERM and wait: (exit status, stderr). Killed (status -9) after ``timeout``."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode(errors="replace")
