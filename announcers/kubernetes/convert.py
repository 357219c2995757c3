"""Kubernetes objects to core values: pure functions, no I/O.

What the controller reads from the API server (Services, ``IPAddressPool``,
``L2Advertisement``, ``Namespace`` objects and the v0.10 ``config`` ConfigMap, as JSON dicts)
becomes what :mod:`metallb_core` takes. Every decision stays in the core: these functions only
pick the objects, put them in a stable order, parse, and say which object an error is about.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import metallb_core as core
from metallb_core import _yaml as goyaml

Source = Literal["crds", "configmap", "none"]

#: The ConfigMap of MetalLB v0.10, and the key holding its YAML.
CONFIGMAP_NAME = "config"
CONFIGMAP_KEY = "config"


def wants_address(service: Mapping[str, Any]) -> bool:
    """Whether the Service is of type LoadBalancer (only those can be waiting for an address).

    The controller re-converges waiting Services when an address may have been freed; this
    keeps it from re-converging every ClusterIP Service each time.
    """
    return (service.get("spec") or {}).get("type") == "LoadBalancer"


def _by_name(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(objects, key=lambda o: str((o.get("metadata") or {}).get("name") or ""))


def offending_object(
    objects: Sequence[Mapping[str, Any]], error: core.ConfigError
) -> Mapping[str, Any] | None:
    """The object a :class:`~metallb_core.ConfigError` from ``parse_resources`` names.

    >>> objs = [{"kind": "IPAddressPool", "metadata": {"name": "b"}}]
    >>> offending_object(objs, core.ConfigError("x", kind="IPAddressPool", name="b")) is objs[0]
    True
    """
    for obj in objects:
        if obj.get("kind") == error.kind and (obj.get("metadata") or {}).get("name") == error.name:
            return obj
    return None


@dataclasses.dataclass(frozen=True)
class ConfigReading:
    """What the configuration objects say.

    ``config`` is what to put in force, or None to keep the configuration in force (``error``
    then says why when the objects are invalid, and ``offender`` is the object to blame; with
    no error, nothing configures allocation at all). ``ignored`` is the v0.10 ConfigMap when
    ``IPAddressPool`` objects override it.
    """

    source: Source
    config: core.Config | None
    error: str | None = None
    offender: Mapping[str, Any] | None = None
    ignored: Mapping[str, Any] | None = None


def has_configmap_config(configmap: Mapping[str, Any] | None) -> bool:
    """Whether a ConfigMap carries the v0.10 ``config`` key."""
    return configmap is not None and CONFIGMAP_KEY in (configmap.get("data") or {})


def read_configmap(configmap: Mapping[str, Any]) -> core.Config:
    """The :class:`~metallb_core.Config` of a v0.10 ConfigMap (``ConfigError`` if invalid)."""
    text = (configmap.get("data") or {}).get(CONFIGMAP_KEY) or ""
    try:
        document = goyaml.load(text)  # as MetalLB reads it: "64512:1" is not base 60
    except goyaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise core.ConfigError(f"could not parse config: {detail}") from None
    if document is not None and not isinstance(document, Mapping):
        raise core.ConfigError("could not parse config: the config key is not a YAML mapping")
    return core.parse_configmap(document)


def read_config(
    pools: Iterable[Mapping[str, Any]],
    advertisements: Iterable[Mapping[str, Any]],
    namespaces: Iterable[Mapping[str, Any]],
    configmap: Mapping[str, Any] | None,
    *,
    previous: Source = "none",
) -> ConfigReading:
    """The configuration the objects in the MetalLB namespace describe
    (docs/design/announcers-api.md).

    ``IPAddressPool`` objects (with the ``L2Advertisement`` and ``Namespace`` objects) when
    there is at least one, or when the pools were in force before (deleting the last pool is
    a configuration with no pool, as in MetalLB main); else the v0.10 ConfigMap's ``config``
    key; else nothing (``source="none"``, ``config=None``: MetalLB's "configuration is
    missing", the configuration in force stays). Pools and advertisements are given to the
    core in name order, the order the API server lists them in, so the result does not
    depend on the order of watch events.
    """
    pool_list = _by_name(pools)
    cm_usable = has_configmap_config(configmap)
    if pool_list or (previous == "crds" and not cm_usable):
        objects = [*pool_list, *_by_name(advertisements)]
        context = list(namespaces)
        ignored = configmap if cm_usable and pool_list else None
        try:
            config = core.parse_resources([*context, *objects])
        except core.ConfigError as error:
            offender = offending_object(objects, error)
            return ConfigReading("crds", None, str(error), offender, ignored)
        return ConfigReading("crds", config, ignored=ignored)
    if configmap is not None and cm_usable:
        try:
            config = read_configmap(configmap)
        except core.ConfigError as error:
            return ConfigReading("configmap", None, str(error), configmap)
        return ConfigReading("configmap", config)
    return ConfigReading("none", None)


#: The label linking an EndpointSlice to its Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def endpoint_slice_service(endpoint_slice: Mapping[str, Any]) -> str | None:
    """The key (``namespace/name``) of the Service an EndpointSlice belongs to, or None.

    >>> endpoint_slice_service({"metadata": {"namespace": "web", "name": "nginx-x1",
    ...                         "labels": {"kubernetes.io/service-name": "nginx"}}})
    'web/nginx'
    """
    meta = endpoint_slice.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return None
    return f"{meta.get('namespace') or 'default'}/{service}"
