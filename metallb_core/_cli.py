"""``metallb-core``: plan, explain and validate MetalLB configurations without a cluster.

This module and ``__main__`` are the only parts of :mod:`metallb_core` that do I/O; the
package's ``__init__`` never imports them. Every decision comes from the pure core.

- ``plan FILE [FILE ...]``: what ``kubectl get svc`` would show after the controller ran, and
  the events as ``kubectl describe`` shows them. A file holds a configuration (the v0.10
  ConfigMap or the CRDs), Services, or both: files with Services are successive snapshots of
  the cluster (each step starts from the previous step's state and statuses, and a Service
  missing from a step has been deleted), and a configuration is in force from the file that
  holds it on, as MetalLB reloads an edited ConfigMap.
- ``explain FILE [FILE ...] NAMESPACE/NAME``: every pool considered for one Service of the
  last step, in order, and why each was taken or skipped.
- ``validate CONFIG [--services SERVICES]``: the config's errors in MetalLB's words, and which
  Services would lose or change their IP under it.

Exit status: 0 fine, 1 the config is invalid or Services would change (``validate``),
2 a file cannot be read or understood (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from metallb_core._allocator import reload
from metallb_core._config import Config
from metallb_core._converge import Convergence, converge_all, is_ours
from metallb_core._errors import ConfigError, InvalidService
from metallb_core._explain import explain
from metallb_core._parse import parse_configmap, parse_resources
from metallb_core._service import (
    ALLOCATED_FROM_POOL,
    ingress_ips,
    request_from_service,
    service_key,
)
from metallb_core._state import State

_CONFIGMAP_KEYS = {"address-pools", "peers", "bgp-communities"}
_RESOURCE_KINDS = {"IPAddressPool", "L2Advertisement", "Namespace"}


class FileProblem(Exception):
    """A file that cannot be read or understood: reported as one line, exit status 2."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path}: {what}")


# -- reading files ------------------------------------------------------------------------


def _parse_text(path: str, text: str) -> list[Any]:
    stripped = text.lstrip()
    if path.endswith(".json") or stripped.startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as err:
            raise FileProblem(path, f"not valid JSON: {err}") from None
    try:
        import yaml
    except ImportError:
        raise FileProblem(
            path, "reading YAML needs PyYAML: pip install 'metallb-core[cli]' (or use JSON)"
        ) from None
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FileProblem(path, f"not valid YAML: {first}") from None


def load_documents(path: str) -> list[Any]:
    """Every document of a YAML or JSON file, with ``List`` objects unpacked."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise FileProblem(path, err.strerror or str(err)) from None
    except UnicodeDecodeError:
        raise FileProblem(path, "not a text file") from None
    out: list[Any] = []
    for doc in _parse_text(path, text):
        if isinstance(doc, Mapping) and isinstance(doc.get("items"), list):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def load_config(path: str) -> Config:
    """A config from a v0.10 ConfigMap, its ``config`` document, or MetalLB CRD objects.

    Raises :class:`ConfigError` for an invalid config, :class:`FileProblem` for anything else.
    """
    docs = load_documents(path)
    if not all(isinstance(d, Mapping) for d in docs):
        raise FileProblem(path, "expected Kubernetes objects or a MetalLB config document")
    for doc in docs:
        if doc.get("kind") == "ConfigMap":
            raw = (doc.get("data") or {}).get("config")
            if not isinstance(raw, str):
                raise FileProblem(path, "the ConfigMap has no 'config' key in its data")
            inner = _parse_text(path, raw)
            return parse_configmap(inner[0] if inner else None)
    if len(docs) == 1 and "kind" not in docs[0] and set(docs[0]) <= _CONFIGMAP_KEYS:
        return parse_configmap(docs[0])
    if not any(d.get("kind") in _RESOURCE_KINDS for d in docs):
        raise FileProblem(
            path, "no ConfigMap, MetalLB config document or IPAddressPool/L2Advertisement found"
        )
    return parse_resources(docs)


def _as_created(service: Mapping[str, Any]) -> dict[str, Any]:
    """A Service as the API server stores it: a manifest without ClusterIPs gets placeholder
    ones of the families it asks for, so its family can be read as in a cluster."""
    svc = copy.deepcopy(dict(service))
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if not spec.get("clusterIPs") and not spec.get("clusterIP"):
        families = spec.get("ipFamilies") or ["IPv4"]
        if spec.get("ipFamilyPolicy") == "RequireDualStack" and len(families) < 2:
            families = [families[0], "IPv6" if families[0] == "IPv4" else "IPv4"]
        spec["clusterIPs"] = ["10.96.0.1" if f == "IPv4" else "fd00::1" for f in families]
    return svc


def load_services(path: str) -> list[dict[str, Any]]:
    """The Services of a file (``kubectl get svc -A -o json/yaml`` output, or manifests)."""
    docs = load_documents(path)
    services = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == "Service"]
    if not services and docs:
        raise FileProblem(path, "no Service objects found")
    for svc in services:
        if not (svc.get("metadata") or {}).get("name"):
            raise FileProblem(path, "a Service has no metadata.name")
    return [_as_created(s) for s in services]


# -- plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One file given to ``plan`` or ``explain``: a configuration, Services, or both.

    ``services`` is ``None`` for a file that holds only a configuration (a ConfigMap edit with
    no change to the Services); ``raw`` keeps the Services as written, for display.
    """

    path: str
    config: Config | None
    services: list[dict[str, Any]] | None
    raw: dict[str, Mapping[str, Any]]
    title: tuple[str, ...]


def _is_config(doc: Any) -> bool:
    if not isinstance(doc, Mapping):
        return False
    if doc.get("kind") == "ConfigMap":
        return "config" in (doc.get("data") or {})
    return doc.get("kind") in _RESOURCE_KINDS - {"Namespace"}


def _title(path: str) -> tuple[str, ...]:
    """The comment lines a file starts with: what the step is about."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return tuple(lines)


def load_snapshot(path: str) -> Snapshot:
    """A file of ``plan``'s arguments: its configuration (a v0.10 ConfigMap, the ``config``
    document alone, or MetalLB CRD objects), if any, and its Services, if any."""
    docs = load_documents(path)
    bare = len(docs) == 1 and isinstance(docs[0], Mapping) and "kind" not in docs[0]
    config = _config_or_problem(path) if bare or any(_is_config(d) for d in docs) else None
    found = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == "Service"]
    if config is None and not found and docs:
        raise FileProblem(path, "no Service, ConfigMap or MetalLB configuration object found")
    for svc in found:
        if not (svc.get("metadata") or {}).get("name"):
            raise FileProblem(path, "a Service has no metadata.name")
    services = None if config is not None and not found else [_as_created(s) for s in found]
    return Snapshot(
        path=path,
        config=config,
        services=services,
        raw={service_key(s): s for s in found},
        title=_title(path),
    )


def _with_status(service: dict[str, Any], conv: Convergence | None) -> dict[str, Any]:
    """The Service as the controller left it after ``conv`` (status and pool annotation)."""
    if conv is None or conv.ingress is None:
        return service
    svc = copy.deepcopy(service)
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in conv.ingress]}}
    notes = svc.setdefault("metadata", {}).setdefault("annotations", {})
    if conv.pool is None:
        notes.pop(ALLOCATED_FROM_POOL, None)
    else:
        notes[ALLOCATED_FROM_POOL] = conv.pool
    return svc


def _ports(spec: Mapping[str, Any]) -> str:
    """``PORT(S)`` as kubectl shows it: ``80:31466/TCP`` (``port:nodePort/protocol``)."""
    out = []
    for port in spec.get("ports") or ():
        if not isinstance(port, Mapping):
            continue
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        out.append(f"{port.get('port')}{node}/{port.get('protocol') or 'TCP'}")
    return ",".join(out) or "<none>"


def _row(
    service: Mapping[str, Any], raw: Mapping[str, Any], conv: Convergence | None
) -> dict[str, Any]:
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    raw_spec = raw.get("spec") or {}
    if conv is not None and conv.ingress is not None:
        ips: list[str] = list(conv.ingress)
        pool = conv.pool
    else:
        ips = ingress_ips(service)
        pool = (meta.get("annotations") or {}).get(ALLOCATED_FROM_POOL)
    return {
        "namespace": meta.get("namespace") or "default",
        "name": meta.get("name"),
        "type": spec.get("type"),
        "clusterIP": raw_spec.get("clusterIP") or None,
        "ports": _ports(raw_spec),
        "externalIPs": ips,
        "pool": pool,
        "events": [e.model_dump() for e in conv.events] if conv else [],
    }


@dataclass
class Replay:
    """What ``plan`` found: one result per step, and the state and Services of the last one."""

    steps: list[dict[str, Any]]
    state: State
    services: list[dict[str, Any]]
    results: Mapping[str, Convergence]


def replay(snapshots: Sequence[Snapshot], lb_class: str | None) -> Replay:
    """Converge each step's Services, carrying state and statuses from step to step.

    A file that holds a configuration puts it in force from then on, as MetalLB reloads an
    edited ConfigMap without a restart (:func:`~metallb_core.reload`). Files before the first
    one with Services only set the configuration; a later configuration-only file is a step
    of its own, with the Services of the step before.
    """
    state: State | None = None
    config_from = ""
    changed = False
    previous: dict[str, dict[str, Any]] = {}
    services: list[dict[str, Any]] = []
    raw: dict[str, Mapping[str, Any]] = {}
    results: Mapping[str, Convergence] = {}
    steps: list[dict[str, Any]] = []
    for snap in snapshots:
        if snap.config is not None:
            state = State.empty(snap.config) if state is None else reload(state, snap.config)[0]
            config_from, changed = snap.path, True
        if snap.services is None and not steps:
            continue
        if state is None:
            raise FileProblem(
                snap.path,
                "no configuration before these Services: give a CONFIG file first,"
                " or put the ConfigMap in this file",
            )
        if snap.services is not None:
            services, raw = snap.services, dict(snap.raw)
        present = {service_key(s) for s in services}
        for key in previous:
            if key not in present:
                state = state._without(key)  # deleted: its addresses are free
        carried = []
        for svc in services:
            before = previous.get(service_key(svc))
            if before is not None and not ingress_ips(svc) and ingress_ips(before):
                svc = copy.deepcopy(svc)
                svc["status"] = before["status"]
                notes = svc.setdefault("metadata", {}).setdefault("annotations", {})
                pool = (before["metadata"].get("annotations") or {}).get(ALLOCATED_FROM_POOL)
                if pool is not None:
                    notes.setdefault(ALLOCATED_FROM_POOL, pool)
            carried.append(svc)
        state, results = converge_all(state, carried, lb_class=lb_class)
        rows = []
        previous = {}
        for svc in sorted(carried, key=service_key):
            key = service_key(svc)
            conv = results.get(key)
            previous[key] = _with_status(svc, conv)
            rows.append(_row(svc, raw.get(key, {}), conv))
        steps.append(
            {
                "file": snap.path,
                "title": list(snap.title),
                "config": config_from,
                "configChanged": changed,
                "pools": [p.name for p in state.config.pools],
                "services": rows,
            }
        )
        changed = False
    if state is None:
        raise FileProblem(snapshots[-1].path, "no Services to plan: give a SERVICES file")
    return Replay(steps, state, [previous[service_key(s)] for s in services], results)


def plan(
    snapshots: Sequence[Snapshot], lb_class: str | None, namespace: str | None = None
) -> list[dict[str, Any]]:
    """The result of every step (only the Services of ``namespace``, when given)."""
    steps = replay(snapshots, lb_class).steps
    if namespace is not None:
        for step in steps:
            step["services"] = [r for r in step["services"] if r["namespace"] == namespace]
    return steps


def _table(rows: list[list[str]], stream: TextIO, gap: str = "   ", indent: str = "") -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = gap.join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        stream.write(f"{indent}{line}\n")


def _external(row: Mapping[str, Any]) -> str:
    if row["externalIPs"]:
        return ",".join(row["externalIPs"])
    return "<pending>" if row["type"] == "LoadBalancer" else "<none>"


#: The event source ``kubectl describe`` shows in its ``From`` column for MetalLB's controller.
EVENT_SOURCE = "metallb-controller"


def print_plan(result: list[dict[str, Any]], stream: TextIO, namespace: str | None = None) -> None:
    """Per step, what ``kubectl get svc -A`` (``-n NAMESPACE``) would show, then each
    Service's new events as ``kubectl describe svc`` shows them."""
    for number, step in enumerate(result, start=1):
        if len(result) > 1:
            stream.write(f"== step {number}: {step['file']}\n")
        for line in step["title"]:
            stream.write(f"{line}\n")
        if step["configChanged"]:
            pools = ", ".join(step["pools"]) or "none"
            stream.write(f"config in force: {step['config']} (pools: {pools})\n")
        header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "POOL"]
        rows = [
            [
                r["name"],
                r["type"],
                r["clusterIP"] or "<unset>",
                _external(r),
                r["ports"],
                r["pool"] or "<none>",
            ]
            for r in step["services"]
        ]
        if namespace is None:
            header.insert(0, "NAMESPACE")
            for row, r in zip(rows, step["services"], strict=True):
                row.insert(0, r["namespace"])
        if rows:
            _table([header, *rows], stream)
        else:
            where = f"{namespace} namespace" if namespace else "any namespace"
            stream.write(f"No resources found in {where}.\n")
        for r in step["services"]:
            if not r["events"]:
                continue
            stream.write(f"\nkubectl describe svc -n {r['namespace']} {r['name']}:\nEvents:\n")
            events = [[e["type"], e["reason"], EVENT_SOURCE, e["message"]] for e in r["events"]]
            head = [["Type", "Reason", "From", "Message"], ["----", "------", "----", "-------"]]
            _table([*head, *events], stream, gap="  ", indent="  ")
        stream.write("\n")


# -- explain and validate ---------------------------------------------------------------------


def print_explain(
    snapshots: Sequence[Snapshot],
    key: str,
    lb_class: str | None,
    out: TextIO,
) -> int:
    """Replay the files as ``plan`` does, then explain ``key``'s allocation in the last step."""
    done = replay(snapshots, lb_class)
    target = next((s for s in done.services if service_key(s) == key), None)
    if target is None:
        raise FileProblem(key, "no such Service in the SERVICES file")
    state, conv = done.state, done.results[key]
    out.write(f"Service {key}\n")
    if not is_ours(target, lb_class):
        theirs = (target.get("spec") or {}).get("loadBalancerClass")
        mine = f"class {lb_class}" if lb_class else "no loadBalancerClass"
        out.write(
            f"  loadBalancerClass {theirs or '(none)'}: not handled by a controller for {mine}\n"
        )
        return 0
    try:
        request = request_from_service(target)
    except InvalidService as err:
        out.write(f"  cannot be read: {err}\n")
        return 0
    if (target.get("spec") or {}).get("type") != "LoadBalancer":
        out.write("  not a LoadBalancer Service: MetalLB gives it no address\n")
        return 0
    why = explain(state, request)
    out.write(f"  path: {why.path}\n  pools, in config order:\n")
    rows = [
        ["   ", v.pool, f"#{v.rank}" if v.rank else "-", v.verdict, v.reason] for v in why.pools
    ]
    if rows:
        _table(rows, out)
    if conv.ingress:
        out.write(f"  result: {', '.join(conv.ingress)} from pool {conv.pool}\n")
    else:
        out.write(f"  result: <pending>: {why.outcome}\n")
    for event in conv.events:
        out.write(f"  event: {event.type} {event.reason}: {event.message}\n")
    return 0


def validate(config_path: str, services_path: str | None, out: TextIO) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as err:
        out.write(f"invalid: {err}\n")
        return 1
    ads = len(config.l2_advertisements)
    names = ", ".join(p.name for p in config.pools)
    out.write(f"valid: {len(config.pools)} pools ({names}), {ads} L2 advertisement(s)\n")
    if services_path is None:
        return 0
    services = load_services(services_path)
    _, results = converge_all(State.empty(config), services)
    changed = 0
    for svc in sorted(services, key=service_key):
        now, conv = ingress_ips(svc), results.get(service_key(svc))
        if not now or conv is None or conv.ingress is None or list(conv.ingress) == now:
            continue
        changed += 1
        after = ", ".join(conv.ingress) if conv.ingress else "<pending>"
        reason = next((e.message for e in conv.events if e.reason == "ClearAssignment"), "")
        out.write(f"would change: {service_key(svc)}: {', '.join(now)} -> {after}")
        out.write(f" ({reason})\n" if reason else "\n")
    if changed == 0:
        out.write("no Service would lose or change its IP\n")
    return 1 if changed else 0


# -- entry point --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metallb-core", description="Plan, explain and validate MetalLB configurations."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="what the controller would do with these Services")
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a CONFIG (ConfigMap, its config document, or MetalLB CRD objects), then SERVICES"
        " files, successive snapshots of the cluster; a file may hold a config and Services",
    )
    p.add_argument("--output", choices=["table", "json"], default="table")
    p.add_argument("--lb-class", default=None, help="handle only Services of this class")
    p.add_argument("-n", "--namespace", default=None, help="show only this namespace's Services")
    e = sub.add_parser("explain", help="why one Service gets its address or stays pending")
    e.add_argument("files", nargs="+", metavar="FILE", help="as for plan")
    e.add_argument("service", metavar="NAMESPACE/NAME")
    e.add_argument("--lb-class", default=None, help="as the controller's --lb-class")
    v = sub.add_parser("validate", help="check a config, and what it would change")
    v.add_argument("config")
    v.add_argument("--services", default=None)
    return parser


def _config_or_problem(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as err:
        raise FileProblem(path, f"invalid config: {err}") from None


def run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    """Run the CLI with ``argv``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "plan":
            snapshots = [load_snapshot(path) for path in args.files]
            result = plan(snapshots, args.lb_class, args.namespace)
            if args.output == "json":
                json.dump({"steps": result}, out, indent=2)
                out.write("\n")
            else:
                print_plan(result, out, args.namespace)
            return 0
        if args.command == "explain":
            snapshots = [load_snapshot(path) for path in args.files]
            return print_explain(snapshots, args.service, args.lb_class, out)
        return validate(args.config, args.services, out)
    except FileProblem as problem:
        err.write(f"metallb-core: {problem}\n")
        return 2


def main(argv: Iterable[str] | None = None) -> int:
    """Console entry point."""
    return run(None if argv is None else list(argv), sys.stdout, sys.stderr)
