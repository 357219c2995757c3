"""Validation and defaulting: names, metadata, the Service, Event and IPAddressPool rules,
and the ClusterIP and NodePort allocator."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .common import JsonDict
from .errors import _bad_request, _error
from .names import _DNS1035_LABEL, _DNS_LABEL, _is_dns_subdomain, _is_qualified_name
from .resources import ResourceSpec
from .selectors import _VALUE

# --------------------------------------------------------------------------------------------
# Validation and defaulting
# --------------------------------------------------------------------------------------------


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


# C901 accepted: a flat table: one check per kube-apiserver validation rule.
def _validate_service(obj: JsonDict) -> list[tuple[str, str]]:  # noqa: C901
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


# C901 accepted: a flat table: one check per kube-apiserver validation rule.
def _validate_event_v1(obj: JsonDict) -> list[tuple[str, str]]:  # noqa: C901
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
