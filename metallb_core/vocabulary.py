"""The Kubernetes words the core and the adapters share, defined once.

The core reads Kubernetes objects as JSON dicts, and the adapters (``announcers.kubernetes``,
the command line) read and write the same objects: every module that needs one of these
words imports it from here, so that a Service has one key and one list of ingress IPs
everywhere.

- :data:`JsonDict`: a Kubernetes object (or part of one) as JSON: ``dict[str, Any]``.
- :func:`service_key`: a Service's key, ``namespace/name``, with ``default`` for a Service
  written without a namespace (as ``kubectl`` would create it). The key of
  :class:`~metallb_core.State`'s allocations and of every outcome.
- :func:`object_key`: the key of any object, namespaced or not: ``namespace/name`` when the
  object carries a namespace, ``name`` for a cluster-scoped one. For a Service read from the
  API server (which always fills in the namespace) it equals :func:`service_key`; for a
  Service, use :func:`service_key`.
- :func:`ingress_ips`: the IPs of ``status.loadBalancer.ingress``, in order.
- :data:`ALLOCATED_FROM_POOL`: the annotation naming the pool a Service's IPs came from.

Standard library only; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

JsonDict: TypeAlias = dict[str, Any]

#: The annotation the controller writes on every Service it gives addresses to.
ALLOCATED_FROM_POOL = "metallb.io/ip-allocated-from-pool"

__all__ = ["ALLOCATED_FROM_POOL", "JsonDict", "ingress_ips", "object_key", "service_key"]


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def _text(value: Any) -> str:
    """A metadata field as text: what is not a string reads as empty (never raises)."""
    return value if isinstance(value, str) else ""


def service_key(service: Mapping[str, Any]) -> str:
    """``namespace/name``; a Service without a namespace is in ``default``, as kubectl would.

    >>> service_key({"metadata": {"namespace": "web", "name": "nginx"}})
    'web/nginx'
    >>> service_key({"metadata": {"name": "nginx"}})
    'default/nginx'

    Never raises: a name or namespace that is not a string reads as empty (the Service is then
    refused by ``request_from_service``, with the field named).
    """
    meta = _metadata(service)
    return f"{_text(meta.get('namespace')) or 'default'}/{_text(meta.get('name'))}"


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` for an object carrying a namespace, ``name`` for a cluster-scoped one.

    >>> object_key({"metadata": {"namespace": "web", "name": "nginx"}})
    'web/nginx'
    >>> object_key({"metadata": {"name": "node-1"}})
    'node-1'
    """
    meta = _metadata(obj)
    namespace = meta.get("namespace")
    name = meta.get("name") or ""
    return f"{namespace}/{name}" if namespace else name


def ingress_ips(service: Mapping[str, Any]) -> list[str]:
    """The IPs in ``status.loadBalancer.ingress``, in order; hostname-only entries, and
    entries that are not objects, are skipped.

    >>> ingress_ips({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"},
    ...                                                       {"hostname": "lb.example"}]}}})
    ['10.0.0.1']
    >>> ingress_ips({"spec": {}})
    []
    """
    status = service.get("status") if isinstance(service, Mapping) else None
    balancer = status.get("loadBalancer") if isinstance(status, Mapping) else None
    entries = balancer.get("ingress") if isinstance(balancer, Mapping) else None
    if not isinstance(entries, list | tuple):
        return []
    return [str(e["ip"]) for e in entries if isinstance(e, Mapping) and e.get("ip")]
