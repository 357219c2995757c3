"""Network-namespace helpers shared by the labs (:mod:`tests.support.l2lab`,
:mod:`tests.support.speaker_lab`) and the benchmarks built on them.

Namespace names are global to the host: every namespace a lab makes carries the token of
:func:`run_token`, drawn once per test run and inherited by the processes the run starts, so
that two runs on one machine (two ``tox`` at once, a benchmark beside the suite) never touch
each other's namespaces. Interface names live inside those namespaces and need no token.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

CLONE_NEWNET = 0x40000000


def run_token() -> str:
    """A token unique to this test run, shared with the processes it starts.

    Drawn on first use and kept in ``METALLB_LAB_RUN``, so that subprocesses (and a
    benchmark given the variable) name the same namespaces.
    """
    token = os.environ.get("METALLB_LAB_RUN")
    if not token:
        token = os.environ["METALLB_LAB_RUN"] = secrets.token_hex(3)
    return token


def missing(tools: Sequence[str]) -> list[str]:
    """What this host lacks for a lab using ``tools`` (empty: nothing)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("root (network namespaces)")
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        problems.append("the tools " + ", ".join(absent))
    return problems


def require(*tools: str) -> None:
    """Skip (or, with ``CI`` set, fail) unless root and every tool are available."""
    problems = missing(tools)
    if problems:
        reason = "needs " + " and ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is a failure)")
        pytest.skip(reason)


def sh(*args: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its text output."""
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


def in_ns(
    ns: str, *args: str, check: bool = True, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    """Run a command inside network namespace ``ns``."""
    return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)


def delete_namespaces(names: Sequence[str]) -> None:
    """Delete the namespaces that exist (their veths vanish with them)."""
    for name in names:
        sh("ip", "netns", "delete", name, check=False)


def new_namespace(name: str, *, ipv6: bool = True) -> None:
    """A fresh namespace with ``lo`` up; IPv6 with DAD off (no 1-2 s wait for addresses), or
    with ``ipv6=False`` no IPv6 at all."""
    sh("ip", "netns", "delete", name, check=False)
    sh("ip", "netns", "add", name)
    for key in ("all", "default"):
        setting = "accept_dad=0" if ipv6 else "disable_ipv6=1"
        in_ns(name, "sysctl", "-qw", f"net.ipv6.conf.{key}.{setting}")
    in_ns(name, "ip", "link", "set", "lo", "up")


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the calling thread inside network namespace ``ns`` for the duration.

    Threads started meanwhile inherit the namespace, and sockets opened meanwhile stay in it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net", "rb") as home, open(f"/run/netns/{ns}", "rb") as there:
        if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")


@dataclass
class Process:
    """A background process with its stderr collected in a file."""

    popen: subprocess.Popen[str]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode
