"""``metallb-core``: plan, explain and validate MetalLB configurations without a cluster.

This module and ``__main__`` are the only parts of :mod:`metallb_core` that do I/O; the
package's ``__init__`` never imports them. Every decision comes from the pure core.

- ``plan CONFIG SERVICES [SERVICES ...]``: what ``kubectl get svc`` would show after the
  controller ran, and the events. Several SERVICES files are successive snapshots of the
  cluster: each step starts from the previous step's state and statuses, and a Service missing
  from a step has been deleted.
- ``explain CONFIG SERVICES NAMESPACE/NAME``: every pool considered for one Service, in order,
  and why each was taken or skipped.
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
from pathlib import Path
from typing import Any, TextIO

from metallb_core._config import Config
from metallb_core._converge import Convergence, converge_all, is_ours
from metallb_core._errors import ConfigError, InvalidService
from metallb_core._explain import explain
from metallb_core._service import request_from_service
from metallb_core._state import State
from metallb_core.vocabulary import ALLOCATED_FROM_POOL, ingress_ips, service_key


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
    return _read_yaml(path, text)


def _read_yaml(path: str, text: str) -> list[Any]:
    """YAML read as MetalLB and kubectl read it (:mod:`metallb_core._yaml`)."""
    try:
        from metallb_core import _yaml
    except ImportError:  # pragma: no cover - the module itself is always there
        raise FileProblem(path, "cannot read YAML") from None
    try:
        return _yaml.load_all(text)
    except ImportError:
        raise FileProblem(
            path, "reading YAML needs PyYAML: pip install 'metallb-core[cli]' (or use JSON)"
        ) from None
    except _yaml.YAMLError as err:
        raise FileProblem(path, f"not valid YAML: {err}") from None


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
    """A config from a ConfigMap (v0.10-v0.12), its ``config`` document, Helm values with
    ``configInline``, or MetalLB's objects (:mod:`metallb_core._config_files`).

    Raises :class:`ConfigError` for an invalid config, :class:`FileProblem` for anything else.
    """
    from metallb_core._config_files import config_from_documents

    try:
        docs = load_documents(path)
    except FileProblem as problem:
        if "not valid YAML" not in str(problem):
            raise
        what = str(problem).removeprefix(f"{path}: ")
        raise ConfigError(f"could not parse config: {what}") from None
    try:
        return config_from_documents(docs, lambda text: _read_yaml(path, text))
    except LookupError as err:
        raise FileProblem(path, str(err)) from None


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


def _row(service: Mapping[str, Any], conv: Convergence | None) -> dict[str, Any]:
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
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
        "externalIPs": ips,
        "pool": pool,
        "events": [e.model_dump() for e in conv.events] if conv else [],
    }


def plan(
    config: Config, steps: Sequence[tuple[str, list[dict[str, Any]]]], lb_class: str | None
) -> list[dict[str, Any]]:
    """Converge each step's Services, carrying state and statuses from step to step."""
    state = State.empty(config)
    previous: dict[str, dict[str, Any]] = {}
    out = []
    for name, services in steps:
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
            conv = results.get(service_key(svc))
            previous[service_key(svc)] = _with_status(svc, conv)
            rows.append(_row(svc, conv))
        out.append({"file": name, "services": rows})
    return out


def _table(rows: list[list[str]], stream: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        stream.write("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        stream.write("\n")


def _external(row: Mapping[str, Any]) -> str:
    if row["externalIPs"]:
        return ",".join(row["externalIPs"])
    return "<pending>" if row["type"] == "LoadBalancer" else "<none>"


def print_plan(result: list[dict[str, Any]], stream: TextIO) -> None:
    """The plan as ``kubectl get svc`` would show it, then the events, per step."""
    for number, step in enumerate(result, start=1):
        if len(result) > 1:
            stream.write(f"== step {number}: {step['file']}\n")
        header = ["NAMESPACE", "NAME", "TYPE", "EXTERNAL-IP", "POOL"]
        rows = [header] + [
            [r["namespace"], r["name"], r["type"], _external(r), r["pool"] or "<none>"]
            for r in step["services"]
        ]
        _table(rows, stream)
        events = [
            [f"{r['namespace']}/{r['name']}", e["type"], e["reason"], e["message"]]
            for r in step["services"]
            for e in r["events"]
        ]
        if events:
            stream.write("\nEVENTS\n")
            _table([["SERVICE", "TYPE", "REASON", "MESSAGE"], *events], stream)
        stream.write("\n")


# -- explain and validate ---------------------------------------------------------------------


def print_explain(
    config: Config,
    services: list[dict[str, Any]],
    key: str,
    lb_class: str | None,
    out: TextIO,
) -> int:
    target = next((s for s in services if service_key(s) == key), None)
    if target is None:
        raise FileProblem(key, "no such Service in the SERVICES file")
    state, results = converge_all(State.empty(config), services, lb_class=lb_class)
    conv = results[key]
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
    from metallb_core._config_files import summary

    out.write(f"valid: {summary(config)}\n")
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
    p.add_argument("config", help="ConfigMap, its config document, or MetalLB CRD objects")
    p.add_argument("services", nargs="+", help="Services; several files are successive steps")
    p.add_argument("--output", choices=["table", "json"], default="table")
    p.add_argument("--lb-class", default=None, help="handle only Services of this class")
    e = sub.add_parser("explain", help="why one Service gets its address or stays pending")
    e.add_argument("config")
    e.add_argument("services")
    e.add_argument("service", metavar="NAMESPACE/NAME")
    e.add_argument("--lb-class", default=None, help="as the controller's --lb-class")
    v = sub.add_parser("validate", help="check a config, and what it would change")
    v.add_argument("config")
    v.add_argument("--services", default=None)
    c = sub.add_parser("convert", help="a v0.10-v0.12 ConfigMap as metallb.io objects")
    c.add_argument("config", help="the ConfigMap, or its config document")
    c.add_argument("--services", default=None, help="prove no Service changes its address")
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
            config = _config_or_problem(args.config)
            steps = [(path, load_services(path)) for path in args.services]
            result = plan(config, steps, args.lb_class)
            if args.output == "json":
                json.dump({"steps": result}, out, indent=2)
                out.write("\n")
            else:
                print_plan(result, out)
            return 0
        if args.command == "explain":
            config = _config_or_problem(args.config)
            services = load_services(args.services)
            return print_explain(config, services, args.service, args.lb_class, out)
        if args.command == "convert":
            from metallb_core._convert_cli import convert

            return convert(args.config, args.services, load_documents, load_services, out, err)
        return validate(args.config, args.services, out)
    except FileProblem as problem:
        err.write(f"metallb-core: {problem}\n")
        return 2


def main(argv: Iterable[str] | None = None) -> int:
    """Console entry point."""
    return run(None if argv is None else list(argv), sys.stdout, sys.stderr)
