"""Failover of the Layer-2 announcer as a Linux client sees it, with and without announcements.

Run as root from the repository root (needs iproute2; builds its own network namespaces,
all named ``m4f*``, and deletes them afterwards)::

    python -m benchmarks.l2_failover [--runs 5] [--baseline-runs 1]

The lab (docs/design/l2-reference.md §5.4): a bridge namespace, a client and two nodes on veths with
fixed MACs; each node holds the address on ``lo`` (``arp_ignore=1``/``arp_announce=2``) with
a TCP server bound to it. The client starts a TCP connect to the address every 50 ms, each
with a 200 ms timeout, and records when each one succeeds. Node 1 announces; then node 1
"dies" (its announcer is closed and its bridge port set down) and node 2 takes over at once
(detection delay 0: this measures the client side only).

- *outage*: first success after the kill minus last success before it;
- *from takeover*: first success after node 2's ``announce()`` minus the moment it was called.

The baseline is the same takeover with node 2 answering requests but sending no
announcement (``L2Announcer(announce_on_takeover=False)``): the client keeps the dead MAC
until its own neighbour entry times out. It is measured in the same run (``--baseline-runs``,
each lasting about half a minute), and bounded from the client's sysctls: REACHABLE lasts
0.5-1.5 x ``base_reachable_time_ms``, then DELAY ``delay_first_probe_time``, then
``ucast_solicit`` unicast probes ``retrans_time_ms`` apart.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import socket
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from announcers.arp import L2Announcer
from tests.support import l2lab, netns
from tests.support.netns import entered

RUN = netns.run_token()  # namespace names are global to the host: each carries this token
BRIDGE_NS, BRIDGE = f"m4fbr-{RUN}", "m4fbr0"
CLIENT_NS = f"m4fc-{RUN}"
N1, N2 = NODES = (f"m4fn1-{RUN}", f"m4fn2-{RUN}")
IFACE = "m4fe0"
PORT = {CLIENT_NS: "m4fpc", N1: "m4fpn1", N2: "m4fpn2"}
MAC = {CLIENT_NS: "02:00:00:0f:00:0c", N1: "02:00:00:0f:00:01", N2: "02:00:00:0f:00:02"}
HOST_V4 = {CLIENT_NS: "10.45.0.12", N1: "10.45.0.1", N2: "10.45.0.2"}
HOST_V6 = {CLIENT_NS: "fd00:45::c", N1: "fd00:45::1", N2: "fd00:45::2"}
VIP4, VIP6 = IPv4Address("10.45.0.100"), IPv6Address("fd00:45::100")
TCP_PORT = 8080
PROBE_EVERY = 0.05
PROBE_TIMEOUT = 0.2


def ns(name: str, *args: str, check: bool = True) -> str:
    return netns.in_ns(name, *args, check=check).stdout


def build() -> None:
    destroy()
    for name in (BRIDGE_NS, CLIENT_NS, *NODES):
        netns.new_namespace(name)
    ns(BRIDGE_NS, "ip", "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "1")
    ns(BRIDGE_NS, "ip", "link", "set", BRIDGE, "up")
    for host in (CLIENT_NS, *NODES):
        ns(host, "ip", "link", "add", IFACE, "address", MAC[host], "type", "veth",
           "peer", "name", PORT[host], "netns", BRIDGE_NS)  # fmt: skip
        ns(BRIDGE_NS, "ip", "link", "set", PORT[host], "master", BRIDGE, "up")
        ns(host, "ip", "addr", "add", f"{HOST_V4[host]}/24", "dev", IFACE)
        ns(host, "ip", "addr", "add", f"{HOST_V6[host]}/64", "dev", IFACE, "nodad")
        ns(host, "ip", "link", "set", IFACE, "up")
    for node in NODES:
        ns(node, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1")
        ns(node, "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2")
        ns(node, "ip", "addr", "add", f"{VIP4}/32", "dev", "lo")
        ns(node, "ip", "addr", "add", f"{VIP6}/128", "dev", "lo")


def destroy() -> None:
    netns.delete_namespaces([BRIDGE_NS, CLIENT_NS, *NODES])


class Servers:
    """A TCP listener on each address in each node, accepting and closing in a thread."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        for node in NODES:
            with entered(node):
                for family, vip in ((socket.AF_INET, VIP4), (socket.AF_INET6, VIP6)):
                    listener = socket.socket(family, socket.SOCK_STREAM)
                    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    listener.bind((str(vip), TCP_PORT))
                    listener.listen(128)
                    self.sockets.append(listener)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        for listener in self.sockets:
            selector.register(listener, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                with contextlib.suppress(OSError):
                    connection, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    connection.close()


def client_neighbour(address: IPv4Address | IPv6Address) -> str:
    return ns(CLIENT_NS, "ip", "neigh", "show", str(address), "dev", IFACE).strip()


@dataclass(frozen=True)
class Result:
    outage: float
    from_takeover: float
    moved_to_node2: bool


def one_failover(address: IPv4Address | IPv6Address, *, announce: bool, limit: float) -> Result:
    ns(CLIENT_NS, "ip", "neigh", "flush", "dev", IFACE, check=False)
    for host in (CLIENT_NS, *NODES):
        ns(BRIDGE_NS, "ip", "link", "set", PORT[host], "up")
    with entered(NODES[0]):
        node1 = L2Announcer()
        node1.announce(address, IFACE)
    probe = l2lab.Prober(CLIENT_NS, address, TCP_PORT)
    with probe:
        deadline = time.monotonic() + 5.0
        while len(probe.successes) < 5:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the client never reached {address} through node 1")
            time.sleep(0.01)
        time.sleep(0.3)  # steady state: the client's entry is REACHABLE at node 1
        killed = time.monotonic()
        node1.close()
        ns(BRIDGE_NS, "ip", "link", "set", PORT[NODES[0]], "down")
        with entered(NODES[1]):
            node2 = L2Announcer(announce_on_takeover=announce)
            took_over = time.monotonic()
            node2.announce(address, IFACE)
        try:
            deadline = took_over + limit
            while probe.first_after(took_over) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no success within {limit} s of the takeover")
                time.sleep(0.01)
            time.sleep(0.1)
            moved = MAC[NODES[1]] in client_neighbour(address)
        finally:
            node2.close()
    first = probe.first_after(killed)
    last = probe.last_before(killed)
    assert first is not None
    assert last is not None
    back = probe.first_after(took_over)
    assert back is not None
    return Result(outage=first - last, from_takeover=back - took_over, moved_to_node2=moved)


def sysctl(name: str) -> float:
    return float(ns(CLIENT_NS, "sysctl", "-n", name).strip())


def bound(family: int) -> tuple[float, float]:
    """The no-announcement outage the client's own timers allow, in seconds."""
    proto = "ipv4" if family == 4 else "ipv6"
    base = sysctl(f"net.{proto}.neigh.{IFACE}.base_reachable_time_ms") / 1000
    delay = sysctl(f"net.{proto}.neigh.{IFACE}.delay_first_probe_time")
    probes = sysctl(f"net.{proto}.neigh.{IFACE}.ucast_solicit")
    retrans = sysctl(f"net.{proto}.neigh.{IFACE}.retrans_time_ms") / 1000
    tail = delay + probes * retrans
    return 0.5 * base + tail, 1.5 * base + tail


def row(label: str, results: Sequence[Result], note: str = "") -> str:
    outages = [r.outage for r in results]
    takeovers = [r.from_takeover for r in results]
    moved = sum(r.moved_to_node2 for r in results)
    return (
        f"| {label:<34} | {len(results):>4} | {statistics.median(outages):>8.3f} | "
        f"{min(outages):>6.3f} | {max(outages):>6.3f} | {statistics.median(takeovers):>8.3f} | "
        f"{moved}/{len(results)} | {note}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs with announcements, per family")
    parser.add_argument(
        "--baseline-runs", type=int, default=1,
        help="runs without announcements, per family (each takes about 25-55 s; 0 skips)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("l2_failover: needs root (network namespaces)", file=sys.stderr)
        return 2
    build()
    try:
        Servers()
        lines = [
            "| scenario                           | runs | outage s | min s  | max s  | "
            "takeover | entry -> node 2 | client timers allow",
            "|" + "---|" * 8,
        ]
        for family, address in ((4, VIP4), (6, VIP6)):
            results = [one_failover(address, announce=True, limit=10.0) for _ in range(args.runs)]
            lines.append(row(f"IPv{family}, with announcements", results))
            print(lines[-1], file=sys.stderr, flush=True)
        for family, address in ((4, VIP4), (6, VIP6)):
            low, high = bound(family)
            note = f"{low:.0f}-{high:.0f} s"
            if args.baseline_runs > 0:
                results = [
                    one_failover(address, announce=False, limit=high + 10.0)
                    for _ in range(args.baseline_runs)
                ]
                lines.append(row(f"IPv{family}, no announcement (baseline)", results, note))
            else:
                label = f"IPv{family}, no announcement (not run)"
                dashes = "|        - |      - |      - |        - | -"
                lines.append(f"| {label:<34} |    0 {dashes} | {note}")
            print(lines[-1], file=sys.stderr, flush=True)
    finally:
        destroy()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
