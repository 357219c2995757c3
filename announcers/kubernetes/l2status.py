"""ServiceL2Status: which node announces which Service, as MetalLB writes it.

One ``metallb.io/v1beta1`` ``ServiceL2Status`` per announced Service, in the speaker's
namespace, written by the node that announces it, so that ``kubectl get servicel2statuses
-A`` shows who announces what. The shape is MetalLB's (``api/v1beta1``, its speaker's
``servicel2status`` controller):

* ``metadata.generateName: l2-``; labels ``metallb.io/node`` (the announcing node),
  ``metallb.io/service-name`` and ``metallb.io/service-namespace``; an owner reference to the
  speaker's Pod when it is known (``POD_NAME`` and ``POD_UID`` from the downward API), so
  that the statuses of a removed speaker are garbage-collected. Not to the Service: owner
  references across namespaces are not allowed (the garbage collector would delete the
  status at once), which is why MetalLB uses the Pod too.
* ``status.node``, ``status.serviceName``, ``status.serviceNamespace``, and
  ``status.interfaces`` (``[{name: ...}]``): the interfaces it answers on when the
  L2Advertisements restrict them; none when they allow every interface (MetalLB's
  convention).

:class:`L2StatusWriter` runs beside the speaker's loop: after each round the speaker hands
it what this node serves (:attr:`metallb_core.AnnounceReport.serving`) and the writer, in
the background, creates the status of a Service this node starts announcing (create, then
the ``status`` subresource), patches it when the node or the interfaces change, and deletes
it when this node withdraws. Nothing is written when nothing changed: it compares with its
own statuses, which it lists and watches (label ``metallb.io/node`` = this node, so it
receives the events of its own objects only). That also adopts or cleans up those of a
previous run, and writes one again if someone else deleted it while this node serves the
Service. When it takes a Service over it lists that Service's statuses (one labelled list)
and deletes those of nodes it does not see alive (a dead node cannot delete its own); a
live node's status is left to that node, so two live nodes that both announce (split
brain) both show. A failed write is retried with capped backoff; without the CRD the
writer says so once and keeps trying at the cap, and the speaker announces as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Collection, Mapping
from typing import Any

import metallb_core as core
from announcers.kubernetes.client import JsonDict, Kind, KubeApi, KubeError, NotFound
from announcers.kubernetes.informer import Backoff, ChangeType, Informer
from announcers.kubernetes.logs import log_event
from metallb_core.vocabulary import object_key

_log = logging.getLogger("announcers.kubernetes.l2status")

SERVICE_L2_STATUS = Kind("metallb.io", "v1beta1", "ServiceL2Status", "servicel2statuses")
#: The labels MetalLB puts on a ServiceL2Status.
LABEL_NODE = "metallb.io/node"
LABEL_SERVICE_NAME = "metallb.io/service-name"
LABEL_SERVICE_NAMESPACE = "metallb.io/service-namespace"
GENERATE_NAME = "l2-"


@dataclasses.dataclass(frozen=True)
class PodRef:
    """The speaker's own Pod, the owner of its statuses."""

    name: str
    uid: str


def _split(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


def status_of(served: core.ServiceAnnounced) -> JsonDict:
    """The ``status`` of the ServiceL2Status of a Service this node serves.

    >>> served = core.ServiceAnnounced(key="web/nginx", node="n1", ips=["192.0.2.1"],
    ...                                interfaces=("eth0",), allowed=("eth0", "eth1"), pool="p")
    >>> status = status_of(served)
    >>> status["node"], status["serviceName"], status["serviceNamespace"], status["interfaces"]
    ('n1', 'nginx', 'web', [{'name': 'eth0'}])
    >>> "interfaces" in status_of(served.model_copy(update={"allowed": ()}))
    False
    """
    namespace, name = _split(served.key)
    status: JsonDict = {"node": served.node, "serviceName": name, "serviceNamespace": namespace}
    if served.allowed:
        status["interfaces"] = [{"name": interface} for interface in served.interfaces]
    return status


def labels_of(node: str, key: str) -> dict[str, str]:
    """MetalLB's labels of the status of Service ``key`` announced by ``node``."""
    namespace, name = _split(key)
    return {LABEL_NODE: node, LABEL_SERVICE_NAME: name, LABEL_SERVICE_NAMESPACE: namespace}


def service_key_of(obj: Mapping[str, Any]) -> str | None:
    """The Service a ServiceL2Status is about, from its labels (None: not one of ours)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    namespace, name = labels.get(LABEL_SERVICE_NAMESPACE), labels.get(LABEL_SERVICE_NAME)
    if not namespace or not name:
        return None
    return f"{namespace}/{name}"


def _node_of(obj: Mapping[str, Any]) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    node = labels.get(LABEL_NODE)
    return str(node) if node is not None else None


def _name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


class L2StatusWriter:
    """Keeps this node's ServiceL2Status objects equal to what it serves (module docstring).

    :meth:`update` is called on the event loop after each round; :meth:`run` does the writes
    in the background; :attr:`idle` is true when there is nothing left to write. Its own
    objects (label ``metallb.io/node`` = this node) are watched, so one deleted by someone
    else (a node that took it for dead) is written again while this node still serves it.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        node: str,
        pod: PodRef | None = None,
        backoff: Backoff | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.node = node
        self.pod = pod
        self._backoff = backoff or Backoff()
        #: This node's own statuses, listed and watched.
        self.own = Informer(
            api,
            SERVICE_L2_STATUS,
            self._own_changed,
            namespace=namespace,
            labels={LABEL_NODE: node},
            backoff=Backoff(initial=self._backoff.initial, cap=self._backoff.cap),
            watch_timeout=watch_timeout,
        )
        self._want: dict[str, JsonDict] = {}
        self._alive: frozenset[str] = frozenset()
        self._dirty: set[str] = set()
        self._loaded = False
        #: Whether the speaker has said what it serves yet: until then nothing is written, so
        #: a restarted speaker that has not joined yet keeps (does not withdraw) its statuses.
        self._told = False
        self._busy = False
        self._wake = asyncio.Event()
        self._said: str | None = None
        #: Writes (create, status patch, delete) sent so far.
        self.writes = 0

    # -- what the speaker calls ------------------------------------------------------------

    def update(self, serving: Mapping[str, core.ServiceAnnounced], alive: Collection[str]) -> None:
        """What this node serves now, and the nodes it sees alive."""
        want = {key: status_of(served) for key, served in serving.items()}
        for key in want.keys() | self._want.keys():
            if want.get(key) != self._want.get(key):
                self._dirty.add(key)
        self._want = want
        self._alive = frozenset(alive)
        self._told = True
        if self._dirty:
            self._wake.set()

    @property
    def idle(self) -> bool:
        """Loaded, and nothing left to write."""
        return self._loaded and not self._dirty and not self._busy

    async def drain(self, timeout: float) -> None:
        """Wait until :attr:`idle` (at most ``timeout`` seconds; :meth:`run` must be running)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.idle and loop.time() < deadline:
            await asyncio.sleep(0.01)

    # -- the background task ---------------------------------------------------------------

    def _own_changed(
        self, change: ChangeType, key: str, new: JsonDict | None, old: JsonDict | None
    ) -> None:
        service = service_key_of(new if new is not None else old or {})
        if service is not None:
            self._dirty.add(service)  # look again; nothing is written if all is well
            self._wake.set()

    async def run(self) -> None:
        """List this node's statuses, then write (and watch them) until cancelled."""
        watch: asyncio.Task[None] | None = None
        try:
            while not self._loaded:
                try:
                    # Listed here first, so that a missing CRD is said once, not per retry.
                    await self.api.list(
                        SERVICE_L2_STATUS, namespace=self.namespace, labels={LABEL_NODE: self.node}
                    )
                except KubeError as error:
                    self._complain(error)
                    await asyncio.sleep(self._backoff.next())
                    continue
                await self.own.sync()
                self._loaded = True
            self._backoff.reset()
            self._said = None
            watch = asyncio.create_task(self.own.run(), name="watch ServiceL2Status")
            await self._write()
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch

    async def _write(self) -> None:
        while True:
            try:
                while self._dirty and self._told:
                    key = min(self._dirty)
                    self._busy = True
                    self._dirty.discard(key)
                    try:
                        await self._sync(key)
                    except BaseException:
                        self._dirty.add(key)
                        raise
                    finally:
                        self._busy = False
                self._backoff.reset()
                self._said = None
            except KubeError as error:
                self._complain(error)
                await asyncio.sleep(self._backoff.next())
                continue
            self._wake.clear()
            if not (self._dirty and self._told):
                await self._wake.wait()

    def _complain(self, error: KubeError) -> None:
        said = f"{error.code} {error.reason}"
        if self._said == said:
            return
        self._said = said
        hint = " (is the ServiceL2Status CRD installed?)" if isinstance(error, NotFound) else ""
        log_event(
            _log,
            logging.WARNING,
            f"ServiceL2Status not written, retrying{hint}",
            error=str(error),
        )

    async def _delete(self, obj: Mapping[str, Any], why: str) -> None:
        self.writes += 1
        with contextlib.suppress(NotFound):
            await self.api.delete(SERVICE_L2_STATUS, _name_of(obj), namespace=self.namespace)
        if _node_of(obj) == self.node:
            self.own.forget(object_key(obj))
        log_event(
            _log,
            logging.DEBUG,
            "ServiceL2Status deleted",
            name=_name_of(obj),
            service=service_key_of(obj),
            node=_node_of(obj),
            why=why,
        )

    async def _sync(self, key: str) -> None:
        want = self._want.get(key)
        own = sorted(
            (o for o in self.own.objects.values() if service_key_of(o) == key), key=_name_of
        )
        for extra in own[1:]:
            await self._delete(extra, "duplicate")
        mine = own[0] if own else None
        if want is None:
            if mine is not None:
                await self._delete(mine, "withdrawn")
            return
        if mine is None:
            # Taking the Service over: a dead node cannot delete its own status.
            namespace, name = _split(key)
            found = await self.api.list(
                SERVICE_L2_STATUS,
                namespace=self.namespace,
                labels={LABEL_SERVICE_NAME: name, LABEL_SERVICE_NAMESPACE: namespace},
            )
            for obj in found.items:
                if _node_of(obj) not in self._alive:
                    await self._delete(obj, "its node is not alive")
            mine = await self._create(key)
        if (mine.get("status") or {}) != want:
            self.writes += 1
            try:
                written = await self.api.patch(
                    SERVICE_L2_STATUS,
                    _name_of(mine),
                    {"status": {"interfaces": None, **want}},  # merge patch: null removes
                    namespace=self.namespace,
                    status=True,
                )
            except NotFound:
                self.own.forget(object_key(mine))  # deleted under us: create it again
                self._dirty.add(key)
                return
            self.own.observe(written)

    async def _create(self, key: str) -> JsonDict:
        body: JsonDict = {
            "apiVersion": SERVICE_L2_STATUS.api_version,
            "kind": SERVICE_L2_STATUS.kind,
            "metadata": {
                "generateName": GENERATE_NAME,
                "namespace": self.namespace,
                "labels": labels_of(self.node, key),
            },
        }
        if self.pod is not None:
            body["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Pod", "name": self.pod.name, "uid": self.pod.uid}
            ]
        self.writes += 1
        created = await self.api.create(SERVICE_L2_STATUS, body)
        self.own.observe(created)
        log_event(
            _log, logging.DEBUG, "ServiceL2Status created", name=_name_of(created), service=key
        )
        return created
