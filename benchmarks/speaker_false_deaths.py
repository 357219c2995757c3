"""False deaths: live speakers taken for dead under a slow API server or CPU starvation.

Run from the repository root (no root needed)::

    python -m benchmarks.speaker_false_deaths [--speakers 10] [--services 10] [--seconds 60]

The API server emulator runs as a process; ``--speakers`` speaker processes
(``python -m benchmarks.speaker_node``: the real speaker, real HTTP, a recording mock announcer, UDP
probes on loopback) announce ``--services`` Services, all nodes eligible. Once every Service is
announced by exactly one node and nothing moved for 3 s, a fault runs for ``--seconds``, with
**no real failure**:

* **slow API**: every write to the API server takes U(0.2, 1.5) s (the emulator's
  ``write_latency``; reads and watches are not delayed);
* **starvation**: ``--burners`` busy-looping processes (default one per core) next to the
  speakers and the emulator.

Counted in the window, from what the speakers' announcers did (one clock for all processes):
*takeovers* (an announcement of an address that was already announced elsewhere or moved:
every announce after the steady state is one), *double announcements* (episodes with two nodes
answering for one address, and their total duration), *alive changes* (a speaker's set of live
nodes changing), and liveness writes per node per minute (emulator request log). Before each
fault, the CPU of each speaker process is measured over ``--quiet`` seconds of steady state.

Both designs run in the same run: the default (``--liveness probe``) and the baseline
(``--liveness lease``: the per-node Lease renewed every 0.25 s, stale after 1 s).
Target (issue 11): 0 takeovers and 0 double announcements in both faults.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from announcers.kubernetes.liveness import LEASE_PREFIX
from tests.support import emulator as _emulator

REPO = Path(__file__).resolve().parents[1]

NS = "metallb-system"
POOL = "192.0.2.0/24"


def objects(nodes: Sequence[str], services: int) -> list[dict[str, Any]]:
    """The namespace, a pool and an advertisement, the Nodes, the Services and endpoints."""
    found: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "p", "namespace": NS}, "spec": {"addresses": [POOL]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
         "metadata": {"name": "l2", "namespace": NS}, "spec": {}},
    ]  # fmt: skip
    for name in nodes:
        found.append(
            {"apiVersion": "v1", "kind": "Node",
             "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
             "status": {"conditions": [{"type": "NetworkUnavailable", "status": "False"}]}}
        )  # fmt: skip
    for i in range(services):
        name = f"s{i}"
        found.append(
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": name, "namespace": "default"},
             "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
             "status": {"loadBalancer": {
                 "ingress": [{"ip": f"192.0.2.{10 + i}", "ipMode": "VIP"}]}}}
        )  # fmt: skip
        found.append(
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{name}-x", "namespace": "default",
                          "labels": {"kubernetes.io/service-name": name}},
             "addressType": "IPv4",
             "endpoints": [{"addresses": [f"10.244.0.{j + 1}"], "conditions": {"ready": True},
                            "nodeName": n} for j, n in enumerate(nodes)]}
        )  # fmt: skip
    return found


@dataclass
class Node:
    name: str
    process: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))


def start_speakers(kubeconfig: Path, names: Sequence[str], liveness: str, logs: Path) -> list[Node]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    started = []
    for name in names:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.speaker_node", "--node", name,
             "--kubeconfig", str(kubeconfig), "--liveness", liveness],
            cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=(logs / f"{liveness}-{name}.log").open("w"), text=True,
        )  # fmt: skip
        node = Node(name, process)
        threading.Thread(target=node.read, daemon=True).start()
        started.append(node)
    return started


def stop_speakers(nodes: Sequence[Node]) -> None:
    for node in nodes:
        node.process.send_signal(signal.SIGTERM)
    for node in nodes:
        try:
            node.process.wait(15)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()


def holders(nodes: Sequence[Node], until: float | None = None) -> dict[str, set[str]]:
    """Who announces each address (as of ``until``, or now)."""
    held: dict[str, set[str]] = {}
    for node in nodes:
        for line in list(node.lines):
            if until is not None and line["t"] > until:
                break
            if line["op"] == "announce":
                held.setdefault(line["ip"], set()).add(node.name)
            elif line["op"] == "withdraw":
                held.setdefault(line["ip"], set()).discard(node.name)
    return held


def last_change(nodes: Sequence[Node]) -> float:
    times = [line["t"] for n in nodes for line in list(n.lines) if line["op"] != "alive"]
    return max(times, default=0.0)


@dataclass(frozen=True)
class Outcome:
    design: str
    fault: str
    takeovers: int
    doubles: int
    double_seconds: float
    alive_changes: int
    writes_per_node_minute: float
    quiet_millicores: float = 0.0  # CPU per speaker process before the fault


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quiet_cpu(nodes: Sequence[Node], seconds: float) -> float:
    """Millicores per speaker process over ``seconds`` with nothing changing."""
    before = [cpu_seconds(n.process.pid) for n in nodes]
    started = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - started
    after = [cpu_seconds(n.process.pid) for n in nodes]
    return sum(b - a for a, b in zip(before, after, strict=True)) / wall / len(nodes) * 1000


def analyse(
    nodes: Sequence[Node], start: float, end: float, design: str, fault: str, writes: int
) -> Outcome:
    events = sorted(
        (line["t"], line["op"], line.get("ip", ""), node.name)
        for node in nodes
        for line in list(node.lines)
        if start <= line["t"] <= end
    )
    held = holders(nodes, until=start)
    takeovers = doubles = alive = 0
    double_since: dict[str, float] = {}
    double_seconds = 0.0
    for t, op, ip, name in events:
        if op == "alive":
            alive += 1
            continue
        if op == "announce":
            takeovers += 1
            held.setdefault(ip, set()).add(name)
        else:
            held.setdefault(ip, set()).discard(name)
        if len(held[ip]) >= 2 and ip not in double_since:
            doubles += 1
            double_since[ip] = t
        elif len(held[ip]) < 2 and ip in double_since:
            double_seconds += t - double_since.pop(ip)
    double_seconds += sum(end - t for t in double_since.values())
    minutes = (end - start) / 60.0
    return Outcome(
        design, fault, takeovers, doubles, double_seconds, alive, writes / len(nodes) / minutes
    )


@contextlib.contextmanager
def burners(count: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def wait_steady(nodes: Sequence[Node], services: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = holders(nodes)
        one_each = len(held) == services and all(len(v) == 1 for v in held.values())
        if one_each and time.monotonic() - last_change(nodes) > 3.0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no steady state: {holders(nodes)}")


def run(design: str, fault: str, args: argparse.Namespace, workdir: Path) -> Outcome:
    with _emulator.EmulatorProcess.start() as server:
        control = _emulator.EmulatorControl(server.url)
        control.seed(*objects([f"n{i:02d}" for i in range(args.speakers)], args.services))
        kubeconfig = _emulator.write_kubeconfig(workdir / "kubeconfig", server.url, namespace=NS)
        names = [f"n{i:02d}" for i in range(args.speakers)]
        nodes = start_speakers(kubeconfig, names, design, workdir)
        try:
            wait_steady(nodes, args.services)
            quiet = quiet_cpu(nodes, args.quiet)
            control.clear_requests()
            start = time.monotonic()
            if fault == "slow API":
                control.write_latency(0.2, 1.5)
                time.sleep(args.seconds)
                control.write_latency(0, 0)
            else:
                with burners(args.burners):
                    time.sleep(args.seconds)
            end = time.monotonic()
            log = control.requests()
            writes = sum(
                1
                for r in log
                if r.resource == "leases"
                and (r.name or "").startswith(LEASE_PREFIX)
                and r.verb in ("create", "patch", "update")
            )
        finally:
            stop_speakers(nodes)
    outcome = dataclasses.replace(
        analyse(nodes, start, end, design, fault, writes), quiet_millicores=quiet
    )
    print(outcome, file=sys.stderr, flush=True)
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--speakers", type=int, default=10)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each fault")
    parser.add_argument(
        "--burners", type=int, default=os.cpu_count() or 2,
        help="busy-looping processes during the starvation fault (default: one per core)",
    )  # fmt: skip
    parser.add_argument(
        "--quiet", type=float, default=10.0, help="seconds of quiet CPU measured before a fault"
    )
    parser.add_argument(
        "--designs", nargs="+", default=["probe", "lease"], choices=["probe", "lease"]
    )
    parser.add_argument(
        "--faults", nargs="+", default=["slow API", "starvation"],
        choices=["slow API", "starvation"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="falsedeaths-") as tmp:
        for fault in args.faults:
            for design in args.designs:
                outcomes.append(run(design, fault, args, Path(tmp)))
    print(
        f"{args.speakers} speakers, {args.services} Services, {args.seconds:g} s per fault, "
        f"{args.burners} CPU burners on {os.cpu_count()} cores for starvation, "
        "no real failure\n"
    )
    print("| fault | liveness | takeovers | double announcements | double-announced s | "
          "alive-set changes | liveness writes/node/min | CPU per speaker, quiet |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for o in outcomes:
        label = "probe (default)" if o.design == "probe" else "lease (baseline, 1 s / 0.25 s)"
        print(
            f"| {o.fault} | {label} | {o.takeovers} | {o.doubles} | {o.double_seconds:.1f} | "
            f"{o.alive_changes} | {o.writes_per_node_minute:.1f} | {o.quiet_millicores:.1f}m |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
