"""The contract every announcer fulfils: make an address reachable on an interface, or stop.

An announcer is told, one address and one interface at a time, what this node must answer
for. It knows nothing of Kubernetes, pools or elections: the caller decides (with
:func:`metallb_core.announcing_node`) and the announcer carries the decision out.

Two implementations exist and one shared contract test suite runs against both:

- :class:`announcers.mock.MockAnnouncer`, in memory, for tests of what sits above;
- :class:`announcers.arp.L2Announcer`, which answers ARP and NDP on raw sockets.

>>> from ipaddress import ip_address
>>> from announcers.mock import MockAnnouncer
>>> announcer: Announcer = MockAnnouncer()
>>> announcer.announce(ip_address("192.0.2.10"), "eth0")
>>> announcer.announce(ip_address("192.0.2.10"), "eth0")  # idempotent
>>> announcer.withdraw(ip_address("192.0.2.99"), "eth0")  # not announced: a no-op
>>> announcer.close()
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Protocol, TypeAlias, runtime_checkable

__all__ = ["Announcer", "AnnouncerClosedError", "IPAddress", "UnknownInterfaceError"]

IPAddress: TypeAlias = IPv4Address | IPv6Address
"""An address an announcer can announce: an IPv4 or an IPv6 address object."""


class AnnouncerClosedError(RuntimeError):
    """``announce`` was called after ``close``: a closed announcer never answers again."""


class UnknownInterfaceError(ValueError):
    """The named network interface does not exist (or the announcer was told to ignore it)."""


@runtime_checkable
class Announcer(Protocol):
    """Answers for addresses on interfaces, as told.

    The contract, which the shared test suite checks for every implementation:

    - ``announce(ip, interface)``: from now on ``ip`` is answered for on ``interface``.
      Announcing twice is announcing once. Raises :class:`UnknownInterfaceError` for an
      interface that does not exist (nothing is announced then) and
      :class:`AnnouncerClosedError` after :meth:`close`.
    - ``withdraw(ip, interface)``: stop answering for ``ip`` on ``interface`` at once; other
      interfaces keep their announcements. Withdrawing what is not announced is a no-op.
    - ``close()``: stop everything and release every resource. Idempotent; ``withdraw``
      after ``close`` is a no-op.

    Every method may be called from any thread.
    """

    def announce(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        """Answer for ``ip`` on ``interface`` from now on (idempotent)."""
        ...

    def withdraw(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        """Stop answering for ``ip`` on ``interface`` at once (no-op if not announced)."""
        ...

    def close(self) -> None:
        """Stop answering for everything and release all resources (idempotent)."""
        ...
