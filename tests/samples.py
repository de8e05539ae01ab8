"""Rows that fit a table: for contract tests, feature-SQL tests and the warehouse benchmark.

Not part of the deployable package (``shared/``): only tests and ``bench/`` build made-up rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from shared.warehouse_schema import Column, TableSpec


def sample_value(column: Column, seed: int = 0) -> Any:
    """A value that fits ``column`` (for benchmarks, smoke checks and contract tests)."""
    if column.repeated:
        single = Column(column.name, column.type, "NULLABLE", column.fields)
        return [sample_value(single, seed), sample_value(single, seed + 1)]
    t = column.type
    if t == "RECORD":
        return {f.name: sample_value(f, seed) for f in column.fields}
    if t == "STRING":
        return f"{column.name}-{seed}"
    if t == "INT64":
        return 1000 + seed
    if t in ("NUMERIC", "BIGNUMERIC"):
        return Decimal(seed) + Decimal("0.25")
    if t == "FLOAT64":
        return seed + 0.5
    if t == "BOOL":
        return seed % 2 == 0
    if t == "TIMESTAMP":
        return datetime(2025, 3, 1, 10, 0, tzinfo=UTC).replace(second=seed % 60, microsecond=seed % 1000)
    if t == "DATETIME":
        return datetime(2025, 3, 1, 10, 0, seed % 60)
    if t == "DATE":
        return date(2025, 3, 1 + seed % 28)
    if t == "TIME":
        return time(10, 0, seed % 60)
    if t == "JSON":
        return {"seed": seed}
    if t == "BYTES":
        return seed.to_bytes(4, "big")
    raise ValueError(f"no sample for type {t}")  # pragma: no cover


def sample_row(
    table: TableSpec, overrides: Mapping[str, Any] | None = None, seed: int = 0, *, fill_nullable: bool = True
) -> dict[str, Any]:
    """A row that fits ``table``: ``overrides`` first, then a sample for every REQUIRED column
    (and NULLABLE ones when ``fill_nullable``). Columns the table lacks are dropped from
    ``overrides``, so callers keep working while table files evolve."""
    overrides = overrides or {}
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.name in overrides:
            row[column.name] = overrides[column.name]
        elif column.required or fill_nullable:
            row[column.name] = sample_value(column, seed)
    return row
