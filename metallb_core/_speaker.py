"""The speaker's decision: which node announces a Service's addresses, on which interfaces.

MetalLB's Layer-2 election (``speaker/layer2_controller.go``, docs/design/l2-reference.md §1.5) as
one
pure function, :func:`elect`. Every speaker computes the same answer from the same facts, so
no speaker talks to another: the one the answer names announces, every other one withdraws.

The facts are values the adapter gathers: the :class:`~metallb_core.Config`, the Service
(a Kubernetes dict, with its ``status.loadBalancer.ingress``), a :class:`NodeFacts` per node
(labels, the ``NetworkUnavailable`` condition, and whether its speaker is alive — the adapter
decides that from its own clock; nothing here reads one) and the Service's
:class:`ServiceEndpoints` (from its EndpointSlices).

A node may announce a Service when:

1. the Service has at least one serving endpoint somewhere (else nobody announces);
2. its speaker is alive;
3. its ``NetworkUnavailable`` condition is not ``True``;
4. it is not labelled ``node.kubernetes.io/exclude-from-external-load-balancers``;
5. an ``L2Advertisement`` that covers the Service's pool and selects the Service (its
   ``serviceSelectors``, when it has any) selects the node (its ``nodeSelectors``, when it
   has any);
6. with ``externalTrafficPolicy: Local``, it hosts a serving endpoint of the Service.

Of those, :func:`~metallb_core.announcing_node` over the *first* ingress IP picks the one,
so both families of a dual-stack Service are announced from the same node. The interfaces are
the union of the ``interfaces`` of the advertisements that select the Service and that node;
any of them without a list means every interface.

>>> import metallb_core as core
>>> config = core.Config(pools=[core.Pool(name="p", cidrs=["192.0.2.0/24"])],
...                      l2_advertisements=[core.L2Advertisement(name="l2")])
>>> svc = {"metadata": {"namespace": "web", "name": "nginx"}, "spec": {"type": "LoadBalancer"},
...        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
>>> nodes = [core.NodeFacts(name="n1"), core.NodeFacts(name="n2", speaker_alive=False)]
>>> result = core.elect(config, svc, nodes, core.ServiceEndpoints(serving=1))
>>> result.node, [str(ip) for ip in result.ips], result.interfaces
('n1', ['192.0.2.10'], ())
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeAlias

from pydantic import Field

from metallb_core._addresses import AddressField, IPAddress, parse_go_ip
from metallb_core._config import Config, L2Advertisement, Pool
from metallb_core._converge import Event
from metallb_core._errors import InvalidService
from metallb_core._l2 import announcing_node
from metallb_core._model import FrozenMap, Model
from metallb_core.vocabulary import ALLOCATED_FROM_POOL, ingress_ips, service_key

EXCLUDE_FROM_LOAD_BALANCERS = "node.kubernetes.io/exclude-from-external-load-balancers"
"""The node label that keeps a node from announcing (any value), as in MetalLB."""

PROTOCOL = "layer2"
"""The protocol named in the speaker's events."""

_NAMED_NODES = 10  # nodes named in a "no eligible node" message before "and N more"


class NodeFacts(Model):
    """What the election needs to know about one node.

    ``speaker_alive`` is the adapter's judgement (a fresh Lease, for the Kubernetes speaker);
    ``network_unavailable`` is the node's ``NetworkUnavailable`` condition being ``True``.

    >>> NodeFacts(name="n1", labels={"zone": "a"}).excluded
    False
    """

    _what: ClassVar[str] = "invalid node facts"

    name: str
    labels: FrozenMap = Field(default_factory=FrozenMap)
    speaker_alive: bool = True
    network_unavailable: bool = False

    @property
    def excluded(self) -> bool:
        """Labelled ``node.kubernetes.io/exclude-from-external-load-balancers``."""
        return EXCLUDE_FROM_LOAD_BALANCERS in self.labels

    @classmethod
    def from_node(cls, node: Mapping[str, Any], *, speaker_alive: bool) -> NodeFacts:
        """The facts of a Kubernetes Node dict (name, labels, ``NetworkUnavailable``).

        >>> node = {"metadata": {"name": "n1", "labels": {"zone": "a"}},
        ...         "status": {"conditions": [{"type": "NetworkUnavailable", "status": "True"}]}}
        >>> facts = NodeFacts.from_node(node, speaker_alive=True)
        >>> facts.name, dict(facts.labels), facts.network_unavailable
        ('n1', {'zone': 'a'}, True)
        """
        meta = node.get("metadata") or {}
        conditions = (node.get("status") or {}).get("conditions") or ()
        unavailable = any(
            isinstance(c, Mapping)
            and c.get("type") == "NetworkUnavailable"
            and c.get("status") == "True"
            for c in conditions
        )
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        return cls(
            name=str(meta.get("name") or ""),
            labels=labels,
            speaker_alive=speaker_alive,
            network_unavailable=unavailable,
        )


def endpoint_can_serve(conditions: Mapping[str, Any] | None) -> bool:
    """MetalLB's ``EndpointCanServe``: ``ready`` unset or true, or ``serving`` true.

    >>> endpoint_can_serve({"ready": False, "serving": True}), endpoint_can_serve({})
    (True, True)
    """
    conditions = conditions or {}
    ready = conditions.get("ready")
    return ready is None or ready is True or conditions.get("serving") is True


class ServiceEndpoints(Model):
    """Where a Service's serving endpoints are: how many, and the nodes hosting them.

    An endpoint without ``nodeName`` counts as serving but is on no node.

    >>> ServiceEndpoints.from_slices([{"endpoints": [
    ...     {"addresses": ["10.1.0.5"], "conditions": {"ready": True}, "nodeName": "n2"},
    ...     {"addresses": ["10.1.0.6"], "conditions": {"ready": False}, "nodeName": "n3"}]}])
    ServiceEndpoints(serving=1, nodes=frozenset({'n2'}))
    """

    serving: int = 0
    nodes: frozenset[str] = frozenset()

    @classmethod
    def from_slices(cls, slices: Iterable[Mapping[str, Any]]) -> ServiceEndpoints:
        """Count the serving endpoints of a Service's ``discovery.k8s.io/v1`` EndpointSlices."""
        serving = 0
        nodes: set[str] = set()
        for piece in slices:
            for endpoint in piece.get("endpoints") or ():
                if not isinstance(endpoint, Mapping):
                    continue
                if not endpoint_can_serve(endpoint.get("conditions")):
                    continue
                serving += 1
                node = endpoint.get("nodeName")
                if node:
                    nodes.add(str(node))
        return cls(serving=serving, nodes=frozenset(nodes))


class Announcement(Model):
    """``node`` announces ``ips`` (every ingress IP of the Service, in order).

    ``interfaces`` are the interfaces it may announce on, sorted; ``()`` means every one.
    ``eligible`` are the nodes that could have been chosen, sorted by name.
    """

    _error: ClassVar[type[ValueError]] = InvalidService
    _what: ClassVar[str] = "invalid announcement"

    kind: Literal["announce"] = "announce"
    key: str
    node: str
    ips: tuple[AddressField, ...]
    pool: str
    interfaces: tuple[str, ...] = ()
    eligible: tuple[str, ...] = ()

    def allows(self, interface: str) -> bool:
        """Whether the address may be announced on ``interface``."""
        return not self.interfaces or interface in self.interfaces

    def event(self) -> Event:
        """MetalLB's event on the Service when ``node`` starts announcing it.

        >>> Announcement(key="a/b", node="n1", ips=["192.0.2.1"], pool="p").event().message
        'announcing from node "n1" with protocol "layer2"'
        """
        return Event(
            type="Normal",
            reason="nodeAssigned",
            message=f'announcing from node "{self.node}" with protocol "{PROTOCOL}"',
        )

    def announce_failed(self, ip: IPAddress) -> Event:
        """MetalLB's Warning when ``node`` has none of the allowed ``interfaces`` for ``ip``.

        MetalLB then tries no other node; neither does the speaker.
        """
        return Event(
            type="Warning",
            reason="announceFailed",
            message=(
                f'the interfaces specified by LB IP "{ip}" doesn\'t exist in assigned node '
                f'"{self.node}" with protocol "{PROTOCOL}"'
            ),
        )


NotAnnouncedReason: TypeAlias = Literal[
    "notLoadBalancer",
    "noIPAllocated",
    "invalidIP",
    "ipNotAllowed",
    "noServingEndpoints",
    "noAdvertisement",
    "serviceNotSelected",
    "noEligibleNode",
]


class NotAnnounced(Model):
    """Nobody announces the Service: ``reason`` (a tag) and ``message`` (what and why).

    Reasons: ``notLoadBalancer``; ``noIPAllocated`` (no ingress IP yet); ``invalidIP``;
    ``ipNotAllowed`` (no pool owns the ingress IPs); ``noServingEndpoints``;
    ``noAdvertisement`` (no L2Advertisement covers the pool); ``serviceNotSelected``
    (advertisements cover the pool but their ``serviceSelectors`` leave the Service out);
    ``noEligibleNode`` (the message names each node and why it is not eligible).
    """

    kind: Literal["none"] = "none"
    key: str
    reason: NotAnnouncedReason
    message: str
    ips: tuple[AddressField, ...] = ()
    pool: str | None = None


Election: TypeAlias = Announcement | NotAnnounced
"""What :func:`elect` returns."""


def _owning_pool(
    config: Config, service: Mapping[str, Any], ips: Sequence[IPAddress]
) -> Pool | None:
    """The pool holding every ingress IP: the annotated one when it does, else the one that does.

    Pools never overlap (:class:`~metallb_core.Config` checks it), so at most one can.
    """

    def owns(pool: Pool) -> bool:
        return all(any(ip in net for net in pool.cidrs if net.version == ip.version) for ip in ips)

    annotated = ((service.get("metadata") or {}).get("annotations") or {}).get(ALLOCATED_FROM_POOL)
    if annotated:
        pool = config.pool(str(annotated))
        if pool is not None and owns(pool):
            return pool
    return next((pool for pool in config.pools if owns(pool)), None)


def _selects_service(ad: L2Advertisement, labels: Mapping[str, str]) -> bool:
    return not ad.service_selectors or any(s.matches(labels) for s in ad.service_selectors)


def _selects_node(ad: L2Advertisement, node: NodeFacts) -> bool:
    return not ad.node_selectors or any(s.matches(node.labels) for s in ad.node_selectors)


def _why_not(
    node: NodeFacts, ads: Sequence[L2Advertisement], local: bool, endpoints: ServiceEndpoints
) -> str | None:
    """Why ``node`` may not announce (None: it may), in the order MetalLB checks."""
    if not node.speaker_alive:
        return "speaker not alive"
    if node.network_unavailable:
        return "NetworkUnavailable"
    if node.excluded:
        return f"labelled {EXCLUDE_FROM_LOAD_BALANCERS}"
    if not any(_selects_node(ad, node) for ad in ads):
        return "not selected by the nodeSelectors of any L2Advertisement"
    if local and node.name not in endpoints.nodes:
        return "no serving endpoint on the node (externalTrafficPolicy: Local)"
    return None


def _eligibility(
    by_name: Mapping[str, NodeFacts],
    ads: Sequence[L2Advertisement],
    local: bool,
    endpoints: ServiceEndpoints,
) -> tuple[list[str], list[str]]:
    """The eligible nodes by name, and the others as ``name (why not)``, in name order."""
    eligible: list[str] = []
    refused: list[str] = []
    for name in sorted(by_name):
        why = _why_not(by_name[name], ads, local, endpoints)
        if why is None:
            eligible.append(name)
        else:
            refused.append(f"{name} ({why})")
    return eligible, refused


def _parse_ips(texts: list[str]) -> list[IPAddress] | str:
    """The ingress IPs as addresses, or the first text that is not one.

    >>> _parse_ips(["192.0.2.1", "bad"])
    'bad'
    """
    ips: list[IPAddress] = []
    for text in texts:
        ip = parse_go_ip(text)
        if ip is None:
            return text
        ips.append(ip)
    return ips


def _refusals(refused: list[str]) -> str:
    """The nodes refused and why, the first :data:`_NAMED_NODES` of them named.

    >>> _refusals([])
    'no node is known'
    >>> _refusals([f"n{i} (excluded)" for i in range(_NAMED_NODES + 2)]).endswith("; and 2 more")
    True
    """
    if not refused:
        return "no node is known"
    shown = "; ".join(refused[:_NAMED_NODES])
    if len(refused) > _NAMED_NODES:
        shown += f"; and {len(refused) - _NAMED_NODES} more"
    return shown


def elect(
    config: Config,
    service: Mapping[str, Any],
    nodes: Iterable[NodeFacts],
    endpoints: ServiceEndpoints,
) -> Election:
    """Which node announces ``service``'s ingress IPs, and on which interfaces (see the module
    documentation for the rules), or why nobody does.

    ``nodes`` holds one entry per node (a repeated name: the last one counts); only these
    nodes can be chosen. Deterministic: the same facts give the same answer on every speaker.

    >>> import metallb_core as core
    >>> config = core.Config(pools=[core.Pool(name="p", cidrs=["192.0.2.0/24"])])
    >>> svc = {"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"},
    ...        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    >>> core.elect(config, svc, [core.NodeFacts(name="n1")], core.ServiceEndpoints(serving=1))
    NotAnnounced(kind='none', key='default/a', reason='noAdvertisement', \
message='no L2Advertisement covers pool "p"', ips=(IPv4Address('192.0.2.1'),), pool='p')
    """
    key = service_key(service)
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return NotAnnounced(key=key, reason="notLoadBalancer", message="not a LoadBalancer")
    texts = ingress_ips(service)
    if not texts:
        return NotAnnounced(key=key, reason="noIPAllocated", message="no IP allocated yet")
    ips = _parse_ips(texts)
    if isinstance(ips, str):
        return NotAnnounced(key=key, reason="invalidIP", message=f'invalid LoadBalancer IP "{ips}"')
    pool = _owning_pool(config, service, ips)
    if pool is None:
        listed = ", ".join(str(ip) for ip in ips)
        return NotAnnounced(
            key=key, reason="ipNotAllowed", message=f"no pool holds {listed}", ips=tuple(ips)
        )

    def nobody(reason: NotAnnouncedReason, message: str) -> NotAnnounced:
        return NotAnnounced(key=key, reason=reason, message=message, ips=tuple(ips), pool=pool.name)

    if endpoints.serving == 0:
        return nobody("noServingEndpoints", "the service has no serving endpoint")
    covering = [ad for ad in config.l2_advertisements if ad.covers(pool.name)]
    if not covering:
        return nobody("noAdvertisement", f'no L2Advertisement covers pool "{pool.name}"')
    labels = (service.get("metadata") or {}).get("labels") or {}
    ads = [ad for ad in covering if _selects_service(ad, labels)]
    if not ads:
        names = ", ".join(ad.name for ad in covering)
        return nobody(
            "serviceNotSelected",
            f'the serviceSelectors of the L2Advertisements of pool "{pool.name}" ({names}) '
            "do not select the service",
        )
    local = spec.get("externalTrafficPolicy") == "Local"
    by_name = {node.name: node for node in nodes}
    eligible, refused = _eligibility(by_name, ads, local, endpoints)
    winner = announcing_node(str(ips[0]), eligible)
    if winner is None:
        return nobody("noEligibleNode", f"no eligible node: {_refusals(refused)}")
    mine = [ad for ad in ads if _selects_node(ad, by_name[winner])]
    interfaces: tuple[str, ...] = ()
    if all(ad.interfaces for ad in mine):
        interfaces = tuple(sorted({name for ad in mine for name in ad.interfaces}))
    return Announcement(
        key=key,
        node=winner,
        ips=tuple(ips),
        pool=pool.name,
        interfaces=interfaces,
        eligible=tuple(eligible),
    )


# -- what a node does with the elections ------------------------------------------------------

Pair: TypeAlias = tuple[IPAddress, str]
"""An address and the interface it is answered on."""


def _pair_order(pair: Pair) -> tuple[int, int, str]:
    return (pair[0].version, int(pair[0]), pair[1])


def speaker_frozen(node: str, alive: Collection[str]) -> bool:
    """The freeze rule: a speaker that does not count *its own* node among the live ones has
    lost contact (its liveness signal does not come back to it), so it cannot tell a dead
    peer from a silent channel. It then keeps announcing what it announces and changes
    nothing (no election, no announce, no withdraw) until it sees itself alive again; before
    it first does, it announces nothing.

    >>> speaker_frozen("n1", {"n1", "n2"}), speaker_frozen("n1", {"n2"})
    (False, True)
    """
    return node not in alive


class NodeInterface(Model):
    """An interface of the node, and the families it can answer for.

    The adapter decides the families (``announcers.arp``: IPv4 with ``IFF_BROADCAST``, IPv6
    with a link-local address).

    >>> from ipaddress import ip_address
    >>> NodeInterface(name="eth1", ipv6=False).serves(ip_address("2001:db8::1"))
    False
    """

    _what: ClassVar[str] = "invalid interface"

    name: str
    ipv4: bool = True
    ipv6: bool = True

    def serves(self, ip: IPAddress) -> bool:
        """Whether ``ip``'s family can be answered on this interface."""
        return self.ipv4 if ip.version == 4 else self.ipv6


def announce_pairs(
    announcement: Announcement, interfaces: Iterable[NodeInterface]
) -> tuple[Pair, ...]:
    """The interface x family pairing: every ``(ip, interface)`` the winner answers on.

    Each ingress IP on each of ``interfaces`` that the advertisements allow
    (:meth:`Announcement.allows`) and that serves the IP's family; IPs in order, then
    interfaces in the order given. ``()`` when none is left.

    >>> won = Announcement(key="a/b", node="n1", ips=["192.0.2.1", "2001:db8::1"], pool="p")
    >>> [(str(ip), name) for ip, name in announce_pairs(
    ...     won, [NodeInterface(name="eth0"), NodeInterface(name="eth1", ipv6=False)])]
    [('192.0.2.1', 'eth0'), ('192.0.2.1', 'eth1'), ('2001:db8::1', 'eth0')]
    """
    usable = [i for i in interfaces if announcement.allows(i.name)]
    return tuple((ip, i.name) for ip in announcement.ips for i in usable if i.serves(ip))


class AnnouncePlan(Model):
    """What ``node`` must answer for after a round (see :func:`plan_announcements`).

    ``want`` maps each ``(ip, interface)`` to the Services that need it (an address shared by
    several Services is answered once); ``won`` the Services this node won, by key;
    ``failed`` those it won whose advertisements name interfaces, none of them usable here
    (MetalLB's ``announceFailed``); ``unusable`` those it won with no usable interface at
    all. ``withdraw`` and ``announce`` are the differences with what was announced, sorted
    (IPv4 first, then by address and interface): withdraw first, then announce.
    """

    _what: ClassVar[str] = "invalid announce plan"

    node: str
    want: dict[tuple[AddressField, str], frozenset[str]] = Field(default_factory=dict)
    won: dict[str, Announcement] = Field(default_factory=dict)
    failed: frozenset[str] = frozenset()
    unusable: frozenset[str] = frozenset()
    withdraw: tuple[tuple[AddressField, str], ...] = ()
    announce: tuple[tuple[AddressField, str], ...] = ()


def plan_announcements(
    node: str,
    elections: Iterable[Election],
    interfaces: Sequence[NodeInterface],
    announced: Collection[Pair],
) -> AnnouncePlan:
    """The announce/withdraw diff of ``node``: from every Service's election, its own
    ``interfaces`` and what it ``announced`` so far, what it must answer for now.

    >>> from ipaddress import ip_address
    >>> won = Announcement(key="a/b", node="n1", ips=["192.0.2.1"], pool="p")
    >>> lost = Announcement(key="a/c", node="n2", ips=["192.0.2.2"], pool="p")
    >>> plan = plan_announcements("n1", [won, lost], [NodeInterface(name="eth0")],
    ...                           {(ip_address("192.0.2.2"), "eth0")})
    >>> [(str(ip), i) for ip, i in plan.withdraw], [(str(ip), i) for ip, i in plan.announce]
    ([('192.0.2.2', 'eth0')], [('192.0.2.1', 'eth0')])
    """
    want: dict[Pair, set[str]] = {}
    won: dict[str, Announcement] = {}
    failed: set[str] = set()
    unusable: set[str] = set()
    for election in elections:
        if not isinstance(election, Announcement) or election.node != node:
            continue
        won[election.key] = election
        pairs = announce_pairs(election, interfaces)
        if not pairs:
            (failed if election.interfaces else unusable).add(election.key)
        for pair in pairs:
            want.setdefault(pair, set()).add(election.key)
    held = set(announced)
    # Built from validated values only: skip validating them again (a round is per event).
    return AnnouncePlan.model_construct(
        node=node,
        want={pair: frozenset(keys) for pair, keys in want.items()},
        won=won,
        failed=frozenset(failed),
        unusable=frozenset(unusable),
        withdraw=tuple(sorted(held - want.keys(), key=_pair_order)),
        announce=tuple(sorted(want.keys() - held, key=_pair_order)),
    )


class ServiceAnnounced(Model):
    """A Service ``node`` announces: its ``ips``, the ``interfaces`` it answers on (sorted),
    the ``allowed`` interfaces of its advertisements (``()``: every one) and its ``pool``."""

    _what: ClassVar[str] = "invalid announced service"

    key: str
    node: str
    ips: tuple[AddressField, ...]
    interfaces: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    pool: str


class AnnounceReport(Model):
    """Where a node stands after a round: the Services it ``serving`` (at least one of their
    addresses answered), by key; those it won but could not announce (``failed``: the
    allowed interfaces, by key; ``unusable``). The next round's changes are measured against
    it; :meth:`AnnounceReport.empty` before the first."""

    _what: ClassVar[str] = "invalid announce report"

    serving: dict[str, ServiceAnnounced] = Field(default_factory=dict)
    failed: dict[str, tuple[tuple[AddressField, ...], tuple[str, ...]]] = Field(
        default_factory=dict
    )
    unusable: frozenset[str] = frozenset()

    @classmethod
    def empty(cls) -> AnnounceReport:
        """Nothing served, nothing failed."""
        return cls()


AnnounceChangeKind: TypeAlias = Literal["announcing", "withdrawn", "announceFailed", "noInterface"]


class AnnounceChange(Model):
    """One thing that changed for a Service in a round, with the Events it sends.

    ``announcing``: this node serves it now, or with other addresses (``service``; Event
    ``nodeAssigned``). ``withdrawn``: it no longer does (``reason``: who announces it now, or
    why nobody does). ``announceFailed``: it won the Service but none of the ``allowed``
    interfaces is usable here (Warning ``announceFailed`` per address; MetalLB tries no other
    node, neither does the speaker). ``noInterface``: it won the Service with no usable
    interface at all.
    """

    _what: ClassVar[str] = "invalid announce change"

    kind: AnnounceChangeKind
    key: str
    reason: str = ""
    service: ServiceAnnounced | None = None
    allowed: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()


def _withdrawn_reason(node: str, election: Election | None) -> str:
    if isinstance(election, Announcement):
        return f"announced by {election.node}" if election.node != node else "failed"
    if election is not None:
        return f"{election.reason}: {election.message}"
    return "service gone"


def report_announcements(
    plan: AnnouncePlan,
    announced: Collection[Pair],
    before: AnnounceReport,
    elections: Mapping[str, Election],
) -> tuple[AnnounceReport, tuple[AnnounceChange, ...]]:
    """The round's outcome: what ``plan.node`` serves now that ``announced`` holds what the
    announcer accepted (a failed announce leaves a pair out), and the changes since
    ``before`` with their Events, in this order: ``announcing``, ``withdrawn``,
    ``announceFailed``, ``noInterface``, each sorted by key. ``elections`` (every Service's,
    by key) says why a Service was withdrawn. Idempotent: the same inputs with the returned
    report as ``before`` give no change.

    >>> won = Announcement(key="a/b", node="n1", ips=["192.0.2.1"], pool="p")
    >>> plan = plan_announcements("n1", [won], [NodeInterface(name="eth0")], set())
    >>> report, changes = report_announcements(
    ...     plan, set(plan.announce), AnnounceReport.empty(), {"a/b": won})
    >>> [(c.kind, c.key, [e.reason for e in c.events]) for c in changes]
    [('announcing', 'a/b', ['nodeAssigned'])]
    >>> report_announcements(plan, set(plan.announce), report, {"a/b": won})[1]
    ()
    """
    node = plan.node
    holding: dict[str, set[str]] = {}
    for pair in announced:
        for key in plan.want.get(pair, ()):
            holding.setdefault(key, set()).add(pair[1])
    serving: dict[str, ServiceAnnounced] = {}
    for key, names in holding.items():
        won, then = plan.won[key], before.serving.get(key)
        interfaces = tuple(sorted(names))
        if then is not None and (then.node, then.ips, then.interfaces, then.allowed, then.pool) == (
            node,
            won.ips,
            interfaces,
            won.interfaces,
            won.pool,
        ):
            serving[key] = then  # unchanged: the same value
            continue
        serving[key] = ServiceAnnounced.model_construct(
            key=key,
            node=node,
            ips=won.ips,
            interfaces=interfaces,
            allowed=won.interfaces,
            pool=won.pool,
        )
    changes: list[AnnounceChange] = []
    for key in sorted(serving):
        now, then = serving[key], before.serving.get(key)
        if then is None or then.ips != now.ips:
            changes.append(
                AnnounceChange(
                    kind="announcing", key=key, service=now, events=(plan.won[key].event(),)
                )
            )
    for key in sorted(before.serving.keys() - serving.keys()):
        reason = _withdrawn_reason(node, elections.get(key))
        changes.append(AnnounceChange(kind="withdrawn", key=key, reason=reason))
    failed = {key: (plan.won[key].ips, plan.won[key].interfaces) for key in plan.failed}
    for key in sorted(failed):
        if before.failed.get(key) == failed[key]:
            continue
        won = plan.won[key]
        changes.append(
            AnnounceChange(
                kind="announceFailed",
                key=key,
                allowed=won.interfaces,
                events=tuple(won.announce_failed(ip) for ip in won.ips),
            )
        )
    for key in sorted(plan.unusable - before.unusable):
        changes.append(AnnounceChange(kind="noInterface", key=key))
    report = AnnounceReport.model_construct(serving=serving, failed=failed, unusable=plan.unusable)
    return report, tuple(changes)
