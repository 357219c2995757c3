"""``metallb-core convert CONFIGMAP [--services SERVICES]``: the ConfigMap as CRDs, proven.

Prints the ``metallb.io`` objects equivalent to a v0.10-v0.12 ConfigMap (as MetalLB's
``configmaptocrs`` converter writes them, :mod:`metallb_core._convert`) on stdout, ready for
``kubectl apply -f -``. On stderr it proves the conversion: the old and the new config are
planned on the same Services (``--services``; without it, one Service per pool asking for
it, and one asking for nothing) and every Service must get the same address from both;
otherwise the Services that would move are named and the exit status is 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TextIO

from metallb_core import _yaml
from metallb_core._config import Config
from metallb_core._converge import converge_all
from metallb_core._convert import HEADER, convert_configmap
from metallb_core._errors import ConfigError
from metallb_core._parse import parse_configmap, parse_resources
from metallb_core._state import State
from metallb_core.vocabulary import service_key


class NotAConfigMap(Exception):
    """The file holds no ConfigMap, config document or Helm values to convert."""


def _document(docs: list[Any]) -> Any:
    if any(isinstance(d, Mapping) and "kind" in d for d in docs) and not any(
        isinstance(d, Mapping) and d.get("kind") == "ConfigMap" for d in docs
    ):
        raise NotAConfigMap("no ConfigMap or config document to convert")
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") == "ConfigMap":
            text = (doc.get("data") or {}).get("config") or ""
            inner = _yaml.load_all(text)
            return inner[0] if inner else None
    if len(docs) == 1 and isinstance(docs[0], Mapping) and "configInline" in docs[0]:
        return docs[0]["configInline"]
    return docs[0] if docs else None


def _probe_services(config: Config) -> list[dict[str, Any]]:
    """One Service per pool that asks for that pool, and one that asks for nothing."""
    out = []
    for i, pool in enumerate([None, *config.pools]):
        notes = {} if pool is None else {"metallb.io/address-pool": pool.name}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"probe-{i}", "namespace": "default", "annotations": notes},
                "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.1"],
                         "ports": [{"port": 80, "protocol": "TCP"}]},
            }
        )  # fmt: skip
    return out


def prove(old: Config, new: Config, services: list[dict[str, Any]]) -> list[str]:
    """The Services that get another address (or none) under ``new``: ``key: old -> new``."""
    _, before = converge_all(State.empty(old), services)
    _, after = converge_all(State.empty(new), services)
    moved = []
    for svc in sorted(services, key=service_key):
        key = service_key(svc)
        a, b = before.get(key), after.get(key)
        ips_a = list(a.ingress or ()) if a else []
        ips_b = list(b.ingress or ()) if b else []
        if ips_a != ips_b:
            shown_a = ", ".join(ips_a) or "<pending>"
            moved.append(f"{key}: {shown_a} -> {', '.join(ips_b) or '<pending>'}")
    return moved


def convert(
    config_path: str,
    services_path: str | None,
    load_documents: Callable[[str], list[Any]],
    load_services: Callable[[str], list[dict[str, Any]]],
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        document = _document(load_documents(config_path))
    except _yaml.YAMLError as problem:
        err.write(f"invalid: could not parse config: {problem}\n")
        return 1
    except NotAConfigMap as problem:
        err.write(f"metallb-core: {config_path}: {problem}\n")
        return 2
    try:
        objects = convert_configmap(document)
        old = parse_configmap(document)
        new = parse_resources(objects)
    except ConfigError as problem:
        err.write(f"invalid: {problem}\n")
        return 1
    out.write(HEADER + "\n" + _yaml.dump_all(objects))
    services = load_services(services_path) if services_path else _probe_services(old)
    moved = prove(old, new, services)
    what = (
        f"the {len(services)} Services of {services_path}"
        if services_path
        else (f"{len(services)} probe Services (one per pool, one without a pool)")
    )
    if not moved:
        err.write(f"# proof: plan gives {what} the same address with the converted objects\n")
        return 0
    err.write(f"# proof failed: {len(moved)} of {what} would change:\n")
    for line in moved:
        err.write(f"#   {line}\n")
    return 1
