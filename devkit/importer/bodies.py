"""Webhook-shaped bodies for imported history, and the deterministic identity of each delivery.

The bodies hold only fields of Shopify's ``orders/*`` and ``refunds/create`` payloads that
``shared/schemas/webhooks/types.json`` declares (so an import adds nothing to
``schema_drift``); money is Shopify's two-decimal string, timestamps ISO 8601 with the
shop's offset, as ``devkit/simulator/payloads.py`` writes them (its helpers are reused).
They are leaner than a live webhook (no ``*_set`` bags except the shipping total the load
reads): an export has none of the fields left out.

Identity: a delivery is one version of one resource. Its webhook id is a UUID-5 of
``(shop, topic, resource id, version time)``; the event id and the Pub/Sub message id (the
raw row's id) derive from it; ``triggered_at`` is the version time itself. So importing a
file twice yields the same ids. ``received_at`` is the time of the import (the caller's):
the typed tables are partitioned by it, and a history import must land near the present.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from devkit.simulator.events import utc_stamp
from devkit.simulator.payloads import gid, money, money_bag
from shared.webhooks import WebhookHeaders, message_attributes

JsonDict = dict[str, Any]
IMPORT_NAMESPACE = uuid.UUID("6f1c2a55-3b0e-5d8e-9a40-5a0e1f2b7c11")  # fixed: ids must never change
SOURCE = "import"


@dataclass(frozen=True, slots=True)
class Line:
    """One line item as the importer knows it."""

    id: int
    variant_id: int | None
    product_id: int | None
    sku: str | None
    title: str
    quantity: int
    price: Decimal
    variant_title: str | None = None
    vendor: str | None = None
    taxable: bool = True
    requires_shipping: bool = True
    discount: Decimal = Decimal("0.00")
    fulfillment_status: str | None = None


@dataclass(frozen=True, slots=True)
class RefundLine:
    id: int
    line: Line  # the order line it refunds (for a refund without an order: a stand-in)
    quantity: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One body to plan: its topic, bytes and identity, and the file lines it came from."""

    topic: str
    body: bytes
    resource_id: int
    version_at: datetime  # aware
    first_line: int
    rows: int  # file rows it carries
    kind: str  # "order", "refund" or "refund_without_order"
    line_count: int
    non_product_lines: int = 0
    embedded_refunds: int = 0  # refunds inside an orders/updated body (Shopify export)
    embedded_refund_lines: int = 0

    def attributes(self, shop_domain: str, api_version: str, received_at: datetime) -> dict[str, str]:
        """The Pub/Sub attributes ``validate_load`` would see; ``received_at`` is the import's time."""
        webhook_id = delivery_id(shop_domain, self.topic, self.resource_id, self.version_at)
        headers = WebhookHeaders(
            topic=self.topic,
            shop_domain=shop_domain,
            webhook_id=webhook_id,
            api_version=api_version,
            triggered_at=utc_stamp(self.version_at),
            event_id=str(uuid.uuid5(IMPORT_NAMESPACE, f"event:{webhook_id}")),
        )
        return message_attributes(headers, received_at, source=SOURCE)


def delivery_id(shop_domain: str, topic: str, resource_id: int, version_at: datetime) -> str:
    """The deterministic webhook id of one version of one resource."""
    key = f"{shop_domain.lower()}|{topic}|{resource_id}|{utc_stamp(version_at)}"
    return str(uuid.uuid5(IMPORT_NAMESPACE, key))


def message_id_for(webhook_id: str) -> str:
    """The stand-in Pub/Sub message id (``raw_events``' row id) of an imported delivery."""
    return f"import-{webhook_id}"


@functools.lru_cache(maxsize=65536)
def _money(value: Decimal) -> str:
    return money(value)


def _stdlib_encode(payload: JsonDict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _pick_encoder() -> Callable[[JsonDict], bytes]:
    """pydantic_core's Rust serializer (same compact UTF-8 bytes as ``json.dumps``, ~2x faster)."""
    try:
        from pydantic_core import to_json
    except ImportError:  # pragma: no cover - the stdlib encoder gives the same bytes, slower
        return _stdlib_encode
    return to_json


encode: Callable[[JsonDict], bytes] = _pick_encoder()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def line_payload(line: Line, current_quantity: int | None = None) -> JsonDict:
    body: JsonDict = {
        "id": line.id,
        "admin_graphql_api_id": gid("LineItem", line.id),
        "variant_id": line.variant_id,
        "product_id": line.product_id,
        "product_exists": line.product_id is not None,
        "sku": line.sku,
        "title": line.title,
        "variant_title": line.variant_title,
        "name": f"{line.title} - {line.variant_title}" if line.variant_title else line.title,
        "vendor": line.vendor,
        "quantity": line.quantity,
        "current_quantity": line.quantity if current_quantity is None else current_quantity,
        "price": _money(line.price),
        "total_discount": _money(line.discount),
        "taxable": line.taxable,
        "requires_shipping": line.requires_shipping,
        "gift_card": False,
        "fulfillment_status": line.fulfillment_status,
        "tax_lines": [],
        "discount_allocations": [],
    }
    if line.discount:
        body["discount_allocations"] = [{"amount": money(line.discount), "discount_application_index": 0}]
    return body


def order_payload(
    *,
    order_id: int,
    name: str,
    order_number: int | None,
    created_at: datetime,
    updated_at: datetime,
    currency: str,
    lines: Sequence[Line],
    customer: JsonDict | None = None,
    email: str | None = None,
    phone: str | None = None,
    shipping_address: JsonDict | None = None,
    billing_address: JsonDict | None = None,
    financial_status: str = "paid",
    fulfillment_status: str | None = None,
    cancelled_at: datetime | None = None,
    cancel_reason: str | None = None,
    taxes_included: bool = True,
    total_tax: Decimal = Decimal(0),
    shipping: Decimal = Decimal(0),
    total_discounts: Decimal = Decimal(0),
    total_price: Decimal | None = None,
    discount_codes: Sequence[JsonDict] = (),
    tags: str = "",
    source_name: str = "web",
    refunds: Sequence[JsonDict] = (),
    note: str | None = None,
) -> JsonDict:
    """An ``orders/*`` body; totals from the lines unless the file states them."""
    gross = sum((line.price * line.quantity for line in lines), Decimal(0))
    subtotal = gross - total_discounts
    total = (
        total_price if total_price is not None else subtotal + shipping + (0 if taxes_included else total_tax)
    )
    refunded = {rl["line_item_id"]: 0 for r in refunds for rl in r.get("refund_line_items", ())}
    for r in refunds:
        for rl in r.get("refund_line_items", ()):
            refunded[rl["line_item_id"]] += rl["quantity"]
    return {
        "id": order_id,
        "admin_graphql_api_id": gid("Order", order_id),
        "name": name,
        "order_number": order_number,
        "created_at": _iso(created_at),
        "updated_at": _iso(updated_at),
        "processed_at": _iso(created_at),
        "cancelled_at": None if cancelled_at is None else _iso(cancelled_at),
        "cancel_reason": cancel_reason,
        "currency": currency,
        "presentment_currency": currency,
        "financial_status": financial_status,
        "fulfillment_status": fulfillment_status,
        "taxes_included": taxes_included,
        "test": False,
        "source_name": source_name,
        "tags": tags,
        "note": note,
        "email": email,
        "phone": phone,
        "total_line_items_price": money(gross),
        "total_discounts": money(total_discounts),
        "subtotal_price": money(subtotal),
        "total_tax": money(total_tax),
        "total_price": money(total),
        "total_shipping_price_set": money_bag(shipping, currency),
        "discount_codes": list(discount_codes),
        "customer": customer,
        "shipping_address": shipping_address,
        "billing_address": billing_address,
        "line_items": [line_payload(line, line.quantity - refunded.get(line.id, 0)) for line in lines],
        "refunds": list(refunds),
    }


def refund_payload(
    *,
    refund_id: int,
    order_id: int,
    created_at: datetime,
    currency: str,
    lines: Sequence[RefundLine],
    amount: Decimal | None = None,
    note: str | None = None,
) -> JsonDict:
    """A ``refunds/create`` body: the refunded lines (with the refunded line's variant), and
    one successful refund transaction of ``amount`` (default: the lines' price × quantity)."""
    stamp = _iso(created_at)
    if amount is None:
        amount = sum((rl.line.price * rl.quantity for rl in lines), Decimal(0))
    return {
        "id": refund_id,
        "admin_graphql_api_id": gid("Refund", refund_id),
        "order_id": order_id,
        "created_at": stamp,
        "processed_at": stamp,
        "note": note,
        "restock": False,
        "order_adjustments": [],
        "transactions": [
            {
                "kind": "refund",
                "status": "success",
                "amount": money(amount),
                "currency": currency,
                "created_at": stamp,
                "order_id": order_id,
            }
        ]
        if amount
        else [],
        "refund_line_items": [
            {
                "id": rl.id,
                "line_item_id": rl.line.id,
                "quantity": rl.quantity,
                "restock_type": "no_restock",
                "subtotal": money(rl.line.price * rl.quantity),
                "total_tax": "0.00",
                "line_item": {
                    "id": rl.line.id,
                    "variant_id": rl.line.variant_id,
                    "product_id": rl.line.product_id,
                    "sku": rl.line.sku,
                },
            }
            for rl in lines
        ],
    }
