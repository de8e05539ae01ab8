"""The Admin API stand-in answers as Shopify documents: auth, versions, cost, throttling,
pagination, search, read_all_orders, webhook subscriptions, bulk operations, deletions."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devkit.shopify_standin import StandIn
from devkit.shopify_standin.bulk import check_bulk_query, flatten
from devkit.shopify_standin.cost import LeakyBucket
from devkit.shopify_standin.engine import check_uri, parse_search
from tests.standin import SHOP, TOKEN, post, simulated_stand_in

ORDERS_PAGE = """query($after: String, $q: String) {
  orders(first: 25, after: $after, query: $q) {
    edges { cursor node { id updatedAt createdAt lineItems(first: 10) { nodes { id quantity } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.fixture(scope="module")
def store() -> Iterator[StandIn]:
    standin, _ = simulated_stand_in()
    yield standin
    standin.stop()


def all_orders(standin: StandIn, search: str | None = None) -> list[dict]:
    nodes: list[dict] = []
    after = None
    while True:
        status, answer = post(standin, ORDERS_PAGE, {"after": after, "q": search})
        assert status == 200 and "errors" not in answer, answer
        page = answer["data"]["orders"]
        nodes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def test_token_and_version_are_checked(store: StandIn) -> None:
    assert post(store, "{ shop { name } }", token="wrong")[0] == 401
    assert post(store, "{ shop { name } }", version="2019-04")[0] == 404
    status, answer = post(store, "{ shop { myshopifyDomain } }")
    assert status == 200 and answer["data"]["shop"]["myshopifyDomain"] == SHOP


def test_every_answer_carries_the_cost_and_throttle_status(store: StandIn) -> None:
    _, answer = post(store, "{ orders(first: 10) { nodes { id lineItems(first: 5) { nodes { id } } } } }")
    cost = answer["extensions"]["cost"]
    # a connection costs 2 + first x (1 + what each node selects): 2 + 10 x (1 + 2 + 5)
    assert cost["requestedQueryCost"] == 82
    returned = answer["data"]["orders"]["nodes"]
    assert cost["actualQueryCost"] == 2 + sum(3 + len(o["lineItems"]["nodes"]) for o in returned)
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 2000 and status["restoreRate"] == 100
    assert 0 < status["currentlyAvailable"] <= 2000


def test_a_query_over_1000_points_is_refused_before_it_runs(store: StandIn) -> None:
    _, answer = post(store, "{ orders(first: 250) { nodes { id lineItems(first: 250) { nodes { id } } } } }")
    assert answer["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert "data" not in answer


def test_an_empty_bucket_answers_throttled_and_runs_nothing() -> None:
    standin, _ = simulated_stand_in(maximum_available=100, restore_rate=1)
    try:
        query = "{ orders(first: 30) { nodes { id } } }"  # 2 + 30 = 32 points requested
        answers = [post(standin, query)[1] for _ in range(5)]
        throttled = [a for a in answers if "errors" in a]
        assert throttled, "the fourth request cannot fit a 100-point bucket"
        error = throttled[0]["errors"][0]
        assert error["message"] == "Throttled" and error["extensions"]["code"] == "THROTTLED"
        assert "data" not in throttled[0]
        assert throttled[0]["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 32
        assert standin.stats[SHOP].throttled == len(throttled)
    finally:
        standin.stop()


def test_leaky_bucket_refills_at_the_restore_rate() -> None:
    now = [0.0]
    bucket = LeakyBucket(100, 10, clock=lambda: now[0])
    assert bucket.take(100) and not bucket.take(1)
    now[0] = 2.5
    assert bucket.available() == pytest.approx(25)
    bucket.refund(500)
    assert bucket.available() == 100


def test_cursor_pagination_returns_every_order_once(store: StandIn) -> None:
    orders = all_orders(store)
    ids = [o["id"] for o in orders]
    assert len(ids) == len(set(ids)) == len(store.state.shops[SHOP].orders)
    assert ids == sorted(ids, key=lambda i: (len(i), i))


def test_updated_at_search_filters_orders(store: StandIn) -> None:
    since = "2024-11-20T00:00:00Z"
    orders = all_orders(store, f"updated_at:>'{since}'")
    truth = [o for o in store.state.shops[SHOP].orders.values() if o["updatedAt"] > since]
    assert {o["id"] for o in orders} == {o["id"] for o in truth} and orders
    assert parse_search("updated_at:>=2024-01-01 AND created_at:<'2024-02-01T00:00:00Z'") == [
        ("updated_at", ">=", "2024-01-01"),
        ("created_at", "<", "2024-02-01T00:00:00Z"),
    ]


def test_first_is_required_and_bounded(store: StandIn) -> None:
    _, answer = post(store, "{ orders { nodes { id } } }")
    assert "first or last" in answer["errors"][0]["message"]
    _, answer = post(store, "{ products(first: 251) { nodes { id } } }")
    assert "250" in answer["errors"][0]["message"]


def test_without_read_all_orders_only_the_last_60_days_are_visible(store: StandIn) -> None:
    store.add_token("limited", SHOP, {"read_orders", "read_products"})
    store.state._clock = lambda: datetime(2025, 1, 10, tzinfo=UTC)
    try:
        _, answer = post(store, "{ orders(first: 250) { nodes { createdAt } } }", token="limited")
        visible = answer["data"]["orders"]["nodes"]
        assert all(o["createdAt"] >= "2024-11-11T00:00:00Z" for o in visible)
        assert 0 < len(visible) < len(store.state.shops[SHOP].orders)
        _, scopes = post(store, "{ currentAppInstallation { accessScopes { handle } } }", token="limited")
        handles = {s["handle"] for s in scopes["data"]["currentAppInstallation"]["accessScopes"]}
        assert "read_all_orders" not in handles
    finally:
        store.state._clock = None


def test_webhook_subscriptions_create_list_update_delete(store: StandIn) -> None:
    create = """mutation($topic: WebhookSubscriptionTopic!, $uri: String!) {
      webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
        webhookSubscription { id topic uri } userErrors { field message } } }"""
    _, made = post(store, create, {"topic": "ORDERS_CREATE", "uri": "pubsub://shopml-prod:shopify-events"})
    sub = made["data"]["webhookSubscriptionCreate"]["webhookSubscription"]
    assert sub["uri"] == "pubsub://shopml-prod:shopify-events"
    _, again = post(store, create, {"topic": "ORDERS_CREATE", "uri": "pubsub://shopml-prod:shopify-events"})
    assert "already been taken" in again["data"]["webhookSubscriptionCreate"]["userErrors"][0]["message"]
    _, bad = post(store, create, {"topic": "ORDERS_CREATE", "uri": "http://example.com/hook"})
    assert bad["data"]["webhookSubscriptionCreate"]["userErrors"]
    update = """mutation($id: ID!, $uri: String!) {
      webhookSubscriptionUpdate(id: $id, webhookSubscription: {uri: $uri}) {
      webhookSubscription { uri } userErrors { message } } }"""
    _, changed = post(store, update, {"id": sub["id"], "uri": "https://example.com/webhooks"})
    assert (
        changed["data"]["webhookSubscriptionUpdate"]["webhookSubscription"]["uri"]
        == "https://example.com/webhooks"
    )
    _, listed = post(
        store, "{ webhookSubscriptions(first: 50, topics: [ORDERS_CREATE]) { nodes { id uri } } }"
    )
    assert listed["data"]["webhookSubscriptions"]["nodes"] == [
        {"id": sub["id"], "uri": "https://example.com/webhooks"}
    ]
    delete = (
        "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) "
        "{ deletedWebhookSubscriptionId userErrors { message } } }"
    )
    _, gone = post(store, delete, {"id": sub["id"]})
    assert gone["data"]["webhookSubscriptionDelete"]["deletedWebhookSubscriptionId"] == sub["id"]
    assert post(store, delete, {"id": sub["id"]})[1]["data"]["webhookSubscriptionDelete"]["userErrors"]
    _, cost = post(store, delete, {"id": sub["id"]})
    assert cost["extensions"]["cost"]["requestedQueryCost"] == 10  # a mutation costs 10


def test_subscription_addresses_follow_shopify_rules() -> None:
    assert check_uri("https://x.example/hook") is None
    assert check_uri("pubsub://my-project-1:shopify-events") is None
    assert check_uri("pubsub://x:y") is not None
    assert check_uri("http://127.0.0.1:8080/") is None  # the stand-in's one exception: loopback
    assert check_uri("http://example.com/") is not None
    assert check_uri("") is not None


def run_bulk(standin: StandIn, query: str) -> dict:
    mutation = (
        "mutation($q: String!) { bulkOperationRunQuery(query: $q) "
        "{ bulkOperation { id status } userErrors { message code } } }"
    )
    _, answer = post(standin, mutation, {"q": query})
    payload = answer["data"]["bulkOperationRunQuery"]
    assert not payload["userErrors"], payload
    op_id = payload["bulkOperation"]["id"]
    for _ in range(200):
        _, polled = post(
            standin,
            "query($id: ID!) { node(id: $id) { ... on BulkOperation "
            "{ status url objectCount rootObjectCount } } }",
            {"id": op_id},
        )
        node = polled["data"]["node"]
        if node["status"] == "COMPLETED":
            return node
        time.sleep(0.02)
    raise AssertionError("bulk operation did not complete")


def test_bulk_query_writes_jsonl_with_parent_ids(store: StandIn) -> None:
    op = run_bulk(
        store,
        "{ orders { edges { node { id refunds { id } lineItems { edges { node { id quantity } } } } } } }",
    )
    lines = [json.loads(line) for line in urllib.request.urlopen(op["url"]).read().splitlines()]
    orders = [line for line in lines if "__parentId" not in line]
    items = [line for line in lines if "__parentId" in line]
    assert len(orders) == int(op["rootObjectCount"]) == len(store.state.shops[SHOP].orders)
    assert len(lines) == int(op["objectCount"])
    truth = {o["id"]: len(o["lineItems"]) for o in store.state.shops[SHOP].orders.values()}
    per_order: dict[str, int] = {}
    seen: set[str] = set()
    for line in lines:  # a child comes after its parent
        if "__parentId" in line:
            assert line["__parentId"] in seen
            per_order[line["__parentId"]] = per_order.get(line["__parentId"], 0) + 1
        else:
            seen.add(line["id"])
            assert "lineItems" not in line
    assert per_order == {k: v for k, v in truth.items() if v} and items


def test_bulk_query_rules() -> None:
    assert check_bulk_query("{ shop { name } }") is not None  # no connection
    assert "list field" in str(
        check_bulk_query("{ orders { edges { node { refunds { refundLineItems { nodes { id } } } } } } }")
    )
    assert check_bulk_query("{ orders { edges { node { id } } } }") is None
    assert check_bulk_query("{ nope }") is not None
    lines, roots = flatten(
        {"products": {"edges": [{"node": {"id": "p1", "variants": {"nodes": [{"id": "v1"}]}}}]}}
    )
    assert roots == 1 and lines == [{"id": "p1"}, {"id": "v1", "__parentId": "p1"}]


def test_one_bulk_query_at_a_time_per_shop(store: StandIn) -> None:
    store.bulk.delay_s = 0.5
    try:
        mutation = (
            "mutation($q: String!) { bulkOperationRunQuery(query: $q) "
            "{ bulkOperation { id } userErrors { code } } }"
        )
        first = post(store, mutation, {"q": "{ products { edges { node { id } } } }"})[1]
        second = post(store, mutation, {"q": "{ products { edges { node { id } } } }"})[1]
        assert first["data"]["bulkOperationRunQuery"]["bulkOperation"]
        assert second["data"]["bulkOperationRunQuery"]["userErrors"][0]["code"] == "OPERATION_IN_PROGRESS"
    finally:
        store.bulk.delay_s = 0.05
        time.sleep(1.2)


def test_deleted_products_leave_deletion_events(store: StandIn) -> None:
    data = store.state.shops[SHOP]
    product_id = sorted(data.products)[0]
    assert store.state.delete_product(SHOP, product_id, datetime(2024, 12, 1, tzinfo=UTC))
    _, answer = post(
        store,
        """{ deletionEvents(first: 10, subjectTypes: [PRODUCT],
                            query: "occurred_at:>'2024-11-30T00:00:00Z'") {
             nodes { subjectId subjectType occurredAt } } }""",
    )
    assert answer["data"]["deletionEvents"]["nodes"] == [
        {
            "subjectId": f"gid://shopify/Product/{product_id}",
            "subjectType": "PRODUCT",
            "occurredAt": "2024-12-01T00:00:00Z",
        }
    ]
    _, node = post(
        store, "query($id: ID!) { product(id: $id) { id } }", {"id": f"gid://shopify/Product/{product_id}"}
    )
    assert node["data"]["product"] is None


def test_injected_faults_answer_429_with_retry_after(store: StandIn) -> None:
    store.fail_next(429, retry_after=1.5)
    request = urllib.request.Request(
        f"{store.url}/admin/api/2025-10/graphql.json",
        b'{"query": "{ shop { name } }"}',
        {"X-Shopify-Access-Token": TOKEN, "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 429 and raised.value.headers["Retry-After"] == "1.5"
    assert post(store, "{ shop { name } }")[0] == 200
