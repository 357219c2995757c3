"""Configuration from MetalLB's two formats: the v0.10-v0.12 ConfigMap and the CRDs.

Both raise :class:`ConfigError` with MetalLB's wording and validation order: pools are checked
one by one in document order, each pool's own errors (wrapped with which pool it is) before
the duplicate-name and overlap checks against the pools before it. The ConfigMap format is in
:mod:`metallb_core._configmap`, the BGP kinds in :mod:`metallb_core._bgp_resources`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from metallb_core import _bgp_resources as bgp
from metallb_core._bgp import BGPAdvertisement
from metallb_core._config import (
    Config,
    ConfigChecker,
    L2Advertisement,
    Pool,
    ServiceAllocation,
)
from metallb_core._configmap import CONFIGMAP_L2_ADVERTISEMENT, parse_configmap
from metallb_core._errors import ConfigError
from metallb_core._schemas import SPECS, check_object
from metallb_core._selectors import LabelSelector, selector_from

# -- the CRDs ----------------------------------------------------------------------------------


def _flatten(objects: Iterable[Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        kind = obj.get("kind")
        items = obj.get("items")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            out.extend(_flatten(items))
        elif kind != "List":
            out.append(obj)
    return out


_PREFIXES = {
    "IPAddressPool": "parsing address pool {name}: ",
    "AddressPool": "parsing address pool {name}: ",
    "L2Advertisement": "L2Advertisement {name}: ",
    "BGPPeer": "parsing peer {name} ",
}


def _check_shapes(items: Sequence[Mapping[str, Any]]) -> None:
    """Every object's shape (:mod:`metallb_core._schemas`) before any meaning is read.

    An object without a ``kind`` is ignored like any kind not read here, but a ``kind`` that
    is present and not a string is refused: it is a broken manifest (the API server and
    ``kubectl`` refuse it), not an object of some other kind.
    """
    for obj in items:
        kind = obj.get("kind")
        if kind is not None and not isinstance(kind, str):
            meta = obj.get("metadata")
            name = meta.get("name") if isinstance(meta, Mapping) else None
            name = name if isinstance(name, str) else ""
            value = json.dumps(kind, default=repr, sort_keys=True)
            where = f' (object "{name}")' if name else ""
            raise ConfigError(
                f"kind: Invalid value: {value}: kind must be a string{where}", name=name or None
            )
        if kind not in _KINDS_READ:
            continue
        try:
            check_object(obj)
        except ConfigError as err:
            meta = obj.get("metadata")
            name = meta.get("name") if isinstance(meta, Mapping) else None
            name = name if isinstance(name, str) else ""
            prefix = _PREFIXES.get(str(kind), "{kind} {name}: ")
            raise ConfigError(
                prefix.format(kind=kind, name=name) + str(err), kind=str(kind), name=name
            ) from None


_KINDS_READ = {*SPECS, "Secret", "Node", "Namespace"}


def _check_one_namespace(items: Sequence[Mapping[str, Any]]) -> str:
    """MetalLB reads its objects from one namespace, and its webhooks refuse the others.

    Objects that name no namespace are taken to be in it (``kubectl apply -n``); the first
    namespace named is MetalLB's, and an object of a MetalLB kind in another one is refused
    with the webhooks' message.
    """
    first = ""
    for obj in items:
        if obj.get("kind") not in SPECS:
            continue
        namespace = bgp.namespace_of(obj)
        if not namespace:
            continue
        if not first:
            first = namespace
        elif namespace != first:
            name = bgp.name_of(obj)
            raise ConfigError(
                f"{obj.get('kind')} {name}: resource must be created in {first} namespace",
                kind=str(obj.get("kind")),
                name=name,
            )
    return first or bgp.METALLB_NAMESPACE


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


def _select_pools(
    pools: Sequence[Pool],
    order: Mapping[str, int],
    names: Sequence[str],
    selectors: Sequence[LabelSelector],
) -> tuple[str, ...]:
    """The pools an advertisement names or selects, in config order (unknown names ignored).

    Names alone cost O(names log names), not O(pools): thousands of advertisements that
    each name their pool stay linear in total.
    """
    if not selectors:
        return tuple(sorted({n for n in names if n in order}, key=order.__getitem__))
    wanted = set(names)
    return tuple(
        p.name for p in pools if p.name in wanted or any(s.matches(p.labels) for s in selectors)
    )


def _l2_from_crd(
    obj: Mapping[str, Any], pools: Sequence[Pool], order: Mapping[str, int]
) -> L2Advertisement | None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    spec = obj.get("spec") or {}
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
        selected = _select_pools(pools, order, names, pool_selectors)
        if not selected:
            return None  # selectors or names that match no pool apply to no pool
    return L2Advertisement(
        name=name,
        pools=selected,
        node_selectors=node_selectors,
        interfaces=tuple(spec.get("interfaces") or ()),
        service_selectors=service_selectors,
    )


def _first_duplicate(objects: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    """The first pair ``i < j`` of equal objects, in MetalLB's loop order, in O(n)."""
    seen: dict[str, int] = {}
    best: tuple[int, int] | None = None
    for j, obj in enumerate(objects):
        canonical = json.dumps(obj, sort_keys=True, default=repr)
        i = seen.setdefault(canonical, j)
        if i != j and (best is None or i < best[0]):
            best = (i, j)
    return best


def _by_kind(items: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [o for o in items if o.get("kind") == kind]


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _legacy_pool(
    obj: Mapping[str, Any], aliases: Mapping[str, str]
) -> tuple[Pool, str, tuple[BGPAdvertisement, ...]]:
    """A legacy ``AddressPool`` (``metallb.io/v1beta1``, read by MetalLB up to v0.13)."""
    name = bgp.name_of(obj)
    try:
        spec = bgp.spec_of(obj.get("spec"))
        pool = Pool(
            name=name,
            cidrs=list(spec.get("addresses") or ()),
            auto_assign=spec.get("autoAssign", True),
            avoid_buggy_ips=spec.get("avoidBuggyIPs", False),
            labels=_labels(obj),
        )
        protocol, ads = bgp.legacy_pool_advertisements(name, spec, aliases)
    except ConfigError as err:
        raise ConfigError(
            f"parsing address pool {name}: {err}", kind="AddressPool", name=name
        ) from None
    return pool, protocol, ads


@dataclasses.dataclass
class _PoolTable:
    """The pools read so far, in config order, with what the BGP advertisements need of them."""

    checker: ConfigChecker = dataclasses.field(default_factory=ConfigChecker)
    pools: list[Pool] = dataclasses.field(default_factory=list)
    addresses: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Each pool's ``addresses`` as written (aggregation lengths are checked per entry)."""
    advertisements: dict[str, list[BGPAdvertisement]] = dataclasses.field(default_factory=dict)
    """The BGP advertisements of each pool so far (legacy ones first)."""
    legacy_l2: list[str] = dataclasses.field(default_factory=list)
    """The legacy ``layer2`` ``AddressPool`` names, each announced by its own advertisement."""

    def add(self, pool: Pool, obj: Mapping[str, Any], kind: str) -> None:
        """``pool`` (read from ``obj``) after its name and ranges are checked against the rest."""
        try:
            self.checker.add(pool)
        except ConfigError as err:
            raise ConfigError(str(err), kind=kind, name=pool.name) from None
        self.pools.append(pool)
        self.addresses[pool.name] = [
            str(a) for a in ((obj.get("spec") or {}).get("addresses") or ())
        ]


def _read_pools(
    items: Sequence[Mapping[str, Any]],
    namespaces: Mapping[str, Mapping[str, str]],
    aliases: Mapping[str, str],
) -> _PoolTable:
    """The ``IPAddressPool`` objects, then the legacy ``AddressPool`` ones, one by one."""
    table = _PoolTable()
    for obj in _by_kind(items, "IPAddressPool"):
        table.add(_pool_from_crd(obj, namespaces), obj, "IPAddressPool")
    for obj in _by_kind(items, "AddressPool"):
        pool, protocol, legacy_ads = _legacy_pool(obj, aliases)
        table.add(pool, obj, "AddressPool")
        table.advertisements[pool.name] = list(legacy_ads)
        if protocol == "layer2":
            table.legacy_l2.append(pool.name)
    return table


def _l2_advertisements(
    items: Sequence[Mapping[str, Any]], table: _PoolTable, order: Mapping[str, int]
) -> list[L2Advertisement]:
    """The legacy ``layer2`` pools' advertisements, then the ``L2Advertisement`` objects.

    An advertisement whose names or selectors match no pool is dropped.
    """
    l2_ads = [L2Advertisement(name=name, pools=(name,)) for name in table.legacy_l2]
    for obj in _by_kind(items, "L2Advertisement"):
        try:
            l2 = _l2_from_crd(obj, table.pools, order)
        except ConfigError as err:
            raise ConfigError(str(err), kind="L2Advertisement", name=bgp.name_of(obj)) from None
        if l2 is not None:
            l2_ads.append(l2)
    return l2_ads


def _check_distinct_bgp_advertisements(objects: Sequence[Mapping[str, Any]]) -> None:
    """No two ``BGPAdvertisement`` objects are equal (numbered from 1, as MetalLB does)."""
    duplicate = _first_duplicate(objects)
    if duplicate is not None:
        i, j = duplicate
        raise ConfigError(
            "duplicate definition of bgpadvertisements. "
            f"advertisement {i + 1} and {j + 1} are equal",
            kind="BGPAdvertisement",
            name=bgp.name_of(objects[i]),
        )


def _bgp_advertisement_from_crd(
    obj: Mapping[str, Any],
    table: _PoolTable,
    order: Mapping[str, int],
    aliases: Mapping[str, str],
    nodes: Mapping[str, Mapping[str, str]],
) -> BGPAdvertisement:
    """One ``BGPAdvertisement`` checked against each pool it applies to, and recorded there.

    Its ``pools`` are the ones it names or selects, or empty (all pools) when it does neither.
    """
    ad = bgp.bgp_advertisement(obj, aliases, nodes)
    spec = obj.get("spec") or {}
    names = list(spec.get("ipAddressPools") or ())
    selectors = [
        selector_from(s, "ip pool label selector") for s in spec.get("ipAddressPoolSelectors") or ()
    ]
    if names or selectors:
        targets = list(_select_pools(table.pools, order, names, selectors))
    else:
        targets = [p.name for p in table.pools]
    for target in targets:
        previous = table.advertisements.setdefault(target, [])
        bgp.check_advertisement_for_pool(ad, table.addresses[target], previous)
        previous.append(ad)
    return ad.model_copy(update={"pools": tuple(targets) if names or selectors else ()})


def _bgp_advertisements(
    items: Sequence[Mapping[str, Any]],
    table: _PoolTable,
    order: Mapping[str, int],
    aliases: Mapping[str, str],
    nodes: Mapping[str, Mapping[str, str]],
) -> list[BGPAdvertisement]:
    """The legacy pools' BGP advertisements, then the ``BGPAdvertisement`` objects."""
    objects = _by_kind(items, "BGPAdvertisement")
    _check_distinct_bgp_advertisements(objects)
    bgp_ads = [a for ads in table.advertisements.values() for a in ads]
    for obj in objects:
        try:
            bgp_ads.append(_bgp_advertisement_from_crd(obj, table, order, aliases, nodes))
        except ConfigError as err:
            raise ConfigError(str(err), kind="BGPAdvertisement", name=bgp.name_of(obj)) from None
    return bgp_ads


def parse_resources(objects: Iterable[Mapping[str, Any]]) -> Config:
    """A :class:`Config` from MetalLB's objects, validated as MetalLB's parser does.

    Reads ``IPAddressPool``, ``L2Advertisement``, ``BGPAdvertisement``, ``BGPPeer``
    (``v1beta1``/``v1beta2``), ``BFDProfile``, ``Community``, the legacy ``AddressPool``
    (read by MetalLB up to v0.13), and the ``Namespace`` (for ``namespaceSelectors``),
    ``Node`` (for advertisements' ``nodeSelectors``) and ``Secret`` (for a peer's
    ``passwordSecret``) objects given; other kinds (and objects without one) are ignored,
    a ``kind`` that is not a string is a ``ConfigError``, and ``List`` objects are unpacked.
    The checks run in MetalLB's order: BFD profiles, peers, communities, pools, L2
    advertisements, BGP advertisements, then BFD echo mode against IPv6 pools. An L2
    advertisement whose pool names or selectors match no pool is dropped (it applies to no
    pool).

    >>> cfg = parse_resources([
    ...     {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
    ...      "metadata": {"name": "default"}, "spec": {"addresses": ["10.0.0.0/24"]}},
    ...     {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
    ...      "metadata": {"name": "l2"}, "spec": {"ipAddressPools": ["default"]}}])
    >>> [p.name for p in cfg.pools], [a.pools for a in cfg.l2_advertisements]
    (['default'], [('default',)])
    """
    items = _flatten(objects)
    _check_shapes(items)
    metallb_namespace = _check_one_namespace(items)
    namespaces = {bgp.name_of(o): _labels(o) for o in items if o.get("kind") == "Namespace"}
    nodes = {bgp.name_of(o): _labels(o) for o in items if o.get("kind") == "Node"}
    secrets = {
        (bgp.namespace_of(o) or metallb_namespace, bgp.name_of(o)): o
        for o in items
        if o.get("kind") == "Secret"
    }

    profiles = bgp.bfd_profiles(_by_kind(items, "BFDProfile"))
    peers = bgp.peers(_by_kind(items, "BGPPeer"), profiles, secrets, metallb_namespace)
    aliases = bgp.communities(_by_kind(items, "Community"))
    table = _read_pools(items, namespaces, aliases)
    order = {p.name: i for i, p in enumerate(table.pools)}
    l2_ads = _l2_advertisements(items, table, order)
    bgp_ads = _bgp_advertisements(items, table, order, aliases, nodes)
    bgp.check_bfd_echo(table.addresses, table.advertisements, peers, profiles)
    return Config(
        pools=table.pools,
        l2_advertisements=l2_ads,
        peers=peers,
        bfd_profiles=tuple(profiles.values()),
        bgp_advertisements=bgp_ads,
        communities=aliases,
    )


__all__ = ["CONFIGMAP_L2_ADVERTISEMENT", "parse_configmap", "parse_resources"]
