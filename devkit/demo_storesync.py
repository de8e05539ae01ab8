"""The demo's store-sync and privacy stage (Step 6): a store connected, its history back-filled,
webhooks that never arrived found by ``reconcile``, and one customer redacted.

The store is a second simulated shop served by the Shopify stand-in (``devkit/shopify_standin``:
Shopify's Admin GraphQL API as documented, with cost throttling and bulk operations; Shopify
itself cannot run here). The stand-in starts before the stack, so every function gets its
address and token.

* ``shopml connect``'s work: webhook subscriptions created on the stand-in and the
  ``[webhooks]`` section of ``shopify.app.toml`` written; a second run changes nothing;
* ``shopml backfill``'s work: bulk operations → webhook-shaped bodies on ``shopify-events``
  (``source=backfill``) → ``validate_load``;
* two more days happen in the store; their webhooks are delivered to ``ingest_webhook``, one in
  twenty dropped on the way; a message on ``reconcile`` makes the function publish what is
  missing (``source=reconcile``) until the latest-state views equal the store
  (``reconciled_events``);
* a signed ``customers/redact`` webhook for one of the shop's customers: ``compliance`` erases
  them everywhere and writes ``privacy_audit`` (``redacted_rows``); no row holds their id after.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from devkit.demo import REPORT_DIR, say
from devkit.demo_serving import _query, _wait_for
from devkit.local.stack import LOCAL_WEBHOOK_SECRET, StackInfo

SHOP = "connect-demo.myshopify.com"
TOKEN = "shpat_demo_local"  # noqa: S105 - the stand-in's local token, not a secret
DAYS = 8
LIVE_DAYS = 2  # the last days: their webhooks go to ingest_webhook, some lost on the way
DROP_EVERY = 20  # one webhook in twenty never arrives


class StoreSync:
    """The simulated shop, its events and the stand-in serving the part that has happened."""

    def __init__(self, quick: bool) -> None:
        from devkit.shopify_standin import serve_events
        from devkit.simulator.events import StoreSimulator

        start = datetime.now(UTC).date() - timedelta(days=DAYS)
        self.start = start
        simulator = StoreSimulator(7, 4 if quick else 8, start, shop_domain=SHOP, days=DAYS)
        self.events = list(simulator.events())
        self.cut_at = datetime.combine(start + timedelta(days=DAYS - LIVE_DAYS), datetime.min.time(), UTC)
        self.cut = next(i for i, e in enumerate(self.events) if e.occurred_at >= self.cut_at)
        self.standin = serve_events(self.events[: self.cut], shop=SHOP, token=TOKEN)

    def env(self) -> dict[str, str]:
        return {
            "SHOPML_SHOPIFY_ADMIN_URL": self.standin.url,
            "SHOPML_SHOPIFY_ACCESS_TOKENS": f"{SHOP}={TOKEN}",
        }

    def stop(self) -> None:
        self.standin.stop()


def _connect(info: StackInfo, sync: StoreSync) -> dict[str, Any]:
    from devkit.connect import connect
    from shared.adapters.object_stores import create_object_store
    from shared.adapters.shopify_admin import ShopifyAdmin
    from shared.settings import COMPLIANCE_TOPICS
    from shared.storesync.state import SyncState
    from shared.storesync.subscriptions import Delivery

    settings = info.settings()
    admin = ShopifyAdmin(SHOP, TOKEN, admin_url=sync.standin.url)
    delivery = Delivery("https", info.url("ingest_webhook") + "/")
    state = SyncState(create_object_store(settings.sync_state_url))
    toml = REPORT_DIR / "shopify.app.toml"
    REPORT_DIR.mkdir(exist_ok=True)
    toml.unlink(missing_ok=True)
    first = connect(
        admin, delivery, settings.store_topics, COMPLIANCE_TOPICS, api_version=settings.shopify_api_version,
        app_toml=toml, state=state, say=lambda line: None,
    )  # fmt: skip
    second = connect(
        admin, delivery, settings.store_topics, COMPLIANCE_TOPICS, api_version=settings.shopify_api_version,
        app_toml=toml, state=state, say=lambda line: None,
    )  # fmt: skip
    created = sum(1 for c in first.changes if c.action == "create")
    say(
        f"connect {SHOP} (Shopify stand-in): {created} webhook subscriptions created, [webhooks] of "
        f"{toml.name} written; the second run changed {'something' if second.changed else 'nothing'}"
    )
    return {"subscriptions_created": created, "second_run_changed": second.changed, "app_toml": str(toml)}


def _backfill(info: StackInfo, sync: StoreSync) -> dict[str, Any]:
    from devkit.backfill import backfill
    from shared.adapters.object_stores import create_object_store
    from shared.adapters.pubsub_group_commit import GroupCommitPublisher
    from shared.adapters.shopify_admin import ShopifyAdmin
    from shared.bootstrap import close_warehouse, create_warehouse
    from shared.storesync.state import SyncState

    settings = info.settings()
    publisher = GroupCommitPublisher(settings)
    warehouse = create_warehouse(settings)
    started = time.monotonic()
    try:
        report = backfill(
            ShopifyAdmin(SHOP, TOKEN, admin_url=sync.standin.url), publisher,
            SyncState(create_object_store(settings.sync_state_url)),
            since=datetime.combine(sync.start, datetime.min.time(), UTC),
            api_version=settings.shopify_api_version,
            warehouse=warehouse, poll_interval=0.05, say=lambda line: None,
        )  # fmt: skip
    finally:
        close_warehouse(warehouse)
        publisher.close()

    def loaded() -> int:
        rows = _query(info, "SELECT COUNT(*) AS n FROM raw_events WHERE shop_domain = @s", {"s": SHOP})
        return int(rows[0]["n"]) if int(rows[0]["n"]) >= report.published else 0

    _wait_for("the back-filled events in the warehouse", loaded, 180, interval_s=0.5)
    orders = _query(info, "SELECT COUNT(*) AS n FROM orders_latest WHERE shop_domain = @s", {"s": SHOP})[0][
        "n"
    ]
    seconds = time.monotonic() - started
    say(
        f"backfill {SHOP}: {report.published} webhook-shaped events from bulk operations published "
        f"(source=backfill) and loaded in {seconds:.1f} s; orders_latest holds {orders} orders"
    )
    return {"published": report.published, "orders": int(orders), "seconds": round(seconds, 1)}


def _truth(sync: StoreSync) -> dict[str, str]:
    return {o["legacyResourceId"]: o["updatedAt"] for o in sync.standin.state.shops[SHOP].orders.values()}


def _held(info: StackInfo) -> dict[str, str]:
    rows = _query(info, "SELECT id, updated_at FROM orders_latest WHERE shop_domain = @s", {"s": SHOP})
    return {str(r["id"]): r["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ") for r in rows}


def _reconcile(info: StackInfo, sync: StoreSync) -> dict[str, Any]:
    from devkit.simulator.sender import send_webhooks
    from shared.adapters.pubsub import admin_clients

    later = sync.events[sync.cut :]
    sync.standin.state.apply_all(later)  # the store's truth moves on
    delivered = [e for i, e in enumerate(later) if i % DROP_EVERY != DROP_EVERY - 1]
    dropped = len(later) - len(delivered)
    sent = send_webhooks(
        delivered, info.url("ingest_webhook") + "/", LOCAL_WEBHOOK_SECRET, duplicate_rate=0.0, concurrency=4
    )
    ids = {e.webhook_id for e in delivered}

    def arrived() -> bool:
        rows = _query(info, "SELECT DISTINCT webhook_id FROM raw_events WHERE shop_domain = @s", {"s": SHOP})
        return ids <= {r["webhook_id"] for r in rows}

    _wait_for("the delivered webhooks in the warehouse", arrived, 180, interval_s=0.5)
    truth = _truth(sync)
    missing_before = sum(1 for order, at in truth.items() if _held(info).get(order) != at)
    settings = info.settings()
    publisher, _ = admin_clients(settings)
    started = time.monotonic()
    request = {"shop": SHOP, "since": (sync.cut_at - timedelta(hours=1)).isoformat()}
    publisher.publish(settings.topic_path("reconcile"), json.dumps(request).encode()).result(timeout=10)
    publisher.stop()
    _wait_for("reconcile bringing orders_latest to the store's state", lambda: _held(info) == truth, 180, 0.5)
    seconds = time.monotonic() - started
    reconciled = _query(
        info,
        "SELECT COUNT(DISTINCT webhook_id) AS n FROM raw_events "
        "WHERE shop_domain = @s AND source = 'reconcile'",
        {"s": SHOP},
    )[0]["n"]
    say(
        f"{len(later)} more events in the store; {sent.sent} webhooks delivered, {dropped} lost on the way "
        f"({missing_before} orders behind); reconcile published {reconciled} events in {seconds:.1f} s and "
        f"orders_latest equals the store's {len(truth)} orders"
    )
    return {
        "store_events": len(later),
        "webhooks_dropped": dropped,
        "orders_behind_before": missing_before,
        "reconciled_events": int(reconciled),
        "seconds": round(seconds, 1),
    }


def _redact(info: StackInfo) -> dict[str, Any]:
    from devkit.simulator.events import EventFactory
    from devkit.simulator.sender import send_webhooks

    rows = _query(
        info,
        "SELECT customer_id, COUNT(*) AS n FROM orders_latest "
        "WHERE shop_domain = @s AND customer_id IS NOT NULL "
        "GROUP BY customer_id ORDER BY n DESC, customer_id LIMIT 1",
        {"s": SHOP},
    )
    customer_id = int(rows[0]["customer_id"])
    orders = [
        int(r["id"])
        for r in _query(
            info,
            "SELECT id FROM orders_latest WHERE shop_domain = @s AND customer_id = @c",
            {"s": SHOP, "c": customer_id},
        )
    ]
    event = EventFactory(SHOP, "2025-07", seed=11).make(
        "customers/redact",
        {
            "shop_id": 1,
            "shop_domain": SHOP,
            "customer": {"id": customer_id, "email": None, "phone": None},
            "orders_to_redact": orders,
        },
        datetime.now(UTC),
    )
    send_webhooks([event], info.url("ingest_webhook") + "/", LOCAL_WEBHOOK_SECRET, duplicate_rate=0.0)

    def audited() -> list[dict[str, Any]]:
        return _query(
            info,
            "SELECT status, total_rows FROM privacy_audit WHERE shop_domain = @s "
            "AND shopify_topic = 'customers/redact' AND status = 'completed'",
            {"s": SHOP},
        )

    done, _ = _wait_for("the customers/redact audit row", audited, 120, interval_s=0.5)
    left = _query(
        info,
        "SELECT COUNT(*) AS n FROM orders WHERE shop_domain = @s AND customer_id = @c",
        {"s": SHOP, "c": customer_id},
    )[0]["n"]
    redacted = int(done[0]["total_rows"] or 0)
    say(
        f"customers/redact for one customer of {SHOP} ({len(orders)} orders): compliance redacted "
        f"{redacted} rows, privacy_audit says completed; order rows still naming the customer: {left}"
    )
    return {
        "redacted_rows": redacted,
        "orders_of_customer": len(orders),
        "rows_still_naming_customer": int(left),
    }


def stage_store_sync(info: StackInfo, sync: StoreSync) -> dict[str, Any]:
    out: dict[str, Any] = {"store_sync": {"shop": SHOP, "window": [str(sync.start), str(date.today())]}}
    out["store_sync"]["connect"] = _connect(info, sync)
    out["store_sync"]["backfill"] = _backfill(info, sync)
    reconciled = _reconcile(info, sync)
    out["store_sync"]["reconcile"] = reconciled
    out["reconciled_events"] = reconciled["reconciled_events"]
    redaction = _redact(info)
    out["privacy"] = redaction
    out["redacted_rows"] = redaction["redacted_rows"]
    return out
