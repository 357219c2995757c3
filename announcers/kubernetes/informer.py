"""List-then-watch caches of Kubernetes objects, that survive a flaky API server.

An :class:`Informer` lists one kind, keeps the objects by key, then watches from the list's
``resourceVersion`` and reports every change to a callback. When the stream breaks (the API
server went away, answered 5xx, or the connection dropped) it backs off (capped, jittered)
and resumes from the last ``resourceVersion`` it saw; when that is too old (``410``) it lists
again and reports the difference as changes. It never reports an object as deleted because
a request failed: only a list or a watch that *succeeded* can say an object is gone.

The controller and the speaker both build on it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from announcers.kubernetes.client import Expired, JsonDict, Kind, KubeApi, KubeError, Unavailable
from announcers.kubernetes.logs import log_event
from metallb_core.vocabulary import object_key

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
#: ``on_change(type, key, new, old)``: ``new`` is None for DELETED, ``old`` for ADDED.
ChangeHandler = Callable[[ChangeType, str, JsonDict | None, JsonDict | None], None]

_log = logging.getLogger("announcers.kubernetes.informer")


class Backoff:
    """Capped exponential backoff with jitter: ``initial``, ``initial*factor``, ..., ``cap``.

    >>> b = Backoff(initial=1.0, cap=4.0, jitter=0.0)
    >>> [b.next() for _ in range(4)]
    [1.0, 2.0, 4.0, 4.0]
    >>> b.reset(); b.next()
    1.0
    """

    def __init__(
        self,
        initial: float = 0.25,
        cap: float = 3.2,
        factor: float = 2.0,
        jitter: float = 0.1,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self._next = initial

    def next(self) -> float:
        """The next delay (seconds); each call grows it until ``cap``."""
        delay = self._next
        self._next = min(self.cap, self._next * self.factor)
        return delay * (1.0 + self.jitter * (2.0 * self._rng() - 1.0))

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self._next = self.initial


def resource_version(obj: Mapping[str, Any] | None) -> str:
    """``metadata.resourceVersion`` (empty when absent)."""
    if obj is None:
        return ""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def is_older(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` is an older version of ``current`` than ``current`` itself.

    ResourceVersions are opaque, but every API server in use hands out etcd revisions,
    which are integers: when both are integers an older one is recognised and ignored (a
    watch event overtaken by the answer to our own write); otherwise nothing is older.

    >>> is_older({"metadata": {"resourceVersion": "9"}}, {"metadata": {"resourceVersion": "10"}})
    True
    """
    if current is None:
        return False
    new, old = resource_version(candidate), resource_version(current)
    if not (new.isdigit() and old.isdigit()):
        return False
    if uid(candidate) != uid(current):
        return False
    return int(new) < int(old)


def _changed_by_others(
    before: Mapping[str, Any], after: Mapping[str, Any], ours: frozenset[str]
) -> bool:
    """Whether ``after`` differs from ``before`` in what users write (see
    :meth:`Informer.fold_write`), the annotations ``ours`` aside.

    >>> before = {"metadata": {"annotations": {"mine": "1"}}, "spec": {"a": 1}}
    >>> _changed_by_others(before, {**before, "status": {"b": 2}}, frozenset())
    False
    >>> _changed_by_others(before, {**before, "spec": {"a": 2}}, frozenset())
    True
    >>> _changed_by_others(before, {"metadata": {"annotations": {"mine": "2"}},
    ...                             "spec": {"a": 1}}, frozenset({"mine"}))
    False
    """

    def users(obj: Mapping[str, Any]) -> tuple[object, ...]:
        meta = obj.get("metadata") or {}
        notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in ours}
        return obj.get("spec"), meta.get("labels") or {}, notes, meta.get("deletionTimestamp")

    return users(before) != users(after)


def uid(obj: Mapping[str, Any] | None) -> str:
    """``metadata.uid`` (empty when absent)."""
    if obj is None:
        return ""
    return str((obj.get("metadata") or {}).get("uid") or "")


class Informer:
    """A cache of one kind, kept current by a list and a watch; see the module docstring.

    ``objects`` maps :func:`object_key` to the latest object. ``await sync()`` lists (retrying
    until it succeeds); ``await run()`` watches until cancelled. :meth:`observe` folds in an
    object the caller got from a write or a get, so the cache never goes back in time.
    """

    def __init__(
        self,
        api: KubeApi,
        kind: Kind,
        on_change: ChangeHandler,
        *,
        namespace: str | None = None,
        fields: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
        watch_timeout: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.kind = kind
        self.namespace = namespace
        self.fields = dict(fields) if fields else None
        self.labels = dict(labels) if labels else None
        self.objects: dict[str, JsonDict] = {}
        self._on_change = on_change
        self._backoff = backoff or Backoff()
        self._watch_timeout = watch_timeout
        self._clock = clock
        self._version = ""
        self.synced = asyncio.Event()

    @property
    def what(self) -> str:
        """The kind and scope, for logs: ``Service``, ``IPAddressPool in metallb-system``."""
        return self.kind.kind + (f" in {self.namespace}" if self.namespace else "")

    # -- list ---------------------------------------------------------------------------------

    async def sync(self) -> None:
        """List until it works; fill the cache, reporting the difference to what it held."""
        while True:
            try:
                listing = await self.api.list(
                    self.kind, namespace=self.namespace, labels=self.labels, fields=self.fields
                )
            except KubeError as error:
                delay = self._backoff.next()
                log_event(
                    _log,
                    logging.WARNING,
                    "list failed, retrying",
                    kind=self.what,
                    error=str(error),
                    retry_in=round(delay, 2),
                )
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            self._replace(listing.items)
            self._version = listing.resource_version
            self.synced.set()
            return

    def _replace(self, items: tuple[JsonDict, ...]) -> None:
        fresh = {object_key(obj): obj for obj in items}
        old = self.objects
        self.objects = fresh
        for key, obj in old.items():
            if key not in fresh:
                self._on_change("DELETED", key, None, obj)
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._on_change("ADDED", key, obj, None)
            elif resource_version(before) != resource_version(obj) or uid(before) != uid(obj):
                self._on_change("MODIFIED", key, obj, before)

    # -- watch --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch (after :meth:`sync`) until cancelled; resume or re-list on every break."""
        if not self.synced.is_set():
            await self.sync()
        while True:
            started = self._clock()
            try:
                async for event in self.api.watch(
                    self.kind,
                    namespace=self.namespace,
                    labels=self.labels,
                    fields=self.fields,
                    resource_version=self._version,
                    timeout_seconds=self._watch_timeout,
                ):
                    self._apply(event.type, event.object)
                    self._backoff.reset()
                continue  # the server ended the stream: resume at once
            except Expired:
                log_event(_log, logging.INFO, "watch expired, listing again", kind=self.what)
                await self.sync()
                continue
            except Exception as error:
                if self._clock() - started > 10.0:
                    self._backoff.reset()
                delay = self._backoff.next()
                level = logging.WARNING if isinstance(error, Unavailable) else logging.ERROR
                log_event(
                    _log,
                    level,
                    "watch broken, resuming",
                    kind=self.what,
                    error=str(error) if isinstance(error, KubeError) else repr(error),
                    retry_in=round(delay, 2),
                )
                await asyncio.sleep(delay)

    def _apply(self, event_type: str, obj: JsonDict) -> None:
        version = resource_version(obj)
        if event_type == "BOOKMARK":
            self._version = version or self._version
            return
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            return
        if version:
            self._version = version
        key = object_key(obj)
        before = self.objects.get(key)
        if event_type == "DELETED":
            if before is None or (uid(obj) and uid(before) and uid(obj) != uid(before)):
                return  # unknown, or the end of an incarnation the cache no longer holds
            del self.objects[key]
            self._on_change("DELETED", key, None, before)
            return
        if not self.observe(obj):
            return  # what we already hold (the answer to our own write came first)
        self._on_change("ADDED" if before is None else "MODIFIED", key, obj, before)

    def observe(self, obj: JsonDict) -> bool:
        """Fold in an object read or written outside the watch; True when it is news."""
        key = object_key(obj)
        before = self.objects.get(key)
        if before is not None and (
            is_older(obj, before)
            or (resource_version(before) == resource_version(obj) and uid(before) == uid(obj))
        ):
            return False
        self.objects[key] = obj
        return True

    def fold_write(self, written: JsonDict, *, annotations: Iterable[str] = ()) -> None:
        """Fold in ``written``, the server's answer to a write of ours, and run the change
        callback if it carries a change that somebody else made since the cache's copy.

        The answer is newer than anything the watch has delivered, so the watch event of a
        change made between our read and our write (a pool's addresses edited while we
        wrote its status) arrives older than the cache and is ignored: without this
        check, that change would never be seen. A write of ours changes the status, the
        metadata the server keeps and, for a metadata patch, the ``annotations`` it sets;
        a difference in the spec, the labels, another annotation or the deletion
        timestamp is somebody else's, and is reported as a ``MODIFIED`` event (``ADDED``
        for an object the cache did not hold).
        """
        key = object_key(written)
        before = self.objects.get(key)
        if not self.observe(written):
            return
        if before is None:
            self._on_change("ADDED", key, written, None)
        elif _changed_by_others(before, written, frozenset(annotations)):
            self._on_change("MODIFIED", key, written, before)

    def forget(self, key: str) -> JsonDict | None:
        """Drop an object known to be gone (a 404 on a write); returns what was cached."""
        return self.objects.pop(key, None)
