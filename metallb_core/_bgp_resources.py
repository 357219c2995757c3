"""The BGP kinds of MetalLB's CRDs, validated as MetalLB's parser and webhooks do.

``BFDProfile``, ``BGPPeer`` (``v1beta1`` and ``v1beta2``), ``Community``, ``BGPAdvertisement``
and the legacy ``AddressPool`` (read by MetalLB up to v0.13), with the ``Secret`` objects a
peer's ``passwordSecret`` names and the ``Node`` objects that advertisements select. Used by
:func:`metallb_core.parse_resources`; messages are MetalLB's (``internal/config/config.go``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from metallb_core._addresses import parse_ip
from metallb_core._bgp import (
    BFD_RANGES,
    BFDProfile,
    BGPAdvertisement,
    CommunityFormatError,
    Peer,
    parse_community,
    parse_duration,
)
from metallb_core._configmap import check_aggregation, check_aggregation_bounds
from metallb_core._errors import ConfigError
from metallb_core._selectors import LabelSelector, selector_from

METALLB_NAMESPACE = "metallb-system"
"""The namespace MetalLB runs in when an object does not say (its Secrets live there)."""


def spec_of(value: Any) -> dict[str, Any]:
    """A spec (or nested object) with its omitted (null) fields dropped.

    The shapes were checked before (:func:`metallb_core._schemas.check_object`), so the
    fields here have their CRD types.
    """
    return {k: v for k, v in (value or {}).items() if v is not None}


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def go_selector(value: Any) -> str:
    """A label selector as Go's ``%q`` of a ``LabelSelector`` would roughly print it."""
    return f'"{selector_from(value, "label selector")}"'


def check_duplicate_selectors(values: Sequence[Any], field: str) -> tuple[LabelSelector, ...]:
    """MetalLB's ``validateLabelSelectorDuplicate``: duplicate values, expressions, selectors."""
    out: list[LabelSelector] = []
    for value in values:
        selector = selector_from(value, f"{field} label selector")
        if selector in out:
            raise ConfigError(f'duplicate definition of {field} "{selector}"')
        out.append(selector)
    return tuple(out)


def check_duplicate_strings(values: Sequence[Any], field: str) -> None:
    for i, value in enumerate(values):
        if value in values[:i]:
            raise ConfigError(f'duplicate definition of {field} "{value}"')


# -- BFD profiles, communities -----------------------------------------------------------------


def bfd_profiles(objects: Sequence[Mapping[str, Any]]) -> dict[str, BFDProfile]:
    out: dict[str, BFDProfile] = {}
    for i, obj in enumerate(objects, start=1):
        name = name_of(obj)
        try:
            spec = spec_of(obj.get("spec"))
            if not name:
                raise ConfigError("missing bfd profile name")
            values: dict[str, int | None] = {}
            for field, low, high, what in BFD_RANGES:
                key = {"minimum_ttl": "minimumTtl"}.get(field) or _camel(field)
                value = spec.get(key)
                if value is not None and not low <= value <= high:
                    raise ConfigError(
                        f"invalid value {value}, must be in {low}-{high} range\n"
                        f"invalid {what} value"
                    )
                values[field] = value
            profile = BFDProfile(
                name=name,
                echo_mode=spec.get("echoMode", False),
                passive_mode=spec.get("passiveMode", False),
                **values,
            )
        except ConfigError as err:
            raise ConfigError(
                f"parsing bfd profile #{i}: {err}", kind="BFDProfile", name=name
            ) from None
        if name in out:
            raise ConfigError(
                f"found duplicate bfd profile name {name}", kind="BFDProfile", name=name
            )
        out[name] = profile
    return out


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


def communities(objects: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for obj in objects:
        spec = spec_of(obj.get("spec"))
        for alias in spec.get("communities") or ():
            alias = alias or {}
            name, value = str(alias.get("name") or ""), str(alias.get("value") or "")
            try:
                parsed = parse_community(value)
            except ConfigError as err:
                raise ConfigError(
                    f'parsing community "{name}": {err}', kind="Community", name=name_of(obj)
                ) from None
            if name in out:
                raise ConfigError(
                    f'duplicate definition of community "{name}"',
                    kind="Community",
                    name=name_of(obj),
                )
            out[name] = parsed
    return out


def community_value(text: str, aliases: Mapping[str, str]) -> str:
    if text in aliases:
        return aliases[text]
    try:
        return parse_community(text)
    except CommunityFormatError as err:
        raise ConfigError(f'{err}\ninvalid community "{text}" in BGP advertisement') from None
    except ConfigError as err:
        raise ConfigError(f'{err}\ninvalid community "{text}" in BGP advertisement') from None


# -- peers ---------------------------------------------------------------------------------------


def _duration(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as err:
        raise ConfigError(f'invalid {field} "{value}": {err}') from None


def _timers(hold: float | None, keepalive: float | None, spec: Mapping[str, Any]) -> None:
    if hold is None and keepalive is None:
        return
    if hold is None:
        assert keepalive is not None
        hold = keepalive * 3
    if keepalive is None:
        keepalive = hold / 3
    ht, ka = spec.get("holdTime"), spec.get("keepaliveTime")
    rounded = float(int(hold))
    if rounded != 0 and rounded < 3:
        raise ConfigError(f'invalid BGPPeer timers: invalid hold time "{ht}": must be 0 or >=3s')
    if keepalive > hold:
        raise ConfigError(
            f'invalid BGPPeer timers: invalid keepaliveTime "{ka}", must be lower than '
            f'holdTime "{ht}"'
        )


def _secret_password(
    obj: Mapping[str, Any],
    ref: Mapping[str, Any],
    secrets: Mapping[tuple[str, str], Mapping[str, Any]],
    metallb_namespace: str,
) -> None:
    namespace = namespace_of(obj) or metallb_namespace
    ref_namespace = str(ref.get("namespace") or namespace)
    if ref_namespace != namespace:
        return  # a Secret in another namespace is frr-k8s's to read (secret passthrough)
    name = str(ref.get("name") or "")
    secret = secrets.get((namespace, name))
    if secret is None:
        raise ConfigError(
            f'secret ref not found for peer config "{namespace_of(obj)}"/"{name_of(obj)}"'
        )
    shown = f'"{namespace_of(secret)}"/"{name_of(secret)}"'
    if secret.get("type") != "kubernetes.io/basic-auth":
        raise ConfigError(
            f'secret type mismatch on {shown}, type "kubernetes.io/basic-auth" is expected '
        )
    data = dict(secret.get("data") or {}) | dict(secret.get("stringData") or {})
    if "password" not in data:
        raise ConfigError(f"password not specified in the secret {shown}")


def _reject_line_breaks(value: str, what: str) -> None:
    """MetalLB refuses a newline or carriage return in a name it writes into FRR's config."""
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{what} contains invalid characters")


def _check_asns(spec: Mapping[str, Any]) -> None:
    """The local ASN, exactly one of peer ASN and ``dynamicASN``, multi-hop only for eBGP."""
    my_asn, asn = spec.get("myASN", 0), spec.get("peerASN", 0)
    dynamic = spec.get("dynamicASN", "")
    if not my_asn:
        raise ConfigError("missing local ASN")
    if not asn and not dynamic:
        raise ConfigError("missing peer ASN and dynamicASN")
    if asn and dynamic:
        raise ConfigError("both peer ASN and dynamicASN specified")
    if dynamic and dynamic not in ("internal", "external"):
        raise ConfigError(f"invalid dynamicASN {dynamic}")
    if asn == my_asn and spec.get("ebgpMultiHop"):
        raise ConfigError("invalid ebgp-multihop parameter set for an ibgp peer")


def _check_endpoint(spec: Mapping[str, Any], where: str) -> None:
    """Exactly one of ``peerAddress`` and ``interface``, the interface a clean name."""
    address, interface = spec.get("peerAddress", ""), spec.get("interface", "")
    if not address and not interface:
        raise ConfigError("peer has no Address or Interface specified")
    if address and interface:
        raise ConfigError("peer has both Address and Interface specified")
    _reject_line_breaks(interface, f"interface for peer {where}")


def _check_ips(spec: Mapping[str, Any]) -> None:
    """``peerAddress``, ``routerID`` and ``sourceAddress``, when given, are IP addresses."""
    for field, what in (
        ("peerAddress", "BGPPeer address"),
        ("routerID", "router ID"),
        ("sourceAddress", "source IP"),
    ):
        value = spec.get(field, "")
        if value and parse_ip(value) is None:
            raise ConfigError(f'invalid {what} "{value}"')


def _check_password(
    obj: Mapping[str, Any],
    spec: Mapping[str, Any],
    where: str,
    secrets: Mapping[tuple[str, str], Mapping[str, Any]],
    metallb_namespace: str,
) -> None:
    """At most one of ``password`` and ``passwordSecret``, either one usable."""
    password = spec.get("password", "")
    ref = spec.get("passwordSecret") or {}
    if password and ref.get("name"):
        raise ConfigError(f"can not have both password and secret ref set in peer config {where}")
    _reject_line_breaks(password, f"password for peer {where}")
    if ref.get("name"):
        try:
            _secret_password(obj, ref, secrets, metallb_namespace)
        except ConfigError as err:
            raise ConfigError(
                f"{err}\nfailed to parse peer {name_of(obj)} password secret"
            ) from None


def _secret_ref(spec: Mapping[str, Any]) -> str:
    """``passwordSecret`` as ``namespace/name`` (namespace empty when omitted), or ``""``."""
    ref = spec.get("passwordSecret") or {}
    if not ref.get("name"):
        return ""
    return f"{ref.get('namespace') or ''}/{ref.get('name')}"


def _peer(
    obj: Mapping[str, Any],
    secrets: Mapping[tuple[str, str], Mapping[str, Any]],
    metallb_namespace: str,
) -> Peer:
    """One ``BGPPeer``, its checks in MetalLB's order (the first failing one is reported)."""
    spec = spec_of(obj.get("spec"))
    where = f'"{namespace_of(obj)}"/"{name_of(obj)}"'
    _check_asns(spec)
    _check_endpoint(spec, where)
    hold = _duration(spec.get("holdTime"), "holdTime")
    keepalive = _duration(spec.get("keepaliveTime"), "keepaliveTime")
    connect = _duration(spec.get("connectTime"), "connectTime")
    _timers(hold, keepalive, spec)
    _check_ips(spec)
    selectors = check_duplicate_selectors(spec.get("nodeSelectors") or [], "nodeSelectors")
    _check_password(obj, spec, where, secrets, metallb_namespace)
    vrf = spec.get("vrf", "")
    _reject_line_breaks(vrf, f"VRF name for peer {where}")
    return Peer(
        name=name_of(obj),
        my_asn=spec.get("myASN", 0),
        asn=spec.get("peerASN", 0),
        dynamic_asn=spec.get("dynamicASN", ""),
        address=spec.get("peerAddress", ""),
        interface=spec.get("interface", ""),
        source_address=spec.get("sourceAddress", ""),
        port=spec.get("peerPort"),
        hold_time=hold,
        keepalive_time=keepalive,
        connect_time=connect,
        router_id=spec.get("routerID", ""),
        node_selectors=selectors or (LabelSelector(),),
        password=spec.get("password", ""),
        password_secret=_secret_ref(spec),
        bfd_profile=spec.get("bfdProfile", ""),
        ebgp_multihop=spec.get("ebgpMultiHop", False),
        vrf=vrf,
        enable_graceful_restart=spec.get("enableGracefulRestart", False),
        disable_mp=spec.get("disableMP", False),
        dual_stack_address_family=spec.get("dualStackAddressFamily", False),
        local_asn=spec.get("localASN", 0),
    )


def peers(
    objects: Sequence[Mapping[str, Any]],
    profiles: Mapping[str, BFDProfile],
    secrets: Mapping[tuple[str, str], Mapping[str, Any]],
    metallb_namespace: str = METALLB_NAMESPACE,
) -> list[Peer]:
    out: list[Peer] = []
    for obj in objects:
        name = name_of(obj)
        try:
            peer = _peer(obj, secrets, metallb_namespace)
        except ConfigError as err:
            raise ConfigError(f"parsing peer {name} {err}", kind="BGPPeer", name=name) from None
        if peer.bfd_profile and peer.bfd_profile not in profiles:
            raise ConfigError(
                f"peer {name} referencing non existing bfd profile {peer.bfd_profile}",
                kind="BGPPeer",
                name=name,
            )
        if peer in out:
            raise ConfigError(f"peer {name} already exists", kind="BGPPeer", name=name)
        out.append(peer)
    return out


# -- BGP advertisements --------------------------------------------------------------------------


def _nodes(
    selectors: Sequence[LabelSelector], nodes: Mapping[str, Mapping[str, str]]
) -> frozenset[str]:
    if not selectors:
        return frozenset(nodes)
    return frozenset(n for n, labels in nodes.items() if any(s.matches(labels) for s in selectors))


def bgp_advertisement(
    obj: Mapping[str, Any], aliases: Mapping[str, str], nodes: Mapping[str, Mapping[str, str]]
) -> BGPAdvertisement:
    """One ``BGPAdvertisement``'s own checks (not yet against its pools)."""
    name = name_of(obj)
    spec = spec_of(obj.get("spec"))
    check_duplicate_strings(list(spec.get("ipAddressPools") or ()), "ipAddressPools")
    community_texts = [str(c) for c in spec.get("communities") or ()]
    check_duplicate_strings(community_texts, "community")
    check_duplicate_strings(list(spec.get("peers") or ()), "peers")
    check_duplicate_selectors(spec.get("ipAddressPoolSelectors") or [], "ipAddressPoolSelectors")
    node_selectors = check_duplicate_selectors(spec.get("nodeSelectors") or [], "nodeSelectors")
    service_selectors = check_duplicate_selectors(
        spec.get("serviceSelectors") or [], "serviceSelectors"
    )
    length, length_v6 = spec.get("aggregationLength"), spec.get("aggregationLengthV6")
    if service_selectors:
        if length is not None and length != 32:
            raise ConfigError(
                "serviceSelectors and aggregationLength are mutually exclusive, both cannot "
                f"be set in {name}"
            )
        if length_v6 is not None and length_v6 != 128:
            raise ConfigError(
                "serviceSelectors and aggregationLengthV6 are mutually exclusive, both cannot "
                f"be set in {name}"
            )
    length = 32 if length is None else length
    if length > 32:
        raise ConfigError(f"invalid aggregation length {length} for IPv4")
    length_v6 = 128 if length_v6 is None else length_v6
    if length_v6 > 128:
        raise ConfigError(f"invalid aggregation length {length_v6} for IPv6")
    values = tuple(community_value(c, aliases) for c in community_texts)
    return BGPAdvertisement(
        name=name,
        aggregation_length=length,
        aggregation_length_v6=length_v6,
        local_pref=spec.get("localPref", 0),
        communities=values,
        peers=tuple(spec.get("peers") or ()),
        nodes=_nodes(node_selectors, nodes),
        node_selectors=node_selectors,
        service_selectors=service_selectors,
    )


def _families(addresses: Sequence[str]) -> set[int]:
    out = set()
    for entry in addresses:
        first = entry.split("-")[0].split("/")[0].strip()
        out.add(6 if ":" in first else 4)
    return out


def _compatible_local_pref(
    new: BGPAdvertisement, old: BGPAdvertisement, families: set[int]
) -> bool:
    if new.local_pref == old.local_pref:
        return True
    has_v4, has_v6 = 4 in families, 6 in families
    if not has_v4 and not has_v6:
        return True
    v4_differs = new.aggregation_length != old.aggregation_length
    v6_differs = new.aggregation_length_v6 != old.aggregation_length_v6
    if (v4_differs and not has_v6) or (v6_differs and not has_v4) or (v4_differs and v6_differs):
        return True
    if new.peers and old.peers and not set(new.peers) & set(old.peers):
        return True
    return not new.nodes & old.nodes


def check_advertisement_for_pool(
    ad: BGPAdvertisement, addresses: Sequence[str], previous: Sequence[BGPAdvertisement]
) -> None:
    """MetalLB's ``validateBGPAdvPerPool``: aggregation lengths, then local preferences."""
    check_aggregation(ad.aggregation_length, ad.aggregation_length_v6, addresses)
    if ad.service_selectors:
        return
    families = _families(addresses)
    for other in previous:
        if other.service_selectors:
            continue
        if not _compatible_local_pref(ad, other, families):
            raise ConfigError(
                f"invalid local preference {ad.local_pref}: local preferernce {other.local_pref} "
                "was already set for the same type of BGP update. Check existing BGP "
                "advertisements with common pools and aggregation lengths"
            )


def legacy_pool_advertisements(
    pool: str, spec: Mapping[str, Any], aliases: Mapping[str, str]
) -> tuple[str, tuple[BGPAdvertisement, ...]]:
    """The protocol of a legacy ``AddressPool`` and, for ``bgp``, its advertisements."""
    protocol = spec.get("protocol", "")
    raws = list(spec.get("bgpAdvertisements") or ())
    addresses = list(spec.get("addresses") or ())
    if protocol == "layer2":
        if raws:
            raise ConfigError(
                "cannot have bgp-advertisements configuration element in a layer2 address pool"
            )
        return protocol, ()
    if not protocol:
        raise ConfigError("address pool is missing the protocol field")
    if protocol != "bgp":
        raise ConfigError(f'unknown protocol "{protocol}"')
    if not raws:
        return protocol, (BGPAdvertisement(name=pool, pools=(pool,)),)
    out = []
    for raw in raws:
        raw = spec_of(raw)
        texts = [str(c) for c in raw.get("communities") or ()]
        check_duplicate_strings(texts, "community")
        length = raw.get("aggregationLength", 32)
        length_v6 = raw.get("aggregationLengthV6", 128)
        check_aggregation_bounds(length, length_v6)
        check_aggregation(length, length_v6, addresses)
        out.append(
            BGPAdvertisement(
                name=pool,
                pools=(pool,),
                aggregation_length=length,
                aggregation_length_v6=length_v6,
                local_pref=raw.get("localPref", 0),
                communities=tuple(community_value(c, aliases) for c in texts),
            )
        )
    return protocol, tuple(out)


def check_bfd_echo(
    pools: Mapping[str, Sequence[str]],
    ads_by_pool: Mapping[str, Sequence[BGPAdvertisement]],
    all_peers: Sequence[Peer],
    profiles: Mapping[str, BFDProfile],
) -> None:
    """MetalLB's ``validateConfig``: no BFD echo mode towards a peer that gets IPv6 routes."""
    echo = {
        p.name for p in all_peers if p.bfd_profile in profiles and profiles[p.bfd_profile].echo_mode
    }
    if not echo:
        return
    for pool, addresses in pools.items():
        if 6 not in _families(addresses):
            continue
        for ad in ads_by_pool.get(pool, ()):
            targets = [p.name for p in all_peers if not ad.peers or p.name in ad.peers]
            for peer in targets:
                if peer in echo:
                    raise ConfigError(
                        f"pool {pool} has bgpadvertisement {ad.name} which references peer "
                        f"{peer} which has bfd echo enabled, which is not possible"
                    )
