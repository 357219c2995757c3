"""Speaker failover end to end: a node dies (or stops) and a client reaches the Service again.

Run as root from the repository root (needs iproute2, curl and arping; builds the speaker
lab of ``tests/support/speaker_lab.py`` — namespaces ``m6*``, so not while the speaker's
network-namespace tests run — and deletes it afterwards)::

    python -m benchmarks.speaker_failover [--runs 5] [--baseline-runs 2] [--cost-window 20]

The lab: the API server emulator and the controller in the bridge namespace, three nodes each
running ``python -m announcers.kubernetes speaker`` with the default flags (Lease renewed
every 0.25 s, stale after 1 s), an HTTP server on every node, and a client on the bridge that
starts a TCP connect to the Service's address every 20 ms (200 ms timeout each) and records
when each one succeeds, and that records every gratuitous ARP for the address.

* **Hard death**: the announcing node's speaker gets SIGKILL and its bridge port goes down
  (the node is gone: no withdrawal, no Lease given up). *Reached again*: first successful
  connect after the port went down, minus the kill. *Outage*: that minus the last success
  before the port went down.
  *Announced*: the new node's first gratuitous ARP at the client, minus the kill.
* **Graceful handover**: the announcing node's speaker gets SIGTERM; once it has exited its
  bridge port goes down (the node leaves). *Handover*: the new node's first gratuitous ARP at
  the client, minus the SIGTERM: from then on the client's packets go to the new node.
  *Reached via the new node*: the first successful connect after that announcement, minus
  the SIGTERM. *Longest gap*: between two successful connects, SIGTERM to then.
* **Baseline**, in the same run: hard death with ``--lease-duration 5 --renew-period 1``
  (kube-vip's Lease timing until 2026), to show what the defaults buy.
* **Lease API cost**: requests made by the speakers during a quiet window (nothing
  changing), per node and per minute, from the emulator's request log; and the watch
  events those writes cause (each renewal is delivered to every speaker's Lease watch).

Targets (issue 6): hard death reached again <= 2 s, graceful handover <= 0.5 s (medians).
For comparison, from L2_REFERENCE.md §2 (their documentation and issues, not measured
here): MetalLB about 4-6 s, kube-vip 13-19.5 s with its current Lease defaults, Cilium
10-20 s.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any, TypeAlias

import metallb_core as core
from announcers.kubernetes.liveness import LEASE_PREFIX
from tests.support import l2lab, netns
from tests.support.emulator import EmulatorControl
from tests.support.netns import entered
from tests.support.speaker_lab import (
    BRIDGE_NS,
    CLIENT_NS,
    HTTP_PORT,
    IFACE,
    MAC,
    NODES,
    TOOLS,
    SpeakerLab,
    wait_until,
)

Lab: TypeAlias = SpeakerLab


def missing() -> list[str]:
    """What this host lacks for the speaker lab (empty: nothing)."""
    return netns.missing(TOOLS)


PROBE_EVERY = 0.02
PROBE_TIMEOUT = 0.2
ETH_P_ARP = 0x0806
HARD = 2.0  # target, seconds
GRACEFUL = 0.5  # target, seconds
DEFAULT_RENEW = 0.25


@dataclass
class Client:
    """The client namespace's view: TCP connects to ``address`` every 20 ms, and every
    gratuitous ARP request for it (time, sender MAC)."""

    address: str
    successes: list[float] = field(default_factory=list)
    garps: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    _prober: Any = None

    def start(self) -> None:
        # The probe is the network-namespace tests' own (tests/support/l2lab.py).
        self._prober = l2lab.Prober(
            CLIENT_NS, ip_address(self.address), HTTP_PORT, every=PROBE_EVERY, timeout=PROBE_TIMEOUT
        )
        self.successes = self._prober.successes  # the prober appends; readers see it live
        self._prober.__enter__()
        thread = threading.Thread(target=self._sniff, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        if self._prober is not None:
            self._prober.__exit__(None, None, None)

    def _sniff(self) -> None:
        target = socket.inet_aton(self.address)
        with entered(CLIENT_NS):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            sock.bind((IFACE, ETH_P_ARP))
        sock.settimeout(0.05)
        with sock:
            while not self._stop.is_set():
                try:
                    frame = sock.recv(2048)
                except TimeoutError:
                    continue
                # ARP request (op 1) with sender IP = target IP = the address: gratuitous.
                request = len(frame) >= 42 and frame[20:22] == b"\x00\x01"
                if request and frame[28:32] == target and frame[38:42] == target:
                    self.garps.append((time.monotonic(), frame[22:28].hex(":")))

    def first_success_after(self, moment: float) -> float | None:
        return next((t for t in list(self.successes) if t > moment), None)

    def last_success_before(self, moment: float) -> float | None:
        return max((t for t in list(self.successes) if t <= moment), default=None)

    def first_garp_from(self, mac: str, after: float) -> float | None:
        return next((t for t, sender in list(self.garps) if t > after and sender == mac), None)


@dataclass(frozen=True)
class Hard:
    reached: float
    outage: float
    announced: float


@dataclass(frozen=True)
class Graceful:
    handover: float
    reached: float
    outage: float


def announcer_of(lab: Lab, address: str) -> str:
    """The node serving ``address`` now (asked afresh), waiting until one does."""
    found: list[str | None] = [None]

    def serving() -> bool:
        found[0] = lab.fresh_curl(address)
        return found[0] is not None

    wait_until(serving, 15.0, f"a node serving {address}")
    assert found[0] is not None
    return found[0]


def settle(lab: Lab, address: str) -> str:
    """Every speaker up and agreeing, the elected node serving; return that node."""
    lab.start_speakers()
    winner = core.announcing_node(address, NODES)
    assert winner is not None
    lab.served_by(address, winner, timeout=15.0)
    # The client's probe back in steady state through the winner; then a random phase
    # against the renewals (the winner was just restarted: its renew ticks would otherwise
    # line up with this wait, and every kill would land just after a renewal).
    time.sleep(0.5 + random.uniform(0.0, DEFAULT_RENEW))
    return winner


def wait_for(condition: Callable[[], float | None], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def hard_death(lab: Lab, client: Client, address: str) -> Hard:
    victim = settle(lab, address)
    successor = core.announcing_node(address, [n for n in NODES if n != victim])
    assert successor is not None
    killed = time.monotonic()
    lab.speakers[victim].stop(signal.SIGKILL)
    lab.port_down(victim)
    # Until the port is down (a few ms of `ip`) the node still answers: count from then.
    down = time.monotonic()
    back = wait_for(lambda: client.first_success_after(down), 15.0, "the client to get back")
    garp = wait_for(lambda: client.first_garp_from(MAC[successor], killed), 5.0, "a GARP")
    before = client.last_success_before(down)
    assert before is not None
    lab.port_up(victim)
    return Hard(reached=back - killed, outage=back - before, announced=garp - killed)


def graceful(lab: Lab, client: Client, address: str) -> Graceful:
    victim = settle(lab, address)
    successor = core.announcing_node(address, [n for n in NODES if n != victim])
    assert successor is not None
    process = lab.speakers[victim]
    stopped = time.monotonic()
    process.popen.send_signal(signal.SIGTERM)
    if process.popen.wait(10) != 0:
        raise RuntimeError(f"speaker {victim} exited with {process.popen.returncode}")
    lab.port_down(victim)  # the node leaves once its speaker is done
    garp = wait_for(lambda: client.first_garp_from(MAC[successor], stopped), 5.0, "a GARP")
    # Connects take well under a millisecond here: one completing 2 ms after the GARP left
    # the client after it, towards the new node.
    back = wait_for(lambda: client.first_success_after(garp + 0.002), 15.0, "the client")
    gaps = [b - a for a, b in zip(client.successes, client.successes[1:], strict=False)]
    window = [g for g, t in zip(gaps, client.successes[1:], strict=False) if stopped < t <= back]
    lab.port_up(victim)
    return Graceful(handover=garp - stopped, reached=back - stopped, outage=max(window, default=0))


def lease_cost(lab: Lab, window: float) -> tuple[float, float, Counter[str]]:
    """Per node per minute, in a quiet window: writes to the speakers' Leases, and every
    request on them; plus the verbs of every request the emulator saw (the controller's
    own Lease included, by name)."""
    control = EmulatorControl(lab.url)
    with entered(BRIDGE_NS):
        control.clear_requests()
    time.sleep(window)
    with entered(BRIDGE_NS):
        log = control.requests()
    ours = [r for r in log if r.resource == "leases" and (r.name or "").startswith(LEASE_PREFIX)]
    writes = [r for r in ours if r.verb in ("patch", "update", "create")]
    per_minute = 60.0 / window / len(NODES)
    verbs = Counter(f"{r.verb} {r.resource}/{r.name or '*'}" for r in log)
    return len(writes) * per_minute, len(ours) * per_minute, verbs


def stats(values: Sequence[float]) -> str:
    return f"{statistics.median(values):>7.3f} s | {min(values):>7.3f} s | {max(values):>7.3f} s"


def row(label: str, values: Sequence[float], target: float | None = None) -> str:
    verdict = ""
    if target is not None:
        met = statistics.median(values) <= target
        verdict = f"<= {target:g} s: {'met' if met else 'MISSED'}"
    return f"| {label:<46} | {len(values):>4} | {stats(values)} | {verdict}"


def restart_speakers(lab: Lab, args: tuple[str, ...]) -> None:
    for process in lab.speakers.values():
        process.stop(signal.SIGTERM)
    lab.speakers.clear()
    lab.speaker_args = args
    lab.start_speakers()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each scenario (default 5)")
    parser.add_argument(
        "--baseline-runs", type=int, default=2,
        help="hard deaths with a 5 s Lease renewed every 1 s (default 2; 0 skips)",
    )  # fmt: skip
    parser.add_argument(
        "--cost-window", type=float, default=20.0, help="seconds of Lease traffic to count"
    )
    args = parser.parse_args(argv)
    problems = missing()
    if problems:
        print(f"speaker_failover: needs {' and '.join(problems)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="m6bench-") as workdir:
        lab = SpeakerLab(Path(workdir))
        try:
            lab.build()
            lab.set_advertisement()
            lab.start_speakers()
            address = lab.create_service("bench")
            lab.set_endpoints("bench", *NODES)
            announcer_of(lab, address)
            writes, requests, verbs = lease_cost(lab, args.cost_window)
            print(f"lease cost measured over {args.cost_window:g} s", file=sys.stderr, flush=True)
            client = Client(address)
            client.start()
            try:
                hard = []
                for _ in range(args.runs):
                    hard.append(hard_death(lab, client, address))
                    print(f"hard death: {hard[-1]}", file=sys.stderr, flush=True)
                soft = []
                for _ in range(args.runs):
                    soft.append(graceful(lab, client, address))
                    print(f"graceful: {soft[-1]}", file=sys.stderr, flush=True)
                base = []
                if args.baseline_runs > 0:
                    restart_speakers(lab, ("--lease-duration", "5", "--renew-period", "1"))
                    for _ in range(args.baseline_runs):
                        base.append(hard_death(lab, client, address))
                        print(f"baseline: {base[-1]}", file=sys.stderr, flush=True)
            finally:
                client.stop()
        finally:
            lab.destroy()
    lines = [
        f"| {'scenario (defaults: Lease 1 s, renewed every 0.25 s)':<46} | runs | "
        "median    | min       | max       | target",
        "|" + "---|" * 6,
        row("hard death -> client reaches the Service again", [h.reached for h in hard], HARD),
        row("hard death: client outage (last to first success)", [h.outage for h in hard]),
        row("hard death -> new node's first GARP at the client", [h.announced for h in hard]),
        row("SIGTERM -> new node's first GARP (handover)", [s.handover for s in soft], GRACEFUL),
        row("SIGTERM -> client reaches it via the new node", [s.reached for s in soft]),
        row("SIGTERM: longest gap between client successes", [s.outage for s in soft]),
    ]  # fmt: skip
    if base:
        lines.append(
            row("baseline, Lease 5 s / 1 s: hard death -> reached", [h.reached for h in base])
        )
    else:
        lines.append(f"| {'baseline, Lease 5 s / 1 s (not run)':<46} |    0 | - | - | - |")
    lines += [
        "",
        f"Lease API cost per node per minute (quiet, {len(NODES)} nodes, defaults): "
        f"{writes:.0f} Lease writes (expected {60 / DEFAULT_RENEW:.0f}: one PATCH per renewal), "
        f"{requests:.0f} requests on the speaker Leases in all; each write is delivered as "
        f"a watch event to each of the {len(NODES)} speakers' Lease watches "
        f"({writes * len(NODES):.0f} events per node per minute: N per write on N nodes).",
        "Requests seen in the window: "
        + ", ".join(f"{verb} x{count}" for verb, count in sorted(verbs.items())),
        "Anchors (L2_REFERENCE.md §2, not measured here): MetalLB ~4-6 s (memberlist), "
        "kube-vip 13-19.5 s (Lease 15/10/2 s), Cilium 10-20 s (Lease 15/5/2 s).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
