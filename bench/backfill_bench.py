"""Step 6 (Shopify side): backfill and reconcile against the Admin API stand-in.

**Backfill.** A simulated store (full run: 300 variants over 90 days, about 10,000 orders;
``--quick``: 60 variants over 45 days) is served by the stand-in (``devkit/shopify_standin``:
bucket 2,000 points restoring 100/s, the standard plan's rate) in a process of its own on
loopback (``python -m devkit.shopify_standin``), so the CPU measured is the client's. ``backfill`` runs
its three bulk operations, streams and re-assembles the JSONL, converts every object, fetches
the refunds by id, and publishes to an in-process loader (``devkit/direct_load.py``: the same
``plan_load`` and batched ``write_batch`` as the pull loader) writing to a fresh DuckDB file.
Reported: wall seconds (split into waiting for the bulk operations and streaming their results),
orders per second into the warehouse, the client process's CPU seconds, Admin API calls,
requested and actual cost points (what the bucket was charged), throttled answers, all also per
10,000 orders.
Pub/Sub is not in the measured path (the emulator's throughput is bench/RESULTS.md's Step 1-2).

**Reconcile.** The same store, its warehouse loaded with every webhook but a seeded 5 % lost,
and one pass over the last 24 hours (watermark = end - 1 day, 60 min overlap): wall seconds,
calls, points, what was checked and what was published; then the views are compared with a
warehouse that got every webhook of that day (``tests/standin.py``'s comparison).

``python -m bench --only backfill [--quick]`` or ``python bench/backfill_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a script too
    sys.path.insert(0, str(ROOT))

from devkit.backfill import backfill  # noqa: E402
from devkit.direct_load import DirectLoader  # noqa: E402
from devkit.shopify_standin import StandIn  # noqa: E402
from devkit.simulator import StoreSimulator  # noqa: E402
from shared.adapters.duckdb_warehouse import DuckDBWarehouse  # noqa: E402
from shared.adapters.object_stores import LocalObjectStore  # noqa: E402
from shared.adapters.shopify_admin import ShopifyAdmin  # noqa: E402
from shared.storesync.reconcile import Reconciler  # noqa: E402
from shared.storesync.state import SyncState  # noqa: E402

SHOP = "bench-store.myshopify.com"
TOKEN = "shpat_bench"
START = date(2024, 9, 1)


class _Quiet:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def update(self, count: int | None = None, advance: int = 0) -> None:
        pass

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _deliver(loader: DirectLoader, event: Any) -> None:
    loader.publish(
        "shopify-events",
        event.body,
        {
            "shopify_topic": event.topic, "shop_domain": event.shop_domain, "webhook_id": event.webhook_id,
            "api_version": event.api_version, "triggered_at": event.triggered_at, "source": "webhook",
        },
    )  # fmt: skip


def _per_10k(value: float, orders: int) -> float:
    return round(value * 10_000 / max(orders, 1), 1)


class StandInProcess:
    """``python -m devkit.shopify_standin`` serving the same simulated store, in its own process."""

    def __init__(self, variants: int, days: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devkit.shopify_standin", "--shop", SHOP, "--token", TOKEN,
             "--variants", str(variants), "--days", str(days), "--start", START.isoformat()],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the stand-in did not start")
        self.url = json.loads(line)["url"]

    def stop(self) -> None:
        self.process.terminate()  # SIGTERM: a background job ignores SIGINT
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def bench_backfill(sim: StoreSimulator, folder: Path) -> dict[str, Any]:
    variants, days = len(sim.catalogue.variants), (sim.end - sim.start).days
    standin = StandInProcess(variants, days)
    try:
        warehouse = DuckDBWarehouse(folder / "backfill.duckdb")
        loader = DirectLoader(warehouse, batch=2000)
        admin = ShopifyAdmin(SHOP, TOKEN, admin_url=standin.url)
        cpu = time.process_time()
        started = time.perf_counter()
        report = backfill(
            admin, loader, SyncState(LocalObjectStore(folder / "sync")),
            since=datetime.combine(sim.start, datetime.min.time(), tzinfo=UTC), api_version="2025-10",
            warehouse=warehouse, poll_interval=0.05, say=lambda _: None, progress=_Quiet, batch_size=1000,
            concurrency=1,  # the in-process loader plans under one lock: threads would only wait
        )  # fmt: skip
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        orders = report.orders
        stats = admin.stats
        rows = {
            t: warehouse.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"]  # noqa: S608
            for t in ("orders", "order_line_items", "refunds", "products", "variants", "inventory_levels")
        }
        warehouse.close()
        return {
            "orders": orders,
            "events_published": report.published,
            "seconds": round(wall, 2),
            "process_cpu_seconds": round(cpu, 2),
            "orders_per_s": round(orders / wall, 1),
            "events_per_s": round(report.published / wall, 1),
            "api_calls": stats.calls,
            "requested_points": stats.requested_points,
            "actual_points": stats.actual_points,
            "throttled": stats.throttled,
            "retries": stats.retries,
            "paced_seconds": round(stats.paced_seconds, 2),
            "stages": {
                k: {
                    "objects": v.objects,
                    "bulk_s": round(v.bulk_seconds, 2),
                    "stream_s": round(v.stream_seconds, 2),
                }
                for k, v in report.stages.items()
            },
            "per_10k_orders": {
                "api_calls": _per_10k(stats.calls, orders),
                "requested_points": _per_10k(stats.requested_points, orders),
                "actual_points": _per_10k(stats.actual_points, orders),
            },
            "warehouse_rows": rows,
        }
    finally:
        standin.stop()


def bench_reconcile(sim: StoreSimulator, events: list[Any], folder: Path) -> dict[str, Any]:
    from tests.standin import differences, latest_state

    end = events[-1].occurred_at
    day_start = end - timedelta(days=1)
    standin = StandIn()
    standin.add_token(TOKEN, SHOP)
    standin.state.apply_all(events)
    standin.start()
    try:
        rnd = random.Random(5)
        lost = {e.webhook_id for e in events if rnd.random() < 0.05}
        truth = DuckDBWarehouse(folder / "truth.duckdb")
        lossy_wh = DuckDBWarehouse(folder / "reconcile.duckdb")
        everything, lossy = DirectLoader(truth, batch=5000), DirectLoader(lossy_wh, batch=5000)
        for event in events:
            _deliver(everything, event)
            if event.webhook_id not in lost:
                _deliver(lossy, event)
        everything.flush()
        lossy.flush()
        in_day = [e for e in events if e.occurred_at >= day_start]
        lost_in_day = sum(1 for e in in_day if e.webhook_id in lost)
        state = SyncState(LocalObjectStore(folder / "sync-reconcile"))
        state.set_watermark(SHOP, {"until": day_start.strftime("%Y-%m-%dT%H:%M:%SZ")})
        admin = ShopifyAdmin(SHOP, TOKEN, admin_url=standin.url)
        started = time.perf_counter()
        outcome = Reconciler(
            admin, lossy_wh, lossy, state, api_version="2025-10", overlap=timedelta(minutes=60), now=end
        ).run()
        wall = time.perf_counter() - started
        # Only the day's gaps can be repaired by a pass over that day: compare its orders.
        expected, got = latest_state(truth, SHOP), latest_state(lossy_wh, SHOP)
        day_orders = {
            key
            for key, values in expected["orders_latest"].items()
            if values[3] >= day_start  # updated_at
        }
        day_diff = [k for k in day_orders if expected["orders_latest"][k] != got["orders_latest"].get(k)]
        remaining = differences(expected, got)
        truth.close()
        lossy_wh.close()
        return {
            "window": [outcome.window_start, outcome.window_end],
            "events_in_day": len(in_day),
            "lost_in_day": lost_in_day,
            "seconds": round(wall, 2),
            "api_calls": admin.stats.calls,
            "requested_points": admin.stats.requested_points,
            "actual_points": admin.stats.actual_points,
            "throttled": admin.stats.throttled,
            "checked": outcome.checked,
            "published": outcome.published,
            "orders_of_the_day_still_different": len(day_diff),
            "older_gaps_left_for_older_windows": {k: v["counts"] for k, v in remaining.items()},
        }
    finally:
        standin.stop()


def run(quick: bool = False) -> dict[str, Any]:
    variants, days = (60, 45) if quick else (300, 90)
    sim = StoreSimulator(0, variants, START, shop_domain=SHOP, days=days)
    started = time.perf_counter()
    events = list(sim.events())
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="shopml-bench-backfill-") as tmp:
        folder = Path(tmp)
        results: dict[str, Any] = {
            "store": {
                "variants": variants,
                "days": days,
                "events": len(events),
                "generated_s": round(generated, 1),
            },
            "load_average": os.getloadavg(),
            "backfill": bench_backfill(sim, folder),
            "reconcile_day": bench_reconcile(sim, events, folder),
        }
    return results


def report(results: dict[str, Any]) -> str:
    b, r, s = results["backfill"], results["reconcile_day"], results["store"]
    per = b["per_10k_orders"]
    return "\n".join(
        [
            f"store: {s['variants']} variants x {s['days']} days, {s['events']:,} webhook events "
            f"(load average {results['load_average'][0]:.2f})",
            f"backfill: {b['orders']:,} orders ({b['events_published']:,} events) in {b['seconds']:.1f} s: "
            f"{b['orders_per_s']:,} orders/s, {b['events_per_s']:,} events/s into DuckDB "
            f"({b['process_cpu_seconds']:.1f} CPU-s); {b['api_calls']} API calls, "
            f"{b['requested_points']:,} points requested, {b['actual_points']:,} charged, "
            f"{b['throttled']} throttled, {b['paced_seconds']} s paced; "
            + ", ".join(
                f"{k}: {v['objects']:,} objects, bulk {v['bulk_s']} s + stream {v['stream_s']} s"
                for k, v in b["stages"].items()
            ),
            f"  per 10,000 orders: {per['api_calls']:,} calls, {per['requested_points']:,} points requested, "
            f"{per['actual_points']:,} charged",
            f"reconcile over the last day ({r['events_in_day']:,} events, {r['lost_in_day']} lost): "
            f"{r['seconds']:.1f} s, {r['api_calls']} calls, {r['requested_points']:,} points requested, "
            f"{r['actual_points']:,} charged, {r['throttled']} throttled; checked {r['checked']}; "
            f"published {r['published']}; orders of the day still different: "
            f"{r['orders_of_the_day_still_different']}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python bench/backfill_bench.py")
    parser.add_argument("--quick", action="store_true", help="60 variants x 45 days instead of 300 x 90")
    args = parser.parse_args()
    results = run(quick=args.quick)
    print(json.dumps(results, indent=2, default=str))
    print(report(results))


if __name__ == "__main__":
    main()
