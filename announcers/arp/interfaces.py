"""Which interfaces to announce on, chosen as MetalLB's speaker chooses them.

An interface is skipped when its name matches the exclusion patterns (MetalLB's shipped
default: container bridges, veths, tunnels, ``lo``, ...), when it is administratively down,
when it is enslaved to a bridge, bond or VRF (the master device is used instead: a slave
answering with its own MAC confuses everyone, MetalLB issue #316), or when it has the
``NOARP`` flag (``kube-ipvs0``). Of the interfaces left, IPv4 is announced on those with
``IFF_BROADCAST`` and IPv6 on those with a link-local address. No IP address is needed on
the interface (VLAN interfaces without one work).

An explicit list of interface names overrides all of that: those interfaces are used,
whatever their flags, and a name that does not exist is an error.

The decision is pure (:func:`skip_reason`, :func:`select_interfaces`); :func:`read_interfaces`
reads ``/sys/class/net`` and ``/proc/net/if_inet6``, and :func:`discover_interfaces` does
both.

>>> up = IFF_UP | IFF_BROADCAST
>>> infos = [
...     InterfaceInfo("eth0", flags=up, enslaved=False, link_local=True),
...     InterfaceInfo("eth1", flags=up, enslaved=True, link_local=True),
...     InterfaceInfo("veth12", flags=up, enslaved=False, link_local=True),
... ]
>>> [(i.name, i.ipv4, i.ipv6) for i in select_interfaces(infos)]
[('eth0', True, True)]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from announcers.base import UnknownInterfaceError

__all__ = [
    "DEFAULT_EXCLUDE",
    "IFF_BROADCAST",
    "IFF_LOOPBACK",
    "IFF_NOARP",
    "IFF_UP",
    "InterfaceInfo",
    "SelectedInterface",
    "SkipReason",
    "discover_interfaces",
    "read_interfaces",
    "select_interfaces",
    "skip_reason",
]

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80

DEFAULT_EXCLUDE: tuple[str, ...] = (
    r"^docker.*",
    r"^cbr.*",
    r"^dummy.*",
    r"^virbr.*",
    r"^lxcbr.*",
    r"^veth.*",
    r"^lo$",
    r"^cali.*",
    r"^tunl.*",
    r"^flannel.*",
    r"^kube-ipvs.*",
    r"^cni.*",
    r"^nodelocaldns.*",
    r"^lxc.*",
)
"""MetalLB's shipped ``announcedInterfacesToExclude`` patterns (``excludel2.yaml``)."""

_SYSFS = Path("/sys/class/net")
_IF_INET6 = Path("/proc/net/if_inet6")
_SCOPE_LINK = 0x20


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    """What discovery needs to know about one interface.

    ``flags``: the ``IFF_*`` flags (``/sys/class/net/<if>/flags``); ``enslaved``: it has a
    master (``/sys/class/net/<if>/master`` exists); ``link_local``: it has an IPv6
    link-local address.
    """

    name: str
    flags: int
    enslaved: bool
    link_local: bool


@dataclass(frozen=True, slots=True)
class SelectedInterface:
    """An interface to announce on, and for which families."""

    name: str
    ipv4: bool
    ipv6: bool


class SkipReason(StrEnum):
    """Why discovery skipped an interface."""

    EXCLUDED = "name matches an exclusion pattern"
    DOWN = "administratively down"
    ENSLAVED = "enslaved to a bridge, bond or VRF"
    NOARP = "NOARP flag set"


def skip_reason(info: InterfaceInfo, exclude: Sequence[str] = DEFAULT_EXCLUDE) -> SkipReason | None:
    """Why MetalLB would not announce on ``info``, or ``None`` if it would."""
    if any(re.search(pattern, info.name) for pattern in exclude):
        return SkipReason.EXCLUDED
    if not info.flags & IFF_UP:
        return SkipReason.DOWN
    if info.enslaved:
        return SkipReason.ENSLAVED
    if info.flags & IFF_NOARP:
        return SkipReason.NOARP
    return None


def select_interfaces(
    infos: Iterable[InterfaceInfo],
    *,
    explicit: Sequence[str] | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
) -> list[SelectedInterface]:
    """The interfaces to announce on, in the order of ``infos`` (or of ``explicit``).

    With ``explicit``, exactly those interfaces, for both families; a name missing from
    ``infos`` raises :class:`~announcers.base.UnknownInterfaceError`. Without, MetalLB's
    rules (see the module documentation); interfaces that would serve no family are left out.
    """
    by_name = {info.name: info for info in infos}
    if explicit is not None:
        missing = [name for name in explicit if name not in by_name]
        if missing:
            raise UnknownInterfaceError(f"unknown interface(s): {', '.join(missing)}")
        return [SelectedInterface(name, ipv4=True, ipv6=True) for name in dict.fromkeys(explicit)]
    selected = []
    for info in by_name.values():
        if skip_reason(info, exclude) is not None:
            continue
        ipv4 = bool(info.flags & IFF_BROADCAST)
        if ipv4 or info.link_local:
            selected.append(SelectedInterface(info.name, ipv4=ipv4, ipv6=info.link_local))
    return selected


def _link_local_interfaces(if_inet6: Path) -> set[str]:
    names: set[str] = set()
    try:
        lines = if_inet6.read_text().splitlines()
    except FileNotFoundError:  # IPv6 disabled in this kernel
        return names
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and int(fields[3], 16) == _SCOPE_LINK:
            names.add(fields[5])
    return names


def read_interfaces(sysfs: Path = _SYSFS, if_inet6: Path = _IF_INET6) -> list[InterfaceInfo]:
    """Every interface of this network namespace, sorted by name, read from sysfs/procfs."""
    link_local = _link_local_interfaces(if_inet6)
    infos = []
    for path in sorted(sysfs.iterdir()):
        try:
            flags = int((path / "flags").read_text().strip(), 16)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            continue  # not an interface (or vanished while we looked)
        infos.append(
            InterfaceInfo(
                name=path.name,
                flags=flags,
                enslaved=(path / "master").exists(),
                link_local=path.name in link_local,
            )
        )
    return infos


def discover_interfaces(
    explicit: Sequence[str] | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    *,
    sysfs: Path = _SYSFS,
    if_inet6: Path = _IF_INET6,
) -> list[SelectedInterface]:
    """:func:`select_interfaces` over :func:`read_interfaces`: the interfaces of this host
    to announce on. MetalLB rescans every 10 s; call this again to follow changes."""
    return select_interfaces(read_interfaces(sysfs, if_inet6), explicit=explicit, exclude=exclude)
