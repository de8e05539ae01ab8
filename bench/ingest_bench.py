"""Step 1 benchmark: ingest_webhook throughput, latency and cold start vs a bare endpoint.

Both served the way Cloud Functions serves them (functions-framework → gunicorn gthread, one
worker), against the real Pub/Sub emulator, in the same run, alternating, repeated; medians.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.loadgen import LoadResult, open_loop, wrk_saturate
from devkit.local.processes import (
    free_port,
    functions_framework_argv,
    http_answers,
    start_process,
    stop_processes,
    wait_until,
)
from devkit.local.stack import LocalStack
from shared.settings import REPO_ROOT
from shared.webhooks import sign_webhook

SECRET = "bench-secret"


def sample_order() -> bytes:
    """A representative orders/create body (5 line items, ~3 KB)."""
    items = [
        {
            "id": 866550311766439020 + i,
            "admin_graphql_api_id": f"gid://shopify/LineItem/{866550311766439020 + i}",
            "variant_id": 40000000000000 + i,
            "product_id": 7000000000000 + i,
            "sku": f"SKU-{i:04d}",
            "title": f"Product {i}",
            "variant_title": "Default",
            "quantity": i + 1,
            "price": f"{9.99 + i:.2f}",
            "price_set": {
                "shop_money": {"amount": f"{9.99 + i:.2f}", "currency_code": "GBP"},
                "presentment_money": {"amount": f"{9.99 + i:.2f}", "currency_code": "GBP"},
            },
            "total_discount": "0.00",
            "taxable": True,
            "requires_shipping": True,
            "vendor": "shopml",
        }
        for i in range(5)
    ]
    order = {
        "id": 5512345678901,
        "admin_graphql_api_id": "gid://shopify/Order/5512345678901",
        "name": "#1042",
        "order_number": 1042,
        "created_at": "2025-03-01T10:15:00+00:00",
        "updated_at": "2025-03-01T10:15:02+00:00",
        "currency": "GBP",
        "total_price": "74.95",
        "subtotal_price": "74.95",
        "total_tax": "0.00",
        "financial_status": "paid",
        "customer": {"id": 6012345678901, "email": "buyer@example.com"},
        "line_items": items,
    }
    return json.dumps(order).encode()


def headers_for(body: bytes, webhook_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign_webhook(body, SECRET),
        "X-Shopify-Shop-Domain": "bench-store.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-API-Version": "2025-07",
        "X-Shopify-Triggered-At": "2025-03-01T10:15:02Z",
    }


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (Linux /proc)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: process group
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _start_function(name: str, source: Path, env: dict[str, str], home: Path) -> tuple[int, str]:
    port = free_port()
    argv = functions_framework_argv(source, name, port)
    proc = start_process(f"{name}-{port}", argv, env, home / "logs", REPO_ROOT)
    url = f"http://127.0.0.1:{port}/"
    wait_until(proc, http_answers(url), 30, name)
    return proc.pid, url


def cold_start(name: str, source: Path, env: dict[str, str], home: Path, body: bytes) -> float:
    """Seconds from process start to the first answered (200) webhook."""
    port = free_port()
    argv = functions_framework_argv(source, name, port)
    started = time.perf_counter()
    proc = start_process(f"cold-{name}-{port}", argv, env, home / "logs", REPO_ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        while time.perf_counter() - started < 30:
            request = urllib.request.Request(url, data=body, headers=headers_for(body, str(uuid.uuid4())))
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.005)
        raise RuntimeError(f"{name} never answered 200")
    finally:
        stop_processes([proc.pid], None)


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 1 if quick else 3
    open_s = 5.0 if quick else 15.0
    wrk_s = 5 if quick else 10
    body = sample_order()
    home = Path(tempfile.mkdtemp(prefix="shopml-bench-"))
    stack = LocalStack(home, functions=["ingest_webhook"], webhook_secrets=[SECRET])
    info = stack.up()
    results: dict[str, Any] = {
        "body_bytes": len(body),
        "repeats": repeats,
        "open_loop_seconds": open_s,
        "wrk_seconds": wrk_s,
    }
    try:
        from shared.adapters.pubsub import admin_clients

        settings = info.settings()
        _, subscriber = admin_clients(settings)
        tap = settings.subscription_path("bench-tap")
        subscriber.create_subscription(name=tap, topic=settings.topic_path("shopify-events"))
        env = {**__import__("os").environ, **info.env}
        bare_pid, bare_url = _start_function("bare", REPO_ROOT / "bench/bare_endpoint/main.py", env, home)
        targets = {"ingest_webhook": info.url("ingest_webhook") + "/", "bare": bare_url}
        pids = {"ingest_webhook": info.pids["ingest_webhook"], "bare": bare_pid}
        cpu_us: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
        accepted = 0

        def make(index: int) -> tuple[bytes, dict[str, str]]:
            return body, headers_for(body, f"open-{uuid.uuid4()}")

        for url in targets.values():  # warm-up: first publish opens the gRPC channel
            open_loop(url, 100, 2.0, make)
        runs: dict[str, dict[str, list[LoadResult]]] = {t: {} for t in targets}
        for _ in range(repeats):
            for rate in (50, 200):
                for name, url in targets.items():
                    result = open_loop(url, rate, open_s, make)
                    runs[name].setdefault(str(rate), []).append(result)
                    if name == "ingest_webhook":
                        accepted += result.statuses.get(200, 0)
            for name, url in targets.items():
                groups = {"function": pids[name], "pubsub-emulator": info.pids["pubsub-emulator"]}
                before = {k: group_cpu_seconds(v) for k, v in groups.items()}
                result = wrk_saturate(url, body, headers_for(body, "wrk"), duration_s=wrk_s)
                for k, v in groups.items():
                    used = group_cpu_seconds(v) - before[k]
                    cpu_us[name].setdefault(k, []).append(used / max(result.requests, 1) * 1e6)
                runs[name].setdefault("saturating", []).append(result)
                if name == "ingest_webhook":
                    accepted += result.statuses.get(200, 0)

        def median(values: list[float]) -> float:
            return round(statistics.median(values), 2)

        table: dict[str, Any] = {}
        for target, by_rate in runs.items():
            table[target] = {}
            for load, rs in by_rate.items():
                table[target][load] = {
                    "achieved_rate": median([r.achieved_rate for r in rs]),
                    "p50_ms": median([r.percentile(50) for r in rs]),
                    "p99_ms": median([r.percentile(99) for r in rs]),
                    "non_200": sum(r.requests - r.statuses.get(200, 0) for r in rs),
                    "errors": sum(r.errors for r in rs),
                    "runs": [r.summary() for r in rs],
                }
        results["load"] = table
        results["cpu_us_per_request_at_saturation"] = {
            name: {part: median(values) for part, values in parts.items()} for name, parts in cpu_us.items()
        }
        sat_ingest = table["ingest_webhook"]["saturating"]["achieved_rate"]
        sat_bare = table["bare"]["saturating"]["achieved_rate"]
        results["saturation_ratio"] = round(sat_ingest / sat_bare, 3) if sat_bare else None

        # Loss: every 200 must be a message on shopify-events. Open-loop runs know each
        # accepted webhook id; wrk runs only count, and may publish a few requests that were
        # still in flight when wrk stopped (counted by wrk as neither).
        from shared.adapters.pubsub import drain_subscription

        messages = drain_subscription(subscriber, tap, idle_rounds=3)
        delivered = len(messages)
        seen_ids = {m.attributes["webhook_id"] for m in messages}
        subscriber.close()
        open_ids = {i for rs in runs["ingest_webhook"].values() for r in rs for i in r.ok_ids}
        wrk_ok = sum(r.statuses.get(200, 0) for r in runs["ingest_webhook"]["saturating"])
        wrk_seen = sum(1 for i in seen_ids if i.startswith("bench-"))
        results["loss"] = {
            "accepted_200": accepted,
            "messages_on_topic": delivered,
            "open_loop_accepted_missing": len(open_ids - seen_ids),
            "wrk_accepted_minus_seen": max(0, wrk_ok - wrk_seen),
            "lost": len(open_ids - seen_ids) + max(0, wrk_ok - wrk_seen),
        }

        stop_processes([bare_pid], None)
        cold = {
            "ingest_webhook": [
                cold_start("ingest_webhook", REPO_ROOT / "functions/ingest_webhook/main.py", env, home, body)
                for _ in range(3 if quick else 5)
            ],
            "bare": [
                cold_start("bare", REPO_ROOT / "bench/bare_endpoint/main.py", env, home, body)
                for _ in range(3 if quick else 5)
            ],
        }
        results["cold_start_s"] = {
            k: {"median": median(v), "runs": [round(x, 3) for x in v]} for k, v in cold.items()
        }
        p99_200 = table["ingest_webhook"]["200"]["p99_ms"]
        results["targets"] = {
            "p99_at_200_under_25ms": p99_200 < 25,
            "saturation_at_least_60pct_of_bare": (results["saturation_ratio"] or 0) >= 0.6,
            "cold_start_under_1_5s": results["cold_start_s"]["ingest_webhook"]["median"] < 1.5,
            "zero_loss": results["loss"]["lost"] == 0,
        }
    finally:
        stack.down()
    return results


def report(results: dict[str, Any]) -> str:
    lines = ["| endpoint | load | achieved req/s | p50 ms | p99 ms | non-200 |", "|---|---|---|---|---|---|"]
    for name, by_rate in results["load"].items():
        for rate, row in by_rate.items():
            label = f"{rate} req/s open loop" if rate != "saturating" else "saturating (wrk -t2 -c16)"
            lines.append(
                f"| {name} | {label} | {row['achieved_rate']} | {row['p50_ms']} | {row['p99_ms']} "
                f"| {row['non_200']} |"
            )
    lines.append("")
    lines.append(f"saturation ratio ingest/bare: {results['saturation_ratio']}")
    lines.append(f"CPU µs per request at saturation: {results['cpu_us_per_request_at_saturation']}")
    lines.append(
        f"cold start (s, median): {json.dumps({k: v['median'] for k, v in results['cold_start_s'].items()})}"
    )
    lines.append(f"loss: {results['loss']}")
    lines.append(f"targets: {results['targets']}")
    return "\n".join(lines)
