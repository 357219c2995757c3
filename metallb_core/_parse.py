"""Configuration from MetalLB's two formats: the v0.10 ConfigMap and the v1beta1 CRDs.

Both raise :class:`ConfigError` with MetalLB's wording and validation order: pools are checked
one by one in document order, each pool's own errors (wrapped with which pool it is) before
the duplicate-name and overlap checks against the pools before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from metallb_core._config import (
    Config,
    ConfigChecker,
    L2Advertisement,
    Pool,
    ServiceAllocation,
)
from metallb_core._errors import ConfigError
from metallb_core._selectors import LabelSelector, selector_from

CONFIGMAP_L2_ADVERTISEMENT = "configmap-layer2"
"""The name of the advertisement that :func:`parse_configmap` makes for ``layer2`` pools."""

# -- the v0.10 ConfigMap ----------------------------------------------------------------------

# The document's shape: key -> expected type, or a nested shape (dict) / list of shapes.
_SELECTOR_SHAPE: dict[str, Any] = {
    "match-labels": "map",
    "match-expressions": [{"key": str, "operator": str, "values": [str]}],
}
_PEER_SHAPE: dict[str, Any] = {
    "my-asn": int,
    "peer-asn": int,
    "peer-address": str,
    "source-address": str,
    "peer-port": int,
    "hold-time": str,
    "router-id": str,
    "password": str,
    "node-selectors": [_SELECTOR_SHAPE],
}
_POOL_SHAPE: dict[str, Any] = {
    "name": str,
    "protocol": str,
    "addresses": [str],
    "avoid-buggy-ips": bool,
    "auto-assign": bool,
    "bgp-advertisements": [
        {
            "aggregation-length": int,
            "aggregation-length-v6": int,
            "localpref": int,
            "communities": [str],
        }
    ],
}
_DOCUMENT_SHAPE: dict[str, Any] = {
    "peers": [_PEER_SHAPE],
    "bgp-communities": "map",
    "address-pools": [_POOL_SHAPE],
}
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean"}


def _check_shape(value: Any, shape: Any, where: str) -> None:
    """Strict decoding like v0.10's: unknown keys and wrong types are parse errors."""
    if value is None:
        return
    if isinstance(shape, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"could not parse config: {where or 'document'}: expected a mapping")
        for key, item in value.items():
            if key not in shape:
                raise ConfigError(f'could not parse config: unknown field "{where}{key}"')
            _check_shape(item, shape[key], f"{where}{key}.")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise ConfigError(f"could not parse config: {where.rstrip('.')}: expected a list")
        for i, item in enumerate(value):
            _check_shape(item, shape[0], f"{where.rstrip('.')}[{i}].")
    elif shape == "map":
        if not isinstance(value, Mapping):
            raise ConfigError(f"could not parse config: {where.rstrip('.')}: expected a mapping")
    else:
        ok = isinstance(value, shape) and (shape is bool or not isinstance(value, bool))
        if not ok:
            raise ConfigError(
                f"could not parse config: {where.rstrip('.')}: expected {_TYPE_NAMES[shape]}, "
                f"got {value!r}"
            )


def _check_bgp_advertisements(pool: Pool, ads: Sequence[Mapping[str, Any]]) -> None:
    v4_lengths = [n.prefixlen for n in pool.cidrs if n.version == 4]
    for ad in ads:
        length = ad.get("aggregation-length", 32)
        if length > 32:
            raise ConfigError(f"parsing BGP communities: invalid aggregation length {length}")
        if v4_lengths and length < max(v4_lengths):
            net = next(n for n in pool.cidrs if n.version == 4 and n.prefixlen > length)
            raise ConfigError(
                f"parsing BGP communities: invalid aggregation length {length}: "
                f'prefix "{net}" in this pool is more specific than the aggregation length'
            )


def parse_configmap(document: Mapping[str, Any] | None) -> Config:
    """A :class:`Config` from MetalLB v0.10's ConfigMap (the parsed YAML of its ``config`` key).

    Strict like v0.10: an unknown key or a wrong type is ``could not parse config: ...``.
    ``layer2`` pools are announced by one advertisement named ``configmap-layer2``; ``bgp``
    pools allocate but are not announced (this library speaks Layer 2 only). The result's
    ``source`` is ``"configmap"``: v0.10 documents the ``metallb.universe.tf/`` annotations,
    so :func:`converge` gives no ``deprecatedAnnotation`` warning under it.

    >>> pool = {"name": "default", "protocol": "layer2", "addresses": ["192.168.1.240/28"]}
    >>> cfg = parse_configmap({"address-pools": [pool]})
    >>> [p.name for p in cfg.pools], cfg.l2_advertisements[0].pools
    (['default'], ('default',))
    """
    if document is None:
        return Config(source="configmap")
    _check_shape(document, _DOCUMENT_SHAPE, "")
    for i, peer in enumerate(document.get("peers") or (), start=1):
        _check_peer(i, peer)
    checker = ConfigChecker()
    pools: list[Pool] = []
    layer2: list[str] = []
    for i, raw in enumerate(document.get("address-pools") or (), start=1):
        try:
            pool = Pool(
                name=raw.get("name") or "",
                cidrs=list(raw.get("addresses") or ()),
                auto_assign=raw.get("auto-assign", True),
                avoid_buggy_ips=raw.get("avoid-buggy-ips", False),
            )
            protocol = raw.get("protocol")
            ads = raw.get("bgp-advertisements")
            if protocol == "layer2":
                if ads:
                    raise ConfigError(
                        "cannot have bgp-advertisements configuration element "
                        "in a layer2 address pool"
                    )
                layer2.append(pool.name)
            elif protocol == "bgp":
                _check_bgp_advertisements(pool, ads or ())
            elif not protocol:
                raise ConfigError("address pool is missing the protocol field")
            else:
                raise ConfigError(f'unknown protocol "{protocol}"')
        except ConfigError as err:
            raise ConfigError(f"parsing address pool #{i}: {err}") from None
        checker.add(pool)
        pools.append(pool)
    ads_out = (L2Advertisement(name=CONFIGMAP_L2_ADVERTISEMENT, pools=layer2),) if layer2 else ()
    return Config(pools=pools, l2_advertisements=ads_out, source="configmap")


def _check_peer(i: int, peer: Mapping[str, Any]) -> None:
    problem = None
    if not peer.get("my-asn"):
        problem = "missing local ASN"
    elif not peer.get("peer-asn"):
        problem = "missing peer ASN"
    elif not peer.get("peer-address"):
        problem = "missing peer address"
    if problem:
        raise ConfigError(f"parsing peer #{i}: {problem}")


# -- the CRDs ----------------------------------------------------------------------------------

_POOL_SPEC_KEYS = {"addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"}
_ALLOCATION_KEYS = {"priority", "namespaces", "namespaceSelectors", "serviceSelectors"}
_L2_SPEC_KEYS = {
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "nodeSelectors",
    "interfaces",
    "serviceSelectors",
    "preferredNodeSelectors",
}


def _flatten(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for obj in objects:
        if obj.get("kind") == "List" or (obj.get("kind", "").endswith("List") and "items" in obj):
            out.extend(_flatten(obj.get("items") or ()))
        else:
            out.append(obj)
    return out


def _unknown_keys(spec: Mapping[str, Any], known: set[str], what: str) -> None:
    for key in spec:
        if key not in known:
            raise ConfigError(f'{what}: unknown field "{key}"')


def _selectors(values: Any, what: str, field: str) -> tuple[LabelSelector, ...]:
    """Selectors from a list of dicts; an exact duplicate is MetalLB's duplicate error."""
    out: list[LabelSelector] = []
    for value in values or ():
        selector = selector_from(value, f"{what} label selector")
        if selector in out:
            raise ConfigError(f"duplicate definition of {field} {selector}")
        out.append(selector)
    return tuple(out)


def _wrapped_selectors(values: Any, kind: str, pool: str) -> tuple[LabelSelector, ...]:
    try:
        return _selectors(values, kind, f"{kind}Selectors")
    except ConfigError as err:
        if str(err).startswith("duplicate definition"):
            raise
        raise ConfigError(f"invalid {kind} label selector in ip pool {pool}: {err}") from None


def _service_allocation(
    raw: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, str]], pool: str
) -> ServiceAllocation:
    _unknown_keys(raw, _ALLOCATION_KEYS, "serviceAllocation")
    explicit = list(raw.get("namespaces") or ())
    if len(set(explicit)) != len(explicit):
        raise ConfigError("duplicate definition in namespaces field")
    ns_selectors = _wrapped_selectors(raw.get("namespaceSelectors"), "namespace", pool)
    svc_selectors = _wrapped_selectors(raw.get("serviceSelectors"), "service", pool)
    matched = {
        name
        for name, labels in namespaces.items()
        if any(sel.matches(labels) for sel in ns_selectors)
    }
    return ServiceAllocation(
        priority=raw.get("priority") or 0,
        namespaces=frozenset(explicit) | matched,
        service_selectors=svc_selectors,
        namespace_selectors=ns_selectors,
    )


def _pool_from_crd(obj: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, str]]) -> Pool:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    spec = obj.get("spec") or {}
    try:
        _unknown_keys(spec, _POOL_SPEC_KEYS, "spec")
        pool = Pool(
            name=name,
            cidrs=list(spec.get("addresses") or ()),
            auto_assign=spec.get("autoAssign", True),
            avoid_buggy_ips=spec.get("avoidBuggyIPs", False),
            labels=meta.get("labels") or {},
        )
        raw_allocation = spec.get("serviceAllocation")
        if raw_allocation is None:
            return pool
        return Pool(
            name=pool.name,
            cidrs=pool.cidrs,
            auto_assign=pool.auto_assign,
            avoid_buggy_ips=pool.avoid_buggy_ips,
            labels=pool.labels,
            service_allocation=_service_allocation(raw_allocation, namespaces, name),
        )
    except ConfigError as err:
        raise ConfigError(
            f"parsing address pool {name}: {err}", kind="IPAddressPool", name=name
        ) from None


def _l2_from_crd(obj: Mapping[str, Any], pools: Sequence[Pool]) -> L2Advertisement | None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    spec = obj.get("spec") or {}
    _unknown_keys(spec, _L2_SPEC_KEYS, f"L2Advertisement {name}: spec")
    names = list(spec.get("ipAddressPools") or ())
    for i, pool_name in enumerate(names):
        if pool_name in names[:i]:
            raise ConfigError(f'duplicate definition of ipAddressPools "{pool_name}"')
    pool_selectors = _selectors(
        spec.get("ipAddressPoolSelectors"), "ip pool", "ipAddressPoolSelectors"
    )
    node_selectors = _selectors(spec.get("nodeSelectors"), "node", "nodeSelectors")
    service_selectors = _selectors(spec.get("serviceSelectors"), "service", "serviceSelectors")
    selected: tuple[str, ...] = ()
    if names or pool_selectors:
        selected = tuple(
            p.name
            for p in pools
            if p.name in names or any(s.matches(p.labels) for s in pool_selectors)
        )
        if not selected:
            return None  # selectors or names that match no pool apply to no pool
    return L2Advertisement(
        name=name,
        pools=selected,
        node_selectors=node_selectors,
        interfaces=tuple(spec.get("interfaces") or ()),
        service_selectors=service_selectors,
    )


def parse_resources(objects: Iterable[Mapping[str, Any]]) -> Config:
    """A :class:`Config` from ``IPAddressPool``, ``L2Advertisement`` and ``Namespace`` objects.

    Other kinds are ignored and ``List`` objects are unpacked. ``namespaceSelectors`` are
    resolved against the ``Namespace`` objects given; an advertisement whose pool names or
    selectors match no pool is dropped (it applies to no pool).

    >>> cfg = parse_resources([
    ...     {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
    ...      "metadata": {"name": "default"}, "spec": {"addresses": ["10.0.0.0/24"]}},
    ...     {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
    ...      "metadata": {"name": "l2"}, "spec": {"ipAddressPools": ["default"]}}])
    >>> [p.name for p in cfg.pools], [a.pools for a in cfg.l2_advertisements]
    (['default'], [('default',)])
    """
    items = _flatten(objects)
    namespaces = {
        (o.get("metadata") or {}).get("name", ""): dict(
            (o.get("metadata") or {}).get("labels") or {}
        )
        for o in items
        if o.get("kind") == "Namespace"
    }
    checker = ConfigChecker()
    pools: list[Pool] = []
    for obj in items:
        if obj.get("kind") == "IPAddressPool":
            pool = _pool_from_crd(obj, namespaces)
            try:
                checker.add(pool)
            except ConfigError as err:
                raise ConfigError(str(err), kind="IPAddressPool", name=pool.name) from None
            pools.append(pool)
    ads = []
    for obj in items:
        if obj.get("kind") == "L2Advertisement":
            try:
                ads.append(_l2_from_crd(obj, pools))
            except ConfigError as err:
                name = (obj.get("metadata") or {}).get("name")
                raise ConfigError(str(err), kind="L2Advertisement", name=name) from None
    return Config(pools=pools, l2_advertisements=[a for a in ads if a is not None])
