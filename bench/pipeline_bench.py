"""Step 2 benchmark: end to end on the local stack, webhook POST → row visible in the warehouse.

Open-loop signed webhooks at a fixed rate for a fixed time into ingest_webhook. Polling the
warehouse while it loads would compete for DuckDB's single-process file lock and the
generator's CPU, so the clock is read from the rows themselves afterwards: latency =
``loaded_at`` (stamped by the loader just before its commit) − ``received_at`` (stamped by
ingest_webhook on arrival), plus the POST's own latency, which open_loop measures. The commit
of a batch adds its write time (tens of ms; the loader logs it). Run for the push path
(validate_load per message, as in the cloud) and the pull batching path, in the same run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from bench.loadgen import open_loop
from devkit.local.stack import LOCAL_WEBHOOK_SECRET, LocalStack
from devkit.simulator.events import StoreSimulator, WebhookEvent, headers


def event_stream(n: int) -> Iterator[WebhookEvent]:
    """At least ``n`` Shopify-shaped events (orders, refunds, products, inventory)."""
    produced = 0
    seed = 0
    while produced < n:
        for event in StoreSimulator(seed=seed, n_variants=200, start=date(2024, 1, 1), days=30).events():
            yield event
            produced += 1
            if produced >= n:
                return
        seed += 1


def run_mode(mode: str, rate: float, seconds: float, drain_timeout_s: float = 120.0) -> dict[str, Any]:
    from shared.bootstrap import create_warehouse

    home = Path(tempfile.mkdtemp(prefix=f"shopml-pipeline-{mode}-"))
    events = list(event_stream(int(rate * seconds)))
    with LocalStack(home, load_mode=mode) as info:
        warehouse = create_warehouse(info.settings())
        warehouse.ensure_schema()
        url = info.url("ingest_webhook") + "/"

        def make(index: int) -> tuple[bytes, dict[str, str]]:
            return events[index].body, headers(events[index], LOCAL_WEBHOOK_SECRET)

        load = open_loop(url, rate, seconds, make, workers=32)
        accepted = set(load.ok_ids)
        sent_done = time.perf_counter()
        visible = 0
        while time.perf_counter() - sent_done < drain_timeout_s:
            visible = warehouse.query("SELECT COUNT(DISTINCT webhook_id) AS n FROM raw_events")[0]["n"]
            if visible >= len(accepted):
                break
            time.sleep(2)
        drained_after = time.perf_counter() - sent_done
        rows = warehouse.query(
            "SELECT webhook_id, MIN(received_at) AS received_at, MIN(loaded_at) AS loaded_at "
            "FROM raw_events GROUP BY webhook_id"
        )
    by_id = {r["webhook_id"]: r for r in rows}
    latencies = sorted(
        (by_id[i]["loaded_at"] - by_id[i]["received_at"]).total_seconds() * 1000
        for i in accepted
        if i in by_id
    )
    loaded_times = sorted(by_id[i]["loaded_at"] for i in accepted if i in by_id)
    span = (loaded_times[-1] - loaded_times[0]).total_seconds() if len(loaded_times) > 1 else 0.0

    def pct(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None

    return {
        "mode": mode,
        "target_rate": rate,
        "seconds": seconds,
        "sent": len(events),
        "accepted_200": len(accepted),
        "ingest_non_200": load.requests - load.statuses.get(200, 0),
        "ingest_p99_ms": round(load.percentile(99), 1),
        "visible": len(accepted & by_id.keys()),
        "not_visible_after_drain": len(accepted - by_id.keys()),
        "throughput_events_per_s": round(len(loaded_times) / span, 1) if span else 0.0,
        "ingest_rate_achieved": round(load.achieved_rate, 1),
        "drain_seconds_after_sending": round(drained_after, 1),
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
        "mean_latency_ms": round(statistics.fmean(latencies), 1) if latencies else None,
    }


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 15.0 if quick else 60.0
    rate = float(os.environ.get("SHOPML_BENCH_RATE", "300"))
    results: dict[str, Any] = {"modes": {}}
    for mode in ("pull", "push"):
        results["modes"][mode] = run_mode(mode, rate, seconds if mode == "pull" else min(seconds, 20.0))
    pull = results["modes"]["pull"]
    results["targets"] = {
        "pull_300_per_s_sustained": pull["throughput_events_per_s"] >= 0.97 * rate
        and pull["drain_seconds_after_sending"] < 5,
        "pull_zero_loss": pull["not_visible_after_drain"] == 0 and pull["ingest_non_200"] == 0,
        "pull_p99_under_2s": (pull["latency_ms"]["p99"] or 1e9) < 2000,
    }
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        "| path | rate × s | accepted | visible | not visible | events/s | drain s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in results["modes"].items():
        lat = r["latency_ms"]
        cells = [
            mode,
            f"{r['target_rate']:.0f} × {r['seconds']:.0f}",
            r["accepted_200"],
            r["visible"],
            r["not_visible_after_drain"],
            r["throughput_events_per_s"],
            r["drain_seconds_after_sending"],
            lat["p50"],
            lat["p99"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append(f"targets: {results['targets']}")
    return "\n".join(lines)
