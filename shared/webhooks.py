"""Pure logic of Shopify webhook ingestion: signature, headers, routing, attributes.

No I/O and no cloud import: the HTTP entry point feeds it bytes and headers, and publishes
what it returns. Shopify's contract (shopify.dev, "Verify webhooks" / "Webhook headers"):
``X-Shopify-Hmac-Sha256`` is base64(HMAC-SHA256(app client secret, raw body bytes)).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from shared.errors import WebhookRejected
from shared.times import parse_timestamp

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
REQUIRED_HEADERS: tuple[str, ...] = (
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Shopify-Webhook-Id",
    "X-Shopify-API-Version",
    "X-Shopify-Triggered-At",
)
OPTIONAL_HEADERS: tuple[str, ...] = ("X-Shopify-Event-Id",)

# shop.myshopify.com: Shopify's permanent shop domain (lowercase letters, digits, hyphens).
_SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\.myshopify\.com$")
# Stable versions are YYYY-MM; "unstable" exists for development stores.
_API_VERSION = re.compile(r"^(\d{4}-(0[1-9]|1[0-2])|unstable)$")
_TOPIC = re.compile(r"^[a-z_]+/[a-z_]+$")
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MAX_HEADER_LEN = 256


def sign_webhook(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body`` (used by the simulators)."""
    return base64.b64encode(hmac.digest(secret.encode("utf-8"), body, "sha256")).decode("ascii")


def verify_webhook_signature(body: bytes, signature: str | None, secrets: Iterable[str]) -> bool:
    """True when ``signature`` is the HMAC of ``body`` under any one of ``secrets``.

    Compares digests in constant time and tries every secret (no early exit on a match), so
    timing reveals neither the expected digest nor which secret of a rotation matched.
    """
    if not signature:
        return False
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(given) != hashlib.sha256().digest_size:
        return False
    matched = False
    for secret in secrets:
        expected = hmac.digest(secret.encode("utf-8"), body, "sha256")  # one-shot C path
        matched |= hmac.compare_digest(expected, given)
    return matched


class HeaderSource(Protocol):
    """What we need of request headers: a dict, or the case-insensitive ``Headers`` of
    Starlette (ingest_webhook) or Werkzeug."""

    def get(self, key: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True)
class WebhookHeaders:
    """The validated Shopify headers of one delivery."""

    topic: str
    shop_domain: str
    webhook_id: str
    api_version: str
    triggered_at: str
    event_id: str | None = None


def header_value(headers: HeaderSource, name: str) -> str | None:
    # Starlette's and Werkzeug's Headers are case-insensitive; plain dicts (tests, the replay) may not be.
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                value = candidate
                break
    return None if value is None else value.strip()


def _bad(code: str, message: str) -> WebhookRejected:
    return WebhookRejected(400, code, message)


def parse_webhook_headers(headers: HeaderSource) -> WebhookHeaders:
    """Check Shopify's required headers; raise ``WebhookRejected`` (400) naming the first bad one."""
    values: dict[str, str] = {}
    missing = [name for name in REQUIRED_HEADERS if not header_value(headers, name)]
    if missing:
        raise _bad("missing_header", f"missing required header(s): {', '.join(missing)}")
    for name in REQUIRED_HEADERS + OPTIONAL_HEADERS:
        value = header_value(headers, name)
        if value is not None and len(value) > _MAX_HEADER_LEN:
            raise _bad("invalid_header", f"header {name} is longer than {_MAX_HEADER_LEN} characters")
        if value:
            values[name] = value
    topic = values["X-Shopify-Topic"]
    if not _TOPIC.match(topic):
        raise _bad("invalid_header", f"X-Shopify-Topic {topic!r} is not of the form resource/event")
    shop = values["X-Shopify-Shop-Domain"].lower()
    if not _SHOP_DOMAIN.match(shop):
        raise _bad("invalid_header", f"X-Shopify-Shop-Domain {shop!r} is not a *.myshopify.com domain")
    version = values["X-Shopify-API-Version"]
    if not _API_VERSION.match(version):
        raise _bad("invalid_header", f"X-Shopify-API-Version {version!r} is not YYYY-MM")
    for name in ("X-Shopify-Webhook-Id", "X-Shopify-Event-Id"):
        if name in values and not _ID.match(values[name]):
            raise _bad("invalid_header", f"{name} has characters outside [A-Za-z0-9._:-]")
    triggered_at = values["X-Shopify-Triggered-At"]
    if parse_timestamp(triggered_at) is None:
        raise _bad("invalid_header", f"X-Shopify-Triggered-At {triggered_at!r} is not an ISO 8601 time")
    return WebhookHeaders(
        topic=topic,
        shop_domain=shop,
        webhook_id=values["X-Shopify-Webhook-Id"],
        api_version=version,
        triggered_at=triggered_at,
        event_id=values.get("X-Shopify-Event-Id"),
    )


def route_topic(shopify_topic: str, store_topics: Iterable[str], compliance_topics: Iterable[str]) -> str:
    """The Pub/Sub topic (topology name) for a Shopify topic; 400 when it is not accepted."""
    if shopify_topic in compliance_topics:
        return "compliance"
    if shopify_topic in store_topics:
        return "shopify-events"
    raise _bad("unknown_topic", f"topic {shopify_topic!r} is not accepted by this endpoint")


def message_attributes(
    headers: WebhookHeaders, received_at: datetime, source: str = "webhook"
) -> dict[str, str]:
    """Pub/Sub attributes for a delivery (docs/DESIGN.md, "message attributes")."""
    attributes = {
        "shopify_topic": headers.topic,
        "shop_domain": headers.shop_domain,
        "webhook_id": headers.webhook_id,
        "api_version": headers.api_version,
        "triggered_at": headers.triggered_at,
        "received_at": received_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "source": source,
    }
    if headers.event_id:  # Shopify sends X-Shopify-Event-Id only for some topics
        attributes["event_id"] = headers.event_id
    return attributes
