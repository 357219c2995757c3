"""``L2Announcer``: answers ARP and NDP for announced addresses on raw sockets.

The shell around the pure parts: :mod:`~announcers.arp.frames` builds and parses bytes,
:mod:`~announcers.arp.decision` decides, :mod:`~announcers.arp.schedule` says when the next
announcement round is due. This module only opens sockets, reads, asks, and writes.

Threads: the caller's threads call :meth:`L2Announcer.announce` / :meth:`~L2Announcer.withdraw`
/ :meth:`~L2Announcer.close`; one background thread (started with the first announcement)
receives frames on every interface and sends the scheduled rounds. One lock guards the
state; every frame is sent while holding it, after checking that its address is still
announced, so once ``withdraw`` returns, no answer and no round for that address leaves.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType

from announcers.arp import bpf, frames, sockets
from announcers.arp.decision import Decision, InterfaceView, Verdict, decide
from announcers.arp.fastpath import ReplyTable
from announcers.arp.schedule import DEFAULT_INTERVAL, DEFAULT_WINDOW, RoundSchedule
from announcers.base import AnnouncerClosedError, IPAddress

__all__ = ["Counters", "L2Announcer", "check_address"]

log = logging.getLogger("announcers.arp")

_RECV_BATCH = 256  # frames read per socket per pass, so one busy interface cannot starve
_RECV_SIZE = 4096  # ARP and NDP frames are short; anything longer is not answered anyway
_FILTER_SETTLE = 0.05  # seconds without changes before the exact BPF filter is rebuilt
_REVIVE_EVERY = 5.0  # seconds between attempts to reopen a vanished interface
_LOG_EVERY = 10.0  # seconds between two conflict or probe lines for the same address and MAC
_LIMITED_BROADCAST = IPv4Address("255.255.255.255")
DEFAULT_REASSERT_EVERY = 5.0
"""Seconds between two re-assertions of one address on one interface after conflicts."""
_RESTART_FIRST = 0.1  # seconds before a failed thread is started again ...
_RESTART_MAX = 5.0  # ... doubling up to this while it keeps failing ...
_RESTART_RESET = 60.0  # ... and back to the first after it ran this long
_Handlers = dict[int, tuple[socket.socket, "_Responder"] | None]  # fd -> socket (None: wake pipe)


def check_address(ip: object) -> IPAddress:
    """``ip`` if it is an address that can be announced, else :class:`ValueError`
    (:class:`TypeError` if it is not an address object at all).

    Unspecified, loopback, multicast and the limited broadcast address cannot be.

    >>> check_address(IPv4Address("192.0.2.10"))
    IPv4Address('192.0.2.10')
    """
    if not isinstance(ip, IPv4Address | IPv6Address):
        raise TypeError(f"expected an IPv4Address or IPv6Address, not {type(ip).__name__}")
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip == _LIMITED_BROADCAST:
        raise ValueError(f"{ip} cannot be announced (unspecified, loopback or multicast)")
    return ip


@dataclass(frozen=True, slots=True)
class Counters:
    """What the announcer has done, since it was created (for metrics).

    ``received``: frames the kernel's filter let through to the announcer;
    ``arp_answered``: ARP requests answered; ``ndp_answered``: Neighbor Solicitations
    answered; ``arp_announcements`` / ``ndp_announcements``: gratuitous ARPs and unsolicited
    Neighbor Advertisements sent; ``conflicts``: frames in which another MAC claimed an
    announced address; ``send_errors``: frames the kernel refused to send;
    ``reasserts``: announcement rounds sent because another MAC claimed an announced
    address; ``thread_restarts``: times the receiving thread failed on an unexpected error and was
    started again.
    """

    received: int = 0
    arp_answered: int = 0
    ndp_answered: int = 0
    arp_announcements: int = 0
    ndp_announcements: int = 0
    conflicts: int = 0
    send_errors: int = 0
    reasserts: int = 0
    thread_restarts: int = 0

    @property
    def answered(self) -> int:
        """ARP requests and Neighbor Solicitations answered."""
        return self.arp_answered + self.ndp_answered

    @property
    def announcements(self) -> int:
        """Gratuitous ARPs and unsolicited Neighbor Advertisements sent."""
        return self.arp_announcements + self.ndp_announcements

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


class _Tally:
    """Mutable counters of one responder: bumped per frame without building objects."""

    __slots__ = (
        "arp_announcements",
        "arp_answered",
        "conflicts",
        "ndp_announcements",
        "ndp_answered",
        "reasserts",
        "received",
        "send_errors",
        "thread_restarts",
    )

    def __init__(self) -> None:
        self.received = self.arp_answered = self.ndp_answered = 0
        self.arp_announcements = self.ndp_announcements = self.conflicts = 0
        self.send_errors = self.reasserts = self.thread_restarts = 0

    def snapshot(self) -> Counters:
        return Counters(**{name: getattr(self, name) for name in self.__slots__})


class _Responder:
    """The sockets of one interface: a packet socket per family, opened on first use, and
    the solicited-node memberships."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ifindex = sockets.interface_index(name)
        self.arp: socket.socket | None = None
        self.ndp: socket.socket | None = None
        self.memberships = sockets.GroupMemberships(self.ifindex)
        self.mac = b""
        self.view = InterfaceView(name=name, mac=bytes(6))
        self.table = ReplyTable(bytes(6))
        self.tally = _Tally()

    def socket_for(self, ip: IPAddress) -> socket.socket:
        """The socket of ``ip``'s family, opened if needed (raises on failure)."""
        if isinstance(ip, IPv4Address):
            if self.arp is None:
                self.arp = self._open(frames.ETH_P_ARP, bpf.prefilter(ndp=False))
            return self.arp
        if self.ndp is None:
            self.ndp = self._open(frames.ETH_P_IPV6, bpf.prefilter(ndp=True))
        return self.ndp

    def _open(self, ethertype: int, bpf: bytes | None) -> socket.socket:
        sock = sockets.open_packet_socket(self.name, ethertype, bpf)
        try:
            mac = sockets.hardware_address(sock)
        except BaseException:
            sock.close()
            raise
        if self.mac and mac != self.mac:
            log.warning("interface %s changed its MAC to %s", self.name, frames.format_mac(mac))
        self.mac = mac
        return sock

    def open_sockets(self) -> list[socket.socket]:
        return [sock for sock in (self.arp, self.ndp) if sock is not None]

    def close(self) -> None:
        for sock in self.open_sockets():
            sock.close()
        self.arp = self.ndp = None
        self.memberships.close()


class L2Announcer:
    """Answers ARP requests and Neighbor Solicitations for announced addresses, and
    announces them when they are taken over. Implements :class:`~announcers.base.Announcer`.

    - ``announce(ip, interface)`` opens the interface's raw socket on first use (errors are
      raised to the caller: :class:`~announcers.base.UnknownInterfaceError`,
      :class:`~announcers.arp.sockets.MissingCapabilityError`,
      :class:`~announcers.arp.sockets.UnsupportedInterfaceError`), joins the solicited-node
      group for an IPv6 address, sends a first announcement round before it returns, and
      schedules the next rounds: every ``interval`` seconds until ``window`` seconds have
      passed, then, with ``refresh``, every ``refresh`` seconds for as long as it is held.
      A round is a gratuitous ARP request (IPv4) or an unsolicited NA to ff02::1 with O=1
      and a Target link-layer option (IPv6).
    - When another MAC claims an announced address (a gratuitous ARP, an ARP reply or
      request with it as sender, a Neighbor Advertisement for it), the conflict is counted
      and logged, and the address is **re-asserted** with one announcement round, at most
      once every ``reassert_every`` seconds (5 s) per address and interface.
    - ``withdraw(ip, interface)`` stops answering and announcing at once, and leaves the
      group after its last address.
    - ``close()`` stops everything and closes every socket.

    ``announce_on_takeover=False`` sends no rounds at all (answers only); it exists to
    measure what announcements are worth, not for production.

    ``busy_poll`` (seconds, 0 by default) keeps the thread polling its sockets, instead of
    sleeping, for that long after each frame: as the kernel's ``SO_BUSY_POLL``, it trades
    CPU for latency. A sleeping thread is answered only after the scheduler wakes it (on
    a virtual machine whose idle CPU halts, ~30-50 us); a polling one answers in a few.
    While requests keep coming less than ``busy_poll`` apart, the thread uses a whole core
    and holds the GIL most of the time (other threads of the process get it every few
    milliseconds), so it is for a process that does nothing else
    (``python -m announcers.arp --busy-poll``); idle, it costs nothing.

    Needs CAP_NET_RAW. Every method may be called from any thread. The sockets live in the
    network namespace of the thread that first announces on an interface.

    >>> announcer = L2Announcer(refresh=60.0)  # opens nothing until the first announce
    >>> announcer.counters()
    Counters(received=0, arp_answered=0, ndp_answered=0, arp_announcements=0, \
ndp_announcements=0, conflicts=0, send_errors=0, reasserts=0, thread_restarts=0)
    >>> announcer.close()
    """

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        window: float = DEFAULT_WINDOW,
        refresh: float | None = None,
        reassert_every: float = DEFAULT_REASSERT_EVERY,
        announce_on_takeover: bool = True,
        busy_poll: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (busy_poll >= 0 and math.isfinite(busy_poll)):
            raise ValueError(f"busy_poll: expected seconds >= 0, not {busy_poll!r}")
        self._busy_poll = busy_poll
        self._schedule: RoundSchedule[tuple[IPAddress, str]] = RoundSchedule(
            interval, window, refresh
        )
        self._announce_on_takeover = announce_on_takeover
        self._reassert_every = reassert_every
        self._reasserted: dict[tuple[IPAddress, str], float] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._announced: dict[IPAddress, set[str]] = {}
        # Published copy for the receive path: replaced, never mutated, so reading it needs
        # no lock.
        self._view: Mapping[IPAddress, frozenset[str]] = MappingProxyType({})
        self._responders: dict[str, _Responder] = {}
        self._orphans: set[str] = set()  # interfaces with announcements but no live sockets
        self._retired = Counters()  # counters of responders that were closed
        self._to_register: list[tuple[socket.socket, _Responder]] = []
        self._to_unregister: list[socket.socket] = []
        self._logged: dict[tuple[Verdict, IPAddress | None, bytes | None], float] = {}
        self._closed = False
        self._failing = False
        # (interface, IP version) -> (when its address set last changed, a change number);
        # the thread rebuilds the exact BPF filter once it has been stable for
        # _FILTER_SETTLE seconds, and attaches it only if no change came meanwhile.
        self._dirty_filters: dict[tuple[str, int], tuple[float, int]] = {}
        self._changes = itertools.count()
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1

    # -- the Announcer protocol -------------------------------------------------------------

    def announce(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        """Answer for ``ip`` on ``interface`` from now on, and announce it (idempotent)."""
        ip = check_address(ip)
        with self._lock:
            if self._closed:
                raise AnnouncerClosedError("the announcer is closed")
            interfaces = self._announced.get(ip)
            if interfaces is not None and interface in interfaces:
                return
            created = interface not in self._responders
            responder = self._responder(interface)
            was_open = responder.open_sockets()
            try:
                sock = responder.socket_for(ip)
            except BaseException:
                if created:
                    del self._responders[interface]
                    responder.close()
                raise
            if sock not in was_open:
                self._to_register.append((sock, responder))
                self._refresh_views()
            if isinstance(ip, IPv6Address):
                self._join(responder, ip)
            self._announced.setdefault(ip, set()).add(interface)
            self._publish()
            responder.table.add(ip)
            self._filter_changed(responder, ip, added=True)
            key = (ip, interface)
            if self._announce_on_takeover:
                self._send_round(responder, ip)
                self._schedule.start(key, self._clock())
            log.info("answering for %s on %s (%s)", ip, interface, frames.format_mac(responder.mac))
            self._ensure_thread()
        self._wake()

    def withdraw(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        """Stop answering and announcing ``ip`` on ``interface`` at once (no-op if it is not
        announced there)."""
        with self._lock:
            interfaces = self._announced.get(ip)
            if interfaces is None or interface not in interfaces:
                return
            interfaces.discard(interface)
            if not interfaces:
                del self._announced[ip]
            self._publish()
            self._schedule.cancel((ip, interface))
            self._reasserted.pop((ip, interface), None)
            responder = self._responders.get(interface)
            if responder is not None:
                responder.table.remove(ip)
                self._filter_changed(responder, ip, added=False)
                if isinstance(ip, IPv6Address):
                    responder.memberships.leave(frames.solicited_node_group(ip))
            log.info("stopped answering for %s on %s", ip, interface)
        self._wake()  # the filter is rebuilt by the thread

    def close(self) -> None:
        """Stop answering for everything at once, stop the thread, close every socket."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._announced.clear()
            self._publish()
            self._schedule.clear()
            thread = self._thread
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            for responder in self._responders.values():
                self._retired += responder.tally.snapshot()
                responder.close()
            self._responders.clear()
            for sock in self._to_unregister:
                sock.close()
            self._to_unregister.clear()
            self._to_register.clear()
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    # -- introspection ----------------------------------------------------------------------

    @property
    def announced(self) -> frozenset[tuple[IPAddress, str]]:
        """What is announced now, as ``(ip, interface)`` pairs."""
        view = self._view
        return frozenset((ip, name) for ip, names in view.items() for name in names)

    @property
    def healthy(self) -> bool:
        """False while the receiving thread is down after an unexpected error (it is being
        restarted: see ``Counters.thread_restarts`` and the log), or once it is gone;
        True otherwise, including before the first announcement and after :meth:`close`."""
        with self._lock:
            if self._closed or self._thread is None:
                return True
            return not self._failing and self._thread.is_alive()

    def counters(self, interface: str | None = None) -> Counters:
        """What has been sent and seen, in total or on one ``interface``."""
        with self._lock:
            if interface is not None:
                responder = self._responders.get(interface)
                return responder.tally.snapshot() if responder is not None else Counters()
            total = self._retired
            for responder in self._responders.values():
                total += responder.tally.snapshot()
            return total

    def __enter__(self) -> L2Announcer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers called with the lock held -------------------------------------------------

    def _responder(self, interface: str) -> _Responder:
        responder = self._responders.get(interface)
        if responder is None:
            responder = _Responder(interface)
            self._responders[interface] = responder
            self._orphans.discard(interface)
        return responder

    def _refresh_views(self) -> None:
        own = frozenset(r.mac for r in self._responders.values() if r.mac)
        for responder in self._responders.values():
            if responder.mac:
                responder.view = InterfaceView(responder.name, responder.mac, own)
                table = ReplyTable(responder.mac, own)
                for ip, names in self._announced.items():
                    if responder.name in names:
                        table.add(ip)
                responder.table = table

    def _filter_changed(self, responder: _Responder, ip: IPAddress, *, added: bool) -> None:
        """The address set of ``ip``'s family changed on ``responder``: an added address
        must pass at once, so the cheap prefilter replaces the exact filter until the
        thread rebuilds it; a removed one may keep passing meanwhile (user space drops it)."""
        ndp = isinstance(ip, IPv6Address)
        sock = responder.ndp if ndp else responder.arp
        if sock is None:
            return
        if added:
            try:
                sockets.attach_filter(sock, bpf.prefilter(ndp))
            except OSError as error:
                log.warning("cannot attach a filter on %s: %s", responder.name, error.strerror)
        self._dirty_filters[(responder.name, ip.version)] = (self._clock(), next(self._changes))

    @property
    def filters_pending(self) -> bool:
        """True while an interface's exact BPF filter waits to be rebuilt (the cheap
        prefilter is attached meanwhile); for tests and debugging."""
        with self._lock:
            return bool(self._dirty_filters)

    def _publish(self) -> None:
        self._view = MappingProxyType(
            {ip: frozenset(names) for ip, names in self._announced.items()}
        )

    def _join(self, responder: _Responder, ip: IPv6Address) -> None:
        group = frames.solicited_node_group(ip)
        try:
            responder.memberships.join(group)
        except OSError as error:
            # Answers still flow where the switch floods multicast; say why they may not.
            log.warning(
                "cannot join %s on %s (%s): an MLD-snooping switch may not deliver "
                "solicitations for %s",
                group,
                responder.name,
                error.strerror,
                ip,
            )

    def _count(self, responder: _Responder, **increments: int) -> None:
        tally = responder.tally
        for name, increment in increments.items():
            setattr(tally, name, getattr(tally, name) + increment)

    def _send(self, responder: _Responder, sock: socket.socket | None, frame: bytes) -> bool:
        if sock is None:
            return False
        try:
            sock.send(frame, socket.MSG_DONTWAIT)
        except OSError as error:
            self._count(responder, send_errors=1)
            log.warning("cannot send on %s: %s", responder.name, error.strerror)
            return False
        return True

    def _send_round(self, responder: _Responder, ip: IPAddress) -> None:
        if isinstance(ip, IPv4Address):
            frame = frames.gratuitous_arp_request(responder.mac, ip).encode()
            if self._send(responder, responder.arp, frame):
                self._count(responder, arp_announcements=1)
            return
        source = sockets.link_local_address(responder.name)
        frame = frames.unsolicited_advertisement(responder.mac, ip, src=source).encode()
        if self._send(responder, responder.ndp, frame):
            self._count(responder, ndp_announcements=1)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._supervise, name="l2-announcer", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"\0")

    # -- the background thread -------------------------------------------------------------

    def _supervise(self) -> None:
        """Run the receive loop; if it fails on an unexpected error, log it, count it and
        start it again (after 0.1 s, doubling up to 5 s while it keeps failing at once), so
        that one bad frame or a bug never leaves the addresses silently unanswered."""
        backoff = _RESTART_FIRST
        while True:
            started = time.monotonic()
            try:
                self._run()
                return  # closed
            except Exception:
                log.exception("the L2 announcer's thread failed; restarting it")
            with self._lock:
                self._retired += Counters(thread_restarts=1)
                self._failing = True
                if self._closed:
                    return
            if time.monotonic() - started > _RESTART_RESET:
                backoff = _RESTART_FIRST
            time.sleep(backoff)
            backoff = min(backoff * 2, _RESTART_MAX)
            log.warning("the L2 announcer's thread restarted; answering again")

    def _run(self) -> None:
        poller = select.epoll()
        handlers: _Handlers = {self._wake_r: None}
        poller.register(self._wake_r, select.EPOLLIN)
        next_revive = self._clock() + _REVIVE_EVERY
        poll_until = -math.inf  # busy-poll until then (the last frame + busy_poll)
        with self._lock:
            # On a restart, every socket opened so far is registered again.
            self._to_register = [
                (sock, responder)
                for responder in self._responders.values()
                for sock in responder.open_sockets()
            ]
            self._failing = False
        try:
            while True:
                with self._lock:
                    if self._closed:
                        return
                    self._update_registrations(poller, handlers)
                    deadline = self._schedule.next_deadline()
                    if self._orphans:
                        deadline = next_revive if deadline is None else min(deadline, next_revive)
                    if self._dirty_filters:
                        settled = min(t for t, _ in self._dirty_filters.values()) + _FILTER_SETTLE
                        deadline = settled if deadline is None else min(deadline, settled)
                now = self._clock()
                if now < poll_until:
                    events = self._poll_busily(poller, poll_until, deadline)
                else:
                    events = poller.poll(-1 if deadline is None else max(0.0, deadline - now))
                for fd, _ in events:
                    entry = handlers.get(fd)
                    if entry is None:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                    elif self._receive(*entry) and self._busy_poll:
                        poll_until = self._clock() + self._busy_poll
                now = self._clock()
                self._send_due_rounds(now)
                if self._dirty_filters:
                    self._rebuild_filters(now)
                if self._orphans and now >= next_revive:
                    next_revive = now + _REVIVE_EVERY
                    self._revive()
        finally:
            poller.close()

    def _update_registrations(self, poller: select.epoll, handlers: _Handlers) -> None:
        """Add the sockets opened since the last pass, drop (and close) the dead ones."""
        for sock, responder in self._to_register:
            fd = sock.fileno()
            current = handlers.get(fd)
            if fd < 0 or (current is not None and current[0] is sock):
                continue  # closed meanwhile, or registered already
            if fd in handlers:  # a closed socket's number, reused: epoll dropped the old one
                with contextlib.suppress(OSError):
                    poller.unregister(fd)
            poller.register(fd, select.EPOLLIN)
            handlers[fd] = (sock, responder)
        self._to_register.clear()
        for sock in self._to_unregister:
            fd = sock.fileno()
            if fd >= 0 and handlers.pop(fd, None) is not None:
                with contextlib.suppress(OSError):
                    poller.unregister(fd)
            sock.close()
        self._to_unregister.clear()

    def _poll_busily(
        self, poller: select.epoll, until: float, deadline: float | None
    ) -> list[tuple[int, int]]:
        """Poll without sleeping until something is ready, ``until`` or ``deadline``."""
        if deadline is not None:
            until = min(until, deadline)
        poll, clock = poller.poll, self._clock
        while not (events := poll(0)) and clock() < until:
            pass
        return events

    def _send_due_rounds(self, now: float) -> None:
        with self._lock:
            for ip, interface in self._schedule.due(now):
                responder = self._responders.get(interface)
                if responder is not None and interface in self._announced.get(ip, ()):
                    self._send_round(responder, ip)

    def _rebuild_filters(self, now: float) -> None:
        """Attach the exact filter where the address set has been stable long enough."""
        jobs = []
        with self._lock:
            for key, stamp in list(self._dirty_filters.items()):
                if now - stamp[0] < _FILTER_SETTLE:
                    continue
                name, version = key
                responder = self._responders.get(name)
                sock = (
                    None if responder is None else responder.arp if version == 4 else responder.ndp
                )
                if responder is None or sock is None:
                    del self._dirty_filters[key]
                    continue
                packed = [ip.packed for ip in responder.table.addresses() if ip.version == version]
                jobs.append((key, stamp, responder, sock, packed))
        for key, stamp, responder, sock, packed in jobs:
            program = bpf.arp_filter(packed) if key[1] == 4 else bpf.ndp_filter(packed)
            with self._lock:
                if self._dirty_filters.get(key) != stamp:
                    continue  # changed again meanwhile: rebuilt later
                del self._dirty_filters[key]
                if sock not in responder.open_sockets():
                    continue
                try:
                    sockets.attach_filter(sock, program)
                except OSError as error:  # the prefilter stays: correct, only slower
                    log.warning("cannot attach a filter on %s: %s", key[0], error.strerror)

    def _receive(self, sock: socket.socket, responder: _Responder) -> int:
        """Read until the socket is empty (at most _RECV_BATCH frames per pass): answer the
        plain requests from the prebuilt table, ask ``decide`` about everything else.
        Returns the number of frames read."""
        recvfrom = sock.recvfrom
        tally = responder.tally
        for count in range(_RECV_BATCH):
            try:
                frame, address = recvfrom(_RECV_SIZE)
            except BlockingIOError:
                return count
            except OSError as error:
                self._socket_error(sock, responder, error)
                return count
            tally.received += 1
            fast = responder.table.answer(frame, address[2])
            if fast is not None:
                reply, key, _ = fast
                with self._lock:
                    # Re-check under the lock: a withdraw that returned must never be
                    # answered after (withdraw updates the current table under the lock).
                    if not responder.table.holds(key):
                        continue
                    try:
                        sock.send(reply, socket.MSG_DONTWAIT)
                    except OSError as error:
                        tally.send_errors += 1
                        log.warning("cannot send on %s: %s", responder.name, error.strerror)
                        continue
                    if len(key) == 4:
                        tally.arp_answered += 1
                    else:
                        tally.ndp_answered += 1
                continue
            decision = decide(frame, address[2], responder.view, self._view)
            if decision.verdict is Verdict.ANSWER:
                self._answer(sock, responder, decision)
            elif decision.verdict is Verdict.CONFLICT:
                self._conflict(responder, decision)
            elif decision.verdict is Verdict.PROBE and self._should_log(decision):
                log.info(
                    "%s probes for %s on %s: someone may be about to configure an address "
                    "this node announces (probes are not answered)",
                    frames.format_mac(decision.peer_mac or b""),
                    decision.address,
                    responder.name,
                )
        return _RECV_BATCH

    def _answer(self, sock: socket.socket, responder: _Responder, decision: Decision) -> None:
        assert decision.reply is not None
        assert decision.address is not None
        with self._lock:
            # Re-check under the lock: a withdraw that returned must never be answered after.
            if responder.name not in self._announced.get(decision.address, ()):
                return
            if self._send(responder, sock, decision.reply):
                if isinstance(decision.address, IPv4Address):
                    self._count(responder, arp_answered=1)
                else:
                    self._count(responder, ndp_answered=1)

    def _conflict(self, responder: _Responder, decision: Decision) -> None:
        """Another MAC claims an address announced here: count it, log it (rate-limited),
        and re-assert the address with an announcement round, at most once every
        ``reassert_every`` seconds per address and interface, so that clients the other
        frame moved come back while two hosts claiming one address (split brain, a static
        address typed twice) cannot turn into a storm."""
        address, peer = decision.address, decision.peer_mac
        assert address is not None
        assert peer is not None
        now = self._clock()
        key = (address, responder.name)
        reasserted = False
        with self._lock:
            self._count(responder, conflicts=1)
            if (
                self._announce_on_takeover
                and responder.name in self._announced.get(address, ())
                and now - self._reasserted.get(key, -math.inf) >= self._reassert_every
            ):
                self._reasserted[key] = now
                self._send_round(responder, address)
                self._count(responder, reasserts=1)
                reasserted = True
        if not (self._should_log(decision) or reasserted):
            return
        log.warning(
            "conflict: %s also claims %s on %s (this node announces it from %s); "
            "clients may reach either host%s",
            frames.format_mac(peer),
            address,
            responder.name,
            frames.format_mac(responder.mac),
            "; re-asserting with an announcement round" if reasserted else "",
        )

    def _should_log(self, decision: Decision) -> bool:
        """At most one log line per (verdict, address, MAC) every 10 s: a competing
        responder answers every request, and each answer would otherwise be a line."""
        now = self._clock()
        key = (decision.verdict, decision.address, decision.peer_mac)
        with self._lock:
            if now - self._logged.get(key, -_LOG_EVERY) < _LOG_EVERY:
                return False
            if len(self._logged) > 1024:  # many forged MACs: keep memory bounded
                self._logged.clear()
            self._logged[key] = now
        return True

    def _socket_error(self, sock: socket.socket, responder: _Responder, error: OSError) -> None:
        if error.errno == errno.ENETDOWN:
            try:
                alive = sockets.interface_index(responder.name) == responder.ifindex
            except ValueError:
                alive = False
            if alive:
                # The link went down; the kernel rebinds the socket when it comes back up.
                log.warning("interface %s is down", responder.name)
                return
        with self._lock:
            if self._responders.get(responder.name) is not responder:
                return  # an old socket of an interface already handled
            log.warning("interface %s is gone (%s); will retry", responder.name, error.strerror)
            del self._responders[responder.name]
            self._retired += responder.tally.snapshot()
            self._to_unregister.extend(responder.open_sockets())
            responder.arp = responder.ndp = None
            responder.memberships.close()
            if any(responder.name in names for names in self._announced.values()):
                self._orphans.add(responder.name)

    def _revive(self) -> None:
        """Reopen interfaces that vanished while they had announcements (a link recreated
        with the same name), and announce their addresses again."""
        with self._lock:
            for name in sorted(self._orphans):
                ips = [ip for ip, names in self._announced.items() if name in names]
                if not ips:
                    self._orphans.discard(name)
                    continue
                try:
                    responder = self._responder(name)
                    for ip in ips:
                        was_open = responder.open_sockets()
                        sock = responder.socket_for(ip)
                        if sock not in was_open:
                            self._to_register.append((sock, responder))
                        if isinstance(ip, IPv6Address):
                            self._join(responder, ip)
                except (OSError, ValueError) as error:
                    failed = self._responders.pop(name, None)
                    if failed is not None:
                        failed.close()
                    self._to_register = [
                        entry for entry in self._to_register if entry[1] is not failed
                    ]
                    self._orphans.add(name)
                    log.debug("interface %s still unavailable: %s", name, error)
                    continue
                self._refresh_views()
                log.info("interface %s is back; answering again", name)
                for ip in ips:
                    # The new sockets carry the prefilter: rebuild the exact one.
                    self._dirty_filters[(name, ip.version)] = (self._clock(), next(self._changes))
                    if self._announce_on_takeover:
                        self._send_round(responder, ip)
                        self._schedule.start((ip, name), self._clock())
