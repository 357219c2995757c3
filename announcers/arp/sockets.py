"""The raw sockets of the announcer: ``AF_PACKET`` for ARP and NDP, ``IPV6_JOIN_GROUP`` for
the solicited-node groups. Needs CAP_NET_RAW and nothing more: no address is configured on
the interface, no link or sysctl is changed.

Why ``AF_PACKET`` for NDP as well, and not a raw ICMPv6 socket: the kernel never hands a raw
ICMPv6 socket a unicast Neighbor Solicitation for an address it does not own, so the
neighbour-unreachability probes that routers send to a cached MAC would go unanswered
(MetalLB issue #2920). A packet socket sees them, and lets the answer be sourced from the
announced address itself. A classic BPF filter (:mod:`announcers.arp.bpf`) keeps every
other frame in the kernel.

Why ``IPV6_JOIN_GROUP`` on top: a packet socket's ``PACKET_ADD_MEMBERSHIP`` programs the
NIC filter but sends no MLD report, so an MLD-snooping switch never forwards the
solicitations to this port. Joining through an ``AF_INET6`` socket makes the kernel report
and answer queries for the group, for as long as the socket holds the membership.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import socket
import struct
from ipaddress import IPv6Address
from pathlib import Path

from announcers.base import UnknownInterfaceError

__all__ = [
    "ARPHRD_ETHER",
    "GroupMemberships",
    "MissingCapabilityError",
    "UnsupportedInterfaceError",
    "attach_filter",
    "check_capability",
    "hardware_address",
    "interface_index",
    "link_local_address",
    "open_packet_socket",
]

log = logging.getLogger(__name__)

ARPHRD_ETHER = 1
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20+; the decision drops outgoing copies anyway
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 4 << 20
"""Bytes of receive buffer asked for (the kernel doubles it): about 10,000 queued frames
(measured on a veth; each costs ~800 bytes of kernel memory), half a second at 20,000
requests/s, so a burst or a busy CPU does not drop requests. Without CAP_NET_ADMIN the
kernel caps it at ``net.core.rmem_max``."""
_IFA_F_TENTATIVE = 0x40
_IFA_F_DADFAILED = 0x08
_SCOPE_LINK = 0x20
_IF_INET6 = Path("/proc/net/if_inet6")


class MissingCapabilityError(PermissionError):
    """Raw packet sockets need CAP_NET_RAW, and this process does not have it."""


class UnsupportedInterfaceError(ValueError):
    """The interface has no Ethernet address (loopback, tun, wireguard, ...)."""


def interface_index(name: str) -> int:
    """The index of interface ``name``; :class:`UnknownInterfaceError` if there is none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise UnknownInterfaceError(f"unknown interface {name!r}") from None


def attach_filter(sock: socket.socket, program: bytes) -> None:
    """Attach the classic BPF ``program`` to ``sock``, replacing any filter it had (the
    kernel swaps them atomically). Raises :class:`OSError` if the kernel refuses it."""
    buffer = ctypes.create_string_buffer(program)
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }; the kernel
    # copies the program during the call, so the buffer only has to live until then.
    fprog = struct.pack("HP", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _packet_socket() -> socket.socket:
    try:
        # Protocol 0 receives nothing until bound, so no frame slips in before the filter.
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise MissingCapabilityError(
            "raw packet sockets need CAP_NET_RAW (run as root or grant the capability)"
        ) from None


def _grow_receive_buffer(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except OSError:  # no CAP_NET_ADMIN: as much as net.core.rmem_max allows
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


def check_capability() -> None:
    """Raise :class:`MissingCapabilityError` unless this process may open raw packet
    sockets. Sends nothing."""
    _packet_socket().close()


def open_packet_socket(
    interface: str, ethertype: int, bpf_program: bytes | None = None
) -> socket.socket:
    """A non-blocking ``AF_PACKET``/``SOCK_RAW`` socket receiving ``ethertype`` on
    ``interface`` only, with ``bpf_program`` attached before it receives anything.

    Raises :class:`MissingCapabilityError` without CAP_NET_RAW and
    :class:`~announcers.base.UnknownInterfaceError` for a missing interface.
    """
    sock = _packet_socket()
    try:
        if bpf_program is not None:
            attach_filter(sock, bpf_program)
        _grow_receive_buffer(sock)
        with contextlib.suppress(OSError):  # older kernel: the decision drops the copies
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        try:
            sock.bind((interface, ethertype))
        except OSError as error:
            if error.errno in (errno.ENODEV, errno.ENXIO, errno.EINVAL):
                raise UnknownInterfaceError(f"unknown interface {interface!r}") from None
            raise
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def hardware_address(sock: socket.socket) -> bytes:
    """The MAC of the interface a packet socket is bound to.

    Raises :class:`UnsupportedInterfaceError` if it is not an Ethernet-like interface.
    """
    name, _proto, _pkttype, hatype, address = sock.getsockname()
    if hatype != ARPHRD_ETHER or len(address) != 6:
        raise UnsupportedInterfaceError(
            f"interface {name!r} has no Ethernet address: ARP and NDP cannot be answered there"
        )
    return bytes(address)


def link_local_address(interface: str, if_inet6: Path = _IF_INET6) -> IPv6Address | None:
    """A usable (not tentative, not failed) IPv6 link-local address of ``interface``."""
    try:
        lines = if_inet6.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) != 6 or fields[5] != interface or int(fields[3], 16) != _SCOPE_LINK:
            continue
        if int(fields[4], 16) & (_IFA_F_TENTATIVE | _IFA_F_DADFAILED):
            continue
        return IPv6Address(bytes.fromhex(fields[0]))
    return None


class GroupMemberships:
    """Reference-counted ``IPV6_JOIN_GROUP`` memberships of one interface.

    Several announced addresses can share a solicited-node group (same low 24 bits); the
    group is joined on the first and left after the last. The kernel limits the memberships
    one socket may hold (its option memory), so when a socket is full another is opened.

    >>> memberships = GroupMemberships(ifindex=1)
    >>> memberships.count(IPv6Address("ff02::1:ff00:1"))
    0
    """

    def __init__(self, ifindex: int) -> None:
        self.ifindex = ifindex
        self._counts: dict[IPv6Address, int] = {}
        self._holder: dict[IPv6Address, socket.socket] = {}
        self._sockets: list[socket.socket] = []

    def count(self, group: IPv6Address) -> int:
        """How many holders the group has now."""
        return self._counts.get(group, 0)

    def join(self, group: IPv6Address) -> None:
        """Add one holder of ``group``; joins it on the first. Raises :class:`OSError` if
        the kernel refuses (IPv6 disabled on the interface, say); the count is unchanged."""
        if self._counts.get(group, 0) == 0:
            self._holder[group] = self._join(group)
        self._counts[group] = self._counts.get(group, 0) + 1

    def leave(self, group: IPv6Address) -> None:
        """Remove one holder of ``group``; leaves it after the last (no-op if none)."""
        count = self._counts.get(group, 0)
        if count == 0:
            return
        if count > 1:
            self._counts[group] = count - 1
            return
        del self._counts[group]
        sock = self._holder.pop(group)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, self._mreq(group))
        except OSError as error:  # the interface is gone: so is the membership
            log.debug("leaving %s on ifindex %d: %s", group, self.ifindex, error)

    def close(self) -> None:
        """Leave every group (closing the sockets does it) and forget them."""
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        self._counts.clear()
        self._holder.clear()

    def _mreq(self, group: IPv6Address) -> bytes:
        return group.packed + struct.pack("@I", self.ifindex)

    def _join(self, group: IPv6Address) -> socket.socket:
        for sock in self._sockets:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, self._mreq(group))
            except OSError as error:
                if error.errno in (errno.ENOBUFS, errno.ENOMEM):
                    continue  # this socket is full
                raise
            return sock
        # A UDP socket is enough to hold memberships and needs no privilege.
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, self._mreq(group))
        except BaseException:
            sock.close()
            raise
        self._sockets.append(sock)
        return sock
