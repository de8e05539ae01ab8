"""The order importer end to end: the real UCI sample into a DuckDB warehouse file, twice."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devkit import RETAIL_SAMPLE_CSV
from devkit.importer import import_orders
from shared.bootstrap import close_warehouse, create_warehouse
from shared.settings import Settings

pytestmark = pytest.mark.integration

TABLES = ("raw_events", "orders", "order_line_items", "refunds", "refund_line_items", "rejected_events",
          "schema_drift")  # fmt: skip


def _counts(warehouse: object) -> dict[str, int]:
    query = warehouse.query  # type: ignore[attr-defined]
    sql = "SELECT COUNT(*) AS n FROM {}"  # table names from the constant above
    return {table: int(query(sql.format(table))[0]["n"]) for table in TABLES}


def test_the_sample_lands_once_however_often_it_is_imported(tmp_path: Path) -> None:
    with RETAIL_SAMPLE_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    invoices = {r["InvoiceNo"] for r in rows}
    settings = Settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse = create_warehouse(settings)
    try:
        report = import_orders(RETAIL_SAMPLE_CSV, warehouse=warehouse, settings=settings)
        assert (report.orders, report.lines, report.rejected_rows) == (len(invoices), len(rows), 0)
        first = _counts(warehouse)
        assert first == {
            "raw_events": len(invoices),
            "orders": len(invoices),
            "order_line_items": len(rows),
            "refunds": 0,
            "refund_line_items": 0,
            "rejected_events": 0,
            "schema_drift": 0,
        }
        units = warehouse.query("SELECT SUM(quantity) AS n FROM order_line_items")[0]["n"]
        assert int(units) == sum(int(r["Quantity"]) for r in rows)
        sources = warehouse.query("SELECT DISTINCT source, status FROM raw_events")
        assert sources == [{"source": "import", "status": "loaded"}]
        again = import_orders(RETAIL_SAMPLE_CSV, warehouse=warehouse, settings=settings)
        assert again.orders == report.orders
        assert _counts(warehouse) == first  # raw rows included: same delivery and message ids
    finally:
        close_warehouse(warehouse)


def test_imported_rows_are_received_at_the_import_and_keep_their_ids(tmp_path: Path) -> None:
    """received_at is the time of the import (typed tables are partitioned by it: history must
    land near the present), while webhook ids, message ids and triggered_at stay the order's."""
    settings = Settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    sql = "SELECT message_id, webhook_id, triggered_at, received_at FROM raw_events ORDER BY message_id"
    runs = []
    for _ in range(2):
        warehouse = create_warehouse(Settings(warehouse_url=f"duckdb:///{tmp_path / f'{len(runs)}.duckdb'}"))
        try:
            started = datetime.now(UTC)
            import_orders(RETAIL_SAMPLE_CSV, warehouse=warehouse, settings=settings)
            ended = datetime.now(UTC)
            raw = warehouse.query(sql)
            orders = warehouse.query(
                "SELECT MIN(received_at) AS lo, MAX(received_at) AS hi, MAX(created_at) AS last FROM orders"
            )[0]
        finally:
            close_warehouse(warehouse)
        assert raw and all(started <= r["received_at"] <= ended for r in raw)
        assert started <= orders["lo"] == orders["hi"] <= ended
        assert orders["last"] < datetime(2012, 1, 1, tzinfo=UTC)  # the orders keep their own time
        assert all(r["triggered_at"] < datetime(2012, 1, 1, tzinfo=UTC) for r in raw)
        runs.append([(r["message_id"], r["webhook_id"], r["triggered_at"]) for r in raw])
    assert runs[0] == runs[1]  # deterministic identities: a re-import is recognised by row id
