"""compliance: a Shopify privacy webhook from the ``compliance`` topic (customers/data_request,
customers/redact, shop/redact) → exported, redacted or erased once, with a ``privacy_audit``
row (shared/privacy/service.py).

A malformed request is logged and acknowledged (retrying cannot fix it). Any failure while
acting on a valid request (BigQuery refusing DML over rows still in its streaming buffer, an
unavailable service, a missing permission) is recorded as a pending attempt and raised: Pub/Sub
redelivers with backoff until it completes, and after 20 attempts holds it on compliance-dlq
for an operator, because Shopify does not send a privacy request twice.
"""

from __future__ import annotations

import functools

import functions_framework
from cloudevents.http.event import CloudEvent

from shared import bootstrap
from shared.envelope import decode_push_message
from shared.errors import PermanentError
from shared.logs import get_logger
from shared.privacy.requests import parse_privacy_request
from shared.privacy.service import PrivacyDeps, handle_request
from shared.privacy.wiring import build_deps


@functools.cache
def _deps() -> PrivacyDeps:
    return build_deps(bootstrap.settings())


@functions_framework.cloud_event
def compliance(event: CloudEvent) -> None:
    logger = get_logger("compliance", bootstrap.settings().log_level)
    try:
        request = parse_privacy_request(decode_push_message(event.data))
    except PermanentError:
        logger.exception("privacy request malformed (acknowledged, not retried)", event_id=str(event["id"]))
        return
    try:
        outcome = handle_request(request, _deps())
    except Exception:
        # Never acknowledged unfinished: redelivered with backoff, then held on compliance-dlq for
        # an operator (a privacy request Shopify will not send again must not be dropped).
        logger.exception(
            "privacy request not finished; Pub/Sub will redeliver",
            event_id=str(event["id"]),
            request_id=request.request_id,
            topic=request.topic,
        )
        raise
    logger.info("privacy request done", **outcome.log_fields())
