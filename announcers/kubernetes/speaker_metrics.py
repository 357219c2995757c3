"""The speaker's Prometheus metrics, on their own registry.

==================================================  =======  ===================================
``metallb_speaker_announced``                       gauge    1 per (``service``, ``protocol``,
                                                             ``node``, ``ip``) announced from
                                                             this node (MetalLB's name)
``metallb_core_speaker_announced_ips``              gauge    addresses announced from this node
``metallb_core_speaker_requests_answered_total``    counter  ARP requests / Neighbor
                                                             Solicitations answered, per
                                                             ``protocol`` (``arp``, ``ndp``)
``metallb_core_speaker_announcements_sent_total``   counter  gratuitous ARPs / unsolicited
                                                             Neighbor Advertisements sent,
                                                             per ``protocol``
``metallb_core_speaker_conflicts_total``            counter  frames in which another MAC
                                                             claimed an announced address
``metallb_core_speaker_reasserts_total``            counter  announcement rounds sent again
                                                             because another MAC claimed an
                                                             announced address
``metallb_core_speaker_responder_restarts_total``   counter  restarts of the announcer's
                                                             receiving thread after a failure
``metallb_core_speaker_responder_healthy``          gauge    1 while that thread runs, 0 while
                                                             it is down after a failure
``metallb_core_speaker_alive_nodes``                gauge    nodes whose speaker Lease is fresh
``metallb_core_speaker_lease_renewals_total``       counter  renewals of this node's Lease
``metallb_core_speaker_lease_renewal_errors_total`` counter  renewals that failed (timeouts too)
``metallb_core_speaker_liveness_writes_total``      counter  liveness writes to the API, per
                                                             ``reason`` (``join``, ``leave``,
                                                             ``verdict``, ``renew``)
``metallb_core_speaker_liveness_errors_total``      counter  liveness requests that failed, per
                                                             ``request`` and ``error``
                                                             (``timeout``, ``conflict``,
                                                             ``refused``)
``metallb_core_speaker_probes_total``               counter  UDP probes per ``result``
``metallb_k8s_client_updates_total``                counter  object updates processed
``metallb_k8s_client_config_loaded_bool``           gauge    1 once a configuration is in force
``metallb_k8s_client_config_stale_bool``            gauge    1 while the latest config is refused
==================================================  =======  ===================================

The ARP/NDP counters are read from the announcer (:meth:`announcers.arp.L2Announcer.counters`)
when the metrics are scraped; an announcer without counters (the mock) reports zeros.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from announcers.kubernetes.metrics import Exposition


@runtime_checkable
class CountingAnnouncer(Protocol):
    """An announcer that counts what it answers and sends (``L2Announcer``)."""

    def counters(self) -> Any:
        """An object with ``arp_answered``, ``ndp_answered``, ``arp_announcements``,
        ``ndp_announcements`` and ``conflicts``."""
        ...


class _AnnouncerCollector(Collector):
    def __init__(self, announcer: object) -> None:
        self._announcer = announcer

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counters = (
            self._announcer.counters() if isinstance(self._announcer, CountingAnnouncer) else None
        )

        def value(name: str) -> float:
            return float(getattr(counters, name, 0) or 0)

        answered = CounterMetricFamily(
            "metallb_core_speaker_requests_answered",
            "ARP requests and Neighbor Solicitations answered, per protocol.",
            labels=["protocol"],
        )
        answered.add_metric(["arp"], value("arp_answered"))
        answered.add_metric(["ndp"], value("ndp_answered"))
        sent = CounterMetricFamily(
            "metallb_core_speaker_announcements_sent",
            "Gratuitous ARPs and unsolicited Neighbor Advertisements sent, per protocol.",
            labels=["protocol"],
        )
        sent.add_metric(["arp"], value("arp_announcements"))
        sent.add_metric(["ndp"], value("ndp_announcements"))
        conflicts = CounterMetricFamily(
            "metallb_core_speaker_conflicts",
            "Frames in which another MAC claimed an address this node announces.",
        )
        conflicts.add_metric([], value("conflicts"))
        reasserts = CounterMetricFamily(
            "metallb_core_speaker_reasserts",
            "Announcement rounds sent again because another MAC claimed an announced address.",
        )
        reasserts.add_metric([], value("reasserts"))
        restarts = CounterMetricFamily(
            "metallb_core_speaker_responder_restarts",
            "Restarts of the announcer's receiving thread after an unexpected failure.",
        )
        restarts.add_metric([], value("thread_restarts"))
        healthy = GaugeMetricFamily(
            "metallb_core_speaker_responder_healthy",
            "1 while the announcer's receiving thread runs, 0 while it is down after a failure.",
        )
        healthy.add_metric([], 1.0 if getattr(self._announcer, "healthy", True) else 0.0)
        yield from (answered, sent, conflicts, reasserts, restarts, healthy)


class _ProbeCollector(Collector):
    """The probe detector's counts (``announcers.kubernetes.membership.Counts``)."""

    RESULTS = ("probes", "acked", "indirect", "inconclusive", "lagged", "verdicts", "relayed")

    def __init__(self, counts: object) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "metallb_core_speaker_probes",
            "UDP probes of other speakers, per outcome (probes started, acked, gone indirect, "
            "inconclusive, judged late, verdicts; relayed for others).",
            labels=["result"],
        )
        for result in self.RESULTS:
            family.add_metric([result], float(getattr(self._counts, result, 0) or 0))
        yield family


class SpeakerMetrics(Exposition):
    """The speaker's metrics (see the module docstring) on a private registry.

    >>> m = SpeakerMetrics(node="n1")
    >>> m.set_announced({("web/nginx", "192.0.2.10")})
    >>> m.value("metallb_speaker_announced", service="web/nginx", protocol="layer2",
    ...         node="n1", ip="192.0.2.10")
    1.0
    """

    def __init__(self, *, node: str, registry: CollectorRegistry | None = None) -> None:
        self.node = node
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.announced = Gauge(
            "metallb_speaker_announced",
            "Services being announced from this node. This is desired state, it does not "
            "guarantee that the routing protocols have converged.",
            ["service", "protocol", "node", "ip"],
            registry=r,
        )
        self.announced_ips = Gauge(
            "metallb_core_speaker_announced_ips",
            "Addresses announced from this node.",
            registry=r,
        )
        self.alive_nodes = Gauge(
            "metallb_core_speaker_alive_nodes",
            "Nodes whose speaker Lease is fresh, as this speaker sees them.",
            registry=r,
        )
        self.lease_renewals = Counter(
            "metallb_core_speaker_lease_renewals",
            "Renewals of this node's speaker Lease.",
            registry=r,
        )
        self.lease_renewal_errors = Counter(
            "metallb_core_speaker_lease_renewal_errors",
            "Renewals of this node's speaker Lease that failed.",
            registry=r,
        )
        self.liveness_writes = Counter(
            "metallb_core_speaker_liveness_writes",
            "Writes to the API for liveness (join, leave, verdict, renew).",
            ["reason"],
            registry=r,
        )
        self.liveness_errors = Counter(
            "metallb_core_speaker_liveness_errors",
            "Liveness requests to the API that failed (timeout, conflict, refused).",
            ["request", "error"],
            registry=r,
        )
        self.updates = Counter(
            "metallb_k8s_client_updates_total",
            "Number of k8s object updates that have been processed.",
            registry=r,
        )
        self.config_loaded = Gauge(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once.",
            registry=r,
        )
        self.config_stale = Gauge(
            "metallb_k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load.",
            registry=r,
        )
        self._announced: set[tuple[str, str]] = set()
        self._collector: _AnnouncerCollector | None = None

    def watch_announcer(self, announcer: object) -> None:
        """Report ``announcer``'s ARP/NDP counters (read at each scrape)."""
        if self._collector is not None:
            self.registry.unregister(self._collector)
        self._collector = _AnnouncerCollector(announcer)
        self.registry.register(self._collector)

    def watch_probes(self, counts: object) -> None:
        """Report a probe detector's counts (read at each scrape)."""
        self.registry.register(_ProbeCollector(counts))

    def renewed(self, ok: bool) -> None:
        """Count one renewal of this node's Lease."""
        (self.lease_renewals if ok else self.lease_renewal_errors).inc()
        if ok:
            self.liveness_writes.labels(reason="renew").inc()

    def liveness_write(self, reason: str) -> None:
        """Count one liveness write that the API took."""
        self.liveness_writes.labels(reason=reason).inc()

    def liveness_error(self, request: str, error: str) -> None:
        """Count one liveness request that failed (``error``: timeout, conflict, refused)."""
        self.liveness_errors.labels(request=request, error=error).inc()

    def set_announced(self, pairs: set[tuple[str, str]]) -> None:
        """What this node announces now, as ``(service key, ip)`` pairs."""
        for service, ip in self._announced - pairs:
            self.announced.remove(service, "layer2", self.node, ip)
        for service, ip in pairs - self._announced:
            self.announced.labels(service=service, protocol="layer2", node=self.node, ip=ip).set(1)
        self._announced = set(pairs)
        self.announced_ips.set(len({ip for _, ip in pairs}))
