"""Failure detection between speakers: SWIM-style UDP probes, decided purely (no I/O here).

Every speaker answers *pings* on a UDP port and probes a few other speakers: its
``monitors`` successors on a ring of the members (ordered by a hash of the node name, so the
ring does not follow the alphabet). Every member is thus watched by ``monitors`` others,
whatever the size of the cluster: the cost per node is constant, O(N) cluster-wide.

A probe of a target goes, as SWIM's (Das et al., 2002) with Lifeguard's refinements
(HashiCorp memberlist):

1. **direct**: a ``ping``; any ``ack`` within ``timeout`` (or *any* datagram from the
   target meanwhile) ends the probe: alive.
2. **indirect**: otherwise ``req`` to up to ``helpers`` other members, who each ping the
   target (twice) and relay its ``ack``, or answer ``nack`` when it stays silent; direct
   pings go on every ``timeout`` too. Any ack within ``indirect_timeout``: alive. A lost
   datagram or a broken path between two nodes is thus never fatal on its own.
3. **verdict**: still nothing, and at least one helper answered ``nack`` (proof that this
   node's own network works: an isolated prober must not condemn others), or there was no
   helper to ask: the target is dead (:class:`Dead`). Helpers all silent: inconclusive, the
   probe starts again and nobody is condemned.

A verdict is a *claim*, not a decision: the caller writes it to the Kubernetes API with a
conditional write, and only what the API holds counts (see ``docs/speaker.md``).

**Starvation.** A prober whose own event loop ran late (a deadline seen more than
``lag_tolerance`` after it passed: CPU starvation, a GC pause) does not conclude from the
silence it could not listen to: it pings again and waits a full ``timeout`` more. Datagrams
that arrived meanwhile are read before any deadline is judged (the caller drains its socket
first), so a late ack still counts.

Everything here is pure: times are passed in, randomness comes from ``sample``, and the
result of each call is the list of :class:`Send` and :class:`Dead` actions to carry out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

#: ``(host, port)`` of a speaker's probe socket.
Address = tuple[str, int]
Kind = Literal["ping", "ack", "req", "nack"]
_KINDS: frozenset[str] = frozenset(("ping", "ack", "req", "nack"))
#: Version of the datagram format.
WIRE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ProbeTiming:
    """How often and how patiently a speaker probes (seconds).

    A silent target is condemned ``timeout + indirect_timeout`` after the ping that found it
    silent, and that ping leaves within ``interval`` of its death (earlier, on average, with
    several monitors): with the defaults a dead node is condemned 0.7-0.9 s after it died.
    """

    interval: float = 0.2
    timeout: float = 0.2
    indirect_timeout: float = 0.5
    helpers: int = 3
    monitors: int = 2
    lag_tolerance: float = 0.1
    #: Heard from no peer for this long: this node is cut off (see :meth:`Detector.isolated`).
    isolation: float = 1.5
    #: After a verdict, the target is left alone this long (the API's answer is awaited).
    hold: float = 2.0

    def __post_init__(self) -> None:
        for name in ("interval", "timeout", "indirect_timeout", "isolation", "hold"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"probe timing: {name} must be positive, not {value!r}")
        if self.helpers < 0 or self.monitors < 1:
            raise ValueError(
                f"probe timing: helpers ({self.helpers}) must be >= 0 and "
                f"monitors ({self.monitors}) >= 1"
            )
        if self.lag_tolerance < 0:
            raise ValueError(f"probe timing: lag_tolerance must be >= 0, not {self.lag_tolerance}")

    @property
    def verdict_after(self) -> float:
        """Seconds of silence, from the first unanswered ping, before a verdict."""
        return self.timeout + self.indirect_timeout


@dataclasses.dataclass(frozen=True)
class Message:
    """One datagram: ``kind``, a sequence number, the sender's node name; ``req``, ``nack``
    and relayed ``ack`` name the ``target`` (``req`` also gives its ``address``)."""

    kind: Kind
    seq: int
    sender: str
    target: str = ""
    address: Address | None = None


def encode(message: Message, cluster: str) -> bytes:
    """The datagram for ``message`` (compact JSON, tagged with the ``cluster``).

    >>> encode(Message("ping", 7, "n1"), "metallb-system")
    b'{"v":1,"c":"metallb-system","k":"ping","s":7,"f":"n1"}'
    """
    body: dict[str, object] = {
        "v": WIRE_VERSION,
        "c": cluster,
        "k": message.kind,
        "s": message.seq,
        "f": message.sender,
    }
    if message.target:
        body["x"] = message.target
    if message.address is not None:
        body["a"] = [message.address[0], message.address[1]]
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes, cluster: str) -> Message | None:
    """The message in ``data``, or None for anything else (another cluster, garbage).

    >>> decode(encode(Message("ack", 7, "n2", "n3"), "ns"), "ns")
    Message(kind='ack', seq=7, sender='n2', target='n3', address=None)
    >>> decode(b"hello", "ns") is None, decode(encode(Message("ping", 1, "n"), "x"), "ns")
    (True, None)
    """
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or body.get("v") != WIRE_VERSION or body.get("c") != cluster:
        return None
    kind, seq, sender = body.get("k"), body.get("s"), body.get("f")
    target = body.get("x", "")
    if kind not in _KINDS or not isinstance(seq, int) or not isinstance(sender, str) or not sender:
        return None
    if not isinstance(target, str):
        return None
    address: Address | None = None
    raw = body.get("a")
    if raw is not None:
        if not (
            isinstance(raw, list)
            and len(raw) == 2
            and isinstance(raw[0], str)
            and isinstance(raw[1], int)
        ):
            return None
        address = (raw[0], raw[1])
    return Message(kind, seq, sender, target, address)


@dataclasses.dataclass(frozen=True)
class Send:
    """Send ``message`` to ``to``."""

    to: Address
    message: Message


@dataclasses.dataclass(frozen=True)
class Dead:
    """``node`` did not answer, directly or through others: claim its death."""

    node: str


Action = Send | Dead


def ring_key(node: str) -> str:
    """A node's place on the probe ring (a hash: neighbours are not alphabetical)."""
    return hashlib.sha256(node.encode()).hexdigest()


def successors(me: str, members: Sequence[str], count: int) -> tuple[str, ...]:
    """The ``count`` members after ``me`` on the ring (all the others if fewer).

    >>> ring = ["a", "b", "c", "d"]
    >>> sorted(successors("a", ring, 2)) == sorted(successors("a", ring[::-1], 2))
    True
    >>> len(successors("a", ring, 9)), "a" in successors("a", ring, 9)
    (3, False)
    """
    ring = sorted({*members, me}, key=ring_key)
    at = ring.index(me)
    others = ring[at + 1 :] + ring[:at]
    return tuple(others[:count])


@dataclasses.dataclass
class _Probe:
    target: str
    seq: int
    started: float
    deadline: float
    phase: Literal["direct", "indirect"] = "direct"
    asked: int = 0
    nacks: int = 0
    again: float = float("inf")  # next direct ping in the indirect phase


@dataclasses.dataclass
class _Relay:
    origin: Address
    origin_seq: int
    target: str
    address: Address
    deadline: float
    again: float  # the second ping


@dataclasses.dataclass
class Counts:
    """What the detector did, for metrics and benchmarks."""

    probes: int = 0
    acked: int = 0
    indirect: int = 0
    inconclusive: int = 0
    lagged: int = 0
    verdicts: int = 0
    relayed: int = 0


class Detector:
    """One speaker's side of the protocol (see the module docstring).

    ``members`` (:meth:`set_members`) are the nodes the API says are alive, with their probe
    addresses; this node probes its ring successors among them. ``sample(population, k)``
    picks the helpers (``random.sample`` in production).

    >>> d = Detector("n1", ProbeTiming(), sample=lambda pool, k: list(pool)[:k])
    >>> d.set_members({"n1": ("10.0.0.1", 7946), "n2": ("10.0.0.2", 7946)}, now=0.0)
    >>> [(a.to, a.message.kind) for a in d.tick(0.0) if isinstance(a, Send)]
    [(('10.0.0.2', 7946), 'ping')]
    >>> d.receive(Message("ack", 1, "n2"), ("10.0.0.2", 7946), now=0.01)
    []
    >>> d.tick(0.1), d.next_deadline()
    ([], 0.2)
    """

    def __init__(
        self,
        me: str,
        timing: ProbeTiming,
        *,
        sample: Callable[[Sequence[str], int], list[str]],
    ) -> None:
        self.me = me
        self.timing = timing
        self._sample = sample
        self._members: dict[str, Address] = {}
        self._targets: tuple[str, ...] = ()
        self._probes: dict[str, _Probe] = {}
        self._next: dict[str, float] = {}
        self._relays: dict[int, _Relay] = {}
        self._held: dict[str, float] = {}  # condemned: left alone until then
        self._heard: dict[str, float] = {}  # any datagram from a node, last time
        self._acked_at: float | None = None  # last probe of ours answered
        self._self_seq = -1  # the last self-check (see self_check())
        self._reached_at: float | None = None  # last self-check answered
        self._since = 0.0  # when the current set of peers came in
        self._seq = 0
        self.counts = Counts()

    # -- membership ------------------------------------------------------------------------

    def set_members(self, members: Mapping[str, Address], *, now: float) -> None:
        """The members the API knows (this node may or may not be among them)."""
        before = self._members
        self._members = dict(members)
        for name, address in before.items():
            if self._members.get(name) != address:
                self._held.pop(name, None)  # gone or rejoined: a new life, judged afresh
        if set(self._members) - {self.me} != set(before) - {self.me}:
            self._since = now
        ring = [name for name in self._members if name != self.me]
        self._targets = successors(self.me, ring, self.timing.monitors) if ring else ()
        for name in list(self._probes):
            if name not in self._targets:
                del self._probes[name]
        for name in list(self._next):
            if name not in self._targets:
                del self._next[name]

    @property
    def targets(self) -> tuple[str, ...]:
        """The members this node probes."""
        return self._targets

    @property
    def members(self) -> Mapping[str, Address]:
        """The members as last set."""
        return self._members

    # -- time ------------------------------------------------------------------------------

    def _new_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _ping(self, target: str, seq: int) -> Send:
        return Send(self._members[target], Message("ping", seq, self.me))

    def tick(self, now: float) -> list[Action]:
        """Start the probes that are due and judge the ones whose time is up."""
        actions = self._tick_relays(now)
        for target in self._targets:
            if self._held.get(target, -1.0) > now:
                continue
            actions.extend(self._tick_target(target, now))
        return actions

    def _tick_relays(self, now: float) -> list[Action]:
        """Ping again for, or give up on, the probes relayed for others (``req``)."""
        actions: list[Action] = []
        for seq, relay in list(self._relays.items()):
            if now >= relay.deadline:
                del self._relays[seq]
                nack = Message("nack", relay.origin_seq, self.me, relay.target)
                actions.append(Send(relay.origin, nack))
            elif now >= relay.again:
                relay.again = float("inf")
                actions.append(Send(relay.address, Message("ping", seq, self.me)))
        return actions

    def _tick_target(self, target: str, now: float) -> list[Action]:
        """Move the probe of one (not held) target on: start, ping again, widen or judge."""
        t = self.timing
        probe = self._probes.get(target)
        if probe is None:
            if now >= self._next.get(target, now):
                seq = self._new_seq()
                self._probes[target] = _Probe(target, seq, now, now + t.timeout)
                self._next[target] = now + t.interval
                self.counts.probes += 1
                return [self._ping(target, seq)]
            return []
        if now < probe.deadline:
            if now >= probe.again:  # a lost datagram must not be fatal: ping again
                probe.again = now + t.timeout
                return [self._ping(target, probe.seq)]
            return []
        if now - probe.deadline > t.lag_tolerance:
            # We were not listening while the time ran: that silence proves nothing.
            self.counts.lagged += 1
            probe.deadline = now + t.timeout
            return [self._ping(target, probe.seq)]
        if probe.phase == "direct":
            return self._go_indirect(probe, target, now)
        return self._judge(probe, target, now)

    def _go_indirect(self, probe: _Probe, target: str, now: float) -> list[Action]:
        """The direct probe timed out: ping again and ask helpers to ping ``target`` too."""
        t = self.timing
        probe.phase = "indirect"
        probe.deadline = now + t.indirect_timeout
        probe.again = now + t.timeout
        others = [n for n in sorted(self._members) if n not in (self.me, target)]
        helpers = self._sample(others, min(t.helpers, len(others)))
        probe.asked = len(helpers)
        self.counts.indirect += 1
        actions: list[Action] = [self._ping(target, probe.seq)]
        address = self._members[target]
        for helper in helpers:
            req = Message("req", probe.seq, self.me, target, address)
            actions.append(Send(self._members[helper], req))
        return actions

    def _judge(self, probe: _Probe, target: str, now: float) -> list[Action]:
        """The indirect probe timed out too: declare ``target`` dead, unless we may be cut off."""
        del self._probes[target]
        self._next[target] = max(self._next.get(target, now), now)
        if probe.asked and not probe.nacks:
            # Nobody answered us at all: we may be the one cut off. No verdict.
            self.counts.inconclusive += 1
            return []
        self.counts.verdicts += 1
        self._held[target] = now + self.timing.hold
        return [Dead(target)]

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do next (None: nothing to probe)."""
        times = [min(r.deadline, r.again) for r in self._relays.values()]
        for target in self._targets:
            held = self._held.get(target)
            probe = self._probes.get(target)
            if probe is not None:
                times.append(min(probe.deadline, probe.again))
            elif held is not None and held > self._next.get(target, 0.0):
                times.append(held)
            else:
                times.append(self._next.get(target, 0.0))
        return min(times) if times else None

    # -- datagrams -------------------------------------------------------------------------

    def receive(self, message: Message, source: Address, *, now: float) -> list[Action]:
        """Take in a datagram from ``source``."""
        if message.sender == self.me:
            return []
        self._heard[message.sender] = now
        self._alive_evidence(message.sender, now)
        match message.kind:
            case "ping":
                return [Send(source, Message("ack", message.seq, self.me))]
            case "ack":
                if message.target == self.me and message.seq == self._self_seq:
                    self._reached_at = now  # others reach us at the address we publish
                    return []
                relay = self._relays.pop(message.seq, None)
                if relay is not None and message.sender == relay.target:
                    self.counts.relayed += 1
                    ack = Message("ack", relay.origin_seq, self.me, relay.target)
                    return [Send(relay.origin, ack)]
                if message.target:
                    self._alive_evidence(message.target, now, seq=message.seq)
                return []
            case "req":
                if message.address is None or not message.target:
                    return []
                seq = self._new_seq()
                span = self.timing.indirect_timeout * 0.8
                self._relays[seq] = _Relay(
                    source, message.seq, message.target, message.address, now + span, now + span / 2
                )
                return [Send(message.address, Message("ping", seq, self.me))]
            case "nack":
                probe = self._probes.get(message.target)
                if probe is not None and probe.seq == message.seq:
                    probe.nacks += 1
                return []
        return []  # pragma: no cover - every kind is matched above

    def _alive_evidence(self, node: str, now: float, *, seq: int | None = None) -> None:
        probe = self._probes.get(node)
        if probe is None or (seq is not None and seq != probe.seq):
            return
        del self._probes[node]
        self.counts.acked += 1
        self._acked_at = now

    # -- health ----------------------------------------------------------------------------

    def isolated(self, now: float) -> bool:
        """True when there are peers but none was heard for ``isolation`` seconds (and the
        current peers have been known that long): this node is probably the one cut off."""
        peers = [n for n in self._members if n != self.me]
        if not peers:
            return False
        last = max([self._since, *(self._heard.get(n, 0.0) for n in peers)])
        return now - last >= self.timing.isolation

    def self_check(self, address: Address) -> list[Action]:
        """Ask up to ``helpers`` members to probe *this* node at ``address`` (the one it
        publishes): their relayed ack proves the others can reach it (see
        :meth:`reached_since`), which a node condemned for a wrong or unreachable address
        could not tell from its own probes being answered."""
        others = [n for n in sorted(self._members) if n != self.me]
        helpers = self._sample(others, min(max(self.timing.helpers, 1), len(others)))
        self._self_seq = self._new_seq()
        req = Message("req", self._self_seq, self.me, self.me, address)
        return [Send(self._members[helper], req) for helper in helpers]

    def reached_since(self, moment: float) -> bool:
        """Whether a self-check was answered after ``moment`` (or there is nobody to ask)."""
        if not any(n != self.me for n in self._members):
            return True
        return self._reached_at is not None and self._reached_at > moment

    def answered_since(self, moment: float) -> bool:
        """Whether a probe of ours was answered after ``moment`` (or there is nobody to
        probe): this node's network works both ways."""
        if not self._targets:
            return True
        return self._acked_at is not None and self._acked_at > moment
