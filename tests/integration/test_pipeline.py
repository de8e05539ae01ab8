"""Step 2 end to end: signed webhooks → ingest_webhook → Pub/Sub emulator → push →
validate_load → DuckDB. Every event ends up typed or quarantined, counts reconcile exactly,
and the latest-state views survive duplicates and out-of-order delivery."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from devkit.local.stack import LocalStack, StackInfo
from devkit.simulator.events import EventFactory, StoreSimulator, WebhookEvent
from devkit.simulator.retail import retail_events
from devkit.simulator.sender import send_webhooks
from shared.bootstrap import create_warehouse
from tests.conftest import SECRET

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TYPED_TABLES = (
    "orders",
    "order_line_items",
    "refunds",
    "products",
    "variants",
    "inventory_levels",
    "customers",
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with LocalStack(tmp_path_factory.mktemp("pipeline"), webhook_secrets=[SECRET]) as info:
        assert {"ingest_webhook", "validate_load"} <= set(info.functions)
        yield info


def query(info: StackInfo, sql: str, **params: Any) -> list[dict[str, Any]]:
    return create_warehouse(info.settings()).query(sql, params or None)


def wait_for_raw(info: StackInfo, webhook_ids: set[str], timeout_s: float = 180) -> set[str]:
    """Poll until every webhook id has a raw landing row; return those that have."""
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while time.monotonic() < deadline:
        rows = query(
            info,
            "SELECT DISTINCT webhook_id FROM raw_events WHERE webhook_id IN UNNEST(@ids)",
            ids=sorted(webhook_ids),
        )
        seen = {r["webhook_id"] for r in rows}
        if seen >= webhook_ids:
            return seen
        time.sleep(1)
    return seen


def send(info: StackInfo, events: list[WebhookEvent], duplicate_rate: float = 0.0, seed: int = 0) -> None:
    report = send_webhooks(
        events,
        info.url("ingest_webhook") + "/",
        SECRET,
        duplicate_rate=duplicate_rate,
        concurrency=8,
        seed=seed,
    )
    assert report.accepted == report.sent == len(events), report.to_dict()


def test_store_stream_and_retail_sample_land_with_zero_loss(pipeline: StackInfo) -> None:
    store = list(StoreSimulator(seed=11, n_variants=25, start=date(2024, 3, 1), days=21).events())
    retail = list(retail_events())
    events = store + retail
    send(pipeline, events, duplicate_rate=0.03, seed=5)
    ids = {e.webhook_id for e in events}
    assert wait_for_raw(pipeline, ids) == ids  # nothing lost

    status = query(
        pipeline,
        "SELECT webhook_id, ANY_VALUE(status) AS status, COUNT(DISTINCT status) AS n "
        "FROM raw_events WHERE webhook_id IN UNNEST(@ids) GROUP BY webhook_id",
        ids=sorted(ids),
    )
    assert all(r["n"] == 1 for r in status)  # an event is loaded or rejected, never both
    loaded = {r["webhook_id"] for r in status if r["status"] == "loaded"}
    rejected = {r["webhook_id"] for r in status if r["status"] == "rejected"}
    assert loaded | rejected == ids and not loaded & rejected
    quarantined = {
        r["webhook_id"] for r in query(pipeline, "SELECT DISTINCT webhook_id FROM rejected_events")
    }
    assert rejected <= quarantined
    for table in TYPED_TABLES:
        typed = {r["webhook_id"] for r in query(pipeline, f"SELECT DISTINCT webhook_id FROM {table}")}  # noqa: S608
        assert not typed & quarantined, f"quarantined events in {table}"

    # The real sample: 1,807 invoices → 1,807 orders, 5,000 line items, exactly once each.
    retail_shop = retail[0].shop_domain
    [orders] = query(
        pipeline, "SELECT COUNT(*) AS n FROM orders_latest WHERE shop_domain = @shop", shop=retail_shop
    )
    [items] = query(
        pipeline,
        "SELECT COUNT(*) AS n, SUM(quantity) AS units FROM order_line_items_latest WHERE shop_domain = @shop",
        shop=retail_shop,
    )
    assert orders["n"] == 1807
    assert items["n"] == 5000
    expected_units = sum(li["quantity"] for e in retail for li in json.loads(e.body)["line_items"])
    assert items["units"] == expected_units

    # The simulated store: one latest row per order id sent, with the newest updated_at.
    newest: dict[int, str] = {}
    for event in store:
        if event.topic.startswith("orders/"):
            body = json.loads(event.body)
            newest[body["id"]] = max(newest.get(body["id"], ""), body["updated_at"])
    latest = query(
        pipeline,
        "SELECT id, updated_at FROM orders_latest WHERE shop_domain = @shop",
        shop=store[0].shop_domain,
    )
    assert {r["id"] for r in latest} == set(newest)


def _order_versions(base: dict[str, Any], factory: EventFactory, n: int) -> list[WebhookEvent]:
    created = datetime(2024, 5, 1, 9, tzinfo=UTC)
    events = []
    for version in range(n):
        updated = created + timedelta(minutes=10 * version)
        body = dict(
            base,
            updated_at=updated.isoformat(),
            tags=f"version {version}",
            financial_status="paid" if version else "pending",
        )
        if version == n - 1:
            body["line_items"] = base["line_items"][:1]  # the newest version dropped a line
        topic = "orders/create" if version == 0 else "orders/updated"
        events.append(factory.make(topic, body, updated))
    return events


def test_duplicates_and_shuffled_delivery_yield_the_newest_state(pipeline: StackInfo) -> None:
    template = next(
        e for e in StoreSimulator(seed=3, n_variants=10, days=7).events() if e.topic == "orders/create"
    )
    base = json.loads(template.body)
    assert len(base["line_items"]) >= 1
    base["line_items"] = base["line_items"] + [
        dict(base["line_items"][0], id=base["line_items"][0]["id"] + 1)
    ]
    base["id"] = 9_100_000_000_001
    factory = EventFactory("shuffle-store.myshopify.com", "2025-07", seed=9)
    versions = _order_versions(base, factory, 6)
    burst = versions + [versions[2]] * 3 + [versions[-1]] * 2  # duplicate deliveries, same webhook id
    random.Random(4).shuffle(burst)
    for event in burst:  # one at a time, in the shuffled order
        send(pipeline, [event])
    wait_for_raw(pipeline, {e.webhook_id for e in versions})
    rows = query(
        pipeline,
        "SELECT tags, financial_status FROM orders_latest WHERE shop_domain = @s AND id = @id",
        s="shuffle-store.myshopify.com",
        id=base["id"],
    )
    assert rows == [{"tags": "version 5", "financial_status": "paid"}]
    items = query(
        pipeline,
        "SELECT id FROM order_line_items_latest WHERE shop_domain = @s AND order_id = @id",
        s="shuffle-store.myshopify.com",
        id=base["id"],
    )
    assert [r["id"] for r in items] == [base["line_items"][0]["id"]]


def test_bad_events_are_quarantined_with_reasons_and_never_typed(pipeline: StackInfo) -> None:
    factory = EventFactory("bad-store.myshopify.com", "2025-07", seed=13)
    at = datetime(2024, 6, 1, tzinfo=UTC)
    good = json.loads(
        next(
            e for e in StoreSimulator(seed=5, n_variants=5, days=5).events() if e.topic == "orders/create"
        ).body
    )
    wrong_type = factory.make("orders/create", dict(good, id=9_200_000_000_001, total_price="lots"), at)
    missing = factory.make(
        "orders/create", {k: v for k, v in good.items() if k != "line_items"} | {"id": 9_200_000_000_002}, at
    )
    not_json = replace(factory.make("orders/create", {"id": 1}, at), body=b"{not json")
    extra_field = factory.make(
        "orders/create", dict(good, id=9_200_000_000_003, brand_new_field={"x": 1}), at
    )
    send(pipeline, [wrong_type, missing, not_json, extra_field])
    ids = {e.webhook_id for e in (wrong_type, missing, not_json, extra_field)}
    assert wait_for_raw(pipeline, ids) == ids
    rejected = {
        r["webhook_id"]: r
        for r in query(
            pipeline, "SELECT * FROM rejected_events WHERE shop_domain = @s", s="bad-store.myshopify.com"
        )
    }
    assert set(rejected) == {wrong_type.webhook_id, missing.webhook_id, not_json.webhook_id}
    assert any(r["path"] == "total_price" for r in rejected[wrong_type.webhook_id]["reasons"])
    assert any("line_items" in r["path"] for r in rejected[missing.webhook_id]["reasons"])
    assert rejected[not_json.webhook_id]["body"] == "{not json"  # the raw payload kept
    typed = query(pipeline, "SELECT id FROM orders WHERE shop_domain = @s", s="bad-store.myshopify.com")
    assert [r["id"] for r in typed] == [9_200_000_000_003]  # an unknown extra field is not fatal
    drift = query(
        pipeline, "SELECT field_path FROM schema_drift WHERE webhook_id = @w", w=extra_field.webhook_id
    )
    assert any("brand_new_field" in r["field_path"] for r in drift)


def test_pull_batching_path_loads_the_same_events(tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = list(retail_events())[:400]
    with LocalStack(tmp_path, webhook_secrets=[SECRET], load_mode="pull") as info:
        assert "validate_load" not in info.functions and "pull-loader" in info.pids
        send(info, events, duplicate_rate=0.05, seed=2)
        ids = {e.webhook_id for e in events}
        assert wait_for_raw(info, ids, timeout_s=60) == ids
        [orders] = query(info, "SELECT COUNT(*) AS n FROM orders_latest")
        assert orders["n"] == 400


@pytest.mark.parametrize("mode", ["push", "pull"])
def test_a_warehouse_that_keeps_failing_dead_letters_after_the_configured_attempts(  # type: ignore[no-untyped-def]
    tmp_path, mode: str
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the warehouse's folder should be")
    from tests.integration.conftest import Tap

    stack = LocalStack(
        tmp_path / "home",
        webhook_secrets=[SECRET],
        load_mode=mode,
        retry_backoff_seconds=(1, 2),
        extra_env={"SHOPML_WAREHOUSE": f"duckdb:///{blocker}/warehouse.duckdb"},
    )
    with stack as info:
        dlq = Tap(info, "shopify-events-dlq")
        event = retail_events().__next__()
        send(info, [event])
        [dead] = dlq.pull(until=1, timeout_s=90)
        dlq.close()
    assert dead.attributes["webhook_id"] == event.webhook_id
    assert dead.data == event.body
    assert dead.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"  # topology: 5 attempts
