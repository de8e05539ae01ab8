"""reconcile: compare each connected shop's recent changes with the warehouse; publish the gaps.

Cloud Scheduler publishes an empty message to ``reconcile`` every 4 hours (a person may
publish ``{"shop": "x.myshopify.com"}`` for one shop, and ``"since": "2024-11-01T00:00:00Z"``
to re-check from that time instead of the watermark). For each shop the Admin API is asked
what changed since the watermark (with overlap), compared by id and ``updated_at`` with the
warehouse, and only missing or newer versions are published to ``shopify-events`` with
``source=reconcile`` (``shared/storesync/reconcile.py``). A malformed request is logged and
acknowledged; a transient failure (the Admin API, the warehouse, a publish) is raised so
Pub/Sub redelivers; the watermark only moves after a shop's pass completed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.adapters.object_stores import create_object_store
from shared.adapters.shopify_admin import admin_client
from shared.envelope import decode_push_message
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger
from shared.storesync.reconcile import (
    ReconcileOutcome,
    reconcile_request,
    reconcile_shops,
    shops_to_reconcile,
)
from shared.storesync.state import SyncState


@functions_framework.cloud_event
def reconcile(event: CloudEvent) -> None:
    settings = bootstrap.settings()
    logger = get_logger("reconcile", settings.log_level)

    def log(outcome: ReconcileOutcome) -> None:
        logger.info(
            "shop reconciled" if outcome.status == "done" else f"shop skipped: {outcome.status}",
            labels={"shop": outcome.shop},
            window_start=outcome.window_start,
            window_end=outcome.window_end,
            checked=outcome.checked,
            published=outcome.published,
            already_loaded=outcome.skipped,
        )

    try:
        message = decode_push_message(event.data)
        request = reconcile_request(message.data, message.attributes)
        state = SyncState(create_object_store(settings.sync_state_url, project=settings.project))
        reconcile_shops(
            shops_to_reconcile(state, request.shop),
            lambda shop: admin_client(shop, settings),
            bootstrap.warehouse(),
            bootstrap.publisher(),
            state,
            api_version=settings.shopify_api_version,
            overlap=timedelta(minutes=settings.reconcile_overlap_minutes),
            now=datetime.now(UTC),
            since=request.since,
            log=log,
        )
    except TransientError:
        logger.exception("transient failure; Pub/Sub will redeliver", event_id=str(event["id"]))
        raise
    except PermanentError:
        logger.exception("reconcile request refused (acknowledged, not retried)", event_id=str(event["id"]))
