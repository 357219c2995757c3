"""Routing: request paths to resources, verbs and kmock actions."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping

from kmock import Request
from kmock import resource as kmock_resource

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
