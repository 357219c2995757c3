"""The request log: every request the emulator answered, for assertions."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from types import EllipsisType
from typing import Any

from .common import JsonDict

# --------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RequestRecord:
    """One API request as the emulator saw it (``status`` is None while it is being served)."""

    id: int
    method: str
    path: str
    query: dict[str, str]
    verb: str | None  # get, list, watch, create, update, patch, delete, deletecollection
    group: str | None
    resource: str | None  # the plural, e.g. "services"
    subresource: str | None
    namespace: str | None
    name: str | None
    content_type: str | None
    status: int | None = None

    def to_dict(self) -> JsonDict:
        """JSON-ready form (see :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestRecord:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


class RequestLog:
    """Every API request in arrival order, with counters (control requests are not logged).

    >>> log = RequestLog()
    >>> log.count(verb="patch", resource="services", subresource="status")
    0
    """

    def __init__(self, records: Iterable[RequestRecord] = ()) -> None:
        self.records: list[RequestRecord] = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.records)

    def clear(self) -> None:
        """Forget everything logged so far."""
        self.records.clear()

    def select(
        self,
        *,
        method: str | None = None,
        verb: str | None = None,
        group: str | None = None,
        resource: str | None = None,
        subresource: str | EllipsisType | None = ...,
        namespace: str | EllipsisType | None = ...,
        name: str | EllipsisType | None = ...,
        status: int | EllipsisType | None = ...,
        path: str | None = None,
    ) -> list[RequestRecord]:
        """The records matching every given filter (``...`` means any; None means absent)."""
        result = []
        for record in self.records:
            if method is not None and record.method != method.upper():
                continue
            if verb is not None and record.verb != verb:
                continue
            if group is not None and record.group != group:
                continue
            if resource is not None and record.resource != resource:
                continue
            if path is not None and record.path != path:
                continue
            if subresource is not ... and record.subresource != subresource:
                continue
            if namespace is not ... and record.namespace != namespace:
                continue
            if name is not ... and record.name != name:
                continue
            if status is not ... and record.status != status:
                continue
            result.append(record)
        return result

    def count(self, **filters: Any) -> int:
        """How many records match (same filters as :meth:`select`)."""
        return len(self.select(**filters))

    def by_path(self) -> collections.Counter[tuple[str, str]]:
        """Counts per (HTTP method, path)."""
        return collections.Counter((r.method, r.path) for r in self.records)

    def by_verb(self) -> collections.Counter[tuple[str, str]]:
        """Counts per (verb, resource[/subresource]), e.g. ``("patch", "services/status")``."""
        counter: collections.Counter[tuple[str, str]] = collections.Counter()
        for record in self.records:
            if record.verb is None or record.resource is None:
                continue
            what = record.resource + (f"/{record.subresource}" if record.subresource else "")
            counter[record.verb, what] += 1
        return counter

    def to_json(self) -> list[JsonDict]:
        """JSON-ready list of records."""
        return [record.to_dict() for record in self.records]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> RequestLog:
        """The inverse of :meth:`to_json`."""
        return cls(RequestRecord.from_dict(item) for item in data)
