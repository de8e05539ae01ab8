"""Admin API GraphQL objects → the webhook bodies validation expects (pure, no I/O).

Backfill and reconcile publish what the Admin API returns onto ``shopify-events`` as if it were
a webhook, so the same validation and load apply. Shopify's GraphQL objects differ from its
REST webhook bodies: camelCase fields, ``gid://shopify/<Type>/<id>`` ids, money as a
``MoneyBag`` (``shopMoney``/``presentmentMoney``, amounts as strings), enums in upper case,
UTC ``DateTime``s. The functions here write the REST shape back: snake_case, numeric ids from
GIDs (``legacyResourceId`` where asked for), money from ``shopMoney`` (the shop's currency, as
the REST fields are) with ``*_set`` bags, lower-case statuses, tags joined with ``", "``.

Each ``StoreEvent`` carries the matching ``shopify_topic`` (``orders/create`` when an order
was never updated, ``orders/updated`` otherwise; ``refunds/create``; ``products/create`` /
``products/update``; ``inventory_levels/update``; ``products/delete`` from a deletion event)
and a deterministic delivery id: a UUID5 of the resource's GID and its ``updatedAt``, so
publishing the same version twice loads it once (typed rows are keyed by the delivery id).

Fields the Admin API does not expose the way webhooks carry them stay out (null in the typed
tables): a line item's ``fulfillable_quantity`` and ``fulfillment_status``, a refund line's
``location_id``, ``order_adjustments``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

JsonDict = dict[str, Any]
DELIVERY_NAMESPACE = uuid.UUID("6c7a1f0e-5b1d-4c1e-9a57-73686f706d6c")  # fixed: ids must not change
_GID = re.compile(r"gid://shopify/(\w+)/(\d+)")


def legacy_id(gid: str | None) -> int | None:
    """``gid://shopify/Order/5000004795213`` → 5000004795213 (None stays None)."""
    if gid is None:
        return None
    match = _GID.match(gid)
    if match is None:
        raise ValueError(f"{gid!r} is not a Shopify global id")
    return int(match.group(2))


def delivery_id(gid: str, updated_at: str | None) -> str:
    """The deterministic delivery (webhook) id of one version of one resource."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{gid}|{updated_at or ''}"))


def _money(bag: Mapping[str, Any] | None) -> str | None:
    if not bag:
        return None
    return str((bag.get("shopMoney") or {}).get("amount"))


def _money_set(bag: Mapping[str, Any] | None) -> JsonDict | None:
    if not bag:
        return None
    shop = bag.get("shopMoney") or {}
    pres = bag.get("presentmentMoney") or shop
    return {
        "shop_money": {"amount": str(shop.get("amount")), "currency_code": shop.get("currencyCode")},
        "presentment_money": {"amount": str(pres.get("amount")), "currency_code": pres.get("currencyCode")},
    }


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _address(node: Mapping[str, Any] | None) -> JsonDict | None:
    if not node:
        return None
    return {
        "first_name": node.get("firstName"),
        "last_name": node.get("lastName"),
        "address1": node.get("address1"),
        "city": node.get("city"),
        "province": node.get("province"),
        "province_code": node.get("provinceCode"),
        "country": node.get("country"),
        "country_code": node.get("countryCodeV2"),
        "zip": node.get("zip"),
        "phone": node.get("phone"),
    }


def line_item_body(node: Mapping[str, Any]) -> JsonDict:
    variant = node.get("variant") or {}
    product = node.get("product") or {}
    return {
        "id": legacy_id(node["id"]),
        "admin_graphql_api_id": node["id"],
        "variant_id": legacy_id(variant.get("id")),
        "product_id": legacy_id(product.get("id")),
        "sku": node.get("sku"),
        "title": node.get("title"),
        "variant_title": node.get("variantTitle"),
        "vendor": node.get("vendor"),
        "name": node.get("name"),
        "quantity": node.get("quantity"),
        "current_quantity": node.get("currentQuantity"),
        "price": _money(node.get("originalUnitPriceSet")),
        "price_set": _money_set(node.get("originalUnitPriceSet")),
        "total_discount": _money(node.get("totalDiscountSet")),
        "total_discount_set": _money_set(node.get("totalDiscountSet")),
        "discount_allocations": [
            {
                "amount": _money(a.get("allocatedAmountSet")),
                "amount_set": _money_set(a.get("allocatedAmountSet")),
            }
            for a in node.get("discountAllocations") or []
        ],
        "tax_lines": [
            {
                "title": t.get("title"),
                "rate": t.get("rate"),
                "price": _money(t.get("priceSet")),
                "price_set": _money_set(t.get("priceSet")),
            }
            for t in node.get("taxLines") or []
        ],
        "taxable": node.get("taxable"),
        "requires_shipping": node.get("requiresShipping"),
        "gift_card": False,
    }


def order_body(node: Mapping[str, Any], line_items: Sequence[Mapping[str, Any]]) -> JsonDict:
    """An order (``lineItems`` given separately: a bulk result has them on their own lines)."""
    customer = node.get("customer")
    name = node.get("name") or ""
    number = int(name.lstrip("#")) if name.lstrip("#").isdigit() else None
    fulfillment = node.get("displayFulfillmentStatus")
    return {
        "id": legacy_id(node["id"]),
        "admin_graphql_api_id": node["id"],
        "name": name,
        "order_number": number,
        "created_at": node["createdAt"],
        "updated_at": node["updatedAt"],
        "processed_at": node.get("processedAt"),
        "cancelled_at": node.get("cancelledAt"),
        "cancel_reason": _lower(node.get("cancelReason")),
        "closed_at": node.get("closedAt"),
        "email": node.get("email"),
        "phone": node.get("phone"),
        "currency": node["currencyCode"],
        "presentment_currency": node.get("presentmentCurrencyCode"),
        "financial_status": _lower(node.get("displayFinancialStatus")),
        "fulfillment_status": "fulfilled" if fulfillment == "FULFILLED" else None,
        "taxes_included": node.get("taxesIncluded"),
        "test": node.get("test"),
        "source_name": node.get("sourceName"),
        "tags": ", ".join(node.get("tags") or []),
        "discount_codes": [{"code": code} for code in node.get("discountCodes") or []],
        "total_price": _money(node.get("totalPriceSet")),
        "total_price_set": _money_set(node.get("totalPriceSet")),
        "subtotal_price": _money(node.get("subtotalPriceSet")),
        "subtotal_price_set": _money_set(node.get("subtotalPriceSet")),
        "total_line_items_price": _money(node.get("subtotalLineItemsPriceSet")),
        "total_line_items_price_set": _money_set(node.get("subtotalLineItemsPriceSet")),
        "total_tax": _money(node.get("totalTaxSet")),
        "total_tax_set": _money_set(node.get("totalTaxSet")),
        "total_discounts": _money(node.get("totalDiscountsSet")),
        "total_discounts_set": _money_set(node.get("totalDiscountsSet")),
        "total_shipping_price_set": _money_set(node.get("totalShippingPriceSet")),
        "total_outstanding": _money(node.get("totalOutstandingSet")),
        "current_total_price": _money(node.get("currentTotalPriceSet")),
        "current_total_price_set": _money_set(node.get("currentTotalPriceSet")),
        "current_subtotal_price": _money(node.get("currentSubtotalPriceSet")),
        "current_subtotal_price_set": _money_set(node.get("currentSubtotalPriceSet")),
        "current_total_tax": _money(node.get("currentTotalTaxSet")),
        "current_total_tax_set": _money_set(node.get("currentTotalTaxSet")),
        "current_total_discounts": _money(node.get("currentTotalDiscountsSet")),
        "current_total_discounts_set": _money_set(node.get("currentTotalDiscountsSet")),
        "customer": None
        if not customer
        else {
            "id": legacy_id(customer["id"]),
            "admin_graphql_api_id": customer["id"],
            "email": customer.get("email"),
            "phone": customer.get("phone"),
            "first_name": customer.get("firstName"),
            "last_name": customer.get("lastName"),
        },
        "shipping_address": _address(node.get("shippingAddress")),
        "billing_address": _address(node.get("billingAddress")),
        "line_items": [line_item_body(li) for li in line_items],
    }


def refund_body(node: Mapping[str, Any], order_gid: str) -> JsonDict:
    lines = [edge for edge in (node.get("refundLineItems") or {}).get("nodes") or []]
    transactions = (node.get("transactions") or {}).get("nodes") or []
    return {
        "id": legacy_id(node["id"]),
        "admin_graphql_api_id": node["id"],
        "order_id": legacy_id(order_gid),
        "created_at": node.get("createdAt"),
        "processed_at": node.get("createdAt"),
        "note": node.get("note"),
        "restock": any(line.get("restocked") for line in lines),
        "refund_line_items": [
            {
                "id": legacy_id(line.get("id")),
                "line_item_id": legacy_id(line["lineItem"]["id"]),
                "quantity": line["quantity"],
                "restock_type": _lower(line.get("restockType")),
                "subtotal": _money(line.get("subtotalSet")),
                "subtotal_set": _money_set(line.get("subtotalSet")),
                "total_tax": _money(line.get("totalTaxSet")),
                "total_tax_set": _money_set(line.get("totalTaxSet")),
                "line_item": line_item_body(line["lineItem"]),
            }
            for line in lines
        ],
        "transactions": [
            {
                "id": legacy_id(t["id"]),
                "admin_graphql_api_id": t["id"],
                "kind": _lower(t.get("kind")),
                "status": _lower(t.get("status")),
                "gateway": t.get("gateway"),
                "amount": _money(t.get("amountSet")),
                "currency": ((t.get("amountSet") or {}).get("shopMoney") or {}).get("currencyCode"),
                "created_at": t.get("createdAt"),
                "processed_at": t.get("processedAt"),
                "parent_id": legacy_id((t.get("parentTransaction") or {}).get("id")),
            }
            for t in transactions
        ],
        "order_adjustments": [],
    }


def variant_body(node: Mapping[str, Any], product_id: int | None) -> JsonDict:
    options = [o.get("value") for o in node.get("selectedOptions") or []] + [None, None, None]
    return {
        "id": legacy_id(node["id"]),
        "admin_graphql_api_id": node["id"],
        "product_id": product_id,
        "title": node.get("title"),
        "sku": node.get("sku"),
        "barcode": node.get("barcode"),
        "position": node.get("position"),
        "price": node.get("price"),
        "compare_at_price": node.get("compareAtPrice"),
        "inventory_item_id": legacy_id((node.get("inventoryItem") or {}).get("id")),
        "inventory_quantity": node.get("inventoryQuantity"),
        "inventory_policy": _lower(node.get("inventoryPolicy")),
        "taxable": node.get("taxable"),
        "option1": options[0],
        "option2": options[1],
        "option3": options[2],
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
    }


def product_body(node: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> JsonDict:
    product_id = legacy_id(node["id"])
    return {
        "id": product_id,
        "admin_graphql_api_id": node["id"],
        "title": node.get("title"),
        "body_html": node.get("descriptionHtml"),
        "handle": node.get("handle"),
        "vendor": node.get("vendor"),
        "product_type": node.get("productType"),
        "status": _lower(node.get("status")),
        "tags": ", ".join(node.get("tags") or []),
        "published_at": node.get("publishedAt"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "variants": [variant_body(v, product_id) for v in variants],
    }


def inventory_level_body(node: Mapping[str, Any], item_gid: str, location_gid: str) -> JsonDict:
    quantities = {q["name"]: q["quantity"] for q in node.get("quantities") or []}
    return {
        "inventory_item_id": legacy_id(item_gid),
        "location_id": legacy_id(location_gid),
        "available": quantities.get("available"),
        "updated_at": node["updatedAt"],
        "admin_graphql_api_id": node.get("id"),
    }


@dataclass(frozen=True)
class StoreEvent:
    """One resource version as a webhook: topic, body and deterministic delivery id."""

    topic: str
    shop: str
    gid: str
    updated_at: str
    body: JsonDict

    @property
    def webhook_id(self) -> str:
        return delivery_id(self.gid, self.updated_at)

    def data(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def attributes(self, source: str, api_version: str, received_at: datetime) -> dict[str, str]:
        return {
            "shopify_topic": self.topic,
            "shop_domain": self.shop,
            "webhook_id": self.webhook_id,
            "api_version": api_version,
            "triggered_at": self.updated_at,
            "received_at": received_at.isoformat(),
            "source": source,
        }


def order_event(shop: str, node: Mapping[str, Any], line_items: Sequence[Mapping[str, Any]]) -> StoreEvent:
    topic = "orders/create" if node["updatedAt"] == node["createdAt"] else "orders/updated"
    return StoreEvent(topic, shop, node["id"], node["updatedAt"], order_body(node, line_items))


def refund_event(shop: str, node: Mapping[str, Any], order_gid: str) -> StoreEvent:
    stamp = node.get("updatedAt") or node.get("createdAt") or ""
    return StoreEvent("refunds/create", shop, node["id"], stamp, refund_body(node, order_gid))


def product_event(shop: str, node: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> StoreEvent:
    topic = "products/create" if node.get("updatedAt") == node.get("createdAt") else "products/update"
    return StoreEvent(topic, shop, node["id"], node.get("updatedAt") or "", product_body(node, variants))


def inventory_event(shop: str, node: Mapping[str, Any], item_gid: str, location_gid: str) -> StoreEvent:
    gid = node.get("id") or f"{location_gid}?inventory_item_id={legacy_id(item_gid)}"
    body = inventory_level_body(node, item_gid, location_gid)
    return StoreEvent("inventory_levels/update", shop, gid, node["updatedAt"], body)


def deletion_event(shop: str, node: Mapping[str, Any]) -> StoreEvent:
    """A ``DeletionEvent`` of a product as the ``products/delete`` webhook (``{"id": ...}``)."""
    return StoreEvent(
        "products/delete", shop, node["subjectId"], node["occurredAt"], {"id": legacy_id(node["subjectId"])}
    )
