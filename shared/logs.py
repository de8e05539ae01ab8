"""Structured JSON logs in the shape Cloud Logging understands from a function's stdout.

One JSON object per line with ``severity``, ``message``, ``time`` and
``logging.googleapis.com/labels``. Callers pass labels (shop, topic) and small fields; never a
secret, a signature or a body.

Deliberately not built on the ``logging`` module: on the webhook path its record machinery
(caller lookup, record objects, handler locks) was ~9% of the worker's CPU under load
(py-spy, bench/RESULTS.md). This writes one line with one ``json.dumps`` and one locked write.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_LABELS_KEY = "logging.googleapis.com/labels"
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_write_lock = threading.Lock()


class StructuredLogger:
    """``info`` / ``warning`` / ``error`` / ``exception`` writing Cloud Logging JSON lines."""

    def __init__(self, name: str, level: str = "INFO") -> None:
        self.name = name
        self.threshold = _LEVELS.get(level.upper(), 20)

    def _emit(
        self,
        severity: str,
        message: str,
        labels: Mapping[str, Any] | None,
        fields: Mapping[str, Any] | None,
        error: BaseException | None = None,
    ) -> None:
        if _LEVELS[severity] < self.threshold:
            return
        entry: dict[str, Any] = {
            "severity": severity,
            "message": message,
            "time": datetime.now(UTC).isoformat(),
            "logger": self.name,
        }
        if labels:
            entry[_LABELS_KEY] = {k: str(v) for k, v in labels.items() if v is not None}
        if fields:
            entry.update(fields)
        if error is not None:
            # The exception's type and message only: a traceback may quote request data.
            entry["error"] = f"{type(error).__name__}: {error}"
        line = json.dumps(entry, default=str) + "\n"
        with _write_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def debug(self, message: str, *, labels: Mapping[str, Any] | None = None, **fields: Any) -> None:
        self._emit("DEBUG", message, labels, fields)

    def info(self, message: str, *, labels: Mapping[str, Any] | None = None, **fields: Any) -> None:
        self._emit("INFO", message, labels, fields)

    def warning(self, message: str, *, labels: Mapping[str, Any] | None = None, **fields: Any) -> None:
        self._emit("WARNING", message, labels, fields)

    def error(self, message: str, *, labels: Mapping[str, Any] | None = None, **fields: Any) -> None:
        self._emit("ERROR", message, labels, fields)

    def exception(self, message: str, *, labels: Mapping[str, Any] | None = None, **fields: Any) -> None:
        """An ERROR line naming the exception being handled (type and message, no traceback)."""
        self._emit("ERROR", message, labels, fields, error=sys.exc_info()[1])


def get_logger(name: str, level: str = "INFO") -> StructuredLogger:
    return StructuredLogger(f"shopml.{name}", level)
