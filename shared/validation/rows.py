"""Typed warehouse rows from a validated, normalised webhook body (pure, no I/O).

Each builder takes the loaded fields that the schema walk returned (Shopify's field names,
already converted) and the event's metadata, and returns rows keyed by table. A row has
exactly the columns of ``shared/schemas/tables/<table>.json``, in order: loaded fields with a
column of the same name go straight in, derived columns are computed here, anything else is
left out, and a column with no value is NULL.

Personal data is minimised: email and phone become keyed hashes (HMAC-SHA256 with the
deployment's PII key) so the same person can be joined across rows without the value being
stored; names, addresses, email and phone in clear only when ``store_pii`` is on. Coarse
location (country and province codes) is kept. With no PII key the hash columns stay NULL: an
unkeyed hash of an email address is reversible by guessing.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared.validation.values import EXACT

Row = dict[str, Any]
Rows = dict[str, list[Row]]
_PHONE_NOISE = re.compile(r"[^\d+]")
_ZERO = Decimal(0)
# Loaded fields that become other columns (or rows of other tables), not columns of their own.
_ORDER_NESTED = (
    "line_items",
    "customer",
    "shipping_address",
    "billing_address",
    "total_shipping_price_set",
    "refunds",
)
_LINE_NESTED = ("tax_lines", "discount_allocations")


@dataclass(frozen=True, slots=True)
class Pii:
    """How personal data is written: hashed with ``key`` (bytes), in clear only if ``store``."""

    store: bool
    key: bytes

    def email_hash(self, email: str | None) -> str | None:
        if not email or not self.key:
            return None
        normalised = email.strip().lower()
        return hmac.digest(self.key, normalised.encode("utf-8"), "sha256").hex() if normalised else None

    def phone_hash(self, phone: str | None) -> str | None:
        if not phone or not self.key:
            return None
        normalised = _PHONE_NOISE.sub("", phone)
        return hmac.digest(self.key, normalised.encode("utf-8"), "sha256").hex() if normalised else None

    def clear(self, value: Any) -> Any:
        return value if self.store else None

    def address_json(self, address: dict[str, Any] | None) -> str | None:
        if not self.store or not address:
            return None
        raw = address.get("_raw", address)
        return json.dumps(raw, sort_keys=True, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    """Exact sum of the non-null values; None when there are none."""
    total: Decimal | None = None
    for value in values:
        if value is not None:
            total = value if total is None else EXACT.add(total, value)
    return total


def _amounts(items: list[dict[str, Any]] | None, key: str) -> Decimal | None:
    """Exact sum of ``key`` over ``items`` (0 for an empty list); None when the list is absent."""
    if items is None:
        return None
    total = _ZERO
    for item in items:
        value = item.get(key)
        if value is not None:
            total = EXACT.add(total, value)
    return total


TABLES_DIR = Path(__file__).resolve().parent.parent / "schemas" / "tables"


@dataclass(frozen=True, slots=True)
class Layout:
    """A table's columns (from its JSON file): a row template of NULLs and the column set."""

    template: dict[str, None]
    columns: frozenset[str]

    def row(self, *parts: Mapping[str, Any], drop: tuple[str, ...] = ()) -> Row:
        """Template, overlaid by ``parts`` in order; keys that are not columns are removed.

        ``drop`` names the expected non-columns (nested objects already turned into columns),
        removed cheaply; any other stray key is still found and removed, never written.
        """
        row: Row = self.template.copy()
        for part in parts:
            row.update(part)
        for name in drop:
            row.pop(name, None)
        if len(row) != len(self.template):
            for extra in row.keys() - self.columns:
                del row[extra]
        return row


@functools.cache
def layout(table: str) -> Layout:
    """The layout of ``shared/schemas/tables/<table>.json`` (read once per process)."""
    schema = json.loads((TABLES_DIR / f"{table}.json").read_text())["schema"]
    names = [column["name"] for column in schema]
    return Layout(dict.fromkeys(names), frozenset(names))


def order_rows(doc: dict[str, Any], meta: Row, shop: str, pii: Pii) -> Rows:
    """``orders`` (one row), ``order_line_items`` and the refunds embedded in the order."""
    order_id = doc["id"]
    customer = doc.get("customer") or {}
    email = doc.get("email") or customer.get("email")
    phone = doc.get("phone") or customer.get("phone")
    shipping = doc.get("shipping_address") or {}
    billing = doc.get("billing_address") or {}
    shipping_bag = doc.get("total_shipping_price_set") or {}
    line_items = doc["line_items"]
    order = layout("orders").row(
        doc,
        {
            "shop_domain": shop,
            "total_shipping_price": (shipping_bag.get("shop_money") or {}).get("amount"),
            "discount_codes": [
                {"code": code.get("code"), "amount": code.get("amount"), "type": code.get("type")}
                for code in doc.get("discount_codes", ())
            ],
            "customer_id": customer.get("id"),
            "email_hash": pii.email_hash(email),
            "phone_hash": pii.phone_hash(phone),
            "email": pii.clear(email),
            "phone": pii.clear(phone),
            "shipping_country_code": shipping.get("country_code"),
            "shipping_province_code": shipping.get("province_code"),
            "billing_country_code": billing.get("country_code"),
            "shipping_address_json": pii.address_json(shipping),
            "billing_address_json": pii.address_json(billing),
            "line_item_count": len(line_items),
        },
        meta,
        drop=_ORDER_NESTED,
    )
    lines_layout = layout("order_line_items")
    per_order = {
        "shop_domain": shop,
        "order_id": order_id,
        "order_created_at": doc["created_at"],
        "order_updated_at": doc["updated_at"],
        "currency": doc["currency"],
        **meta,
    }
    lines = [
        lines_layout.row(
            item,
            {
                "discount_allocations_amount": _amounts(item.get("discount_allocations"), "amount"),
                "tax_amount": _amounts(item.get("tax_lines"), "price"),
            },
            per_order,
            drop=_LINE_NESTED,
        )
        for item in line_items
    ]
    rows: Rows = {"orders": [order], "order_line_items": lines}
    refunds: list[Row] = []
    refund_lines: list[Row] = []
    for refund in doc.get("refunds", ()):
        embedded = refund_rows(refund, meta, shop, pii)
        refunds += embedded["refunds"]
        refund_lines += embedded["refund_line_items"]
    if refunds:
        rows["refunds"] = refunds
        rows["refund_line_items"] = refund_lines
    return rows


def refund_rows(doc: dict[str, Any], meta: Row, shop: str, pii: Pii) -> Rows:
    """``refunds`` (one row) and ``refund_line_items`` (units and amounts refunded per line)."""
    paid_back = [
        t
        for t in doc.get("transactions", ())
        if t.get("kind") == "refund" and t.get("status", "success") == "success"
    ]
    refund_lines = doc.get("refund_line_items", ())
    refund = layout("refunds").row(
        doc,
        {
            "shop_domain": shop,
            "currency": next((t["currency"] for t in paid_back if t.get("currency")), None),
            "transactions_amount": _sum(t.get("amount") for t in paid_back),
            "order_adjustments_amount": _amounts(doc.get("order_adjustments"), "amount"),
            "refund_line_item_count": len(refund_lines),
        },
        meta,
    )
    lines_layout = layout("refund_line_items")
    per_refund = {
        "shop_domain": shop,
        "refund_id": doc["id"],
        "order_id": doc["order_id"],
        "refund_created_at": doc["created_at"],
        "refund_processed_at": doc.get("processed_at"),
        **meta,
    }
    lines = []
    for line in refund_lines:
        item = line.get("line_item") or {}
        lines.append(
            lines_layout.row(
                line,
                {
                    "variant_id": item.get("variant_id"),
                    "product_id": item.get("product_id"),
                    "sku": item.get("sku"),
                },
                per_refund,
            )
        )
    return {"refunds": [refund], "refund_line_items": lines}


def product_rows(doc: dict[str, Any], meta: Row, shop: str, pii: Pii) -> Rows:
    """``products`` (one row, ``deleted`` false) and ``variants`` of this product version."""
    variants = doc.get("variants", ())
    product = layout("products").row(
        doc, {"shop_domain": shop, "deleted": False, "variant_count": len(variants)}, meta
    )
    variants_layout = layout("variants")
    per_product = {"shop_domain": shop, "product_updated_at": doc.get("updated_at"), **meta}
    return {
        "products": [product],
        "variants": [
            variants_layout.row(v, {"product_id": v.get("product_id") or doc["id"]}, per_product)
            for v in variants
        ],
    }


def product_tombstone(doc: dict[str, Any], meta: Row, shop: str, deleted_at: datetime) -> Rows:
    """``products/delete``: a tombstone row (``deleted`` true) that wins in ``products_latest``."""
    row = layout("products").row(
        {"shop_domain": shop, "id": doc["id"], "updated_at": deleted_at, "deleted": True, "variant_count": 0},
        meta,
    )
    return {"products": [row]}


def inventory_level_rows(doc: dict[str, Any], meta: Row, shop: str, pii: Pii) -> Rows:
    """``inventory_levels``: keyed by (inventory_item_id, location_id); Shopify gives it no id."""
    return {"inventory_levels": [layout("inventory_levels").row(doc, {"shop_domain": shop}, meta)]}


def customer_rows(doc: dict[str, Any], meta: Row, shop: str, pii: Pii) -> Rows:
    """``customers``: hashed email/phone, coarse location; clear personal data only if allowed."""
    address = doc.get("default_address") or {}
    email, phone = doc.get("email"), doc.get("phone")
    row = layout("customers").row(
        doc,
        {
            "shop_domain": shop,
            "email_marketing_state": (doc.get("email_marketing_consent") or {}).get("state"),
            "country_code": address.get("country_code"),
            "province_code": address.get("province_code"),
            "email_hash": pii.email_hash(email),
            "phone_hash": pii.phone_hash(phone),
            "email": pii.clear(email),
            "phone": pii.clear(phone),
            "first_name": pii.clear(doc.get("first_name")),
            "last_name": pii.clear(doc.get("last_name")),
            "default_address_json": pii.address_json(address),
        },
        meta,
    )
    return {"customers": [row]}


def no_rows(doc: dict[str, Any], meta: Row, shop: str, pii: Pii) -> Rows:
    """``app/uninstalled``: kept in ``raw_events`` only."""
    return {}


BUILDERS: dict[str, Callable[[dict[str, Any], Row, str, Pii], Rows]] = {
    "Order": order_rows,
    "Refund": refund_rows,
    "Product": product_rows,
    "InventoryLevel": inventory_level_rows,
    "Customer": customer_rows,
    "Shop": no_rows,
}
