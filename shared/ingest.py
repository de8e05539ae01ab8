"""Webhook ingestion, the use case: verify, validate, route, publish, answer.

Framework-free: the HTTP entry point hands in the method, headers and a body reader and
gets back a status and a small JSON body. The order of the checks matters:
method → size → signature (before any parsing) → headers → topic → publish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from shared.errors import PublishFailed, WebhookRejected
from shared.logs import StructuredLogger
from shared.ports import EventPublisher
from shared.settings import Settings
from shared.webhooks import (
    HMAC_HEADER,
    HeaderSource,
    header_value,
    message_attributes,
    parse_webhook_headers,
    route_topic,
    verify_webhook_signature,
)


@dataclass(frozen=True)
class IngestResult:
    status: int
    body: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)


def read_limited_body(stream: IO[bytes], content_length: int | None, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without reading it all."""
    if content_length is not None and content_length > limit:
        raise WebhookRejected(413, "body_too_large", f"body of {content_length} bytes exceeds {limit}")
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise WebhookRejected(413, "body_too_large", f"body exceeds {limit} bytes")
    return data


def _error(status: int, code: str, message: str, labels: dict[str, str] | None = None) -> IngestResult:
    return IngestResult(status, {"error": code, "message": message}, labels or {})


def accept_webhook(
    method: str,
    headers: HeaderSource,
    read_body: Callable[[], bytes],
    settings: Settings,
    publisher: EventPublisher,
    logger: StructuredLogger,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> IngestResult:
    """Handle one webhook delivery; never raises. See docs/DESIGN.md "Webhook ingestion"."""
    if method != "POST":
        return _error(405, "method_not_allowed", "webhooks are delivered with POST")
    try:
        body = read_body()
        if not settings.webhook_secrets:
            # A server-side misconfiguration: answer 503 so Shopify keeps retrying until fixed.
            logger.error("SHOPIFY_WEBHOOK_SECRETS is empty; refusing deliveries until it is set")
            return _error(503, "not_configured", "webhook secrets are not configured")
        if not verify_webhook_signature(body, header_value(headers, HMAC_HEADER), settings.webhook_secrets):
            raise WebhookRejected(401, "invalid_signature", f"{HMAC_HEADER} does not match the body")
        parsed = parse_webhook_headers(headers)
        labels = {"shop": parsed.shop_domain, "topic": parsed.topic}
        destination = route_topic(parsed.topic, settings.store_topics, settings.compliance_topics)
    except WebhookRejected as rejected:
        logger.warning(f"webhook rejected: {rejected.code}", status=rejected.status, reason=rejected.message)
        return _error(rejected.status, rejected.code, rejected.message)

    attributes = message_attributes(parsed, now())
    try:
        message_id = publisher.publish(destination, body, attributes)
    except PublishFailed as failed:
        logger.error(
            "publish failed; answering 503 so Shopify retries",
            labels=labels,
            webhook_id=parsed.webhook_id,
            reason=str(failed),
        )
        return _error(503, "publish_failed", "event not stored yet; retry later", labels)
    logger.info(
        "webhook accepted",
        labels=labels,
        webhook_id=parsed.webhook_id,
        destination=destination,
        bytes=len(body),
    )
    return IngestResult(
        200, {"status": "accepted", "webhook_id": parsed.webhook_id, "message_id": message_id}, labels
    )
