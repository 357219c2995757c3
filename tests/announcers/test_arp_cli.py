"""``python -m announcers.arp``: the errors that must come before any packet, and the signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from announcers.arp import frames
from tests.support import l2lab, netns

PROG = [sys.executable, "-m", "announcers.arp"]
ENV = {**os.environ, "PYTHONPATH": str(l2lab.REPO)}
IFACE, PEER = l2lab.KIT_PAIRS[0]
VIP = IPv4Address("10.46.0.100")


def run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *PROG, *args], capture_output=True, text=True, env=ENV, timeout=20, check=False
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert (result.returncode, len(lines)) == (2, 1), result.stderr
    assert lines[0].startswith("python -m announcers.arp: error: ")
    return lines[0]


@pytest.mark.parametrize("address", ["not-an-ip", "10.0.0.300", "224.0.0.1", "::", "::1"])
def test_bad_address_is_one_line_and_exit_2(address: str) -> None:
    assert f"bad address {address!r}" in one_error_line(run("--interface", "lo", address))


def test_unknown_interface_is_one_line_and_exit_2() -> None:
    line = one_error_line(run("--interface", "m4nope0", "192.0.2.10"))
    assert "unknown interface 'm4nope0'" in line


@pytest.mark.parametrize("refresh", ["0", "-1", "soon", "inf", "nan"])
def test_bad_refresh_is_one_line_and_exit_2(refresh: str) -> None:
    line = one_error_line(run("--interface", "lo", "--refresh", refresh, "192.0.2.10"))
    assert "--refresh" in line


@pytest.mark.parametrize("busy_poll", ["-1", "soon", "inf", "nan"])
def test_bad_busy_poll_is_one_line_and_exit_2(busy_poll: str) -> None:
    line = one_error_line(run("--interface", "lo", "--busy-poll", busy_poll, "192.0.2.10"))
    assert f"--busy-poll needs a number of microseconds >= 0, not {busy_poll!r}" in line


def test_missing_interface_flag_is_a_usage_error() -> None:
    assert run("192.0.2.10").returncode == 2


def test_missing_capability_is_one_line_and_exit_2() -> None:
    # As root, drop CAP_NET_RAW from the bounding set; otherwise we lack it anyway.
    prefix = (
        ("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw") if os.geteuid() == 0 else ()
    )
    if prefix:
        netns.require("setpriv")
    assert "CAP_NET_RAW" in one_error_line(run("--interface", "lo", "192.0.2.10", prefix=prefix))


def test_interface_without_ethernet_address_is_one_line_and_exit_2() -> None:
    netns.require()
    assert "no Ethernet address" in one_error_line(run("--interface", "lo", "192.0.2.10"))


@pytest.fixture
def client(kit: None) -> Iterator[l2lab.WireClient]:
    with netns.entered(l2lab.KIT_NS):
        wire = l2lab.WireClient(PEER)
        try:
            yield wire
        finally:
            wire.close()


@pytest.mark.netns
def test_no_packet_leaves_when_a_later_address_is_bad(client: l2lab.WireClient) -> None:
    result = run(
        "--interface", IFACE, str(VIP), "bad", prefix=("ip", "netns", "exec", l2lab.KIT_NS)
    )
    one_error_line(result)
    arp = [frame for frame in client.listen(0.1) if frame[12:14] == b"\x08\x06"]
    assert arp == []


@pytest.mark.netns
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_answers_and_exits_0(
    client: l2lab.WireClient, tmp_path: Path, stop: signal.Signals
) -> None:
    process = l2lab.spawn(
        l2lab.KIT_NS,
        [*PROG, "--interface", IFACE, str(VIP)],
        tmp_path / "cli.log",
        ready="running:",
    )
    try:
        answered_before = client.who_has(VIP) is not None
        exit_status = process.stop(stop)
        assert (answered_before, exit_status, client.who_has(VIP)) == (True, 0, None)
    finally:
        process.stop(signal.SIGKILL)


@pytest.mark.netns
def test_busy_poll_answers_and_says_so(client: l2lab.WireClient, tmp_path: Path) -> None:
    process = l2lab.spawn(
        l2lab.KIT_NS,
        [*PROG, "--interface", IFACE, "--busy-poll", "500", str(VIP)],
        tmp_path / "cli.log",
        ready="running:",
    )
    try:
        assert client.who_has(VIP) == frames.parse_mac(l2lab.KIT_MACS[IFACE])
        assert "busy-polling for 500 us after each frame" in process.text()
        assert process.stop(signal.SIGTERM) == 0
        assert client.who_has(VIP) is None
    finally:
        process.stop(signal.SIGKILL)


@pytest.mark.netns
def test_sighup_is_logged_and_ignored(client: l2lab.WireClient, tmp_path: Path) -> None:
    process = l2lab.spawn(
        l2lab.KIT_NS,
        [*PROG, "--interface", IFACE, str(VIP)],
        tmp_path / "cli.log",
        ready="running:",
    )
    try:
        process.popen.send_signal(signal.SIGHUP)
        l2lab.wait_for(lambda: "SIGHUP: ignored" in process.text(), 5.0, "the SIGHUP line")
        assert process.popen.poll() is None
        assert client.who_has(VIP) == frames.parse_mac(l2lab.KIT_MACS[IFACE])
        assert process.stop(signal.SIGTERM) == 0
    finally:
        process.stop(signal.SIGKILL)
