"""Structured JSON logs in the shape Cloud Logging understands from a function's stdout.

One JSON object per line with ``severity``, ``message``, ``time`` and
``logging.googleapis.com/labels``. Callers pass labels (shop, topic) and small fields; never a
secret, a signature or a body.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_LABELS_KEY = "logging.googleapis.com/labels"
_configured = False


class CloudLoggingFormatter(logging.Formatter):
    """Formats a record as one Cloud Logging structured-log line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "logger": record.name,
        }
        labels = getattr(record, "labels", None)
        if labels:
            entry[_LABELS_KEY] = {k: str(v) for k, v in labels.items() if v is not None}
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type and message only: a traceback may quote request data.
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stdout`` is at emit time (test capture and workers swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def get_logger(name: str, level: str = "INFO") -> logging.Logger:
    """A logger writing structured lines to stdout; configures the ``shopml`` root once."""
    global _configured
    root = logging.getLogger("shopml")
    if not _configured:
        handler = _StdoutHandler(sys.stdout)
        handler.setFormatter(CloudLoggingFormatter())
        root.addHandler(handler)
        root.propagate = False
        _configured = True
    root.setLevel(level)
    return root.getChild(name)
