"""Helpers for tests that talk to the Shopify Admin API stand-in (``devkit/shopify_standin``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date
from typing import Any

from devkit.shopify_standin import StandIn
from devkit.simulator import StoreSimulator

SHOP = "shopml-demo.myshopify.com"
TOKEN = "shpat_test_token"


def simulated_stand_in(
    n_variants: int = 6, start: date = date(2024, 11, 1), days: int = 30, seed: int = 0, **kwargs: Any
) -> tuple[StandIn, StoreSimulator]:
    """A started stand-in holding a simulated store's state at the end of its range."""
    standin = StandIn(**kwargs)
    standin.add_token(TOKEN, SHOP)
    sim = StoreSimulator(seed, n_variants, start, shop_domain=SHOP, days=days)
    standin.state.apply_all(sim.events())
    return standin.start(), sim


def post(
    standin: StandIn,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str = TOKEN,
    version: str = "2025-10",
) -> tuple[int, dict[str, Any]]:
    """POST one GraphQL request; (HTTP status, JSON answer)."""
    request = urllib.request.Request(
        f"{standin.url}/admin/api/{version}/graphql.json",
        json.dumps({"query": query, "variables": variables}).encode(),
        {"Content-Type": "application/json", "X-Shopify-Access-Token": token},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


# --- comparing warehouse state ----------------------------------------------------------------

LATEST_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # view: (key columns, compared columns)
    "orders_latest": (
        ("id",),
        ("name", "order_number", "created_at", "updated_at", "cancelled_at", "cancel_reason", "currency",
         "total_price", "subtotal_price", "total_tax", "total_discounts", "total_line_items_price",
         "total_shipping_price", "current_total_price", "current_subtotal_price", "current_total_tax",
         "financial_status", "fulfillment_status", "customer_id", "line_item_count", "source_name", "tags"),
    ),
    "order_line_items_latest": (
        ("id",),
        ("order_id", "variant_id", "product_id", "sku", "title", "quantity", "current_quantity", "price",
         "total_discount", "discount_allocations_amount", "tax_amount", "taxable"),
    ),
    "refunds_latest": (("id",), ("order_id", "created_at", "transactions_amount", "refund_line_item_count")),
    "refund_line_items_latest": (
        ("id",),
        ("refund_id", "order_id", "line_item_id", "variant_id", "quantity", "restock_type", "subtotal",
         "total_tax"),
    ),
    "products_latest": (
        ("id",),
        ("title", "handle", "vendor", "product_type", "status", "tags", "created_at", "updated_at", "deleted",
         "variant_count"),
    ),
    "variants_latest": (
        ("id",),
        ("product_id", "title", "sku", "position", "price", "compare_at_price", "inventory_item_id",
         "inventory_quantity", "taxable", "option1", "updated_at"),
    ),
    "inventory_levels_latest": (("inventory_item_id", "location_id"), ("available", "updated_at")),
}  # fmt: skip


def latest_state(warehouse: Any, shop: str = SHOP) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Every latest-state view of ``shop`` as {key: compared values}."""
    state: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    for view, (keys, columns) in LATEST_COLUMNS.items():
        rows = warehouse.query(
            f"SELECT {', '.join(keys + columns)} FROM {view} WHERE shop_domain = @shop",  # noqa: S608
            {"shop": shop},
        )
        state[view] = {tuple(r[k] for k in keys): tuple(r[c] for c in columns) for r in rows}
    return state


def differences(expected: dict[str, dict[Any, Any]], actual: dict[str, dict[Any, Any]]) -> dict[str, Any]:
    """Per view: keys missing, keys extra, and keys whose values differ (a few of each)."""
    out: dict[str, Any] = {}
    for view in expected:
        want, have = expected[view], actual.get(view, {})
        missing = sorted(set(want) - set(have), key=str)[:3]
        extra = sorted(set(have) - set(want), key=str)[:3]
        changed = [
            (k, want[k], have[k]) for k in sorted(set(want) & set(have), key=str) if want[k] != have[k]
        ][:3]
        if missing or extra or changed:
            out[view] = {"missing": missing, "extra": extra, "changed": changed,
                         "counts": (len(want), len(have))}  # fmt: skip
    return out
