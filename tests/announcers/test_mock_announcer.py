"""MockAnnouncer's own features: the ordered record of calls and scriptable failures.

Its Announcer behaviour is checked by the shared contract suite (test_announcer_contract.py).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from announcers.base import AnnouncerClosedError, UnknownInterfaceError
from announcers.mock import Call, MockAnnouncer

VIP = IPv4Address("192.0.2.10")
VIP6 = IPv6Address("2001:db8::10")


def test_calls_are_recorded_in_order() -> None:
    mock = MockAnnouncer()
    mock.announce(VIP, "eth0")
    mock.announce(VIP6, "eth1")
    mock.withdraw(VIP, "eth0")
    mock.close()
    assert mock.calls == (
        Call("announce", VIP, "eth0"),
        Call("announce", VIP6, "eth1"),
        Call("withdraw", VIP, "eth0"),
        Call("close"),
    )


def test_announced_is_what_is_announced_now() -> None:
    mock = MockAnnouncer()
    mock.announce(VIP, "eth0")
    mock.announce(VIP6, "eth0")
    mock.withdraw(VIP, "eth0")
    assert mock.announced == {(VIP6, "eth0")}


def test_scripted_failure_raises_the_given_error_and_changes_nothing() -> None:
    mock = MockAnnouncer()
    error = OSError("link down")
    mock.fail("announce", error=error)
    with pytest.raises(OSError, match="link down") as raised:
        mock.announce(VIP, "eth0")
    assert raised.value is error
    assert mock.announced == frozenset()


def test_failed_calls_are_recorded_as_failed() -> None:
    mock = MockAnnouncer()
    mock.fail("withdraw")
    mock.announce(VIP, "eth0")
    with pytest.raises(OSError, match="scripted withdraw failure"):
        mock.withdraw(VIP, "eth0")
    assert mock.calls[-1] == Call("withdraw", VIP, "eth0", failed=True)


def test_failure_is_consumed_after_the_given_number_of_calls() -> None:
    mock = MockAnnouncer()
    mock.fail("announce", times=2)
    outcomes = []
    for _ in range(3):
        try:
            mock.announce(VIP, "eth0")
            outcomes.append("ok")
        except OSError:
            outcomes.append("failed")
    assert outcomes == ["failed", "failed", "ok"]


def test_failure_matches_only_the_given_address_and_interface() -> None:
    mock = MockAnnouncer()
    mock.fail("announce", ip=VIP, interface="eth1")
    mock.announce(VIP, "eth0")
    mock.announce(VIP6, "eth1")
    with pytest.raises(OSError, match="scripted announce failure"):
        mock.announce(VIP, "eth1")
    assert mock.announced == {(VIP, "eth0"), (VIP6, "eth1")}


def test_failing_close_keeps_the_announcements() -> None:
    mock = MockAnnouncer()
    mock.announce(VIP, "eth0")
    mock.fail("close")
    with pytest.raises(OSError, match="scripted close failure"):
        mock.close()
    assert (mock.closed, mock.announced) == (False, frozenset({(VIP, "eth0")}))


def test_times_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MockAnnouncer().fail("announce", times=0)


def test_any_interface_exists_unless_a_list_is_given() -> None:
    mock = MockAnnouncer()
    mock.announce(VIP, "whatever0")
    assert mock.is_announced(VIP, "whatever0")


def test_unknown_interface_is_recorded_as_a_failed_call() -> None:
    mock = MockAnnouncer(interfaces=["eth0"])
    with pytest.raises(UnknownInterfaceError):
        mock.announce(VIP, "eth9")
    assert mock.calls == (Call("announce", VIP, "eth9", failed=True),)


def test_announce_after_close_is_recorded_as_a_failed_call() -> None:
    mock = MockAnnouncer()
    mock.close()
    with pytest.raises(AnnouncerClosedError):
        mock.announce(VIP, "eth0")
    assert mock.calls[-1] == Call("announce", VIP, "eth0", failed=True)


def test_clear_calls_keeps_the_announcements() -> None:
    mock = MockAnnouncer()
    mock.announce(VIP, "eth0")
    mock.clear_calls()
    assert (mock.calls, mock.announced) == ((), frozenset({(VIP, "eth0")}))
