"""One controller replica as its own process, with the fast Lease timing of the tests.

``python -m tests.adapter.chaos_replica URL IDENTITY`` runs :class:`Replica` (the same
code as ``python -m announcers.kubernetes controller``) against ``URL`` until SIGTERM (which
stops it the CLI's way: the round finishes, the Lease is released); SIGKILL kills it with
its Lease held. The CLI keeps client-go's 15 s Lease, too slow for a chaos test that kills
the leader several times; this runner uses the tests' 3 s one.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from lightkube import KubeConfig

from announcers.kubernetes import logs
from announcers.kubernetes.client import LightkubeApi
from announcers.kubernetes.controller import Replica, Settings
from tests.support.emulator import kubeconfig_dict

from .controller_kit import FAST


def _dump_tasks() -> None:
    """SIGUSR1: every task's stack on stderr (what a stuck replica waits for)."""
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


async def main(url: str, identity: str) -> None:
    config = KubeConfig.from_dict(kubeconfig_dict(url, token=identity))
    api = LightkubeApi(config, trust_env=False)
    settings = Settings(identity=identity, leader=FAST, backoff_cap=1.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    print("ready", flush=True)
    try:
        await Replica(api, settings).run(stop)
    finally:
        await api.close()


if __name__ == "__main__":
    logs.configure(logging.INFO, sys.stderr)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
