"""The Kubernetes API as the adapter sees it: a small Protocol, and its lightkube implementation.

This is the only module that imports a Kubernetes client library. Everything else in
:mod:`announcers.kubernetes` talks to :class:`KubeApi`: plain JSON dicts in and out, a
:class:`Kind` naming the resource, and the errors below instead of the library's. The adapter
is **async** (one event loop runs the watches, the writes and the Lease renewals, so a
slow request never blocks the others); :class:`LightkubeApi` implements the Protocol on
``lightkube.AsyncClient``.

Objects are never decoded into typed models: lightkube's generic (dict-backed) resources are
used for every kind, so what the API server sends is what the core reads (unknown fields
included) and nothing is converted twice.

>>> SERVICE.api_version, LEASE.api_version, IP_ADDRESS_POOL.api_version
('v1', 'coordination.k8s.io/v1', 'metallb.io/v1beta1')
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import httpx2
import lightkube
import yaml
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core import resource as lightkube_resource
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.core.exceptions import NotReadyError
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericGlobalStatus,
    GenericNamespacedResource,
    GenericNamespacedStatus,
    create_api_info,
)
from lightkube.types import PatchType

from metallb_core.vocabulary import JsonDict

__all__ = [
    "CONFIG_MAP",
    "ENDPOINT_SLICE",
    "EVENT",
    "IP_ADDRESS_POOL",
    "L2_ADVERTISEMENT",
    "LEASE",
    "NAMESPACE",
    "NODE",
    "SERVICE",
    "AlreadyExists",
    "Conflict",
    "Expired",
    "JsonDict",
    "Kind",
    "KubeApi",
    "KubeError",
    "LightkubeApi",
    "NotFound",
    "ObjectList",
    "Refused",
    "Unavailable",
    "UnusableKubeconfig",
    "WatchEvent",
    "connect",
]


@dataclasses.dataclass(frozen=True)
class Kind:
    """A resource the adapter reads or writes: API group, version, kind and plural.

    >>> Kind("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools").api_version
    'metallb.io/v1beta1'
    """

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``v1`` or ``group/version``, as in an object's ``apiVersion``."""
        return f"{self.group}/{self.version}" if self.group else self.version


SERVICE = Kind("", "v1", "Service", "services")
NAMESPACE = Kind("", "v1", "Namespace", "namespaces", namespaced=False)
NODE = Kind("", "v1", "Node", "nodes", namespaced=False)
CONFIG_MAP = Kind("", "v1", "ConfigMap", "configmaps")
EVENT = Kind("events.k8s.io", "v1", "Event", "events")
LEASE = Kind("coordination.k8s.io", "v1", "Lease", "leases")
ENDPOINT_SLICE = Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")
IP_ADDRESS_POOL = Kind("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools")
L2_ADVERTISEMENT = Kind("metallb.io", "v1beta1", "L2Advertisement", "l2advertisements")


# -- errors -----------------------------------------------------------------------------------


class KubeError(Exception):
    """A request the API server did not carry out (``code`` is 0 when nothing answered)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}" if code else f"{reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


class Unavailable(KubeError):
    """No answer, a timeout, a 5xx or a 429: the same request may work later."""


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409 Conflict: the object changed since the ``resourceVersion`` the write carried."""


class AlreadyExists(KubeError):
    """409 AlreadyExists: a create for a name that is taken."""


class Expired(KubeError):
    """410: a watch's ``resourceVersion`` is older than the server remembers; list again."""


class Refused(KubeError):
    """Any other 4xx (invalid, forbidden, ...): repeating the same request will not help."""


class UnusableKubeconfig(Exception):
    """The kubeconfig is missing or cannot be used (the CLI prints it and exits 2)."""


def _from_status(code: int, reason: str, message: str) -> KubeError:
    if code == 404:
        return NotFound(code, reason or "NotFound", message)
    if code == 409:
        if reason == "AlreadyExists":
            return AlreadyExists(code, reason, message)
        return Conflict(code, reason or "Conflict", message)
    if code == 410:
        return Expired(code, reason or "Expired", message)
    if code == 429 or code >= 500:
        return Unavailable(code, reason or "ServiceUnavailable", message)
    return Refused(code, reason or "Invalid", message)


def _translate(error: Exception) -> KubeError:
    """lightkube's and httpx2's exceptions as :class:`KubeError` subclasses."""
    if isinstance(error, ApiError):
        status = error.status
        return _from_status(int(status.code or 0), status.reason or "", status.message or "")
    if isinstance(error, httpx2.HTTPStatusError):
        # lightkube makes an ApiError only of an exact application/json error body.
        response = error.response
        try:
            text = response.text[:200]
        except httpx2.ResponseNotRead:  # a streamed answer (a watch): its body is not read
            text = ""
        return _from_status(response.status_code, response.reason_phrase, text)
    return Unavailable(0, type(error).__name__, str(error) or repr(error))


_TRANSLATED = (ApiError, httpx2.HTTPError, OSError)


# -- the Protocol ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ObjectList:
    """The objects of a list call, and the ``resourceVersion`` to start a watch from."""

    items: tuple[JsonDict, ...]
    resource_version: str


WatchType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One line of a watch: ``ADDED``, ``MODIFIED``, ``DELETED`` (or ``BOOKMARK``)."""

    type: WatchType
    object: JsonDict


class KubeApi(Protocol):
    """What the adapter needs from a Kubernetes API server; every call may raise
    :class:`KubeError`.

    Objects are JSON dicts. ``namespace=None`` on a namespaced kind means every namespace
    for ``list`` and ``watch``. ``patch`` is a JSON merge patch (RFC 7386); a
    ``metadata.resourceVersion`` in it makes it conditional (``Conflict`` when stale);
    ``status=True`` sends it to the ``status`` subresource.
    """

    async def list(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> ObjectList:
        """Every object of ``kind`` (in ``namespace``, matching the selectors)."""
        ...

    def watch(
        self,
        kind: Kind,
        *,
        resource_version: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """The changes after ``resource_version``, until the stream breaks (an exception)."""
        ...

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> JsonDict:
        """One object."""
        ...

    async def create(self, kind: Kind, body: Mapping[str, Any]) -> JsonDict:
        """Create ``body`` (its ``metadata.namespace`` says where)."""
        ...

    async def replace(self, kind: Kind, body: Mapping[str, Any]) -> JsonDict:
        """PUT ``body`` (conditional on its ``metadata.resourceVersion`` when set)."""
        ...

    async def patch(
        self,
        kind: Kind,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        status: bool = False,
    ) -> JsonDict:
        """Merge-patch one object (or its ``status`` subresource)."""
        ...

    async def delete(self, kind: Kind, name: str, *, namespace: str | None = None) -> None:
        """Delete one object (``NotFound`` when it is already gone)."""
        ...

    async def close(self) -> None:
        """Close the connections."""
        ...


# -- lightkube --------------------------------------------------------------------------------


class _Resources:
    """Dict-backed lightkube resource classes, one per :class:`Kind`, not registered.

    Not registering them keeps lightkube's global registry (``codecs.load_all_yaml``, other
    code in the process) on its typed models.
    """

    @staticmethod
    @functools.cache
    def main(kind: Kind) -> type[Any]:
        base: type[Any] = GenericNamespacedResource if kind.namespaced else GenericGlobalResource
        info = create_api_info(kind.group, kind.version, kind.kind, kind.plural)
        return type(kind.kind, (base,), {"_api_info": info})

    @staticmethod
    @functools.cache
    def status(kind: Kind) -> type[Any]:
        base: type[Any] = GenericNamespacedStatus if kind.namespaced else GenericGlobalStatus
        parent = create_api_info(kind.group, kind.version, kind.kind, kind.plural)
        info = lightkube_resource.ApiInfo(
            resource=parent.resource,
            parent=parent.resource,
            plural=kind.plural,
            verbs=["get", "patch", "put"],
            action="status",
        )
        return type(f"{kind.kind}Status", (base,), {"_api_info": info})


def _plain(obj: Any) -> JsonDict:
    """A generic lightkube object as a plain dict (its values already are plain JSON)."""
    return dict(obj)


def _where(kind: Kind, namespace: str | None) -> str | None:
    if not kind.namespaced:
        return None
    return "*" if namespace is None else namespace


class LightkubeApi:
    """:class:`KubeApi` on ``lightkube.AsyncClient``.

    >>> api = LightkubeApi(KubeConfig.from_dict({
    ...     "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
    ...     "users": [{"name": "u", "user": {"token": "t"}}],
    ...     "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    ...     "current-context": "c"}))
    """

    def __init__(
        self,
        config: KubeConfig | SingleConfig,
        *,
        timeout: float = 5.0,
        trust_env: bool = True,
        field_manager: str = "metallb-core",
    ) -> None:
        self._client = AsyncClient(
            config,
            timeout=httpx2.Timeout(timeout),
            trust_env=trust_env,
            field_manager=field_manager,
        )

    async def list(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> ObjectList:
        """See :meth:`KubeApi.list`."""
        try:
            listing = self._client.list(
                _Resources.main(kind),
                namespace=_where(kind, namespace),
                labels=dict(labels) if labels else None,
                fields=dict(fields) if fields else None,
            )
            items = tuple([_plain(obj) async for obj in listing])
            try:
                version = listing.resourceVersion
            except NotReadyError:
                version = ""  # a server that gives no list resourceVersion: watch from now
        except _TRANSLATED as error:
            raise _translate(error) from error
        return ObjectList(items=items, resource_version=version)

    async def watch(
        self,
        kind: Kind,
        *,
        resource_version: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """See :meth:`KubeApi.watch`."""
        stream = self._client.watch(
            _Resources.main(kind),
            namespace=_where(kind, namespace),
            labels=dict(labels) if labels else None,
            fields=dict(fields) if fields else None,
            resource_version=resource_version,
            server_timeout=timeout_seconds,
        )
        iterator = aiter(stream)
        while True:
            try:
                event_type, obj = await anext(iterator)
            except StopAsyncIteration:
                return
            except _TRANSLATED as error:
                raise _translate(error) from error
            yield WatchEvent(type=cast(WatchType, event_type), object=_plain(obj))

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> JsonDict:
        """See :meth:`KubeApi.get`."""
        try:
            obj = await self._client.get(_Resources.main(kind), name, namespace=namespace)
        except _TRANSLATED as error:
            raise _translate(error) from error
        return _plain(obj)

    async def create(self, kind: Kind, body: Mapping[str, Any]) -> JsonDict:
        """See :meth:`KubeApi.create`."""
        resource = _Resources.main(kind)
        try:
            obj = await self._client.create(resource(body))
        except _TRANSLATED as error:
            raise _translate(error) from error
        return _plain(obj)

    async def replace(self, kind: Kind, body: Mapping[str, Any]) -> JsonDict:
        """See :meth:`KubeApi.replace`."""
        resource = _Resources.main(kind)
        try:
            obj = await self._client.replace(resource(body))
        except _TRANSLATED as error:
            raise _translate(error) from error
        return _plain(obj)

    async def patch(
        self,
        kind: Kind,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        status: bool = False,
    ) -> JsonDict:
        """See :meth:`KubeApi.patch`."""
        resource = _Resources.status(kind) if status else _Resources.main(kind)
        try:
            obj = await self._client.patch(
                resource, name, dict(patch), namespace=namespace, patch_type=PatchType.MERGE
            )
        except _TRANSLATED as error:
            raise _translate(error) from error
        return _plain(obj)

    async def delete(self, kind: Kind, name: str, *, namespace: str | None = None) -> None:
        """See :meth:`KubeApi.delete`."""
        try:
            await self._client.delete(_Resources.main(kind), name, namespace=namespace)
        except _TRANSLATED as error:
            raise _translate(error) from error

    async def close(self) -> None:
        """See :meth:`KubeApi.close`."""
        await self._client.close()


def load_config(path: str | Path | None = None) -> KubeConfig:
    """The kubeconfig: ``path``; else in-cluster, ``$KUBECONFIG``, ``~/.kube/config``.

    Raises :class:`UnusableKubeconfig` with one line saying why.
    """
    try:
        config = KubeConfig.from_file(path) if path is not None else KubeConfig.from_env()
        single = config.get()
    except (
        LightkubeConfigError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        yaml.YAMLError,
    ) as error:
        where = str(path) if path is not None else "in-cluster, $KUBECONFIG or ~/.kube/config"
        raise UnusableKubeconfig(f"no usable kubeconfig ({where}): {error}") from error
    if single is None:
        raise UnusableKubeconfig(f"kubeconfig {path or ''}: no current context")
    if single.user is None:
        raise UnusableKubeconfig(f"kubeconfig {path or ''}: the current context has no user")
    if not single.cluster.server:
        raise UnusableKubeconfig(f"kubeconfig {path or ''}: the current cluster has no server")
    return config


def connect(path: str | Path | None = None, *, trust_env: bool = True) -> LightkubeApi:
    """A :class:`LightkubeApi` for :func:`load_config` (raises :class:`UnusableKubeconfig`)."""
    config = load_config(path)
    try:
        return LightkubeApi(config, trust_env=trust_env)
    except (LightkubeConfigError, OSError, ValueError, AssertionError) as error:
        raise UnusableKubeconfig(f"kubeconfig {path or ''} cannot be used: {error}") from error


# Keep the import of the package itself explicit: the version is logged at start.
LIGHTKUBE_VERSION: str = getattr(lightkube, "__version__", "unknown")
