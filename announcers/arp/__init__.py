"""The Layer-2 announcer: answers ARP (IPv4) and Neighbor Solicitations (IPv6) for
load-balancer addresses on raw sockets, and announces them when this node takes over.

- :class:`L2Announcer`: the :class:`~announcers.base.Announcer` on raw ``AF_PACKET`` sockets.
- :func:`discover_interfaces`: which interfaces MetalLB would announce on.
- :mod:`announcers.arp.frames`: the frames, as pure bytes <-> values.
- :mod:`announcers.arp.decision`: what to do with each received frame, as a pure function.
- ``python -m announcers.arp --interface IFACE [--refresh SECONDS] ADDRESS [ADDRESS ...]``.

>>> from ipaddress import ip_address
>>> announcer = L2Announcer()
>>> announcer.announce(ip_address("192.0.2.10"), "eth0")  # doctest: +SKIP
>>> announcer.close()
"""

from announcers.arp.announcer import Counters, L2Announcer, check_address
from announcers.arp.interfaces import (
    DEFAULT_EXCLUDE,
    SelectedInterface,
    discover_interfaces,
)
from announcers.arp.sockets import MissingCapabilityError, UnsupportedInterfaceError
from announcers.base import AnnouncerClosedError, UnknownInterfaceError

__all__ = [
    "DEFAULT_EXCLUDE",
    "AnnouncerClosedError",
    "Counters",
    "L2Announcer",
    "MissingCapabilityError",
    "SelectedInterface",
    "UnknownInterfaceError",
    "UnsupportedInterfaceError",
    "check_address",
    "discover_interfaces",
]
