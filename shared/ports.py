"""Ports: the small interfaces pure logic talks to. Adapters implement them per backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class EventPublisher(Protocol):
    """Publishes one message and returns only once the broker acknowledged it.

    Raises ``shared.errors.PublishFailed`` when the broker did not acknowledge in time.
    ``topic`` is a topology name (``shopify-events``); the adapter resolves prefix and project.
    """

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


class Warehouse(Protocol):
    """The analytical store: BigQuery in the cloud, DuckDB locally, same semantics.

    Tables and views come from ``shared/schemas/tables/*.json`` (BigQuery JSON schema plus
    partitioning/clustering, read by Terraform too) and ``shared/sql/views/*.sql`` (BigQuery
    dialect; translated for DuckDB). Row values are plain Python: ``int``, ``str``, ``bool``,
    ``float``, ``decimal.Decimal`` (NUMERIC), aware UTC ``datetime`` (TIMESTAMP), ``date``,
    ``list`` (REPEATED) and ``dict`` (RECORD); ``None`` for NULL.

    Errors: ``TransientError`` when retrying may help (unavailable, lock held, quota),
    ``PermanentError`` when it cannot (a row that does not fit its table).
    """

    def ensure_schema(self) -> None:
        """Create missing tables and (re)create views. Idempotent, safe to call on every start."""
        ...

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str] | None = None
    ) -> None:
        """Append rows to one table. ``row_ids`` lets BigQuery de-duplicate retried inserts."""
        ...

    def write_batch(
        self,
        rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]],
        row_ids_by_table: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Append rows to several tables as one unit where the backend allows (DuckDB: one
        transaction; BigQuery: one insert per table, idempotent through row ids)."""
        ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one statement written in BigQuery's dialect with ``@name`` parameters."""
        ...
