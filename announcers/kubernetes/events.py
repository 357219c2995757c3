"""Sending ``events.k8s.io/v1`` Events in the background, deduplicated.

:class:`EventSender` takes events as they are decided (:meth:`EventSender.emit` never
waits), asks :class:`~announcers.kubernetes.status.EventBook` whether each is new (a create)
or a repeat (a ``series`` update), and sends them from a few worker tasks. Events about the
same thing go through the same worker, in order; repeats not yet sent are folded into one
update. Events are best effort, as in client-go: a failed one is retried a few times, then
dropped with a log line; it never holds up an allocation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

import metallb_core as core
from announcers.kubernetes.client import EVENT, AlreadyExists, KubeApi, KubeError, NotFound
from announcers.kubernetes.logs import log_event
from announcers.kubernetes.status import CreateEvent, EventBook, UpdateSeries

_log = logging.getLogger("announcers.kubernetes.events")

Key = tuple[str, ...]


@dataclasses.dataclass
class _Update:
    write: UpdateSeries
    ref: Mapping[str, Any]
    event: core.Event
    action: str | None


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class EventSender:
    """Background sender of Events (see the module docstring); ``await run()`` starts it."""

    def __init__(
        self,
        api: KubeApi,
        book: EventBook,
        *,
        workers: int = 4,
        attempts: int = 3,
        retry_delay: float = 0.5,
        limit: int = 10_000,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.api = api
        self.book = book
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.limit = limit
        self._clock = clock
        self._queues: list[asyncio.Queue[tuple[str, Any]]] = [
            asyncio.Queue() for _ in range(max(1, workers))
        ]
        self._updates: dict[Key, _Update] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.sent = 0
        self.dropped = 0

    def emit(self, ref: Mapping[str, Any], event: core.Event, *, action: str | None = None) -> None:
        """Queue ``event`` about the object ``ref`` refers to (see ``status.reference``)."""
        if self._pending >= self.limit:
            self.dropped += 1
            return
        write = self.book.record(ref, event, self._clock(), action=action)
        queue = self._queues[hash(write.key) % len(self._queues)]
        if isinstance(write, CreateEvent):
            self._put(queue, ("create", write))
        elif write.key in self._updates:
            self._updates[write.key] = _Update(write, ref, event, action)  # folded in
        else:
            self._updates[write.key] = _Update(write, ref, event, action)
            self._put(queue, ("update", write.key))

    def _put(self, queue: asyncio.Queue[tuple[str, Any]], item: tuple[str, Any]) -> None:
        self._pending += 1
        self._idle.clear()
        queue.put_nowait(item)

    @property
    def idle(self) -> bool:
        """Whether everything emitted so far has been sent (or dropped)."""
        return self._pending == 0

    async def run(self) -> None:
        """Send until cancelled."""
        async with asyncio.TaskGroup() as group:
            for queue in self._queues:
                group.create_task(self._work(queue))

    async def flush(self, timeout: float) -> bool:
        """Wait until everything queued is sent (True) or ``timeout`` passes (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _work(self, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        while True:
            kind, item = await queue.get()
            try:
                if kind == "create":
                    await self._create(item)
                else:
                    update = self._updates.pop(item, None)
                    if update is not None:
                        await self._update(update)
            except Exception as error:
                self.dropped += 1
                log_event(_log, logging.ERROR, "event not sent", error=repr(error))
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    async def _create(self, write: CreateEvent) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                await self.api.create(EVENT, write.body)
            except AlreadyExists:
                break
            except NotFound as error:  # the namespace is gone: nothing to tell
                self._drop(write.key, error)
                return
            except KubeError as error:
                if attempt == self.attempts:
                    self._drop(write.key, error)
                    return
                await asyncio.sleep(self.retry_delay * attempt)
                continue
            break
        self.sent += 1

    async def _update(self, update: _Update) -> None:
        write = update.write
        for attempt in range(1, self.attempts + 1):
            try:
                await self.api.patch(EVENT, write.name, write.patch, namespace=write.namespace)
            except NotFound:
                # Expired (Events live an hour) or never created: start a new one.
                self.book.forget(write.key)
                fresh = self.book.record(
                    update.ref, update.event, self._clock(), action=update.action
                )
                if isinstance(fresh, CreateEvent):
                    await self._create(fresh)
                return
            except KubeError as error:
                if attempt == self.attempts:
                    self._drop(write.key, error)
                    return
                await asyncio.sleep(self.retry_delay * attempt)
                continue
            self.sent += 1
            return

    def _drop(self, key: Key, error: KubeError) -> None:
        self.book.forget(key)
        self.dropped += 1
        log_event(
            _log,
            logging.WARNING,
            "event not sent",
            regarding=f"{key[1]} {key[0]}/{key[2]}".replace(" /", " "),
            reason=key[5],
            error=str(error),
        )
