"""A naive first-fit allocator: MetalLB main's algorithm, written for the benchmark.

This is the comparison point of ``benchmarks/core_allocation.py``. It reproduces the *shape*
of MetalLB main's ``internal/allocator`` (docs/design/metallb-behaviour.md §3-§6, §10, and
"Complexity of
MetalLB's allocator"), not its every rule:

* a mutable allocator: ``allocated`` maps a Service key to its allocation, and per address
  three dictionaries hold the *recorded key* (sharing key, backend key), the *ports in use*
  (port -> Service key) and the *holders* (set of Service keys);
* an automatic allocation walks every auto-assign pool in config order, and inside a pool every
  CIDR from its first address up, probing each address until one is usable: there is no free
  list, no cursor and no index, so one allocation costs O(addresses in use before the first
  free one), and filling a pool one Service at a time costs O(n^2) probes;
  as in MetalLB, the search looks for a candidate of *both* families, even for a single-stack
  request;
* the explicit ``assign`` (what a restart does with the addresses in Service status) finds the
  owning pool by testing every CIDR of every pool, O(P * C);
* ``release`` is MetalLB's ``Unassign``: the recorded key of an address is forgotten when its
  port table empties.

It is deliberately *generous* to MetalLB: addresses are plain integers (MetalLB formats each
probed address as a string to look it up), so every probe costs a couple of dictionary lookups
and nothing else. The ratios the benchmark reports are therefore conservative.

Out of scope (the benchmark does not exercise them): service allocation (namespaces,
selectors, priorities), requested pools, PreferDualStack fallbacks, statistics beyond the
per-pool count of addresses in use. ``dual`` means RequireDualStack.

>>> ff = FirstFitAllocator([FirstFitPool("p", ("10.0.0.0/30",), avoid_buggy_ips=True)])
>>> ff.allocate("ns/a", ports=(("TCP", 80),))
(IPv4Address('10.0.0.1'),)
>>> ff.allocate("ns/b", ports=(("TCP", 80),))
(IPv4Address('10.0.0.2'),)
>>> ff.release("ns/a"), ff.allocate("ns/c", ports=(("TCP", 80),))
(True, (IPv4Address('10.0.0.1'),))
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

Address = IPv4Address | IPv6Address
PortSpec = tuple[str, int]
"""A port as (protocol, number), e.g. ``("TCP", 80)``."""
Family = Literal["ipv4", "ipv6", "dual"]

_V4, _V6 = 0, 1  # index of a family in the per-family tables


class FirstFitError(Exception):
    """An allocation the first-fit allocator refuses; the message is MetalLB's."""


@dataclass(frozen=True)
class FirstFitPool:
    """A pool for the baseline: a name, CIDRs in order, and the two flags that matter here."""

    name: str
    cidrs: tuple[str, ...]
    avoid_buggy_ips: bool = False
    auto_assign: bool = True


@dataclass(frozen=True)
class _Cidr:
    family: int
    first: int
    last: int
    avoid_buggy: bool


@dataclass(frozen=True)
class _Allocation:
    pool: int
    addresses: tuple[tuple[int, int], ...]  # (family, integer value), in order
    ports: tuple[PortSpec, ...]
    sharing_key: str
    backend_key: str


def _buggy(family: int, value: int) -> bool:
    """Whether an IPv4 address ends in .0 or .255 (never an IPv6 one)."""
    return family == _V4 and (value & 0xFF) in (0, 0xFF)


def _to_address(family: int, value: int) -> Address:
    return IPv4Address(value) if family == _V4 else IPv6Address(value)


class FirstFitAllocator:
    """MetalLB main's allocator, naively: per-address dictionaries and a scan from the start.

    Unlike :mod:`metallb_core`, it is mutated in place: ``allocate``, ``assign`` and
    ``release`` change it.
    """

    def __init__(self, pools: Sequence[FirstFitPool]) -> None:
        self.pools = tuple(pools)
        self._cidrs: list[list[_Cidr]] = []
        for pool in self.pools:
            nets = [ipaddress.ip_network(c, strict=False) for c in pool.cidrs]
            self._cidrs.append(
                [
                    _Cidr(
                        _V4 if net.version == 4 else _V6,
                        int(net.network_address),
                        int(net.broadcast_address),
                        pool.avoid_buggy_ips,
                    )
                    for net in nets
                ]
            )
        self._allocated: dict[str, _Allocation] = {}
        # Per family, per address: what MetalLB's allocator keeps for every address in use.
        self._recorded: tuple[dict[int, tuple[str, str]], ...] = ({}, {})
        self._ports: tuple[dict[int, dict[PortSpec, str]], ...] = ({}, {})
        self._holders: tuple[dict[int, set[str]], ...] = ({}, {})
        self._in_use: list[dict[tuple[int, int], int]] = [{} for _ in self.pools]

    def __len__(self) -> int:
        return len(self._allocated)

    def allocation(self, key: str) -> tuple[Address, ...] | None:
        """The addresses ``key`` holds, in order, or ``None``."""
        alloc = self._allocated.get(key)
        if alloc is None:
            return None
        return tuple(_to_address(f, v) for f, v in alloc.addresses)

    def in_use(self, pool: str) -> int:
        """How many distinct addresses of ``pool`` are held."""
        i = next(i for i, p in enumerate(self.pools) if p.name == pool)
        return len(self._in_use[i])

    # -- the availability predicate and the scan -------------------------------------------

    def _blocker(
        self,
        family: int,
        value: int,
        key: str,
        ports: Sequence[PortSpec],
        sharing_key: str,
        backend_key: str,
    ) -> PortSpec | Literal["sharing"] | None:
        """What stops ``key`` from using the address (a port or ``"sharing"``), or ``None``.

        The scan only needs a yes or no, so the message is built later, by :meth:`assign`
        (MetalLB formats an error for every address it skips).
        """
        recorded = self._recorded[family].get(value)
        if recorded is not None:
            compatible = (
                recorded[0] != ""
                and sharing_key != ""
                and recorded[0] == sharing_key
                and recorded[1] == backend_key
            )
            if not compatible and any(h != key for h in self._holders[family].get(value, ())):
                return "sharing"
        in_use = self._ports[family].get(value)
        if in_use:
            for port in ports:
                holder = in_use.get(port)
                if holder is not None and holder != key:
                    return port
        return None

    def _message(self, blocker: PortSpec | str, family: int, value: int, key: str) -> str:
        """MetalLB's text for what :meth:`_blocker` found."""
        if isinstance(blocker, tuple):
            address = _to_address(family, value)
            return f'port {blocker[0]}/{blocker[1]} is already in use on "{address}"'
        others = sorted(h for h in self._holders[family].get(value, ()) if h != key)
        return f'can\'t change sharing key for "{key}", address also in use by ' + ",".join(others)

    def _first_free(
        self,
        cidr: _Cidr,
        key: str,
        ports: Sequence[PortSpec],
        sharing_key: str,
        backend_key: str,
    ) -> int | None:
        """The first usable address of ``cidr``, probing one address after the other."""
        recorded = self._recorded[cidr.family]
        for value in range(cidr.first, cidr.last + 1):
            if cidr.avoid_buggy and _buggy(cidr.family, value):
                continue
            # An address without a recorded key has no ports either: usable at once.
            if value not in recorded:
                return value
            if self._blocker(cidr.family, value, key, ports, sharing_key, backend_key) is None:
                return value
        return None

    def _candidates(
        self, pool: int, key: str, ports: Sequence[PortSpec], sharing_key: str, backend_key: str
    ) -> list[int | None]:
        """One free IPv4 and one free IPv6 address of ``pool`` (both families, always)."""
        found: list[int | None] = [None, None]
        for cidr in self._cidrs[pool]:
            if found[cidr.family] is None:
                found[cidr.family] = self._first_free(cidr, key, ports, sharing_key, backend_key)
        return found

    # -- transitions ------------------------------------------------------------------------

    def allocate(
        self,
        key: str,
        family: Family = "ipv4",
        ports: Sequence[PortSpec] = (),
        sharing_key: str = "",
        backend_key: str = "",
    ) -> tuple[Address, ...]:
        """MetalLB's ``Allocate``: the first usable address(es) of the first pool with room.

        A key that holds an allocation keeps its addresses (re-assigned with the new ports and
        keys). Raises :class:`FirstFitError` when nothing fits.
        """
        held = self._allocated.get(key)
        if held is not None:
            addresses = tuple(_to_address(f, v) for f, v in held.addresses)
            return self.assign(key, addresses, ports, sharing_key, backend_key)
        for pool, spec in enumerate(self.pools):
            if not spec.auto_assign:
                continue
            v4, v6 = self._candidates(pool, key, ports, sharing_key, backend_key)
            if family == "dual":
                if v4 is None or v6 is None:
                    continue
                chosen = [(_V4, v4), (_V6, v6)]
            else:
                value = v4 if family == "ipv4" else v6
                if value is None:
                    continue
                chosen = [(_V4 if family == "ipv4" else _V6, value)]
            try:
                return self.assign(
                    key, [_to_address(f, v) for f, v in chosen], ports, sharing_key, backend_key
                )
            except FirstFitError:
                continue
        raise FirstFitError("no available IPs")

    def _owner(self, family: int, value: int) -> int | None:
        """The pool owning an address, testing every CIDR of every pool (as MetalLB does)."""
        for pool, cidrs in enumerate(self._cidrs):
            for cidr in cidrs:
                if cidr.family == family and cidr.first <= value <= cidr.last:
                    return None if cidr.avoid_buggy and _buggy(family, value) else pool
        return None

    def assign(
        self,
        key: str,
        ips: Sequence[Address],
        ports: Sequence[PortSpec] = (),
        sharing_key: str = "",
        backend_key: str = "",
    ) -> tuple[Address, ...]:
        """MetalLB's ``Assign``: give exactly ``ips`` to ``key``, replacing what it held."""
        addresses = tuple((_V4 if ip.version == 4 else _V6, int(ip)) for ip in ips)
        owners = {self._owner(f, v) for f, v in addresses}
        owner = owners.pop() if len(owners) == 1 else None
        if owner is None or not addresses:
            quoted = " ".join(f'"{ip}"' for ip in ips)
            raise FirstFitError(f"[{quoted}] is not allowed in config")
        if len(addresses) > 2 or (len(addresses) == 2 and addresses[0][0] == addresses[1][0]):
            raise FirstFitError("bad address count or families")
        for f, v in addresses:
            blocker = self._blocker(f, v, key, ports, sharing_key, backend_key)
            if blocker is not None:
                raise FirstFitError(self._message(blocker, f, v, key))
        self.release(key)
        self._allocated[key] = _Allocation(owner, addresses, tuple(ports), sharing_key, backend_key)
        for f, v in addresses:
            self._recorded[f][v] = (sharing_key, backend_key)
            table = self._ports[f].setdefault(v, {})
            for port in ports:
                table[port] = key
            self._holders[f].setdefault(v, set()).add(key)
            users = self._in_use[owner]
            users[f, v] = users.get((f, v), 0) + 1
        return tuple(ips)

    def release(self, key: str) -> bool:
        """MetalLB's ``Unassign``: free what ``key`` holds; ``False`` if it held nothing."""
        alloc = self._allocated.pop(key, None)
        if alloc is None:
            return False
        for f, v in alloc.addresses:
            table = self._ports[f].get(v, {})
            for port in alloc.ports:
                if table.get(port) == key:
                    del table[port]
            holders = self._holders[f].get(v)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._holders[f][v]
            # MetalLB's rule: the recorded key goes when the port table is empty (§10).
            if not table:
                self._ports[f].pop(v, None)
                self._recorded[f].pop(v, None)
            users = self._in_use[alloc.pool]
            users[f, v] -= 1
            if users[f, v] == 0:
                del users[f, v]
        return True
