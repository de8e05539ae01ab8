"""deploy_model: a ``candidate_registered`` message on model-events → the candidate goes live
through the gates, or is refused and the record says why (shared/serving/deployment.py).

Other model events (``rejected``) are acknowledged and ignored. A refused deploy is recorded in
``model_deployments`` and acknowledged; a transient failure (Firestore, the registry) is
raised, so Pub/Sub redelivers, and the redelivery is recognised by its idempotency key.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.envelope import decode_push_message
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger
from shared.serving.deployment import default_deployer, deploy_request_from_event, json_object


@functions_framework.cloud_event
def deploy_model(event: CloudEvent) -> None:
    logger = get_logger("deploy_model", bootstrap.settings().log_level)
    try:
        message = decode_push_message(event.data)
        request = deploy_request_from_event(
            json_object(message.data, "model-events message"), message.attributes
        )
        if request is None:
            logger.info(
                "not a candidate; nothing to deploy", event_type=message.attributes.get("event_type", "")
            )
            return
        outcome = default_deployer().deploy(request)
    except TransientError:
        logger.exception("transient failure; Pub/Sub will redeliver", event_id=str(event["id"]))
        raise
    except PermanentError:
        logger.exception("deploy request refused (acknowledged, not retried)", event_id=str(event["id"]))
        return
    logger.info(outcome.message, **outcome.log_fields())
