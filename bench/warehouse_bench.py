"""DuckDB warehouse benchmark: small ``write_batch`` transactions from 8 threads, and open cost.

A typical event is what ``validate_load`` writes for one ``orders/create`` with 5 line items:
1 ``raw_events`` row + 1 ``orders`` row + 5 ``order_line_items`` rows, one ``write_batch``.
Run: ``python -m bench.warehouse_bench [--quick]`` (or ``python -m bench --only warehouse`` once
registered in ``bench/__main__.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.warehouse_schema import load_schema
from tests.samples import sample_row


def typical_event(n: int, line_items: int = 5) -> dict[str, list[dict[str, Any]]]:
    """The rows validate_load writes for one orders/create (only columns every table file has)."""
    now = datetime.now(UTC)
    webhook_id = str(uuid.uuid4())
    common = {
        "shop_domain": "bench-store.myshopify.com",
        "webhook_id": webhook_id,
        "shopify_topic": "orders/create",
        "received_at": now,
        "loaded_at": now,
    }
    raw = {
        "message_id": str(n),
        "webhook_id": webhook_id,
        "shop_domain": common["shop_domain"],
        "shopify_topic": "orders/create",
        "received_at": now,
        "attributes_json": json.dumps({"shopify_topic": "orders/create"}),
        "body": "{" + '"x": 1, ' * 300 + '"y": 2}',  # ~2.4 kB, a typical order body
        "body_encoding": "utf-8",
        "body_sha256": "0" * 64,
        "status": "loaded",
        "loaded_at": now,
    }
    order = {
        **common,
        "id": 5_000_000_000 + n,
        "created_at": now,
        "updated_at": now,
        "currency": "EUR",
        "total_price": Decimal("123.45"),
    }
    items = [
        {
            **common,
            "order_id": order["id"],
            "id": 9_000_000_000 + n * 10 + k,
            "order_created_at": now,
            "order_updated_at": now,
            "currency": "EUR",
            "quantity": 1 + k,
            "price": Decimal("19.99"),
            "variant_id": 40_000 + k,
            "sku": f"SKU-{k}",
        }
        for k in range(line_items)
    ]
    return {"raw_events": [raw], "orders": [order], "order_line_items": items}


def _fit(schema: Any, event: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Fill REQUIRED columns the bench does not know and drop ones a table lacks, so the bench
    keeps working while the table files evolve."""
    return {
        table: [sample_row(schema.table(table), row, fill_nullable=False) for row in rows]
        for table, rows in event.items()
    }


def measure_writes(path: Path, threads: int, events: int) -> dict[str, Any]:
    schema = load_schema()
    warehouse = DuckDBWarehouse(path, schema)
    warehouse.ensure_schema()
    batches = [_fit(schema, typical_event(n)) for n in range(events)]
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = events // threads

    def worker(k: int) -> None:
        mine = []
        for batch in batches[k * per_thread : (k + 1) * per_thread]:
            started = time.perf_counter()
            warehouse.write_batch(batch)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    written = warehouse.query("SELECT COUNT(*) AS n FROM order_line_items")[0]["n"]
    latencies.sort()
    committer = warehouse._db.committer
    sizes = list(committer.batch_sizes) if committer else []
    warehouse.close()
    return {
        "threads": threads,
        "events": per_thread * threads,
        "seconds": round(elapsed, 3),
        "events_per_s": round(per_thread * threads / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "mean_group_events": round(statistics.mean(sizes), 1) if sizes else None,
        "line_items_written": written,
        "stats": warehouse.stats,
    }


def measure_batched(path: Path, events: int, per_call: int) -> dict[str, Any]:
    """The batching path: a loader holding many events passes them to one write_batch."""
    schema = load_schema()
    warehouse = DuckDBWarehouse(path, schema)
    warehouse.ensure_schema()
    batches = [_fit(schema, typical_event(n)) for n in range(events)]
    started = time.perf_counter()
    for first in range(0, events, per_call):
        merged: dict[str, list[dict[str, Any]]] = {}
        for batch in batches[first : first + per_call]:
            for table, rows in batch.items():
                merged.setdefault(table, []).extend(rows)
        warehouse.write_batch(merged)
    elapsed = time.perf_counter() - started
    warehouse.close()
    return {"events_per_call": per_call, "events": events, "events_per_s": round(events / elapsed)}


def measure_open(path: Path, repeats: int) -> dict[str, Any]:
    """Open (cold, the file exists and has data) and close (checkpoint) of a DuckDB file."""
    import duckdb

    opens, closes = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        con = duckdb.connect(str(path))
        con.execute("SELECT 1").fetchall()
        opens.append(time.perf_counter() - started)
        started = time.perf_counter()
        con.close()
        closes.append(time.perf_counter() - started)
    return {
        "open_ms_median": round(statistics.median(opens) * 1000, 2),
        "close_ms_median": round(statistics.median(closes) * 1000, 2),
        "file_mb": round(path.stat().st_size / 1e6, 1),
    }


def run(quick: bool = False) -> dict[str, Any]:
    events = 1200 if quick else 6000
    results: dict[str, Any] = {"writes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 8):
            path = Path(tmp) / f"bench-{threads}.duckdb"
            results["writes"].append(measure_writes(path, threads, events))
        results["batched"] = measure_batched(Path(tmp) / "batched.duckdb", events, 50)
        results["open"] = measure_open(Path(tmp) / "bench-8.duckdb", 5 if quick else 20)
    return results


def report(results: dict[str, Any]) -> str:
    lines = ["DuckDB write_batch (1 raw + 1 order + 5 line items per event):"]
    for w in results["writes"]:
        lines.append(
            f"  {w['threads']} thread(s): {w['events_per_s']} events/s, "
            f"p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, "
            f"mean group {w['mean_group_events']} events ({w['events']} events)"
        )
    b = results["batched"]
    lines.append(
        f"  batched, 1 thread, {b['events_per_call']} events per write_batch: {b['events_per_s']} events/s"
    )
    o = results["open"]
    lines.append(
        f"  open {o['open_ms_median']} ms, close (checkpoint) {o['close_ms_median']} ms, "
        f"file {o['file_mb']} MB"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.warehouse_bench")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out = run(quick=args.quick)
    print(report(out))
    print(json.dumps(out, indent=2, default=str))
