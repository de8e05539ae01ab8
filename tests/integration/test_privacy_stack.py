"""Privacy requests on the local stack: Shopify's signed webhooks through ingest_webhook, the
store events loaded by validate_load, the privacy webhook routed to compliance by Pub/Sub push,
and dead letters held on the emulator's ``<dlq>-hold`` subscription."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.local.stack import LocalStack, StackInfo
from shared.adapters.pubsub import admin_clients, drain_subscription
from shared.bootstrap import create_warehouse
from tests.conftest import SECRET, shopify_headers
from tests.integration import waiting
from tests.privacy_support import (
    A_EMAIL,
    A_ID,
    A_ORDER,
    A_PHONE,
    A_TRACES,
    B_ID,
    KEY,
    SHOP,
    a_order,
    b_order,
    fixture,
    traces,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with LocalStack(
        tmp_path_factory.mktemp("privacy-stack"),
        webhook_secrets=[SECRET],
        functions=["ingest_webhook", "validate_load", "compliance"],
        extra_env={"SHOPML_PII_HASH_KEY": KEY},
    ) as info:
        yield info


def deliver(info: StackInfo, body: dict[str, Any], topic: str, webhook_id: str) -> None:
    data = json.dumps(body).encode()
    headers = shopify_headers(data, topic=topic, shop=SHOP, webhook_id=webhook_id)
    response = requests.post(info.url("ingest_webhook"), data=data, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    return waiting.wait_for(what, check, timeout_s, interval_s=1.0)


def test_customers_redact_through_the_stack_reaches_warehouse_and_dead_letters(stack: StackInfo) -> None:
    settings = stack.settings()
    warehouse: Any = create_warehouse(settings)
    deliver(stack, fixture("customers_create.json"), "customers/create", "st-a-customer")
    deliver(stack, a_order(), "orders/create", "st-a-order")
    deliver(stack, b_order(), "orders/create", "st-b-order")
    wait_for("the three events", lambda: warehouse.query("SELECT COUNT(*) AS n FROM raw_events")[0]["n"] == 3)
    assert traces(warehouse, A_TRACES)

    # Two dead letters held on shopify-events-dlq: one order of the customer, one of another.
    publisher, subscriber = admin_clients(settings)
    dlq = settings.topic_path("shopify-events-dlq")
    for order in (a_order(), b_order()):
        attributes = {
            "shopify_topic": "orders/create",
            "shop_domain": SHOP,
            "webhook_id": f"dl-{order['id']}",
        }
        publisher.publish(dlq, json.dumps(order).encode(), **attributes).result(timeout=10)

    redact = {
        "shop_id": 954889,
        "shop_domain": SHOP,
        "customer": {"id": A_ID, "email": A_EMAIL, "phone": A_PHONE},
        "orders_to_redact": [A_ORDER],
    }
    deliver(stack, redact, "customers/redact", "st-redact")
    row = wait_for(
        "the completed audit row",
        lambda: warehouse.query("SELECT * FROM privacy_audit WHERE status = 'completed'"),
    )[0]
    assert row["request_id"] == "st-redact" and row["shop_domain"] == SHOP
    touched = {r["place"]: r["rows"] for r in row["rows_touched"]}
    assert touched["customers"] == 1 and touched["orders"] == 1 and touched["raw_events"] == 2
    assert touched["dead_letters:shopify-events-dlq-hold"] == 1
    assert traces(warehouse, A_TRACES) == {}
    assert traces(warehouse, [str(B_ID)])  # the other customer's order stays

    held = drain_subscription(subscriber, settings.subscription_path("shopify-events-dlq-hold"))
    assert [json.loads(m.data)["id"] for m in held] == [b_order()["id"]]
    subscriber.close()
    publisher.stop()


def test_exports_land_in_the_stack_home(stack: StackInfo) -> None:
    body = {
        "shop_id": 954889,
        "shop_domain": SHOP,
        "orders_requested": [],
        "customer": {"id": B_ID, "email": "jon@example.com"},
        "data_request": {"id": 31},
    }
    deliver(stack, body, "customers/data_request", "st-data-request")
    warehouse: Any = create_warehouse(stack.settings())
    row = wait_for(
        "the data request's audit row",
        lambda: warehouse.query("SELECT export_uri FROM privacy_audit WHERE request_id = 'st-data-request'"),
    )[0]
    path = Path(row["export_uri"].removeprefix("file://"))
    assert path.is_relative_to(Path(stack.home) / "privacy-exports")
    assert json.loads(path.read_text())["tables"]["orders"][0]["customer_id"] == B_ID
