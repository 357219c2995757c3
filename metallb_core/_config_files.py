"""Which MetalLB configuration a file's documents hold, and the config they make (pure).

The CLI reads a file into documents (YAML read as Go reads it, or JSON) and hands them here:

- a ``ConfigMap`` (v0.10-v0.12; ``kubectl get cm config -o yaml`` or ``-o json``): its
  ``data.config`` text is YAML, whatever the file's format, and goes to ``parse_configmap``;
- Helm values (``configInline:``, the v0.10-v0.12 chart) go to ``parse_configmap``;
- a bare ``config`` document (no ``kind``; ``peers``, ``address-pools``, ...) or an empty file
  (MetalLB's empty configuration) goes to ``parse_configmap``;
- otherwise MetalLB's objects go to ``parse_resources``; a file that holds none of them is
  not a MetalLB configuration (``LookupError``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from metallb_core._config import Config
from metallb_core._parse import parse_configmap, parse_resources

METALLB_KINDS = frozenset(
    {
        "IPAddressPool",
        "L2Advertisement",
        "BGPAdvertisement",
        "BGPPeer",
        "BFDProfile",
        "Community",
        "AddressPool",
    }
)
"""The kinds of ``metallb.io`` that ``parse_resources`` reads."""


def config_from_documents(docs: Sequence[Any], read_yaml: Callable[[str], list[Any]]) -> Config:
    """The config the documents hold; ``read_yaml`` reads a ConfigMap's ``config`` text.

    Raises ``ConfigError`` for an invalid config and ``LookupError`` when the documents hold
    no MetalLB configuration.
    """
    if not docs:
        return parse_configmap(None)
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") == "ConfigMap":
            raw = (doc.get("data") or {}).get("config")
            if not isinstance(raw, str):
                raise LookupError("the ConfigMap has no 'config' key in its data")
            inner = read_yaml(raw)
            return parse_configmap(inner[0] if inner else None)
    if len(docs) == 1 and not (isinstance(docs[0], Mapping) and "kind" in docs[0]):
        doc = docs[0]
        if isinstance(doc, Mapping) and "configInline" in doc:
            return parse_configmap(doc["configInline"])
        return parse_configmap(doc)
    if not all(isinstance(d, Mapping) for d in docs):
        raise LookupError("expected Kubernetes objects or a MetalLB config document")
    if not any(d.get("kind") in METALLB_KINDS for d in docs):
        raise LookupError("no ConfigMap, MetalLB config document or MetalLB object found")
    return parse_resources(docs)


def summary(config: Config) -> str:
    """One line: what the config holds."""
    names = ", ".join(p.name for p in config.pools)
    parts = [
        f"{len(config.pools)} pools ({names})",
        f"{len(config.l2_advertisements)} L2 advertisement(s)",
    ]
    if config.peers or config.bgp_advertisements or config.bfd_profiles:
        parts.append(f"{len(config.bgp_advertisements)} BGP advertisement(s)")
        parts.append(f"{len(config.peers)} BGP peer(s)")
    if config.bfd_profiles:
        parts.append(f"{len(config.bfd_profiles)} BFD profile(s)")
    return ", ".join(parts)
