"""validate_load: shopify-events → typed warehouse rows, or quarantine with reasons.

Triggered by the push subscription on ``shopify-events`` (functions-framework turns the push
into a CloudEvent). Returning acknowledges the message; raising makes functions-framework
answer 500, so Pub/Sub redelivers with backoff and finally dead-letters: that is what a
transient warehouse error does. Everything permanent is quarantined, never dropped.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.errors import TransientError
from shared.loading import load
from shared.logs import get_logger


@functions_framework.cloud_event
def validate_load(event: CloudEvent) -> None:
    settings = bootstrap.settings()
    logger = get_logger("validate_load", settings.log_level)
    try:
        load(
            event.data,
            str(event["id"]),
            bootstrap.warehouse().write_batch,
            logger,
            store_pii=settings.store_pii,
            pii_hash_key=settings.pii_hash_key,
        )
    except TransientError:
        logger.exception("transient failure; Pub/Sub will redeliver")
        raise
