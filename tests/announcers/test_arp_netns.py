"""The Layer-2 announcer against real clients, in network namespaces (docs/design/l2-reference.md
§5).

A bridge namespace, a client and two nodes; each node holds the addresses on ``lo`` with
``arp_ignore=1``/``arp_announce=2`` and serves HTTP on them. The announcer runs as
``python -m announcers.arp`` (or in-process, where a test needs ``withdraw``); the clients
are arping, ndisc6, curl, tcpdump and the client kernel's own neighbour table.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from announcers.arp import L2Announcer
from announcers.base import IPAddress
from tests.support import l2lab, netns
from tests.support.l2lab import CLIENT_NS, IFACE, NODE_MAC, VIP4, VIP6, Lab

pytestmark = pytest.mark.netns

N1, N2 = l2lab.NODE_NS
FAMILIES = pytest.mark.parametrize("vip", [VIP4, VIP6], ids=["ipv4", "ipv6"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    netns.require(*l2lab.TOOLS)
    lab = Lab(tmp_path_factory.mktemp("l2lab"))
    try:
        lab.build()
        yield lab
    finally:
        lab.destroy()


@pytest.fixture
def lab(built: Lab) -> Iterator[Lab]:
    built.reset()
    try:
        yield built
    finally:
        built.stop_started()


def received(arping: subprocess.CompletedProcess[str]) -> int:
    match = re.search(r"Received (\d+) response", arping.stdout)
    assert match is not None, arping.stdout + arping.stderr
    return int(match.group(1))


def test_nobody_answers_before_the_announcer_runs(lab: Lab) -> None:
    arping = lab.arping("-c", "1", "-w", "1")
    ndisc6 = lab.ndisc6("-r", "1", "-w", "500")
    assert (received(arping), "No response" in ndisc6.stdout + ndisc6.stderr) == (0, True)


def test_arping_gets_one_reply_per_probe_with_the_node_mac(lab: Lab) -> None:
    lab.announcer(N1, VIP4)
    arping = lab.arping("-c", "3", "-w", "3")
    # arping probes by broadcast once, then by unicast to the MAC that answered.
    assert "Sent 3 probes (1 broadcast(s))" in arping.stdout
    assert l2lab.mac_list(arping.stdout) == [NODE_MAC[N1]] * 3


def test_ndisc6_gets_the_advertisement(lab: Lab) -> None:
    lab.announcer(N1, VIP6)
    ndisc6 = lab.ndisc6("-r", "2", "-1")
    assert f"target link-layer address: {NODE_MAC[N1]}" in ndisc6.stdout.lower()


@FAMILIES
def test_curl_reaches_the_server_through_the_announced_address(lab: Lab, vip: IPAddress) -> None:
    lab.announcer(N1, vip)
    assert (lab.curl(vip).stdout, lab.neighbour(vip)[0]) == (N1, NODE_MAC[N1])


@FAMILIES
def test_kernel_unicast_reachability_probe_is_answered(lab: Lab, vip: IPAddress) -> None:
    """A STALE entry that is used goes DELAY, then PROBE with unicast requests only (no
    broadcast resolution before FAILED). One UDP datagram uses it without confirming it
    (TCP would confirm it and skip the probe), and the announcer sends no announcement
    (which would make it STALE again), so REACHABLE proves the unicast probe was answered."""
    family = "ipv4" if vip.version == 4 else "ipv6"
    key = f"net.{family}.neigh.{IFACE}.delay_first_probe_time"
    netns.in_ns(CLIENT_NS, "sysctl", "-qw", f"{key}=1")
    with netns.entered(N1):
        announcer = L2Announcer(announce_on_takeover=False)
        announcer.announce(vip, IFACE)
    try:
        netns.in_ns(
            CLIENT_NS, "ip", "neigh", "replace", str(vip), "lladdr", NODE_MAC[N1],
            "dev", IFACE, "nud", "stale",
        )  # fmt: skip
        with netns.entered(CLIENT_NS):
            family_constant = socket.AF_INET if vip.version == 4 else socket.AF_INET6
            with socket.socket(family_constant, socket.SOCK_DGRAM) as udp:
                udp.sendto(b"ping", (str(vip), 9))
        assert lab.neighbour(vip)[1] == "DELAY"
        l2lab.wait_for(lambda: lab.neighbour(vip)[1] != "DELAY", 5.0, "the end of DELAY")
        l2lab.wait_for(lambda: lab.neighbour(vip)[1] != "PROBE", 5.0, "the end of PROBE")
        assert lab.neighbour(vip) == (NODE_MAC[N1], "REACHABLE")
    finally:
        announcer.close()
        netns.in_ns(CLIENT_NS, "sysctl", "-qw", f"{key}=5")


def test_solicitations_still_answered_behind_an_mld_querier_bridge(lab: Lab) -> None:
    """With a querier, the bridge forwards solicited-node multicast only to ports that
    reported membership; node 2 (no announcer, no membership) stops seeing the
    solicitations while node 1, which joined with IPV6_JOIN_GROUP, keeps answering."""
    netns.in_ns(
        l2lab.BRIDGE_NS, "ip", "link", "set", l2lab.BRIDGE, "type", "bridge", "mcast_querier", "1"
    )
    # An address no other test uses: its group cannot linger in the bridge from before.
    vip = IPv6Address("fd00:44::1:1")
    lab.announcer(N1, vip)
    mdb = netns.in_ns(l2lab.BRIDGE_NS, "bridge", "mdb", "show").stdout
    assert re.search(rf"port {lab.port(N1)} grp ff02::1:ff01:1\b", mdb), mdb

    def snooping_with_answer() -> bool:
        tcpdump = l2lab.spawn(
            N2,
            ["tcpdump", "-i", IFACE, "-nn", "-l", "icmp6 and ip6[40] == 135"],
            lab.workdir / "tcpdump-n2.log",
            ready="listening on",
            stdout=(lab.workdir / "tcpdump-n2.out").open("w"),
        )
        try:
            answer = lab.ndisc6("-r", "1", "-w", "500", target=vip)
        finally:
            tcpdump.stop(signal.SIGINT)
        seen_by_n2 = (lab.workdir / "tcpdump-n2.out").read_text().count("neighbor solicitation")
        return seen_by_n2 == 0 and NODE_MAC[N1] in answer.stdout.lower()

    # The bridge starts filtering once its own query is out (1 s in this lab).
    l2lab.wait_for(snooping_with_answer, 8.0, "snooping on and node 1 answering")


def test_after_withdraw_arping_dad_sees_nobody(lab: Lab) -> None:
    with netns.entered(N1):
        announcer = L2Announcer()
    try:
        with netns.entered(N1):
            announcer.announce(VIP4, IFACE)
        assert received(lab.arping("-c", "1", "-w", "1")) == 1
        announcer.withdraw(VIP4, IFACE)
        dad = lab.arping("-D", "-c", "2", "-w", "2")
        assert (dad.returncode, received(dad)) == (0, 0)
    finally:
        announcer.close()


def test_two_announcers_show_up_as_two_macs(lab: Lab) -> None:
    """Split brain, by design of a consensus-free election: both nodes answer, arping sees
    both MACs and more replies than probes; the kernel keeps whichever came first."""
    lab.announcer(N1, VIP4)
    lab.announcer(N2, VIP4)
    arping = lab.arping("-c", "3", "-w", "3")
    sent = re.search(r"Sent (\d+) probes", arping.stdout)
    assert sent is not None
    assert set(l2lab.mac_list(arping.stdout)) == {NODE_MAC[N1], NODE_MAC[N2]}
    assert received(arping) > int(sent.group(1))


def test_two_announcers_log_each_other_as_conflicts(lab: Lab) -> None:
    first = lab.announcer(N1, VIP4, VIP6)
    second = lab.announcer(N2, VIP4, VIP6)
    l2lab.wait_for(
        lambda: "conflict" in first.text() and "conflict" in second.text(),
        3.0,
        "both conflict warnings",
    )
    assert f"{NODE_MAC[N2]} also claims {VIP4}" in first.text()


@FAMILIES
def test_takeover_moves_the_client_neighbour_entry_to_node_2(lab: Lab, vip: IPAddress) -> None:
    node1 = lab.announcer(N1, vip)
    assert lab.curl(vip).stdout == N1
    with l2lab.Prober(CLIENT_NS, vip) as probe:
        l2lab.wait_for(lambda: len(probe.successes) >= 3, 5.0, "the probe reaching node 1")
        assert node1.stop() == 0
        netns.in_ns(l2lab.BRIDGE_NS, "ip", "link", "set", lab.port(N1), "down")
        lab.announcer(N2, vip)
        took_over = time.monotonic()
        l2lab.wait_for(lambda: probe.successes_after(took_over) >= 3, 5.0, "node 2 serving")
    mac, state = lab.neighbour(vip)
    assert (mac, lab.curl(vip).stdout) == (NODE_MAC[N2], N2)
    assert state in {"STALE", "DELAY", "PROBE", "REACHABLE"}


@FAMILIES
def test_without_announcement_the_client_keeps_the_dead_mac(lab: Lab, vip: IPAddress) -> None:
    """The control for the takeover test: node 2 answers requests but sends no
    announcement, and the client's REACHABLE entry still points at node 1."""
    node1 = lab.announcer(N1, vip)
    assert lab.curl(vip).stdout == N1
    node1.stop()
    netns.in_ns(l2lab.BRIDGE_NS, "ip", "link", "set", lab.port(N1), "down")
    with netns.entered(N2):
        silent = L2Announcer(announce_on_takeover=False)
        silent.announce(vip, IFACE)
    try:
        assert lab.curl(vip, timeout=1.0).returncode != 0
        assert lab.neighbour(vip)[0] == NODE_MAC[N1]
    finally:
        silent.close()


def test_start_sends_five_rounds_and_refresh_keeps_sending(lab: Lab) -> None:
    """tcpdump in the client counts the announcements: node 1 without --refresh sends a
    round at once and 4 more (every 1.1 s until 5 s); node 2 with --refresh 0.5 goes on."""
    plain4, plain6 = VIP4 + 1, VIP6 + 1
    fresh4, fresh6 = VIP4 + 2, VIP6 + 2
    capture = lab.workdir / "rounds.out"
    tcpdump = l2lab.spawn(
        CLIENT_NS,
        ["tcpdump", "-i", IFACE, "-nn", "-l", "-vv", "arp or (icmp6 and ip6[40] == 136)"],
        lab.workdir / "rounds.log",
        ready="listening on",
        stdout=capture.open("w"),
    )
    try:
        lab.announcer(N1, plain4, plain6)
        lab.announcer(N2, fresh4, fresh6, refresh=0.5)
        time.sleep(6.2)
    finally:
        tcpdump.stop(signal.SIGINT)
    text = capture.read_text()

    def garps(ip: IPv4Address) -> int:
        return text.count(f"Request who-has {ip} tell {ip}")

    def unas(ip: IPAddress) -> int:
        return len(re.findall(rf"tgt is {ip}, Flags \[override\]", text))

    assert (garps(plain4), unas(plain6)) == (5, 5)
    assert garps(fresh4) > 5
    assert unas(fresh6) > 5


@pytest.mark.parametrize(
    ("ns", "expected"), [(l2lab.BRIDGE_NS, [l2lab.BRIDGE]), (N1, [IFACE])], ids=["bridge", "node"]
)
def test_discovery_skips_enslaved_ports_and_loopback(
    lab: Lab, ns: str, expected: list[str]
) -> None:
    code = "from announcers.arp import discover_interfaces as d; print([i.name for i in d()])"
    out = netns.in_ns(ns, sys.executable, "-c", code, timeout=20).stdout
    assert out.strip() == repr(expected)


def test_sigterm_stops_the_answers_and_exits_0(lab: Lab) -> None:
    node1 = lab.announcer(N1, VIP4)
    assert received(lab.arping("-c", "1", "-w", "1")) == 1
    assert node1.stop() == 0
    assert received(lab.arping("-c", "1", "-w", "1")) == 0


_ROGUE = r"""
import socket, sys
from ipaddress import ip_address
from announcers.arp import frames
mac, ip = frames.parse_mac(sys.argv[2]), ip_address(sys.argv[3])
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
sock.bind((sys.argv[1], 0))
if ip.version == 4:
    sock.send(frames.gratuitous_arp_request(mac, ip).encode())
else:
    sock.send(frames.unsolicited_advertisement(mac, ip).encode())
"""


@FAMILIES
def test_a_rogue_claim_moves_the_client_and_the_reassertion_moves_it_back(
    lab: Lab, vip: IPAddress
) -> None:
    """Node 2 claims the address node 1 announces (a host with the address typed twice):
    the client's entry follows the claim, and node 1's re-assertion brings it back."""
    node1 = lab.announcer(N1, vip)
    assert lab.curl(vip).stdout == N1
    log = lab.workdir / f"monitor-{vip.version}.log"
    with log.open("w") as out:
        monitor = subprocess.Popen(
            ["ip", "-n", CLIENT_NS, "monitor", "neigh", "dev", IFACE], stdout=out, text=True
        )
    try:
        time.sleep(0.3)
        rogue = [sys.executable, "-c", _ROGUE, IFACE, NODE_MAC[N2], str(vip)]
        netns.in_ns(N2, *rogue)
        l2lab.wait_for(lambda: "re-asserting" in node1.text(), 3.0, "node 1 re-asserting")
        l2lab.wait_for(lambda: lab.neighbour(vip)[0] == NODE_MAC[N1], 3.0, "the entry back")
        time.sleep(0.2)
    finally:
        monitor.terminate()
        monitor.wait()
    macs = re.findall(r"lladdr (\S+)", log.read_text())
    assert NODE_MAC[N2] in macs  # the claim did move the client ...
    assert macs[-1] == NODE_MAC[N1]  # ... and the re-assertion moved it back
    assert lab.curl(vip).stdout == N1
