"""A small interpreter of classic BPF socket filters, for the tests of announcers.arp.bpf.

Only the instructions the announcer's filters use; an unknown one fails the test. Loads
beyond the frame return 0 (the kernel drops the packet), as Linux does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SKF_AD_OFF = -0x1000
_ANCILLARY = {
    (SKF_AD_OFF + 4) & 0xFFFFFFFF: "pkttype",
    (SKF_AD_OFF + 44) & 0xFFFFFFFF: "vlan_tag",
    (SKF_AD_OFF + 48) & 0xFFFFFFFF: "vlan_tag_present",
}


@dataclass(frozen=True)
class Packet:
    """What a socket filter sees: the frame and the skb metadata it may load."""

    frame: bytes
    pkttype: int = 0
    vlan_tag: int = 0
    vlan_tag_present: int = 0


def run(program: bytes, packet: Packet) -> tuple[int, int]:
    """(the value returned: 0 drops, else the bytes kept; instructions executed)."""
    code = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    a = 0
    pc = steps = 0
    frame = packet.frame
    while True:
        op, jt, jf, k = code[pc]
        steps += 1
        pc += 1
        if op in (0x20, 0x28, 0x30):  # ld w/h/b abs
            if k in _ANCILLARY:
                a = getattr(packet, _ANCILLARY[k])
                continue
            size = {0x20: 4, 0x28: 2, 0x30: 1}[op]
            if k + size > len(frame):
                return 0, steps
            a = int.from_bytes(frame[k : k + size], "big")
        elif op == 0x54:  # and k
            a &= k
        elif op == 0x05:  # ja
            pc += k
        elif op == 0x15:  # jeq k
            pc += jt if a == k else jf
        elif op == 0x25:  # jgt k
            pc += jt if a > k else jf
        elif op == 0x06:  # ret k
            return k, steps
        else:
            raise AssertionError(f"unexpected BPF opcode {op:#x}")
