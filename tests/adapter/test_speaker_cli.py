"""``python -m announcers.kubernetes speaker`` from the outside: flags, exit statuses, the
Lease it keeps and gives up on SIGTERM, and its metrics."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from announcers.kubernetes.__main__ import _parser
from announcers.kubernetes.liveness import PROBE_ANNOTATION, lease_name
from tests.support.emulator import ApiServerEmulator

from .controller_kit import NS, namespace, start_adapter, terminate, write_kubeconfig
from .speaker_kit import LEASES, NODES, basics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_speaker(*args: str, prefix: tuple[str, ...] = ()) -> asyncio.subprocess.Process:
    """``python -m announcers.kubernetes speaker ARGS`` (stderr captured)."""
    return await start_adapter("speaker", *args, prefix=prefix)


async def finished(process: asyncio.subprocess.Process) -> tuple[int | None, list[str]]:
    _, err = await asyncio.wait_for(process.communicate(), 20)
    return process.returncode, err.decode().strip().splitlines()


def test_parser_accepts_the_contract_flags_and_the_lease_timing() -> None:
    args = _parser().parse_args(
        ["speaker", "--node", "n1", "--kubeconfig", "k", "--namespace", "ns",
         "--interface", "eth0", "eth1", "--interface", "bond0", "--metrics-port", "9",
         "--lease-duration", "3", "--renew-period", "0.5"]
    )  # fmt: skip
    assert (args.node, args.kubeconfig, args.namespace, args.interface, args.metrics_port) == (
        "n1",
        "k",
        "ns",
        ["eth0", "eth1", "bond0"],
        9,
    )
    assert (args.lease_duration, args.renew_period) == (3, 0.5)


def test_default_lease_timing_is_one_second_renewed_every_quarter() -> None:
    args = _parser().parse_args(["speaker", "--node", "n1"])
    assert (args.lease_duration, args.renew_period, args.interface) == (1, 0.25, None)


def test_default_liveness_is_probes_on_memberlists_port() -> None:
    args = _parser().parse_args(["speaker", "--node", "n1"])
    # No --probe-port: 7946, or an ephemeral port when 7946 is taken (ProbeLiveness).
    assert (args.liveness, args.probe_address, args.probe_port) == ("probe", "", None)
    assert (args.probe_interval, args.probe_timeout, args.indirect_timeout) == (0.2, 0.2, 0.5)


@pytest.mark.parametrize("fallback", [True, False])
def test_probe_socket_on_a_taken_port_falls_back_only_when_allowed(fallback: bool) -> None:
    """Two speakers of one host starting together can both pass the start-up check; the
    second to bind then takes an ephemeral port and publishes it, unless the port was asked
    for (--probe-port), when it fails."""
    from typing import cast

    from announcers.kubernetes.client import KubeApi
    from announcers.kubernetes.liveness import ProbeLiveness

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        probes = ProbeLiveness(
            cast(KubeApi, None),
            namespace="ns",
            node="n1",
            bind=("127.0.0.1", port),
            any_port_if_taken=fallback,
        )
        if not fallback:
            with pytest.raises(OSError, match="in use"):
                probes._open()
            return
        sock = probes._open()
        try:
            assert probes.address is not None
            assert probes.address[0] == "127.0.0.1"
            assert probes.address[1] == sock.getsockname()[1] != port
        finally:
            sock.close()


async def test_bad_probe_address_is_one_line_and_status_2(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:1", "t")
    process = await start_speaker(
        "--node", "n1", "--kubeconfig", str(kubeconfig), "--probe-address", "not-an-ip"
    )
    status, err = await finished(process)
    assert (status, len(err)) == (2, 1)
    assert "--probe-address: not an IP address: 'not-an-ip'" in err[0]


async def test_probe_port_in_use_is_one_line_and_status_2(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the speaker needs CAP_NET_RAW before it looks at the port")
    kubeconfig = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:1", "t")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        process = await start_speaker(
            "--node", "n1", "--kubeconfig", str(kubeconfig), "--interface", "lo",
            "--probe-address", "127.0.0.1", "--probe-port", str(port),
        )  # fmt: skip
        status, err = await finished(process)
    assert (status, len(err)) == (2, 1)
    assert f"--probe-port {port}: cannot listen" in err[0]


@pytest.mark.parametrize(
    "flags", [["--lease-duration", "0.5"], ["--lease-duration", "0"], ["--renew-period", "-1"]]
)
async def test_bad_lease_timing_is_a_usage_error(flags: list[str]) -> None:
    status, err = await finished(await start_speaker("--node", "n1", *flags))
    assert status == 2
    assert "error" in err[-1]


async def test_renew_period_not_shorter_than_the_lease_is_one_line_and_status_2() -> None:
    process = await start_speaker("--node", "n1", "--lease-duration", "1", "--renew-period", "1")
    status, err = await finished(process)
    assert (status, len(err)) == (2, 1)
    assert "--renew-period (1) must be shorter than --lease-duration (1)" in err[0]


async def test_missing_kubeconfig_is_one_line_and_status_2(tmp_path: Path) -> None:
    status, err = await finished(
        await start_speaker("--node", "n1", "--kubeconfig", str(tmp_path / "nothing"))
    )
    assert (status, len(err)) == (2, 1)
    assert "kubeconfig" in err[0]


async def test_unknown_interface_is_one_line_and_status_2(
    apiserver: ApiServerEmulator, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", apiserver.base_url, "t")
    process = await start_speaker(
        "--node", "n1", "--kubeconfig", str(kubeconfig), "--interface", "m6nosuch0"
    )
    status, err = await finished(process)
    assert (status, len(err)) == (2, 1)
    assert "m6nosuch0" in err[0]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
async def test_missing_cap_net_raw_is_one_line_and_status_2(
    apiserver: ApiServerEmulator, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop CAP_NET_RAW from it")
    kubeconfig = write_kubeconfig(tmp_path / "kc", apiserver.base_url, "t")
    process = await start_speaker(
        "--node", "n1", "--kubeconfig", str(kubeconfig), "--interface", "lo",
        prefix=("setpriv", "--bounding-set", "-net_raw"),
    )  # fmt: skip
    status, err = await finished(process)
    assert (status, len(err)) == (2, 1)
    assert "CAP_NET_RAW" in err[0]


async def test_sigterm_gives_the_lease_up_and_exits_0(
    apiserver: ApiServerEmulator, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the speaker needs CAP_NET_RAW")
    apiserver.seed(*basics(), namespace("default"))
    kubeconfig = write_kubeconfig(tmp_path / "kc", apiserver.base_url, "t")
    port = _free_port()
    process = await start_speaker(
        "--node", NODES[0], "--kubeconfig", str(kubeconfig), "--namespace", NS,
        "--interface", "lo", "--metrics-port", str(port), "--probe-port", "0",
    )  # fmt: skip

    def held() -> bool:
        stored = apiserver.read(LEASES, NS, lease_name(NODES[0]))
        return stored is not None and stored["spec"].get("holderIdentity") == NODES[0]

    await apiserver.wait_for(held, timeout=20)
    text = await asyncio.to_thread(_scrape, port)
    assert 'metallb_core_speaker_liveness_writes_total{reason="join"} 1.0' in text
    assert "metallb_core_speaker_requests_answered_total" in text
    status, err = await terminate(process)
    assert status == 0, err
    stored = apiserver.read(LEASES, NS, lease_name(NODES[0]))
    assert stored is not None
    assert stored["spec"].get("holderIdentity") is None
    assert '"msg": "lease released"' in err


async def test_two_speakers_of_one_host_both_join_with_their_own_probe_ports(
    apiserver: ApiServerEmulator, tmp_path: Path
) -> None:
    """Started with the contract's flags only, two speakers in one network namespace cannot
    both have UDP 7946: the second probes on an ephemeral port, and each Lease publishes the
    port its speaker really listens on."""
    if os.geteuid() != 0:
        pytest.skip("the speaker needs CAP_NET_RAW")
    apiserver.seed(*basics(), namespace("default"))
    kubeconfig = write_kubeconfig(tmp_path / "kc", apiserver.base_url, "t")
    flags = ("--kubeconfig", str(kubeconfig), "--namespace", NS, "--interface", "lo")
    processes = [
        await start_speaker("--node", node, *flags, "--metrics-port", "0") for node in NODES[:2]
    ]

    def published() -> list[str | None]:
        leases = [apiserver.read(LEASES, NS, lease_name(node)) for node in NODES[:2]]
        return [
            None
            if lease is None or lease["spec"].get("holderIdentity") is None
            else (lease["metadata"].get("annotations") or {}).get(PROBE_ANNOTATION)
            for lease in leases
        ]

    try:
        await apiserver.wait_for(lambda: None not in published(), timeout=20)
        first, second = published()
        assert first != second  # two sockets, two ports
        assert all(p.returncode is None for p in processes)
    finally:
        for process in processes:
            status, err = await terminate(process)
            assert status == 0, err


def _scrape(port: int) -> str:
    # Served from before the speaker connects: it answers once the Lease exists.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())
