"""Webhook ingestion, the use case: verify, validate, route, publish, answer.

Framework-free: an HTTP entry point hands in the method, headers and a body reader and gets
back a status and a small JSON body. The order of the checks matters:
method → size → signature (before any parsing) → headers → topic → publish.

Two twins run that order, step for step, over the same pure steps below; they differ only in
how the body is read and the message published: ``accept_webhook`` for blocking callers (the
replay, a WSGI entry point) and ``accept_webhook_async`` for ``ingest_webhook`` on
functions-framework's ASGI path. tests/unit/test_ingest_twins.py holds them equal.

1. ``refuse_method``: 405 unless POST.
2. the body, read with ``read_limited_body`` / ``read_limited_body_async``: 413 over the limit,
   decided from Content-Length or while the bytes arrive, never after holding an oversize body.
3. ``check_delivery``: secrets configured (503) → HMAC over the raw bytes, constant time (401)
   → Shopify's headers (400) → topic allow-list (400); the message to publish.
4. publish, then ``accepted`` (200) or ``publish_failed`` (503: Shopify retries).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Protocol

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


class AsyncEventPublisher(Protocol):
    """``EventPublisher`` on an event loop: returns once the broker acknowledged the message.

    Raises ``shared.errors.PublishFailed`` when it did not in time. Implementations:
    ``shared.adapters.pubsub_aio`` (grpc.aio group commit; a blocking publisher in a thread).
    """

    async def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


@dataclass(frozen=True)
class IngestResult:
    status: int
    body: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: what to publish where, and what to log about it."""

    destination: str  # topology topic name
    body: bytes
    attributes: dict[str, str]
    webhook_id: str
    labels: dict[str, str]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _error(status: int, code: str, message: str, labels: dict[str, str] | None = None) -> IngestResult:
    return IngestResult(status, {"error": code, "message": message}, labels or {})


def declared_length(value: str | None) -> int | None:
    """A Content-Length header as a number; ``None`` when absent or not a number (the limit
    is then enforced while reading)."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _refuse_declared(content_length: int | None, limit: int) -> None:
    if content_length is not None and content_length > limit:
        raise WebhookRejected(413, "body_too_large", f"body of {content_length} bytes exceeds {limit}")


def _too_large(limit: int) -> WebhookRejected:
    return WebhookRejected(413, "body_too_large", f"body exceeds {limit} bytes")


def read_limited_body(stream: IO[bytes], content_length: int | None, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without reading it all."""
    _refuse_declared(content_length, limit)
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    return data


async def read_limited_body_async(
    chunks: AsyncIterable[bytes], content_length: int | None, limit: int
) -> bytes:
    """The request body from its chunks as they arrive (Starlette's ``request.stream()``),
    refusing (413) as soon as more than ``limit`` bytes came: an oversize body is never held."""
    _refuse_declared(content_length, limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def refuse_method(method: str) -> IngestResult | None:
    """405 for anything but POST (Shopify delivers with POST); ``None`` to go on."""
    if method != "POST":
        return _error(405, "method_not_allowed", "webhooks are delivered with POST")
    return None


def rejection(rejected: WebhookRejected, logger: StructuredLogger) -> IngestResult:
    """The answer to a rejected delivery, logged without the body or the signature."""
    logger.warning(f"webhook rejected: {rejected.code}", status=rejected.status, reason=rejected.message)
    return _error(rejected.status, rejected.code, rejected.message)


def check_delivery(
    body: bytes,
    headers: HeaderSource,
    settings: Settings,
    logger: StructuredLogger,
    now: Callable[[], datetime] = _utcnow,
) -> Delivery | IngestResult:
    """Everything between the body and the publish: the ``Delivery`` to publish, or the answer."""
    if not settings.webhook_secrets:
        # A server-side misconfiguration: answer 503 so Shopify keeps retrying until fixed.
        logger.error("SHOPIFY_WEBHOOK_SECRETS is empty; refusing deliveries until it is set")
        return _error(503, "not_configured", "webhook secrets are not configured")
    try:
        if not verify_webhook_signature(body, header_value(headers, HMAC_HEADER), settings.webhook_secrets):
            raise WebhookRejected(401, "invalid_signature", f"{HMAC_HEADER} does not match the body")
        parsed = parse_webhook_headers(headers)
        destination = route_topic(parsed.topic, settings.store_topics, settings.compliance_topics)
    except WebhookRejected as rejected:
        return rejection(rejected, logger)
    return Delivery(
        destination=destination,
        body=body,
        attributes=message_attributes(parsed, now()),
        webhook_id=parsed.webhook_id,
        labels={"shop": parsed.shop_domain, "topic": parsed.topic},
    )


def accepted(delivery: Delivery, message_id: str, logger: StructuredLogger) -> IngestResult:
    """200, once Pub/Sub acknowledged ``message_id``."""
    logger.info(
        "webhook accepted",
        labels=delivery.labels,
        webhook_id=delivery.webhook_id,
        destination=delivery.destination,
        bytes=len(delivery.body),
    )
    return IngestResult(
        200,
        {"status": "accepted", "webhook_id": delivery.webhook_id, "message_id": message_id},
        delivery.labels,
    )


def publish_failed(delivery: Delivery, failed: PublishFailed, logger: StructuredLogger) -> IngestResult:
    """503 when Pub/Sub did not acknowledge in time: nothing is answered 200 unstored."""
    logger.error(
        "publish failed; answering 503 so Shopify retries",
        labels=delivery.labels,
        webhook_id=delivery.webhook_id,
        reason=str(failed),
    )
    return _error(503, "publish_failed", "event not stored yet; retry later", delivery.labels)


def accept_webhook(
    method: str,
    headers: HeaderSource,
    read_body: Callable[[], bytes],
    settings: Settings,
    publisher: EventPublisher,
    logger: StructuredLogger,
    now: Callable[[], datetime] = _utcnow,
) -> IngestResult:
    """Handle one delivery, blocking. Every refusal is an answer; only an unexpected error
    raises (the entry point answers 503). See docs/DESIGN.md "Webhook ingestion"."""
    refused = refuse_method(method)
    if refused is not None:
        return refused
    try:
        body = read_body()
    except WebhookRejected as rejected:
        return rejection(rejected, logger)
    checked = check_delivery(body, headers, settings, logger, now)
    if not isinstance(checked, Delivery):
        return checked
    try:
        message_id = publisher.publish(checked.destination, checked.body, checked.attributes)
    except PublishFailed as failed:
        return publish_failed(checked, failed, logger)
    return accepted(checked, message_id, logger)


async def accept_webhook_async(
    method: str,
    headers: HeaderSource,
    read_body: Callable[[], Awaitable[bytes]],
    settings: Settings,
    publisher: AsyncEventPublisher,
    logger: StructuredLogger,
    now: Callable[[], datetime] = _utcnow,
) -> IngestResult:
    """``accept_webhook`` on an event loop: the same steps in the same order, awaiting the
    body and the publish."""
    refused = refuse_method(method)
    if refused is not None:
        return refused
    try:
        body = await read_body()
    except WebhookRejected as rejected:
        return rejection(rejected, logger)
    checked = check_delivery(body, headers, settings, logger, now)
    if not isinstance(checked, Delivery):
        return checked
    try:
        message_id = await publisher.publish(checked.destination, checked.body, checked.attributes)
    except PublishFailed as failed:
        return publish_failed(checked, failed, logger)
    return accepted(checked, message_id, logger)
