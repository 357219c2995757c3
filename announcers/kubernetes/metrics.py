"""Prometheus metrics, with MetalLB's names, on their own registry.

MetalLB's (``internal/allocator``, ``internal/k8s``):

==============================================  =======  =====================================
``metallb_allocator_addresses_total``           gauge    usable addresses, per ``pool``
``metallb_allocator_ipv4_addresses_total``      gauge    usable IPv4 addresses, per ``pool``
``metallb_allocator_ipv6_addresses_total``      gauge    usable IPv6 addresses, per ``pool``
``metallb_allocator_addresses_in_use_total``    gauge    addresses in use, per ``pool``
``metallb_allocator_ipv4_addresses_in_use_total`` gauge  IPv4 addresses in use, per ``pool``
``metallb_allocator_ipv6_addresses_in_use_total`` gauge  IPv6 addresses in use, per ``pool``
``metallb_k8s_client_updates_total``            counter  object updates processed
``metallb_k8s_client_update_errors_total``      counter  object updates that failed
``metallb_k8s_client_config_loaded_bool``       gauge    1 once a configuration is in force
``metallb_k8s_client_config_stale_bool``        gauge    1 while the latest config is refused
==============================================  =======  =====================================

Ours: ``metallb_core_controller_leader_bool`` (1 while this replica holds the Lease).

Values are exact counts from :func:`metallb_core.pool_usage` (a /64 is 2**64, not MetalLB's
saturated 2**63-1); Prometheus stores them as floats. A pool that disappears loses its series.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

import metallb_core as core


class Exposition:
    """A Prometheus registry, read for tests and served over HTTP (the controller's and the
    speaker's metrics share this)."""

    registry: CollectorRegistry

    def value(self, name: str, **labels: str) -> float | None:
        """The current value of one sample (None when absent); for tests and logs."""
        result = self.registry.get_sample_value(name, labels)
        return None if result is None else float(result)

    def render(self) -> bytes:
        """The exposition text, as the HTTP endpoint serves it."""
        return bytes(generate_latest(self.registry))

    def serve(self, port: int, addr: str = "0.0.0.0") -> tuple[int, Callable[[], None]]:
        """Serve ``/metrics`` on ``addr:port`` in a thread; return the port and a stopper.

        ``OSError`` when the port cannot be bound.
        """
        server, thread = start_http_server(port, addr=addr, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=2)

        return int(server.server_port), stop


class Metrics(Exposition):
    """The controller's metrics on a private registry (several controllers can share a process).

    >>> m = Metrics()
    >>> m.set_pool_usage({"p": core.PoolUsage(assigned_ipv4=1, assigned_ipv6=0,
    ...                                        available_ipv4=3, available_ipv6=0)})
    >>> m.value("metallb_allocator_addresses_total", pool="p")
    4.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry

        def pool_gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["pool"], registry=r)

        self.addresses_total = pool_gauge(
            "metallb_allocator_addresses_total", "Number of usable IP addresses, per pool"
        )
        self.ipv4_addresses_total = pool_gauge(
            "metallb_allocator_ipv4_addresses_total", "Number of usable IPv4 addresses, per pool"
        )
        self.ipv6_addresses_total = pool_gauge(
            "metallb_allocator_ipv6_addresses_total", "Number of usable IPv6 addresses, per pool"
        )
        self.addresses_in_use_total = pool_gauge(
            "metallb_allocator_addresses_in_use_total", "Number of IP addresses in use, per pool"
        )
        self.ipv4_addresses_in_use_total = pool_gauge(
            "metallb_allocator_ipv4_addresses_in_use_total",
            "Number of IPv4 addresses in use, per pool",
        )
        self.ipv6_addresses_in_use_total = pool_gauge(
            "metallb_allocator_ipv6_addresses_in_use_total",
            "Number of IPv6 addresses in use, per pool",
        )
        self.updates = Counter(
            "metallb_k8s_client_updates_total",
            "Number of k8s object updates that have been processed.",
            registry=r,
        )
        self.update_errors = Counter(
            "metallb_k8s_client_update_errors_total",
            "Number of k8s object updates that failed for some reason.",
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
        self.leader = Gauge(
            "metallb_core_controller_leader_bool",
            "1 while this controller replica holds the leader Lease.",
            registry=r,
        )
        self._pools: set[str] = set()

    def set_pool_usage(self, usage: Mapping[str, core.PoolUsage]) -> None:
        """Set the allocator gauges from :func:`metallb_core.pool_usage`; drop removed pools."""
        for name, u in usage.items():
            v4_total = u.assigned_ipv4 + u.available_ipv4
            v6_total = u.assigned_ipv6 + u.available_ipv6
            self.addresses_total.labels(pool=name).set(v4_total + v6_total)
            self.ipv4_addresses_total.labels(pool=name).set(v4_total)
            self.ipv6_addresses_total.labels(pool=name).set(v6_total)
            self.addresses_in_use_total.labels(pool=name).set(u.assigned_ipv4 + u.assigned_ipv6)
            self.ipv4_addresses_in_use_total.labels(pool=name).set(u.assigned_ipv4)
            self.ipv6_addresses_in_use_total.labels(pool=name).set(u.assigned_ipv6)
        for gone in self._pools - set(usage):
            for gauge in self._pool_gauges():
                gauge.remove(gone)
        self._pools = set(usage)

    def _pool_gauges(self) -> tuple[Gauge, ...]:
        return (
            self.addresses_total,
            self.ipv4_addresses_total,
            self.ipv6_addresses_total,
            self.addresses_in_use_total,
            self.ipv4_addresses_in_use_total,
            self.ipv6_addresses_in_use_total,
        )
