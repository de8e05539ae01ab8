"""A ``compliance`` message → a ``PrivacyRequest`` (pure).

Shopify's three privacy webhooks (shopify.dev, "Privacy law compliance"), which
``ingest_webhook`` routes to the ``compliance`` topic with the same attributes as store events
(``shopify_topic``, ``shop_domain``, ``webhook_id``, ``triggered_at``, ``received_at``, ...):

* ``customers/data_request``: ``{shop_id, shop_domain, orders_requested: [order id],
  customer: {id, email, phone}, data_request: {id}}``: the merchant asks for what the app
  holds about a customer.
* ``customers/redact``: ``{shop_id, shop_domain, customer: {id, email, phone},
  orders_to_redact: [order id]}``: erase that customer (sent 10 days after the merchant's
  request, or later while the customer has recent orders).
* ``shop/redact``: ``{shop_id, shop_domain}``: erase the shop (48 hours after uninstall).

Messages Shopify publishes to Pub/Sub itself carry its header names; ``our_attributes`` maps
them as for store events. Anything malformed is a ``PermanentError`` naming the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.envelope import PubSubMessage
from shared.errors import PermanentError
from shared.storesync.pubsub_delivery import our_attributes
from shared.times import parse_timestamp

DATA_REQUEST = "customers/data_request"
CUSTOMER_REDACT = "customers/redact"
SHOP_REDACT = "shop/redact"
PRIVACY_TOPICS = (DATA_REQUEST, CUSTOMER_REDACT, SHOP_REDACT)


class MalformedPrivacyRequest(PermanentError):
    """A compliance message that cannot be acted on (recorded in the log, acknowledged)."""


@dataclass(frozen=True)
class PrivacyRequest:
    """One privacy request. ``customer_id``, ``email``, ``phone`` only for the customer topics."""

    topic: str
    shop_domain: str
    request_id: str  # X-Shopify-Webhook-Id, else the message id: the idempotency key
    shop_id: int | None = None
    customer_id: int | None = None
    email: str | None = None
    phone: str | None = None
    order_ids: tuple[int, ...] = ()
    data_request_id: int | None = None
    requested_at: datetime | None = None

    @property
    def is_shop(self) -> bool:
        return self.topic == SHOP_REDACT


def _id(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedPrivacyRequest(f"{where}: expected an integer id, got a boolean")
    try:
        number = int(value)
    except (TypeError, ValueError):
        kind = type(value).__name__
        raise MalformedPrivacyRequest(f"{where}: expected an integer id, got {kind}") from None
    if number <= 0:
        raise MalformedPrivacyRequest(f"{where}: expected a positive id")
    return number


def _text(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedPrivacyRequest(f"{where}: expected a string, got {type(value).__name__}")
    return value


def parse_privacy_request(message: PubSubMessage) -> PrivacyRequest:
    """The request in one ``compliance`` message; ``MalformedPrivacyRequest`` names what is wrong."""
    published = message.publish_time.isoformat() if message.publish_time else None
    attrs = our_attributes(message.attributes, published)
    topic = attrs.get("shopify_topic") or ""
    if topic not in PRIVACY_TOPICS:
        raise MalformedPrivacyRequest(f"attribute shopify_topic={topic!r} is not one of {PRIVACY_TOPICS}")
    try:
        body = json.loads(message.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPrivacyRequest(f"{topic}: body is not JSON ({str(exc)[:80]})") from None
    if not isinstance(body, dict):
        raise MalformedPrivacyRequest(f"{topic}: body is {type(body).__name__}, expected an object")
    shop = (attrs.get("shop_domain") or _text(body.get("shop_domain"), "shop_domain") or "").lower()
    if not shop:
        raise MalformedPrivacyRequest(f"{topic}: no shop_domain (attribute or body)")
    body_shop = _text(body.get("shop_domain"), "shop_domain")
    if body_shop and body_shop.lower() != shop:
        raise MalformedPrivacyRequest(f"{topic}: body shop_domain differs from the signed delivery's shop")
    request_id = attrs.get("webhook_id") or message.message_id
    if not request_id:
        raise MalformedPrivacyRequest(f"{topic}: no webhook_id attribute and no message id")
    requested_at = parse_timestamp(attrs.get("triggered_at") or "") or parse_timestamp(
        attrs.get("received_at") or ""
    )
    shop_id = _id(body.get("shop_id"), "shop_id")
    requested_at = requested_at or message.publish_time
    if topic == SHOP_REDACT:
        return PrivacyRequest(topic, shop, request_id, shop_id=shop_id, requested_at=requested_at)
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise MalformedPrivacyRequest(f"{topic}: customer is missing or not an object")
    customer_id = _id(customer.get("id"), "customer.id")
    email = _text(customer.get("email"), "customer.email")
    phone = _text(customer.get("phone"), "customer.phone")
    if customer_id is None and not email and not phone:
        raise MalformedPrivacyRequest(f"{topic}: customer has no id, email or phone to find them by")
    orders_field = "orders_requested" if topic == DATA_REQUEST else "orders_to_redact"
    orders = body.get(orders_field) or []
    if not isinstance(orders, list):
        raise MalformedPrivacyRequest(f"{topic}: {orders_field} is not a list")
    order_ids = tuple(sorted({i for n, o in enumerate(orders) if (i := _id(o, f"{orders_field}[{n}]"))}))
    data_request_id = None
    if topic == DATA_REQUEST:
        data_request = body.get("data_request")
        if isinstance(data_request, dict):
            data_request_id = _id(data_request.get("id"), "data_request.id")
    return PrivacyRequest(
        topic,
        shop,
        request_id,
        shop_id=shop_id,
        requested_at=requested_at,
        customer_id=customer_id,
        email=email,
        phone=phone,
        order_ids=order_ids,
        data_request_id=data_request_id,
    )
