"""Prebuilt answers for the common case, so that answering costs a few slices and one
dictionary lookup, whatever the number of announced addresses. Pure.

:func:`~announcers.arp.decision.decide` is the policy; this module is a shortcut that must
agree with it. :meth:`ReplyTable.answer` recognises only the plain, well-formed requests for
an announced address: a broadcast or unicast ARP request, and a Neighbor Solicitation
carrying exactly one Source link-layer option, multicast to the target's solicited-node
group or unicast to our MAC. For those it returns the very bytes ``decide`` would send
(the tests check it on crafted and fuzzed frames); for anything else it returns ``None`` and
the caller asks ``decide``. The answers are prebuilt per address: the ARP reply is the
requester's MAC and address around a constant middle, and the NA's checksum is a
precomputed sum plus the requester's address (one's-complement sums are sums modulo
0xFFFF, so a sum over bytes is ``int.from_bytes(bytes) % 0xFFFF``).

>>> from ipaddress import IPv4Address
>>> from announcers.arp import frames
>>> ours = frames.parse_mac("02:00:00:00:00:01")
>>> table = ReplyTable(ours)
>>> table.add(IPv4Address("192.0.2.10"))
>>> asker = frames.parse_mac("02:00:00:00:00:99")
>>> question = frames.arp_request(asker, IPv4Address("192.0.2.1"), IPv4Address("192.0.2.10"))
>>> reply, _, address = table.answer(question.encode(), 1)
>>> (reply == frames.arp_reply(question, ours).encode(), address)
(True, IPv4Address('192.0.2.10'))
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address

from announcers.arp import frames
from announcers.base import IPAddress

__all__ = ["ReplyTable"]

_ARP_REQUEST_HEAD = b"\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01"  # EtherType .. opcode 1
_ARP_REPLY_HEAD = b"\x08\x06\x00\x01\x08\x00\x06\x04\x00\x02"
_IPV6_ND_HEAD = b"\x86\xdd"
_NS_WITH_OPTION = b"\x00\x20\x3a\xff"  # payload length 32, next header 58, hop limit 255
_SLLA_OPTION = b"\x01\x01"
_LOOPBACK6 = IPv6Address("::1").packed
_UNSPECIFIED6 = bytes(16)
_PSEUDO_CONSTANT = 58  # next header, in the IPv6 pseudo-header (plus the length)
_PACKET_HOST, _PACKET_BROADCAST, _PACKET_MULTICAST = 0, 1, 2


def _fold(total: int) -> int:
    value = total % 0xFFFF
    return 0xFFFF if value == 0 else value


class _NdEntry:
    """The prebuilt parts of the two NA forms for one address."""

    __slots__ = (
        "address",
        "group",
        "group_mac",
        "multicast_head",
        "multicast_sum",
        "multicast_tail",
        "unicast_head",
        "unicast_sum",
        "unicast_tail",
    )

    def __init__(self, address: IPv6Address, mac: bytes) -> None:
        target = address.packed
        group = frames.solicited_node_group(address)
        self.address = address
        self.group = group.packed
        self.group_mac = frames.multicast_mac(group)
        # To a multicast NS: S=1, O=1, Target-LLA (32 bytes); to a unicast one: S=1, O=0,
        # no option (24 bytes). The checksum is filled in per requester.
        self.multicast_tail = b"\x60\x00\x00\x00" + target + b"\x02\x01" + mac
        self.unicast_tail = b"\x40\x00\x00\x00" + target
        self.multicast_head = mac + b"\x86\xdd\x60\x00\x00\x00\x00\x20\x3a\xff" + target
        self.unicast_head = mac + b"\x86\xdd\x60\x00\x00\x00\x00\x18\x3a\xff" + target
        source = int.from_bytes(target, "big")
        # The pseudo-header (source = the address, destination = the asker's, added per
        # answer; length; next header) and the message with its checksum field at zero.
        self.multicast_sum = (
            source + 32 + _PSEUDO_CONSTANT
            + int.from_bytes(b"\x88\x00\x00\x00" + self.multicast_tail, "big")
        )  # fmt: skip
        self.unicast_sum = (
            source + 24 + _PSEUDO_CONSTANT
            + int.from_bytes(b"\x88\x00\x00\x00" + self.unicast_tail, "big")
        )  # fmt: skip


class ReplyTable:
    """The answers of one interface with MAC ``mac``, prebuilt for each announced address.

    ``own_macs`` are the MACs of every interface of the announcer (frames from them are
    never answered). Mutated in place by :meth:`add` / :meth:`remove` (each O(1)); a reader
    on another thread sees either the old or the new entry, and the caller re-checks under
    its lock before sending that the address is still announced.
    """

    __slots__ = ("_arp", "_nd", "mac", "own_macs")

    def __init__(self, mac: bytes, own_macs: Iterable[bytes] = ()) -> None:
        self.mac = mac
        self.own_macs = frozenset(own_macs) | {mac}
        self._arp: dict[bytes, tuple[bytes, IPv4Address]] = {}
        self._nd: dict[bytes, _NdEntry] = {}

    def add(self, address: IPAddress) -> None:
        """Answer for ``address`` from now on."""
        if isinstance(address, IPv4Address):
            middle = self.mac + _ARP_REPLY_HEAD + self.mac + address.packed
            self._arp[address.packed] = (middle, address)
        else:
            self._nd[address.packed] = _NdEntry(address, self.mac)

    def remove(self, address: IPAddress) -> None:
        """Stop answering for ``address`` (no-op if it was not there)."""
        if isinstance(address, IPv4Address):
            self._arp.pop(address.packed, None)
        else:
            self._nd.pop(address.packed, None)

    def addresses(self) -> list[IPAddress]:
        """Every address in the table."""
        return [address for _, address in self._arp.values()] + [
            entry.address for entry in self._nd.values()
        ]

    def holds(self, key: bytes) -> bool:
        """Whether the packed address ``key`` (as :meth:`answer` returns it) is in the
        table."""
        return key in self._arp or key in self._nd

    def answer(self, frame: bytes, pkttype: int) -> tuple[bytes, bytes, IPAddress] | None:
        """The reply to ``frame``, the packed address it is for and that address, if
        ``frame`` is a plain request for an address in the table that
        :func:`~announcers.arp.decision.decide` answers; ``None`` for everything else (ask
        ``decide``)."""
        if frame[12:22] == _ARP_REQUEST_HEAD:
            return self._answer_arp(frame, pkttype)
        if frame[12:14] == _IPV6_ND_HEAD:
            return self._answer_ns(frame, pkttype)
        return None

    def _answer_arp(self, frame: bytes, pkttype: int) -> tuple[bytes, bytes, IPAddress] | None:
        if len(frame) < 42 or pkttype not in (_PACKET_HOST, _PACKET_BROADCAST):
            return None
        key = frame[38:42]
        entry = self._arp.get(key)
        if entry is None:
            return None
        destination, source, sender_mac = frame[0:6], frame[6:12], frame[22:28]
        sender_ip = frame[28:32]
        first = sender_ip[0]
        if (
            destination not in (frames.BROADCAST_MAC, self.mac)
            or source[0] & 1
            or sender_mac[0] & 1
            or source in self.own_macs
            or sender_mac in self.own_macs
            or not 0 < first < 224  # 0.x (probes) and multicast and above: ask decide
            or first == 127
            or sender_ip in self._arp  # a conflict
        ):
            return None
        middle, address = entry
        return sender_mac + middle + sender_mac + sender_ip, key, address

    def _answer_ns(self, frame: bytes, pkttype: int) -> tuple[bytes, bytes, IPAddress] | None:
        if (
            len(frame) < 86
            or frame[18:22] != _NS_WITH_OPTION
            or frame[54:56] != b"\x87\x00"
            or frame[78:80] != _SLLA_OPTION
            or frame[14] >> 4 != 6
            or pkttype not in (_PACKET_HOST, _PACKET_MULTICAST)
        ):
            return None
        key = frame[62:78]
        entry = self._nd.get(key)
        if entry is None:
            return None
        source_ip, destination_ip = frame[22:38], frame[38:54]
        destination, source, lla = frame[0:6], frame[6:12], frame[80:86]
        if destination_ip == entry.group and destination == entry.group_mac:
            multicast = True
        elif destination_ip == key and destination == self.mac:
            multicast = False
        else:
            return None
        if (
            source[0] & 1
            or lla[0] & 1
            or source in self.own_macs
            or source_ip[0] == 0xFF
            or source_ip in (_LOOPBACK6, _UNSPECIFIED6)
            or (int.from_bytes(frame[22:86], "big") + 32 + _PSEUDO_CONSTANT) % 0xFFFF
        ):
            return None
        asker = int.from_bytes(source_ip, "big")
        if multicast:
            checksum = 0xFFFF - _fold(entry.multicast_sum + asker)
            head, tail = entry.multicast_head, entry.multicast_tail
        else:
            checksum = 0xFFFF - _fold(entry.unicast_sum + asker)
            head, tail = entry.unicast_head, entry.unicast_tail
        reply = lla + head + source_ip + b"\x88\x00" + checksum.to_bytes(2, "big") + tail
        return reply, key, entry.address
