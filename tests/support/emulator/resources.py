"""Resource types: :class:`ResourceSpec`, the default resources, the metallb.io CRDs and
:func:`service_manifest`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from kmock import resource as kmock_resource

from .common import JsonDict

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
    """Minimal CustomResourceDefinitions of ``IPAddressPool``, ``L2Advertisement`` and
    ``ServiceL2Status`` (the speaker's report of who announces what).

    Same group, version, names, scope and status subresource as MetalLB's; the schema accepts
    anything (the emulator validates ``IPAddressPool.spec.addresses`` itself).
    """
    return [
        _crd("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools"),
        _crd("metallb.io", "v1beta1", "L2Advertisement", "l2advertisements"),
        _crd("metallb.io", "v1beta1", "ServiceL2Status", "servicel2statuses"),
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
