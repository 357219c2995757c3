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
it when this node withdraws. Nothing is written when nothing changed: it compares with what
it last wrote (it lists the namespace's statuses once at start, to adopt or clean up its own
from a previous run). When it takes a Service over it lists that Service's statuses (one
labelled list) and deletes those of nodes it does not see alive (a dead node cannot delete
its own); a live node's status is left to that node, so two live nodes that both announce
(split brain) both show. A failed write is retried with capped backoff; without the CRD the
writer says so once and keeps trying at the cap, and the speaker announces as usual.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

import metallb_core as core
from announcers.kubernetes.client import JsonDict, Kind, KubeApi, KubeError, NotFound
from announcers.kubernetes.informer import Backoff
from announcers.kubernetes.logs import log_event

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
    in the background; :attr:`idle` is true when there is nothing left to write.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        node: str,
        pod: PodRef | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.node = node
        self.pod = pod
        self._backoff = backoff or Backoff()
        self._want: dict[str, JsonDict] = {}
        self._alive: frozenset[str] = frozenset()
        self._mine: dict[str, JsonDict] = {}  # key -> our object, as last written or read
        self._listed: dict[str, list[JsonDict]] | None = None  # the start-up list, per key
        self._dirty: set[str] = set()
        self._loaded = False
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

    async def run(self) -> None:
        """Write until cancelled."""
        while True:
            try:
                if not self._loaded:
                    await self._load()
                while self._dirty:
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
                self._listed = None
                self._backoff.reset()
                self._said = None
            except KubeError as error:
                self._listed = None  # what the start-up list said may be stale now
                self._complain(error)
                await asyncio.sleep(self._backoff.next())
                continue
            self._wake.clear()
            if not self._dirty:
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

    async def _load(self) -> None:
        found = await self.api.list(SERVICE_L2_STATUS, namespace=self.namespace)
        listed: dict[str, list[JsonDict]] = {}
        for obj in sorted(found.items, key=_name_of):
            key = service_key_of(obj)
            if key is not None:
                listed.setdefault(key, []).append(obj)
        self._listed = listed
        self._mine = {}
        self._dirty |= {
            key for key, objs in listed.items() if any(_node_of(o) == self.node for o in objs)
        }
        self._loaded = True

    async def _statuses_of(self, key: str) -> list[JsonDict]:
        if self._listed is not None and key in self._listed:
            return self._listed.pop(key)
        if self._listed is not None and self._loaded:
            return []  # the start-up list is fresh and has none
        namespace, name = _split(key)
        found = await self.api.list(
            SERVICE_L2_STATUS,
            namespace=self.namespace,
            labels={LABEL_SERVICE_NAME: name, LABEL_SERVICE_NAMESPACE: namespace},
        )
        return sorted(found.items, key=_name_of)

    async def _delete(self, obj: Mapping[str, Any], why: str) -> None:
        self.writes += 1
        try:
            await self.api.delete(SERVICE_L2_STATUS, _name_of(obj), namespace=self.namespace)
        except NotFound:
            return
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
        mine = self._mine.get(key)
        if mine is None and (want is not None or self._listed is not None):
            # Taking the Service over (or starting): see what is there first.
            own: list[JsonDict] = []
            for obj in await self._statuses_of(key):
                node = _node_of(obj)
                if node == self.node:
                    own.append(obj)
                elif want is not None and node not in self._alive:
                    await self._delete(obj, "its node is not alive")
            for extra in own[1:]:
                await self._delete(extra, "duplicate")
            if own:
                mine = self._mine[key] = own[0]
        if want is None:
            if mine is not None:
                await self._delete(mine, "withdrawn")
                self._mine.pop(key, None)
            return
        if mine is None:
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
            mine = self._mine[key] = await self.api.create(SERVICE_L2_STATUS, body)
            log_event(
                _log, logging.DEBUG, "ServiceL2Status created", name=_name_of(mine), service=key
            )
        if mine.get("status") != want:
            self.writes += 1
            try:
                mine = await self.api.patch(
                    SERVICE_L2_STATUS,
                    _name_of(mine),
                    {"status": {"interfaces": None, **want}},  # merge patch: null removes
                    namespace=self.namespace,
                    status=True,
                )
            except NotFound:
                self._mine.pop(key, None)  # deleted under us: create it again
                self._dirty.add(key)
                return
            self._mine[key] = mine
