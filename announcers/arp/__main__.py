"""``python -m announcers.arp --interface IFACE [--refresh SECONDS] [--busy-poll MICROSECONDS]
ADDRESS [ADDRESS ...]``

Answers ARP and NDP for the addresses on IFACE with IFACE's MAC, announces them at start
(a round at once, then every 1.1 s until 5 s have passed; with ``--refresh``, a round every
SECONDS afterwards), and runs until SIGTERM or SIGINT, which stop the answers at once and
exit 0. A bad address, an unknown interface or a missing CAP_NET_RAW is one line on stderr
and exit status 2, before any packet is sent. SIGHUP is ignored with a log line: the
interface and the addresses come from the command line, so there is nothing to re-read.

``--busy-poll MICROSECONDS`` (0, off, by default) keeps the responder polling for that long
after each frame instead of sleeping: answers in a few microseconds instead of after a
thread wake-up, for a whole core while requests keep coming that often (see
:class:`~announcers.arp.announcer.L2Announcer`).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import signal
import sys
from collections.abc import Sequence

from announcers.arp import sockets
from announcers.arp.announcer import L2Announcer, check_address
from announcers.base import IPAddress, UnknownInterfaceError

PROG = "python -m announcers.arp"
EXIT_USAGE = 2


class _UsageError(Exception):
    """A problem with the command line or the environment: one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Answer ARP and NDP for ADDRESS on IFACE, and announce it, until "
        "SIGTERM or SIGINT. Needs CAP_NET_RAW only; nothing is configured on IFACE.",
    )
    parser.add_argument("--interface", required=True, metavar="IFACE", help="the interface")
    parser.add_argument(
        "--refresh",
        metavar="SECONDS",
        help="after the announcements at start, announce again every SECONDS",
    )
    parser.add_argument(
        "--busy-poll",
        metavar="MICROSECONDS",
        help="after each frame, poll for this long instead of sleeping: lower latency for "
        "a whole core while requests keep coming (default 0: off)",
    )
    parser.add_argument("addresses", nargs="+", metavar="ADDRESS", help="IPv4 or IPv6 address")
    return parser


def _number(text: str) -> float:
    """``text`` as a float; NaN when it is not a number (the callers refuse NaN)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _refresh(text: str | None) -> float | None:
    if text is None:
        return None
    seconds = _number(text)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise _UsageError(f"--refresh needs a positive number of seconds, not {text!r}")
    return seconds


def _busy_poll(text: str | None) -> float:
    """``--busy-poll`` in seconds (0 without it)."""
    if text is None:
        return 0.0
    microseconds = _number(text)
    if not (microseconds >= 0 and math.isfinite(microseconds)):
        raise _UsageError(f"--busy-poll needs a number of microseconds >= 0, not {text!r}")
    return microseconds / 1e6


def _addresses(texts: Sequence[str]) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for text in texts:
        try:
            addresses.append(check_address(ipaddress.ip_address(text)))
        except ValueError as error:
            raise _UsageError(f"bad address {text!r}: {error}") from None
    return list(dict.fromkeys(addresses))


def _check_environment(interface: str) -> None:
    try:
        sockets.interface_index(interface)
    except UnknownInterfaceError:
        raise _UsageError(f"unknown interface {interface!r}") from None
    try:
        sockets.check_capability()
    except sockets.MissingCapabilityError:
        raise _UsageError(
            "missing capability CAP_NET_RAW: raw packet sockets need it "
            "(run as root, or grant CAP_NET_RAW)"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the announcer; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s", stream=sys.stderr
    )
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    taken_signals = stop_signals | {signal.SIGHUP}
    try:
        refresh = _refresh(args.refresh)
        busy_poll = _busy_poll(args.busy_poll)
        addresses = _addresses(args.addresses)
        _check_environment(args.interface)
        # Block the stop signals before any thread exists, so that every thread inherits the
        # mask and the main thread alone takes them, synchronously, with sigwait.
        signal.pthread_sigmask(signal.SIG_BLOCK, taken_signals)
        announcer = L2Announcer(refresh=refresh, busy_poll=busy_poll)
        try:
            for address in addresses:
                announcer.announce(address, args.interface)
        except (ValueError, PermissionError) as error:
            # Unsupported (not Ethernet) or vanished interface: nothing was sent.
            announcer.close()
            raise _UsageError(str(error)) from None
    except _UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    log = logging.getLogger("announcers.arp")
    if busy_poll:
        log.info("busy-polling for %g us after each frame", busy_poll * 1e6)
    log.info(
        "running: answering for %d address(es) on %s%s; SIGTERM or SIGINT stops",
        len(addresses),
        args.interface,
        "" if refresh is None else f", announcing again every {refresh:g} s",
    )
    try:
        while (received := signal.sigwait(taken_signals)) not in stop_signals:
            # A daemon convention asks for a reload on SIGHUP; there is nothing to reload,
            # and dying of it (the default action) would drop every address.
            log.info(
                "SIGHUP: ignored (the interface and addresses come from the command line; "
                "restart to change them)"
            )
    finally:
        announcer.close()
    log.info("%s: stopped answering", signal.Signals(received).name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
