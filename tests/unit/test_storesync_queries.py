"""Every GraphQL document backfill and reconcile send is valid against the stand-in's schema
(Admin API 2025-10 names) and requests at most Shopify's 1,000-point single-query limit."""

from __future__ import annotations

import pytest
from graphql import get_operation_ast, parse, validate

from devkit.backfill import MORE_REFUND_LINES
from devkit.connect import CREATE, DELETE, LIST, UPDATE
from devkit.shopify_standin.bulk import check_bulk_query
from devkit.shopify_standin.cost import MAX_QUERY_COST, CostCalculator
from devkit.shopify_standin.engine import SCHEMA
from shared.storesync import queries as q
from shared.storesync.reconcile import MORE_VARIANTS

PAGED = {
    "SCOPES": (q.SCOPES, {}),
    "RUN_BULK": (q.RUN_BULK, {"query": "{ shop { name } }"}),
    "BULK_STATUS": (q.BULK_STATUS, {"id": "gid://shopify/BulkOperation/1"}),
    "CURRENT_BULK": (q.CURRENT_BULK, {}),
    "REFUNDS_BY_ID": (q.REFUNDS_BY_ID, {"ids": ["gid://shopify/Refund/1"] * q.REFUNDS_PER_CALL}),
    "ORDERS_CHANGED": (q.ORDERS_CHANGED, {"q": "updated_at:>'2024-01-01T00:00:00Z'"}),
    "ORDERS_BY_ID": (q.ORDERS_BY_ID, {"ids": ["gid://shopify/Order/1"] * q.ORDERS_PER_CALL}),
    "MORE_LINE_ITEMS": (q.MORE_LINE_ITEMS, {"id": "gid://shopify/Order/1"}),
    "PRODUCTS_CHANGED": (q.PRODUCTS_CHANGED, {}),
    "PRODUCTS_BY_ID": (q.PRODUCTS_BY_ID, {"ids": ["gid://shopify/Product/1"] * q.PRODUCTS_PER_CALL}),
    "LOCATIONS": (q.LOCATIONS, {}),
    "LEVELS_CHANGED": (q.LEVELS_CHANGED, {"id": "gid://shopify/Location/1"}),
    "DELETIONS": (q.DELETIONS, {}),
    "MORE_REFUND_LINES": (MORE_REFUND_LINES, {"id": "gid://shopify/Refund/1"}),
    "MORE_VARIANTS": (MORE_VARIANTS, {"id": "gid://shopify/Product/1"}),
    "connect LIST": (LIST, {}),
    "connect CREATE": (CREATE, {"topic": "ORDERS_CREATE", "sub": {"uri": "https://x.example/"}}),
    "connect UPDATE": (UPDATE, {"id": "gid://shopify/WebhookSubscription/1", "sub": {"uri": "https://x/"}}),
    "connect DELETE": (DELETE, {"id": "gid://shopify/WebhookSubscription/1"}),
}


@pytest.mark.parametrize("name", sorted(PAGED))
def test_documents_are_valid_and_within_the_single_query_limit(name: str) -> None:
    text, variables = PAGED[name]
    document = parse(text)
    assert validate(SCHEMA, document) == []
    operation = get_operation_ast(document)
    assert operation is not None
    cost = CostCalculator(SCHEMA, operation, {}, variables).requested()
    assert 0 < cost <= MAX_QUERY_COST, f"{name} requests {cost} points"


@pytest.mark.parametrize(
    "query", [q.BULK_PRODUCTS, q.bulk_orders("created_at:>='2024-01-01T00:00:00Z'"), q.BULK_INVENTORY]
)
def test_bulk_queries_follow_the_bulk_rules(query: str) -> None:
    assert check_bulk_query(query) is None
