"""rollback: a rollback-requests message ``{model, reason, requested_by, idempotency_key}`` → the
live pointer flips back (shared/serving/deployment.py), once per idempotency key.

``drift_monitor`` and people (``shopml rollback``) publish there. A request that cannot be acted
on (malformed, nothing to roll back to) is recorded where possible and acknowledged; a
transient failure is raised, so Pub/Sub redelivers.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.envelope import decode_push_message
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger
from shared.serving.deployment import default_deployer, json_object, rollback_request_from_message


@functions_framework.cloud_event
def rollback(event: CloudEvent) -> None:
    logger = get_logger("rollback", bootstrap.settings().log_level)
    try:
        message = decode_push_message(event.data)
        request = rollback_request_from_message(json_object(message.data, "rollback request"))
        outcome = default_deployer().rollback(request)
    except TransientError:
        logger.exception("transient failure; Pub/Sub will redeliver", event_id=str(event["id"]))
        raise
    except PermanentError:
        logger.exception("rollback request refused (acknowledged, not retried)", event_id=str(event["id"]))
        return
    logger.info(
        outcome.message,
        **outcome.log_fields(),
        requested_by=request.requested_by,
        idempotency_key=request.idempotency_key,
    )
