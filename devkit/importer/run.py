"""``import_orders``: a file of order history → the warehouse, through the webhook load path.

Each body is planned by ``shared.validation.plan_load`` exactly as ``validate_load`` plans a
Pub/Sub message (same attributes, ``source=import``), and a batch of plans is written by the
pull loader's ``store_batch`` (one ``write_batch``; a permanent failure isolates and
quarantines the event at fault, as for webhooks).

Two cores: while one batch is written (by one writer thread: ``write_batch`` conforms the rows
and DuckDB inserts them with the GIL released), the next is read and planned. At most two
batches are alive at once (one being written, one being planned), so memory is bounded by two
batches plus the small per-key state described in ``grouping.py`` and ``uci.py``. The writer
thread is always joined before ``import_orders`` returns or raises: no thread is left inside
the warehouse client when the process exits.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from devkit.importer.bodies import Delivery, message_id_for
from devkit.importer.report import ImportReport
from devkit.importer.shopify import ShopifyConverter
from devkit.importer.source import open_rows
from devkit.importer.uci import DEFAULT_MAX_INDEX_KEYS, UciConverter
from devkit.pull_loader import store_batch
from devkit.simulator.events import DEFAULT_API_VERSION
from devkit.simulator.retail import RETAIL_SHOP_DOMAIN
from shared.errors import TransientError
from shared.ports import Warehouse
from shared.settings import Settings, get_settings
from shared.validation import LoadPlan, plan_load

DEFAULT_BATCH_LINES = 10_000
SHOPIFY_SHOP_DOMAIN = "imported-store.myshopify.com"


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Collect garbage less often while importing (restored after).

    A batch holds hundreds of thousands of young objects (bodies, plans, rows) that live until
    it is written; with the default thresholds the collector walks them again and again
    (~15-20% of the import's CPU on the 9-month file). Objects alive before the import are
    frozen (left out of collections) for its duration.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (``getrusage``; kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def plan_delivery(
    delivery: Delivery, shop_domain: str, api_version: str, now: datetime, settings: Settings
) -> LoadPlan:
    """The load plan of one imported body, as validate_load would make it, received ``now``."""
    attributes = delivery.attributes(shop_domain, api_version, now)
    return plan_load(
        attributes,
        delivery.body,
        message_id_for(attributes["webhook_id"]),
        None,
        now,
        settings.store_pii,
        settings.pii_hash_key,
    )


@contextlib.contextmanager
def _kept_open(warehouse: Warehouse) -> Iterator[None]:
    """Ask a warehouse that lets go of its file when idle (DuckDB) to keep it between batches:
    closing checkpoints, and reopening per batch cost ~10-20% of the import. Another process
    asking for the file still gets it (the adapter's yield protocol)."""
    keep_open = getattr(warehouse, "kept_open", None)
    with keep_open() if keep_open is not None else contextlib.nullcontext():
        yield


def _count(report: ImportReport, delivery: Delivery, plan: LoadPlan) -> None:
    if plan.rejected:
        report.quarantined += 1
        reason = plan.reasons[0] if plan.reasons else "rejected"
        report.reject(
            delivery.first_line, f"{delivery.kind} rejected by validation", str(reason), count=delivery.rows
        )
        return
    if delivery.kind == "order":
        report.orders += 1
        report.lines += delivery.line_count
        report.non_product_lines += delivery.non_product_lines
        report.refunds += delivery.embedded_refunds
        report.refund_lines += delivery.embedded_refund_lines
    elif delivery.kind == "refund":
        report.refunds += 1
        report.refund_lines += delivery.line_count
    else:
        report.refunds_without_order += 1
        report.refund_lines_without_order += delivery.line_count


def import_orders(
    path: str | Path,
    *,
    warehouse: Warehouse,
    shop_domain: str | None = None,
    fmt: str = "auto",
    batch_lines: int = DEFAULT_BATCH_LINES,
    progress: Callable[[int], None] | None = None,
    settings: Settings | None = None,
    api_version: str = DEFAULT_API_VERSION,
    max_index_keys: int = DEFAULT_MAX_INDEX_KEYS,
) -> ImportReport:
    """Import the orders of ``path`` (UCI Online Retail, either layout, or a Shopify order
    export; ``.gz`` read transparently) into ``warehouse``; returns what happened.

    ``shop_domain`` defaults to ``uci-online-retail.myshopify.com`` (UCI, as the replay) or
    ``imported-store.myshopify.com`` (Shopify). ``progress`` is called after each batch with
    the number of file lines read so far. Bad rows are counted in the report, never raised;
    raises ``UnreadableFile`` (a ``PermanentError``) when the file is not a known layout and
    ``TransientError`` when the warehouse fails (importing again is safe: nothing is added
    twice once the warehouse ignores repeated row ids).
    """
    settings = settings or get_settings()
    started = time.perf_counter()
    layout, records = open_rows(path, fmt)
    shop = (shop_domain or (RETAIL_SHOP_DOMAIN if layout.fmt == "uci" else SHOPIFY_SHOP_DOMAIN)).lower()
    report = ImportReport(path=str(path), fmt=layout.fmt, shop_domain=shop)
    now = datetime.now(UTC)
    converter: UciConverter | ShopifyConverter
    batches: Iterator[list[Delivery]]
    if layout.fmt == "uci":
        converter = UciConverter(report, batch_lines, max_index_keys)
        batches = converter.batches(layout.header, records)
    else:
        converter = ShopifyConverter(report, batch_lines)
        batches = converter.batches(layout.header, records)
    pending: tuple[list[Delivery], Future[list[LoadPlan | TransientError]]] | None = None

    def settle() -> None:  # wait for the batch being written; count it
        nonlocal pending
        if pending is None:
            return
        deliveries, written = pending
        pending = None
        for delivery, outcome in zip(deliveries, written.result(), strict=True):
            if isinstance(outcome, TransientError):
                raise outcome
            _count(report, delivery, outcome)
        report.batches += 1

    with (
        _fewer_gc_passes(),
        _kept_open(warehouse),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-write") as writer,
    ):
        try:
            for deliveries in batches:
                if deliveries:
                    plans = [plan_delivery(d, shop, api_version, now, settings) for d in deliveries]
                    settle()
                    pending = (deliveries, writer.submit(store_batch, plans, warehouse, now))
                if progress is not None:
                    progress(report.file_lines)
            settle()
        finally:
            if pending is not None:  # failing: let the write in flight finish (joined by the pool)
                pending[1].cancel()
    if isinstance(converter, ShopifyConverter):
        report.lines_without_sku = converter.lines_without_sku
    else:
        report.index_keys_dropped = converter.index.dropped
    report.seconds = time.perf_counter() - started
    report.peak_rss_mb = round(peak_rss_mb(), 1)
    return report
