"""Publishing converted store events onto ``shopify-events``, skipping versions already loaded.

Typed rows are keyed by the delivery id, so publishing one version twice never doubles a
row; but every published message adds a ``raw_events`` audit row. To make a re-run of
backfill or reconcile add nothing at all, each batch first asks the warehouse which of its
delivery ids ``raw_events`` already holds for the shop and publishes only the others.
Publishing runs ``concurrency`` messages at a time (a publish returns only once Pub/Sub
acknowledged it, as the ``EventPublisher`` port promises).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.ports import EventPublisher, Warehouse
from shared.storesync.convert import StoreEvent

TOPIC = "shopify-events"


@dataclass
class PublishCounts:
    published: int = 0
    skipped: int = 0

    def add(self, other: PublishCounts) -> None:
        self.published += other.published
        self.skipped += other.skipped


def loaded_ids(warehouse: Warehouse, shop: str, ids: Sequence[str]) -> set[str]:
    """The delivery ids among ``ids`` that ``raw_events`` already holds for ``shop``."""
    if not ids:
        return set()
    rows = warehouse.query(
        "SELECT DISTINCT webhook_id FROM raw_events WHERE shop_domain = @shop AND webhook_id IN UNNEST(@ids)",
        {"shop": shop, "ids": list(ids)},
    )
    return {r["webhook_id"] for r in rows}


def has_synced_rows(warehouse: Warehouse, shop: str) -> bool:
    """Whether ``raw_events`` holds any backfill or reconcile delivery of ``shop``: only those
    carry deterministic delivery ids, so without any there is nothing to skip and the per-batch
    look-up can be left out (a first backfill)."""
    rows = warehouse.query(
        "SELECT COUNT(*) AS n FROM raw_events "
        "WHERE shop_domain = @shop AND source IN ('backfill', 'reconcile')",
        {"shop": shop},
    )
    return bool(rows and rows[0]["n"])


def publish_events(
    events: Sequence[StoreEvent],
    publisher: EventPublisher,
    *,
    source: str,
    api_version: str,
    now: datetime,
    warehouse: Warehouse | None = None,
    concurrency: int = 8,
) -> PublishCounts:
    """Publish the events not loaded yet (all of them without a warehouse); counts."""
    unique: dict[str, StoreEvent] = {}
    for event in events:
        unique.setdefault(event.webhook_id, event)
    skip: set[str] = set()
    if warehouse is not None and unique:
        shop = next(iter(unique.values())).shop
        skip = loaded_ids(warehouse, shop, sorted(unique))
    todo = [e for key, e in unique.items() if key not in skip]

    def send(event: StoreEvent) -> Any:
        return publisher.publish(TOPIC, event.data(), event.attributes(source, api_version, now))

    if concurrency > 1 and len(todo) > 1:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="storesync-publish") as pool:
            list(pool.map(send, todo))  # re-raises the first failure
    else:
        for event in todo:
            send(event)
    flush = getattr(publisher, "flush", None)
    if callable(flush):
        flush()  # a buffering publisher (an in-process loader) writes the batch now
    return PublishCounts(published=len(todo), skipped=len(events) - len(todo))
