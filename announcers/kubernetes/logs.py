"""Structured logs: one JSON object per line on stderr.

Every line has ``time`` (RFC 3339, UTC), ``level``, ``logger`` and ``msg``, plus the fields
given to :func:`log_event` (``service``, ``pool``, ``error``, ...), so a log pipeline can
filter on them without parsing prose.

>>> import io
>>> stream = io.StringIO()
>>> logger = logging.getLogger("doctest.logs")
>>> handler = logging.StreamHandler(stream)
>>> handler.setFormatter(JsonFormatter(clock=lambda: 0.0))
>>> logger.addHandler(handler); logger.propagate = False
>>> log_event(logger, logging.WARNING, "write failed", service="web/nginx")
>>> print(stream.getvalue(), end="")  # doctest: +NORMALIZE_WHITESPACE
{"time": "1970-01-01T00:00:00.000Z", "level": "warning", "logger": "doctest.logs",
 "msg": "write failed", "service": "web/nginx"}
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

_FIELDS = "fields"


def log_event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with structured ``fields`` (rendered as JSON keys by the formatter)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={_FIELDS: fields})


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self._clock = clock

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON: fixed keys first, then the structured fields."""
        created = self._clock() if self._clock is not None else record.created
        stamp = datetime.datetime.fromtimestamp(created, datetime.UTC)
        line: dict[str, Any] = {
            "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in (getattr(record, _FIELDS, None) or {}).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int = logging.INFO, stream: Any = None) -> None:
    """Send every log record of the process to ``stream`` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The HTTP client logs every request at INFO: far too chatty for a controller.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
