"""The shape of MetalLB's objects, checked before their meaning (as the API server does).

``kubectl apply`` refuses an object whose fields have the wrong JSON type, or (with its
default strict field validation) a field the CRD does not define, before MetalLB sees it.
:func:`check_object` does the same for every kind :func:`~metallb_core.parse_resources`
reads, so that the semantic checks after it can rely on the shapes, and odd input is a
``ConfigError`` naming the field, never a crash. ``metadata`` may hold any field; only the
types of ``name``, ``namespace`` and ``labels`` are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from metallb_core._errors import ConfigError

Schema = Any
"""``"string"``, ``"integer"``, ``("integer", minimum, maximum)``, ``"boolean"``, ``"labels"``
(a string-to-string map), ``[Schema]`` (an array) or ``{field: Schema}`` (an object)."""

_ASN = ("integer", 0, 2**32 - 1)

_SELECTOR: Schema = {
    "matchLabels": "labels",
    "matchExpressions": [{"key": "string", "operator": "string", "values": ["string"]}],
}
_SELECTORS: Schema = [_SELECTOR]
_LEGACY_AD: Schema = {
    "aggregationLength": "integer",
    "aggregationLengthV6": "integer",
    "localPref": "integer",
    "communities": ["string"],
}
SPECS: dict[str, Schema] = {
    "IPAddressPool": {
        "addresses": ["string"],
        "autoAssign": "boolean",
        "avoidBuggyIPs": "boolean",
        "serviceAllocation": {
            "priority": "integer",
            "namespaces": ["string"],
            "namespaceSelectors": _SELECTORS,
            "serviceSelectors": _SELECTORS,
        },
    },
    "L2Advertisement": {
        "ipAddressPools": ["string"],
        "ipAddressPoolSelectors": _SELECTORS,
        "nodeSelectors": _SELECTORS,
        "interfaces": ["string"],
        "serviceSelectors": _SELECTORS,
        "preferredNodeSelectors": [{"weight": "integer", "preference": _SELECTOR}],
    },
    "BGPAdvertisement": {
        "aggregationLength": ("integer", 1, None),
        "aggregationLengthV6": "integer",
        "localPref": "integer",
        "communities": ["string"],
        "ipAddressPools": ["string"],
        "ipAddressPoolSelectors": _SELECTORS,
        "nodeSelectors": _SELECTORS,
        "peers": ["string"],
        "serviceSelectors": _SELECTORS,
    },
    "BGPPeer": {
        "myASN": _ASN,
        "peerASN": _ASN,
        "dynamicASN": "string",
        "peerAddress": "string",
        "interface": "string",
        "sourceAddress": "string",
        "peerPort": ("integer", 0, 16384),
        "holdTime": "string",
        "keepaliveTime": "string",
        "connectTime": "string",
        "routerID": "string",
        "nodeSelectors": _SELECTORS,
        "password": "string",
        "passwordSecret": {"name": "string", "namespace": "string"},
        "bfdProfile": "string",
        "enableGracefulRestart": "boolean",
        "ebgpMultiHop": "boolean",
        "vrf": "string",
        "disableMP": "boolean",
        "dualStackAddressFamily": "boolean",
        "localASN": _ASN,
    },
    "BFDProfile": {
        "receiveInterval": "integer",
        "transmitInterval": "integer",
        "detectMultiplier": "integer",
        "echoInterval": "integer",
        "echoMode": "boolean",
        "passiveMode": "boolean",
        "minimumTtl": "integer",
    },
    "Community": {"communities": [{"name": "string", "value": "string"}]},
    "AddressPool": {
        "protocol": "string",
        "addresses": ["string"],
        "autoAssign": "boolean",
        "avoidBuggyIPs": "boolean",
        "bgpAdvertisements": [_LEGACY_AD],
    },
}
"""The ``spec`` of each MetalLB kind, field by field, with its JSON type (the latest version)."""

_V1BETA1_SELECTOR: Schema = {
    "matchLabels": "labels",
    "matchExpressions": [{"key": "string", "operator": "string", "values": ["string"]}],
}
_ASN16 = ("integer", 0, 65535)
VERSIONED_SPECS: dict[tuple[str, str], Schema] = {
    ("BGPPeer", "metallb.io/v1beta1"): {
        "myASN": _ASN16,
        "peerASN": _ASN16,
        "peerAddress": "string",
        "sourceAddress": "string",
        "peerPort": ("integer", 0, 16384),
        "holdTime": "string",
        "keepaliveTime": "string",
        "routerID": "string",
        "nodeSelectors": [_V1BETA1_SELECTOR],
        "password": "string",
        "bfdProfile": "string",
        "ebgpMultiHop": "boolean",
    },
}
"""Older versions whose schema differs: ``BGPPeer`` ``v1beta1`` (MetalLB converts it to
``v1beta2``) has fewer fields and 16-bit ASNs."""

_TOP: dict[str, Schema] = {
    "Secret": {"type": "string", "data": "labels", "stringData": "labels"},
}

_JSON = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return _JSON.get(type(value), type(value).__name__)


def _wrong(path: str, value: Any, expected: str) -> ConfigError:
    got = _json_type(value)
    return ConfigError(f'{path}: Invalid value: "{got}": {path} in body must be of type {expected}')


def check(value: Any, schema: Schema, path: str) -> None:
    """``value`` has the shape ``schema`` says; ``None`` (an omitted field) always has."""
    if value is None or schema == "any":
        return
    if isinstance(schema, dict):
        _check_object(value, schema, path)
    elif isinstance(schema, list):
        _check_array(value, schema, path)
    elif isinstance(schema, tuple):
        _check_integer(value, schema, path)
    else:
        _NAMED_CHECKS.get(schema, _check_string)(value, schema, path)


def _check_object(value: Any, schema: Mapping[str, Schema], path: str) -> None:
    """An object whose fields are all in ``schema``, each of its shape."""
    if not isinstance(value, Mapping):
        raise _wrong(path, value, "object")
    for key, item in value.items():
        if key not in schema:
            raise ConfigError(f'{path}: unknown field "{key}"')
        check(item, schema[key], f"{path}.{key}")


def _check_array(value: Any, schema: list[Schema], path: str) -> None:
    """An array whose items are all of shape ``schema[0]`` (a null item is refused)."""
    if not isinstance(value, (list, tuple)):
        raise _wrong(path, value, "array")
    for i, item in enumerate(value):
        if item is None:
            raise _wrong(f"{path}[{i}]", item, _expected(schema[0]))
        check(item, schema[0], f"{path}[{i}]")


def _check_labels(value: Any, schema: Schema, path: str) -> None:
    """A string-to-string map (``schema`` is ``"labels"``)."""
    if not isinstance(value, Mapping):
        raise _wrong(path, value, "object")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise _wrong(f"{path}.{key}", item, "string")


def _check_integer(value: Any, schema: Schema, path: str) -> None:
    """An integer (not a boolean), within ``(minimum, maximum)`` for a tuple ``schema``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(path, value, "integer")
    _, low, high = schema if isinstance(schema, tuple) else ("integer", None, None)
    if low is not None and value < low:
        raise ConfigError(
            f"{path}: Invalid value: {value}: {path} in body should be greater than or "
            f"equal to {low}"
        )
    if high is not None and value > high:
        raise ConfigError(
            f"{path}: Invalid value: {value}: {path} in body should be less than or equal to {high}"
        )


def _check_boolean(value: Any, schema: Schema, path: str) -> None:
    """A boolean (``schema`` is ``"boolean"``)."""
    if not isinstance(value, bool):
        raise _wrong(path, value, "boolean")


def _check_string(value: Any, schema: Schema, path: str) -> None:
    """A string (``schema`` is ``"string"``)."""
    if not isinstance(value, str):
        raise _wrong(path, value, "string")


_NAMED_CHECKS: dict[str, Callable[[Any, Schema, str], None]] = {
    "labels": _check_labels,
    "integer": _check_integer,
    "boolean": _check_boolean,
    "string": _check_string,
}
"""The checks of the schemas named by a string (another name is checked as ``"string"``)."""


def _expected(schema: Schema) -> str:
    if isinstance(schema, dict) or schema == "labels":
        return "object"
    if isinstance(schema, list):
        return "array"
    if isinstance(schema, tuple):
        return "integer"
    return str(schema)


def check_object(obj: Mapping[str, Any]) -> None:
    """The object's ``apiVersion``, ``metadata`` and (for MetalLB's kinds) ``spec`` shapes."""
    check(obj.get("apiVersion"), "string", "apiVersion")
    meta = obj.get("metadata")
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise _wrong("metadata", meta, "object")
        check(meta.get("name"), "string", "metadata.name")
        check(meta.get("namespace"), "string", "metadata.namespace")
        check(meta.get("labels"), "labels", "metadata.labels")
    kind = obj.get("kind")
    if kind in SPECS:
        schema = VERSIONED_SPECS.get((str(kind), str(obj.get("apiVersion"))), SPECS[str(kind)])
        check(obj.get("spec"), schema, "spec")
    for field, schema in (_TOP.get(str(kind)) or {}).items():
        check(obj.get(field), schema, field)
