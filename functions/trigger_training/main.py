"""trigger_training: a training-requests message → one training run per model and night.

Triggered by the push subscription on ``training-requests`` (Cloud Scheduler publishes there
nightly; a person may publish ``{"night": "YYYY-MM-DD"}`` to re-run a night). The training
backend (a local process, or a Vertex AI CustomJob in the cloud) is idempotent on the run id,
so a redelivered request starts nothing new. A bad request is logged and acknowledged; a
transient failure is raised, so Pub/Sub redelivers and finally dead-letters it.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.envelope import decode_push_message
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger
from shared.training_requests import parse_training_request, request_provenance


@functions_framework.cloud_event
def trigger_training(event: CloudEvent) -> None:
    settings = bootstrap.settings()
    logger = get_logger("trigger_training", settings.log_level)
    try:
        message = decode_push_message(event.data)
        request = parse_training_request(
            message,
            event.get("time"),
            default_model=settings.model_name,
            default_history_days=settings.training_history_days,
        )
        submission = bootstrap.training_backend().submit(request)
    except TransientError:
        logger.exception("transient failure; Pub/Sub will redeliver", event_id=str(event["id"]))
        raise
    except PermanentError:
        logger.exception("training request refused (acknowledged, not retried)", event_id=str(event["id"]))
        return
    logger.info(
        "training submitted" if submission.created else "training already submitted for this night",
        labels={"model": request.model, "run_id": submission.run_id},
        run_id=submission.run_id,
        created=submission.created,
        backend_ref=submission.backend_ref,
        night=request.night.isoformat(),
        window_start=request.start.isoformat(),
        window_end=request.end.isoformat(),
        **request_provenance(message),
    )
