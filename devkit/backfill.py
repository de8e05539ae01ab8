"""``shopml backfill``: a shop's history through bulk operations, onto ``shopify-events``.

Three stages, each one bulk query (``bulkOperationRunQuery``, polled with ``node(id)`` until
``COMPLETED``, its JSONL streamed and re-assembled, ``shared.storesync.bulk``):

* ``products``: every product with its variants (``products/create`` or ``products/update``);
* ``orders``: every order created in the window with its line items (``orders/create`` or
  ``orders/updated``), and each order's refunds, fetched by id in small ``nodes(ids:)`` calls
  (a bulk query may not nest the refunds' line-item connection inside the ``refunds`` list)
  (``refunds/create``);
* ``inventory``: every inventory level of every location (``inventory_levels/update``).

Objects are converted to webhook bodies (``shared.storesync.convert``) with deterministic
delivery ids and published with ``source=backfill`` (skipping versions ``raw_events`` already
holds), so validation and load treat them as webhooks and a re-run adds nothing.

Resumable: the sync state (``backfill/<shop>.json``) records each stage's bulk operation and
the byte offset up to which its objects were published, after every batch. After a crash the
same command polls the same operation (or starts it if it never started) and resumes the
download at that offset; at most one batch is published again, and those versions are
skipped as already loaded. A finished backfill is not repeated unless ``restart`` is set.

Orders older than 60 days need the ``read_all_orders`` scope; without it the command says so
before starting and points to ``shopml import-orders`` with the store's order export.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devkit.progress import Progress
from shared.adapters.shopify_admin import AdminApiError, ShopifyAdmin
from shared.errors import PermanentError, TransientError
from shared.ports import EventPublisher, Warehouse
from shared.storesync import queries
from shared.storesync.bulk import Assembled, reassemble
from shared.storesync.convert import (
    StoreEvent,
    inventory_event,
    order_event,
    product_event,
    refund_event,
)
from shared.storesync.publish import PublishCounts, has_synced_rows, publish_events
from shared.storesync.state import SyncState

STAGES = ("products", "orders", "inventory")
ALL_ORDERS_DAYS = 60
FINISHED = ("COMPLETED", "FAILED", "CANCELED", "EXPIRED")


class MissingAllOrdersScope(PermanentError):
    """The token cannot read orders older than 60 days."""


@dataclass
class StageReport:
    objects: int = 0
    events: int = 0
    published: int = 0
    skipped: int = 0
    operation: str = ""
    resumed_at: int = 0
    bulk_seconds: float = 0.0  # starting (or re-polling) the bulk query until it completed
    stream_seconds: float = 0.0  # downloading, converting and publishing its objects


@dataclass
class BackfillReport:
    shop: str
    since: str
    stages: dict[str, StageReport] = field(default_factory=dict)
    already_complete: bool = False
    seconds: float = 0.0

    @property
    def published(self) -> int:
        return sum(s.published for s in self.stages.values())

    @property
    def orders(self) -> int:
        return self.stages["orders"].objects if "orders" in self.stages else 0


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_scopes(admin: ShopifyAdmin, since: datetime, now: datetime) -> None:
    """Refuse early when the window reaches past 60 days and ``read_all_orders`` is missing."""
    data = admin.execute(queries.SCOPES)
    scopes = {s["handle"] for s in data["currentAppInstallation"]["accessScopes"]}
    if "read_orders" not in scopes and "read_all_orders" not in scopes:
        raise MissingAllOrdersScope(f"the token of {admin.shop} cannot read orders (no read_orders scope)")
    if since < now - timedelta(days=ALL_ORDERS_DAYS) and "read_all_orders" not in scopes:
        raise MissingAllOrdersScope(
            f"the token of {admin.shop} lacks the read_all_orders scope, so the Admin API returns only "
            f"the last {ALL_ORDERS_DAYS} days of orders, and the window starts {since.date()}. Either "
            "request read_all_orders for the app (Partner Dashboard → the app → API access, then "
            "reinstall), or load the older orders from the store's export: Shopify admin → Orders → "
            f"Export → all orders, CSV, then `shopml import-orders orders_export.csv --format shopify "
            f"--shop {admin.shop}`, and run backfill with --days {ALL_ORDERS_DAYS}"
        )


def run_bulk_query(
    admin: ShopifyAdmin,
    query: str,
    operation: str | None,
    *,
    poll_interval: float,
    on_started: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Start (or keep polling ``operation``) until the bulk query finishes; its final status."""
    while operation is None:
        payload = admin.execute(queries.RUN_BULK, {"query": query})["bulkOperationRunQuery"]
        errors = payload.get("userErrors") or []
        if not errors:
            operation = payload["bulkOperation"]["id"]
            on_started(operation)
            break
        if any(e.get("code") == "OPERATION_IN_PROGRESS" for e in errors):
            sleep(poll_interval)  # someone else's bulk query: one runs at a time per shop
            continue
        raise AdminApiError(f"bulk query refused: {errors[0]['message']}", errors)
    wait = poll_interval
    while True:
        node = admin.execute(queries.BULK_STATUS, {"id": operation})["node"]
        if node is None:
            raise TransientError(f"bulk operation {operation} is gone (expired?): restart the backfill")
        if node["status"] in FINISHED:
            if node["status"] != "COMPLETED":
                raise TransientError(
                    f"bulk operation {operation} ended {node['status']} ({node.get('errorCode')}); run again"
                )
            return dict(node)
        sleep(wait)
        wait = min(wait * 1.5, 10.0)


def _refunds(admin: ShopifyAdmin, shop: str, wanted: list[tuple[str, str]]) -> list[StoreEvent]:
    """Refund events for (refund gid, order gid) pairs, a few refunds per call."""
    events = []
    for i in range(0, len(wanted), queries.REFUNDS_PER_CALL):
        chunk = wanted[i : i + queries.REFUNDS_PER_CALL]
        nodes = admin.execute(queries.REFUNDS_BY_ID, {"ids": [r for r, _ in chunk]})["nodes"]
        for (_, order_gid), node in zip(chunk, nodes, strict=True):
            if node is not None:
                if (node.get("refundLineItems") or {}).get("pageInfo", {}).get("hasNextPage"):
                    node["refundLineItems"]["nodes"] += list(_more_refund_lines(admin, node["id"]))
                events.append(refund_event(shop, node, order_gid))
    return events


MORE_REFUND_LINES = (
    "query($id: ID!, $after: String) { node(id: $id) { ... on Refund { refundLineItems(first: 50, "
    "after: $after) { nodes { id quantity restockType restocked subtotalSet "
    + queries.MONEY
    + " totalTaxSet "
    + queries.MONEY
    + " lineItem { "
    + queries.REFUND_LINE_ITEM
    + " } } pageInfo { hasNextPage endCursor } } } } }"
)


def _more_refund_lines(admin: ShopifyAdmin, refund_gid: str) -> Iterator[dict[str, Any]]:
    lines = list(admin.paginate(MORE_REFUND_LINES, {"id": refund_gid}, ("node", "refundLineItems")))
    yield from lines[10:]  # the first 10 came with the refund


def stage_events(admin: ShopifyAdmin, stage: str, shop: str, group: Assembled) -> list[StoreEvent]:
    root = group.root
    if stage == "products":
        return [product_event(shop, root, group.of("ProductVariant"))]
    if stage == "orders":
        return [order_event(shop, root, group.of("LineItem"))]
    return [
        inventory_event(shop, level, level["item"]["id"], root["id"]) for level in group.of("InventoryLevel")
    ]


def backfill(
    admin: ShopifyAdmin,
    publisher: EventPublisher,
    state: SyncState,
    *,
    since: datetime,
    api_version: str,
    warehouse: Warehouse | None = None,
    restart: bool = False,
    batch_size: int = 500,
    poll_interval: float = 1.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    say: Callable[[str], None] = print,
    progress: Callable[..., Any] = Progress,
    concurrency: int = 8,
) -> BackfillReport:
    started = time.monotonic()
    shop = admin.shop
    record = state.backfill(shop)
    if record is not None and not restart:
        if record.get("done"):
            say(f"{shop}: backfill from {record['since']} already complete (--restart to run it again)")
            return BackfillReport(shop, record["since"], already_complete=True)
        if record.get("since") != iso(since):
            say(
                f"{shop}: resuming the unfinished backfill from {record['since']} "
                "(--restart for a new window)"
            )
            since = datetime.fromisoformat(record["since"].replace("Z", "+00:00"))
    if record is None or restart or record.get("done"):
        record = {"since": iso(since), "started_at": iso(now()), "stages": {}, "done": False}
        state.set_backfill(shop, record)
    check_scopes(admin, since, now())
    report = BackfillReport(shop, record["since"])
    if warehouse is not None and not has_synced_rows(warehouse, shop):
        warehouse = None  # a first backfill: no delivery of it can be in raw_events yet
    bulk_queries = {
        "products": queries.BULK_PRODUCTS,
        "orders": queries.bulk_orders(f"created_at:>='{record['since']}'"),
        "inventory": queries.BULK_INVENTORY,
    }
    for stage in STAGES:
        info: dict[str, Any] = record["stages"].setdefault(stage, {"offset": 0, "done": False})
        stage_report = report.stages.setdefault(stage, StageReport(resumed_at=info["offset"]))
        if info["done"]:
            stage_report.operation = info.get("operation", "")
            continue

        def started_operation(op: str, info: dict[str, Any] = info) -> None:
            info.update(operation=op, offset=0)
            state.set_backfill(shop, record)

        clock = time.monotonic()
        status = run_bulk_query(
            admin,
            bulk_queries[stage],
            info.get("operation"),
            poll_interval=poll_interval,
            on_started=started_operation,
        )
        stage_report.bulk_seconds = time.monotonic() - clock
        stage_report.operation = status["id"]
        total = int(status.get("objectCount") or 0)
        if status.get("url"):
            _stream_stage(admin, publisher, state, record, stage, info, status["url"], total, stage_report,
                          warehouse=warehouse, api_version=api_version, batch_size=batch_size, now=now,
                          progress=progress, concurrency=concurrency)  # fmt: skip
        stage_report.stream_seconds = time.monotonic() - clock - stage_report.bulk_seconds
        info["done"] = True
        state.set_backfill(shop, record)
        say(
            f"{shop}: {stage}: {stage_report.objects:,} objects, "
            f"{stage_report.published:,} events published, "
            f"{stage_report.skipped:,} already loaded"
            + (f" (resumed at byte {stage_report.resumed_at:,})" if stage_report.resumed_at else "")
        )
    record["done"] = True
    record["finished_at"] = iso(now())
    state.set_backfill(shop, record)
    report.seconds = time.monotonic() - started
    return report


def _stream_stage(
    admin: ShopifyAdmin,
    publisher: EventPublisher,
    state: SyncState,
    record: dict[str, Any],
    stage: str,
    info: dict[str, Any],
    url: str,
    total: int,
    stage_report: StageReport,
    *,
    warehouse: Warehouse | None,
    api_version: str,
    batch_size: int,
    now: Callable[[], datetime],
    progress: Callable[..., Any],
    concurrency: int,
) -> None:
    shop = admin.shop
    batch: list[StoreEvent] = []
    refunds: list[tuple[str, str]] = []
    last_offset = info["offset"]

    def flush() -> None:
        events = batch + (_refunds(admin, shop, refunds) if refunds else [])
        counts: PublishCounts = publish_events(
            events, publisher, source="backfill", api_version=api_version, now=now(),
            warehouse=warehouse, concurrency=concurrency,
        )  # fmt: skip
        stage_report.events += len(events)
        stage_report.published += counts.published
        stage_report.skipped += counts.skipped
        info["offset"] = last_offset
        info["published"] = info.get("published", 0) + counts.published
        state.set_backfill(shop, record)
        batch.clear()
        refunds.clear()

    with progress(f"backfill {stage}", total=total or None, unit="objects") as bar:
        lines = admin.stream_lines(url, skip_bytes=info["offset"])
        for group in reassemble(lines, start_offset=info["offset"]):
            batch.extend(stage_events(admin, stage, shop, group))
            if stage == "orders":
                refunds.extend((r["id"], group.root["id"]) for r in group.root.get("refunds") or [])
            stage_report.objects += 1
            last_offset = group.end_offset
            bar.update(advance=1 + sum(len(c) for c in group.children.values()))
            if len(batch) + len(refunds) >= batch_size:
                flush()
        if batch or refunds:
            flush()
