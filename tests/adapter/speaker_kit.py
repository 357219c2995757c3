"""Helpers for the speaker's tests: objects, a fleet of in-process speakers, and waiting.

Each speaker of a :class:`Fleet` runs on the test's event loop with its own lightkube client
(real HTTP to the emulator) and its own :class:`~announcers.mock.MockAnnouncer`, so a test
sees exactly what every node would announce. Tests wait for *observable* outcomes (what the
mocks hold, an Event), never for time; :func:`settled` waits until every speaker has seen
the latest version of every object and has nothing left to do, which is what "nobody
announces" needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from ipaddress import ip_address
from typing import Any

from announcers.arp.interfaces import SelectedInterface
from announcers.kubernetes.client import LightkubeApi
from announcers.kubernetes.speaker import Speaker, SpeakerSettings
from announcers.mock import MockAnnouncer
from metallb_core.vocabulary import object_key
from tests.support.emulator import ApiServerEmulator, kube_config

from .controller_kit import NS, namespace, pool, service

JsonDict = dict[str, Any]
NODES = ("n1", "n2", "n3")
#: eth0 serves both families, eth1 IPv4 only (no link-local address).
INTERFACES = (SelectedInterface("eth0", True, True), SelectedInterface("eth1", True, False))
EVENTS = "events.k8s.io/v1/events"
LEASES = "coordination.k8s.io/v1/leases"
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"
L2STATUSES = "metallb.io/v1beta1/servicel2statuses"


# -- objects ------------------------------------------------------------------------------------


def node(name: str, labels: dict[str, str] | None = None, *, unavailable: bool = False) -> JsonDict:
    """A Node (``NetworkUnavailable`` True when ``unavailable``)."""
    body: JsonDict = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    if labels is not None:
        body["metadata"]["labels"] = dict(labels)
    status = "True" if unavailable else "False"
    body["status"] = {"conditions": [{"type": "NetworkUnavailable", "status": status}]}
    return body


def advertisement(name: str = "l2", **spec: Any) -> JsonDict:
    """An ``L2Advertisement`` in the MetalLB namespace."""
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def endpoints(
    service_name: str,
    *nodes: str | None,
    namespace: str = "default",
    ready: bool = True,
    name: str | None = None,
) -> JsonDict:
    """An EndpointSlice of ``service_name`` with one endpoint per node given."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-slice",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [f"10.244.0.{i + 10}"],
                "conditions": {"ready": ready},
                **({"nodeName": n} if n else {}),
            }
            for i, n in enumerate(nodes)
        ],
    }


def holding(name: str, *ips: str, namespace: str = "default", **kwargs: Any) -> JsonDict:
    """A LoadBalancer Service whose status holds ``ips`` (as the controller writes them)."""
    body = service(name, namespace, **kwargs)
    body["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}}
    return body


def basics(*nodes: str, pools: Sequence[JsonDict] = ()) -> list[JsonDict]:
    """The namespace, a pool ``p`` (192.0.2.0/24 and 2001:db8::/64) and the Nodes."""
    return [
        namespace(NS),
        *(pools or [pool("p", "192.0.2.0/24", "2001:db8::/64")]),
        *(node(n, {"kubernetes.io/hostname": n}) for n in nodes or NODES),
    ]


# -- a fleet of speakers --------------------------------------------------------------------------


@dataclasses.dataclass
class Member:
    """One in-process speaker and what drives it."""

    node: str
    speaker: Speaker
    announcer: MockAnnouncer
    api: LightkubeApi
    stop: asyncio.Event
    task: asyncio.Task[None]

    def holds(self) -> set[tuple[str, str]]:
        """What its announcer answers for now, as ``(ip, interface)`` text pairs."""
        return {(str(ip), interface) for ip, interface in self.announcer.announced}

    async def halt(self) -> None:
        """SIGTERM's path: withdraw, release the Lease, send the Events."""
        self.stop.set()
        await asyncio.wait_for(self.task, 10)
        await self.api.close()

    async def crash(self) -> None:
        """A hard death: the task is cancelled, nothing is withdrawn or released."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.api.close()


class Fleet:
    """Speakers for several nodes against one emulator."""

    def __init__(self, apiserver: ApiServerEmulator) -> None:
        self.apiserver = apiserver
        self.members: dict[str, Member] = {}

    def start(
        self,
        name: str,
        *,
        interfaces: Sequence[SelectedInterface] = INTERFACES,
        announcer: MockAnnouncer | None = None,
        **settings: Any,
    ) -> Member:
        """Start the speaker of node ``name``."""
        api = LightkubeApi(kube_config(self.apiserver.base_url), trust_env=False)
        mock = announcer or MockAnnouncer()
        found = tuple(interfaces)
        # Probes on loopback, each speaker on a port of its own.
        options = {"probe_address": "127.0.0.1", "probe_port": 0, **settings}
        speaker = Speaker(
            api, mock, SpeakerSettings(node=name, **options), interfaces=lambda: found
        )
        stop = asyncio.Event()
        task = asyncio.create_task(speaker.run(stop), name=f"speaker {name}")
        member = Member(name, speaker, mock, api, stop, task)
        self.members[name] = member
        return member

    def __getitem__(self, name: str) -> Member:
        return self.members[name]

    def running(self) -> list[Member]:
        return [m for m in self.members.values() if not m.task.done()]

    def announcers_of(self, ip: str) -> set[str]:
        """The nodes whose speaker answers for ``ip`` (on any interface) now."""
        wanted = ip_address(ip)
        return {
            m.node
            for m in self.running()
            if any(held == wanted for held, _ in m.announcer.announced)
        }

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``condition()`` holds (fail after ``timeout``); surface a crash."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            for member in self.members.values():
                if member.task.done() and not member.task.cancelled():
                    member.task.result()
            if loop.time() > deadline:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.01)

    async def announced_by(self, ip: str, nodes: set[str], timeout: float = 10.0) -> None:
        """Wait until exactly ``nodes`` answer for ``ip``."""
        try:
            await self.wait_for(lambda: self.announcers_of(ip) == nodes, timeout)
        except TimeoutError:
            raise AssertionError(
                f"{ip}: announced by {sorted(self.announcers_of(ip))}, not {sorted(nodes)}"
            ) from None

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every running speaker has seen everything and has nothing left to do."""
        await self.wait_for(lambda: all(self._settled(m.speaker) for m in self.running()), timeout)
        # A second look, once the loops had their turn.
        await asyncio.sleep(0.05)
        await self.wait_for(lambda: all(self._settled(m.speaker) for m in self.running()), timeout)

    def _settled(self, speaker: Speaker) -> bool:
        if not speaker.settled or speaker.events.idle is False:
            return False
        for informer in speaker.informers:
            if informer is speaker.leases:
                continue  # liveness (renewed all the time with --liveness lease): see speaker.alive
            resource = f"{informer.kind.api_version}/{informer.kind.plural}"
            stored = self.apiserver.list_stored(resource, informer.namespace)
            if informer.fields and "metadata.name" in informer.fields:
                name = informer.fields["metadata.name"]
                stored = [s for s in stored if s["metadata"]["name"] == name]
            want = {object_key(o): o["metadata"].get("resourceVersion") for o in stored}
            have = {k: o["metadata"].get("resourceVersion") for k, o in informer.objects.items()}
            if want != have:
                return False
        return True

    async def all_alive(self, timeout: float = 10.0) -> None:
        """Wait until every running speaker sees every running speaker alive."""
        names = {m.node for m in self.running()}
        await self.wait_for(lambda: all(names <= m.speaker.alive for m in self.running()), timeout)

    async def stop_all(self) -> None:
        for member in self.members.values():
            if not member.task.done():
                await member.halt()
            else:
                with contextlib.suppress(Exception):
                    await member.api.close()


@contextlib.asynccontextmanager
async def fleet(
    apiserver: ApiServerEmulator, nodes: Iterable[str] = NODES, **settings: Any
) -> AsyncIterator[Fleet]:
    """Speakers for ``nodes`` (started at once), halted on the way out."""
    group = Fleet(apiserver)
    try:
        for name in nodes:
            group.start(name, **settings)
        await group.all_alive()
        yield group
    finally:
        await group.stop_all()


def events_of(apiserver: ApiServerEmulator, reason: str) -> list[JsonDict]:
    """The Events with ``reason``, oldest first."""
    found = [e for e in apiserver.list_stored(EVENTS) if e.get("reason") == reason]
    return sorted(found, key=lambda e: str(e["eventTime"]))


def l2statuses(apiserver: ApiServerEmulator) -> list[JsonDict]:
    """The stored ServiceL2Status objects, in every namespace."""
    return apiserver.list_stored(L2STATUSES)


def announced_in_status(apiserver: ApiServerEmulator) -> set[tuple[str, str]]:
    """``(service key, node)`` for each stored ServiceL2Status that has its status written."""
    return {
        (f"{s['status']['serviceNamespace']}/{s['status']['serviceName']}", s["status"]["node"])
        for s in l2statuses(apiserver)
        if (s.get("status") or {}).get("node")
    }


def l2status_writes(apiserver: ApiServerEmulator) -> int:
    """Requests that wrote a ServiceL2Status (create, status patch, delete) so far."""
    log = apiserver.request_log
    return sum(log.count(verb=v, resource="servicel2statuses") for v in ("create", "delete")) + (
        log.count(verb="patch", resource="servicel2statuses", subresource="status")
    )
