"""One speaker with a recording mock announcer, for the speaker benchmarks (not a product).

``python -m benchmarks.speaker_node --node N --kubeconfig K [--liveness probe|lease]`` runs the
real :class:`~announcers.kubernetes.speaker.Speaker` (real HTTP to the API server, UDP probes on
loopback) with a :class:`~announcers.mock.MockAnnouncer` on one made-up interface, and prints
one JSON line per announce, withdraw and change of the alive set, stamped with
``time.monotonic()`` (the same clock in every process), until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from announcers.arp.interfaces import SelectedInterface
from announcers.kubernetes import client
from announcers.kubernetes.speaker import Speaker, SpeakerSettings
from announcers.mock import MockAnnouncer


def emit(op: str, **fields: Any) -> None:
    print(json.dumps({"t": time.monotonic(), "op": op, **fields}), flush=True)


class Recording(MockAnnouncer):
    """A mock announcer that prints what it does."""

    def announce(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        super().announce(ip, interface)
        emit("announce", ip=str(ip))

    def withdraw(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        super().withdraw(ip, interface)
        emit("withdraw", ip=str(ip))


class Watched(Speaker):
    """A speaker that prints every change of its alive set."""

    def _check_alive(self) -> None:
        before = self.alive
        super()._check_alive()
        if self.alive != before:
            emit("alive", n=len(self.alive))


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", default="metallb-system")
    parser.add_argument("--liveness", choices=("probe", "lease"), default="probe")
    args = parser.parse_args(argv)
    api = client.connect(args.kubeconfig, trust_env=False)
    settings = SpeakerSettings(
        node=args.node,
        namespace=args.namespace,
        liveness=args.liveness,
        probe_address="127.0.0.1",
        probe_port=0,
    )
    found = (SelectedInterface("eth0", True, False),)
    speaker = Watched(api, Recording(), settings, interfaces=lambda: found)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await speaker.run(stop)
    finally:
        await api.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
