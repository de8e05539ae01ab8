"""shopml backfill against the stand-in: bulk results re-assembled and converted so the
warehouse's latest state equals what the webhooks themselves would have loaded; resumable
after a kill; a re-run adds nothing; read_all_orders missing is refused with directions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devkit.backfill import BackfillReport, MissingAllOrdersScope, backfill
from devkit.direct_load import DirectLoader
from devkit.shopify_standin import StandIn
from devkit.simulator import StoreSimulator
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.object_stores import LocalObjectStore
from shared.adapters.shopify_admin import ShopifyAdmin
from shared.storesync.bulk import reassemble
from shared.storesync.convert import delivery_id, legacy_id, order_body
from shared.storesync.state import SyncState
from tests.standin import SHOP, TOKEN, differences, latest_state, simulated_stand_in

SINCE = datetime(2024, 10, 1, tzinfo=UTC)
NOW = datetime(2024, 12, 1, tzinfo=UTC)


class Quiet:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def update(self, count: int | None = None, advance: int = 0) -> None:
        pass

    def __enter__(self) -> Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Crash(BaseException):
    """A kill in the middle of a run (BaseException: nothing may catch it on the way out)."""


class CrashingLoader(DirectLoader):
    def __init__(self, *args: object, crash_after: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.crash_after = crash_after

    def publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:  # type: ignore[override]
        if self.published >= self.crash_after:
            raise Crash
        return super().publish(topic, data, attributes)


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[StandIn, StoreSimulator]]:
    server, sim = simulated_stand_in(n_variants=8, days=30)
    yield server, sim
    server.stop()


def run(
    standin: StandIn, warehouse: DuckDBWarehouse, state: SyncState, loader: DirectLoader, **kwargs: Any
) -> tuple[BackfillReport, ShopifyAdmin]:
    admin = ShopifyAdmin(SHOP, TOKEN, admin_url=standin.url)
    report = backfill(
        admin, loader, state, since=SINCE, api_version="2025-10", warehouse=warehouse, poll_interval=0.02,
        now=lambda: NOW, say=lambda _: None, progress=Quiet, batch_size=40, concurrency=1, **kwargs,
    )  # fmt: skip
    return report, admin


def webhooks_loaded(sim: StoreSimulator, path: Path) -> DuckDBWarehouse:
    """A warehouse that received every one of the store's webhooks."""
    warehouse = DuckDBWarehouse(path)
    loader = DirectLoader(warehouse, batch=2000)
    for event in sim.events():
        loader.publish("shopify-events", event.body, {
            "shopify_topic": event.topic, "shop_domain": event.shop_domain, "webhook_id": event.webhook_id,
            "api_version": event.api_version, "triggered_at": event.triggered_at, "source": "webhook",
        })  # fmt: skip
    loader.flush()
    return warehouse


def test_backfill_loads_what_the_webhooks_would_have(
    standin: tuple[StandIn, StoreSimulator], tmp_path: Path
) -> None:
    server, sim = standin
    truth = latest_state(webhooks_loaded(sim, tmp_path / "webhooks.duckdb"))
    warehouse = DuckDBWarehouse(tmp_path / "backfill.duckdb")
    loader = DirectLoader(warehouse)
    report, admin = run(server, warehouse, SyncState(LocalObjectStore(tmp_path / "sync")), loader)
    assert loader.rejected == 0 and loader.loaded == report.published
    assert report.orders == len(server.state.shops[SHOP].orders)
    backfilled = latest_state(warehouse)
    assert differences(truth, backfilled) == {}
    assert all(truth[view] for view in truth), "every view has rows to compare"
    sources = warehouse.query("SELECT DISTINCT source FROM raw_events")
    assert sources == [{"source": "backfill"}]
    assert admin.stats.throttled == 0


def test_a_killed_backfill_resumes_and_a_rerun_adds_nothing(
    standin: tuple[StandIn, StoreSimulator], tmp_path: Path
) -> None:
    server, _ = standin
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    state = SyncState(LocalObjectStore(tmp_path / "sync"))
    with pytest.raises(Crash):
        run(server, warehouse, state, CrashingLoader(warehouse, crash_after=150))
    record = state.backfill(SHOP)
    assert record is not None and not record["done"]
    orders = record["stages"]["orders"]
    assert orders["operation"] and orders["offset"] > 0, record
    operations_before = len(server.bulk.operations)
    loader = DirectLoader(warehouse)
    report, _ = run(server, warehouse, state, loader)
    assert report.stages["orders"].operation == orders["operation"]  # the same bulk operation
    assert report.stages["orders"].resumed_at == orders["offset"]
    assert len(server.bulk.operations) == operations_before + 1  # only inventory was still to run
    raw = warehouse.query("SELECT COUNT(*) AS n, COUNT(DISTINCT webhook_id) AS d FROM raw_events")[0]
    assert raw["n"] == raw["d"], "no version was loaded twice"
    again, _ = run(server, warehouse, state, DirectLoader(warehouse))
    assert again.already_complete
    restarted, _ = run(server, warehouse, state, DirectLoader(warehouse), restart=True)
    assert restarted.published == 0 and sum(s.skipped for s in restarted.stages.values()) > 0
    assert warehouse.query("SELECT COUNT(*) AS n FROM raw_events")[0]["n"] == raw["n"]


def test_without_read_all_orders_the_backfill_points_to_import_orders(
    standin: tuple[StandIn, StoreSimulator], tmp_path: Path
) -> None:
    server, _ = standin
    server.add_token("recent-only", SHOP, {"read_orders", "read_products", "read_inventory"})
    admin = ShopifyAdmin(SHOP, "recent-only", admin_url=server.url)
    operations = len(server.bulk.operations)
    with pytest.raises(MissingAllOrdersScope, match="read_all_orders") as refused:
        loader = DirectLoader(DuckDBWarehouse(tmp_path / "w.duckdb"))
        backfill(admin, loader, SyncState(LocalObjectStore(tmp_path)), since=SINCE, api_version="2025-10",
                 now=lambda: NOW, say=lambda _: None, progress=Quiet)  # fmt: skip
    assert "shopml import-orders" in str(refused.value) and "--format shopify" in str(refused.value)
    assert len(server.bulk.operations) == operations  # refused before any bulk query ran


def test_reassemble_groups_children_and_reports_offsets() -> None:
    lines = [
        {"id": "gid://shopify/Order/1"},
        {"id": "gid://shopify/LineItem/11", "__parentId": "gid://shopify/Order/1"},
        {"id": "gid://shopify/Order/2"},
        {"id": "gid://shopify/LineItem/21", "__parentId": "gid://shopify/Order/2"},
        {"id": "gid://shopify/LineItem/22", "__parentId": "gid://shopify/Order/2"},
    ]
    raw = [json.dumps(line).encode() + b"\n" for line in lines]
    offsets, total = [], 0
    for line in raw:
        total += len(line)
        offsets.append(total)
    groups = list(reassemble(zip(offsets, raw, strict=True)))
    assert [g.root["id"] for g in groups] == ["gid://shopify/Order/1", "gid://shopify/Order/2"]
    assert [len(g.of("LineItem")) for g in groups] == [1, 2]
    assert groups[0].end_offset == offsets[1] and groups[1].end_offset == offsets[-1]
    with pytest.raises(Exception, match="not grouped"):
        list(reassemble([(10, raw[1])]))


def test_conversion_details() -> None:
    assert legacy_id("gid://shopify/Order/5000004795213") == 5000004795213
    assert delivery_id("gid://shopify/Order/1", "2024-11-01T00:00:00Z") == delivery_id(
        "gid://shopify/Order/1", "2024-11-01T00:00:00Z"
    )
    assert delivery_id("gid://shopify/Order/1", "2024-11-01T00:00:00Z") != delivery_id(
        "gid://shopify/Order/1", "2024-11-01T00:00:01Z"
    )
    money = {"shopMoney": {"amount": "31.0", "currencyCode": "USD"}}
    body = order_body(
        {"id": "gid://shopify/Order/7", "name": "#1001", "createdAt": "2024-11-01T00:00:00Z",
         "updatedAt": "2024-11-02T00:00:00Z", "currencyCode": "USD", "totalPriceSet": money,
         "displayFinancialStatus": "PARTIALLY_REFUNDED", "tags": ["a", "b"]},
        [],
    )  # fmt: skip
    assert body["id"] == 7 and body["order_number"] == 1001 and body["total_price"] == "31.0"
    assert body["financial_status"] == "partially_refunded" and body["tags"] == "a, b"
    assert body["total_price_set"]["shop_money"] == {"amount": "31.0", "currency_code": "USD"}
