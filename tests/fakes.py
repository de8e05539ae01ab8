"""Fakes of the ports that several test modules share: they implement the port, nothing is patched."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import PermanentError, PublishFailed


class RecordingPublisher:
    """An in-memory ``EventPublisher``; ``fail=True`` makes every publish time out."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        if self.fail:
            raise PublishFailed("Pub/Sub did not acknowledge within 3.0 s")
        with self._lock:
            self.messages.append((topic, data, dict(attributes)))
            return str(len(self.messages))


class MemoryWarehouse:
    """A ``Warehouse`` that keeps rows in lists; can be told to fail.

    Like the DuckDB adapter, a row whose id its table already holds (or that repeats an id
    earlier in the same call) is skipped. ``fail_with`` is raised by every write;
    ``reject_table`` makes any write touching that table fail as rows that do not fit.
    """

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.batches = 0
        self.fail_with: Exception | None = None
        self.reject_table: str | None = None  # a table whose rows "do not fit"
        self.lock = threading.Lock()
        self._row_ids: set[tuple[str, str]] = set()

    def ensure_schema(self) -> None:
        pass

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str] | None = None
    ) -> None:
        self.write_batch({table: rows}, {table: row_ids} if row_ids is not None else None)

    def write_batch(
        self,
        rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]],
        row_ids_by_table: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        with self.lock:
            if self.fail_with is not None:
                raise self.fail_with
            if self.reject_table and rows_by_table.get(self.reject_table):
                raise PermanentError(
                    f"row does not fit table {self.reject_table}: total_price overflows NUMERIC"
                )
            self.batches += 1
            for table, rows in rows_by_table.items():
                ids: Sequence[str | None] = (row_ids_by_table or {}).get(table) or [None] * len(rows)
                for row, row_id in zip(rows, ids, strict=True):
                    if row_id is not None:
                        if (table, row_id) in self._row_ids:
                            continue
                        self._row_ids.add((table, row_id))
                    self.tables.setdefault(table, []).append(dict(row))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError("MemoryWarehouse runs no SQL")
