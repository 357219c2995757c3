"""Speaker failover end to end: a node dies (or stops) and a client reaches the Service again.

Run as root from the repository root (needs iproute2, curl and arping; builds the speaker
lab of ``tests/support/speaker_lab.py`` — namespaces ``m6*``, so not while the speaker's
network-namespace tests run — and deletes it afterwards)::

    python -m benchmarks.speaker_failover [--runs 5] [--baseline-runs 5] [--cost-window 20]

The lab: the API server emulator and the controller in the bridge namespace, three nodes each
running ``python -m announcers.kubernetes speaker`` (default flags: UDP probes between the
speakers, deaths written to the API), an HTTP server on every node, and a client on the
bridge that starts a TCP connect to the Service's address every 20 ms (200 ms timeout each)
and records when each one succeeds, and that records every gratuitous ARP for the address.

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
* **Baseline**, in the same run: the design before issue 11, ``--liveness lease`` (a per-node
  Lease renewed every 0.25 s, stale after 1 s): the same hard deaths and handovers.
* **Liveness API cost**: for both designs, requests on the speaker Leases during a quiet
  window (nothing changing), per node and per minute, from the emulator's request log; and
  the watch events those writes cause (each write is delivered to every speaker's watch).

Targets (issue 11): hard death reached again <= 1 s, graceful handover <= 0.1 s (medians);
liveness writes <= 6 per node per minute.
For comparison, from docs/design/l2-reference.md §2 (their documentation and issues, not measured
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
HARD = 1.0  # target, seconds
GRACEFUL = 0.1  # target, seconds
PHASE = 0.25  # random phase against the probes (0.2 s) or renewals (0.25 s)
BASELINE = ("--liveness", "lease")


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
    time.sleep(0.5 + random.uniform(0.0, PHASE))
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


@dataclass(frozen=True)
class Cost:
    writes: float  # per node per minute
    requests: float  # per node per minute, on the speaker Leases
    verbs: Counter[str]


def lease_cost(lab: Lab, window: float) -> Cost:
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
    return Cost(len(writes) * per_minute, len(ours) * per_minute, verbs)


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


@dataclass
class Design:
    label: str
    cost: Cost
    hard: list[Hard]
    soft: list[Graceful]


def measure(lab: Lab, client: Client, address: str, label: str, runs: int) -> Design:
    hard = []
    for _ in range(runs):
        hard.append(hard_death(lab, client, address))
        print(f"{label} hard death: {hard[-1]}", file=sys.stderr, flush=True)
    soft = []
    for _ in range(runs):
        soft.append(graceful(lab, client, address))
        print(f"{label} graceful: {soft[-1]}", file=sys.stderr, flush=True)
    return Design(label, Cost(0, 0, Counter()), hard, soft)


def table(designs: Sequence[Design]) -> list[str]:
    lines = [
        f"| {'scenario':<46} | runs | median    | min       | max       | target",
        "|" + "---|" * 6,
    ]
    for d in designs:
        if not d.hard:
            continue
        target = d is designs[0]
        lines += [
            row(f"{d.label}: hard death -> client reaches it", [h.reached for h in d.hard],
                HARD if target else None),
            row(f"{d.label}: hard death, client outage", [h.outage for h in d.hard]),
            row(f"{d.label}: hard death -> new node's first GARP", [h.announced for h in d.hard]),
            row(f"{d.label}: SIGTERM -> new node's first GARP", [s.handover for s in d.soft],
                GRACEFUL if target else None),
            row(f"{d.label}: SIGTERM -> client reaches new node", [s.reached for s in d.soft]),
            row(f"{d.label}: SIGTERM, longest gap", [s.outage for s in d.soft]),
        ]  # fmt: skip
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each scenario (default 5)")
    parser.add_argument(
        "--baseline-runs", type=int, default=5,
        help="runs of each scenario with --liveness lease (default 5; 0 skips)",
    )  # fmt: skip
    parser.add_argument(
        "--cost-window", type=float, default=20.0, help="seconds of Lease traffic to count"
    )
    args = parser.parse_args(argv)
    problems = missing()
    if problems:
        print(f"speaker_failover: needs {' and '.join(problems)}", file=sys.stderr)
        return 2
    designs: list[Design] = []
    with tempfile.TemporaryDirectory(prefix="m6bench-") as workdir:
        lab = SpeakerLab(Path(workdir))
        try:
            lab.build()
            lab.set_advertisement()
            lab.start_speakers()
            address = lab.create_service("bench")
            lab.set_endpoints("bench", *NODES)
            client = Client(address)
            client.start()
            try:
                for label, flags, runs in (
                    ("probes (default)", (), args.runs),
                    ("baseline --liveness lease", BASELINE, args.baseline_runs),
                ):
                    if runs <= 0:
                        continue
                    if flags:
                        restart_speakers(lab, flags)
                    announcer_of(lab, address)
                    time.sleep(2.0)  # every speaker joined and settled
                    cost = lease_cost(lab, args.cost_window)
                    print(
                        f"{label}: {cost.writes:.1f} writes/node/min", file=sys.stderr, flush=True
                    )
                    design = measure(lab, client, address, label, runs)
                    design.cost = cost
                    designs.append(design)
            finally:
                client.stop()
        finally:
            lab.destroy()
    lines = table(designs)
    lines += ["", "| liveness API cost, quiet (3 nodes) | writes per node per minute | "
              "requests on speaker Leases per node per minute | watch events per node per minute |",
              "|---|---|---|---|"]  # fmt: skip
    for d in designs:
        lines.append(
            f"| {d.label} | {d.cost.writes:.1f} | {d.cost.requests:.1f} | "
            f"{d.cost.writes * len(NODES):.1f} |"
        )
    lines += [
        "",
        "Watch events: each write is delivered to each of the N speakers' Lease watches.",
        "Anchors (docs/design/l2-reference.md §2, not measured here): MetalLB ~4-6 s (memberlist), "
        "kube-vip 13-19.5 s (Lease 15/10/2 s), Cilium 10-20 s (Lease 15/5/2 s).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
