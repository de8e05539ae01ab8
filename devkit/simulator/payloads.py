"""Shopify-shaped webhook bodies (REST Admin API resources) built from plain specs.

Shapes follow Shopify's documented webhook payloads (shopify.dev, "Webhooks" topic reference
sample payloads for ``orders/create``, ``orders/updated``, ``orders/cancelled``,
``refunds/create``, ``products/create``/``products/update`` and ``inventory_levels/update``;
REST Admin "Order", "Refund", "Product" and "InventoryLevel" resources):

* ids are JSON integers; ``admin_graphql_api_id`` is ``gid://shopify/<Resource>/<id>``;
* money is a string with two decimals, with a ``*_set`` money bag
  ``{"shop_money": {...}, "presentment_money": {...}}`` next to it; except, as in Shopify's
  own ``refunds/create`` bodies, ``refund_line_items[].subtotal`` and ``total_tax``, which are
  JSON numbers (their ``*_set`` bags hold strings);
* timestamps are ISO 8601 in the shop's time zone with its offset (``2024-03-01T10:15:00-05:00``).

Totals are exact (Decimal): ``total_line_items_price = Σ price × quantity``,
``subtotal_price = total_line_items_price - total_discounts``,
``total_price = subtotal_price + shipping + total_tax`` (``+ 0`` when taxes are included).
No I/O here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from devkit.simulator.catalogue import Product

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
JsonDict = dict[str, Any]


def d2(value: Decimal | int | str) -> Decimal:
    """Round to cents, half up (as a till does)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal | int | str) -> str:
    """Shopify's money string: two decimals, no exponent (``"12.30"``)."""
    text = f"{d2(value):.2f}"
    return "0.00" if text == "-0.00" else text


def money_bag(value: Decimal | int | str, currency: str, presentment_currency: str | None = None) -> JsonDict:
    """A ``*_set`` money bag; presentment money equals shop money (no currency conversion)."""
    amount = money(value)
    return {
        "shop_money": {"amount": amount, "currency_code": currency},
        "presentment_money": {"amount": amount, "currency_code": presentment_currency or currency},
    }


def gid(resource: str, resource_id: int) -> str:
    """The Admin GraphQL id Shopify puts in ``admin_graphql_api_id``."""
    return f"gid://shopify/{resource}/{resource_id}"


def iso(moment: datetime, tz: tzinfo) -> str:
    """ISO 8601 with the shop's offset, to the second, as Shopify writes it."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(tz).isoformat(timespec="seconds")


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes of a webhook body: compact UTF-8 JSON, as Shopify sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _token(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class AddressSpec:
    """A postal address (all synthetic in the simulator; only the country in the retail replay)."""

    first_name: str | None = None
    last_name: str | None = None
    address1: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    country: str | None = None
    country_code: str | None = None
    zip: str | None = None
    phone: str | None = None

    @property
    def name(self) -> str | None:
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) if parts else None


@dataclass(frozen=True)
class CustomerSpec:
    """A customer as embedded in an order."""

    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    created_at: datetime
    address: AddressSpec | None = None
    address_id: int | None = None


@dataclass(frozen=True)
class LineItemSpec:
    """One order line: ``discount`` is the amount allocated to the whole line (not per unit)."""

    id: int
    variant_id: int | None
    product_id: int | None
    sku: str | None
    title: str
    variant_title: str | None
    vendor: str | None
    quantity: int
    price: Decimal
    discount: Decimal = ZERO
    taxable: bool = True
    requires_shipping: bool = True
    grams: int = 0

    @property
    def gross(self) -> Decimal:
        return d2(self.price * self.quantity)

    @property
    def net(self) -> Decimal:
        return self.gross - d2(self.discount)

    @property
    def name(self) -> str:
        if self.variant_title and self.variant_title != "Default Title":
            return f"{self.title} - {self.variant_title}"
        return self.title


@dataclass(frozen=True)
class OrderSpec:
    """Everything fixed at checkout; ``OrderStatus`` holds what changes later."""

    id: int
    order_number: int
    created_at: datetime
    tz: tzinfo
    currency: str
    line_items: tuple[LineItemSpec, ...]
    customer: CustomerSpec | None
    email: str | None
    shipping_address: AddressSpec | None
    billing_address: AddressSpec | None
    transaction_id: int
    shipping_price: Decimal = ZERO
    tax_rate: Decimal = ZERO
    taxes_included: bool = False
    tax_title: str = "Sales tax"
    discount_code: str | None = None
    discount_percent: float | None = None
    source_name: str = "web"
    tags: str = ""
    shop_domain: str = "example.myshopify.com"
    shipping_line_id: int | None = None
    note: str | None = None

    @property
    def name(self) -> str:
        return f"#{self.order_number}"


@dataclass(frozen=True)
class RefundLineSpec:
    id: int
    line_item: LineItemSpec
    quantity: int
    restock_type: str = "no_restock"  # Shopify: no_restock | cancel | return | legacy_restock


@dataclass(frozen=True)
class RefundSpec:
    """A refund of some units of some lines (a return)."""

    id: int
    order_id: int
    created_at: datetime
    lines: tuple[RefundLineSpec, ...]
    transaction_id: int
    note: str | None = None
    restock: bool = False


@dataclass(frozen=True)
class OrderStatus:
    """The mutable part of an order at one moment (what ``orders/updated`` reports)."""

    updated_at: datetime
    financial_status: str = "paid"  # pending | authorized | paid | partially_refunded | refunded | voided
    fulfillment_status: str | None = None  # None (unfulfilled) | partial | fulfilled
    fulfilled_at: datetime | None = None
    fulfillment_id: int | None = None
    refunds: tuple[RefundSpec, ...] = field(default=())
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    closed_at: datetime | None = None


def _line_tax(line: LineItemSpec, rate: Decimal, included: bool) -> Decimal:
    if not line.taxable or rate == 0:
        return ZERO
    if included:
        return d2(line.net - line.net / (1 + rate))
    return d2(line.net * rate)


@dataclass(frozen=True)
class OrderTotals:
    line_items_price: Decimal
    discounts: Decimal
    subtotal: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    line_tax: tuple[Decimal, ...]


def order_totals(spec: OrderSpec) -> OrderTotals:
    """Exact order totals from the lines (the invariants the tests check)."""
    line_tax = tuple(_line_tax(li, spec.tax_rate, spec.taxes_included) for li in spec.line_items)
    gross = sum((li.gross for li in spec.line_items), ZERO)
    discounts = sum((d2(li.discount) for li in spec.line_items), ZERO)
    subtotal = gross - discounts
    tax = sum(line_tax, ZERO)
    shipping = d2(spec.shipping_price)
    total = subtotal + shipping + (ZERO if spec.taxes_included else tax)
    return OrderTotals(gross, discounts, subtotal, shipping, tax, total, line_tax)


def refund_line_amounts(line: RefundLineSpec, spec: OrderSpec) -> tuple[Decimal, Decimal, Decimal]:
    """(subtotal after discount, discount share, tax) refunded for ``line.quantity`` units."""
    li = line.line_item
    share = Decimal(line.quantity) / Decimal(li.quantity)
    discount = d2(d2(li.discount) * share)
    subtotal = d2(li.price * line.quantity) - discount
    tax = d2(_line_tax(li, spec.tax_rate, spec.taxes_included) * share)
    return subtotal, discount, tax


def refund_amount(refund: RefundSpec, spec: OrderSpec) -> Decimal:
    """What the refund transaction pays back (subtotal + tax unless taxes are included)."""
    total = ZERO
    for line in refund.lines:
        subtotal, _, tax = refund_line_amounts(line, spec)
        total += subtotal + (ZERO if spec.taxes_included else tax)
    return total


def address_payload(address: AddressSpec | None) -> JsonDict | None:
    if address is None:
        return None
    return {
        "first_name": address.first_name,
        "address1": address.address1,
        "phone": address.phone,
        "city": address.city,
        "zip": address.zip,
        "province": address.province,
        "country": address.country,
        "last_name": address.last_name,
        "address2": None,
        "company": None,
        "latitude": None,
        "longitude": None,
        "name": address.name,
        "country_code": address.country_code,
        "province_code": address.province_code,
    }


def customer_payload(
    customer: CustomerSpec | None, currency: str, tz: tzinfo, updated_at: datetime
) -> JsonDict | None:
    if customer is None:
        return None
    default_address = None
    if customer.address is not None:
        default_address = {
            **{
                k: v
                for k, v in (address_payload(customer.address) or {}).items()
                if k not in ("latitude", "longitude")
            },
            "id": customer.address_id,
            "customer_id": customer.id,
            "country_name": customer.address.country,
            "default": True,
        }
    return {
        "id": customer.id,
        "email": customer.email,
        "created_at": iso(customer.created_at, tz),
        "updated_at": iso(max(updated_at, customer.created_at), tz),
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "state": "enabled" if customer.email else "disabled",
        "note": None,
        "verified_email": customer.email is not None,
        "multipass_identifier": None,
        "tax_exempt": False,
        "phone": customer.phone,
        "email_marketing_consent": None
        if customer.email is None
        else {"state": "not_subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": None},
        "sms_marketing_consent": None,
        "tags": "",
        "currency": currency,
        "tax_exemptions": [],
        "admin_graphql_api_id": gid("Customer", customer.id),
        "default_address": default_address,
    }


def line_item_payload(
    line: LineItemSpec,
    spec: OrderSpec,
    tax: Decimal,
    refunded: int = 0,
    fulfillment_status: str | None = None,
) -> JsonDict:
    cur = spec.currency
    allocations: list[JsonDict] = []
    if d2(line.discount) > 0:
        allocations.append(
            {
                "amount": money(line.discount),
                "amount_set": money_bag(line.discount, cur),
                "discount_application_index": 0,
            }
        )
    tax_lines: list[JsonDict] = []
    if line.taxable and spec.tax_rate > 0:
        tax_lines.append(
            {
                "channel_liable": False,
                "price": money(tax),
                "price_set": money_bag(tax, cur),
                "rate": float(spec.tax_rate),
                "title": spec.tax_title,
            }
        )
    remaining = line.quantity - refunded
    return {
        "id": line.id,
        "admin_graphql_api_id": gid("LineItem", line.id),
        "attributed_staffs": [],
        "current_quantity": remaining,
        "fulfillable_quantity": 0 if fulfillment_status == "fulfilled" else remaining,
        "fulfillment_service": "manual",
        "fulfillment_status": fulfillment_status,
        "gift_card": False,
        "grams": line.grams,
        "name": line.name,
        "price": money(line.price),
        "price_set": money_bag(line.price, cur),
        "product_exists": line.product_id is not None,
        "product_id": line.product_id,
        "properties": [],
        "quantity": line.quantity,
        "requires_shipping": line.requires_shipping,
        "sku": line.sku,
        "taxable": line.taxable,
        "title": line.title,
        # Older API versions put the line's discount here; newer ones only in discount_allocations.
        "total_discount": money(line.discount),
        "total_discount_set": money_bag(line.discount, cur),
        "variant_id": line.variant_id,
        "variant_inventory_management": "shopify" if line.variant_id is not None else None,
        "variant_title": line.variant_title,
        "vendor": line.vendor,
        "tax_lines": tax_lines,
        "duties": [],
        "discount_allocations": allocations,
    }


def refund_payload(refund: RefundSpec, spec: OrderSpec) -> JsonDict:
    """A ``refunds/create`` body (also embedded in ``orders/updated`` under ``refunds``)."""
    cur, tz = spec.currency, spec.tz
    totals = order_totals(spec)
    tax_by_line = dict(zip((li.id for li in spec.line_items), totals.line_tax, strict=True))
    lines: list[JsonDict] = []
    for rl in refund.lines:
        subtotal, _, tax = refund_line_amounts(rl, spec)
        lines.append(
            {
                "id": rl.id,
                "line_item_id": rl.line_item.id,
                "location_id": None,
                "quantity": rl.quantity,
                "restock_type": rl.restock_type,
                "subtotal": float(subtotal),
                "subtotal_set": money_bag(subtotal, cur),
                "total_tax": float(tax),
                "total_tax_set": money_bag(tax, cur),
                "line_item": line_item_payload(
                    rl.line_item, spec, tax_by_line[rl.line_item.id], 0, "fulfilled"
                ),
            }
        )
    amount = refund_amount(refund, spec)
    created = iso(refund.created_at, tz)
    return {
        "id": refund.id,
        "admin_graphql_api_id": gid("Refund", refund.id),
        "created_at": created,
        "note": refund.note,
        "order_id": refund.order_id,
        "processed_at": created,
        "restock": refund.restock,
        "total_duties_set": money_bag(ZERO, cur),
        "user_id": None,
        "order_adjustments": [],
        "transactions": [
            {
                "id": refund.transaction_id,
                "admin_graphql_api_id": gid("OrderTransaction", refund.transaction_id),
                "amount": money(amount),
                "authorization": None,
                "created_at": created,
                "currency": cur,
                "device_id": None,
                "error_code": None,
                "gateway": "shopify_payments",
                "kind": "refund",
                "location_id": None,
                "message": "Transaction approved",
                "order_id": refund.order_id,
                "parent_id": spec.transaction_id,
                "payment_id": f"{spec.name}.2",
                "processed_at": created,
                "receipt": {},
                "source_name": spec.source_name,
                "status": "success",
                "test": False,
                "user_id": None,
            }
        ],
        "refund_line_items": lines,
        "duties": [],
    }


def order_payload(spec: OrderSpec, status: OrderStatus | None = None) -> JsonDict:
    """An ``orders/*`` body for ``spec`` in ``status`` (default: just created and paid)."""
    status = status or OrderStatus(updated_at=spec.created_at)
    cur, tz = spec.currency, spec.tz
    totals = order_totals(spec)
    refunded_qty: dict[int, int] = {}
    refunded_sub = refunded_disc = refunded_tax = ZERO
    for refund in status.refunds:
        for rl in refund.lines:
            refunded_qty[rl.line_item.id] = refunded_qty.get(rl.line_item.id, 0) + rl.quantity
            sub, disc, tax = refund_line_amounts(rl, spec)
            refunded_sub, refunded_disc, refunded_tax = (
                refunded_sub + sub,
                refunded_disc + disc,
                refunded_tax + tax,
            )
    cancelled = status.cancelled_at is not None
    if cancelled:  # a cancelled order keeps its original totals; its current_* drop to zero
        cur_sub = cur_disc = cur_tax = cur_total = ZERO
        refunded_qty = {li.id: li.quantity for li in spec.line_items}
    else:
        cur_sub = totals.subtotal - refunded_sub
        cur_disc = totals.discounts - refunded_disc
        cur_tax = totals.tax - refunded_tax
        cur_total = cur_sub + totals.shipping + (ZERO if spec.taxes_included else cur_tax)
    line_status = "fulfilled" if status.fulfillment_status == "fulfilled" else None
    paid = status.financial_status in ("paid", "partially_refunded", "refunded")
    outstanding = ZERO if paid or cancelled else totals.total
    weight = sum(li.grams * li.quantity for li in spec.line_items)
    discount_codes: list[JsonDict] = []
    discount_applications: list[JsonDict] = []
    if spec.discount_code and totals.discounts > 0:
        discount_codes.append(
            {"code": spec.discount_code, "amount": money(totals.discounts), "type": "percentage"}
        )
        discount_applications.append(
            {
                "target_type": "line_item",
                "type": "discount_code",
                "value": f"{spec.discount_percent or 0:.1f}",
                "value_type": "percentage",
                "allocation_method": "across",
                "target_selection": "all",
                "code": spec.discount_code,
            }
        )
    tax_lines: list[JsonDict] = []
    if spec.tax_rate > 0:
        tax_lines.append(
            {
                "price": money(totals.tax),
                "rate": float(spec.tax_rate),
                "title": spec.tax_title,
                "price_set": money_bag(totals.tax, cur),
                "channel_liable": False,
            }
        )
    shipping_lines: list[JsonDict] = []
    if spec.shipping_line_id is not None:
        shipping_lines.append(
            {
                "id": spec.shipping_line_id,
                "carrier_identifier": None,
                "code": "Standard",
                "discounted_price": money(totals.shipping),
                "discounted_price_set": money_bag(totals.shipping, cur),
                "is_removed": False,
                "phone": None,
                "price": money(totals.shipping),
                "price_set": money_bag(totals.shipping, cur),
                "requested_fulfillment_service_id": None,
                "source": "shopify",
                "title": "Standard" if totals.shipping > 0 else "Free shipping",
                "tax_lines": [],
                "discount_allocations": [],
            }
        )
    fulfillments: list[JsonDict] = []
    if status.fulfillment_status == "fulfilled" and status.fulfilled_at is not None:
        fid = status.fulfillment_id or spec.id
        fulfillments.append(
            {
                "id": fid,
                "admin_graphql_api_id": gid("Fulfillment", fid),
                "created_at": iso(status.fulfilled_at, tz),
                "location_id": None,
                "name": f"{spec.name}.1",
                "order_id": spec.id,
                "service": "manual",
                "shipment_status": None,
                "status": "success",
                "tracking_company": None,
                "tracking_number": None,
                "tracking_numbers": [],
                "tracking_url": None,
                "tracking_urls": [],
                "updated_at": iso(status.fulfilled_at, tz),
                "line_items": [{"id": li.id, "quantity": li.quantity} for li in spec.line_items],
            }
        )
    token = _token("order", spec.id)
    created = iso(spec.created_at, tz)
    return {
        "id": spec.id,
        "admin_graphql_api_id": gid("Order", spec.id),
        "app_id": 580111 if spec.source_name == "web" else None,
        "browser_ip": None,
        "buyer_accepts_marketing": False,
        "cancel_reason": status.cancel_reason,
        "cancelled_at": None if status.cancelled_at is None else iso(status.cancelled_at, tz),
        "cart_token": None,
        "checkout_id": None,
        "checkout_token": None,
        "client_details": None,
        "closed_at": None if status.closed_at is None else iso(status.closed_at, tz),
        "confirmation_number": token[:9].upper(),
        "confirmed": True,
        "contact_email": spec.email,
        "created_at": created,
        "currency": cur,
        "current_subtotal_price": money(cur_sub),
        "current_subtotal_price_set": money_bag(cur_sub, cur),
        "current_total_additional_fees_set": None,
        "current_total_discounts": money(cur_disc),
        "current_total_discounts_set": money_bag(cur_disc, cur),
        "current_total_duties_set": None,
        "current_total_price": money(cur_total),
        "current_total_price_set": money_bag(cur_total, cur),
        "current_total_tax": money(cur_tax),
        "current_total_tax_set": money_bag(cur_tax, cur),
        "customer_locale": "en",
        "device_id": None,
        "discount_codes": discount_codes,
        "email": spec.email,
        "estimated_taxes": False,
        "financial_status": status.financial_status,
        "fulfillment_status": status.fulfillment_status,
        "landing_site": None,
        "landing_site_ref": None,
        "location_id": None,
        "merchant_of_record_app_id": None,
        "name": spec.name,
        "note": spec.note,
        "note_attributes": [],
        "number": spec.order_number - 1000 if spec.order_number > 1000 else spec.order_number,
        "order_number": spec.order_number,
        "order_status_url": f"https://{spec.shop_domain}/orders/{token}/authenticate?key={token[:16]}",
        "original_total_additional_fees_set": None,
        "original_total_duties_set": None,
        "payment_gateway_names": ["shopify_payments"],
        "phone": None,
        "po_number": None,
        "presentment_currency": cur,
        "processed_at": created,
        "reference": None,
        "referring_site": None,
        "source_identifier": None,
        "source_name": spec.source_name,
        "source_url": None,
        "subtotal_price": money(totals.subtotal),
        "subtotal_price_set": money_bag(totals.subtotal, cur),
        "tags": spec.tags,
        "tax_exempt": False,
        "tax_lines": tax_lines,
        "taxes_included": spec.taxes_included,
        "test": False,
        "token": token,
        "total_discounts": money(totals.discounts),
        "total_discounts_set": money_bag(totals.discounts, cur),
        "total_line_items_price": money(totals.line_items_price),
        "total_line_items_price_set": money_bag(totals.line_items_price, cur),
        "total_outstanding": money(outstanding),
        "total_price": money(totals.total),
        "total_price_set": money_bag(totals.total, cur),
        "total_shipping_price_set": money_bag(totals.shipping, cur),
        "total_tax": money(totals.tax),
        "total_tax_set": money_bag(totals.tax, cur),
        "total_tip_received": "0.00",
        "total_weight": weight,
        "updated_at": iso(status.updated_at, tz),
        "user_id": None,
        "billing_address": address_payload(spec.billing_address),
        "customer": customer_payload(spec.customer, cur, tz, status.updated_at),
        "discount_applications": discount_applications,
        "fulfillments": fulfillments,
        "line_items": [
            line_item_payload(li, spec, tax, refunded_qty.get(li.id, 0), line_status)
            for li, tax in zip(spec.line_items, totals.line_tax, strict=True)
        ],
        "payment_terms": None,
        "refunds": [refund_payload(r, spec) for r in status.refunds],
        "shipping_address": address_payload(spec.shipping_address),
        "shipping_lines": shipping_lines,
    }


def product_payload(
    product: Product,
    tz: tzinfo,
    updated_at: datetime,
    prices: Mapping[int, Decimal] | None = None,
    inventory: Mapping[int, int] | None = None,
    variant_updated_at: Mapping[int, datetime] | None = None,
) -> JsonDict:
    """A ``products/create`` / ``products/update`` body; ``prices`` and ``inventory`` by variant id."""
    prices = prices or {}
    inventory = inventory or {}
    variant_updated_at = variant_updated_at or {}
    option_id = 9_000_000_000_000 + (product.id % 1_000_000_000_000)
    variants: list[JsonDict] = []
    for v in product.variants:
        v_updated = variant_updated_at.get(v.id, updated_at)
        qty = int(inventory.get(v.id, 0))
        price = prices.get(v.id, v.price)
        compare = (
            v.compare_at_price if v.compare_at_price is not None and v.compare_at_price > price else None
        )
        variants.append(
            {
                "id": v.id,
                "product_id": product.id,
                "title": v.title,
                "price": money(price),
                "position": v.position,
                "inventory_policy": "deny",
                "compare_at_price": None if compare is None else money(compare),
                "option1": v.title,
                "option2": None,
                "option3": None,
                "created_at": iso(v.created_at, tz),
                "updated_at": iso(v_updated, tz),
                "taxable": True,
                "barcode": None,
                "fulfillment_service": "manual",
                "grams": v.grams,
                "inventory_management": "shopify",
                "requires_shipping": True,
                "sku": v.sku,
                "weight": round(v.grams / 1000, 3),
                "weight_unit": "kg",
                "inventory_item_id": v.inventory_item_id,
                "inventory_quantity": qty,
                "old_inventory_quantity": qty,
                "image_id": None,
                "admin_graphql_api_id": gid("ProductVariant", v.id),
            }
        )
    return {
        "admin_graphql_api_id": gid("Product", product.id),
        "body_html": product.body_html,
        "created_at": iso(product.created_at, tz),
        "handle": product.handle,
        "id": product.id,
        "product_type": product.product_type,
        "published_at": iso(product.created_at, tz),
        "template_suffix": None,
        "title": product.title,
        "updated_at": iso(updated_at, tz),
        "vendor": product.vendor,
        "status": "active",
        "published_scope": "global",
        "tags": ", ".join(product.tags),
        "variants": variants,
        "options": [
            {
                "id": option_id,
                "product_id": product.id,
                "name": product.option_name,
                "position": 1,
                "values": [v.title for v in product.variants],
            }
        ],
        "images": [],
        "image": None,
        "media": [],
        "variant_gids": [
            {
                "admin_graphql_api_id": gid("ProductVariant", v.id),
                "updated_at": iso(variant_updated_at.get(v.id, updated_at), tz),
            }
            for v in product.variants
        ],
        "has_variants_that_requires_components": False,
        "category": None,
    }


def inventory_level_payload(
    inventory_item_id: int, location_id: int, available: int, updated_at: datetime, tz: tzinfo
) -> JsonDict:
    """An ``inventory_levels/update`` body."""
    return {
        "inventory_item_id": inventory_item_id,
        "location_id": location_id,
        "available": int(available),
        "updated_at": iso(updated_at, tz),
        "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={inventory_item_id}",
    }


def money_fields(payload: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every (path, value) in ``payload`` that holds Shopify money (for validation and tests).

    Money keys: ``price``, ``amount``, ``total_*``/``subtotal_*``/``current_*`` strings and the
    amounts inside ``*_set`` bags. Refund lines' numeric ``subtotal``/``total_tax`` are skipped
    (Shopify sends them as numbers).
    """
    found: list[tuple[str, Any]] = []
    money_keys = ("price", "amount", "total_discount", "discounted_price")
    for key, value in payload.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found += money_fields(value, path + ".")
        elif isinstance(value, Sequence) and not isinstance(value, str):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    found += money_fields(item, f"{path}[{i}].")
        elif isinstance(value, str) and (
            key in money_keys
            or (key.startswith(("total_", "subtotal_", "current_")) and key not in ("total_weight",))
        ):
            found.append((path, value))
    return found
