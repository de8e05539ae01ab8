"""Messages Shopify publishes to Pub/Sub itself (``pubsub://project:shopify-events``).

They skip ``ingest_webhook``: nobody checks an HMAC (Pub/Sub's IAM does the authenticating:
only Shopify's delivery service account may publish to the topic, Terraform's grant) and
nobody adds our attributes. Shopify puts the webhook's headers on the message as attributes
(``X-Shopify-Topic``, ``X-Shopify-Shop-Domain``, ``X-Shopify-Webhook-Id``,
``X-Shopify-API-Version``, ``X-Shopify-Triggered-At``, ``X-Shopify-Event-Id``,
``X-Shopify-Hmac-SHA256``); the body is the same JSON. ``our_attributes`` maps them to the
attributes ``ingest_webhook`` writes (docs/DESIGN.md, "message attributes"), matching names
without regard to case; ``source`` becomes ``pubsub`` and ``received_at`` the message's
publish time. Attributes already in our form pass unchanged, so the mapping is safe to apply
to every message.

Privacy topics never arrive this way: Shopify lets an app subscribe them only in
``shopify.app.toml`` (``compliance_topics``), and ``shopml connect`` writes that entry with
``ingest_webhook``'s HTTPS address, which verifies them and routes them to the ``compliance``
topic. A privacy message that reached ``shopify-events`` anyway (a toml edited by hand) is
recognised by ``is_privacy_topic``; validation has no body schema for those topics, so it is
quarantined with its raw body rather than loaded, and can be replayed onto ``compliance``.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.settings import COMPLIANCE_TOPICS

HEADER_ATTRIBUTES = {
    "x-shopify-topic": "shopify_topic",
    "x-shopify-shop-domain": "shop_domain",
    "x-shopify-webhook-id": "webhook_id",
    "x-shopify-api-version": "api_version",
    "x-shopify-triggered-at": "triggered_at",
    "x-shopify-event-id": "event_id",
}


def our_attributes(attributes: Mapping[str, str], publish_time: str | None = None) -> dict[str, str]:
    """The attributes of a message in our form, whoever published it."""
    attrs = {str(k): str(v) for k, v in attributes.items()}
    if attrs.get("shopify_topic"):
        return attrs  # published by ingest_webhook, backfill, reconcile or import
    mapped: dict[str, str] = {}
    for name, value in attrs.items():
        ours = HEADER_ATTRIBUTES.get(name.lower())
        if ours is not None:
            mapped[ours] = value
        elif name.lower() != "x-shopify-hmac-sha256":
            mapped[name] = value
    if "shopify_topic" not in mapped:
        return attrs
    mapped["shop_domain"] = mapped.get("shop_domain", "").lower()
    mapped["source"] = "pubsub"
    if publish_time and "received_at" not in mapped:
        mapped["received_at"] = publish_time
    return mapped


def is_privacy_topic(attributes: Mapping[str, str]) -> bool:
    return our_attributes(attributes).get("shopify_topic") in COMPLIANCE_TOPICS
