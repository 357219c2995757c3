"""An in-memory :class:`~announcers.base.Announcer` for testing what sits above an announcer.

:class:`MockAnnouncer` keeps an ordered record of every call, knows what is announced now,
and can be scripted to fail, so that a speaker's error handling can be tested without raw
sockets.

>>> from ipaddress import ip_address
>>> mock = MockAnnouncer(interfaces=["eth0"])
>>> vip = ip_address("192.0.2.10")
>>> mock.announce(vip, "eth0")
>>> mock.is_announced(vip, "eth0")
True
>>> mock.fail("withdraw", error=OSError("boom"))
>>> try:
...     mock.withdraw(vip, "eth0")
... except OSError:
...     pass
>>> mock.is_announced(vip, "eth0")  # a failed call changes nothing
True
>>> [(call.method, call.failed) for call in mock.calls]
[('announce', False), ('withdraw', True)]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal, TypeAlias

from announcers.base import AnnouncerClosedError, IPAddress, UnknownInterfaceError

__all__ = ["Call", "Method", "MockAnnouncer"]

Method: TypeAlias = Literal["announce", "withdraw", "close"]


@dataclass(frozen=True, slots=True)
class Call:
    """One call made to a :class:`MockAnnouncer`, in the order it was made.

    ``ip`` and ``interface`` are ``None`` for ``close``. ``failed`` is true when the call
    raised (a scripted failure, an unknown interface, or an announce after close).
    """

    method: Method
    ip: IPAddress | None = None
    interface: str | None = None
    failed: bool = False


@dataclass(slots=True)
class _Failure:
    method: Method
    ip: IPAddress | None
    interface: str | None
    error: BaseException
    remaining: int

    def matches(self, method: Method, ip: IPAddress | None, interface: str | None) -> bool:
        return (
            self.method == method
            and (self.ip is None or self.ip == ip)
            and (self.interface is None or self.interface == interface)
        )


class MockAnnouncer:
    """Records announcements in memory; implements :class:`~announcers.base.Announcer`.

    ``interfaces``: when given, only these interfaces exist and announcing on any other
    raises :class:`~announcers.base.UnknownInterfaceError`, as the real announcer does for a
    missing interface. When omitted, every interface name is accepted.

    Thread-safe: every method may be called from any thread.
    """

    def __init__(self, interfaces: Iterable[str] | None = None) -> None:
        self._interfaces = None if interfaces is None else frozenset(interfaces)
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._announced: set[tuple[IPAddress, str]] = set()
        self._failures: list[_Failure] = []
        self._closed = False

    @property
    def calls(self) -> tuple[Call, ...]:
        """Every call so far, oldest first (failed ones included, marked ``failed``)."""
        with self._lock:
            return tuple(self._calls)

    @property
    def announced(self) -> frozenset[tuple[IPAddress, str]]:
        """What is announced now, as ``(ip, interface)`` pairs."""
        with self._lock:
            return frozenset(self._announced)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        with self._lock:
            return self._closed

    def is_announced(self, ip: IPAddress, interface: str) -> bool:
        """Whether ``ip`` is announced on ``interface`` now."""
        with self._lock:
            return (ip, interface) in self._announced

    def fail(
        self,
        method: Method,
        *,
        ip: IPAddress | None = None,
        interface: str | None = None,
        error: BaseException | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (matching ``ip``/``interface`` if given)
        raise ``error`` (default: an :class:`OSError`) without any effect.

        Failures are consumed in the order they were scripted.
        """
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        with self._lock:
            self._failures.append(
                _Failure(
                    method=method,
                    ip=ip,
                    interface=interface,
                    error=error if error is not None else OSError(f"scripted {method} failure"),
                    remaining=times,
                )
            )

    def clear_calls(self) -> None:
        """Forget the record of calls (what is announced stays)."""
        with self._lock:
            self._calls.clear()

    def announce(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        """Record the call and, unless it fails, announce ``ip`` on ``interface``."""
        with self._lock:
            self._raise_if_scripted("announce", ip, interface)
            if self._closed:
                self._calls.append(Call("announce", ip, interface, failed=True))
                raise AnnouncerClosedError("the announcer is closed")
            if self._interfaces is not None and interface not in self._interfaces:
                self._calls.append(Call("announce", ip, interface, failed=True))
                raise UnknownInterfaceError(f"unknown interface {interface!r}")
            self._calls.append(Call("announce", ip, interface))
            self._announced.add((ip, interface))

    def withdraw(self, ip: IPv4Address | IPv6Address, interface: str) -> None:
        """Record the call and, unless it fails, withdraw ``ip`` from ``interface``."""
        with self._lock:
            self._raise_if_scripted("withdraw", ip, interface)
            self._calls.append(Call("withdraw", ip, interface))
            self._announced.discard((ip, interface))

    def close(self) -> None:
        """Record the call and, unless it fails, withdraw everything for good."""
        with self._lock:
            self._raise_if_scripted("close", None, None)
            self._calls.append(Call("close"))
            self._announced.clear()
            self._closed = True

    def _raise_if_scripted(
        self, method: Method, ip: IPAddress | None, interface: str | None
    ) -> None:
        for failure in self._failures:
            if failure.matches(method, ip, interface):
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                self._calls.append(Call(method, ip, interface, failed=True))
                raise failure.error
