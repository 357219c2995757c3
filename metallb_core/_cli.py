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
2 a file or the command line cannot be understood (one line on stderr naming the file, the
document or Service and the field, never a traceback), 3 a bug (one line too), 141 the
reader of the output went away (``| head``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from metallb_core import __version__
from metallb_core._allocator import allocate, reload
from metallb_core._config import Config
from metallb_core._converge import Convergence, converge, converge_all, is_ours
from metallb_core._errors import ConfigError, InvalidService
from metallb_core._explain import Explanation, explain
from metallb_core._outcomes import AllocationError
from metallb_core._request import ServiceRequest
from metallb_core._service import DEPRECATED, request_from_service
from metallb_core._state import State
from metallb_core.vocabulary import ALLOCATED_FROM_POOL, ingress_ips, service_key

POOL = "address-pool"


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


def _read_yaml(path: str, text: str, line_offset: int | None = None) -> list[Any]:
    """YAML read as MetalLB and kubectl read it (:mod:`metallb_core._yaml`); an error gives
    its line and column (:func:`yaml_error`)."""
    from metallb_core import _yaml

    try:
        return _yaml.load_all(text)
    except ImportError:
        raise FileProblem(
            path, "reading YAML needs PyYAML: pip install 'metallb-core[cli]' (or use JSON)"
        ) from None
    except _yaml.YAMLError as err:
        raise FileProblem(
            path, f"not valid YAML: {yaml_error(err.original or err, text, line_offset)}"
        ) from None


def yaml_error(err: Exception, text: str, line_offset: int | None = None) -> str:
    """``line L, column C[ (document N)]: problem[ (context)]`` for a PyYAML error in ``text``;
    with ``line_offset`` (where ``text`` starts in its file), the file's line too."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0] or type(err).__name__
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and context_mark is not None:
        problem += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    if mark is None:
        return str(problem)
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    if line_offset is not None:
        where += f" (line {line_offset + mark.line + 1} of the file)"
    lines = text.splitlines()
    separators = [
        i for i, line in enumerate(lines) if line.rstrip() == "---" or line.startswith("--- ")
    ]
    if any(i > 0 for i in separators):
        content = next(
            (i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")), 0
        )
        number = (0 if content in separators else 1) + sum(1 for i in separators if i <= mark.line)
        where += f" (document {number})"
    return f"{where}: {problem}"


def _block_start(path: str, raw: str) -> int | None:
    """The 0-based line of the file where the text ``raw`` of a ConfigMap's ``data.config``
    starts, when the file's YAML can locate it."""
    import yaml

    try:
        roots = list(yaml.compose_all(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    todo: list[Any] = [r for r in roots if r is not None]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.ScalarNode):
            if node.value == raw:
                return int(node.start_mark.line) + (1 if node.style in ("|", ">") else 0)
        elif isinstance(node, yaml.MappingNode):
            todo.extend(v for pair in node.value for v in pair)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    return None


def _parse_config_text(path: str, configmap: Mapping[str, Any], raw: str) -> list[Any]:
    """The documents of a ConfigMap's ``data.config``; a YAML error there blames the config
    text (its line and column in it, and in the file), not the file around it."""
    if raw.lstrip().startswith(("{", "[")):
        return _parse_text(path, raw)
    try:
        return _read_yaml(path, raw, _block_start(path, raw))
    except FileProblem as problem:
        meta = configmap.get("metadata") or {}
        name = f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"
        what = str(problem).removeprefix(f"{path}: ")
        raise FileProblem(path, f"ConfigMap {name}: data.config is {what}") from None


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

    Raises :class:`ConfigError` for an invalid config, :class:`FileProblem` for anything else
    (YAML that does not parse included: ``validate`` reports that as an invalid config).
    """
    from metallb_core._config_files import config_from_documents

    docs = load_documents(path)
    configmap = next(
        (d for d in docs if isinstance(d, Mapping) and d.get("kind") == "ConfigMap"), {}
    )
    try:
        return config_from_documents(docs, lambda raw: _parse_config_text(path, configmap, raw))
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
    _check_services(path, services)
    return [_as_created(s) for s in services]


def _check_services(path: str, services: Sequence[Mapping[str, Any]]) -> None:
    """Refuse, naming the Service and the field, what the API server would never store."""
    for number, svc in enumerate(services, start=1):
        problem = service_problem(svc)
        if problem is None:
            continue
        name = _field(svc, "metadata.name")
        if problem == "metadata.name is missing":
            raise FileProblem(path, f"Service #{number} in the file has no metadata.name")
        who = service_key(svc) if isinstance(name, str) else f"#{number} in the file"
        raise FileProblem(path, f"Service {who}: {problem}")


# -- the shape of a Service, as the API server's schema checks it --------------------------------

_STR, _INT, _MAP, _LIST = "a string", "an integer", "an object", "a list"
#: The fields a Service file may hold that the controller reads, and their JSON types.
_SERVICE_FIELDS: dict[str, str] = {
    "metadata.namespace": _STR,
    "metadata.creationTimestamp": _STR,
    "spec.type": _STR,
    "spec.clusterIP": _STR,
    "spec.ipFamilyPolicy": _STR,
    "spec.loadBalancerIP": _STR,
    "spec.loadBalancerClass": _STR,
    "spec.externalTrafficPolicy": _STR,
}
_STRING_MAPS = ("metadata.annotations", "metadata.labels", "spec.selector")
_STRING_LISTS = ("spec.clusterIPs", "spec.ipFamilies")


def _is(value: Any, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _MAP:
        return isinstance(value, Mapping)
    return isinstance(value, list)


def _field(doc: Mapping[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _wrong(field: str, kind: str, value: Any) -> str:
    return f"{field} must be {kind}, not {json.dumps(value, default=str)}"


def _string_map_problem(field: str, value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return _wrong(field, _MAP, value)
    bad = next(((k, v) for k, v in value.items() if not isinstance(v, str)), None)
    return None if bad is None else _wrong(f"{field}[{json.dumps(str(bad[0]))}]", _STR, bad[1])


def _string_list_problem(field: str, value: Any) -> str | None:
    if not isinstance(value, list):
        return _wrong(field, _LIST, value)
    bad = next(((i, v) for i, v in enumerate(value) if not isinstance(v, str)), None)
    return None if bad is None else _wrong(f"{field}[{bad[0]}]", _STR, bad[1])


def _object_list_problem(field: str, value: Any, entries: Mapping[str, str]) -> str | None:
    if not isinstance(value, list):
        return _wrong(field, _LIST, value)
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            return _wrong(f"{field}[{i}]", _MAP, item)
        for key, kind in entries.items():
            if item.get(key) is not None and not _is(item[key], kind):
                return _wrong(f"{field}[{i}].{key}", kind, item[key])
    return None


_OBJECT_LISTS: dict[str, dict[str, str]] = {
    "spec.ports": {"port": _INT, "nodePort": _INT, "protocol": _STR},
    "status.loadBalancer.ingress": {"ip": _STR, "hostname": _STR},
}


def service_problem(svc: Mapping[str, Any]) -> str | None:
    """What makes ``svc`` unreadable (a field of the wrong JSON type, as the API server would
    refuse it), or ``None``."""
    for part in ("metadata", "spec", "status", "status.loadBalancer"):
        value = _field(svc, part)
        if value is not None and not isinstance(value, Mapping):
            return _wrong(part, _MAP, value)
    name = _field(svc, "metadata.name")
    if not name:
        return "metadata.name is missing"
    checks: list[str | None] = [
        None if isinstance(name, str) else _wrong("metadata.name", _STR, name)
    ]
    for field, kind in _SERVICE_FIELDS.items():
        value = _field(svc, field)
        checks.append(None if value is None or _is(value, kind) else _wrong(field, kind, value))
    for field in _STRING_MAPS:
        value = _field(svc, field)
        checks.append(None if value is None else _string_map_problem(field, value))
    for field in _STRING_LISTS:
        value = _field(svc, field)
        checks.append(None if value is None else _string_list_problem(field, value))
    for field, entries in _OBJECT_LISTS.items():
        value = _field(svc, field)
        checks.append(None if value is None else _object_list_problem(field, value, entries))
    return next((c for c in checks if c is not None), None)


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
    from metallb_core._config_files import METALLB_KINDS

    return doc.get("kind") in METALLB_KINDS


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
    _check_services(path, found)
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


def _carried(svc: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """A Service of a step, with the status and pool annotation the previous step wrote
    when its file shows none (the snapshot was taken before the controller wrote them)."""
    if before is None or ingress_ips(svc) or not ingress_ips(before):
        return svc
    svc = copy.deepcopy(svc)
    svc["status"] = before["status"]
    notes = svc.setdefault("metadata", {}).setdefault("annotations", {})
    pool = (before["metadata"].get("annotations") or {}).get(ALLOCATED_FROM_POOL)
    if pool is not None:
        notes.setdefault(ALLOCATED_FROM_POOL, pool)
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
        carried = [_carried(svc, previous.get(service_key(svc))) for svc in services]
        state, results = _converge_step(snap.path, state, carried, lb_class)
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
    if state is None or not steps:
        raise FileProblem(snapshots[-1].path, "no Services: give a file with Service objects")
    return Replay(steps, state, [previous[service_key(s)] for s in services], results)


def _converge_step(
    path: str, state: State, services: list[dict[str, Any]], lb_class: str | None
) -> tuple[State, Mapping[str, Convergence]]:
    """``converge_all``; should the core raise on a Service it cannot read, the error names
    the file and that Service (found by converging each on its own) instead of a traceback."""
    try:
        return converge_all(state, services, lb_class=lb_class)
    except Exception as first:  # the CLI's boundary: whatever the core raises is reported
        for svc in services:
            try:
                converge(state, svc, lb_class=lb_class)
            except Exception as err:
                raise FileProblem(
                    path, f"Service {service_key(svc)} cannot be handled: {_describe(err)}"
                ) from None
        raise FileProblem(path, f"the Services cannot be handled: {_describe(first)}") from None


def _describe(err: Exception) -> str:
    return f"{err}" if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"


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
        raise FileProblem(key, _no_such_service(key, done.services, done.steps[-1]["file"]))
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
    if not conv.ingress:
        _print_holders(state, request, why, out)
        _print_fixes(state, target, request, why, out)
    return 0


def _no_such_service(key: str, services: Sequence[Mapping[str, Any]], last: str) -> str:
    """The error for a Service that is not there, with the keys the user may have meant."""
    name = key.rsplit("/", 1)[-1]
    near = sorted(service_key(s) for s in services if (s.get("metadata") or {}).get("name") == name)
    if "/" not in key:
        if near:
            return f"give the Service as NAMESPACE/NAME: did you mean {' or '.join(near)}?"
        return f"give the Service as NAMESPACE/NAME (and no Service is named {name} in {last})"
    if near:
        return f"no such Service in {last}; did you mean {' or '.join(near)}?"
    return f"no such Service in {last}"


#: How many held addresses ``explain`` lists per pool before it counts the rest.
HOLDERS_SHOWN = 10


def _print_holders(state: State, request: ServiceRequest, why: Explanation, out: TextIO) -> None:
    """Who holds each address the pending Service could have had."""
    if request.requested_ips:
        rows = [
            ["   ", ip, ", ".join(k for k in state.holders(ip) if k != request.key) or "nobody"]
            for ip in request.requested_ips
        ]
        out.write("  who holds the requested addresses:\n")
        _table(rows, out)
        return
    tried = {v.pool for v in why.pools if v.rank is not None and v.verdict == "skipped"}
    for pool in [p.name for p in state.config.pools if p.name in tried]:
        held = sorted(
            (ip, key)
            for key, alloc in state.allocations.items()
            if alloc.pool == pool and key != request.key
            for ip in alloc.ips
        )
        if not held:
            continue
        out.write(f"  who holds the addresses of pool {pool}:\n")
        _table([["   ", str(ip), key] for ip, key in held[:HOLDERS_SHOWN]], out)
        if len(held) > HOLDERS_SHOWN:
            out.write(f"      ... and {len(held) - HOLDERS_SHOWN} more\n")


def _print_fixes(
    state: State,
    service: Mapping[str, Any],
    request: ServiceRequest,
    why: Explanation,
    out: TextIO,
) -> None:
    """What would give the pending Service an address."""
    v010 = state.config.source == "configmap"
    prefix = DEPRECATED if v010 else "metallb.io/"
    exhausted = [v.pool for v in why.pools if v.rank is not None and "exhausted" in v.reason]
    fixes = []
    for pool in exhausted:
        where = (
            "to it in the ConfigMap's address-pools (MetalLB reloads it live)"
            if v010
            else f"to IPAddressPool {pool}'s spec.addresses"
        )
        fixes.append(f"widen pool {pool}: add addresses {where}")
    if exhausted and not request.requested_ips:
        fixes.append(
            f"share an address: give this Service and a holder the same {prefix}allow-shared-ip"
            " value (their ports must not overlap; with externalTrafficPolicy: Local, their"
            " selectors must be the same)"
        )
    if request.requested_pool is not None:
        unpinned = ServiceRequest(
            **{**request.model_dump(exclude={"requested_pool", "ports"}), "ports": request.ports}
        )
        _, result = allocate(state._without(request.key), unpinned)
        if not isinstance(result, AllocationError):
            notes = (service.get("metadata") or {}).get("annotations") or {}
            key = next(
                (k for k in (f"metallb.io/{POOL}", f"{DEPRECATED}{POOL}") if k in notes),
                f"{prefix}{POOL}",
            )
            ips = ", ".join(str(ip) for ip in result.ips)
            fixes.append(f"drop the {key} annotation: pool {result.pool} would give it {ips}")
    if request.requested_ips:
        fixes.append("ask for another address (spec.loadBalancerIP or metallb.io/loadBalancerIPs)")
    if exhausted or request.requested_ips:
        fixes.append("free an address: delete a Service that holds one")
    if fixes:
        out.write("  to fix it:\n")
        for fix in fixes:
            out.write(f"    - {fix}\n")


def validate(config_path: str, services_path: str | None, out: TextIO) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as err:
        out.write(f"invalid: {err}\n")
        return 1
    except FileProblem as problem:
        if "not valid YAML" not in str(problem):
            raise
        # MetalLB refuses a config whose YAML does not parse: an invalid config, not a usage
        # error.
        what = str(problem).removeprefix(f"{config_path}: ")
        out.write(f"invalid: could not parse config: {what}\n")
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


_FILES_HELP = (
    "YAML or JSON files, in order: a configuration (the v0.10 ConfigMap, its config document,"
    " or IPAddressPool/L2Advertisement objects), Services (kubectl get svc -A -o yaml, or"
    " manifests), or both in one file. Files with Services are successive snapshots of the"
    " cluster; a configuration is in force from its file on, as after a live ConfigMap edit"
)
_LB_CLASS_HELP = (
    "handle only Services of this spec.loadBalancerClass, as the controller's --lb-class"
    " (default: only Services without a class)"
)


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes are one line on stderr too, with where to find the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="metallb-core",
        description="Plan, explain and validate MetalLB Layer-2 configurations without a"
        " cluster, with the same decisions as the controller.",
        epilog="Exit status: 0 done, 1 validate found a problem, 2 a file or the command line"
        " cannot be understood (one line on stderr). See docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "plan",
        help="what the controller would do with these Services",
        description="Converge each snapshot's Services under the configuration in force and"
        " print what kubectl get svc would show, then each Service's new events as kubectl"
        " describe shows them.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=_FILES_HELP)
    p.add_argument(
        "--output",
        choices=["table", "json"],
        default="table",
        help="table: as kubectl prints it (default); json: one object per step",
    )
    p.add_argument("--lb-class", default=None, metavar="CLASS", help=_LB_CLASS_HELP)
    p.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="show only this namespace's Services, as kubectl get svc -n NAMESPACE",
    )
    e = sub.add_parser(
        "explain",
        help="why one Service gets its address or stays pending",
        description="Replay the files as plan does, then explain one Service of the last"
        " step: every pool in config order, whether it was tried and why it was taken or"
        " skipped; for a pending Service, who holds the addresses it could have, and what"
        " would fix it.",
    )
    e.add_argument("files", nargs="+", metavar="FILE", help=_FILES_HELP)
    e.add_argument(
        "service",
        metavar="NAMESPACE/NAME",
        help="the Service to explain (a Service without a namespace is in default)",
    )
    e.add_argument("--lb-class", default=None, metavar="CLASS", help=_LB_CLASS_HELP)
    v = sub.add_parser(
        "validate",
        help="check a config, and what it would change",
        description="Check a configuration with MetalLB's rules and messages; with --services,"
        " list the Services that would lose or change their addresses under it.",
    )
    v.add_argument(
        "config",
        metavar="CONFIG",
        help="the v0.10 ConfigMap, its config document, or IPAddressPool/L2Advertisement objects",
    )
    v.add_argument(
        "--services",
        default=None,
        metavar="SERVICES",
        help="the Services running now (kubectl get svc -A -o yaml), with their statuses",
    )
    c = sub.add_parser(
        "convert",
        help="a v0.10-v0.12 ConfigMap as metallb.io objects",
        description="Print the metallb.io/v1beta1 (and v1beta2 BGPPeer) objects equivalent to"
        " a ConfigMap, as MetalLB's ConfigMap-to-CRD converter does, and prove the conversion:"
        " plan with the old and the new config gives every Service the same address.",
    )
    c.add_argument("config", metavar="CONFIGMAP", help="the ConfigMap, or its config document")
    c.add_argument(
        "--services",
        default=None,
        metavar="SERVICES",
        help="prove that none of these Services changes its address (default: one probe"
        " Service per pool)",
    )
    return parser


def _config_or_problem(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as err:
        raise FileProblem(path, f"invalid config: {err}") from None


def run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    """Run the CLI with ``argv``; returns the exit status (``--help``, ``--version`` and
    command-line mistakes included: argparse's output goes to ``out`` and ``err`` too)."""
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = _parser().parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 2
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
        if args.command == "convert":
            from metallb_core._convert_cli import convert

            return convert(args.config, args.services, load_documents, load_services, out, err)
        return validate(args.config, args.services, out)
    except FileProblem as problem:
        err.write(f"metallb-core: {problem}\n")
        return 2
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as bug:  # the promise is one line, never a traceback
        err.write(f"metallb-core: internal error, please report it: {type(bug).__name__}: {bug}\n")
        return 3


#: The exit status of a command whose reader went away (``| head``): as killed by SIGPIPE.
BROKEN_PIPE = 141


def main(argv: Iterable[str] | None = None) -> int:
    """Console entry point. A closed pipe (``metallb-core plan ... | head -1``) ends the
    command quietly."""
    try:
        status = run(None if argv is None else list(argv), sys.stdout, sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the failed flush at exit: point stdout at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    return status
