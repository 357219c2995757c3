"""The ConfigMap format of MetalLB v0.10 to v0.12, parsed and validated as MetalLB did.

MetalLB decoded the ``config`` key strictly into typed Go structs (``yaml.UnmarshalStrict``):
an unknown key, or a value of the wrong type, is ``could not parse config: ...``. Then it
checked, in this order: the BFD profiles, the peers, the community aliases, then each address
pool (its own errors, then duplicate names and overlaps with the pools before it). Every key
of v0.10, v0.11 and v0.12 is known (``bfd-profiles``, ``bfd-profile``, ``keepalive-time``,
``ebgp-multihop``, ``aggregation-length-v6``, ...), and aggregation lengths are checked per
``addresses`` entry, as v0.12 does (a range is as wide as its widest CIDR).

The result is a typed :class:`~metallb_core.Config`: ``layer2`` pools are announced by one
L2 advertisement named ``configmap-layer2``; ``bgp`` pools allocate and carry their BGP
advertisements in ``Config.bgp_advertisements`` (this library announces in Layer 2 only).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from metallb_core._addresses import parse_ip
from metallb_core._bgp import (
    BFD_RANGES,
    BFDProfile,
    BGPAdvertisement,
    Peer,
    check_bfd_value,
    parse_duration,
    parse_legacy_community,
)
from metallb_core._config import Config, ConfigChecker, L2Advertisement, Pool
from metallb_core._errors import ConfigError
from metallb_core._selectors import LabelSelector, selector_from

CONFIGMAP_L2_ADVERTISEMENT = "configmap-layer2"
"""The name of the advertisement that :func:`parse_configmap` makes for ``layer2`` pools."""

# -- strict decoding: the Go structs of v0.12, with their Go type names ----------------------

_SELECTOR = (
    "config.nodeSelector",
    {
        "match-labels": "map",
        "match-expressions": [
            (
                "config.selectorRequirements",
                {"key": "string", "operator": "string", "values": ["string"]},
            )
        ],
    },
)
_PEER = (
    "config.peer",
    {
        "my-asn": "uint32",
        "peer-asn": "uint32",
        "peer-address": "string",
        "source-address": "string",
        "peer-port": "uint16",
        "hold-time": "string",
        "keepalive-time": "string",
        "router-id": "string",
        "node-selectors": [_SELECTOR],
        "password": "string",
        "bfd-profile": "string",
        "ebgp-multihop": "bool",
    },
)
_ADVERTISEMENT = (
    "config.bgpAdvertisement",
    {
        "aggregation-length": "int",
        "aggregation-length-v6": "int",
        "localpref": "uint32",
        "communities": ["string"],
    },
)
_POOL = (
    "config.addressPool",
    {
        "protocol": "string",
        "name": "string",
        "addresses": ["string"],
        "avoid-buggy-ips": "bool",
        "auto-assign": "bool",
        "bgp-advertisements": [_ADVERTISEMENT],
    },
)
_BFD = (
    "config.bfdProfile",
    {
        "name": "string",
        "receive-interval": "uint32",
        "transmit-interval": "uint32",
        "detect-multiplier": "uint32",
        "echo-interval": "uint32",
        "echo-mode": "bool",
        "passive-mode": "bool",
        "minimum-ttl": "uint32",
    },
)
_FILE = (
    "config.configFile",
    {
        "peers": [_PEER],
        "bgp-communities": "map",
        "address-pools": [_POOL],
        "bfd-profiles": [_BFD],
    },
)
_INT_RANGES = {"uint32": (0, 2**32 - 1), "uint16": (0, 2**16 - 1), "int": (-(2**63), 2**63 - 1)}


def _yaml_tag(value: Any) -> str:
    if isinstance(value, bool):
        return "!!bool"
    if isinstance(value, int):
        return "!!int"
    if isinstance(value, float):
        return "!!float"
    if isinstance(value, str):
        return "!!str"
    if isinstance(value, Mapping):
        return "!!map"
    if isinstance(value, (list, tuple)):
        return "!!seq"
    return "!!" + type(value).__name__


def _text(value: Any) -> str:
    """A scalar as the text Go puts in a ``string`` field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _unmarshal_error(where: str, problem: str) -> ConfigError:
    at = f"{where}: " if where else ""
    return ConfigError(f"could not parse config: yaml: unmarshal errors: {at}{problem}")


def _decode(value: Any, shape: Any, where: str) -> Any:
    """``value`` decoded into ``shape`` as ``yaml.UnmarshalStrict`` would, or ConfigError.

    ``shape`` is a Go struct ``(type name, {key: shape})``, a slice ``[shape]``, or the name
    of a Go type: ``"map"`` (``map[string]string``), ``"string"``, ``"bool"`` or an integer
    type of ``_INT_RANGES``.
    """
    if value is None:
        return None  # a null leaves the Go zero value
    if isinstance(shape, tuple):
        return _decode_struct(value, shape, where)
    if isinstance(shape, list):
        return _decode_list(value, shape, where)
    if shape in _SCALAR_DECODERS:
        return _SCALAR_DECODERS[shape](value, where)
    return _decode_int(value, shape, where)


def _decode_struct(value: Any, shape: tuple[str, Mapping[str, Any]], where: str) -> dict[str, Any]:
    """A mapping decoded into a Go struct: every key known, null fields left out."""
    type_name, fields = shape
    if not isinstance(value, Mapping):
        raise _unmarshal_error(
            where, f"cannot unmarshal {_yaml_tag(value)} `{_short(value)}` into {type_name}"
        )
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in fields:
            raise _unmarshal_error(where, f"field {key} not found in type {type_name}")
        decoded = _decode(item, fields[key], f"{where}.{key}" if where else str(key))
        if decoded is not None:
            out[key] = decoded
    return out


def _decode_list(value: Any, shape: list[Any], where: str) -> list[Any]:
    """A sequence decoded into a Go slice: a null item is its element's zero value."""
    if not isinstance(value, (list, tuple)):
        raise _unmarshal_error(
            where, f"cannot unmarshal {_yaml_tag(value)} `{_short(value)}` into a list"
        )
    zero: Any = {} if isinstance(shape[0], tuple) else ""
    decoded_items = [_decode(item, shape[0], f"{where}[{i}]") for i, item in enumerate(value)]
    return [zero if item is None else item for item in decoded_items]


def _decode_map(value: Any, where: str) -> dict[str, str]:
    """A mapping decoded into ``map[string]string``: scalar values, null as ``""``."""
    if not isinstance(value, Mapping):
        raise _unmarshal_error(
            where,
            f"cannot unmarshal {_yaml_tag(value)} `{_short(value)}` into map[string]string",
        )
    out_map: dict[str, str] = {}
    for key, item in value.items():
        if item is not None and not _is_scalar(item):
            raise _unmarshal_error(
                f"{where}.{key}", f"cannot unmarshal {_yaml_tag(item)} into string"
            )
        out_map[_text(key)] = "" if item is None else _text(item)
    return out_map


def _decode_string(value: Any, where: str) -> str:
    """A scalar decoded into a Go ``string`` (as its text)."""
    if not _is_scalar(value):
        raise _unmarshal_error(where, f"cannot unmarshal {_yaml_tag(value)} into string")
    return _text(value)


def _decode_bool(value: Any, where: str) -> bool:
    """A YAML boolean decoded into a Go ``bool`` (nothing else is one)."""
    if not isinstance(value, bool):
        raise _unmarshal_error(
            where, f"cannot unmarshal {_yaml_tag(value)} `{_short(value)}` into bool"
        )
    return value


def _decode_int(value: Any, shape: str, where: str) -> int:
    """A whole number decoded into the Go integer type ``shape``, within its range."""
    low, high = _INT_RANGES[shape]
    number = value
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise _unmarshal_error(
            where, f"cannot unmarshal {_yaml_tag(value)} `{_short(value)}` into {shape}"
        )
    return number


_SCALAR_DECODERS: dict[str, Callable[[Any, str], Any]] = {
    "map": _decode_map,
    "string": _decode_string,
    "bool": _decode_bool,
}
"""The Go types other than structs, slices and integers, by their names in the shapes."""


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _short(value: Any) -> str:
    text = _text(value) if _is_scalar(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the checks, in MetalLB's order ------------------------------------------------------------


def _hold_time(text: str | None) -> float:
    if not text:
        return 90.0
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise ConfigError(f'invalid hold time "{text}": {err}') from None
    rounded = float(int(seconds))
    if rounded != 0 and rounded < 3:
        raise ConfigError(f'invalid hold time "{text}": must be 0 or >=3s')
    return rounded


def _node_selector(raw: Mapping[str, Any]) -> LabelSelector:
    expressions = []
    for expr in raw.get("match-expressions") or ():
        key, operator = expr.get("key", ""), expr.get("operator", "")
        if not key:
            raise ConfigError(
                'parsing node selector: key: Invalid value: "": name part must be non-empty'
            )
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ConfigError(
                f'parsing node selector: "{operator}" is not a valid pod selector operator'
            )
        expressions.append({"key": key, "operator": operator, "values": expr.get("values") or []})
    try:
        return selector_from(
            {"matchLabels": raw.get("match-labels") or {}, "matchExpressions": expressions},
            "node selector",
        )
    except ConfigError as err:
        raise ConfigError(f"parsing node selector: {err}") from None


def _peer(raw: Mapping[str, Any]) -> Peer:
    my_asn, asn = raw.get("my-asn", 0), raw.get("peer-asn", 0)
    if not my_asn:
        raise ConfigError("missing local ASN")
    if not asn:
        raise ConfigError("missing peer ASN")
    multihop = raw.get("ebgp-multihop", False)
    if asn == my_asn and multihop:
        raise ConfigError("invalid ebgp-multihop parameter set for an ibgp peer")
    address = raw.get("peer-address", "")
    if parse_ip(address) is None:
        raise ConfigError(f'invalid peer IP "{address}"')
    hold_time = _hold_time(raw.get("hold-time"))
    keepalive = hold_time / 3
    keepalive_text = raw.get("keepalive-time")
    if keepalive_text:
        try:
            keepalive = parse_duration(keepalive_text)
        except ValueError as err:
            raise ConfigError(f'invalid keepalive time "{keepalive_text}": {err}') from None
    if keepalive > hold_time:
        raise ConfigError(f'invalid keepaliveTime "{keepalive_text}"')
    router_id = raw.get("router-id", "")
    if router_id and parse_ip(router_id) is None:
        raise ConfigError(f'invalid router ID "{router_id}"')
    source = raw.get("source-address", "")
    if source and parse_ip(source) is None:
        raise ConfigError(f'invalid source IP "{source}"')
    selectors = tuple(_node_selector(s or {}) for s in raw.get("node-selectors") or ())
    return Peer(
        my_asn=my_asn,
        asn=asn,
        address=address,
        source_address=source,
        port=raw.get("peer-port") or 179,
        hold_time=hold_time,
        keepalive_time=keepalive,
        router_id=router_id,
        node_selectors=selectors or (LabelSelector(),),
        password=raw.get("password", ""),
        bfd_profile=raw.get("bfd-profile", ""),
        ebgp_multihop=multihop,
    )


def _bfd_profile(raw: Mapping[str, Any]) -> BFDProfile:
    name = raw.get("name", "")
    if not name:
        raise ConfigError("missing bfd profile name")
    values = {
        field: check_bfd_value(raw.get(field.replace("_", "-")), low, high, what)
        for field, low, high, what in BFD_RANGES
    }
    return BFDProfile(
        name=name,
        echo_mode=raw.get("echo-mode", False),
        passive_mode=raw.get("passive-mode", False),
        **values,
    )


@functools.lru_cache(maxsize=4096)
def _widest_prefix(entry: str) -> tuple[int, int]:
    """(family, shortest prefix length) of one ``addresses`` entry (already validated)."""
    networks = Pool(name="x", cidrs=[entry]).cidrs
    return networks[0].version, min(n.prefixlen for n in networks)


def check_aggregation_bounds(length: int, length_v6: int) -> None:
    """The aggregation lengths fit their families (32 for IPv4, 128 for IPv6)."""
    if length > 32:
        raise ConfigError(f"invalid aggregation length {length} for IPv4")
    if length_v6 > 128:
        raise ConfigError(f"invalid aggregation length {length_v6} for IPv6")


def check_aggregation(
    length: int, length_v6: int, addresses: Sequence[str], label: int | None = None
) -> None:
    """MetalLB's per-``addresses``-entry check of aggregation lengths (v0.12 and later)."""
    for entry in addresses:
        family, widest = _widest_prefix(entry)
        limit = length if family == 4 else length_v6
        if limit < widest:
            raise ConfigError(
                f"invalid aggregation length {length if label is None else label}: prefix "
                f"{widest} in this pool is more specific than the aggregation length for "
                f"addresses {entry}"
            )


def _check_distinct_advertisements(raws: Sequence[Mapping[str, Any]]) -> None:
    """No two of a pool's BGP advertisements are equal (numbered from 1, as MetalLB does)."""
    for i, first in enumerate(raws):
        for j in range(i + 1, len(raws)):
            if dict(first) == dict(raws[j]):
                raise ConfigError(
                    "duplicate definition of bgpadvertisements. "
                    f"advertisement {i + 1} and {j + 1} are equal"
                )


def _community_values(communities: Sequence[str], aliases: Mapping[str, str]) -> tuple[str, ...]:
    """Each community, an alias of ``bgp-communities`` or a legacy ``AA:NN`` value, resolved."""
    values = []
    for community in communities:
        if community in aliases:
            values.append(aliases[community])
            continue
        try:
            values.append(parse_legacy_community(community))
        except ConfigError as err:
            raise ConfigError(
                f'invalid community "{community}" in BGP advertisement: {err}'
            ) from None
    return tuple(values)


def _check_duplicate_communities(communities: Sequence[str]) -> None:
    """No community listed twice in one advertisement."""
    for i, community in enumerate(communities):
        if community in communities[:i]:
            raise ConfigError(f'duplicate definition of community "{community}"')


def _bgp_advertisement(
    pool: str, raw: Mapping[str, Any], addresses: Sequence[str], aliases: Mapping[str, str]
) -> BGPAdvertisement:
    """One of a pool's ``bgp-advertisements``, checked in MetalLB's order."""
    communities = list(raw.get("communities") or ())
    _check_duplicate_communities(communities)
    length = raw.get("aggregation-length", 32)
    length_v6 = raw.get("aggregation-length-v6", 128)
    check_aggregation_bounds(length, length_v6)
    check_aggregation(length, length_v6, addresses)
    return BGPAdvertisement(
        name=pool,
        pools=(pool,),
        aggregation_length=length,
        aggregation_length_v6=length_v6,
        local_pref=raw.get("localpref", 0),
        communities=_community_values(communities, aliases),
    )


def _bgp_advertisements(
    pool: str,
    raws: Sequence[Mapping[str, Any]],
    addresses: Sequence[str],
    aliases: Mapping[str, str],
) -> tuple[BGPAdvertisement, ...]:
    """A ``bgp`` pool's advertisements; none listed is one advertisement with the defaults."""
    if not raws:
        return (BGPAdvertisement(name=pool, pools=(pool,)),)
    _check_distinct_advertisements(raws)
    return tuple(_bgp_advertisement(pool, raw, addresses, aliases) for raw in raws)


def decode_configmap(document: object) -> dict[str, Any]:
    """The ``config`` document decoded strictly (unknown keys and wrong types refused)."""
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise _unmarshal_error(
            "",
            f"cannot unmarshal {_yaml_tag(document)} `{_short(document)}` into config.configFile",
        )
    decoded: dict[str, Any] = _decode(document, _FILE, "")
    return decoded


def _bfd_profiles(raws: Sequence[Mapping[str, Any] | None]) -> dict[str, BFDProfile]:
    """The ``bfd-profiles``, by name; numbered from 1 in errors, a name at most once."""
    profiles: dict[str, BFDProfile] = {}
    for i, item in enumerate(raws, start=1):
        try:
            profile = _bfd_profile(item or {})
        except ConfigError as err:
            raise ConfigError(f"parsing bfd profile #{i}: {err}") from None
        if profile.name in profiles:
            raise ConfigError(f"found duplicate bfd profile name {profile.name}")
        profiles[profile.name] = profile
    return profiles


def _peers(
    raws: Sequence[Mapping[str, Any] | None], profiles: Mapping[str, BFDProfile]
) -> list[Peer]:
    """The ``peers``: each valid, its BFD profile defined, no two the same."""
    peers: list[Peer] = []
    for i, item in enumerate(raws, start=1):
        try:
            peer = _peer(item or {})
        except ConfigError as err:
            raise ConfigError(f"parsing peer #{i}: {err}") from None
        if peer.bfd_profile and peer.bfd_profile not in profiles:
            raise ConfigError(f"peer #{i} referencing non existing bfd profile {peer.bfd_profile}")
        if peer in peers:
            raise ConfigError(f"peer #{i} already exists")
        peers.append(peer)
    return peers


def _community_aliases(raw: Mapping[str, str]) -> dict[str, str]:
    """The ``bgp-communities`` aliases, each value a valid legacy community."""
    aliases: dict[str, str] = {}
    for name, value in raw.items():
        try:
            aliases[name] = parse_legacy_community(value)
        except ConfigError as err:
            raise ConfigError(f'parsing community "{name}": {err}') from None
    return aliases


def _pool_advertisements(
    pool: Pool, item: Mapping[str, Any], aliases: Mapping[str, str]
) -> tuple[BGPAdvertisement, ...]:
    """A pool's ``protocol`` checked; its BGP advertisements (none for ``layer2``)."""
    protocol = item.get("protocol")
    ads = item.get("bgp-advertisements") or []
    if protocol == "layer2":
        if ads:
            raise ConfigError(
                "cannot have bgp-advertisements configuration element in a layer2 address pool"
            )
        return ()
    if protocol == "bgp":
        addresses = list(item.get("addresses") or ())
        try:
            return _bgp_advertisements(pool.name, ads, addresses, aliases)
        except ConfigError as err:
            raise ConfigError(f"parsing BGP communities: {err}") from None
    if not protocol:
        raise ConfigError("address pool is missing the protocol field")
    raise ConfigError(f'unknown protocol "{protocol}"')


def _address_pools(
    raws: Sequence[Mapping[str, Any] | None], aliases: Mapping[str, str]
) -> tuple[list[Pool], list[str], list[BGPAdvertisement]]:
    """The ``address-pools``: the pools, the names of the ``layer2`` ones, the BGP ads.

    Each pool's own errors come first (numbered from 1), then its name and ranges against
    the pools before it.
    """
    checker = ConfigChecker()
    pools: list[Pool] = []
    layer2: list[str] = []
    bgp_ads: list[BGPAdvertisement] = []
    for i, item in enumerate(raws, start=1):
        item = item or {}
        try:
            pool = Pool(
                name=item.get("name") or "",
                cidrs=list(item.get("addresses") or ()),
                auto_assign=item.get("auto-assign", True),
                avoid_buggy_ips=item.get("avoid-buggy-ips", False),
            )
            bgp_ads.extend(_pool_advertisements(pool, item, aliases))
        except ConfigError as err:
            raise ConfigError(f"parsing address pool #{i}: {err}") from None
        if item.get("protocol") == "layer2":
            layer2.append(pool.name)
        checker.add(pool)
        pools.append(pool)
    return pools, layer2, bgp_ads


def parse_configmap(document: Mapping[str, Any] | None) -> Config:
    """A :class:`Config` from MetalLB's ConfigMap (the parsed YAML of its ``config`` key).

    Every key of v0.10 to v0.12 is known; strict like MetalLB: an unknown key or a wrong type
    is ``could not parse config: ...``. ``layer2`` pools are announced by one advertisement
    named ``configmap-layer2``; ``bgp`` pools allocate (this library announces in Layer 2
    only) and their peers, BGP advertisements, communities and BFD profiles are validated
    and kept in the config. The result's ``source`` is ``"configmap"``: the ConfigMap's
    versions document the ``metallb.universe.tf/`` annotations, so :func:`converge` gives no
    ``deprecatedAnnotation`` warning under it.

    >>> pool = {"name": "default", "protocol": "layer2", "addresses": ["192.168.1.240/28"]}
    >>> cfg = parse_configmap({"address-pools": [pool]})
    >>> [p.name for p in cfg.pools], cfg.l2_advertisements[0].pools
    (['default'], ('default',))
    """
    raw = decode_configmap(document)
    profiles = _bfd_profiles(raw.get("bfd-profiles") or ())
    peers = _peers(raw.get("peers") or (), profiles)
    aliases = _community_aliases(raw.get("bgp-communities") or {})
    pools, layer2, bgp_ads = _address_pools(raw.get("address-pools") or (), aliases)
    ads_out = (L2Advertisement(name=CONFIGMAP_L2_ADVERTISEMENT, pools=layer2),) if layer2 else ()
    return Config(
        pools=pools,
        l2_advertisements=ads_out,
        peers=peers,
        bfd_profiles=tuple(profiles.values()),
        bgp_advertisements=bgp_ads,
        communities=aliases,
        source="configmap",
    )
