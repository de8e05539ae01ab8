"""Validation throughput in-process on one core: ``plan_load`` on a typical ``orders/create``.

The order is tests/fixtures/webhooks/orders_create_5_items.json (five lines, tax, a discount
code, ~12.8 KB of compact JSON), with the attributes ingest_webhook sets. Each repeat runs
``plan_load`` N times: parse, validate, normalise, build the raw, typed and drift rows (the
whole pure part of validate_load; no warehouse). The process is pinned to one CPU. Reported:
the median of 5 repeats, as events per CPU-second (``process_time``: what one core can do,
insensitive to other processes on a shared machine) and per wall-clock second, plus a
breakdown of one event. Target (issue 3): >= 5,000 orders/s.

``python -m bench --only validation`` or ``python bench/validation_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a script too
    sys.path.insert(0, str(ROOT))

from shared.validation import plan_load  # noqa: E402
from shared.validation.plan import parse_json  # noqa: E402
from shared.validation.rows import Pii, order_rows  # noqa: E402
from shared.validation.schema import Issues, topic_schemas, walker_of  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "webhooks" / "orders_create_5_items.json"
TARGET = 5000.0
REPEATS = 5


def _event() -> tuple[dict[str, str], bytes]:
    body = json.dumps(json.loads(FIXTURE.read_text()), separators=(",", ":")).encode("utf-8")
    attributes = {
        "shopify_topic": "orders/create",
        "shop_domain": "demo-store.myshopify.com",
        "webhook_id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "event_id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "api_version": "2025-07",
        "triggered_at": "2024-11-29T11:34:16.000Z",
        "received_at": "2024-11-29T11:34:16.120000+00:00",
        "source": "webhook",
    }
    return attributes, body


def _pin_to_one_cpu() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def _time(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for n calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run(quick: bool = False) -> dict[str, Any]:
    """Pinned to one CPU while it measures; the process's affinity is restored afterwards
    (``python -m bench`` runs later benchmarks, and their child processes, in this process)."""
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        return _run(quick)
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)


def _run(quick: bool) -> dict[str, Any]:
    attributes, body = _event()
    now = datetime.now(UTC)
    pinned = _pin_to_one_cpu()
    n = 500 if quick else 4000

    def one() -> Any:
        return plan_load(attributes, body, "17263549812", None, now, pii_hash_key="bench-key")

    plan = one()
    assert plan.status == "loaded" and len(plan.rows_by_table["order_line_items"]) == 5
    _time(one, n // 5)  # warm up
    repeats = [_time(one, n) for _ in range(REPEATS)]
    wall_rates = [n / wall for wall, _ in repeats]
    cpu_rates = [n / cpu for _, cpu in repeats if cpu > 0]

    doc = parse_json(body, body.decode())
    walker = walker_of(topic_schemas()["orders/create"].resolve("2025-07")[1])
    normalised = walker(doc, "", "", Issues())
    meta = {k: plan.rows_by_table["orders"][0][k] for k in ("webhook_id", "event_id", "shopify_topic")}
    pii = Pii(False, b"bench-key")
    steps = {
        "parse_json": lambda: parse_json(body, body.decode()),
        "validate_and_normalise": lambda: walker(doc, "", "", Issues()),
        "build_typed_rows": lambda: order_rows(normalised, meta, "demo-store.myshopify.com", pii),
    }
    breakdown = {
        name: round(min(_time(fn, n)[1] for _ in range(3)) / n * 1e6, 1) for name, fn in steps.items()
    }
    return {
        "event": {"topic": "orders/create", "line_items": 5, "body_bytes": len(body)},
        "iterations_per_repeat": n,
        "repeats": REPEATS,
        "cpu": pinned,
        "python": sys.version.split()[0],
        "json_parser": getattr(parse_json, "__name__", "?"),
        "orders_per_cpu_second_median": round(statistics.median(cpu_rates)),
        "orders_per_wall_second_median": round(statistics.median(wall_rates)),
        "orders_per_cpu_second_repeats": [round(r) for r in cpu_rates],
        "orders_per_wall_second_repeats": [round(r) for r in wall_rates],
        "microseconds_per_order_cpu": round(1e6 / statistics.median(cpu_rates), 1),
        "breakdown_cpu_microseconds": breakdown,
        "target_orders_per_second": TARGET,
        "meets_target": statistics.median(cpu_rates) >= TARGET,
    }


def report(results: dict[str, Any]) -> str:
    b = results["breakdown_cpu_microseconds"]
    return "\n".join(
        [
            f"validation: orders/create, {results['event']['line_items']} line items, "
            f"{results['event']['body_bytes']} bytes; {results['cpu']}; parser {results['json_parser']}",
            f"  median of {results['repeats']} x {results['iterations_per_repeat']}: "
            f"{results['orders_per_cpu_second_median']:,} orders per CPU-second "
            f"({results['microseconds_per_order_cpu']} us each), "
            f"{results['orders_per_wall_second_median']:,} per wall-clock second",
            f"  repeats (CPU): {results['orders_per_cpu_second_repeats']}",
            f"  one order: parse {b['parse_json']} us, validate+normalise {b['validate_and_normalise']} us, "
            f"typed rows {b['build_typed_rows']} us (rest: raw row, hashing, drift)",
            f"  target {results['target_orders_per_second']:,.0f}/s: "
            + ("met" if results["meets_target"] else "MISSED"),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs")
    args = parser.parse_args()
    print(report(run(quick=args.quick)))
