"""The BGP side of a MetalLB configuration: peers, BFD profiles, BGP advertisements, communities.

This library announces in Layer 2 only, so the allocator never reads these; they are parsed
and validated so that a whole cluster configuration is checked as MetalLB checks it, and so
that a v0.10-v0.12 ConfigMap can be converted to the CRDs. Values keep MetalLB's meaning;
durations are seconds (``float``), communities their canonical text (``64512:1234`` or
``1:2:3`` for a large community).
"""

from __future__ import annotations

import re
from typing import ClassVar

from metallb_core._errors import ConfigError
from metallb_core._model import Model
from metallb_core._selectors import LabelSelector


class BFDProfile(Model):
    """A BFD profile (ConfigMap ``bfd-profiles`` entry or ``BFDProfile`` object).

    >>> BFDProfile(name="fast", receive_interval=50).receive_interval
    50
    """

    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid BFD profile"

    name: str
    receive_interval: int | None = None
    transmit_interval: int | None = None
    detect_multiplier: int | None = None
    echo_interval: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None


class Peer(Model):
    """A BGP peer (ConfigMap ``peers`` entry or ``BGPPeer`` object), validated.

    ``hold_time`` and ``keepalive_time`` are seconds (``None``: the default); ``address`` is
    empty for an unnumbered peer (``interface`` set instead).
    """

    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid BGP peer"

    name: str = ""
    my_asn: int
    asn: int = 0
    dynamic_asn: str = ""
    address: str = ""
    interface: str = ""
    source_address: str = ""
    port: int | None = None
    hold_time: float | None = None
    keepalive_time: float | None = None
    connect_time: float | None = None
    router_id: str = ""
    node_selectors: tuple[LabelSelector, ...] = ()
    password: str = ""
    password_secret: str = ""
    bfd_profile: str = ""
    ebgp_multihop: bool = False
    vrf: str = ""
    enable_graceful_restart: bool = False
    disable_mp: bool = False
    dual_stack_address_family: bool = False
    local_asn: int = 0


class BGPAdvertisement(Model):
    """How the addresses of some pools are announced over BGP.

    ``pools == ()`` means every pool; ``communities`` are resolved values (aliases replaced).
    """

    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid BGP advertisement"

    name: str = ""
    pools: tuple[str, ...] = ()
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int = 0
    communities: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    nodes: frozenset[str] = frozenset()
    node_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


# -- values as Go parses them -------------------------------------------------------------------

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*)(\.[0-9]*)?([^0-9.]*)")


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds; ``ValueError`` carries Go's message.

    >>> parse_duration("1m30s"), parse_duration("0")
    (90.0, 0.0)
    """
    quoted = '"' + text + '"'
    body = text
    sign = 1.0
    if body[:1] in ("-", "+"):
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while body:
        match = _DURATION_PART.match(body)
        assert match is not None  # the pattern matches every string
        whole, fraction, unit = match.groups()
        if not whole and (not fraction or fraction == "."):
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += float((whole or "0") + (fraction or "")) * _UNITS[unit]
        body = body[match.end() :]
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's ``Duration.String()`` for whole seconds, minutes and hours (``1m30s``, ``0s``)."""
    if seconds == 0:
        return "0s"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{secs}s"


def _parse_uint(text: str, bits: int) -> int:
    """``strconv.ParseUint(text, 10, bits)``; ``ValueError`` carries Go's message."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value >= 1 << bits:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def parse_legacy_community(text: str) -> str:
    """A v0.10-v0.12 ConfigMap community ``asn:value`` (two 16-bit parts), canonical text."""
    parts = text.split(":")
    if len(parts) != 2:
        raise ConfigError(f'invalid community string "{text}"')
    names = ("first", "second")
    values = []
    for name, part in zip(names, parts, strict=True):
        try:
            values.append(_parse_uint(part, 16))
        except ValueError as err:
            raise ConfigError(f'invalid {name} section of community "{part}": {err}') from None
    return f"{values[0]}:{values[1]}"


class CommunityFormatError(ConfigError):
    """A community that is neither ``a:b`` nor ``large:a:b:c`` (maybe an unknown alias)."""


def parse_community(text: str) -> str:
    """A community as MetalLB v0.13+ reads it: ``a:b`` (16-bit parts) or ``large:a:b:c``.

    >>> parse_community("65535:65282"), parse_community("large:1:2:3")
    ('65535:65282', '1:2:3')
    """
    parts = text.split(":")
    if len(parts) == 2:
        bits, fields = 16, parts
    elif len(parts) == 4:
        if parts[0] != "large":
            raise ConfigError(
                "invalid community value: invalid marker for large community, expected "
                "community to be of format large:<uint32>:<uint32>:<uint32> but got "
                f'"{text}" instead'
            )
        bits, fields = 32, parts[1:]
    else:
        raise CommunityFormatError(f"invalid community format: {text}")
    values = []
    for part in fields:
        try:
            values.append(_parse_uint(part, bits))
        except ValueError as err:
            raise ConfigError(
                f'invalid community value: invalid section "{part}" of community "{text}", '
                f'err: "{err}"'
            ) from None
    return ":".join(str(v) for v in values)


def check_bfd_value(value: object, low: int, high: int, what: str) -> int | None:
    """A BFD setting within ``[low, high]`` (``None`` when unset), with MetalLB's message."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"invalid {what} value: {value!r} is not an integer")
    if value < low or value > high:
        raise ConfigError(
            f"invalid {what} value: invalid value {value}, must be in {low}-{high} range"
        )
    return value


BFD_RANGES = (
    ("detect_multiplier", 2, 255, "detect multiplier"),
    ("receive_interval", 10, 60000, "receive interval"),
    ("transmit_interval", 10, 60000, "transmit interval"),
    ("minimum_ttl", 1, 254, "minimum ttl"),
    ("echo_interval", 10, 60000, "echo interval"),
)
"""Each BFD setting, its range and its name in MetalLB's messages, in MetalLB's check order."""
