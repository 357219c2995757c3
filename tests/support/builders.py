"""Builders of core values shared by the tests of ``tests/core``.

Short, keyword-friendly spellings of what the tests build again and again, so that a test
reads as its rule: ``state_of(pool("a", "10.0.0.0/30", priority=1))``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import metallb_core as core

IP: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Family: TypeAlias = Literal["ipv4", "ipv6", "dual"]
Policy: TypeAlias = Literal["SingleStack", "PreferDualStack", "RequireDualStack"]


def ips(*texts: str) -> tuple[IP, ...]:
    """The addresses as ``ipaddress`` objects, in the given order.

    >>> ips("10.0.0.1", "fd00::1")
    (IPv4Address('10.0.0.1'), IPv6Address('fd00::1'))
    """
    return tuple(ipaddress.ip_address(text) for text in texts)


def pool(
    name: str,
    *cidrs: str,
    auto_assign: bool = True,
    avoid_buggy_ips: bool = False,
    priority: int | None = None,
    namespaces: Sequence[str] = (),
    selectors: Sequence[Mapping[str, Any]] = (),
    exclude: Sequence[str] = (),
) -> core.Pool:
    """A pool; a ``serviceAllocation`` block only when priority, namespaces or selectors given.

    >>> pool("a", "10.0.0.0/30").service_allocation is None
    True
    >>> pool("a", "10.0.0.0/30", priority=2).service_allocation.priority
    2
    """
    allocation = None
    if priority is not None or namespaces or selectors:
        allocation = core.ServiceAllocation(
            priority=priority or 0, namespaces=list(namespaces), service_selectors=list(selectors)
        )
    return core.Pool(
        name=name,
        cidrs=list(cidrs),
        auto_assign=auto_assign,
        avoid_buggy_ips=avoid_buggy_ips,
        service_allocation=allocation,
        exclude=list(exclude),
    )


def config(*pools: core.Pool) -> core.Config:
    """A configuration of these pools, in this order."""
    return core.Config(pools=list(pools))


def state_of(*pools: core.Pool) -> core.State:
    """An empty state under a configuration of these pools."""
    return core.State.empty(config(*pools))
