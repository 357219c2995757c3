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
  CustomResourceDefinitions, pre-loaded with ``metallb.io/v1beta1`` IPAddressPool,
  L2Advertisement and ServiceL2Status (each with a status subresource, as MetalLB's
  CRDs). Creating a CRD serves its kind at once, so
  ``lightkube.generic_resource.load_in_cluster_generic_resources`` works.
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

    python -m tests.support.emulator --host 10.0.0.1 --port 6443 [--kubeconfig PATH]

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

Modules
=======
The package is split along the emulator's seams; everything public is importable from the
package itself (``from tests.support.emulator import ApiServerEmulator``):

* :mod:`~tests.support.emulator.common`: shared names (``JsonDict``, content types, ...);
* :mod:`~tests.support.emulator.resources`: :class:`ResourceSpec`, the default resources,
  the metallb.io CRDs, :func:`service_manifest`;
* :mod:`~tests.support.emulator.errors`: ``Status`` errors (:func:`api_error`);
* :mod:`~tests.support.emulator.names`: name syntax (DNS labels, qualified names);
* :mod:`~tests.support.emulator.selectors`: label and field selectors;
* :mod:`~tests.support.emulator.patch`: merge patch, JSON patch;
* :mod:`~tests.support.emulator.validation`: validation, defaulting, the ClusterIP allocator;
* :mod:`~tests.support.emulator.request_log`: :class:`RequestLog`, :class:`RequestRecord`;
* :mod:`~tests.support.emulator.routing`: paths to resources and verbs;
* :mod:`~tests.support.emulator.watch`: watch events, watchers and their filters;
* :mod:`~tests.support.emulator.server`: :class:`ApiServerEmulator` (the HTTP server, the
  storage, the writes, list and watch, the control API);
* :mod:`~tests.support.emulator.kubeconfig`: kubeconfigs for its URL;
* :mod:`~tests.support.emulator.process`: :class:`EmulatorProcess`, :class:`EmulatorControl`
  and ``python -m tests.support.emulator`` (:func:`main`).
"""

from __future__ import annotations

from .common import OutageMode
from .errors import api_error
from .kubeconfig import kube_config, kubeconfig_dict, write_kubeconfig
from .patch import JsonPatchError, apply_json_patch, merge_patch
from .process import EmulatorControl, EmulatorProcess, main
from .request_log import RequestLog, RequestRecord
from .resources import DEFAULT_RESOURCES, ResourceSpec, metallb_crds, service_manifest
from .selectors import LabelSelector
from .server import ApiServerEmulator

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
