"""Configuration values: pools, their service allocation rules, L2 advertisements, the config.

Constructing any of these validates it; invalid input raises :class:`ConfigError` with
MetalLB's wording (never a bare pydantic ``ValidationError``).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from metallb_core._addresses import (
    AddressError,
    IPNetwork,
    bounds,
    parse_entry,
    parse_exclude,
)
from metallb_core._bgp import BFDProfile, BGPAdvertisement, Peer
from metallb_core._errors import ConfigError
from metallb_core._model import FrozenMap, Model
from metallb_core._selectors import MATCH_EVERYTHING, LabelSelector, selector_from


def _networks(values: object, pool: str, parse: Any, label: str) -> tuple[IPNetwork, ...]:
    """Normalise CIDR strings, ranges and network objects, in order, ranges expanded in place."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ConfigError(f'invalid {label} list {values!r} in pool "{pool}": expected a list')
    out: list[IPNetwork] = []
    for value in values:
        if hasattr(value, "network_address") and hasattr(value, "prefixlen"):
            out.append(value)
            continue
        if not isinstance(value, str):
            raise ConfigError(f'invalid {label} "{value}" in pool "{pool}": not a string')
        try:
            out.extend(parse(value))
        except AddressError as err:
            raise ConfigError(f'invalid {label} "{value}" in pool "{pool}": {err}') from None
    return tuple(out)


class ServiceAllocation(Model):
    """Which Services a pool serves, and with which priority (``IPAddressPool.serviceAllocation``).

    ``namespaces`` is the resolved set of namespace names; ``namespace_selectors`` records the
    selectors they came from. A namespace restriction applies when either is non-empty, so
    selectors that matched no namespace allow no namespace (docs/design/core-api.md decision 6). A
    block with
    no namespaces, no namespace selectors and no service selectors matches every Service, as
    in MetalLB.

    >>> sa = ServiceAllocation(priority=10, namespaces=["web"])
    >>> sa.priority, sorted(sa.namespaces)
    (10, ['web'])
    """

    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid serviceAllocation"

    priority: int = 0
    namespaces: frozenset[str] = frozenset()
    service_selectors: tuple[LabelSelector, ...] = ()
    namespace_selectors: tuple[LabelSelector, ...] = ()

    @field_validator("namespaces", mode="before")
    @classmethod
    def _namespace_set(cls, value: object) -> object:
        if isinstance(value, str):
            raise ConfigError(f"invalid namespaces {value!r}: expected a list of names")
        return frozenset(value) if isinstance(value, (list, tuple, set, frozenset)) else value

    @field_validator("service_selectors", "namespace_selectors", mode="before")
    @classmethod
    def _selectors(cls, value: object) -> object:
        if isinstance(value, (list, tuple)):
            return tuple(selector_from(v, "label selector") for v in value)
        return value

    @property
    def restricts_namespaces(self) -> bool:
        """Whether only the namespaces in ``namespaces`` may use the pool."""
        return bool(self.namespaces or self.namespace_selectors)

    @property
    def effective_service_selectors(self) -> tuple[LabelSelector, ...]:
        """The service selectors, or "everything" for a block that restricts nothing."""
        if self.service_selectors:
            return self.service_selectors
        if self.restricts_namespaces:
            return ()
        return (MATCH_EVERYTHING,)

    def allows(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """MetalLB's pool/service compatibility: namespace AND (any selector)."""
        if self.restricts_namespaces and namespace not in self.namespaces:
            return False
        selectors = self.service_selectors
        return not selectors or any(s.matches(labels) for s in selectors)

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key: positive priorities first, ascending; unset (0 or less) last."""
        return (0, self.priority) if self.priority > 0 else (1, 0)


class Pool(Model):
    """An address pool.

    ``cidrs`` accepts CIDR strings (host bits masked), ``a-b`` ranges (white space around
    ``-`` allowed) and network objects; each range is replaced in place by its minimal
    ascending CIDR cover. ``exclude`` takes addresses, CIDRs and ranges never handed out.

    >>> p = Pool(name="default", cidrs=["10.0.0.5-10.0.0.8", "2001:db8::/126"])
    >>> [str(n) for n in p.cidrs]
    ['10.0.0.5/32', '10.0.0.6/31', '10.0.0.8/32', '2001:db8::/126']
    """

    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid pool"

    name: str
    cidrs: tuple[IPNetwork, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None
    labels: FrozenMap = Field(default_factory=FrozenMap)
    exclude: tuple[IPNetwork, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _parse_addresses(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("name")
        if not name:
            raise ConfigError("missing pool name")
        data = dict(data)
        cidrs = data.get("cidrs")
        if cidrs is None or (isinstance(cidrs, (list, tuple)) and not cidrs):
            raise ConfigError("pool has no prefixes defined")
        data["cidrs"] = _networks(cidrs, name, parse_entry, "CIDR")
        if "exclude" in data:
            data["exclude"] = _networks(data["exclude"], name, parse_exclude, "exclude")
        return data

    @model_validator(mode="after")
    def _exclusions_inside(self) -> Pool:
        spans = [bounds(n) for n in self.cidrs]
        for net in self.exclude:
            lo, hi = bounds(net)
            if not any(s <= hi and e >= lo for s, e in spans):
                raise ConfigError(
                    f'exclude "{net}" in pool "{self.name}" is outside the pool\'s addresses'
                )
        return self


class L2Advertisement(Model):
    """Which pools are announced in Layer 2, from which nodes and on which interfaces.

    ``pools == ()`` means every pool; empty ``node_selectors`` means every node; empty
    ``interfaces`` means every interface; empty ``service_selectors`` means every Service.

    >>> L2Advertisement(name="l2", pools=["default"]).pools
    ('default',)
    """

    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid L2Advertisement"

    name: str
    pools: tuple[str, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()

    @field_validator("node_selectors", "service_selectors", mode="before")
    @classmethod
    def _selectors(cls, value: object) -> object:
        if isinstance(value, (list, tuple)):
            return tuple(selector_from(v, "label selector") for v in value)
        return value

    def covers(self, pool: str) -> bool:
        """Whether this advertisement announces addresses of ``pool``."""
        return not self.pools or pool in self.pools


class _OverlapChecker:
    """Finds the first already-defined CIDR that a new one overlaps, in O(log n)."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._spans: list[tuple[int, int, int, IPNetwork]] = []  # (lo, hi, order, net)

    def check(self, net: IPNetwork, pool: str) -> None:
        lo, hi = bounds(net)
        i = bisect.bisect_right(self._starts, hi)
        hits = []
        j = i - 1
        # Defined CIDRs never overlap each other, so the hits are a contiguous run ending at j.
        while j >= 0 and self._spans[j][1] >= lo:
            hits.append(self._spans[j])
            j -= 1
        if hits:
            other = min(hits, key=lambda s: s[2])[3]
            raise ConfigError(
                f'CIDR "{net}" in pool "{pool}" overlaps with already defined CIDR "{other}"'
            )
        self._starts.insert(i, lo)
        self._spans.insert(i, (lo, hi, len(self._spans), net))


class Config(Model):
    """A whole configuration: pools in order, L2 advertisements, and the BGP side.

    Validates MetalLB's rules: pool names are unique and no CIDR overlaps another, within or
    between pools (the first offending CIDR in config order is named). ``peers``,
    ``bfd_profiles``, ``bgp_advertisements`` and ``communities`` (alias -> value) are what
    :func:`~metallb_core.parse_configmap` and :func:`~metallb_core.parse_resources` validated
    of the BGP side; allocation and Layer-2 announcement never read them.

    >>> a, b = Pool(name="a", cidrs=["10.0.0.0/8"]), Pool(name="b", cidrs=["10.1.0.0/16"])
    >>> try:
    ...     Config(pools=[a, b])
    ... except ConfigError as err:
    ...     print(err)
    CIDR "10.1.0.0/16" in pool "b" overlaps with already defined CIDR "10.0.0.0/8"
    """

    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid config"

    pools: tuple[Pool, ...] = ()
    l2_advertisements: tuple[L2Advertisement, ...] = ()
    peers: tuple[Peer, ...] = ()
    bfd_profiles: tuple[BFDProfile, ...] = ()
    bgp_advertisements: tuple[BGPAdvertisement, ...] = ()
    communities: FrozenMap = Field(default_factory=FrozenMap)
    #: The format the configuration came from: ``"configmap"`` when :func:`parse_configmap`
    #: read MetalLB v0.10's ConfigMap (where the ``metallb.universe.tf/`` annotations are the
    #: documented keys, so converge warns about none of them), else ``"crds"`` (the CRDs, and
    #: a Config built directly: MetalLB's current ``deprecatedAnnotation`` warnings).
    source: Literal["crds", "configmap"] = "crds"

    @model_validator(mode="after")
    def _unique_and_disjoint(self) -> Config:
        checker = ConfigChecker()
        for pool in self.pools:
            checker.add(pool)
        return self

    def pool(self, name: str) -> Pool | None:
        """The pool called ``name``, or ``None``."""
        return next((p for p in self.pools if p.name == name), None)


class ConfigChecker:
    """MetalLB's per-pool checks, run as each pool is added: duplicate names, then overlaps."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._overlaps = _OverlapChecker()

    def add(self, pool: Pool) -> None:
        if pool.name in self._names:
            raise ConfigError(f'duplicate definition of pool "{pool.name}"')
        self._names.add(pool.name)
        for net in pool.cidrs:
            self._overlaps.check(net, pool.name)
