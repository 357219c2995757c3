"""``python -m announcers.kubernetes controller`` from the outside: flags, exit statuses,
metrics and logs."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from pathlib import Path

import pytest
import yaml

from announcers.kubernetes.__main__ import main
from tests.support.emulator import ApiServerEmulator

from .controller_kit import (
    NS,
    ips_of,
    namespace,
    pool,
    service,
    start_controller,
    terminate,
    write_kubeconfig,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


async def test_missing_kubeconfig_is_one_line_and_status_2(tmp_path: Path) -> None:
    process = await start_controller("--kubeconfig", str(tmp_path / "nothing"))
    _, err = await process.communicate()
    assert process.returncode == 2
    assert len(err.decode().strip().splitlines()) == 1
    assert "kubeconfig" in err.decode()


async def test_kubeconfig_without_a_user_is_status_2(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c"}}],
                "current-context": "c",
            }
        )
    )
    process = await start_controller("--kubeconfig", str(path), "--metrics-port", "0")
    _, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode().strip().splitlines() == [
        f"python -m announcers.kubernetes controller: kubeconfig {path}: "
        "the current context has no user"
    ]


def test_bad_metrics_port_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["controller", "--metrics-port", "70000"])
    assert exit_.value.code == 2


async def test_metrics_use_metallb_names_and_logs_are_json(
    apiserver: ApiServerEmulator, tmp_path: Path
) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/29"), service("web"))
    port = _free_port()
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver.base_url, "cli")
    process = await start_controller("--kubeconfig", str(config), "--metrics-port", str(port))
    try:
        await apiserver.wait_for(lambda: ips_of(apiserver, "web"), timeout=20)
        text = ""
        for _ in range(100):
            text = await asyncio.to_thread(_scrape, port)
            if 'metallb_allocator_addresses_in_use_total{pool="p"} 1.0' in text:
                break
            await asyncio.sleep(0.05)
    finally:
        status, stderr = await terminate(process)
    assert 'metallb_allocator_addresses_in_use_total{pool="p"} 1.0' in text
    assert 'metallb_allocator_addresses_total{pool="p"} 8.0' in text
    assert 'metallb_allocator_ipv4_addresses_total{pool="p"} 8.0' in text
    assert "metallb_k8s_client_config_stale_bool 0.0" in text
    assert "metallb_core_controller_leader_bool 1.0" in text
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert status == 0
    assert {"status written", "stopped"} <= {line["msg"] for line in lines}
    assert all({"time", "level", "logger", "msg"} <= set(line) for line in lines)


async def test_namespace_flag_moves_the_configuration_and_the_lease(
    apiserver: ApiServerEmulator, tmp_path: Path
) -> None:
    other = pool("p", "198.51.100.0/30")
    other["metadata"]["namespace"] = "lb"
    apiserver.seed(namespace("lb"), other, service("web"))
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver.base_url, "cli")
    process = await start_controller(
        "--kubeconfig", str(config), "--namespace", "lb", "--metrics-port", "0"
    )
    try:
        await apiserver.wait_for(lambda: ips_of(apiserver, "web"), timeout=20)
    finally:
        status, _ = await terminate(process)
    assert status == 0
    assert ips_of(apiserver, "web") == ("198.51.100.0",)
    assert apiserver.read("coordination.k8s.io/v1/leases", "lb", "metallb-core-controller")
