"""Watches: the stored events, the watchers' queues, and what a watch with selectors sees."""

from __future__ import annotations

import asyncio
import dataclasses

from .common import JsonDict
from .selectors import LabelSelector, _FieldSelector

# --------------------------------------------------------------------------------------------
# Watch
# --------------------------------------------------------------------------------------------

_CLOSE = object()  # ends a watch stream


@dataclasses.dataclass(frozen=True)
class _Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    old: JsonDict | None
    new: JsonDict


@dataclasses.dataclass(eq=False)  # hashed by identity
class _Watcher:
    queue: asyncio.Queue[_Event | object] = dataclasses.field(default_factory=asyncio.Queue)


@dataclasses.dataclass(frozen=True)
class _WatchFilter:
    """Which objects a watch sees (namespace, name, selectors), and what each stored event
    becomes for it: an object entering the selection is ADDED, one leaving it DELETED."""

    namespace: str | None
    name: str | None
    labels: LabelSelector
    fields: _FieldSelector

    def selected(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        metadata = obj["metadata"]
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        if self.name is not None and metadata["name"] != self.name:
            return False
        return self.labels.matches(metadata.get("labels")) and self.fields.matches(obj)

    def translate(self, event: _Event) -> JsonDict | None:
        was, now = self.selected(event.old), self.selected(event.new)
        if event.type == "DELETED":
            return {"type": "DELETED", "object": event.new} if was else None
        if now and not was:
            return {"type": "ADDED", "object": event.new}
        if was and not now:
            return {"type": "DELETED", "object": event.new}
        return {"type": event.type, "object": event.new} if now else None
