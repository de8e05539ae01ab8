"""load_predictions: the ``predictions`` topic → the ``predictions`` table (one row per item).

Triggered by the push subscription ``predictions-load-predictions``. A malformed message is
logged and acknowledged (redelivering it would fail the same way; the subscription's dead
letter keeps nothing useful); a transient warehouse error raises, so Pub/Sub redelivers
(rows carry insert ids, so a redelivery does not duplicate them in BigQuery).
"""

from __future__ import annotations

from datetime import UTC, datetime

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.envelope import decode_push_message
from shared.errors import PermanentError
from shared.logs import get_logger
from shared.serving.prediction_log import TABLE, prediction_rows


@functions_framework.cloud_event
def load_predictions(event: CloudEvent) -> None:
    settings = bootstrap.settings()
    logger = get_logger("load_predictions", settings.log_level)
    try:
        message = decode_push_message(event.data)
        rows, ids = prediction_rows(message.data, message.message_id or str(event["id"]), datetime.now(UTC))
    except PermanentError as exc:
        logger.error("dropping a malformed prediction message", error=str(exc), event_id=str(event["id"]))
        return
    bootstrap.warehouse().insert_rows(TABLE, rows, ids)
