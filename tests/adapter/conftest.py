"""Fixtures for tests that talk to the Kubernetes API server emulator
(:mod:`tests.support.emulator`).

* ``apiserver``: a running :class:`ApiServerEmulator` on 127.0.0.1 (a free port), fresh for
  each test, on the test's event loop (so tests using it are ``async``).
* ``kubeconfig``: a lightkube ``KubeConfig`` for it; ``kubeconfig_path``: the same as a file
  (for ``--kubeconfig`` of subprocesses).
* ``async_client`` / ``sync_client``: lightkube clients for it. The sync one must be used
  through ``await asyncio.to_thread(...)``: called on the loop's thread it would deadlock.
* ``apiserver_process``: the standalone emulator as a subprocess (:class:`EmulatorProcess`),
  for code that must run in another process; drive it with ``apiserver_process.control``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from lightkube import AsyncClient, Client, KubeConfig

from tests.support.emulator import ApiServerEmulator, EmulatorProcess, kube_config, write_kubeconfig


@pytest_asyncio.fixture
async def apiserver() -> AsyncIterator[ApiServerEmulator]:
    """A running emulator; errors inside it (500s) fail the test at teardown."""
    async with ApiServerEmulator(strict=True) as emulator:
        await emulator.start()
        yield emulator


@pytest.fixture
def kubeconfig(apiserver: ApiServerEmulator) -> KubeConfig:
    """A lightkube ``KubeConfig`` for ``apiserver`` (dummy token, namespace ``default``)."""
    return kube_config(apiserver.base_url)


@pytest.fixture
def kubeconfig_path(apiserver: ApiServerEmulator, tmp_path: Path) -> Path:
    """A kubeconfig file for ``apiserver``."""
    return write_kubeconfig(tmp_path / "kubeconfig", apiserver.base_url)


@pytest_asyncio.fixture
async def async_client(kubeconfig: KubeConfig) -> AsyncIterator[AsyncClient]:
    """A lightkube ``AsyncClient`` for ``apiserver`` (proxy variables ignored)."""
    client = AsyncClient(kubeconfig, trust_env=False)
    yield client
    await client.close()


@pytest.fixture
def sync_client(kubeconfig: KubeConfig) -> Iterator[Client]:
    """A lightkube ``Client`` for ``apiserver``: call it through ``asyncio.to_thread``."""
    client = Client(kubeconfig, trust_env=False)
    yield client
    client.close()


@pytest.fixture
def apiserver_process() -> Iterator[EmulatorProcess]:
    """The standalone emulator in a subprocess, stopped (SIGTERM) after the test."""
    with EmulatorProcess.start() as process:
        yield process
