"""The Announcer contract, run against every implementation.

``MockAnnouncer`` is observed through what it records; ``L2Announcer`` on the wire: a raw
client on the other end of a veth asks who has the address (ARP request or Neighbor
Solicitation) and the test looks at the answer. The L2 runs need root (a network namespace,
``m4k``) and are skipped without it (failed when ``CI`` is set).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Protocol

import pytest

from announcers.arp import L2Announcer
from announcers.base import Announcer, AnnouncerClosedError, IPAddress, UnknownInterfaceError
from announcers.mock import MockAnnouncer
from tests.support import l2lab, netns

FIRST, SECOND = (ours for ours, _ in l2lab.KIT_PAIRS)
UNKNOWN = "m4nope0"
ADDRESSES: dict[str, IPAddress] = {
    "ipv4": IPv4Address("10.46.0.100"),
    "ipv6": IPv6Address("fd00:46::100"),
}
OTHER: dict[str, IPAddress] = {
    "ipv4": IPv4Address("10.46.0.101"),
    "ipv6": IPv6Address("fd00:46::101"),
}


class Harness(Protocol):
    """Makes announcers of one kind and tells whether one answers for an address."""

    def new(self) -> Announcer: ...

    def answers(self, announcer: Announcer, ip: IPAddress, interface: str) -> bool: ...


class MockHarness:
    def new(self) -> Announcer:
        return MockAnnouncer(interfaces=[FIRST, SECOND])

    def answers(self, announcer: Announcer, ip: IPAddress, interface: str) -> bool:
        assert isinstance(announcer, MockAnnouncer)
        return announcer.is_announced(ip, interface)


class WireHarness:
    def __init__(self) -> None:
        self.clients = {ours: l2lab.WireClient(theirs) for ours, theirs in l2lab.KIT_PAIRS}

    def new(self) -> Announcer:
        return L2Announcer()

    def answers(self, announcer: Announcer, ip: IPAddress, interface: str) -> bool:
        return self.clients[interface].who_has(ip) is not None

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture(params=["mock", pytest.param("l2", marks=pytest.mark.netns)])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "mock":
        yield MockHarness()
        return
    request.getfixturevalue("kit")
    with netns.entered(l2lab.KIT_NS):
        wire = WireHarness()
        try:
            yield wire
        finally:
            wire.close()


@pytest.fixture
def announcer(harness: Harness) -> Iterator[Announcer]:
    made = harness.new()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=list(ADDRESSES))
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def vip(family: str) -> IPAddress:
    return ADDRESSES[family]


@pytest.fixture
def other(family: str) -> IPAddress:
    return OTHER[family]


def test_implements_the_protocol(announcer: Announcer) -> None:
    assert isinstance(announcer, Announcer)


def test_nothing_is_answered_before_announce(
    harness: Harness, announcer: Announcer, vip: IPAddress
) -> None:
    assert not harness.answers(announcer, vip, FIRST)


def test_announced_address_is_answered(
    harness: Harness, announcer: Announcer, vip: IPAddress
) -> None:
    announcer.announce(vip, FIRST)
    assert harness.answers(announcer, vip, FIRST)


def test_only_announced_addresses_are_answered(
    harness: Harness, announcer: Announcer, vip: IPAddress, other: IPAddress
) -> None:
    announcer.announce(vip, FIRST)
    assert not harness.answers(announcer, other, FIRST)


def test_withdraw_stops_answering(harness: Harness, announcer: Announcer, vip: IPAddress) -> None:
    announcer.announce(vip, FIRST)
    assert harness.answers(announcer, vip, FIRST)
    announcer.withdraw(vip, FIRST)
    assert not harness.answers(announcer, vip, FIRST)


def test_announcing_twice_is_announcing_once(
    harness: Harness, announcer: Announcer, vip: IPAddress
) -> None:
    announcer.announce(vip, FIRST)
    announcer.announce(vip, FIRST)
    announcer.withdraw(vip, FIRST)
    assert not harness.answers(announcer, vip, FIRST)


def test_withdrawing_what_is_not_announced_is_a_noop(
    harness: Harness, announcer: Announcer, vip: IPAddress, other: IPAddress
) -> None:
    announcer.announce(vip, FIRST)
    announcer.withdraw(other, FIRST)
    announcer.withdraw(vip, SECOND)
    assert harness.answers(announcer, vip, FIRST)


def test_address_is_answered_only_on_its_interface(
    harness: Harness, announcer: Announcer, vip: IPAddress
) -> None:
    announcer.announce(vip, FIRST)
    announcer.announce(OTHER["ipv4"], SECOND)  # the second interface is in use too
    assert not harness.answers(announcer, vip, SECOND)


def test_withdraw_on_one_interface_keeps_the_other(
    harness: Harness, announcer: Announcer, vip: IPAddress
) -> None:
    announcer.announce(vip, FIRST)
    announcer.announce(vip, SECOND)
    announcer.withdraw(vip, SECOND)
    assert harness.answers(announcer, vip, FIRST)
    assert not harness.answers(announcer, vip, SECOND)


def test_announce_again_after_withdraw_answers_again(
    harness: Harness, announcer: Announcer, vip: IPAddress
) -> None:
    announcer.announce(vip, FIRST)
    announcer.withdraw(vip, FIRST)
    announcer.announce(vip, FIRST)
    assert harness.answers(announcer, vip, FIRST)


def test_close_stops_answering(harness: Harness, announcer: Announcer, vip: IPAddress) -> None:
    announcer.announce(vip, FIRST)
    announcer.close()
    assert not harness.answers(announcer, vip, FIRST)


def test_close_twice_and_withdraw_after_close_are_noops(
    announcer: Announcer, vip: IPAddress
) -> None:
    announcer.announce(vip, FIRST)
    announcer.close()
    announcer.close()
    announcer.withdraw(vip, FIRST)


def test_announce_after_close_raises(announcer: Announcer, vip: IPAddress) -> None:
    announcer.close()
    with pytest.raises(AnnouncerClosedError):
        announcer.announce(vip, FIRST)


def test_unknown_interface_raises_and_announces_nothing(
    harness: Harness, announcer: Announcer, vip: IPAddress
) -> None:
    with pytest.raises(UnknownInterfaceError):
        announcer.announce(vip, UNKNOWN)
    announcer.announce(OTHER["ipv4"], FIRST)  # still usable
    assert not harness.answers(announcer, vip, FIRST)


def test_concurrent_callers_end_in_the_last_state_each_asked_for(
    harness: Harness, announcer: Announcer, family: str
) -> None:
    base = int(ADDRESSES[family])
    kept = [ip_address(base + 10 + i) for i in range(4)]
    dropped = [ip_address(base + 20 + i) for i in range(4)]

    def worker(keep: IPAddress, drop: IPAddress) -> None:
        for _ in range(5):
            announcer.announce(drop, FIRST)
            announcer.announce(keep, FIRST)
            announcer.withdraw(drop, FIRST)

    threads = [
        threading.Thread(target=worker, args=pair) for pair in zip(kept, dropped, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [harness.answers(announcer, ip, FIRST) for ip in kept + dropped] == [True] * 4 + [
        False
    ] * 4
