"""Network-namespace lab for the Layer-2 announcer tests (docs/design/l2-reference.md §5).

A namespace ``m4br-RUN`` holds a bridge; a client ``m4c-RUN`` and two nodes ``m4n1-RUN`` and
``m4n2-RUN`` hang on it through veths with fixed MACs. ``RUN`` is a token drawn once per test
run (:func:`run_token`), so two runs on one host, or other suites, never share a namespace.
Each node carries the announced addresses on ``lo`` with ``arp_ignore=1``/``arp_announce=2``
(so its kernel never answers for them) and runs a small HTTP server
(:mod:`tests.support.name_server`, on every local address, those included) that answers with
the node's name.

Needs root and iproute2, arping, ndisc6, curl, tcpdump (:data:`TOOLS`):
``netns.require(*TOOLS)`` skips the test when one is missing, or fails it when the ``CI``
environment variable is set. The namespace plumbing is :mod:`tests.support.netns`.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import IO

import pytest

from announcers.arp import frames
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
TOOLS = ("ip", "bridge", "arping", "ndisc6", "curl", "tcpdump")
RUN = run_token()
BRIDGE_NS = f"m4br-{RUN}"
BRIDGE = "m4br0"  # inside BRIDGE_NS: interface names are per namespace
CLIENT_NS = f"m4c-{RUN}"
NODE_NS = (f"m4n1-{RUN}", f"m4n2-{RUN}")
IFACE = "m4e0"  # the client's and the nodes' interface, each in its own namespace
CLIENT_MAC = "02:00:00:04:00:0c"
NODE_MAC = dict(zip(NODE_NS, ("02:00:00:04:00:01", "02:00:00:04:00:02"), strict=True))
CLIENT_V4, CLIENT_V6 = "10.44.0.12", "fd00:44::c"
NODE_V4 = dict(zip(NODE_NS, ("10.44.0.1", "10.44.0.2"), strict=True))
NODE_V6 = dict(zip(NODE_NS, ("fd00:44::1", "fd00:44::2"), strict=True))
VIP4 = IPv4Address("10.44.0.100")
VIP6 = IPv6Address("fd00:44::100")
HTTP_PORT = 8080


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def spawn(
    ns: str,
    args: Sequence[str],
    log: Path,
    *,
    ready: str | None = None,
    stdout: IO[str] | None = None,
) -> Process:
    """Start ``args`` in ``ns``; with ``ready``, wait until that text appears in its stderr."""
    handle = log.open("w")
    popen = subprocess.Popen(
        ["ip", "netns", "exec", ns, *args],
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=handle,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
    )
    handle.close()
    process = Process(popen, log)
    if ready is not None:

        def is_ready() -> bool:
            if popen.poll() is not None:
                pytest.fail(f"{args} exited with {popen.returncode}: {process.text()}")
            return ready in process.text()

        wait_for(is_ready, 10.0, f"{ready!r} from {args}")
    return process


@dataclass
class Lab:
    """The four-namespace topology, built once and reset between tests."""

    workdir: Path
    processes: list[Process] = field(default_factory=list)
    started: list[Process] = field(default_factory=list)

    def build(self) -> None:
        delete_namespaces([BRIDGE_NS, CLIENT_NS, *NODE_NS])
        new_namespace(BRIDGE_NS)
        in_ns(
            BRIDGE_NS,
            "ip",
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "1",
            "mcast_query_response_interval",
            "100",
        )
        in_ns(BRIDGE_NS, "ip", "link", "set", BRIDGE, "up")
        hosts = {CLIENT_NS: (CLIENT_MAC, CLIENT_V4, CLIENT_V6)}
        hosts.update({ns: (NODE_MAC[ns], NODE_V4[ns], NODE_V6[ns]) for ns in NODE_NS})
        for ns, (mac, v4, v6) in hosts.items():
            new_namespace(ns)
            port = self.port(ns)
            in_ns(
                ns,
                "ip",
                "link",
                "add",
                IFACE,
                "address",
                mac,
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                BRIDGE_NS,
            )
            in_ns(BRIDGE_NS, "ip", "link", "set", port, "master", BRIDGE, "up")
            in_ns(ns, "ip", "addr", "add", f"{v4}/24", "dev", IFACE)
            in_ns(ns, "ip", "addr", "add", f"{v6}/64", "dev", IFACE, "nodad")
            in_ns(ns, "ip", "link", "set", IFACE, "up")
        for ns in NODE_NS:
            # The node accepts traffic for the addresses, but its kernel never answers ARP for
            # them (kube-proxy IPVS strictARP does the same); IPv6 needs nothing: the kernel
            # answers solicitations only for addresses on the receiving interface.
            in_ns(ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1")
            in_ns(ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2")
            in_ns(ns, "ip", "addr", "add", f"{VIP4}/32", "dev", "lo")
            in_ns(ns, "ip", "addr", "add", f"{VIP6}/128", "dev", "lo")
            server = spawn(
                ns,
                [sys.executable, "-c", NAME_SERVER, ns, str(HTTP_PORT)],
                self.workdir / f"http-{ns}.log",
                ready="ready",
            )
            self.processes.append(server)

    def destroy(self) -> None:
        for process in self.processes:
            process.stop(signal.SIGKILL)
        self.processes.clear()
        delete_namespaces([BRIDGE_NS, CLIENT_NS, *NODE_NS])

    @staticmethod
    def port(ns: str) -> str:
        """The bridge-side veth of namespace ``ns``."""
        return {CLIENT_NS: "m4pc", NODE_NS[0]: "m4pn1", NODE_NS[1]: "m4pn2"}[ns]

    def reset(self) -> None:
        """Between tests: every bridge port up, no querier, clean neighbour tables."""
        for ns in (CLIENT_NS, *NODE_NS):
            in_ns(BRIDGE_NS, "ip", "link", "set", self.port(ns), "up")
        in_ns(BRIDGE_NS, "ip", "link", "set", BRIDGE, "type", "bridge", "mcast_querier", "0")
        for ns in (CLIENT_NS, *NODE_NS):
            in_ns(ns, "ip", "neigh", "flush", "dev", IFACE, check=False)

    def announcer(
        self, ns: str, *addresses: object, refresh: float | None = None, name: str = "announcer"
    ) -> Process:
        """Start ``python -m announcers.arp`` in node ``ns`` and wait until it answers."""
        args = [sys.executable, "-m", "announcers.arp", "--interface", IFACE]
        if refresh is not None:
            args += ["--refresh", str(refresh)]
        args += [str(address) for address in addresses]
        process = spawn(ns, args, self.workdir / f"{name}-{ns}.log", ready="running:")
        self.started.append(process)
        return process

    def stop_started(self) -> None:
        """Stop every announcer the current test started."""
        for process in self.started:
            process.stop()
        self.started.clear()

    # -- real clients, run in the client namespace ---------------------------------------------

    def arping(self, *options: str, target: object = VIP4) -> subprocess.CompletedProcess[str]:
        return in_ns(CLIENT_NS, "arping", "-I", IFACE, *options, str(target), check=False)

    def ndisc6(self, *options: str, target: object = VIP6) -> subprocess.CompletedProcess[str]:
        return in_ns(CLIENT_NS, "ndisc6", *options, str(target), IFACE, check=False)

    def curl(self, address: object, timeout: float = 2.0) -> subprocess.CompletedProcess[str]:
        host = f"[{address}]" if ip_address(str(address)).version == 6 else str(address)
        return in_ns(
            CLIENT_NS,
            "curl",
            "-s",
            "--max-time",
            str(timeout),
            f"http://{host}:{HTTP_PORT}/",
            check=False,
        )

    def neighbour(self, address: object) -> tuple[str | None, str | None]:
        """The client's neighbour entry for ``address``: (MAC, state), or (None, None)."""
        out = in_ns(CLIENT_NS, "ip", "neigh", "show", str(address), "dev", IFACE).stdout
        match = re.search(r"lladdr (\S+).*?(\b[A-Z]+)\s*$", out.strip())
        if match is None:
            state = out.split()[-1] if out.split() else None
            return None, state
        return match.group(1), match.group(2)


def mac_list(text: str) -> list[str]:
    """Every ``[aa:bb:...]`` MAC that arping printed, in order."""
    return [mac.lower() for mac in re.findall(r"\[([0-9A-Fa-f:]{17})\]", text)]


# -- a small namespace with veth pairs, for in-process tests of L2Announcer --------------------

KIT_NS = f"m4k-{RUN}"
KIT_PAIRS = (("m4ka0", "m4kb0"), ("m4ka1", "m4kb1"))  # (announcer side, client side)
KIT_MACS = {ours: f"02:00:00:4b:00:{index:02x}" for index, (ours, _) in enumerate(KIT_PAIRS)}
KIT_CLIENT_MAC = bytes.fromhex("02000000c001")
KIT_CLIENT4 = IPv4Address("10.46.0.12")
KIT_CLIENT6 = IPv6Address("fe80::c")


def build_kit() -> None:
    """Namespace ``m4k-RUN`` with two veth pairs, up, without any IP address on them."""
    new_namespace(KIT_NS)
    for ours, theirs in KIT_PAIRS:
        in_ns(
            KIT_NS, "ip", "link", "add", ours, "address", KIT_MACS[ours],
            "type", "veth", "peer", "name", theirs,
        )  # fmt: skip
        in_ns(KIT_NS, "ip", "link", "set", ours, "up")
        in_ns(KIT_NS, "ip", "link", "set", theirs, "up")


class WireClient:
    """A hand-made client on a raw socket: asks and listens on one interface.

    Must be created and used by a thread inside the namespace of the interface.
    """

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((interface, 0x0003))
        self.sock.settimeout(0.05)

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> None:
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.sock.recv(65535)
        self.sock.settimeout(0.05)

    def listen(self, duration: float) -> list[bytes]:
        """Every frame received (not sent) within ``duration`` seconds."""
        received = []
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            try:
                frame, address = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if address[2] != socket.PACKET_OUTGOING:
                received.append(frame)
        return received

    def ask(
        self, frame: bytes, answer: Callable[[bytes], bytes | None], timeout: float
    ) -> bytes | None:
        """Send ``frame``; the first non-None ``answer(reply)`` within ``timeout``, or None."""
        self.drain()
        self.sock.send(frame)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply, address = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if address[2] == socket.PACKET_OUTGOING:
                continue
            found = answer(reply)
            if found is not None:
                return found
        return None

    def who_has(
        self,
        ip: IPv4Address | IPv6Address,
        timeout: float = 0.3,
        *,
        unicast_to: bytes | None = None,
    ) -> bytes | None:
        """The MAC that answers an ARP request / Neighbor Solicitation for ``ip``, or None."""
        if isinstance(ip, IPv4Address):
            request = frames.arp_request(
                KIT_CLIENT_MAC, KIT_CLIENT4, ip, eth_dst=unicast_to or frames.BROADCAST_MAC
            )

            def arp_answer(reply: bytes) -> bytes | None:
                try:
                    arp = frames.ArpFrame.decode(reply)
                except frames.FrameError:
                    return None
                if (
                    arp.op == frames.ArpOp.REPLY
                    and arp.sender_ip == ip
                    and arp.target_mac == KIT_CLIENT_MAC
                ):
                    return arp.sender_mac
                return None

            return self.ask(request.encode(), arp_answer, timeout)
        solicitation = frames.neighbor_solicitation(
            KIT_CLIENT_MAC, KIT_CLIENT6, ip, unicast_to=unicast_to
        )

        def nd_answer(reply: bytes) -> bytes | None:
            try:
                message = frames.decode_neighbor_discovery(reply)
            except frames.FrameError:
                return None
            if (
                isinstance(message, frames.NeighborAdvertisement)
                and message.solicited
                and message.target == ip
                and message.dst == KIT_CLIENT6
            ):
                # An answer to a unicast probe carries no Target-LLA option (as the kernel's).
                return message.target_lla or message.eth_src
            return None

        return self.ask(solicitation.encode(), nd_answer, timeout)


class Prober:
    """A client in ``ns`` starting a TCP connect to ``address`` every ``every`` seconds (each
    with a ``timeout``), recording the completion time of each success (docs/design/l2-reference.md
    §5.4).

    The failover benchmarks measure with this same prober.
    """

    def __init__(
        self,
        ns: str,
        address: IPv4Address | IPv6Address,
        port: int = HTTP_PORT,
        *,
        every: float = 0.05,
        timeout: float = 0.2,
    ) -> None:
        self.ns = ns
        self.target = (str(address), port)
        self.every = every
        self.timeout = timeout
        self.family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        self.successes: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def successes_after(self, moment: float) -> int:
        return sum(1 for t in list(self.successes) if t > moment)

    def first_after(self, moment: float) -> float | None:
        """The first success after ``moment``, or None."""
        return next((t for t in list(self.successes) if t > moment), None)

    def last_before(self, moment: float) -> float | None:
        """The last success at or before ``moment``, or None."""
        return max((t for t in list(self.successes) if t <= moment), default=None)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        pending: dict[socket.socket, float] = {}
        with entered(self.ns):
            next_start = time.monotonic()
            while not self._stop.is_set():
                if time.monotonic() >= next_start:
                    sock = socket.socket(self.family, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        sock.connect(self.target)
                    selector.register(sock, selectors.EVENT_WRITE)
                    pending[sock] = time.monotonic() + self.timeout
                    next_start += self.every
                for key, _ in selector.select(max(0.0, next_start - time.monotonic())):
                    done = key.fileobj
                    assert isinstance(done, socket.socket)
                    if done.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        self.successes.append(time.monotonic())
                    selector.unregister(done)
                    del pending[done]
                    done.close()
                now = time.monotonic()
                for sock, deadline in list(pending.items()):
                    if now >= deadline:
                        selector.unregister(sock)
                        del pending[sock]
                        sock.close()
            for sock in pending:
                sock.close()
