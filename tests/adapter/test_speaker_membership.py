"""The probe protocol between speakers (announcers/kubernetes/membership.py), decided purely.

A small discrete-event network (:class:`Net`) runs several :class:`Detector` with chosen
delays, deaths, partitions and starved nodes; times are simulated, so these tests are exact.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from announcers.kubernetes.membership import (
    Dead,
    Detector,
    Message,
    ProbeTiming,
    Send,
    decode,
    encode,
    successors,
)

TIMING = ProbeTiming()


def first(pool: Sequence[str], k: int) -> list[str]:
    return list(pool)[:k]


class Net:
    """Detectors exchanging datagrams through a simulated network.

    ``delay(src, dst)`` is the one-way delay of each datagram (None: lost). A dead node
    neither sends nor receives; a starved node runs its timers ``lag`` late (its ticks are
    skewed, as an event loop that could not run).
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        timing: ProbeTiming = TIMING,
        delay: Callable[[str, str], float | None] = lambda a, b: 0.001,
        seed: int = 0,
    ) -> None:
        rng = random.Random(seed)
        self.names = list(names)
        self.address = {n: (f"10.0.0.{i + 1}", 7946) for i, n in enumerate(names)}
        self.real = dict(self.address)  # where each node really is (the published may lie)
        self.by_address = {a: n for n, a in self.address.items()}
        self.nodes = {
            n: Detector(n, timing, sample=lambda pool, k: rng.sample(list(pool), k)) for n in names
        }
        self.delay = delay
        self.dead: set[str] = set()
        self.lag: dict[str, float] = {}
        self.verdicts: list[tuple[float, str, str]] = []  # (time, judge, condemned)
        self.now = 0.0
        self._queue: list[tuple[float, int, str, Message, str]] = []
        self._n = 0
        for node in self.nodes.values():
            node.set_members(self.address, now=0.0)

    def _carry(self, src: str, actions: list[Send | Dead]) -> None:
        for action in actions:
            if isinstance(action, Dead):
                self.verdicts.append((self.now, src, action.node))
                continue
            dst = self.by_address.get(action.to)
            if dst is None:
                continue  # nobody there
            delay = self.delay(src, dst)
            if delay is None:
                continue
            self._n += 1
            heapq.heappush(self._queue, (self.now + delay, self._n, dst, action.message, src))

    def run(self, until: float) -> None:
        while True:
            ticks = [
                (deadline + self.lag.get(n, 0.0), n)
                for n, d in self.nodes.items()
                if n not in self.dead and (deadline := d.next_deadline()) is not None
            ]
            tick = min(ticks, default=(float("inf"), ""))
            packet = self._queue[0][0] if self._queue else float("inf")
            at = min(tick[0], packet)
            if at > until:
                self.now = until
                return
            self.now = at
            if packet <= tick[0]:
                _, _, dst, message, src = heapq.heappop(self._queue)
                if dst in self.dead or src in self.dead:
                    continue
                actions = self.nodes[dst].receive(message, self.real[src], now=self.now)
                self._carry(dst, actions)
            else:
                self._carry(tick[1], self.nodes[tick[1]].tick(self.now))

    def remove(self, name: str) -> None:
        """The API took ``name`` out: every detector's members change."""
        del self.address[name]
        for node in self.nodes.values():
            node.set_members(self.address, now=self.now)


NAMES = [f"n{i}" for i in range(1, 8)]


# -- the wire format ------------------------------------------------------------------------------


def test_messages_round_trip_and_foreign_datagrams_are_ignored() -> None:
    req = Message("req", 9, "n1", "n2", ("10.0.0.2", 7946))
    assert decode(encode(req, "ns"), "ns") == req
    assert decode(encode(req, "ns"), "other") is None
    for junk in (b"", b"[]", b'{"v":1,"c":"ns","k":"boom","s":1,"f":"n"}', b"\xff\xfe"):
        assert decode(junk, "ns") is None
    assert decode(b'{"v":1,"c":"ns","k":"req","s":1,"f":"n","a":["x"]}', "ns") is None


@given(
    kind=st.sampled_from(["ping", "ack", "req", "nack"]),
    seq=st.integers(0, 2**40),
    sender=st.text(min_size=1, max_size=30),
    target=st.text(max_size=30),
)
def test_any_message_round_trips(kind: str, seq: int, sender: str, target: str) -> None:
    message = Message(kind, seq, sender, target)  # type: ignore[arg-type]
    assert decode(encode(message, "c"), "c") == message


# -- the ring -------------------------------------------------------------------------------------


@given(st.sets(st.text(min_size=1, max_size=8), min_size=2, max_size=40), st.integers(1, 4))
def test_every_member_is_probed_by_min_k_others(names: set[str], k: int) -> None:
    members = sorted(names)
    watchers = {n: 0 for n in members}
    for me in members:
        for target in successors(me, members, k):
            watchers[target] += 1
    assert set(watchers.values()) == {min(k, len(members) - 1)}


def test_timing_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        ProbeTiming(timeout=0)
    with pytest.raises(ValueError, match="monitors"):
        ProbeTiming(monitors=0)


# -- detection ------------------------------------------------------------------------------------


def test_live_cluster_condemns_nobody_and_costs_constant_datagrams_per_node() -> None:
    net = Net(NAMES)
    net.run(30.0)
    assert net.verdicts == []
    probes = sum(n.counts.probes for n in net.nodes.values())
    # Each node probes its 2 successors every 0.2 s: 10 pings a second, whatever N.
    assert probes / len(NAMES) / 30.0 == pytest.approx(10, rel=0.05)


def test_dead_node_is_condemned_by_its_monitors_within_the_bound() -> None:
    net = Net(NAMES)
    net.run(5.0)
    net.dead.add("n3")
    net.run(10.0)
    judged = [(t, judge) for t, judge, who in net.verdicts if who == "n3"]
    assert judged, "nobody condemned the dead node"
    assert {who for _, _, who in net.verdicts} == {"n3"}
    # Within one interval plus the two timeouts (and a datagram's delay).
    assert judged[0][0] - 5.0 <= TIMING.interval + TIMING.verdict_after + 0.01
    monitors = {n for n in NAMES if "n3" in net.nodes[n].targets}
    assert {judge for _, judge in judged} <= monitors


def test_a_node_that_answers_only_through_others_is_alive() -> None:
    # n1 and the first node it probes cannot reach each other directly (a broken path);
    # everyone else can.
    cut = {"n1", successors("n1", NAMES, 1)[0]}

    def delay(a: str, b: str) -> float | None:
        return None if {a, b} == cut else 0.001

    net = Net(NAMES, delay=delay)
    net.run(20.0)
    assert net.verdicts == []
    assert sum(n.counts.indirect for n in net.nodes.values()) > 0


def test_isolated_node_condemns_nobody_and_knows_it_is_isolated() -> None:
    net = Net(NAMES)
    net.run(2.0)
    net.delay = lambda a, b: None if "n4" in (a, b) else 0.001
    net.run(12.0)
    assert all(judge != "n4" for _, judge, _ in net.verdicts)
    assert {who for _, _, who in net.verdicts} == {"n4"}  # the others condemn it
    assert net.nodes["n4"].isolated(net.now)
    assert not net.nodes["n5"].isolated(net.now)


def test_two_nodes_partitioned_condemn_each_other_without_helpers() -> None:
    net = Net(["a", "b"])
    net.run(1.0)
    net.delay = lambda a, b: None
    net.run(3.0)
    assert {(judge, who) for _, judge, who in net.verdicts} == {("a", "b"), ("b", "a")}


def test_condemned_node_is_left_alone_until_the_api_answers() -> None:
    net = Net(NAMES)
    net.run(1.0)
    net.dead.add("n2")
    net.run(1.0 + TIMING.hold - 0.1)
    per_judge = {judge for _, judge, _ in net.verdicts}
    assert len(net.verdicts) == len(per_judge)  # one claim per monitor, not one per probe
    net.remove("n2")
    net.run(10.0)
    assert len(net.verdicts) == len(per_judge)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    lag=st.floats(0.0, 3.0),
    slow=st.sampled_from(NAMES),
)
def test_a_starved_node_is_never_condemned_nor_condemns(seed: int, lag: float, slow: str) -> None:
    # A node whose event loop runs its timers up to 3 s late still answers what reaches it
    # (the kernel queues the datagrams; it reads them before judging anything).
    net = Net(NAMES, seed=seed)
    net.lag[slow] = lag
    net.run(20.0)
    assert net.verdicts == []


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), jitter=st.floats(0.0, 0.15))
def test_no_verdict_while_every_answer_comes_within_the_timeout(seed: int, jitter: float) -> None:
    rng = random.Random(seed)
    net = Net(NAMES, seed=seed, delay=lambda a, b: rng.uniform(0.0, jitter / 2))
    net.run(20.0)
    assert net.verdicts == []


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), victim=st.sampled_from(NAMES), at=st.floats(1.0, 3.0))
def test_every_death_is_condemned_in_time_by_a_monitor(seed: int, victim: str, at: float) -> None:
    net = Net(NAMES, seed=seed)
    net.run(at)
    net.dead.add(victim)
    net.run(at + 2.0)
    times = [t for t, _, who in net.verdicts if who == victim]
    assert times
    assert min(times) - at <= TIMING.interval + TIMING.verdict_after + 0.01
    assert {who for _, _, who in net.verdicts} == {victim}


def test_lost_datagrams_alone_do_not_kill_when_some_get_through() -> None:
    rng = random.Random(5)  # 5% of the datagrams lost: a very bad LAN
    net = Net(NAMES, delay=lambda a, b: None if rng.random() < 0.05 else 0.002)
    net.run(60.0)
    assert net.verdicts == []


def test_answered_since_tells_whether_our_probes_come_back() -> None:
    net = Net(NAMES)
    net.run(1.0)
    assert net.nodes["n1"].answered_since(0.5)
    net.delay = lambda a, b: None
    net.run(3.0)
    assert not net.nodes["n1"].answered_since(1.5)


def test_the_protocol_module_stays_pure() -> None:
    # No clock, socket, randomness or event loop: everything is passed in (module docstring).
    import ast
    import pathlib

    import announcers.kubernetes.membership as module

    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    imported = {
        name
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names] if isinstance(node, ast.Import)
            else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        )
    }  # fmt: skip
    allowed = {"__future__", "dataclasses", "hashlib", "json", "collections.abc", "typing"}
    assert imported <= allowed, imported - allowed


def test_self_check_tells_whether_the_others_reach_the_published_address() -> None:
    net = Net(NAMES)
    net.run(1.0)
    me = net.nodes["n4"]
    net._carry("n4", list(me.self_check(net.real["n4"])))
    net.run(1.5)
    assert me.reached_since(1.0)
    # n4 publishes an address where nobody is: its own probes are still answered (the
    # answers go to where it really is), but nobody reaches it.
    net.address["n4"] = ("10.9.9.9", 7946)
    for node in net.nodes.values():
        node.set_members(net.address, now=net.now)
    net.run(2.0)
    net._carry("n4", list(me.self_check(net.address["n4"])))
    net.run(3.0)
    assert me.answered_since(2.0)
    assert not me.reached_since(2.0)
