"""validate_load: shopify-events → typed warehouse rows, or quarantine with reasons.

Triggered by the push subscription on ``shopify-events`` (functions-framework turns the push
into a CloudEvent). Returning acknowledges the message; raising makes functions-framework
answer 500, so Pub/Sub redelivers with backoff and finally dead-letters: that is what a
transient warehouse error does. Everything permanent is quarantined, never dropped.

With ``SHOPML_FEATURE_SERVER_URL`` set, a loaded price or stock change is also pushed to the
feature server (``shared.features.push``, plain HTTP: no Feast import on this path). A failed
push is a warning, never a redelivery: the nightly materialization repairs the online store.
"""

from __future__ import annotations

from collections.abc import Callable

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.errors import TransientError
from shared.loading import load
from shared.logs import get_logger
from shared.settings import Settings
from shared.validation import LoadPlan


def _on_loaded(settings: Settings) -> Callable[[LoadPlan], None] | None:
    """The post-load feature push when a feature server is configured (plain HTTP, no Feast)."""
    if not settings.feature_server_url:
        return None
    from shared.features.push import state_push_hook

    return state_push_hook(
        settings, bootstrap.warehouse(), get_logger("validate_load.features", settings.log_level)
    )


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
            on_loaded=_on_loaded(settings),
        )
    except TransientError:
        logger.exception("transient failure; Pub/Sub will redeliver")
        raise
