"""A Kubernetes API server emulator for the adapter's tests: real HTTP on localhost, no cluster.

:class:`ApiServerEmulator` extends kmock's ``KubernetesEmulator`` (``kmock==0.8``, pinned: it
uses kmock internals) into something a Kubernetes client cannot tell from a kube-apiserver for
what the metallb-core adapter does. Objects live in memory, in kmock's ``objects`` store, so
every version of every object stays available for assertions.

What it emulates
================
* **Resource versions.** One monotonic counter for the whole server; every write stamps
  ``metadata.resourceVersion`` (a string), ``uid`` and ``creationTimestamp`` (on create) and
  ``generation`` (1 on create, +1 whenever anything but ``metadata`` and ``status`` changes).
  List responses carry the counter as ``metadata.resourceVersion``. A write that changes
  nothing is a no-op, as on a real server: same resourceVersion, no watch event, no new version.
* **Optimistic concurrency.** PUT and PATCH (and DELETE preconditions) carrying a
  ``metadata.resourceVersion`` other than the current one fail with ``409 Conflict``
  (a ``Status`` body, ``reason: Conflict``); without one the write is unconditional.
  A JSON patch conflicts when it leaves the resourceVersion different from the current one.
* **Status subresource** (Services, Nodes, Pods, Namespaces, CRDs and the metallb.io kinds;
  not ConfigMaps, Endpoints, EndpointSlices, Events, Leases): writes to ``.../status`` change
  ``status`` and nothing else (stricter than core types, whose ``/status`` may also touch
  labels: here it never does, so writing an annotation through ``/status`` is caught); every
  other write leaves ``status`` as it was, and a create drops it (Nodes keep it, as kubelet
  registration needs). Resources without the subresource answer 404 on ``/status``.
* **Writes.** POST (``generateName`` supported), PUT as replace, PATCH as JSON merge patch
  (RFC 7386), strategic merge patch *treated as a merge patch* (lists replaced, no
  ``$patch`` directives), JSON patch (RFC 6902, all six operations), and server-side apply
  (``application/apply-patch+yaml``) *treated as a merge patch* that creates a missing object:
  no field managers, no removal of fields a manager stopped applying, ``force`` ignored;
  ``fieldManager`` is still required. ``dryRun=All`` is honoured. DELETE honours finalizers
  (``deletionTimestamp`` first, removal once they are gone) and preconditions; DELETE on a
  collection deletes what the selectors match. Deleting a Namespace deletes its content.
* **Server-side defaulting and validation where the adapter depends on it.** Services get
  ``type``, ``clusterIP``/``clusterIPs``/``ipFamilies``/``ipFamilyPolicy`` (from
  ``service_cidrs``, dual-stack IPv4-primary by default), node ports, traffic policies and
  ``ipMode: VIP`` on ingress entries with an IP; allocated values survive updates that omit
  them. Namespaces get the ``kubernetes.io/metadata.name`` label and ``phase: Active``.
  Names, labels, Service types/ports/ingress, ``events.k8s.io/v1`` Events (required fields,
  ``type``, note length, ``series``) and ``IPAddressPool.spec.addresses`` are validated:
  ``422 Invalid`` as a real server would answer.
* **Reads.** get, list (``limit``/``continue`` paging, sorted by namespace/name), and
  ``labelSelector`` (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``, ``>``, ``<``)
  and ``fieldSelector`` (``metadata.name``, ``metadata.namespace``; ``spec.nodeName`` and
  ``status.phase`` on Pods; ``=``, ``==``, ``!=``) on list, watch and deletecollection.
* **Watch.** Without ``resourceVersion`` (or with ``"0"``): ADDED for each existing object,
  then live ADDED/MODIFIED/DELETED; with one: the retained events after it (resume), or an
  ``ERROR`` event with a ``410 Expired`` Status once it is older than the retained history
  (:meth:`ApiServerEmulator.compact` forces that). Events carry the object's resourceVersion
  (DELETED carries the deletion's). An object entering or leaving a label selector shows up
  as ADDED or DELETED. ``timeoutSeconds`` ends the stream cleanly. No bookmarks.
* **Errors** are ``Status`` objects answered with ``Content-Type: application/json``
  exactly (lightkube turns only that into ``ApiError``; kmock itself adds ``; charset=utf-8``).
* **Resources**: core v1 Services, Namespaces, Nodes, ConfigMaps, Pods, Endpoints, Events;
  ``events.k8s.io/v1`` Events (separate from core Events here); ``coordination.k8s.io/v1``
  Leases; ``discovery.k8s.io/v1`` EndpointSlices; ``apiextensions.k8s.io/v1``
  CustomResourceDefinitions, pre-loaded with ``metallb.io/v1beta1`` IPAddressPool and
  L2Advertisement (both with a status subresource, as MetalLB's CRDs). Creating a CRD serves
  its kind at once, so ``lightkube.generic_resource.load_in_cluster_generic_resources`` works.
  Discovery (``/api``, ``/apis``, ``/apis/GROUP/VERSION``, ``/version``) is kmock's.
* **Faults**: :meth:`~ApiServerEmulator.go_away` (``refuse``: the port is closed and every
  connection cut; ``503``: every request answered ``503 ServiceUnavailable`` and open watches
  cut) until :meth:`~ApiServerEmulator.come_back` or for a number of seconds;
  :meth:`~ApiServerEmulator.conflict_on_first_status_write` (409 on the first ``/status``
  write of each object, the object "touched" by a concurrent writer); ad-hoc reactions in
  kmock's DSL, ``apiserver["patch", "/api/v1/namespaces/ns/services/a/status"][:1] <<
  api_error(500)`` (``[:1]``: the first matching request only), which answer *instead of*
  the emulation and change no state. :attr:`~ApiServerEmulator.request_log` records every
  API request (method, path, query, verb, resource, subresource, namespace, name, status)
  and counts them per verb/resource (:meth:`RequestLog.by_verb`) or method/path
  (:meth:`RequestLog.by_path`). For chaos tests: :meth:`~ApiServerEmulator.chaos` (slow
  answers, writes failing with 500/503 at a seeded rate), :meth:`~ApiServerEmulator.drop_watches`,
  and :attr:`~ApiServerEmulator.observers` (called on every stored change, so a checker sees
  every instant).

Not emulated: authentication/RBAC (any token is accepted), admission, namespace existence
checks on create, field managers, watch bookmarks, the legacy ``/api/v1/watch/...`` paths,
protobuf, ``sendInitialEvents``, table output, and ``events.k8s.io`` and core Events being
one storage. The emulator is HTTP only. ``/version`` reports Kubernetes 1.33 (the behaviour
emulated: ``ipMode`` defaulting, ``kubernetes.io/metadata.name`` labels).

Using it in-process (pytest fixtures in ``conftest.py``)::

    async def test_status(apiserver: ApiServerEmulator, async_client: AsyncClient) -> None:
        apiserver.seed(service_manifest("web"))          # stored at once, watchers see ADDED
        await async_client.patch(Service.Status, "web", {"status": {...}})
        assert apiserver.read("v1/services", "default", "web")["status"] == {...}
        assert apiserver.request_log.count(verb="patch", resource="services",
                                           subresource="status") == 1

``apiserver.base_url`` is the URL as a string (``apiserver.url`` is kmock's ``yarl.URL``).

Standalone, for controllers and speakers run as subprocesses (also from other network
namespaces: listen on an address they can reach)::

    python -m tests.kubernetes.emulator --host 10.0.0.1 --port 6443 [--kubeconfig PATH]

prints ``http://10.0.0.1:6443`` on stdout once it accepts connections, and runs until SIGTERM
or SIGINT (exit status 0; send one signal). ``--url-host`` changes the host printed (and
written to the kubeconfig), e.g. when listening on ``0.0.0.0``. :class:`EmulatorProcess`
starts it (``prefix=["ip", "netns", "exec", "ns1"]`` runs it in a network namespace) and
waits for that line; :class:`EmulatorControl` (``EmulatorProcess.control``) seeds objects,
drives faults, and reads the request log and object histories over HTTP (``/_emulator/...``:
``requests``, ``outage``, ``conflicts``, ``compact``, ``seed``, ``history``, ``healthz``;
these requests are not logged).

Pitfalls
========
* **The in-process server runs on the test's event loop.** A blocking call to it from the
  loop's thread deadlocks: a sync ``lightkube.Client`` (or :class:`EmulatorControl`, or
  ``urllib``) must run in a thread, ``await asyncio.to_thread(client.get, Service, "a")``.
  A sync ``watch`` in a thread blocks that thread: give it ``server_timeout`` or stop after
  a known number of events. Subprocesses (the standalone emulator) have no such issue.
* **lightkube 1.0.1:** ``KubeConfig.from_server(url)`` is broken ("Missing user"); use
  :func:`kube_config` (``KubeConfig.from_dict`` with a dummy token). lightkube turns an error
  into ``ApiError`` only for ``Content-Type: application/json`` exactly, fails with
  ``KeyError: 'Content-Type'`` on an error without that header (so inject errors with
  :func:`api_error`, not a bare ``<< 500``), and in ``watch`` does not convert the HTTP
  status of the watch request itself (a 503 there is a plain ``httpx2.HTTPStatusError``);
  an ``ERROR`` event in the stream is an ``ApiError``. Its ``deletecollection`` takes no
  selectors. ``patch(Service.Status, ...)`` returns a ``Service.Status``: ``replace`` of that
  object writes the status subresource.
* **Node ports are as scarce as on a real cluster** (2,768): thousands of LoadBalancer
  Services need ``allocateLoadBalancerNodePorts: false`` (a keyword of
  :func:`service_manifest`) or ``ApiServerEmulator(node_port_range=(30000, 40000))``.
* **Real validation applies**: a Service needs ``ports`` (named when several), an
  ``events.k8s.io/v1`` Event needs ``eventTime``, ``reportingController``,
  ``reportingInstance``, ``action``, ``reason`` and a ``type``; :func:`service_manifest`
  builds valid Services.
* **Objects read back are shared, read-only data.** ``read``/``history``/``objects`` give the
  stored dicts: change objects through the API or :meth:`ApiServerEmulator.seed`, never by
  mutating what you read, or watchers and history will disagree.
* **A reaction's slice counts the matching requests made before it was declared**:
  ``apiserver["patch", path][:1] << api_error(500)`` declared after one such request already
  went through never fires; use ``[1:2]`` for "the next one".
* **No-op writes leave no trace in the object history**; to check that something did *not*
  write (a restart that changes no status), count requests in :attr:`request_log` as well.
* **Breaking out of an async ``watch`` loop** leaves the HTTP stream open until the client
  closes; the emulator cuts it at shutdown, so tests need not care.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import contextvars
import dataclasses
import datetime
import functools
import ipaddress
import json
import math
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import EllipsisType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import aiohttp.web
import attrs
import yaml
import yarl
from kmock import KubernetesEmulator, KubernetesError, Request, ResourceInfo
from kmock import action as kmock_action
from kmock import resource as kmock_resource
from kmock._internal import rendering
from kmock._internal.rendering import ReactionMismatchError

if TYPE_CHECKING:
    from lightkube import KubeConfig

__all__ = [
    "DEFAULT_RESOURCES",
    "ApiServerEmulator",
    "EmulatorControl",
    "EmulatorProcess",
    "JsonPatchError",
    "LabelSelector",
    "OutageMode",
    "RequestLog",
    "RequestRecord",
    "ResourceSpec",
    "api_error",
    "apply_json_patch",
    "kube_config",
    "kubeconfig_dict",
    "main",
    "merge_patch",
    "metallb_crds",
    "service_manifest",
    "write_kubeconfig",
]

JsonDict = dict[str, Any]
OutageMode = Literal["refuse", "503"]

CONTROL_PREFIX = "/_emulator/"
REPO_ROOT = Path(__file__).resolve().parents[2]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_CURRENT_RECORD: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "emulator_current_record", default=None
)
_CURRENT_PROTOCOL: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "emulator_current_protocol", default=None
)


# --------------------------------------------------------------------------------------------
# Resource types
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResourceSpec:
    """What the emulator knows about one served resource (group, version, plural).

    >>> ResourceSpec("", "v1", "services", "Service", namespaced=True).id
    'v1/services'
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status_subresource: bool = False
    #: ``status`` given to a created object when the subresource drops the client's one.
    default_status: Mapping[str, Any] | None = dataclasses.field(
        default=None, compare=False, hash=False
    )
    #: Keep the client's ``status`` on create (Nodes: kubelet registers with one).
    create_keeps_status: bool = False
    field_selectors: tuple[str, ...] = ("metadata.name", "metadata.namespace")
    #: How names are validated: DNS-1123 subdomain, DNS-1123 label, or DNS-1035 label.
    name_rule: Literal["subdomain", "label", "dns1035"] = "subdomain"
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``v1`` or ``group/version``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def id(self) -> str:
        """``apiVersion/plural``, e.g. ``metallb.io/v1beta1/ipaddresspools`` (kmock's notation)."""
        return f"{self.api_version}/{self.plural}"

    @property
    def qualified(self) -> str:
        """The resource as messages name it: ``services``, ``leases.coordination.k8s.io``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @functools.cached_property
    def kmock(self) -> kmock_resource:
        """The kmock resource, the first item of keys of ``ApiServerEmulator.objects``."""
        return kmock_resource(self.group, self.version, self.plural)

    @classmethod
    def from_crd(cls, crd: Mapping[str, Any], version: Mapping[str, Any]) -> ResourceSpec:
        """The spec of one version of a CustomResourceDefinition object."""
        spec = crd["spec"]
        names = spec["names"]
        return cls(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            status_subresource="status" in (version.get("subresources") or {}),
            short_names=tuple(names.get("shortNames") or ()),
        )


_POD_FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase")

#: The resources served from the start (the CRDs of :func:`metallb_crds` come on top).
DEFAULT_RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec(
        "",
        "v1",
        "services",
        "Service",
        namespaced=True,
        status_subresource=True,
        default_status={"loadBalancer": {}},
        name_rule="dns1035",
        short_names=("svc",),
    ),
    ResourceSpec(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        status_subresource=True,
        default_status={"phase": "Active"},
        name_rule="label",
        short_names=("ns",),
    ),
    ResourceSpec(
        "",
        "v1",
        "nodes",
        "Node",
        namespaced=False,
        status_subresource=True,
        create_keeps_status=True,
        short_names=("no",),
    ),
    ResourceSpec("", "v1", "configmaps", "ConfigMap", namespaced=True, short_names=("cm",)),
    ResourceSpec(
        "",
        "v1",
        "pods",
        "Pod",
        namespaced=True,
        status_subresource=True,
        default_status={"phase": "Pending"},
        field_selectors=_POD_FIELDS,
        short_names=("po",),
    ),
    ResourceSpec("", "v1", "endpoints", "Endpoints", namespaced=True, short_names=("ep",)),
    ResourceSpec("", "v1", "events", "Event", namespaced=True, short_names=("ev",)),
    ResourceSpec("events.k8s.io", "v1", "events", "Event", namespaced=True, short_names=("ev",)),
    ResourceSpec("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True),
    ResourceSpec("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", namespaced=True),
    ResourceSpec(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        status_subresource=True,
        create_keeps_status=False,
        short_names=("crd", "crds"),
    ),
)

_CRD_SPEC = DEFAULT_RESOURCES[-1]


def _crd(group: str, version: str, kind: str, plural: str, *, status: bool = True) -> JsonDict:
    singular = kind.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    "subresources": {"status": {}} if status else {},
                }
            ],
        },
    }


def metallb_crds() -> list[JsonDict]:
    """Minimal CustomResourceDefinitions of ``IPAddressPool`` and ``L2Advertisement``.

    Same group, version, names, scope and status subresource as MetalLB's; the schema accepts
    anything (the emulator validates ``IPAddressPool.spec.addresses`` itself).
    """
    return [
        _crd("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools"),
        _crd("metallb.io", "v1beta1", "L2Advertisement", "l2advertisements"),
    ]


def service_manifest(
    name: str,
    namespace: str = "default",
    *,
    type: str = "LoadBalancer",
    ports: Sequence[int] = (80,),
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> JsonDict:
    """A Service object as a dict, valid for the emulator (extra keywords go into ``spec``).

    >>> service_manifest("web", loadBalancerClass="x")["spec"]["loadBalancerClass"]
    'x'
    """
    metadata: JsonDict = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    if labels:
        metadata["labels"] = dict(labels)
    body = {
        "type": type,
        "ports": [{"name": f"p{port}", "port": port, "protocol": "TCP"} for port in ports],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body | spec}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _error(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> KubernetesError:
    return KubernetesError(code, reason, message, dict(details) if details else None)


def _details(spec: ResourceSpec, name: str | None) -> JsonDict:
    details: JsonDict = {"kind": spec.plural}
    if name is not None:
        details["name"] = name
    if spec.group:
        details["group"] = spec.group
    return details


def _not_found(spec: ResourceSpec, name: str) -> KubernetesError:
    return _error(404, "NotFound", f'{spec.qualified} "{name}" not found', _details(spec, name))


def _no_such_path() -> KubernetesError:
    return _error(404, "NotFound", "the server could not find the requested resource")


def _conflict(spec: ResourceSpec, name: str, why: str | None = None) -> KubernetesError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return _error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {spec.qualified} "{name}": {why}',
        _details(spec, name),
    )


def _bad_request(message: str) -> KubernetesError:
    return _error(400, "BadRequest", message)


def _invalid(spec: ResourceSpec, name: str, causes: Sequence[tuple[str, str]]) -> KubernetesError:
    texts = [f"{field}: {message}" for field, message in causes]
    text = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = _details(spec, name) | {
        "kind": spec.kind,
        "causes": [
            {"reason": "FieldValueInvalid", "message": message, "field": field}
            for field, message in causes
        ],
    }
    return _error(422, "Invalid", f'{spec.kind} "{name}" is invalid: {text}', details)


def api_error(code: int, reason: str = "InternalError", message: str | None = None) -> Any:
    """A kmock reaction payload answering an API error lightkube turns into ``ApiError``.

    ``apiserver["patch /api/v1/namespaces/default/services/web/status"] << api_error(500)``;
    a bare ``<< 500`` has no Content-Type, on which lightkube 1.0.1 fails with ``KeyError``.
    """
    body = status_body(_error(code, reason, message or f"{reason} (injected)"))
    return rendering.Response(
        status=code, headers={"Content-Type": "application/json"}, payload=_dumps(body)
    )


def status_body(error: KubernetesError) -> JsonDict:
    """The ``Status`` object the emulator answers for an error."""
    body: JsonDict = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message or error.reason or "error",
        "reason": error.reason or "InternalError",
        "code": error.status,
    }
    if error.details:
        body["details"] = error.details
    return body


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _json_response(body: Any, status: int = 200) -> aiohttp.web.Response:
    # content_type without charset: lightkube wants exactly "application/json".
    return aiohttp.web.Response(body=_dumps(body), status=status, content_type="application/json")


def _error_response(error: KubernetesError) -> aiohttp.web.Response:
    return _json_response(status_body(error), status=error.status)


# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_RE_EXISTS = re.compile(rf"(!?)\s*({_KEY})")
_RE_SET = re.compile(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)")
_RE_EQUALITY = re.compile(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})")
_RE_COMPARE = re.compile(rf"({_KEY})\s*([<>])\s*(-?\d+)")


def _split_terms(text: str) -> list[str]:
    """Split on the commas outside parentheses (``a in (x,y),b`` has two terms)."""
    terms: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced parentheses")
        elif char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    if depth:
        raise ValueError("unbalanced parentheses")
    terms.append(text[start:])
    return [term.strip() for term in terms]


@dataclasses.dataclass(frozen=True)
class _Requirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, >, <
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.operator:
            case "exists":
                return value is not None
            case "!":
                return value is None
            case "=" | "in":
                return value is not None and value in self.values
            case "!=" | "notin":
                return value is None or value not in self.values
            case ">" | "<":
                try:
                    number = int(value) if value is not None else None
                except ValueError:
                    return False
                if number is None:
                    return False
                limit = int(self.values[0])
                return number > limit if self.operator == ">" else number < limit
        raise AssertionError(f"unknown operator {self.operator!r}")


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A parsed ``labelSelector`` query string (Kubernetes syntax; an empty one matches all).

    >>> LabelSelector.parse("app in (a,b),!canary,tier!=db").matches({"app": "a"})
    True
    """

    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse; ``ValueError`` on a malformed selector."""
        if not text or not text.strip():
            return cls()
        requirements: list[_Requirement] = []
        for term in _split_terms(text):
            if match := _RE_SET.fullmatch(term):
                values = tuple(v.strip() for v in match[3].split(",") if v.strip())
                if not values or any(not re.fullmatch(_VALUE, v) for v in values):
                    raise ValueError(f"invalid values in {term!r}")
                requirements.append(_Requirement(match[1], match[2], values))
            elif match := _RE_COMPARE.fullmatch(term):
                requirements.append(_Requirement(match[1], match[2], (match[3],)))
            elif match := _RE_EQUALITY.fullmatch(term):
                operator = "!=" if match[2] == "!=" else "="
                requirements.append(_Requirement(match[1], operator, (match[3],)))
            elif match := _RE_EXISTS.fullmatch(term):
                requirements.append(_Requirement(match[2], "!" if match[1] else "exists"))
            else:
                raise ValueError(f"unable to parse requirement {term!r}")
        for requirement in requirements:
            _check_label_key(requirement.key)
        return cls(tuple(requirements))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels is selected."""
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)


def _check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if not _is_qualified_name_part(name) or (prefix and not _is_dns_subdomain(prefix)):
        raise ValueError(f"invalid label key {key!r}")


@dataclasses.dataclass(frozen=True)
class _FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    @classmethod
    def parse(cls, text: str | None, allowed: Sequence[str]) -> _FieldSelector:
        if not text or not text.strip():
            return cls()
        terms: list[tuple[str, bool, str]] = []
        for term in text.split(","):
            match = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(\S*)\s*", term)
            if not match:
                raise ValueError(f"invalid field selector term {term!r}")
            if match[1] not in allowed:
                raise ValueError(f'field label not supported: "{match[1]}"')
            terms.append((match[1], match[2] != "!=", match[3]))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for field, equal, value in self.terms:
            current: Any = obj
            for part in field.split("."):
                current = current.get(part) if isinstance(current, Mapping) else None
            if ((current or "") == value) != equal:
                return False
        return True


# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------


def _clone(value: Any) -> Any:
    """A deep copy of JSON data (several times faster than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value, the inputs are left untouched.

    >>> merge_patch({"a": 1, "b": {"c": 2}}, {"a": None, "b": {"d": 3}})
    {'b': {'c': 2, 'd': 3}}
    """
    return _merge_owned(_clone(target), patch)


def _merge_owned(target: Any, patch: Any) -> Any:
    # ``target`` is a private copy already: merged in place, nothing cloned twice.
    if not isinstance(patch, dict):
        return _clone(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_owned(result.get(key), value)
    return result


class JsonPatchError(ValueError):
    """A JSON patch that cannot be applied (bad operation, missing path, failed ``test``)."""


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise JsonPatchError(f"invalid JSON pointer {path!r}")
    if not path:
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(container: list[Any], token: str, *, insert: bool) -> int:
    if insert and token == "-":
        return len(container)
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise JsonPatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (not insert and index == len(container)):
        raise JsonPatchError(f"array index {index} out of range")
    return index


def _resolve(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise JsonPatchError(f"path element {token!r} not found")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, insert=False)]
        else:
            raise JsonPatchError(f"cannot descend into {type(current).__name__}")
    return current


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], insert=True), value)
    else:
        raise JsonPatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise JsonPatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise JsonPatchError(f"path element {tokens[-1]!r} not found")
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, tokens[-1], insert=False))
    raise JsonPatchError("cannot remove from a scalar")


def apply_json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test); returns a new document.

    >>> apply_json_patch({"a": [1]}, [{"op": "add", "path": "/a/-", "value": 2}])
    {'a': [1, 2]}
    """
    if not isinstance(operations, list):
        raise JsonPatchError("a JSON patch is a list of operations")
    doc = _clone(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise JsonPatchError(f"invalid operation {operation!r}")
        op = operation["op"]
        tokens = _pointer(operation.get("path"))
        if op in ("add", "replace", "test") and "value" not in operation:
            raise JsonPatchError(f"{op} needs a value")
        if op == "add":
            doc = _add(doc, tokens, _clone(operation["value"]))
        elif op == "remove":
            _remove(doc, tokens)
        elif op == "replace":
            _resolve(doc, tokens)  # must exist
            if tokens:
                _remove(doc, tokens)
            doc = _add(doc, tokens, _clone(operation["value"]))
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from"))
            if op == "move" and tokens[: len(source)] == source and tokens != source:
                raise JsonPatchError("cannot move a value into itself")
            value = _clone(_resolve(doc, source))
            if op == "move":
                _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif op == "test":
            if _resolve(doc, tokens) != operation["value"]:
                raise JsonPatchError(f"test failed at {operation.get('path')!r}")
        else:
            raise JsonPatchError(f"unknown operation {op!r}")
    return doc


# --------------------------------------------------------------------------------------------
# Validation and defaulting
# --------------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_QUALIFIED_PART = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")


def _is_dns_subdomain(text: str) -> bool:
    return 0 < len(text) <= 253 and all(_DNS_LABEL.fullmatch(p) for p in text.split("."))


def _is_qualified_name_part(text: str) -> bool:
    return 0 < len(text) <= 63 and bool(_QUALIFIED_PART.fullmatch(text))


def _is_qualified_name(text: str) -> bool:
    prefix, slash, name = text.rpartition("/")
    return _is_qualified_name_part(name) and (not slash or _is_dns_subdomain(prefix))


def _name_ok(rule: str, name: str) -> bool:
    if rule == "label":
        return len(name) <= 63 and bool(_DNS_LABEL.fullmatch(name))
    if rule == "dns1035":
        return len(name) <= 63 and bool(_DNS1035_LABEL.fullmatch(name))
    return _is_dns_subdomain(name)


def _check_metadata_types(metadata: Any) -> None:
    """Shapes a Go server could not even decode: 400, before any validation."""
    if not isinstance(metadata, dict):
        raise _bad_request("metadata must be an object")
    for field in ("labels", "annotations"):
        value = metadata.get(field)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise _bad_request(f"metadata.{field} must map strings to strings")
    finalizers = metadata.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        raise _bad_request("metadata.finalizers must be a list of strings")


def _validate_metadata(spec: ResourceSpec, obj: JsonDict) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    metadata = obj["metadata"]
    name = metadata["name"]
    if not _name_ok(spec.name_rule, name):
        causes.append(("metadata.name", f'Invalid value: "{name}": not a valid {spec.name_rule}'))
    for key, value in (metadata.get("labels") or {}).items():
        if not _is_qualified_name(key):
            causes.append(("metadata.labels", f'Invalid value: "{key}": invalid label key'))
        if len(value) > 63 or not re.fullmatch(_VALUE, value):
            causes.append((f"metadata.labels[{key}]", f'Invalid value: "{value}"'))
    for key in metadata.get("annotations") or {}:
        if not _is_qualified_name(key):
            causes.append(("metadata.annotations", f'Invalid value: "{key}": invalid key'))
    return causes


def _ip_or_none(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(text, str):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _family(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return "IPv4" if address.version == 4 else "IPv6"


_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def _validate_service(obj: JsonDict) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    spec = obj.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    if kind not in _SERVICE_TYPES:
        causes.append(("spec.type", f'Unsupported value: "{kind}"'))
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and kind != "ExternalName" and not headless:
        causes.append(("spec.ports", "Required value"))
    for index, port in enumerate(ports):
        number = port.get("port") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append((f"spec.ports[{index}].port", f"Invalid value: {number!r}"))
        elif port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            causes.append((f"spec.ports[{index}].protocol", "Unsupported value"))
    if len(ports) > 1 and any(not isinstance(p, dict) or not p.get("name") for p in ports):
        causes.append(("spec.ports", "Required value: port names when there is more than one"))
    for index, entry in enumerate(
        ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ):
        field = f"status.loadBalancer.ingress[{index}]"
        if not isinstance(entry, dict):
            causes.append((field, "Invalid value: not an object"))
            continue
        if "ip" in entry and _ip_or_none(entry["ip"]) is None:
            causes.append((f"{field}.ip", f'Invalid value: "{entry["ip"]}": not an IP address'))
        if "ipMode" in entry:
            if "ip" not in entry:
                causes.append((f"{field}.ipMode", "Forbidden: must not be set without ip"))
            elif entry["ipMode"] not in ("VIP", "Proxy"):
                causes.append((f"{field}.ipMode", f'Unsupported value: "{entry["ipMode"]}"'))
    return causes


def _validate_event_v1(obj: JsonDict) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    if not obj.get("eventTime"):
        causes.append(("eventTime", "Required value"))
    controller = obj.get("reportingController")
    if not controller:
        causes.append(("reportingController", "Required value"))
    elif not isinstance(controller, str) or not _is_qualified_name(controller):
        causes.append(("reportingController", f'Invalid value: "{controller}"'))
    for field in ("reportingInstance", "action", "reason"):
        value = obj.get(field)
        if not value:
            causes.append((field, "Required value"))
        elif not isinstance(value, str) or len(value) > 128:
            causes.append((field, "Too long: may not be longer than 128"))
    if obj.get("type") not in ("Normal", "Warning"):
        causes.append(("type", f'Unsupported value: "{obj.get("type")}"'))
    note = obj.get("note")
    if note is not None and (not isinstance(note, str) or len(note.encode()) > 1024):
        causes.append(("note", "Too long: may not be longer than 1024"))
    series = obj.get("series")
    if series is not None:
        if not isinstance(series, dict) or not isinstance(series.get("count"), int):
            causes.append(("series.count", "Required value"))
        elif series["count"] < 2:
            causes.append(("series.count", "Invalid value: should be at least 2"))
        if not isinstance(series, dict) or not series.get("lastObservedTime"):
            causes.append(("series.lastObservedTime", "Required value"))
    regarding = obj.get("regarding") or {}
    namespace = obj["metadata"].get("namespace")
    if regarding.get("namespace") and regarding["namespace"] != namespace:
        causes.append(("regarding.namespace", "Invalid value: does not match event.namespace"))
    return causes


def _validate_ip_address_pool(obj: JsonDict) -> list[tuple[str, str]]:
    addresses = (obj.get("spec") or {}).get("addresses")
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        return [("spec.addresses", "Required value: a list of strings")]
    return []


def _validate_crd(obj: JsonDict) -> list[tuple[str, str]]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    if not spec.get("group") or not names.get("plural") or not names.get("kind"):
        return [("spec", "Required value: group, names.plural and names.kind")]
    if obj["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
        return [("metadata.name", "Invalid value: must be spec.names.plural+'.'+spec.group")]
    if not spec.get("versions"):
        return [("spec.versions", "Required value")]
    return []


_VALIDATORS: dict[str, Callable[[JsonDict], list[tuple[str, str]]]] = {
    "v1/services": _validate_service,
    "events.k8s.io/v1/events": _validate_event_v1,
    "metallb.io/v1beta1/ipaddresspools": _validate_ip_address_pool,
    "apiextensions.k8s.io/v1/customresourcedefinitions": _validate_crd,
}


class _Allocator:
    """Cluster IPs per family and node ports, allocated in order and given back on release."""

    def __init__(self, cidrs: Sequence[str], ports: tuple[int, int] = (30000, 32767)) -> None:
        self.networks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        for cidr in cidrs:
            network = ipaddress.ip_network(cidr)
            self.networks.setdefault("IPv4" if network.version == 4 else "IPv6", network)
        if not self.networks:
            raise ValueError("at least one service CIDR is needed")
        self.primary = next(iter(self.networks))
        self.used_ips: set[str] = set()
        self.cursor: dict[str, int] = dict.fromkeys(self.networks, 10)
        self.used_ports: set[int] = set()
        self.ports = ports
        self.port_cursor = ports[0]

    def reserve_ip(self, text: str) -> str | None:
        """Reserve a requested IP; the error text if that is impossible."""
        address = _ip_or_none(text)
        if address is None:
            return f'Invalid value: "{text}": not an IP address'
        network = self.networks.get(_family(address))
        if network is None or address not in network:
            return f'Invalid value: "{text}": not in the service CIDRs'
        if str(address) in self.used_ips:
            return f'Invalid value: "{text}": provided IP is already allocated'
        self.used_ips.add(str(address))
        return None

    def allocate_ip(self, family: str) -> str:
        network = self.networks[family]
        size = min(network.num_addresses, 1 << 20)
        for _ in range(size):
            offset = self.cursor[family]
            self.cursor[family] = offset + 1 if offset + 1 < size - 1 else 10
            text = str(network.network_address + offset)
            if text not in self.used_ips:
                self.used_ips.add(text)
                return text
        raise _error(500, "InternalError", f"{family} service range is full")

    def allocate_port(self) -> int:
        low, high = self.ports
        for _ in range(high - low + 1):
            port = self.port_cursor
            self.port_cursor = port + 1 if port < high else low
            if port not in self.used_ports:
                self.used_ports.add(port)
                return port
        raise _error(500, "InternalError", "node port range is full")

    def release(self, service: Mapping[str, Any]) -> None:
        spec = service.get("spec") or {}
        for text in spec.get("clusterIPs") or []:
            self.used_ips.discard(text)
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and isinstance(port.get("nodePort"), int):
                self.used_ports.discard(port["nodePort"])


# --------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RequestRecord:
    """One API request as the emulator saw it (``status`` is None while it is being served)."""

    id: int
    method: str
    path: str
    query: dict[str, str]
    verb: str | None  # get, list, watch, create, update, patch, delete, deletecollection
    group: str | None
    resource: str | None  # the plural, e.g. "services"
    subresource: str | None
    namespace: str | None
    name: str | None
    content_type: str | None
    status: int | None = None

    def to_dict(self) -> JsonDict:
        """JSON-ready form (see :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestRecord:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


class RequestLog:
    """Every API request in arrival order, with counters (control requests are not logged).

    >>> log = RequestLog()
    >>> log.count(verb="patch", resource="services", subresource="status")
    0
    """

    def __init__(self, records: Iterable[RequestRecord] = ()) -> None:
        self.records: list[RequestRecord] = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.records)

    def clear(self) -> None:
        """Forget everything logged so far."""
        self.records.clear()

    def select(
        self,
        *,
        method: str | None = None,
        verb: str | None = None,
        group: str | None = None,
        resource: str | None = None,
        subresource: str | EllipsisType | None = ...,
        namespace: str | EllipsisType | None = ...,
        name: str | EllipsisType | None = ...,
        status: int | EllipsisType | None = ...,
        path: str | None = None,
    ) -> list[RequestRecord]:
        """The records matching every given filter (``...`` means any; None means absent)."""
        result = []
        for record in self.records:
            if method is not None and record.method != method.upper():
                continue
            if verb is not None and record.verb != verb:
                continue
            if group is not None and record.group != group:
                continue
            if resource is not None and record.resource != resource:
                continue
            if path is not None and record.path != path:
                continue
            if subresource is not ... and record.subresource != subresource:
                continue
            if namespace is not ... and record.namespace != namespace:
                continue
            if name is not ... and record.name != name:
                continue
            if status is not ... and record.status != status:
                continue
            result.append(record)
        return result

    def count(self, **filters: Any) -> int:
        """How many records match (same filters as :meth:`select`)."""
        return len(self.select(**filters))

    def by_path(self) -> collections.Counter[tuple[str, str]]:
        """Counts per (HTTP method, path)."""
        return collections.Counter((r.method, r.path) for r in self.records)

    def by_verb(self) -> collections.Counter[tuple[str, str]]:
        """Counts per (verb, resource[/subresource]), e.g. ``("patch", "services/status")``."""
        counter: collections.Counter[tuple[str, str]] = collections.Counter()
        for record in self.records:
            if record.verb is None or record.resource is None:
                continue
            what = record.resource + (f"/{record.subresource}" if record.subresource else "")
            counter[record.verb, what] += 1
        return counter

    def to_json(self) -> list[JsonDict]:
        """JSON-ready list of records."""
        return [record.to_dict() for record in self.records]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> RequestLog:
        """The inverse of :meth:`to_json`."""
        return cls(RequestRecord.from_dict(item) for item in data)


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


def _parse_route(path: str) -> _Route | None:
    """A resource path as kube-apiserver's RequestInfoFactory reads it; None for anything else."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    return _Route(
        group=group,
        version=version,
        plural=rest[0],
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource="/".join(rest[2:]) or None,
    )


def _discovery_resource(path: str) -> kmock_resource | None:
    """What kmock's discovery handlers expect for ``/api/v1``, ``/apis/G`` and ``/apis/G/V``."""
    parts = [part for part in path.split("/") if part]
    if len(parts) == 2 and parts[0] == "api":
        return kmock_resource(group="", version=parts[1])
    if len(parts) in (2, 3) and parts[0] == "apis":
        return kmock_resource(group=parts[1], version=parts[2] if len(parts) == 3 else None)
    return None


def _verb(method: str, route: _Route, params: Mapping[str, str]) -> str | None:
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if route.name else "list"
    return {
        ("POST", False): "create",
        ("PUT", True): "update",
        ("PATCH", True): "patch",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }.get((method, route.name is not None))


# kmock has no action for PUT (update) or deletecollection.
_KMOCK_ACTIONS = {
    "list": "LIST",
    "watch": "WATCH",
    "get": "FETCH",
    "create": "CREATE",
    "patch": "UPDATE",
    "delete": "DELETE",
}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content_type(request: Request) -> str:
    for key, value in request.headers.items():
        if key.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_CLOSE = object()  # ends a watch stream


@dataclasses.dataclass(frozen=True)
class _Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    old: JsonDict | None
    new: JsonDict


@dataclasses.dataclass(eq=False)  # hashed by identity
class _Watcher:
    queue: asyncio.Queue[_Event | object] = dataclasses.field(default_factory=asyncio.Queue)


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class ApiServerEmulator(KubernetesEmulator):
    """kmock's ``KubernetesEmulator`` turned into a kube-apiserver look-alike (module docstring).

    Use as ``async with ApiServerEmulator() as apiserver: base_url = await apiserver.start()``;
    ``conftest.py`` has it as the ``apiserver`` fixture.
    """

    #: Pre-load the metallb.io CRDs (IPAddressPool, L2Advertisement).
    install_metallb_crds: bool = True
    #: Service cluster IP ranges; the first one's family is the primary family.
    service_cidrs: tuple[str, ...] = ("10.96.0.0/12", "fd00:10:96::/112")
    #: Node ports for NodePort and LoadBalancer Services: 2,768 as on a real cluster, so
    #: thousands of LoadBalancer Services need ``allocateLoadBalancerNodePorts: false`` or more.
    node_port_range: tuple[int, int] = (30000, 32767)
    #: Watch events retained per resource for resuming watches (older ones: 410 Expired).
    watch_cache_size: int = 100_000
    #: Seconds a shutdown waits for requests in flight before cancelling them.
    shutdown_timeout: float = 1.0

    request_log: RequestLog = attrs.field(factory=RequestLog, init=False)
    _specs: dict[tuple[str, str, str], ResourceSpec] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=100, init=False)
    _events: dict[str, collections.deque[_Event]] = attrs.field(factory=dict, init=False)
    _compacted: dict[str, int] = attrs.field(factory=dict, init=False)
    _watchers: dict[str, set[_Watcher]] = attrs.field(factory=dict, init=False)
    _allocator: _Allocator | None = attrs.field(default=None, init=False)
    _conflict_first_status_write: bool = attrs.field(default=False, init=False)
    _conflict_touch: bool = attrs.field(default=True, init=False)
    _conflicted: set[tuple[str, str]] = attrs.field(factory=set, init=False)
    _record_ids: int = attrs.field(default=0, init=False)
    # Listener state.
    _runner: aiohttp.web.ServerRunner | None = attrs.field(default=None, init=False)
    _web_server: aiohttp.web.Server | None = attrs.field(default=None, init=False)
    _site: aiohttp.web.SockSite | None = attrs.field(default=None, init=False)
    _host: str = attrs.field(default="127.0.0.1", init=False)
    _port: int | None = attrs.field(default=None, init=False)
    _outage: OutageMode | None = attrs.field(default=None, init=False)
    _restore_task: asyncio.Task[None] | None = attrs.field(default=None, init=False)
    _watch_protocols: set[object] = attrs.field(factory=set, init=False)
    _user_payload_cache: tuple[tuple[Any, ...], list[Any]] = attrs.field(
        default=((), []), init=False
    )
    #: Called synchronously on every stored change, in resourceVersion order, with the
    #: resource id (``v1/services``), the event type, the old and the new object (for a
    #: DELETED, the new one is the object as deleted): a checker sees every instant.
    observers: list[Callable[[str, str, JsonDict | None, JsonDict], None]] = attrs.field(
        factory=list, init=False
    )
    #: Chaos (see :meth:`chaos`): every API request waits up to ``slowness`` seconds, and a
    #: write to Services (status included) or Events fails with one of ``flaky_codes`` with
    #: probability ``flakiness``; both drawn from ``chaos_rng`` (seed it for a repeatable run).
    slowness: float = attrs.field(default=0.0, init=False)
    flakiness: float = attrs.field(default=0.0, init=False)
    flaky_codes: tuple[int, ...] = attrs.field(default=(500, 503), init=False)
    chaos_rng: random.Random = attrs.field(factory=random.Random, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._allocator = _Allocator(self.service_cidrs, self.node_port_range)
        for spec in DEFAULT_RESOURCES:
            self.register(spec)
        if self.install_metallb_crds:
            for crd in metallb_crds():
                self.seed(crd)

    # ---- resources ------------------------------------------------------------------------

    def register(self, spec: ResourceSpec) -> None:
        """Serve a resource (also done by creating a CustomResourceDefinition)."""
        self._specs[spec.group, spec.version, spec.plural] = spec
        self._events.setdefault(spec.id, collections.deque())
        self._compacted.setdefault(spec.id, 0)
        self._watchers.setdefault(spec.id, set())
        self.resources[spec.kmock] = ResourceInfo(
            namespaced=spec.namespaced,
            kind=spec.kind,
            singular=spec.kind.lower(),
            verbs={
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            },
            shortnames=set(spec.short_names),
            subresources={"status"} if spec.status_subresource else set(),
        )

    @property
    def specs(self) -> list[ResourceSpec]:
        """Every served resource."""
        return list(self._specs.values())

    def spec(self, resource: str | ResourceSpec) -> ResourceSpec:
        """A served resource by id (``v1/services``, ``metallb.io/v1beta1/ipaddresspools``)."""
        if isinstance(resource, ResourceSpec):
            return resource
        for spec in self._specs.values():
            if spec.id == resource:
                return spec
        raise KeyError(f"not a served resource: {resource!r}")

    def spec_for(self, api_version: str, kind: str) -> ResourceSpec:
        """A served resource by ``apiVersion`` and ``kind``."""
        for spec in self._specs.values():
            if spec.api_version == api_version and spec.kind == kind:
                return spec
        raise KeyError(f"no served resource for {api_version} {kind}")

    # ---- direct access for tests (synchronous, from the event loop's thread) --------------

    @property
    def resource_version(self) -> str:
        """The current value of the resourceVersion counter."""
        return str(self._rv)

    def read(
        self, resource: str | ResourceSpec, namespace: str | None, name: str
    ) -> JsonDict | None:
        """The stored object (read-only), or None."""
        spec = self.spec(resource)
        return self._live(spec, namespace if spec.namespaced else None, name)

    def list_stored(
        self, resource: str | ResourceSpec, namespace: str | None = None
    ) -> list[JsonDict]:
        """The stored objects of a resource (read-only), sorted by namespace and name."""
        return self._list_live(self.spec(resource), namespace)

    def history(
        self, resource: str | ResourceSpec, namespace: str | None, name: str
    ) -> list[JsonDict | None]:
        """Every stored version of an object, oldest first; None marks a deletion."""
        spec = self.spec(resource)
        key = (spec.kmock, namespace if spec.namespaced else None, name)
        if key not in self.objects:
            return []
        return [None if v is None else v.raw for v in self.objects[key].history]

    def seed(self, *objects: Mapping[str, Any]) -> list[JsonDict]:
        """Store objects as given, status included: create, or replace keeping the uid.

        Stamping, defaulting and validation apply (422 as ``KubernetesError``); conflicts,
        status isolation and faults do not. Watchers see ADDED or MODIFIED.
        """
        stored = []
        for obj in objects:
            spec = self.spec_for(obj.get("apiVersion", ""), obj.get("kind", ""))
            body: JsonDict = _clone(dict(obj))
            _check_metadata_types(body.setdefault("metadata", {}))
            namespace = body["metadata"].get("namespace") if spec.namespaced else None
            if spec.namespaced and not namespace:
                namespace = body["metadata"]["namespace"] = "default"
            name = body["metadata"].get("name")
            if not name:
                raise _invalid(spec, "", [("metadata.name", "Required value")])
            old = self._live(spec, namespace, name)
            body["metadata"].pop("resourceVersion", None)
            if old is None:
                stored.append(self._create(spec, namespace, body, keep_status=True))
            else:
                new = self._server_fields(spec, old, body)
                stored.append(self._update(spec, old, new, dry_run=False))
        return stored

    def remove(self, resource: str | ResourceSpec, namespace: str | None, name: str) -> None:
        """Delete an object now, finalizers or not (watchers see DELETED)."""
        spec = self.spec(resource)
        old = self._live(spec, namespace if spec.namespaced else None, name)
        if old is None:
            raise _not_found(spec, name)
        self._finalize_deletion(spec, old)

    def compact(self) -> None:
        """Forget the watch history: resuming from any earlier resourceVersion gets 410."""
        for resource_id, events in self._events.items():
            events.clear()
            self._compacted[resource_id] = self._rv

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        *,
        timeout: float = 5.0,
        interval: float = 0.02,
    ) -> Any:
        """Poll ``predicate`` until it returns something truthy; return it (TimeoutError else)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(interval)

    # ---- faults ---------------------------------------------------------------------------

    def conflict_on_first_status_write(self, enabled: bool = True, *, touch: bool = True) -> None:
        """Answer 409 Conflict to the first status write (PUT/PATCH ``/status``) of each object.

        With ``touch`` the conflicting write is made real: the object gets a new
        resourceVersion (and watchers a MODIFIED event), as if another writer had been
        faster, so a client retrying with its stale resourceVersion fails again.
        """
        self._conflict_first_status_write = enabled
        self._conflict_touch = touch
        if not enabled:
            self._conflicted.clear()

    def chaos(
        self,
        *,
        slowness: float = 0.0,
        flakiness: float = 0.0,
        codes: tuple[int, ...] = (500, 503),
        seed: int | None = None,
    ) -> None:
        """Slow answers and flaky writes (``chaos()`` turns both off); see :attr:`slowness`."""
        self.slowness, self.flakiness, self.flaky_codes = slowness, flakiness, codes
        if seed is not None:
            self.chaos_rng.seed(seed)

    def drop_watches(self) -> None:
        """Cut every open watch stream (clients resume; after :meth:`compact`, with a 410)."""
        self._drop_connections(watches_only=True)

    @property
    def available(self) -> bool:
        """False while the API has gone away."""
        return self._outage is None

    async def go_away(self, mode: OutageMode = "refuse", seconds: float | None = None) -> None:
        """Make the API unreachable: ``refuse`` stops listening, ``503`` answers 503 to all.

        ``refuse`` cuts every open connection, ``503`` the open watches only (idle keep-alive
        connections then get 503s). With ``seconds`` the API comes back by itself.
        """
        if mode not in ("refuse", "503"):
            raise ValueError(f"unknown outage mode {mode!r}")
        if self._outage is not None:
            await self.come_back()
        if mode == "refuse" and self._site is not None:
            await self._site.stop()
            self._site = None
        self._outage = mode
        # A dead server cuts every connection; a 503-answering proxy cuts the streams only.
        self._drop_connections(watches_only=mode == "503")
        if seconds is not None:
            self._restore_task = asyncio.get_running_loop().create_task(
                self._come_back_after(seconds)
            )

    async def come_back(self) -> None:
        """End an outage (listening again on the same port)."""
        task, self._restore_task = self._restore_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self._outage == "refuse" and self._runner is not None:
            await self._listen()
        self._outage = None

    async def _come_back_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.come_back()

    @contextlib.asynccontextmanager
    async def unavailable(self, mode: OutageMode = "refuse") -> AsyncIterator[None]:
        """``async with apiserver.unavailable(): ...`` - the API is away inside the block."""
        await self.go_away(mode)
        try:
            yield
        finally:
            await self.come_back()

    def _drop_connections(self, *, watches_only: bool = False) -> None:
        if self._web_server is None:
            return
        keep = _CURRENT_PROTOCOL.get()
        for connection in self._web_server.connections:
            if connection is keep or (watches_only and connection not in self._watch_protocols):
                continue
            connection.force_close()

    # ---- listening ------------------------------------------------------------------------

    @property
    def url(self) -> yarl.URL:
        """The base URL as kmock has it (a ``yarl.URL``); :attr:`base_url` is the string."""
        return yarl.URL(self.base_url)

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._port is None:
            raise RuntimeError("the emulator is not listening; await start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: any free port); return the URL."""
        if self._runner is not None:
            raise RuntimeError("already started")
        self._web_server = aiohttp.web.Server(self, handler_cancellation=True)
        self._runner = aiohttp.web.ServerRunner(
            self._web_server, shutdown_timeout=self.shutdown_timeout
        )
        await self._runner.setup()
        self._host, self._port = host, port
        await self._listen()
        return self.base_url

    async def _listen(self) -> None:
        assert self._runner is not None
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        # The port must be reusable at once after an outage closed it (TIME_WAIT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port or 0))
        self._port = sock.getsockname()[1]
        self._site = aiohttp.web.SockSite(self._runner, sock)
        await self._site.start()

    async def stop(self) -> None:
        """Stop listening, end every watch, close every connection."""
        if self._restore_task is not None:
            self._restore_task.cancel()
            self._restore_task = None
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(_CLOSE)
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = self._web_server = self._site = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
        await super().__aexit__(exc_type, exc_value, traceback)

    # ---- HTTP entry point -----------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Serve one HTTP request (the aiohttp low-level server calls this)."""
        body = await raw_request.read()
        _CURRENT_PROTOCOL.set(raw_request.protocol)
        if raw_request.path.startswith(CONTROL_PREFIX):
            return await self._control(raw_request, body)
        request = await self._parse_request(raw_request, body)
        self._requests.append(request)
        record = self._open_record(request)
        _CURRENT_RECORD.set(record)
        response: aiohttp.web.StreamResponse
        try:
            response = await self._handle(request)
        except KubernetesError as error:
            response = _error_response(error)
        except rendering.StreamingError as wrapper:  # from a user-defined streaming reaction
            raw_response = wrapper.args[0]
            if not raw_response.prepared:
                response = self._internal_error(wrapper.__cause__ or wrapper)
            else:
                await raw_response.write_eof()
                response = raw_response
        except Exception as error:  # an emulator bug: tell the client, fail a strict fixture
            response = self._internal_error(error)
        if record is not None:
            record.status = response.status
        return response

    def _internal_error(self, error: BaseException) -> aiohttp.web.Response:
        if self._errors and isinstance(error, Exception):
            self._errors[-1].append(error)
        return _error_response(_error(500, "InternalError", repr(error)))

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        """Errors from kmock's own handlers (discovery, reactions) as exact-JSON Statuses."""
        if isinstance(exc, KubernetesError):
            reason = "NotFound" if exc.status == 404 else (exc.reason or "").replace(" ", "")
            return _error_response(_error(exc.status, reason, exc.message or reason))
        return _error_response(_error(500, "InternalError", repr(exc)))

    async def _parse_request(self, raw_request: aiohttp.web.BaseRequest, body: bytes) -> Request:
        """A kmock ``Request`` with kube-apiserver path semantics (kmock's own parser fails on
        ``/api/v1/namespaces`` and reads ``/api/v1/namespaces/x`` as a namespace)."""
        params = dict(raw_request.query)
        route = _parse_route(raw_request.path)
        text = body.decode("utf-8", errors="replace")
        data: Any = None
        if body:
            with contextlib.suppress(ValueError):
                data = json.loads(body)
        action = None
        if route is not None:
            verb = _verb(raw_request.method, route, params)
            name = _KMOCK_ACTIONS.get(verb or "")
            action = None if name is None else kmock_action(name)
        resource: kmock_resource | None
        if route is not None:
            resource = kmock_resource(route.group, route.version, route.plural)
        else:
            resource = _discovery_resource(raw_request.path)
        return Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=params,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=text,
            action=action,
            resource=resource,
            namespace=None if route is None else route.namespace,
            name=None if route is None else route.name,
            subresource=None if route is None else route.subresource,
        )

    def _open_record(self, request: Request) -> RequestRecord:
        route = _parse_route(request.url.path)
        method = str(request.method.value).upper()
        self._record_ids += 1
        record = RequestRecord(
            id=self._record_ids,
            method=method,
            path=request.url.path,
            query=dict(request.params),
            verb=None if route is None else _verb(method, route, request.params),
            group=None if route is None else route.group,
            resource=None if route is None else route.plural,
            subresource=None if route is None else route.subresource,
            namespace=None if route is None else route.namespace,
            name=None if route is None else route.name,
            content_type=_content_type(request) or None,
        )
        self.request_log.records.append(record)
        return record

    async def _handle(self, request: Request) -> aiohttp.web.StreamResponse:
        if self._outage is not None:
            raise _error(503, "ServiceUnavailable", "the API server is unavailable (emulated)")
        path = request.url.path
        if self.slowness:
            await asyncio.sleep(self.chaos_rng.uniform(0, self.slowness))
        if (
            self.flakiness
            and str(request.method.value).upper() in ("POST", "PUT", "PATCH", "DELETE")
            and ("/services/" in path or "/events" in path)
            and self.chaos_rng.random() < self.flakiness
        ):
            code = self.chaos_rng.choice(self.flaky_codes)
            reason = "ServiceUnavailable" if code == 503 else "InternalError"
            raise _error(code, reason, "injected fault (emulated)")
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok", content_type="text/plain")
        route = _parse_route(path)
        if route is None:
            return await super(KubernetesEmulator, self)._handle(request)  # discovery: kmock
        user_response = await self._serve_user_reaction(request)
        if user_response is not None:
            return user_response
        return await self._emulate(request, route)

    def _user_payloads(self) -> list[Any]:
        """The non-fallback reactions in kmock's priority order (cached: checked per request)."""
        current = tuple(self._payloads)  # holding them keeps identities from being reused
        cached = self._user_payload_cache[0]
        if len(cached) != len(current) or any(
            a is not b for a, b in zip(cached, current, strict=True)
        ):
            payloads = [
                payload
                for payload in self._payloads
                if not (payload.priorities and payload.priorities[0] == -math.inf)
            ]
            priorities = [payload.priorities for payload in payloads]
            width = max((len(priority) for priority in priorities), default=0)
            keys = [
                tuple(-p for p in priority) + (0,) * (width - len(priority))
                for priority in priorities
            ]
            ordered = [payloads[i] for i in sorted(range(len(payloads)), key=lambda i: keys[i])]
            self._user_payload_cache = (current, ordered)
        return self._user_payload_cache[1]

    async def _serve_user_reaction(self, request: Request) -> aiohttp.web.StreamResponse | None:
        """Let reactions declared with kmock's DSL answer first (kmock's own dispatch, minus
        the fallbacks: those are the emulation, served by :meth:`_emulate`)."""
        for payload in self._user_payloads():
            if request in payload._source and not payload._disabled.is_set():
                try:
                    response: aiohttp.web.StreamResponse = await payload(request)
                except ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
                else:
                    return response
        return None

    async def _serve_server_version(self, request: Request) -> rendering.Payload:
        """``/version``: the Kubernetes release whose behaviour is emulated (kmock says 1.26)."""
        return {
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0-metallb-core-emulator",
            "platform": "linux/amd64",
        }

    # kmock's fallbacks serve its own object store; everything they could match is routed to
    # _emulate, so whatever reaches them is not a resource this server knows.
    async def _serve_list(self, request: Request) -> rendering.Payload:
        raise _no_such_path()

    async def _serve_watch(self, request: Request) -> AsyncIterator[rendering.Payload]:
        raise _no_such_path()
        yield  # pragma: no cover - makes this a generator like kmock's

    async def _serve_fetch(self, request: Request) -> rendering.Payload:
        raise _no_such_path()

    async def _serve_create(self, request: Request) -> rendering.Payload:
        raise _no_such_path()

    async def _serve_update(self, request: Request) -> rendering.Payload:
        raise _no_such_path()

    async def _serve_delete(self, request: Request) -> rendering.Payload:
        raise _no_such_path()

    # ---- the emulation --------------------------------------------------------------------

    async def _emulate(self, request: Request, route: _Route) -> aiohttp.web.StreamResponse:
        spec = self._specs.get((route.group, route.version, route.plural))
        if spec is None:
            raise _no_such_path()
        namespace = route.namespace
        if not spec.namespaced and namespace is not None:
            raise _no_such_path()
        if route.subresource is not None and not (
            route.subresource == "status" and spec.status_subresource and route.name
        ):
            raise _no_such_path()
        if spec.namespaced and route.name is not None and namespace is None:
            raise _no_such_path()
        method = str(request.method.value).upper()
        params = request.params
        dry_run = params.get("dryRun") == "All"
        status = route.subresource == "status"
        name = route.name
        if method == "GET":
            if params.get("watch") in ("true", "1"):
                return await self._watch(request, spec, namespace, name)
            if name is None:
                return _json_response(self._list(spec, namespace, params))
            obj = self._live(spec, namespace, name)
            if obj is None:
                raise _not_found(spec, name)
            return _json_response(obj)
        if name is None:
            if method == "POST":
                if spec.namespaced and namespace is None:
                    raise _no_such_path()
                body = self._body(request, spec)
                created = self._create_request(spec, namespace, body, dry_run=dry_run)
                return _json_response(created, 201)
            if method == "DELETE":
                return _json_response(self._delete_collection(spec, namespace, params, dry_run))
            raise _error(405, "MethodNotAllowed", f"{method} is not supported here")
        if method == "PUT":
            body = self._body(request, spec)
            return _json_response(
                self._replace(spec, namespace, name, body, status=status, dry_run=dry_run)
            )
        if method == "PATCH":
            return await self._patch(request, spec, namespace, name, status, dry_run)
        if method == "DELETE" and not status:
            options = request.data if isinstance(request.data, dict) else {}
            return _json_response(self._delete(spec, namespace, name, options, dry_run))
        raise _error(405, "MethodNotAllowed", f"{method} is not supported here")

    def _body(self, request: Request, spec: ResourceSpec) -> JsonDict:
        body = request.data
        if body is None and request.body and _content_type(request) == APPLY_PATCH:
            try:
                body = yaml.safe_load(request.body)
            except yaml.YAMLError as error:
                raise _bad_request(f"invalid YAML: {error}") from error
        if not isinstance(body, dict):
            raise _bad_request("the request body must be a JSON object")
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if (api_version and api_version != spec.api_version) or (kind and kind != spec.kind):
            raise _bad_request(
                f"the API version in the data ({api_version}) or kind ({kind}) does not match "
                f"the expected {spec.api_version} {spec.kind}"
            )
        return body

    # -- storage primitives (synchronous: no await between a read and the write it decides) --

    def _key(self, spec: ResourceSpec, namespace: str | None, name: str) -> Any:
        return (spec.kmock, namespace if spec.namespaced else None, name)

    def _live(self, spec: ResourceSpec, namespace: str | None, name: str) -> JsonDict | None:
        key = self._key(spec, namespace, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else obj.last.raw

    def _list_live(self, spec: ResourceSpec, namespace: str | None) -> list[JsonDict]:
        items = []
        for (resource, obj_namespace, _), obj in self.objects.items():
            if resource != spec.kmock or obj.deleted:
                continue
            if namespace is not None and obj_namespace != namespace:
                continue
            items.append(obj.last.raw)
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return items

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, spec: ResourceSpec, event: _Event) -> None:
        for observer in self.observers:
            observer(spec.id, event.type, event.old, event.new)
        events = self._events[spec.id]
        events.append(event)
        while len(events) > self.watch_cache_size:
            dropped = events.popleft()
            self._compacted[spec.id] = dropped.rv
        for watcher in self._watchers[spec.id]:
            watcher.queue.put_nowait(event)

    def _store(
        self, spec: ResourceSpec, obj: JsonDict, event_type: str, old: JsonDict | None
    ) -> None:
        metadata = obj["metadata"]
        key = self._key(spec, metadata.get("namespace"), metadata["name"])
        if key in self.objects:
            self.objects[key].create(obj)  # appends a version (after a deletion too)
        else:
            self.objects[key] = obj
        self._emit(spec, _Event(int(metadata["resourceVersion"]), event_type, old, obj))

    # -- create ------------------------------------------------------------------------------

    def _create_request(
        self, spec: ResourceSpec, namespace: str | None, body: JsonDict, *, dry_run: bool
    ) -> JsonDict:
        metadata = body.setdefault("metadata", {})
        _check_metadata_types(metadata)
        if spec.namespaced and metadata.get("namespace") not in (None, "", namespace):
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        if metadata.get("resourceVersion"):
            raise _error(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        if not metadata.get("name"):
            prefix = metadata.get("generateName")
            if not prefix:
                raise _invalid(
                    spec,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
            while True:
                name = prefix + "".join(random.choices(_NAME_ALPHABET, k=5))
                if self._live(spec, namespace, name) is None:
                    break
            metadata["name"] = name
        return self._create(
            spec, namespace, body, keep_status=spec.create_keeps_status, dry_run=dry_run
        )

    def _create(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        body: JsonDict,
        *,
        keep_status: bool,
        dry_run: bool = False,
    ) -> JsonDict:
        obj: JsonDict = _clone(body)
        metadata = obj["metadata"]
        name = metadata["name"]
        if self._live(spec, namespace, name) is not None:
            raise _error(
                409,
                "AlreadyExists",
                f'{spec.qualified} "{name}" already exists',
                _details(spec, name),
            )
        obj["apiVersion"], obj["kind"] = spec.api_version, spec.kind
        if spec.namespaced:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            metadata.pop(field, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = _now()
        metadata["generation"] = 1
        if spec.status_subresource and (not keep_status or "status" not in obj):
            if spec.default_status is None:
                obj.pop("status", None)
            else:
                obj["status"] = _clone(dict(spec.default_status))
        rollback = self._default(spec, obj, None)
        try:
            self._validate(spec, obj)
        except KubernetesError:
            rollback()
            raise
        if dry_run:
            rollback()
            metadata["resourceVersion"] = str(self._rv)
            return obj
        metadata["resourceVersion"] = str(self._next_rv())
        self._store(spec, obj, "ADDED", None)
        self._after_create(spec, obj)
        return obj

    # -- update ------------------------------------------------------------------------------

    def _server_fields(self, spec: ResourceSpec, old: JsonDict, new: JsonDict) -> JsonDict:
        """``new`` with what clients cannot change taken from ``old``."""
        obj: JsonDict = _clone(new)
        obj["apiVersion"], obj["kind"] = spec.api_version, spec.kind
        metadata = obj.setdefault("metadata", {})
        _check_metadata_types(metadata)
        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if field in old["metadata"]:
                metadata[field] = old["metadata"][field]
            else:
                metadata.pop(field, None)
        metadata.pop("managedFields", None)
        return obj

    def _check_identity(
        self, spec: ResourceSpec, namespace: str | None, name: str, body: JsonDict
    ) -> None:
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise _bad_request("metadata must be an object")
        if metadata.get("name") not in (None, name):
            raise _bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on "
                f"the URL ({name})"
            )
        if spec.namespaced and metadata.get("namespace") not in (None, "", namespace):
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )

    def _check_preconditions(
        self, spec: ResourceSpec, old: JsonDict, metadata: Mapping[str, Any]
    ) -> None:
        name = old["metadata"]["name"]
        rv = metadata.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise _conflict(spec, name)
        uid = metadata.get("uid")
        if uid and uid != old["metadata"]["uid"]:
            raise _conflict(
                spec,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object "
                f"meta: {old['metadata']['uid']}",
            )

    def _maybe_inject_conflict(self, spec: ResourceSpec, old: JsonDict, status: bool) -> None:
        if not (status and self._conflict_first_status_write):
            return
        key = (spec.id, old["metadata"]["uid"])
        if key in self._conflicted:
            return
        self._conflicted.add(key)
        if self._conflict_touch:
            touched: JsonDict = _clone(old)
            touched["metadata"]["resourceVersion"] = str(self._next_rv())
            self._store(spec, touched, "MODIFIED", old)
        raise _conflict(spec, old["metadata"]["name"])

    def _combine(
        self, spec: ResourceSpec, old: JsonDict, candidate: JsonDict, *, status: bool
    ) -> JsonDict:
        """The next version: only ``status`` from a /status write, anything but it otherwise."""
        if status:
            new: JsonDict = _clone(old)
            if "status" in candidate:
                new["status"] = _clone(candidate["status"])
            else:
                new.pop("status", None)
            return new
        new = self._server_fields(spec, old, candidate)
        if spec.status_subresource:
            if "status" in old:
                new["status"] = _clone(old["status"])
            else:
                new.pop("status", None)
        return new

    def _update(
        self, spec: ResourceSpec, old: JsonDict, new: JsonDict, *, dry_run: bool
    ) -> JsonDict:
        """Default, validate and store ``new`` as the next version of ``old``."""
        rollback = self._default(spec, new, old)
        try:
            self._validate(spec, new)
        except KubernetesError:
            rollback()
            raise
        metadata = new["metadata"]
        ignored = ("metadata", "status") if spec.status_subresource else ("metadata",)
        if any(old.get(k) != new.get(k) for k in set(old) | set(new) if k not in ignored):
            metadata["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if new == old:  # a no-op: no new version, no event (as kube-apiserver)
            rollback()
            return old
        if dry_run:
            rollback()
            return new
        metadata["resourceVersion"] = str(self._next_rv())
        self._store(spec, new, "MODIFIED", old)
        self._after_update(spec, old, new)
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            self._finalize_deletion(spec, new)
        return new

    def _replace(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        body: JsonDict,
        *,
        status: bool,
        dry_run: bool,
    ) -> JsonDict:
        self._check_identity(spec, namespace, name, body)
        old = self._live(spec, namespace, name)
        if old is None:
            raise _not_found(spec, name)
        self._maybe_inject_conflict(spec, old, status)
        self._check_preconditions(spec, old, body.get("metadata") or {})
        return self._update(
            spec, old, self._combine(spec, old, body, status=status), dry_run=dry_run
        )

    async def _patch(
        self,
        request: Request,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        status: bool,
        dry_run: bool,
    ) -> aiohttp.web.Response:
        content_type = _content_type(request)
        if content_type not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH, APPLY_PATCH):
            raise _error(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - "
                f"accepted media types include: {JSON_PATCH}, {MERGE_PATCH}, "
                f"{STRATEGIC_MERGE_PATCH}, {APPLY_PATCH}",
            )
        if content_type == APPLY_PATCH and not request.params.get("fieldManager"):
            raise _invalid(
                spec, name, [("fieldManager", "Required value: is required for apply patch")]
            )
        patch: Any
        if content_type == JSON_PATCH:
            patch = request.data
            if not isinstance(patch, list):
                raise _bad_request("a JSON patch must be a list of operations")
        else:
            patch = self._body(request, spec)
            self._check_identity(spec, namespace, name, patch)
            if not isinstance(patch.get("metadata", {}), dict):
                raise _bad_request("metadata must be an object")
        old = self._live(spec, namespace, name)
        if old is None:
            if content_type == APPLY_PATCH and not status:
                body: JsonDict = _clone(patch)
                body.setdefault("metadata", {})["name"] = name
                body["metadata"].pop("resourceVersion", None)
                created = self._create(
                    spec, namespace, body, keep_status=spec.create_keeps_status, dry_run=dry_run
                )
                return _json_response(created, 201)
            raise _not_found(spec, name)
        self._maybe_inject_conflict(spec, old, status)
        if content_type == JSON_PATCH:
            try:
                patched = apply_json_patch(old, patch)
            except JsonPatchError as error:
                raise _invalid(spec, name, [("patch", str(error))]) from error
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise _invalid(spec, name, [("patch", "the result is not an object")])
            _check_metadata_types(patched["metadata"])
            rv = patched["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise _conflict(spec, name)
            if patched["metadata"].get("name") != name:
                raise _bad_request("a patch may not change the name")
        else:
            self._check_preconditions(spec, old, patch.get("metadata") or {})
            patched = merge_patch(old, patch)
        new = self._combine(spec, old, patched, status=status)
        return _json_response(self._update(spec, old, new, dry_run=dry_run))

    # -- delete ------------------------------------------------------------------------------

    def _delete(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        options: Mapping[str, Any],
        dry_run: bool,
    ) -> JsonDict:
        old = self._live(spec, namespace, name)
        if old is None:
            raise _not_found(spec, name)
        preconditions = options.get("preconditions") or {}
        if isinstance(preconditions, dict):
            self._check_preconditions(spec, old, preconditions)
        if dry_run:
            return old
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            new: JsonDict = _clone(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            self._store(spec, new, "MODIFIED", old)
            return new
        return self._finalize_deletion(spec, old)

    def _finalize_deletion(self, spec: ResourceSpec, old: JsonDict) -> JsonDict:
        gone: JsonDict = _clone(old)
        gone["metadata"]["resourceVersion"] = str(self._next_rv())
        metadata = old["metadata"]
        key = self._key(spec, metadata.get("namespace"), metadata["name"])
        self.objects[key].delete()
        self._emit(spec, _Event(self._rv, "DELETED", old, gone))
        self._after_delete(spec, old)
        return gone

    def _delete_collection(
        self, spec: ResourceSpec, namespace: str | None, params: Mapping[str, str], dry_run: bool
    ) -> JsonDict:
        labels, fields = self._selectors(spec, params)
        for obj in self._list_live(spec, namespace):
            if labels.matches(obj["metadata"].get("labels")) and fields.matches(obj):
                metadata = obj["metadata"]
                self._delete(spec, metadata.get("namespace"), metadata["name"], {}, dry_run)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    # -- hooks ------------------------------------------------------------------------------

    def _default(
        self, spec: ResourceSpec, obj: JsonDict, old: JsonDict | None
    ) -> Callable[[], None]:
        """Server-side defaulting; returns how to undo its allocations."""
        if spec.id == "v1/namespaces":
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif spec.id == "apiextensions.k8s.io/v1/customresourcedefinitions" and old is None:
            names = (obj.get("spec") or {}).get("names") or {}
            obj["status"] = {
                "acceptedNames": _clone(names),
                "conditions": [{"type": "Established", "status": "True"}],
                "storedVersions": [
                    v.get("name") for v in (obj.get("spec") or {}).get("versions") or []
                ],
            }
        elif spec.id == "v1/services":
            return self._default_service(spec, obj, old)
        return lambda: None

    def _default_service(
        self, resource: ResourceSpec, obj: JsonDict, old: JsonDict | None
    ) -> Callable[[], None]:
        allocator = self._allocator
        assert allocator is not None
        name = obj["metadata"]["name"]
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            raise _bad_request("spec must be an object")
        old_spec = (old or {}).get("spec") or {}
        allocated_ips: list[str] = []
        allocated_ports: list[int] = []

        def rollback() -> None:
            allocator.used_ips.difference_update(allocated_ips)
            allocator.used_ports.difference_update(allocated_ports)

        try:
            kind = spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
                    port.setdefault("targetPort", port.get("port"))
            for entry in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                if isinstance(entry, dict) and "ip" in entry:
                    entry.setdefault("ipMode", "VIP")
            if kind == "ExternalName":
                for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    spec.pop(field, None)
                return rollback
            # Allocated values survive an update that omits them (PatchAllocatedValues).
            for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if not spec.get(field) and old_spec.get(field):
                    spec[field] = _clone(old_spec[field])
            spec.setdefault("internalTrafficPolicy", "Cluster")
            if kind in ("NodePort", "LoadBalancer"):
                spec.setdefault("externalTrafficPolicy", "Cluster")
            else:
                spec.pop("externalTrafficPolicy", None)
            if kind == "LoadBalancer":
                spec.setdefault("allocateLoadBalancerNodePorts", True)
            self._default_cluster_ips(resource, name, spec, old_spec, allocated_ips)
            wants_ports = kind == "NodePort" or (
                kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False
            )
            old_ports = {
                (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in old_spec.get("ports") or []
                if isinstance(p, dict)
            }
            for port in spec.get("ports") or []:
                if not isinstance(port, dict):
                    continue
                if not wants_ports:
                    port.pop("nodePort", None)
                    continue
                if port.get("nodePort"):
                    continue
                previous = old_ports.get((port.get("port"), port.get("protocol")))
                if previous:
                    port["nodePort"] = previous
                else:
                    port["nodePort"] = allocator.allocate_port()
                    allocated_ports.append(port["nodePort"])
        except BaseException:
            rollback()
            raise
        return rollback

    def _default_cluster_ips(
        self,
        resource: ResourceSpec,
        name: str,
        spec: JsonDict,
        old_spec: Mapping[str, Any],
        allocated: list[str],
    ) -> None:
        allocator = self._allocator
        assert allocator is not None
        if spec.get("clusterIP") == "None" or spec.get("clusterIPs") == ["None"]:
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("ipFamilies", [allocator.primary])
            return
        given = list(
            spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        )
        if spec.get("clusterIP") and given and spec["clusterIP"] != given[0]:
            raise _invalid(resource, name, [("spec.clusterIPs[0]", "must match spec.clusterIP")])
        families = list(spec.get("ipFamilies") or [])
        addresses = [_ip_or_none(text) for text in given]
        if any(a is None for a in addresses) or len(given) > 2:
            raise _invalid(resource, name, [("spec.clusterIPs", f"Invalid value: {given}")])
        given_families = [_family(a) for a in addresses if a is not None]
        if len(set(given_families)) != len(given_families):
            raise _invalid(
                resource, name, [("spec.clusterIPs", "may not hold two IPs of a family")]
            )
        policy = spec.get("ipFamilyPolicy") or (
            "RequireDualStack" if len(given) == 2 or len(families) == 2 else "SingleStack"
        )
        if policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
            raise _invalid(
                resource, name, [("spec.ipFamilyPolicy", f'Unsupported value: "{policy}"')]
            )
        if not families:
            families = given_families or [allocator.primary]
        if families[: len(given_families)] != given_families:
            raise _invalid(resource, name, [("spec.ipFamilies", "must match the clusterIPs")])
        if any(f not in ("IPv4", "IPv6") for f in families) or len(set(families)) != len(families):
            raise _invalid(resource, name, [("spec.ipFamilies", f"Invalid value: {families}")])
        if policy != "SingleStack" and len(families) == 1:
            other = [f for f in allocator.networks if f != families[0]]
            if other:
                families.append(other[0])
            elif policy == "RequireDualStack":
                raise _invalid(
                    resource, name, [("spec.ipFamilyPolicy", "the cluster is not dual-stack")]
                )
        if policy == "SingleStack" and len(families) > 1:
            raise _invalid(resource, name, [("spec.ipFamilies", "SingleStack allows one family")])
        for family in families:
            if family not in allocator.networks:
                raise _invalid(resource, name, [("spec.ipFamilies", f"{family} is not served")])
        old_ips = list(old_spec.get("clusterIPs") or [])
        if old_ips and old_ips != ["None"] and given[: len(old_ips)] != old_ips[: len(given)]:
            raise _invalid(resource, name, [("spec.clusterIPs", "field is immutable")])
        for text in given:
            if text in old_ips:
                continue
            problem = allocator.reserve_ip(text)
            if problem is not None:
                raise _invalid(resource, name, [("spec.clusterIPs", problem)])
            allocated.append(text)
        ips = list(given)
        for family in families[len(given) :]:
            ip = allocator.allocate_ip(family)
            allocated.append(ip)
            ips.append(ip)
        spec["clusterIPs"], spec["clusterIP"] = ips, ips[0]
        spec["ipFamilies"], spec["ipFamilyPolicy"] = families, policy

    def _validate(self, spec: ResourceSpec, obj: JsonDict) -> None:
        causes = _validate_metadata(spec, obj)
        validator = _VALIDATORS.get(spec.id)
        if validator is not None:
            causes += validator(obj)
        if causes:
            raise _invalid(spec, obj["metadata"]["name"], causes)

    def _after_create(self, spec: ResourceSpec, obj: JsonDict) -> None:
        if spec.id == _CRD_SPEC.id:
            for version in obj["spec"]["versions"]:
                if version.get("served", True):
                    self.register(ResourceSpec.from_crd(obj, version))

    def _after_update(self, spec: ResourceSpec, old: JsonDict, new: JsonDict) -> None:
        # The new version's allocations are made; free what it gave up (type or family change).
        if spec.id == "v1/services" and self._allocator is not None:
            kept_ips = set((new.get("spec") or {}).get("clusterIPs") or [])
            kept_ports = {
                p.get("nodePort")
                for p in (new.get("spec") or {}).get("ports") or []
                if isinstance(p, dict)
            }
            for text in (old.get("spec") or {}).get("clusterIPs") or []:
                if text not in kept_ips:
                    self._allocator.used_ips.discard(text)
            for port in (old.get("spec") or {}).get("ports") or []:
                if isinstance(port, dict) and port.get("nodePort") not in kept_ports:
                    self._allocator.used_ports.discard(port.get("nodePort"))

    def _after_delete(self, spec: ResourceSpec, old: JsonDict) -> None:
        if spec.id == "v1/services" and self._allocator is not None:
            self._allocator.release(old)
        elif spec.id == "v1/namespaces":
            namespace = old["metadata"]["name"]
            for other in list(self._specs.values()):
                if other.namespaced:
                    for obj in self._list_live(other, namespace):
                        self._finalize_deletion(other, obj)

    # -- list & watch -----------------------------------------------------------------------

    def _selectors(
        self, spec: ResourceSpec, params: Mapping[str, str]
    ) -> tuple[LabelSelector, _FieldSelector]:
        try:
            labels = LabelSelector.parse(params.get("labelSelector"))
        except ValueError as error:
            raise _bad_request(f"unable to parse requirement: {error}") from error
        try:
            fields = _FieldSelector.parse(params.get("fieldSelector"), spec.field_selectors)
        except ValueError as error:
            raise _bad_request(str(error)) from error
        return labels, fields

    def _list(
        self, spec: ResourceSpec, namespace: str | None, params: Mapping[str, str]
    ) -> JsonDict:
        labels, fields = self._selectors(spec, params)
        items = [
            obj
            for obj in self._list_live(spec, namespace)
            if labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)
        ]
        metadata: JsonDict = {"resourceVersion": str(self._rv)}
        token = params.get("continue")
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))
                start = (after["ns"], after["name"])
            except (ValueError, KeyError, TypeError) as error:
                raise _bad_request("invalid continue token") from error
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace") or "", o["metadata"]["name"]) > start
            ]
        limit = params.get("limit")
        if limit:
            try:
                size = int(limit)
            except ValueError as error:
                raise _bad_request(f"invalid limit {limit!r}") from error
            if 0 < size < len(items):
                last = items[size - 1]["metadata"]
                cursor = {"ns": last.get("namespace") or "", "name": last["name"]}
                metadata["continue"] = base64.urlsafe_b64encode(_dumps(cursor)).decode()
                metadata["remainingItemCount"] = len(items) - size
                items = items[:size]
        return {
            "apiVersion": spec.api_version,
            "kind": f"{spec.kind}List",
            "metadata": metadata,
            "items": items,
        }

    async def _watch(
        self, request: Request, spec: ResourceSpec, namespace: str | None, name: str | None
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        labels, fields = self._selectors(spec, params)
        timeout: float | None = None
        if params.get("timeoutSeconds"):
            try:
                timeout = float(params["timeoutSeconds"])
            except ValueError as error:
                raise _bad_request("invalid timeoutSeconds") from error

        def selected(obj: JsonDict | None) -> bool:
            if obj is None:
                return False
            metadata = obj["metadata"]
            if namespace is not None and metadata.get("namespace") != namespace:
                return False
            if name is not None and metadata["name"] != name:
                return False
            return labels.matches(metadata.get("labels")) and fields.matches(obj)

        def translate(event: _Event) -> JsonDict | None:
            was, now = selected(event.old), selected(event.new)
            if event.type == "DELETED":
                return {"type": "DELETED", "object": event.new} if was else None
            if now and not was:
                return {"type": "ADDED", "object": event.new}
            if was and not now:
                return {"type": "DELETED", "object": event.new}
            return {"type": event.type, "object": event.new} if now else None

        # Snapshot and subscription with no await in between: nothing missed, nothing twice.
        initial: list[JsonDict] = []
        rv_param = params.get("resourceVersion")
        if not rv_param or rv_param == "0":
            initial = [
                {"type": "ADDED", "object": obj}
                for obj in self._list_live(spec, namespace)
                if selected(obj)
            ]
        else:
            try:
                since = int(rv_param)
            except ValueError as error:
                raise _bad_request(f"invalid resourceVersion {rv_param!r}") from error
            if since < self._compacted[spec.id]:
                expired = _error(
                    410,
                    "Expired",
                    f"too old resource version: {since} ({self._compacted[spec.id]})",
                )
                initial = [{"type": "ERROR", "object": status_body(expired)}]
            else:
                for event in self._events[spec.id]:
                    if event.rv > since and (line := translate(event)) is not None:
                        initial.append(line)
        watcher = _Watcher()
        expired_now = bool(initial) and initial[0]["type"] == "ERROR"
        if not expired_now:
            self._watchers[spec.id].add(watcher)
        response = aiohttp.web.StreamResponse(
            status=200, headers={"Content-Type": "application/json"}
        )
        response.enable_chunked_encoding()
        assert request._raw_request is not None
        protocol = request._raw_request.protocol
        self._watch_protocols.add(protocol)
        try:
            await response.prepare(request._raw_request)
            record = _CURRENT_RECORD.get()
            if record is not None:
                record.status = 200
            for line in initial:
                await response.write(_dumps(line) + b"\n")
            if not expired_now:
                await self._stream_events(response, watcher, translate, timeout)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away (or an outage cut it): nothing more to say
        finally:
            self._watchers[spec.id].discard(watcher)
            self._watch_protocols.discard(protocol)
        return response

    async def _stream_events(
        self,
        response: aiohttp.web.StreamResponse,
        watcher: _Watcher,
        translate: Callable[[_Event], JsonDict | None],
        timeout: float | None,
    ) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    item = await watcher.queue.get()
                    if item is _CLOSE:
                        return
                    assert isinstance(item, _Event)
                    line = translate(item)
                    if line is not None:
                        await response.write(_dumps(line) + b"\n")

    # -- control API ------------------------------------------------------------------------

    async def _control(
        self, raw_request: aiohttp.web.BaseRequest, body: bytes
    ) -> aiohttp.web.StreamResponse:
        """``/_emulator/...``: faults, request log and history for out-of-process tests."""
        action = raw_request.path[len(CONTROL_PREFIX) :].strip("/")
        method = raw_request.method
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return _error_response(_bad_request("invalid JSON"))
        try:
            result = await self._control_action(method, action, data, raw_request.query)
        except (KeyError, ValueError, TypeError) as error:
            return _error_response(_bad_request(f"{type(error).__name__}: {error}"))
        except KubernetesError as error:
            return _error_response(error)
        response = _json_response(result)
        # The control connection must not outlive an outage it just started.
        response.force_close()
        return response

    async def _control_action(
        self, method: str, action: str, data: Mapping[str, Any], query: Mapping[str, str]
    ) -> Any:
        match method, action:
            case "GET", "healthz":
                return {"ok": True, "available": self.available}
            case "GET", "requests":
                return {"records": self.request_log.to_json()}
            case "DELETE", "requests":
                self.request_log.clear()
                return {}
            case "POST", "outage":
                mode = data.get("mode", "refuse")
                seconds = data.get("seconds")
                if mode == "refuse" and seconds is None:
                    raise ValueError("a refusing outage needs seconds: nothing could end it")
                await self.go_away(mode, None if seconds is None else float(seconds))
                return {}
            case "DELETE", "outage":
                await self.come_back()
                return {}
            case "POST", "conflicts":
                self.conflict_on_first_status_write(
                    bool(data.get("first_status_write", True)), touch=bool(data.get("touch", True))
                )
                return {}
            case "POST", "compact":
                self.compact()
                return {}
            case "GET", "history":
                versions = self.history(query["resource"], query.get("namespace"), query["name"])
                return {"versions": versions}
            case "POST", "seed":
                return {"objects": self.seed(*data["objects"])}
        raise _error(404, "NotFound", f"no control action {method} {action}")


# --------------------------------------------------------------------------------------------
# Kubeconfig
# --------------------------------------------------------------------------------------------


def kubeconfig_dict(
    url: str, *, namespace: str = "default", token: str = "emulator-token", name: str = "emulator"
) -> JsonDict:
    """A kubeconfig (as a dict) for ``url`` with a dummy bearer token (any token is accepted)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
    }


def kube_config(url: str, *, namespace: str = "default") -> KubeConfig:
    """A lightkube ``KubeConfig`` for ``url`` (``from_server`` is broken in lightkube 1.0.1)."""
    from lightkube import KubeConfig

    return KubeConfig.from_dict(kubeconfig_dict(url, namespace=namespace))


def write_kubeconfig(path: str | os.PathLike[str], url: str, *, namespace: str = "default") -> Path:
    """Write a kubeconfig file for ``url`` (for ``--kubeconfig`` of subprocesses)."""
    target = Path(path)
    target.write_text(yaml.safe_dump(kubeconfig_dict(url, namespace=namespace)))
    return target


# --------------------------------------------------------------------------------------------
# Out-of-process use
# --------------------------------------------------------------------------------------------


class EmulatorControl:
    """Blocking client of the control API of an emulator in another process.

    Never call it from the event loop running an in-process emulator (it would deadlock);
    use the emulator's methods there.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(
        self, method: str, action: str, data: Any = None, query: Mapping[str, str] | None = None
    ) -> Any:
        url = f"{self.url}{CONTROL_PREFIX}{action}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        body = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(
            url, data=body, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {url}: {error.code} {error.read()!r}") from error

    def healthy(self) -> bool:
        """Whether the control API answers."""
        try:
            return bool(self._call("GET", "healthz")["ok"])
        except (OSError, RuntimeError):
            return False

    def requests(self) -> RequestLog:
        """A copy of the request log."""
        return RequestLog.from_json(self._call("GET", "requests")["records"])

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "requests")

    def go_away(self, mode: OutageMode = "refuse", seconds: float | None = None) -> None:
        """Start an outage (``refuse`` needs ``seconds``: nothing could reach it to end it)."""
        self._call("POST", "outage", {"mode": mode, "seconds": seconds})

    def come_back(self) -> None:
        """End a ``503`` outage."""
        self._call("DELETE", "outage")

    def conflict_on_first_status_write(self, enabled: bool = True, *, touch: bool = True) -> None:
        """See :meth:`ApiServerEmulator.conflict_on_first_status_write`."""
        self._call("POST", "conflicts", {"first_status_write": enabled, "touch": touch})

    def compact(self) -> None:
        """See :meth:`ApiServerEmulator.compact`."""
        self._call("POST", "compact", {})

    def seed(self, *objects: Mapping[str, Any]) -> list[JsonDict]:
        """See :meth:`ApiServerEmulator.seed`."""
        result: list[JsonDict] = self._call("POST", "seed", {"objects": list(objects)})["objects"]
        return result

    def history(self, resource: str, namespace: str | None, name: str) -> list[JsonDict | None]:
        """See :meth:`ApiServerEmulator.history`."""
        query = {"resource": resource, "name": name}
        if namespace is not None:
            query["namespace"] = namespace
        versions: list[JsonDict | None] = self._call("GET", "history", query=query)["versions"]
        return versions


class EmulatorProcess:
    """The standalone emulator as a subprocess; ``prefix`` runs it e.g. in a network namespace.

    >>> with EmulatorProcess.start() as server:  # doctest: +SKIP
    ...     client = Client(kube_config(server.url))

    ``stop()`` (or leaving the ``with``) sends SIGTERM and waits.
    """

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.control = EmulatorControl(url)

    @classmethod
    def start(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: Sequence[str] = (),
        args: Sequence[str] = (),
        url_host: str | None = None,
        timeout: float = 30.0,
    ) -> EmulatorProcess:
        """Start ``python -m tests.kubernetes.emulator`` and wait for its URL line."""
        command = [*prefix, sys.executable, "-m", "tests.kubernetes.emulator"]
        command += ["--host", host, "--port", str(port), *args]
        if url_host is not None:
            command += ["--url-host", url_host]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(remaining, 0))
            if ready:
                line = process.stdout.readline().strip()
                if line.startswith("http"):
                    return cls(process, line)
            if process.poll() is not None or remaining <= 0:
                process.kill()
                process.wait()
                raise RuntimeError(f"the emulator did not start: {command} ({process.returncode})")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, and return the exit status (killed after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _serve(args: argparse.Namespace) -> int:
    async with ApiServerEmulator(install_metallb_crds=not args.no_metallb_crds) as apiserver:
        await apiserver.start(args.host, args.port)
        url = apiserver.base_url
        if args.url_host:
            host = f"[{args.url_host}]" if ":" in args.url_host else args.url_host
            url = f"http://{host}:{apiserver.base_url.rsplit(':', 1)[1]}"
        if args.kubeconfig:
            write_kubeconfig(args.kubeconfig, url, namespace=args.namespace)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(url, flush=True)
        await stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.kubernetes.emulator``: serve until SIGTERM/SIGINT, print the URL."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.kubernetes.emulator",
        description="A Kubernetes API server emulator for tests (plain HTTP, in memory).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--url-host", help="host to print in the URL (default: --host)")
    parser.add_argument("--kubeconfig", help="also write a kubeconfig for the URL here")
    parser.add_argument("--namespace", default="default", help="namespace of that kubeconfig")
    parser.add_argument(
        "--no-metallb-crds", action="store_true", help="do not pre-load the metallb.io CRDs"
    )
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
