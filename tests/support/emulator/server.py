"""The emulator itself: :class:`ApiServerEmulator`, an HTTP server built on kmock's
``KubernetesEmulator``."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import contextvars
import json
import math
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any

import aiohttp.web
import attrs
import yaml
import yarl
from kmock import KubernetesEmulator, KubernetesError, Request, ResourceInfo
from kmock import action as kmock_action
from kmock import resource as kmock_resource
from kmock._internal import rendering
from kmock._internal.rendering import ReactionMismatchError

from .common import (
    APPLY_PATCH,
    CONTROL_PREFIX,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    JsonDict,
    OutageMode,
)
from .errors import (
    _bad_request,
    _conflict,
    _details,
    _dumps,
    _error,
    _error_response,
    _invalid,
    _json_response,
    _no_such_path,
    _not_found,
    status_body,
)
from .patch import JsonPatchError, _clone, apply_json_patch, merge_patch
from .request_log import RequestLog, RequestRecord
from .resources import _CRD_SPEC, DEFAULT_RESOURCES, ResourceSpec, metallb_crds
from .routing import (
    _KMOCK_ACTIONS,
    _NAME_ALPHABET,
    _content_type,
    _discovery_resource,
    _now,
    _parse_route,
    _Route,
    _verb,
)
from .selectors import LabelSelector, _FieldSelector
from .validation import (
    _VALIDATORS,
    _Allocator,
    _check_metadata_types,
    _family,
    _ip_or_none,
    _validate_metadata,
)
from .watch import _CLOSE, _Event, _Watcher, _WatchFilter

_CURRENT_RECORD: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "emulator_current_record", default=None
)
_CURRENT_PROTOCOL: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "emulator_current_protocol", default=None
)


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
    # Write latency: (low, high, plural or None for every resource), see write_latency().
    _latency: tuple[float, float, str | None] | None = attrs.field(default=None, init=False)
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
        if self._latency is not None and request.method in ("POST", "PUT", "PATCH", "DELETE"):
            low, high, plural = self._latency
            if plural is None or plural == route.plural:
                await asyncio.sleep(random.uniform(low, high))
        return await self._emulate(request, route)

    def write_latency(self, low: float, high: float, *, resource: str | None = None) -> None:
        """Delay every write (create, update, patch, delete) by U(``low``, ``high``) seconds
        before it is carried out; only writes to the ``resource`` plural (``leases``) when
        given. ``write_latency(0, 0)`` ends it."""
        if not 0 <= low <= high:
            raise ValueError(f"write latency: need 0 <= low <= high, not {low}, {high}")
        self._latency = None if high == 0 else (low, high, resource)

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

    # C901 accepted: a flat table: one route per verb and path shape.
    async def _emulate(self, request: Request, route: _Route) -> aiohttp.web.StreamResponse:  # noqa: C901
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

    # C901 accepted: a flat table: one branch per patch content type.
    async def _patch(  # noqa: C901
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

    # C901 accepted: a flat table: kube-apiserver's Service defaulting, rule by rule.
    def _default_service(  # noqa: C901
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

    # C901 accepted: a flat table: kube-apiserver's ClusterIP defaulting, rule by rule.
    def _default_cluster_ips(  # noqa: C901
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
        view = _WatchFilter(namespace, name, labels, fields)
        # Snapshot and subscription with no await in between: nothing missed, nothing twice.
        initial = self._watch_backlog(spec, namespace, params.get("resourceVersion"), view)
        translate = view.translate
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

    def _watch_backlog(
        self, spec: ResourceSpec, namespace: str | None, rv_param: str | None, view: _WatchFilter
    ) -> list[JsonDict]:
        """What a new watch sends first: every selected object as ADDED (no resourceVersion,
        or "0"), the events after ``rv_param``, or a 410 Expired when those are compacted."""
        if not rv_param or rv_param == "0":
            return [
                {"type": "ADDED", "object": obj}
                for obj in self._list_live(spec, namespace)
                if view.selected(obj)
            ]
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
            return [{"type": "ERROR", "object": status_body(expired)}]
        initial: list[JsonDict] = []
        for event in self._events[spec.id]:
            if event.rv > since and (line := view.translate(event)) is not None:
                initial.append(line)
        return initial

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
            case "POST", "latency":
                self.write_latency(
                    float(data.get("low", 0)),
                    float(data.get("high", 0)),
                    resource=data.get("resource"),
                )
                return {}
            case "GET", "history":
                versions = self.history(query["resource"], query.get("namespace"), query["name"])
                return {"versions": versions}
            case "POST", "seed":
                return {"objects": self.seed(*data["objects"])}
        raise _error(404, "NotFound", f"no control action {method} {action}")
