"""Reconciliation: what the Admin API says changed, against what the warehouse holds.

Webhooks can be a day late and some never come (Shopify gives up after 8 tries over 4 hours;
an app that was down longer loses them; a subscription can be removed). Every 4 hours
(Cloud Scheduler → ``reconcile`` topic → the ``reconcile`` function) each connected shop is
checked over a window that starts ``SHOPML_RECONCILE_OVERLAP_MINUTES`` before the last
watermark (overlapping windows: a change stamped just before a pass, or seen late because of
clock differences, falls into the next one too) and ends when the pass starts:

* orders updated in the window (``orders(query: "updated_at:>='...'")``, by ``UPDATED_AT``),
  compared by id and ``updated_at`` with ``orders_latest``: missing or newer versions are
  published; their refunds compared by id with ``refunds`` (refunds are never changed, only
  created), missing ones fetched by id and published;
* products updated in the window against ``products_latest`` (with their variants);
* inventory levels updated in the window, per location, against ``inventory_levels_latest``
  (keyed by item and location);
* deletions: products do not show up as updated when deleted; the Admin API's deletion events
  (``deletionEvents(subjectTypes: [PRODUCT])``) do, and a deleted product the warehouse still
  holds as live gets a ``products/delete`` tombstone.

Published events are converted and identified as in the backfill (``convert.py``: the same
webhook body, a delivery id from GID and ``updatedAt``) with ``source=reconcile``; versions
``raw_events`` already holds are skipped, so overlapping windows add nothing twice.

What remains unseen: order deletions (Shopify keeps no deletion events for orders; an order
deleted in the admin stays in the warehouse until a ``orders/delete`` webhook is subscribed
and delivered), customer deletions (customers are handled by the privacy topics), collection
deletions (not used), a variant removed from a product is seen only through the product's
next version, and deletion events older than Shopify keeps them (a watermark older than that
misses deletions). Changes that do not move a resource's ``updatedAt`` are not seen either.
An order whose webhooks were all lost and whose product was deleted before the pass comes
back with its line items' ``variant_id`` and ``product_id`` null: the Admin API answers a
deleted variant as null (the line keeps its SKU and title), so that sale cannot be tied to a
variant any more.

A shop whose ``app/uninstalled`` is in ``raw_events`` after it was connected is marked
uninstalled in the sync state and not polled (its token is revoked); its data stays until
``shop/redact``. ``shopml connect`` after a reinstall clears the mark.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.errors import PermanentError, TransientError
from shared.ports import EventPublisher, Warehouse
from shared.storesync import queries
from shared.storesync.convert import (
    StoreEvent,
    deletion_event,
    inventory_event,
    legacy_id,
    order_event,
    product_event,
    refund_event,
)
from shared.storesync.publish import PublishCounts, publish_events
from shared.storesync.state import SyncState
from shared.times import as_utc

FIRST_WINDOW = timedelta(days=3)  # no watermark and no backfill record: look this far back
BATCH = 200

MORE_VARIANTS = (
    "query($id: ID!, $after: String) { node(id: $id) { ... on Product { variants(first: 50, after: $after) "
    "{ nodes { " + queries.VARIANT + " } pageInfo { hasNextPage endCursor } } } } }"
)


class AdminApi(Protocol):
    """What reconcile needs of the Admin API client (``ShopifyAdmin``)."""

    shop: str

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]: ...

    def paginate(
        self, query: str, variables: Mapping[str, Any] | None, path: Sequence[str]
    ) -> Iterator[dict[str, Any]]: ...


@dataclass
class ReconcileOutcome:
    shop: str
    status: str = "done"  # done, uninstalled
    window_start: str = ""
    window_end: str = ""
    checked: dict[str, int] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    skipped: int = 0

    @property
    def total_published(self) -> int:
        return sum(self.published.values())


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _newer(remote: str | None, held: Any) -> bool:
    """True when the Admin API's ``updatedAt`` is newer than what the warehouse holds (or it holds none)."""
    if held is None:
        return True
    remote_time = _time(remote)
    return remote_time is not None and remote_time > as_utc(held)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _held(warehouse: Warehouse, sql: str, shop: str, ids: Iterable[Any]) -> dict[Any, Any]:
    found: dict[Any, Any] = {}
    for chunk in _chunks(sorted(set(ids)), 1000):
        for row in warehouse.query(sql, {"shop": shop, "ids": list(chunk)}):
            found[row["id"]] = row.get("updated_at")
    return found


def uninstalled_since_connect(warehouse: Warehouse, state: SyncState, shop: str) -> datetime | None:
    """When ``app/uninstalled`` arrived for ``shop`` after it was last connected, else None."""
    rows = warehouse.query(
        "SELECT MAX(COALESCE(triggered_at, received_at)) AS at FROM raw_events "
        "WHERE shop_domain = @shop AND shopify_topic = 'app/uninstalled'",
        {"shop": shop},
    )
    at = rows[0]["at"] if rows else None
    if at is None:
        return None
    connected = _time((state.connected(shop) or {}).get("connected_at"))
    at = as_utc(at)
    return at if connected is None or at > connected else None


class Reconciler:
    """One pass over one shop (see the module docstring)."""

    def __init__(
        self,
        admin: AdminApi,
        warehouse: Warehouse,
        publisher: EventPublisher,
        state: SyncState,
        *,
        api_version: str,
        overlap: timedelta,
        now: datetime,
        since: datetime | None = None,
        concurrency: int = 8,
    ) -> None:
        self.admin = admin
        self.since = since  # an explicit window start (a request's "since"), else the watermark
        self.shop = admin.shop
        self.warehouse = warehouse
        self.publisher = publisher
        self.state = state
        self.api_version = api_version
        self.overlap = overlap
        self.now = now
        self.concurrency = concurrency
        self.outcome = ReconcileOutcome(self.shop)

    def _publish(self, kind: str, events: Sequence[StoreEvent]) -> None:
        if not events:
            return
        counts: PublishCounts = publish_events(
            events,
            self.publisher,
            source="reconcile",
            api_version=self.api_version,
            now=self.now,
            warehouse=self.warehouse,
            concurrency=self.concurrency,
        )
        self.outcome.published[kind] = self.outcome.published.get(kind, 0) + counts.published
        self.outcome.skipped += counts.skipped

    def _count(self, kind: str, n: int) -> None:
        self.outcome.checked[kind] = self.outcome.checked.get(kind, 0) + n

    def window_start(self) -> datetime:
        if self.since is not None:
            return self.since
        watermark = self.state.watermark(self.shop) or {}
        last = _time(watermark.get("until"))
        if last is None:
            backfill = self.state.backfill(self.shop) or {}
            last = _time(backfill.get("started_at")) or self.now - FIRST_WINDOW
        return last - self.overlap

    def run(self) -> ReconcileOutcome:
        if self.state.uninstalled(self.shop) is not None:
            self.outcome.status = "uninstalled"
            return self.outcome
        uninstalled_at = uninstalled_since_connect(self.warehouse, self.state, self.shop)
        if uninstalled_at is not None:
            self.state.mark_uninstalled(self.shop, uninstalled_at, "raw_events app/uninstalled")
            self.outcome.status = "uninstalled"
            return self.outcome
        start = self.window_start()
        self.outcome.window_start, self.outcome.window_end = iso(start), iso(self.now)
        search = f"updated_at:>='{iso(start)}'"
        self.orders(search)
        self.products(search)
        self.inventory(search)
        self.deletions(f"occurred_at:>='{iso(start)}'")
        self.state.set_watermark(self.shop, {"until": iso(self.now), "window_start": iso(start)})
        return self.outcome

    # -- orders and refunds ------------------------------------------------------------------
    def orders(self, search: str) -> None:
        batch: list[dict[str, Any]] = []
        for node in self.admin.paginate(queries.ORDERS_CHANGED, {"q": search}, ("orders",)):
            batch.append(node)
            if len(batch) >= BATCH:
                self._orders_batch(batch)
                batch = []
        self._orders_batch(batch)

    def _line_items(self, node: Mapping[str, Any]) -> list[dict[str, Any]]:
        connection = node.get("lineItems") or {}
        items = list(connection.get("nodes") or [])
        if (connection.get("pageInfo") or {}).get("hasNextPage"):
            more = self.admin.paginate(
                queries.MORE_LINE_ITEMS,
                {"id": node["id"], "after": connection["pageInfo"]["endCursor"]},
                ("node", "lineItems"),
            )
            items += list(more)
        return items

    def _orders_batch(self, nodes: list[dict[str, Any]]) -> None:
        if not nodes:
            return
        self._count("orders", len(nodes))
        held = _held(
            self.warehouse,
            "SELECT id, updated_at FROM orders_latest WHERE shop_domain = @shop AND id IN UNNEST(@ids)",
            self.shop,
            (legacy_id(n["id"]) for n in nodes),
        )
        gaps = [n["id"] for n in nodes if _newer(n["updatedAt"], held.get(legacy_id(n["id"])))]
        events = []
        for chunk in _chunks(gaps, queries.ORDERS_PER_CALL):
            for full in self.admin.execute(queries.ORDERS_BY_ID, {"ids": list(chunk)})["nodes"]:
                if full is not None:  # gone since it was listed
                    events.append(order_event(self.shop, full, self._line_items(full)))
        self._publish("orders", events)
        refunds = [(r["id"], n["id"]) for n in nodes for r in n.get("refunds") or []]
        if not refunds:
            return
        self._count("refunds", len(refunds))
        have = _held(
            self.warehouse,
            "SELECT DISTINCT id FROM refunds WHERE shop_domain = @shop AND id IN UNNEST(@ids)",
            self.shop,
            (legacy_id(r) for r, _ in refunds),
        )
        missing = [(r, o) for r, o in refunds if legacy_id(r) not in have]
        fetched: list[StoreEvent] = []
        for chunk in _chunks(missing, queries.REFUNDS_PER_CALL):
            found = self.admin.execute(queries.REFUNDS_BY_ID, {"ids": [r for r, _ in chunk]})["nodes"]
            fetched += [refund_event(self.shop, f, o) for (_, o), f in zip(chunk, found, strict=True) if f]
        self._publish("refunds", fetched)

    # -- products ----------------------------------------------------------------------------
    def products(self, search: str) -> None:
        nodes = list(self.admin.paginate(queries.PRODUCTS_CHANGED, {"q": search}, ("products",)))
        if not nodes:
            return
        self._count("products", len(nodes))
        held = _held(
            self.warehouse,
            "SELECT id, updated_at FROM products_latest WHERE shop_domain = @shop AND id IN UNNEST(@ids)",
            self.shop,
            (legacy_id(n["id"]) for n in nodes),
        )
        gaps = [n["id"] for n in nodes if _newer(n.get("updatedAt"), held.get(legacy_id(n["id"])))]
        events = []
        for chunk in _chunks(gaps, queries.PRODUCTS_PER_CALL):
            for node in self.admin.execute(queries.PRODUCTS_BY_ID, {"ids": list(chunk)})["nodes"]:
                if node is None:
                    continue
                connection = node.get("variants") or {}
                variants = list(connection.get("nodes") or [])
                if (connection.get("pageInfo") or {}).get("hasNextPage"):
                    variants = list(
                        self.admin.paginate(MORE_VARIANTS, {"id": node["id"]}, ("node", "variants"))
                    )
                events.append(product_event(self.shop, node, variants))
        self._publish("products", events)

    # -- inventory ---------------------------------------------------------------------------
    def inventory(self, search: str) -> None:
        for location in self.admin.paginate(queries.LOCATIONS, {}, ("locations",)):
            levels = list(
                self.admin.paginate(
                    queries.LEVELS_CHANGED, {"id": location["id"], "q": search}, ("node", "inventoryLevels")
                )
            )
            if not levels:
                continue
            self._count("inventory_levels", len(levels))
            location_id = legacy_id(location["id"])
            rows = self.warehouse.query(
                "SELECT inventory_item_id, updated_at FROM inventory_levels_latest "
                "WHERE shop_domain = @shop AND location_id = @location AND inventory_item_id IN UNNEST(@ids)",
                {
                    "shop": self.shop,
                    "location": location_id,
                    "ids": [legacy_id(lv["item"]["id"]) for lv in levels],
                },
            )
            held = {r["inventory_item_id"]: r["updated_at"] for r in rows}
            events = [
                inventory_event(self.shop, lv, lv["item"]["id"], location["id"])
                for lv in levels
                if _newer(lv["updatedAt"], held.get(legacy_id(lv["item"]["id"])))
            ]
            self._publish("inventory_levels", events)

    # -- deletions ---------------------------------------------------------------------------
    def deletions(self, search: str) -> None:
        nodes = list(self.admin.paginate(queries.DELETIONS, {"q": search}, ("deletionEvents",)))
        if not nodes:
            return
        self._count("product_deletions", len(nodes))
        ids = [legacy_id(n["subjectId"]) for n in nodes]
        rows = self.warehouse.query(
            "SELECT id FROM products_latest WHERE shop_domain = @shop AND deleted AND id IN UNNEST(@ids)",
            {"shop": self.shop, "ids": ids},
        )
        gone = {r["id"] for r in rows}
        self._publish(
            "product_deletions",
            [deletion_event(self.shop, n) for n in nodes if legacy_id(n["subjectId"]) not in gone],
        )


def shops_to_reconcile(state: SyncState, requested: str | None = None) -> list[str]:
    """The shop asked for, or every shop ``shopml connect`` set up."""
    return [requested.lower()] if requested else state.connected_shops()


@dataclass(frozen=True)
class ReconcileRequest:
    shop: str | None = None  # None: every connected shop
    since: datetime | None = None  # an explicit window start (re-check a range); None: the watermark


def reconcile_request(data: bytes, attributes: Mapping[str, str]) -> ReconcileRequest:
    """What a ``reconcile`` message asks for: ``{"shop": ..., "since": "ISO time"}`` (both
    optional; also as attributes). Scheduler's empty message means every connected shop from
    its watermark."""
    shop, since = attributes.get("shop"), attributes.get("since")
    usage = 'a reconcile request is empty or a JSON object like {"shop": ..., "since": ...}'
    if data.strip():
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise PermanentError(usage) from exc
        if not isinstance(body, dict):
            raise PermanentError(usage)
        shop = body.get("shop") or shop
        since = body.get("since") or since
    if shop is not None and (not isinstance(shop, str) or not shop.lower().endswith(".myshopify.com")):
        raise PermanentError(f"reconcile request: shop {shop!r} is not a *.myshopify.com domain")
    try:
        start = _time(since) if isinstance(since, str) else None
    except ValueError:
        start = None
    if since is not None and start is None:
        raise PermanentError(f"reconcile request: since {since!r} is not an ISO 8601 time")
    return ReconcileRequest(shop.lower() if shop else None, start)


def reconcile_shops(
    shops: Sequence[str],
    admin_for: Callable[[str], AdminApi],
    warehouse: Warehouse,
    publisher: EventPublisher,
    state: SyncState,
    *,
    api_version: str,
    overlap: timedelta,
    now: datetime,
    since: datetime | None = None,
    log: Callable[[ReconcileOutcome], None] = lambda outcome: None,
) -> list[ReconcileOutcome]:
    """One pass over each shop. A shop that fails does not stop the others; if any failed
    transiently, ``TransientError`` is raised at the end (the message is redelivered and the
    shops already done find nothing new thanks to their watermarks)."""
    outcomes: list[ReconcileOutcome] = []
    failed: list[str] = []
    for shop in shops:
        try:
            outcome = Reconciler(
                admin_for(shop),
                warehouse,
                publisher,
                state,
                api_version=api_version,
                overlap=overlap,
                now=now,
                since=since,
            ).run()
        except TransientError as exc:
            failed.append(f"{shop}: {exc}")
            continue
        except PermanentError as exc:
            outcome = ReconcileOutcome(shop, status=f"refused: {exc}")
        outcomes.append(outcome)
        log(outcome)
    if failed:
        raise TransientError("reconcile failed for " + "; ".join(failed))
    return outcomes
