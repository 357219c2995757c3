"""Network-namespace lab for the speaker's end-to-end tests and benchmark
(docs/design/l2-reference.md §5).

A namespace ``m6br-RUN`` holds a bridge ``m6br0`` (10.66.0.254/24) and, listening on that
address, the API server emulator and the controller, both real processes. A client ``m6c-RUN``
and three nodes ``m6n1-RUN``..``m6n3-RUN`` hang on the bridge through veths with fixed MACs,
with an IPv4 address in 10.66.0.0/24 and an IPv6 one in fd66::/64 (DAD off, so link-local
addresses are usable at once). The pool holds 10.66.0.96/28 and fd66::60/124. Every node:

* holds the whole IPv4 pool on ``lo`` with ``arp_ignore=1``/``arp_announce=2``, so its kernel
  accepts traffic for any load-balancer address but never answers ARP for one (as kube-proxy
  with ``strictARP`` would), and the IPv6 pool as a ``local`` route on ``lo`` (the kernel
  answers Neighbor Solicitations only for addresses on the receiving interface: never for
  these);
* runs an HTTP server on port 8080, both families, that answers with the node's name;
* has a second interface ``m6e1`` (a veth to ``m6x1``, both in the node) that reaches
  nobody, for ``L2Advertisement.interfaces``;
* runs ``python -m announcers.kubernetes speaker --node m6nX`` (MetalLB's interface
  discovery: ``m6e0``, ``m6e1`` and ``m6x1``), with ``POD_NAME``/``POD_UID`` set as the
  DaemonSet sets them.

Every name starts with ``m6``; :meth:`SpeakerLab.destroy` deletes the namespaces (their
veths vanish with them). Needs root and iproute2, arping, ndisc6, curl (:data:`TOOLS`):
``netns.require(*TOOLS)`` skips the test when one is missing, or fails it when ``CI`` is set.
The namespace plumbing is :mod:`tests.support.netns`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import yaml

from tests.support.emulator import EmulatorProcess
from tests.support.name_server import NAME_SERVER
from tests.support.netns import (
    Process,
    delete_namespaces,
    entered,
    in_ns,
    new_namespace,
    run_token,
)

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("ip", "arping", "ndisc6", "curl")

RUN = run_token()  # namespace names are global to the host: each carries this run's token
BRIDGE_NS, BRIDGE = f"m6br-{RUN}", "m6br0"
API_HOST = "10.66.0.254"
CLIENT_NS = f"m6c-{RUN}"
NODES = (f"m6n1-{RUN}", f"m6n2-{RUN}", f"m6n3-{RUN}")  # also the Kubernetes node names
IFACE, SPARE, SPARE_PEER = "m6e0", "m6e1", "m6x1"
MAC = {
    CLIENT_NS: "02:00:00:06:00:0c",
    **{n: f"02:00:00:06:00:0{i + 1}" for i, n in enumerate(NODES)},
}
ADDRESS = {CLIENT_NS: "10.66.0.12", **{n: f"10.66.0.{i + 1}" for i, n in enumerate(NODES)}}
ADDRESS6 = {CLIENT_NS: "fd66::c", **{n: f"fd66::{i + 1}" for i, n in enumerate(NODES)}}
PORT = {CLIENT_NS: "m6pc", **{n: f"m6p{i + 1}" for i, n in enumerate(NODES)}}
POOL_CIDR = "10.66.0.96/28"
POOL6_CIDR = "fd66::60/124"
HTTP_PORT = 8080
NS = "metallb-system"
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms until it holds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def spawn(
    ns: str,
    args: Sequence[str],
    log: Path,
    *,
    ready: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Process:
    """Start ``args`` in namespace ``ns``; with ``ready``, wait for that text in its stderr."""
    handle = log.open("w")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **(extra_env or {}))
    popen = subprocess.Popen(
        ["ip", "netns", "exec", ns, *args],
        stdout=subprocess.DEVNULL,
        stderr=handle,
        text=True,
        cwd=REPO,
        env=env,
    )
    handle.close()
    process = Process(popen, log)
    if ready is not None:

        def is_ready() -> bool:
            if popen.poll() is not None:
                raise AssertionError(f"{args} exited with {popen.returncode}: {process.text()}")
            return ready in process.text()

        wait_until(is_ready, 20.0, f"{ready!r} from {args[:4]}")
    return process


class Kube:
    """Plain JSON over HTTP to the emulator, from inside ``m6br`` (blocking)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def request(self, method: str, path: str, body: Any = None, *, merge: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode()
        kind = "application/merge-patch+json" if merge else "application/json"
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": kind}
        )
        with entered(BRIDGE_NS), urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read() or b"null")

    def get(self, path: str) -> Any:
        try:
            return self.request("GET", path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, merge=True)

    def delete(self, path: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            self.request("DELETE", path)


def _path(api_version: str, plural: str, namespace: str | None, name: str = "") -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{where}/{plural}" + (f"/{name}" if name else "")


SERVICES = ("v1", "services")
SLICES = ("discovery.k8s.io/v1", "endpointslices")
ADVERTISEMENTS = ("metallb.io/v1beta1", "l2advertisements")
POOLS = ("metallb.io/v1beta1", "ipaddresspools")
NODE_OBJECTS = ("v1", "nodes")
LEASES = ("coordination.k8s.io/v1", "leases")
EVENTS = ("events.k8s.io/v1", "events")
L2STATUSES = ("metallb.io/v1beta1", "servicel2statuses")


@dataclass
class SpeakerLab:
    """The topology, its servers, the emulator, the controller and one speaker per node."""

    workdir: Path
    servers: list[Process] = field(default_factory=list)
    emulator: EmulatorProcess | None = None
    controller: Process | None = None
    speakers: dict[str, Process] = field(default_factory=dict)
    url: str = ""
    speaker_args: tuple[str, ...] = ()
    restarts: int = 0
    made: list[str] = field(default_factory=list)  # Services created, for clean-up
    marks: dict[Path, int] = field(default_factory=dict)  # log lengths when a test started

    # -- building ---------------------------------------------------------------------------

    def build(self) -> None:
        """Namespaces, links, addresses, HTTP servers; then the emulator and the controller."""
        self.delete_namespaces()
        new_namespace(BRIDGE_NS)  # IPv6 with DAD off: link-local addresses usable at once
        in_ns(BRIDGE_NS, "ip", "link", "add", BRIDGE, "type", "bridge")
        in_ns(BRIDGE_NS, "ip", "addr", "add", f"{API_HOST}/24", "dev", BRIDGE)
        in_ns(BRIDGE_NS, "ip", "link", "set", BRIDGE, "up")
        for ns in (CLIENT_NS, *NODES):
            new_namespace(ns)
            in_ns(
                ns, "ip", "link", "add", IFACE, "address", MAC[ns], "type", "veth",
                "peer", "name", PORT[ns], "netns", BRIDGE_NS,
            )  # fmt: skip
            in_ns(BRIDGE_NS, "ip", "link", "set", PORT[ns], "master", BRIDGE, "up")
            in_ns(ns, "ip", "addr", "add", f"{ADDRESS[ns]}/24", "dev", IFACE)
            in_ns(ns, "ip", "addr", "add", f"{ADDRESS6[ns]}/64", "dev", IFACE, "nodad")
            in_ns(ns, "ip", "link", "set", IFACE, "up")
        for ns in NODES:
            in_ns(ns, "ip", "link", "add", SPARE, "type", "veth", "peer", "name", SPARE_PEER)
            in_ns(ns, "ip", "link", "set", SPARE, "up")
            in_ns(ns, "ip", "link", "set", SPARE_PEER, "up")
            in_ns(ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1")
            in_ns(ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2")
            in_ns(ns, "ip", "addr", "add", POOL_CIDR, "dev", "lo")
            in_ns(ns, "ip", "-6", "route", "add", "local", POOL6_CIDR, "dev", "lo")
            self.servers.append(
                spawn(
                    ns,
                    [sys.executable, "-c", NAME_SERVER, ns, str(HTTP_PORT)],
                    self.workdir / f"http-{ns}.log",
                    ready="ready",
                )
            )
        self._start_api()

    def _start_api(self) -> None:
        self.emulator = EmulatorProcess.start(
            host=API_HOST, prefix=["ip", "netns", "exec", BRIDGE_NS]
        )
        self.url = self.emulator.url
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lab", "cluster": {"server": self.url}}],
            "users": [{"name": "lab", "user": {"token": "lab"}}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
            "current-context": "lab",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        kube = self.kube
        kube.create(_path("v1", "namespaces", None), {"metadata": {"name": NS}})
        for name in NODES:
            kube.create(
                _path(*NODE_OBJECTS, None),
                {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}},
            )
        kube.create(
            _path(*POOLS, NS),
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": "lab"}, "spec": {"addresses": [POOL_CIDR, POOL6_CIDR]}},
        )  # fmt: skip
        self.controller = spawn(
            BRIDGE_NS,
            [sys.executable, "-m", "announcers.kubernetes", "controller",
             "--kubeconfig", str(self.kubeconfig), "--namespace", NS, "--metrics-port", "0"],
            self.workdir / "controller.log",
            ready='"synced"',
        )  # fmt: skip

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def kube(self) -> Kube:
        return Kube(self.url)

    def destroy(self) -> None:
        for process in [*self.speakers.values(), self.controller, *self.servers]:
            if process is not None:
                process.stop(signal.SIGKILL)
        if self.emulator is not None:
            self.emulator.stop()
        self.speakers.clear()
        self.servers.clear()
        self.delete_namespaces()

    @staticmethod
    def delete_namespaces() -> None:
        delete_namespaces([BRIDGE_NS, CLIENT_NS, *NODES])

    # -- speakers ---------------------------------------------------------------------------

    def start_speaker(self, node: str) -> Process:
        """Start (or restart) the speaker of ``node`` and wait until its Lease is held."""
        old = self.speakers.get(node)
        if old is not None:
            old.stop(signal.SIGKILL)
        self.restarts += 1
        process = spawn(
            node,
            [sys.executable, "-m", "announcers.kubernetes", "speaker", "--node", node,
             "--kubeconfig", str(self.kubeconfig), "--namespace", NS, "--metrics-port", "0",
             *self.speaker_args],
            self.workdir / f"speaker-{node}-{self.restarts}.log",
            extra_env=self.pod_env(node),
        )  # fmt: skip
        self.speakers[node] = process
        return process

    def pod_env(self, node: str) -> dict[str, str]:
        """``POD_NAME`` and ``POD_UID`` of ``node``'s speaker, as the DaemonSet sets them."""
        return {"POD_NAME": f"speaker-{node}", "POD_UID": f"uid-{node}-{self.restarts}"}

    def start_speakers(self) -> None:
        """Every node's speaker running and seeing every other one alive."""
        for node in NODES:
            if node not in self.speakers or not self.speakers[node].running:
                self.start_speaker(node)
        wait_until(self.all_alive, 20.0, "every speaker to see every speaker alive")

    def all_alive(self) -> bool:
        for node in NODES:
            process = self.speakers[node]
            if not process.running:
                raise AssertionError(f"speaker {node} exited: {process.text()[-2000:]}")
        return all(self.lease_holder(node) == node for node in NODES) and all(
            self._sees_all(node) for node in NODES
        )

    def _sees_all(self, node: str) -> bool:
        lines = [
            line for line in self.speakers[node].text().splitlines()
            if '"speakers alive changed"' in line
        ]  # fmt: skip
        if not lines:
            return False
        return sorted(json.loads(lines[-1])["alive"]) == sorted(NODES)

    def lease(self, node: str) -> Any:
        """The speaker Lease of ``node`` (None if there is none)."""
        return self.kube.get(_path(*LEASES, NS, f"metallb-core-speaker-{node}"))

    def lease_holder(self, node: str) -> str | None:
        lease = self.lease(node)
        if lease is None:
            return None
        holder = (lease.get("spec") or {}).get("holderIdentity")
        return None if holder is None else str(holder)

    def port_down(self, node: str) -> None:
        in_ns(BRIDGE_NS, "ip", "link", "set", PORT[node], "down")

    def port_up(self, node: str) -> None:
        in_ns(BRIDGE_NS, "ip", "link", "set", PORT[node], "up")

    # -- objects ----------------------------------------------------------------------------

    def create_service(self, name: str, *, local: bool = False, ipv6: bool = False) -> str:
        """A LoadBalancer Service ``name`` (IPv6 only with ``ipv6``); wait for the
        controller's address and return it."""
        spec: dict[str, Any] = {
            "type": "LoadBalancer",
            "ports": [{"name": "http", "port": HTTP_PORT}],
        }
        if local:
            spec["externalTrafficPolicy"] = "Local"
        if ipv6:
            spec.update(ipFamilyPolicy="SingleStack", ipFamilies=["IPv6"])
        self.kube.create(_path(*SERVICES, "default"), {"metadata": {"name": name}, "spec": spec})
        self.made.append(name)
        found: list[str] = []

        def allocated() -> bool:
            stored = self.kube.get(_path(*SERVICES, "default", name)) or {}
            ingress = ((stored.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            found[:] = [e["ip"] for e in ingress or []]
            return bool(found)

        wait_until(allocated, 10.0, f"an address for {name}")
        return found[0]

    def set_endpoints(self, service: str, *nodes: str) -> None:
        """The Service's EndpointSlice: one ready endpoint on each of ``nodes``."""
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-lab",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [ADDRESS[n]], "conditions": {"ready": True}, "nodeName": n}
                for n in nodes
            ],
        }
        path = _path(*SLICES, "default", f"{service}-lab")
        if self.kube.get(path) is None:
            self.kube.create(_path(*SLICES, "default"), body)
        else:
            self.kube.patch(path, {"endpoints": body["endpoints"]})

    def delete_service(self, name: str) -> None:
        self.kube.delete(_path(*SLICES, "default", f"{name}-lab"))
        self.kube.delete(_path(*SERVICES, "default", name))

    def reset(self) -> None:
        """Between tests: ports up, no exclusion label, one plain advertisement, no Service,
        every speaker running."""
        for name in self.made:
            self.delete_service(name)
        self.made.clear()
        for node in NODES:
            self.port_up(node)
            self.label_node(node, {EXCLUDE: None})
        self.set_advertisement()
        self.start_speakers()
        self.marks = {p.log: len(p.text()) for p in self.speakers.values()}

    def messages(self, node: str) -> list[dict[str, Any]]:
        """The JSON log lines of ``node``'s current speaker since the test began."""
        process = self.speakers[node]
        text = process.text()[self.marks.get(process.log, 0) :]
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def set_advertisement(self, name: str = "lab", **spec: Any) -> None:
        """The one L2Advertisement ``name``, replacing every other."""
        for item in (self.kube.get(_path(*ADVERTISEMENTS, NS)) or {}).get("items") or []:
            self.kube.delete(_path(*ADVERTISEMENTS, NS, item["metadata"]["name"]))
        self.kube.create(
            _path(*ADVERTISEMENTS, NS),
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
             "metadata": {"name": name}, "spec": spec},
        )  # fmt: skip

    def label_node(self, node: str, labels: dict[str, str | None]) -> None:
        self.kube.patch(_path(*NODE_OBJECTS, None, node), {"metadata": {"labels": labels}})

    def l2statuses(self) -> list[dict[str, Any]]:
        """Every ServiceL2Status (``kubectl get servicel2statuses -A``)."""
        return list((self.kube.get(_path(*L2STATUSES, None)) or {}).get("items") or [])

    def status_nodes(self, service: str) -> set[str]:
        """The nodes the ServiceL2Status objects of ``service`` name."""
        return {
            s["status"]["node"] for s in self.l2statuses()
            if (s.get("status") or {}).get("serviceName") == service
        }  # fmt: skip

    def events(self, reason: str, service: str) -> list[dict[str, Any]]:
        items = (self.kube.get(_path(*EVENTS, "default")) or {}).get("items") or []
        return [
            e for e in items
            if e.get("reason") == reason and e["regarding"].get("name") == service
        ]  # fmt: skip

    # -- the client -------------------------------------------------------------------------

    def curl(self, address: str, timeout: float = 1.0) -> str | None:
        """The name of the node that served ``GET /`` from the client, or None."""
        host = f"[{address}]" if ip_address(address).version == 6 else address
        result = in_ns(
            CLIENT_NS, "curl", "-s", "--max-time", str(timeout),
            f"http://{host}:{HTTP_PORT}/", check=False,
        )  # fmt: skip
        return result.stdout.strip() if result.returncode == 0 else None

    def forget_neighbours(self) -> None:
        """Empty the client's neighbour table, both families."""
        for family in ("-4", "-6"):
            in_ns(CLIENT_NS, "ip", family, "neigh", "flush", "dev", IFACE, check=False)

    def fresh_curl(self, address: str) -> str | None:
        """:meth:`curl` after the client forgot every neighbour: it asks ARP (or NDP) afresh."""
        self.forget_neighbours()
        return self.curl(address)

    def neighbour(self, address: str) -> str | None:
        """The MAC in the client kernel's neighbour entry for ``address`` (None: none)."""
        out = in_ns(CLIENT_NS, "ip", "neigh", "show", address, "dev", IFACE).stdout
        match = re.search(r"lladdr ([0-9a-fA-F:]{17})", out)
        return match.group(1).lower() if match else None

    def served_by(self, address: str, node: str | None, timeout: float = 10.0) -> None:
        """Wait until a fresh request to ``address`` is served by ``node`` (None: by nobody)."""
        seen: list[str | None] = []

        def check() -> bool:
            seen.append(self.fresh_curl(address))
            return seen[-1] == node

        try:
            wait_until(check, timeout, f"{address} served by {node}")
        except AssertionError:
            raise AssertionError(f"{address}: served by {seen[-5:]}, not {node}") from None

    def responders(self, address: str) -> set[str]:
        """The MACs answering ARP (arping, 2 probes) or, for IPv6, NDP (``ndisc6``: every
        Neighbor Advertisement to 2 solicitations) for ``address``."""
        self.forget_neighbours()
        if ip_address(address).version == 6:
            out = in_ns(
                CLIENT_NS, "ndisc6", "-m", "-n", "-r", "2", "-w", "1000", address, IFACE,
                check=False,
            ).stdout  # fmt: skip
            found = re.findall(r"Target link-layer address: ([0-9A-Fa-f:]{17})", out)
            return {mac.lower() for mac in found}
        out = in_ns(
            CLIENT_NS, "arping", "-c", "2", "-w", "2", "-I", IFACE, address, check=False
        ).stdout
        return {mac.lower() for mac in re.findall(r"\[([0-9A-Fa-f:]{17})\]", out)}
