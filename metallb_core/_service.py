"""Reading a Kubernetes Service (a JSON dict) the way MetalLB's controller does.

Each piece is its own function because the controller reads them at different steps and
reports their errors differently (see :mod:`metallb_core._converge`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from metallb_core._addresses import parse_go_ip
from metallb_core._allocator import family_of
from metallb_core._errors import InvalidService
from metallb_core._request import Port, ServiceRequest
from metallb_core.vocabulary import service_key

STABLE = "metallb.io/"
DEPRECATED = "metallb.universe.tf/"
ADDRESS_POOL = "address-pool"
LOADBALANCER_IPS = "loadBalancerIPs"
ALLOW_SHARED_IP = "allow-shared-ip"
_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")


def _go_list(items: Sequence[object]) -> str:
    """A list as Go's ``%v`` prints it: ``[a b]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def show(value: object) -> str:
    """A value as it appears in the Service's JSON, for error messages (cut at 80 characters)."""
    try:
        text = json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # pragma: no cover - default=repr accepts anything
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _object(value: object, field: str) -> Mapping[str, Any]:
    """A JSON object field: ``{}`` when absent or null, ``InvalidService`` when not an object."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidService(f"invalid {field}: {show(value)} is not an object")
    return value


def _string(value: object, field: str) -> str | None:
    """A string field (``None`` when absent or null), ``InvalidService`` otherwise."""
    if value is None or isinstance(value, str):
        return value
    raise InvalidService(f"invalid {field}: {show(value)} is not a string")


def _strings(value: object, field: str) -> Mapping[str, str]:
    """A ``string -> string`` map (labels, annotations, selector)."""
    out = _object(value, field)
    for k, v in out.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidService(f"invalid {field}[{show(k)}]: {show(v)} is not a string")
    return out


def _list(value: object, field: str) -> Sequence[Any]:
    """A JSON array field: ``[]`` when absent or null, ``InvalidService`` when not an array."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise InvalidService(f"invalid {field}: {show(value)} is not a list")
    return value


def _meta(service: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(service, Mapping):
        raise InvalidService(f"invalid Service: {show(service)} is not an object")
    return _object(service.get("metadata"), "metadata")


def _spec(service: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(service, Mapping):
        raise InvalidService(f"invalid Service: {show(service)} is not an object")
    return _object(service.get("spec"), "spec")


def service_annotations(service: Mapping[str, Any]) -> Mapping[str, str]:
    """The Service's annotations (empty when it has none); ``InvalidService`` when they are
    not a ``string -> string`` map."""
    return _strings(_meta(service).get("annotations"), "metadata.annotations")


def annotation(service: Mapping[str, Any], name: str) -> str | None:
    """``metallb.io/<name>``, else the deprecated ``metallb.universe.tf/<name>``, else None.

    A stable key that is present wins even when its value is empty.
    """
    notes = service_annotations(service)
    if STABLE + name in notes:
        return notes[STABLE + name]
    return notes.get(DEPRECATED + name)


def cluster_ips(service: Mapping[str, Any]) -> list[str]:
    """``spec.clusterIPs`` when non-empty, else ``[spec.clusterIP]`` when set, else ``[]``."""
    spec = _spec(service)
    ips = _list(spec.get("clusterIPs"), "spec.clusterIPs")
    if ips:
        for i, ip in enumerate(ips):
            if not isinstance(ip, str):
                raise InvalidService(f"invalid spec.clusterIPs[{i}]: {show(ip)} is not a string")
        return [str(ip) for ip in ips]
    single = _string(spec.get("clusterIP"), "spec.clusterIP")
    return [single] if single else []


def service_family(service: Mapping[str, Any]) -> str:
    """``ipv4``, ``ipv6`` or ``dual`` from the ClusterIPs; ``InvalidService`` otherwise."""
    ips = cluster_ips(service)
    if not ips:
        spec = _spec(service)
        raise InvalidService(
            f"invalid ClusterIPs [{_go_list(spec.get('clusterIPs') or [])}] "
            f"[{spec.get('clusterIP') or ''}], can't determine family"
        )
    try:
        return family_of(ips)
    except ValueError as err:
        raise InvalidService(str(err)) from None


def policy(service: Mapping[str, Any]) -> str:
    """``spec.ipFamilyPolicy``; unset is ``SingleStack``."""
    value = _spec(service).get("ipFamilyPolicy") or "SingleStack"
    if not isinstance(value, str) or value not in _POLICIES:
        raise InvalidService(f'invalid spec.ipFamilyPolicy "{value}"')
    return str(value)


def ports(service: Mapping[str, Any]) -> tuple[Port, ...]:
    """The Service's ports as ``(protocol, port)``; the protocol defaults to TCP."""
    out = []
    for i, raw in enumerate(_list(_spec(service).get("ports"), "spec.ports")):
        entry = _object(raw, f"spec.ports[{i}]")
        if raw is None:
            raise InvalidService(f"invalid spec.ports[{i}]: null is not an object")
        number = entry.get("port")
        if not isinstance(number, int) or isinstance(number, bool):
            raise InvalidService(f"invalid spec.ports[{i}].port: {show(number)} is not a number")
        protocol = _string(entry.get("protocol"), f"spec.ports[{i}].protocol") or "TCP"
        out.append(Port(protocol=protocol, port=number))
    return tuple(out)


def backend_key(service: Mapping[str, Any]) -> str:
    """The sorted ``k=v`` selector when ``externalTrafficPolicy: Local``, else ``""``."""
    spec = _spec(service)
    if spec.get("externalTrafficPolicy") != "Local":
        return ""
    selector = _strings(spec.get("selector"), "spec.selector")
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def desired_ips(service: Mapping[str, Any]) -> list[str]:
    """The requested IPs (§11.3), in the user's order; ``InvalidService`` with MetalLB's text."""
    raw = annotation(service, LOADBALANCER_IPS)
    single = _spec(service).get("loadBalancerIP")
    if single is not None and not isinstance(single, str):
        raise InvalidService(f"invalid spec.loadBalancerIP {show(single)}")
    if raw and single:
        raise InvalidService(
            "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
        )
    if raw:
        out = []
        for item in raw.split(","):
            ip = parse_go_ip(item.strip())
            if ip is None:
                raise InvalidService(f'invalid metallb.io/loadBalancerIPs: "{raw}"')
            out.append(str(ip))
        try:
            family_of(out)
        except ValueError as err:
            raise InvalidService(str(err)) from None
        return out
    if single:
        ip = parse_go_ip(str(single))
        if ip is None:
            raise InvalidService(f'invalid spec.loadBalancerIP "{single}"')
        return [str(ip)]
    return []


def request_from_service(service: Mapping[str, Any]) -> ServiceRequest:
    """The :class:`ServiceRequest` for a Kubernetes Service dict.

    Reads the key, namespace, labels, family (from the ClusterIPs), primary family
    (``spec.ipFamilies[0]``), ``ipFamilyPolicy``, ports, the backend key, the annotations under
    ``metallb.io/`` and the deprecated ``metallb.universe.tf/`` (``address-pool``,
    ``loadBalancerIPs``, ``allow-shared-ip``) and ``spec.loadBalancerIP``. Raises
    :class:`InvalidService` with MetalLB's message for anything it cannot read.

    >>> svc = {"metadata": {"namespace": "web", "name": "nginx"},
    ...        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
    ...                 "ports": [{"port": 80, "protocol": "TCP"}]}}
    >>> r = request_from_service(svc)
    >>> r.key, r.family, [str(p) for p in r.ports]
    ('web/nginx', 'ipv4', ['TCP/80'])
    """
    return service_request(service)


def service_request(
    service: Mapping[str, Any], *, family: str | None = None, with_requests: bool = True
) -> ServiceRequest:
    """:func:`request_from_service`, optionally with a known family and without the
    requested IPs and pool (the controller re-assigns current IPs with only the ports and keys).
    """
    check_service(service)
    families = _list(_spec(service).get("ipFamilies"), "spec.ipFamilies")
    return ServiceRequest(
        key=service_key(service),
        namespace=_meta(service).get("namespace") or "default",
        labels=_strings(_meta(service).get("labels"), "metadata.labels"),
        family=family or service_family(service),
        primary_family="ipv6" if families and families[0] == "IPv6" else "ipv4",
        policy=policy(service),
        ports=ports(service),
        sharing_key=annotation(service, ALLOW_SHARED_IP) or "",
        backend_key=backend_key(service),
        requested_ips=desired_ips(service) if with_requests else (),
        requested_pool=(annotation(service, ADDRESS_POOL) or None) if with_requests else None,
    )


def check_service(service: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidService`, naming the field and its value, when the Service's
    identity or the fields every step reads are not of the JSON types Kubernetes gives them:
    the Service an object, ``metadata``/``spec``/``status`` objects, ``name``/``namespace``
    strings, labels and annotations ``string -> string`` maps, ``spec.type`` and
    ``spec.loadBalancerClass`` strings."""
    meta = _meta(service)
    spec = _spec(service)
    _object(service.get("status"), "status")
    _string(meta.get("name"), "metadata.name")
    _string(meta.get("namespace"), "metadata.namespace")
    _strings(meta.get("labels"), "metadata.labels")
    service_annotations(service)
    _string(spec.get("type"), "spec.type")
    _string(spec.get("loadBalancerClass"), "spec.loadBalancerClass")
