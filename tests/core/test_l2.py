"""announcing_node: MetalLB's stateless Layer-2 election (sha256 of ``node#ip``, smallest first)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from ipaddress import IPv4Address, IPv6Address, ip_address

from hypothesis import given
from hypothesis import strategies as st

from metallb_core import announcing_node

node_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20)
node_lists = st.lists(node_names, min_size=1, max_size=12)
ipv4s = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
ipv6s = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
addresses = st.one_of(ipv4s, ipv6s).map(str)


def metallb_order(ip_text: str, nodes: list[str]) -> list[str]:
    """The specification, written as MetalLB's speaker does it: sort by the raw digest."""
    return sorted(nodes, key=lambda node: hashlib.sha256(f"{node}#{ip_text}".encode()).digest())


def test_no_eligible_node_means_nobody_announces() -> None:
    assert announcing_node("192.0.2.1", []) is None


def test_a_single_node_announces() -> None:
    assert announcing_node("192.0.2.1", ["only"]) == "only"


def test_smallest_digest_wins_ipv4() -> None:
    # sha256("node-a#192.168.1.240") = 0905ce28..., node-c a6530f9d..., node-b c5db6995...
    assert announcing_node("192.168.1.240", ["node-b", "node-c", "node-a"]) == "node-a"


def test_smallest_digest_wins_ipv6() -> None:
    # sha256("worker-1#2001:db8::10") = 25fa3642..., worker-2 2e924c1e..., worker-3 92a62b50...
    assert announcing_node("2001:db8::10", ["worker-3", "worker-2", "worker-1"]) == "worker-1"


def test_ipv4_mapped_ipv6_is_hashed_as_dotted_ipv4() -> None:
    # As Go's net.IP.String() prints it. "192.0.2.1" elects worker-4 (7d55cca6... <
    # 8da88686...), while the text "::ffff:192.0.2.1" would elect worker-1.
    nodes = ["worker-1", "worker-4"]
    assert announcing_node("::ffff:192.0.2.1", nodes) == "worker-4"


def test_ipv6_text_is_normalised_before_hashing() -> None:
    nodes = [f"worker-{i}" for i in range(8)]
    assert announcing_node("2001:DB8:0:0::10", nodes) == announcing_node("2001:db8::10", nodes)


def test_text_that_is_not_an_address_is_hashed_as_given() -> None:
    nodes = [f"n{i}" for i in range(8)]
    assert announcing_node("not-an-ip", nodes) == metallb_order("not-an-ip", nodes)[0]


@given(ip=addresses, nodes=node_lists)
def test_winner_is_the_first_in_metallb_order(ip: str, nodes: list[str]) -> None:
    assert announcing_node(ip, nodes) == metallb_order(str(ip_address(ip)), nodes)[0]


@given(ip=ipv4s, nodes=node_lists)
def test_mapped_and_plain_ipv4_elect_the_same_node(ip: IPv4Address, nodes: list[str]) -> None:
    assert announcing_node(f"::ffff:{ip}", nodes) == announcing_node(str(ip), nodes)


@given(ip=addresses, nodes=node_lists, data=st.data())
def test_order_of_the_nodes_does_not_matter(ip: str, nodes: list[str], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(nodes))
    assert announcing_node(ip, shuffled) == announcing_node(ip, nodes)


@given(ip=addresses, nodes=node_lists)
def test_any_iterable_of_nodes_is_accepted(ip: str, nodes: list[str]) -> None:
    assert announcing_node(ip, iter(nodes)) == announcing_node(ip, tuple(nodes))


@given(ip=addresses, nodes=st.lists(node_names, min_size=2, max_size=12, unique=True))
def test_removing_a_node_that_does_not_announce_changes_nothing(ip: str, nodes: list[str]) -> None:
    winner = announcing_node(ip, nodes)
    others = [node for node in nodes if node != winner]
    assert announcing_node(ip, [n for n in nodes if n != others[0]]) == winner


def test_same_answer_in_another_process_with_another_hash_seed() -> None:
    nodes = [f"node-{i}" for i in range(20)]
    code = (
        "from metallb_core import announcing_node; "
        f"print([announcing_node(f'10.0.0.{{i}}', {nodes!r}) for i in range(50)])"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    here = str([announcing_node(f"10.0.0.{i}", nodes) for i in range(50)])
    assert runs == [here + "\n", here + "\n"]
