"""Store syncing on the local stack, the way the cloud runs it: ``backfill`` publishes to the
Pub/Sub emulator and ``validate_load`` loads; later changes the webhooks never delivered are
found by the ``reconcile`` function, triggered by a message on the ``reconcile`` topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devkit.backfill import backfill
from devkit.local.stack import LocalStack
from devkit.shopify_standin import serve_events
from devkit.simulator import StoreSimulator
from shared.adapters.object_stores import create_object_store
from shared.adapters.pubsub_group_commit import GroupCommitPublisher
from shared.adapters.shopify_admin import ShopifyAdmin
from shared.bootstrap import close_warehouse, create_warehouse
from shared.storesync.state import SyncState
from tests.conftest import SECRET
from tests.integration.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHOP = "stack-store.myshopify.com"
TOKEN = "shpat_stack"


def test_backfill_then_reconcile_through_the_stack(tmp_path: Path) -> None:
    sim = StoreSimulator(0, 4, datetime(2024, 11, 1).date(), shop_domain=SHOP, days=8)
    events = list(sim.events())
    cut = next(i for i, e in enumerate(events) if e.occurred_at >= datetime(2024, 11, 7, tzinfo=UTC))
    standin = serve_events(events[:cut], shop=SHOP, token=TOKEN)
    extra = {"SHOPML_SHOPIFY_ADMIN_URL": standin.url, "SHOPML_SHOPIFY_ACCESS_TOKENS": f"{SHOP}={TOKEN}"}
    try:
        with LocalStack(tmp_path / "stack", webhook_secrets=[SECRET], extra_env=extra) as info:
            assert "reconcile" in info.functions
            settings = info.settings()
            publisher = GroupCommitPublisher(settings)
            warehouse = create_warehouse(settings)
            state = SyncState(create_object_store(settings.sync_state_url))
            report = backfill(
                ShopifyAdmin(SHOP, TOKEN, admin_url=standin.url), publisher, state,
                since=datetime(2024, 11, 1, tzinfo=UTC), api_version=settings.shopify_api_version,
                warehouse=warehouse, poll_interval=0.05, say=lambda _: None,
            )  # fmt: skip

            def loaded() -> int:
                rows = warehouse.query(
                    "SELECT COUNT(*) AS n FROM raw_events WHERE shop_domain = @s", {"s": SHOP}
                )
                return int(rows[0]["n"])

            wait_for("the back-filled events loaded", lambda: loaded() >= report.published, 120, 0.5)
            assert loaded() == report.published
            before = warehouse.query("SELECT COUNT(*) AS n FROM orders_latest")[0]["n"]
            assert before == len(standin.state.shops[SHOP].orders)
            close_warehouse(warehouse)

            # Two more days happen in the store; none of their webhooks reaches shopml.
            standin.state.apply_all(events[cut:])
            truth = {o["legacyResourceId"]: o["updatedAt"] for o in standin.state.shops[SHOP].orders.values()}
            request = json.dumps({"shop": SHOP, "since": "2024-11-06T00:00:00Z"}).encode()
            publisher.publish("reconcile", request, {"source": "test"})

            def reconciled() -> bool:
                rows = warehouse.query(
                    "SELECT id, updated_at FROM orders_latest WHERE shop_domain = @s", {"s": SHOP}
                )
                held = {str(r["id"]): r["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ") for r in rows}
                return held == truth

            wait_for("reconcile to bring orders_latest to the store's state", reconciled, 180, 0.5)
            sources = {r["source"] for r in warehouse.query("SELECT DISTINCT source FROM raw_events")}
            assert sources == {"backfill", "reconcile"}
            # The function saves its watermark after its last publish: the loads it published
            # may land before that.
            wait_for("the reconcile watermark", lambda: state.watermark(SHOP) is not None, 60, 0.5)
            close_warehouse(warehouse)
            publisher.close()
    finally:
        standin.stop()
