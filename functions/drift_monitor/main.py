"""drift_monitor: one drift-and-accuracy check of the live model per ``drift-checks`` message.

Cloud Scheduler publishes to ``drift-checks`` hourly; the message may name the model
(``{"model": "demand"}``, default ``SHOPML_MODEL_NAME``). The check
(``shared/monitoring/monitor.py``) compares the serving window with the model card's reference,
scores the live forecasts against realised sales, and may publish a rollback request or a
training request (each once, by idempotency key), alert Slack, write the HTML report and one
``drift_reports`` row. A malformed message is logged and acknowledged; a transient failure
(warehouse, registry, a publish) is raised, so Pub/Sub redelivers and the check runs again.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.envelope import decode_push_message
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger
from shared.monitoring.monitor import check_request_from_message, default_monitor, export_metrics


@functions_framework.cloud_event
def drift_monitor(event: CloudEvent) -> None:
    logger = get_logger("drift_monitor", bootstrap.settings().log_level)
    try:
        message = decode_push_message(event.data)
        model = check_request_from_message(message.data, message.attributes, bootstrap.settings().model_name)
        monitor = default_monitor(logger)
        monitor.check(model, check_id=message.message_id or str(event["id"]))
    except TransientError:
        logger.exception("transient failure; Pub/Sub will redeliver", event_id=str(event["id"]))
        raise
    except PermanentError:
        logger.exception("drift check request refused (acknowledged, not retried)", event_id=str(event["id"]))
        return
    export_metrics(monitor, model)
