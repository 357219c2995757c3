"""Layer 2: which node announces an address (MetalLB's stateless election)."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable


def _go_ip_string(ip: str) -> str:
    """The text Go's ``net.IP.String()`` gives, so every speaker hashes the same bytes.

    Go prints an IPv4-mapped IPv6 address as dotted IPv4; otherwise RFC 5952 text, which is
    what :mod:`ipaddress` prints. A string that is not an address is hashed as given.
    """
    try:
        parsed = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def announcing_node(ip: str, nodes: Iterable[str]) -> str | None:
    """The node that announces ``ip`` among the eligible ``nodes``, or ``None`` if there are none.

    MetalLB's order: sort the nodes by the SHA-256 digest of ``node + "#" + ip`` and take the
    smallest. Every speaker computes the same answer without talking to the others.

    >>> announcing_node("192.168.1.240", ["node-a", "node-b", "node-c"])
    'node-a'
    >>> announcing_node("192.168.1.240", []) is None
    True
    """
    text = _go_ip_string(ip)
    best: tuple[bytes, str] | None = None
    for node in nodes:
        digest = hashlib.sha256(f"{node}#{text}".encode()).digest()
        if best is None or (digest, node) < best:
            best = (digest, node)
    return None if best is None else best[1]
