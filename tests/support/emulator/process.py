"""Out-of-process use: the emulator as a subprocess, driven through its control API."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Self

from .common import CONTROL_PREFIX, REPO_ROOT, JsonDict, OutageMode
from .kubeconfig import write_kubeconfig
from .request_log import RequestLog
from .server import ApiServerEmulator

# --------------------------------------------------------------------------------------------
# Out-of-process use
# --------------------------------------------------------------------------------------------


class EmulatorControl:
    """Blocking client of the control API of an emulator in another process.

    Never call it from the event loop running an in-process emulator (it would deadlock);
    use the emulator's methods there.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(
        self, method: str, action: str, data: Any = None, query: Mapping[str, str] | None = None
    ) -> Any:
        url = f"{self.url}{CONTROL_PREFIX}{action}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        body = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(
            url, data=body, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {url}: {error.code} {error.read()!r}") from error

    def healthy(self) -> bool:
        """Whether the control API answers."""
        try:
            return bool(self._call("GET", "healthz")["ok"])
        except (OSError, RuntimeError):
            return False

    def requests(self) -> RequestLog:
        """A copy of the request log."""
        return RequestLog.from_json(self._call("GET", "requests")["records"])

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "requests")

    def go_away(self, mode: OutageMode = "refuse", seconds: float | None = None) -> None:
        """Start an outage (``refuse`` needs ``seconds``: nothing could reach it to end it)."""
        self._call("POST", "outage", {"mode": mode, "seconds": seconds})

    def come_back(self) -> None:
        """End a ``503`` outage."""
        self._call("DELETE", "outage")

    def conflict_on_first_status_write(self, enabled: bool = True, *, touch: bool = True) -> None:
        """See :meth:`ApiServerEmulator.conflict_on_first_status_write`."""
        self._call("POST", "conflicts", {"first_status_write": enabled, "touch": touch})

    def compact(self) -> None:
        """See :meth:`ApiServerEmulator.compact`."""
        self._call("POST", "compact", {})

    def write_latency(self, low: float, high: float, *, resource: str | None = None) -> None:
        """See :meth:`ApiServerEmulator.write_latency`."""
        self._call("POST", "latency", {"low": low, "high": high, "resource": resource})

    def seed(self, *objects: Mapping[str, Any]) -> list[JsonDict]:
        """See :meth:`ApiServerEmulator.seed`."""
        result: list[JsonDict] = self._call("POST", "seed", {"objects": list(objects)})["objects"]
        return result

    def history(self, resource: str, namespace: str | None, name: str) -> list[JsonDict | None]:
        """See :meth:`ApiServerEmulator.history`."""
        query = {"resource": resource, "name": name}
        if namespace is not None:
            query["namespace"] = namespace
        versions: list[JsonDict | None] = self._call("GET", "history", query=query)["versions"]
        return versions


class EmulatorProcess:
    """The standalone emulator as a subprocess; ``prefix`` runs it e.g. in a network namespace.

    >>> with EmulatorProcess.start() as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
    >>> server.process.returncode
    0

    ``stop()`` (or leaving the ``with``) sends SIGTERM and waits.
    """

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.control = EmulatorControl(url)

    @classmethod
    def start(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: Sequence[str] = (),
        args: Sequence[str] = (),
        url_host: str | None = None,
        timeout: float = 30.0,
    ) -> EmulatorProcess:
        """Start ``python -m tests.support.emulator`` and wait for its URL line."""
        command = [*prefix, sys.executable, "-m", "tests.support.emulator"]
        command += ["--host", host, "--port", str(port), *args]
        if url_host is not None:
            command += ["--url-host", url_host]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(remaining, 0))
            if ready:
                line = process.stdout.readline().strip()
                if line.startswith("http"):
                    return cls(process, line)
            if process.poll() is not None or remaining <= 0:
                process.kill()
                process.wait()
                raise RuntimeError(f"the emulator did not start: {command} ({process.returncode})")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, and return the exit status (killed after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _serve(args: argparse.Namespace) -> int:
    async with ApiServerEmulator(install_metallb_crds=not args.no_metallb_crds) as apiserver:
        await apiserver.start(args.host, args.port)
        url = apiserver.base_url
        if args.url_host:
            host = f"[{args.url_host}]" if ":" in args.url_host else args.url_host
            url = f"http://{host}:{apiserver.base_url.rsplit(':', 1)[1]}"
        if args.kubeconfig:
            write_kubeconfig(args.kubeconfig, url, namespace=args.namespace)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(url, flush=True)
        await stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.support.emulator``: serve until SIGTERM/SIGINT, print the URL."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.emulator",
        description="A Kubernetes API server emulator for tests (plain HTTP, in memory).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--url-host", help="host to print in the URL (default: --host)")
    parser.add_argument("--kubeconfig", help="also write a kubeconfig for the URL here")
    parser.add_argument("--namespace", default="default", help="namespace of that kubeconfig")
    parser.add_argument(
        "--no-metallb-crds", action="store_true", help="do not pre-load the metallb.io CRDs"
    )
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args))
