"""The stand-in's store: what a Shopify store holds, built from the simulator's webhook bodies.

A Shopify store is the truth webhooks report on. Here it is the other way round: the store
simulator (``devkit/simulator``) produces webhook events, and ``StoreState.apply`` folds each
event into the store's current state (the newest version of every order, product, variant,
inventory level and refund), exactly what the Admin API would answer for that moment. Objects
are kept as GraphQL-shaped dicts (field names of the Admin API, ``gid://shopify/...`` ids, UTC
``DateTime``s, money as ``MoneyBag``); references between objects (a line item's variant, a
variant's inventory item) are ``Ref``s resolved when read, so they always show the current
object. Deleting a product records a ``DeletionEvent``, as Shopify does.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

JsonDict = dict[str, Any]

ALL_ORDERS_WINDOW = timedelta(days=60)  # without read_all_orders, older orders are invisible


@dataclass(frozen=True)
class Ref:
    """A reference to another object of the store, resolved on read (``StoreState.resolve``)."""

    type_name: str
    legacy_id: int


def gid(type_name: str, legacy_id: int | str) -> str:
    return f"gid://shopify/{type_name}/{legacy_id}"


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def utc_text(text: str | None) -> str | None:
    """A REST timestamp (with the shop's offset) as the Admin API's UTC ``DateTime``."""
    moment = parse_time(text)
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def decimal_text(value: Any) -> str:
    """Money the way the Admin API writes a ``Decimal``: no trailing zeros beyond one (``31.0``)."""
    number = Decimal(str(value))
    text = format(number.normalize(), "f")
    return text if "." in text else f"{text}.0"


def bag(rest_set: Mapping[str, Any] | None, fallback: Any = None, currency: str = "USD") -> JsonDict | None:
    """A REST ``*_set`` (``shop_money``/``presentment_money``) as a ``MoneyBag``."""
    if rest_set:
        shop = rest_set.get("shop_money") or {}
        pres = rest_set.get("presentment_money") or shop
        return {
            "shopMoney": {"amount": decimal_text(shop["amount"]), "currencyCode": shop["currency_code"]},
            "presentmentMoney": {
                "amount": decimal_text(pres["amount"]),
                "currencyCode": pres["currency_code"],
            },
        }
    if fallback is None:
        return None
    money = {"amount": decimal_text(fallback), "currencyCode": currency}
    return {"shopMoney": money, "presentmentMoney": dict(money)}


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


def _tags(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _address(rest: Mapping[str, Any] | None) -> JsonDict | None:
    if not rest:
        return None
    return {
        "address1": rest.get("address1"),
        "city": rest.get("city"),
        "province": rest.get("province"),
        "provinceCode": rest.get("province_code"),
        "country": rest.get("country"),
        "countryCodeV2": rest.get("country_code"),
        "zip": rest.get("zip"),
        "firstName": rest.get("first_name"),
        "lastName": rest.get("last_name"),
        "phone": rest.get("phone"),
    }


def line_item_node(rest: Mapping[str, Any], currency: str) -> JsonDict:
    return {
        "__typename": "LineItem",
        "id": gid("LineItem", rest["id"]),
        "name": rest.get("name") or rest.get("title") or "",
        "title": rest.get("title") or "",
        "variantTitle": rest.get("variant_title"),
        "sku": rest.get("sku"),
        "vendor": rest.get("vendor"),
        "quantity": rest["quantity"],
        "currentQuantity": rest.get("current_quantity", rest["quantity"]),
        "taxable": bool(rest.get("taxable", True)),
        "requiresShipping": bool(rest.get("requires_shipping", True)),
        "originalUnitPriceSet": bag(rest.get("price_set"), rest["price"], currency),
        "totalDiscountSet": bag(rest.get("total_discount_set"), rest.get("total_discount", "0"), currency),
        "discountAllocations": [
            {"allocatedAmountSet": bag(a.get("amount_set"), a.get("amount", "0"), currency)}
            for a in rest.get("discount_allocations") or []
        ],
        "taxLines": [
            {
                "title": t.get("title"),
                "rate": t.get("rate"),
                "priceSet": bag(t.get("price_set"), t["price"], currency),
            }
            for t in rest.get("tax_lines") or []
        ],
        "variant": Ref("ProductVariant", rest["variant_id"]) if rest.get("variant_id") else None,
        "product": Ref("Product", rest["product_id"]) if rest.get("product_id") else None,
    }


def refund_node(rest: Mapping[str, Any], currency: str) -> JsonDict:
    transactions = [
        {
            "__typename": "OrderTransaction",
            "id": gid("OrderTransaction", t["id"]),
            "kind": (t.get("kind") or "refund").upper(),
            "status": (t.get("status") or "success").upper(),
            "gateway": t.get("gateway"),
            "amountSet": bag(None, t["amount"], t.get("currency") or currency),
            "createdAt": utc_text(t.get("created_at")),
            "processedAt": utc_text(t.get("processed_at")),
            "parentTransaction": (
                {"__typename": "OrderTransaction", "id": gid("OrderTransaction", t["parent_id"])}
                if t.get("parent_id")
                else None
            ),
        }
        for t in rest.get("transactions") or []
    ]
    refunded = sum((Decimal(str(t["amount"])) for t in rest.get("transactions") or []), Decimal("0"))
    return {
        "__typename": "Refund",
        "id": gid("Refund", rest["id"]),
        "legacyResourceId": str(rest["id"]),
        "createdAt": utc_text(rest.get("created_at")),
        "updatedAt": utc_text(rest.get("processed_at") or rest.get("created_at")),
        "note": rest.get("note"),
        "order": Ref("Order", rest["order_id"]),
        "totalRefundedSet": bag(None, refunded, currency),
        "refundLineItems": [
            {
                "id": gid("RefundLineItem", r["id"]),
                "quantity": r["quantity"],
                "restockType": (r.get("restock_type") or "no_restock").upper(),
                "restocked": (r.get("restock_type") or "no_restock") != "no_restock",
                "subtotalSet": bag(r.get("subtotal_set"), r.get("subtotal", 0), currency),
                "totalTaxSet": bag(r.get("total_tax_set"), r.get("total_tax", 0), currency),
                "lineItem": line_item_node(r["line_item"], currency)
                if r.get("line_item")
                else {"__typename": "LineItem", "id": gid("LineItem", r["line_item_id"])},
            }
            for r in rest.get("refund_line_items") or []
        ],
        "transactions": transactions,
    }


def order_node(rest: Mapping[str, Any]) -> JsonDict:
    currency = rest.get("currency") or "USD"
    customer = rest.get("customer")
    fulfillment = rest.get("fulfillment_status")
    return {
        "__typename": "Order",
        "id": gid("Order", rest["id"]),
        "legacyResourceId": str(rest["id"]),
        "name": rest.get("name") or f"#{rest.get('order_number', rest['id'])}",
        "createdAt": utc_text(rest["created_at"]),
        "updatedAt": utc_text(rest["updated_at"]),
        "processedAt": utc_text(rest.get("processed_at") or rest["created_at"]),
        "cancelledAt": utc_text(rest.get("cancelled_at")),
        "cancelReason": _upper(rest.get("cancel_reason")),
        "closedAt": utc_text(rest.get("closed_at")),
        "email": rest.get("email"),
        "phone": rest.get("phone"),
        "currencyCode": currency,
        "presentmentCurrencyCode": rest.get("presentment_currency") or currency,
        "displayFinancialStatus": _upper(rest.get("financial_status")),
        "displayFulfillmentStatus": "FULFILLED" if fulfillment == "fulfilled" else "UNFULFILLED",
        "taxesIncluded": bool(rest.get("taxes_included")),
        "test": bool(rest.get("test")),
        "sourceName": rest.get("source_name"),
        "tags": _tags(rest.get("tags")),
        "discountCodes": [c.get("code") for c in rest.get("discount_codes") or [] if c.get("code")],
        "totalPriceSet": bag(rest.get("total_price_set"), rest["total_price"], currency),
        "subtotalPriceSet": bag(rest.get("subtotal_price_set"), rest.get("subtotal_price"), currency),
        "subtotalLineItemsPriceSet": bag(
            rest.get("total_line_items_price_set"), rest.get("total_line_items_price"), currency
        ),
        "totalTaxSet": bag(rest.get("total_tax_set"), rest.get("total_tax"), currency),
        "totalDiscountsSet": bag(rest.get("total_discounts_set"), rest.get("total_discounts"), currency),
        "totalShippingPriceSet": bag(rest.get("total_shipping_price_set"), "0", currency),
        "totalOutstandingSet": bag(None, rest.get("total_outstanding") or "0", currency),
        "currentTotalPriceSet": bag(
            rest.get("current_total_price_set"),
            rest.get("current_total_price", rest["total_price"]),
            currency,
        ),
        "currentSubtotalPriceSet": bag(
            rest.get("current_subtotal_price_set"), rest.get("current_subtotal_price", "0"), currency
        ),
        "currentTotalTaxSet": bag(
            rest.get("current_total_tax_set"), rest.get("current_total_tax", "0"), currency
        ),
        "currentTotalDiscountsSet": bag(
            rest.get("current_total_discounts_set"), rest.get("current_total_discounts", "0"), currency
        ),
        "customer": None
        if not customer
        else {
            "__typename": "Customer",
            "id": gid("Customer", customer["id"]),
            "legacyResourceId": str(customer["id"]),
            "email": customer.get("email"),
            "phone": customer.get("phone"),
            "firstName": customer.get("first_name"),
            "lastName": customer.get("last_name"),
            "createdAt": utc_text(customer.get("created_at") or rest["created_at"]),
            "updatedAt": utc_text(customer.get("updated_at") or rest["updated_at"]),
        },
        "shippingAddress": _address(rest.get("shipping_address")),
        "billingAddress": _address(rest.get("billing_address")),
        "lineItems": [line_item_node(li, currency) for li in rest.get("line_items") or []],
    }


def variant_node(rest: Mapping[str, Any], product_id: int) -> JsonDict:
    options = [rest.get(f"option{i}") for i in (1, 2, 3)]
    return {
        "__typename": "ProductVariant",
        "id": gid("ProductVariant", rest["id"]),
        "legacyResourceId": str(rest["id"]),
        "title": rest.get("title") or "Default Title",
        "sku": rest.get("sku"),
        "barcode": rest.get("barcode"),
        "price": decimal_text(rest["price"]) if rest.get("price") is not None else "0.0",
        "compareAtPrice": decimal_text(rest["compare_at_price"]) if rest.get("compare_at_price") else None,
        "position": rest.get("position") or 1,
        "taxable": bool(rest.get("taxable", True)),
        "inventoryPolicy": (rest.get("inventory_policy") or "deny").upper(),
        "inventoryQuantity": rest.get("inventory_quantity"),
        "selectedOptions": [{"name": f"Option{i + 1}", "value": v} for i, v in enumerate(options) if v],
        "createdAt": utc_text(rest.get("created_at")),
        "updatedAt": utc_text(rest.get("updated_at")),
        "product": Ref("Product", product_id),
        "inventoryItem": Ref("InventoryItem", rest["inventory_item_id"]),
    }


def product_node(rest: Mapping[str, Any]) -> JsonDict:
    return {
        "__typename": "Product",
        "id": gid("Product", rest["id"]),
        "legacyResourceId": str(rest["id"]),
        "title": rest.get("title") or "",
        "handle": rest.get("handle") or "",
        "vendor": rest.get("vendor") or "",
        "productType": rest.get("product_type") or "",
        "status": (rest.get("status") or "active").upper(),
        "tags": _tags(rest.get("tags")),
        "descriptionHtml": rest.get("body_html") or "",
        "createdAt": utc_text(rest.get("created_at")),
        "updatedAt": utc_text(rest.get("updated_at")),
        "publishedAt": utc_text(rest.get("published_at")),
        "variants": [variant_node(v, rest["id"]) for v in rest.get("variants") or []],
    }


@dataclass
class Subscription:
    id: int
    topic: str  # the enum value, ORDERS_CREATE
    uri: str
    format: str
    filter: str | None
    include_fields: list[str]
    created_at: str
    updated_at: str

    def node(self) -> JsonDict:
        return {
            "__typename": "WebhookSubscription",
            "id": gid("WebhookSubscription", self.id),
            "legacyResourceId": str(self.id),
            "topic": self.topic,
            "uri": self.uri,
            "format": self.format,
            "filter": self.filter,
            "includeFields": list(self.include_fields),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass
class ShopData:
    """One shop's objects (the Admin API's view of one store)."""

    domain: str
    timezone: str = "America/New_York"
    currency: str = "USD"
    orders: dict[int, JsonDict] = field(default_factory=dict)
    order_refunds: dict[int, dict[int, JsonDict]] = field(default_factory=dict)
    products: dict[int, JsonDict] = field(default_factory=dict)
    variants: dict[int, JsonDict] = field(default_factory=dict)
    inventory_items: dict[int, JsonDict] = field(default_factory=dict)
    levels: dict[tuple[int, int], JsonDict] = field(default_factory=dict)
    locations: dict[int, JsonDict] = field(default_factory=dict)
    deletion_events: list[JsonDict] = field(default_factory=list)
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    latest_event: datetime | None = None

    def snapshot(self) -> ShopData:
        """A copy of the shop's indexes (the objects themselves are shared): a bulk query runs
        on it without holding the store's lock, as Shopify's bulk operations do not hold up
        other requests."""
        return dataclasses.replace(
            self,
            orders=dict(self.orders),
            order_refunds={k: dict(v) for k, v in self.order_refunds.items()},
            products=dict(self.products),
            variants=dict(self.variants),
            inventory_items=dict(self.inventory_items),
            levels=dict(self.levels),
            locations=dict(self.locations),
            deletion_events=list(self.deletion_events),
            subscriptions=dict(self.subscriptions),
        )


class StoreState:
    """Every shop the stand-in serves; thread-safe (the HTTP server answers from threads)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.shops: dict[str, ShopData] = {}
        self.lock = threading.RLock()
        self._clock = clock
        self._next_id = 1_000_000

    # -- time ------------------------------------------------------------------------------
    def now(self, shop: str | None = None) -> datetime:
        """The store's present: the clock if one was given, else the newest event applied
        (a simulated store lives in its own time), else the wall clock."""
        if self._clock is not None:
            return self._clock()
        data = self.shops.get(shop or "")
        if data is not None and data.latest_event is not None:
            return data.latest_event
        return datetime.now(UTC)

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def shop(self, domain: str) -> ShopData:
        with self.lock:
            if domain not in self.shops:
                self.shops[domain] = ShopData(domain)
            return self.shops[domain]

    # -- events ----------------------------------------------------------------------------
    def apply_all(self, events: Iterable[Any]) -> int:
        count = 0
        for event in events:
            self.apply(event.topic, event.shop_domain, event.payload(), event.occurred_at)
            count += 1
        return count

    def apply(self, topic: str, shop_domain: str, body: Mapping[str, Any], occurred_at: datetime) -> None:
        """Fold one webhook body into the store (what the store looked like when it was sent)."""
        with self.lock:
            data = self.shop(shop_domain)
            if data.latest_event is None or occurred_at > data.latest_event:
                data.latest_event = occurred_at
            if topic.startswith("orders/"):
                self._put_order(data, body)
            elif topic == "refunds/create":
                self._put_refund(data, body)
            elif topic in ("products/create", "products/update"):
                self._put_product(data, body)
            elif topic == "products/delete":
                self.delete_product(shop_domain, int(body["id"]), occurred_at)
            elif topic == "inventory_levels/update":
                self._put_level(data, body)

    def _newer(self, old: Mapping[str, Any] | None, new_updated: str | None) -> bool:
        return old is None or (new_updated or "") >= (old.get("updatedAt") or "")

    def _put_order(self, data: ShopData, rest: Mapping[str, Any]) -> None:
        node = order_node(rest)
        if not self._newer(data.orders.get(rest["id"]), node["updatedAt"]):
            return
        data.orders[rest["id"]] = node
        for refund in rest.get("refunds") or []:
            self._put_refund(data, {**refund, "order_id": rest["id"]}, bump=False)

    def _put_refund(self, data: ShopData, rest: Mapping[str, Any], bump: bool = True) -> None:
        order_id = int(rest["order_id"])
        currency = (data.orders.get(order_id) or {}).get("currencyCode") or data.currency
        data.order_refunds.setdefault(order_id, {})[int(rest["id"])] = refund_node(rest, currency)
        order = data.orders.get(order_id)
        created = utc_text(rest.get("created_at"))
        if bump and order is not None and created and created > order["updatedAt"]:
            order["updatedAt"] = created  # a refund changes its order, as in Shopify

    def _put_product(self, data: ShopData, rest: Mapping[str, Any]) -> None:
        node = product_node(rest)
        if not self._newer(data.products.get(rest["id"]), node["updatedAt"]):
            return
        data.products[rest["id"]] = node
        for variant_rest, variant in zip(rest.get("variants") or [], node["variants"], strict=True):
            data.variants[variant_rest["id"]] = variant
            item_id = int(variant_rest["inventory_item_id"])
            item = data.inventory_items.get(item_id)
            if item is None:
                item = {
                    "__typename": "InventoryItem",
                    "id": gid("InventoryItem", item_id),
                    "legacyResourceId": str(item_id),
                    "tracked": True,
                    "createdAt": variant["createdAt"],
                    "updatedAt": variant["updatedAt"],
                    "inventoryLevels": [],
                }
                data.inventory_items[item_id] = item
            item["sku"] = variant["sku"]
            item["variant"] = Ref("ProductVariant", variant_rest["id"])

    def _put_level(self, data: ShopData, rest: Mapping[str, Any]) -> None:
        item_id, location_id = int(rest["inventory_item_id"]), int(rest["location_id"])
        updated = utc_text(rest["updated_at"])
        old = data.levels.get((item_id, location_id))
        if old is not None and (old["updatedAt"] or "") > (updated or ""):
            return
        if location_id not in data.locations:
            data.locations[location_id] = {
                "__typename": "Location",
                "id": gid("Location", location_id),
                "legacyResourceId": str(location_id),
                "name": f"Location {len(data.locations) + 1}",
                "inventoryLevels": [],
            }
        available = rest.get("available")
        level = {
            "__typename": "InventoryLevel",
            "id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item_id}",
            "createdAt": (old or {}).get("createdAt") or updated,
            "updatedAt": updated,
            "location": Ref("Location", location_id),
            "item": Ref("InventoryItem", item_id),
            "available": available,
        }
        data.levels[(item_id, location_id)] = level

    def delete_product(self, shop_domain: str, product_id: int, at: datetime) -> bool:
        """Delete a product (an admin action): its variants go, a ``DeletionEvent`` stays."""
        with self.lock:
            data = self.shop(shop_domain)
            product = data.products.pop(product_id, None)
            if product is None:
                return False
            for variant in product["variants"]:
                data.variants.pop(int(variant["legacyResourceId"]), None)
            data.deletion_events.append(
                {
                    "occurredAt": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "subjectId": gid("Product", product_id),
                    "subjectType": "PRODUCT",
                }
            )
            return True

    # -- reading ---------------------------------------------------------------------------
    def refunds_of(self, data: ShopData, order_id: int) -> list[JsonDict]:
        return [data.order_refunds[order_id][k] for k in sorted(data.order_refunds.get(order_id, {}))]

    def resolve(self, data: ShopData, ref: Ref) -> JsonDict | None:
        table: Mapping[Any, JsonDict] = {
            "Order": data.orders,
            "Product": data.products,
            "ProductVariant": data.variants,
            "InventoryItem": data.inventory_items,
            "Location": data.locations,
        }.get(ref.type_name, {})
        return table.get(ref.legacy_id)

    def levels_of_item(self, data: ShopData, item_id: int) -> list[JsonDict]:
        return [lvl for (item, _), lvl in sorted(data.levels.items()) if item == item_id]

    def levels_at(self, data: ShopData, location_id: int) -> list[JsonDict]:
        return [lvl for (_, loc), lvl in sorted(data.levels.items()) if loc == location_id]
