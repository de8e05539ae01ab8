"""Privacy requests: the streaming-buffer retry (with a warehouse that refuses like BigQuery),
parsing Shopify's payloads, and dropping dead letters about a customer or a shop."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.object_stores import LocalObjectStore
from shared.adapters.pubsub_dead_letters import PubSubDeadLetters, hold_subscriptions
from shared.errors import StreamingBufferBusy, TransientError
from shared.privacy.redaction import CustomerKeys, message_concerns_customer, message_concerns_shop
from shared.privacy.requests import MalformedPrivacyRequest, parse_privacy_request
from shared.privacy.service import PrivacyDeps, handle_request
from shared.settings import Settings
from shared.topology import load_topology
from tests.privacy_support import (
    A_EMAIL,
    A_ID,
    A_ORDER,
    A_TRACES,
    BUFFER,
    KEY,
    NOW,
    SHOP,
    Clock,
    StreamingBufferWarehouse,
    a_order,
    b_order,
    load_history,
    privacy_message,
    redact_a,
    traces,
)


def test_redaction_that_meets_the_streaming_buffer_retries_until_done_and_says_when(tmp_path: Path) -> None:
    clock = Clock(NOW)
    warehouse = StreamingBufferWarehouse(DuckDBWarehouse(tmp_path / "w.duckdb"), clock)
    load_history(warehouse)  # streamed "now"
    deps = PrivacyDeps(warehouse, LocalObjectStore(tmp_path / "exports"), KEY.encode(), now=clock)

    clock.now = NOW + timedelta(minutes=5)  # Shopify's request arrives while rows are buffered
    with pytest.raises(TransientError):
        handle_request(redact_a(), deps)
    clock.now = NOW + timedelta(minutes=12)  # Pub/Sub redelivers with backoff: still buffered
    with pytest.raises(StreamingBufferBusy):
        handle_request(redact_a(), deps)
    assert traces(warehouse.inner, A_TRACES, skip=["privacy_audit"])  # nothing could be changed yet

    clock.now = NOW + timedelta(minutes=41)
    outcome = handle_request(redact_a(), deps)
    assert outcome.status == "completed" and outcome.attempt == 3
    assert traces(warehouse.inner, A_TRACES) == {}
    rows = warehouse.query(
        "SELECT status, attempt, attempted_at, completed_at, total_rows, detail "
        "FROM privacy_audit ORDER BY attempt"
    )
    assert [(r["status"], r["attempt"]) for r in rows] == [("pending", 1), ("pending", 2), ("completed", 3)]
    assert all("streaming buffer" in r["detail"] for r in rows[:2]) and rows[2]["detail"] is None
    assert rows[2]["completed_at"] == NOW + timedelta(minutes=41)
    assert rows[0]["completed_at"] is None and rows[2]["total_rows"] == outcome.redacted_rows == 11
    assert warehouse.refusals == 2
    # Redelivered once more after completion: nothing more.
    assert handle_request(redact_a(), deps).status == "already_done"
    assert len(warehouse.query("SELECT attempt FROM privacy_audit")) == 3


def test_work_done_before_a_refusal_is_counted_once_in_the_completed_row(tmp_path: Path) -> None:
    clock = Clock(NOW)
    warehouse = StreamingBufferWarehouse(DuckDBWarehouse(tmp_path / "w.duckdb"), clock)
    load_history(warehouse)
    clock.now = NOW + timedelta(hours=1)
    # Only the raw landing table was streamed recently (say, a late webhook): typed tables
    # redact at once, the bodies on the next attempt.
    warehouse.streamed["raw_events"] = clock.now
    deps = PrivacyDeps(warehouse, LocalObjectStore(tmp_path / "exports"), KEY.encode(), now=clock)
    with pytest.raises(StreamingBufferBusy):
        handle_request(redact_a(), deps)
    (pending,) = warehouse.query("SELECT rows_touched, total_rows FROM privacy_audit")
    assert {(r["place"], r["rows"]) for r in pending["rows_touched"]} == {("customers", 1), ("orders", 2)}
    clock.now += BUFFER
    outcome = handle_request(redact_a(), deps)
    assert outcome.touched == {
        "customers": 1,
        "orders": 2,
        "raw_events": 6,
        "rejected_events": 2,
        "exports": 0,
    }
    assert outcome.redacted_rows == 11


def test_shopify_payloads_parse_into_requests() -> None:
    request = redact_a()
    assert (request.topic, request.shop_domain, request.customer_id, request.order_ids) == (
        "customers/redact",
        SHOP,
        A_ID,
        (A_ORDER,),
    )
    assert request.request_id == "wh-redact-a" and request.requested_at is not None
    body = {
        "shop_id": 1,
        "shop_domain": SHOP,
        "orders_requested": ["3", 1, 3],
        "customer": {"id": 5, "email": "x@y.z", "phone": None},
        "data_request": {"id": "9999"},
    }
    parsed = parse_privacy_request(privacy_message("customers/data_request", body, "w"))
    assert parsed.order_ids == (1, 3) and parsed.data_request_id == 9999 and parsed.phone is None
    shop = parse_privacy_request(privacy_message("shop/redact", {"shop_id": 1, "shop_domain": SHOP}, "w2"))
    assert shop.is_shop and shop.customer_id is None
    # Shopify's own Pub/Sub delivery: its header names are mapped.
    native = privacy_message("shop/redact", {"shop_id": 1, "shop_domain": SHOP}, "w3")
    native = type(native)(
        native.data,
        {"X-Shopify-Topic": "shop/redact", "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Webhook-Id": "w3"},
        "m3",
        native.publish_time,
    )
    assert parse_privacy_request(native).request_id == "w3"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"shop_domain": SHOP, "customer": {}}, "no id, email or phone"),
        ({"shop_domain": SHOP, "customer": {"id": True}}, "boolean"),
        ({"shop_domain": SHOP, "customer": {"id": 1}, "orders_to_redact": "1,2"}, "not a list"),
        ({"shop_domain": SHOP, "customer": {"id": 1}, "orders_to_redact": [-4]}, "positive"),
    ],
)
def test_malformed_payloads_name_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedPrivacyRequest, match=message):
        parse_privacy_request(privacy_message("customers/redact", body, "w"))


class FakeSubscriber:
    """Pub/Sub's synchronous pull on hold subscriptions: a pulled message is leased (not pulled
    again) until acknowledged (gone) or given back (ack deadline 0)."""

    def __init__(self, held: dict[str, list[tuple[bytes, dict[str, str]]]]) -> None:
        self.held = {
            path: [
                SimpleNamespace(message_id=f"{path}-{i}", data=data, attributes=attributes)
                for i, (data, attributes) in enumerate(messages)
            ]
            for path, messages in held.items()
        }
        self.acked: set[str] = set()
        self.leased: set[str] = set()
        self.nacked: list[str] = []

    def pull(self, subscription: str, max_messages: int, timeout: float) -> Any:
        live = [m for m in self.held.get(subscription, []) if m.message_id not in self.acked | self.leased]
        self.leased.update(m.message_id for m in live[:max_messages])
        return SimpleNamespace(
            received_messages=[SimpleNamespace(ack_id=m.message_id, message=m) for m in live[:max_messages]]
        )

    def acknowledge(self, subscription: str, ack_ids: list[str]) -> None:
        self.acked.update(ack_ids)
        self.leased.difference_update(ack_ids)

    def modify_ack_deadline(self, subscription: str, ack_ids: list[str], ack_deadline_seconds: int) -> None:
        assert ack_deadline_seconds == 0
        self.nacked += ack_ids
        self.leased.difference_update(ack_ids)


def test_dead_letters_about_the_customer_or_the_shop_are_dropped_and_the_rest_kept() -> None:
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "shopml-test"})
    events = "projects/shopml-test/subscriptions/shopify-events-dlq-hold"
    compliance = "projects/shopml-test/subscriptions/compliance-dlq-hold"
    attrs = {"shopify_topic": "orders/create", "shop_domain": SHOP}
    other_shop = {"shopify_topic": "orders/create", "shop_domain": "other.myshopify.com"}
    held = {
        events: [
            (json.dumps(a_order()).encode(), attrs),
            (json.dumps(b_order()).encode(), attrs),
            (json.dumps(a_order()).encode(), other_shop),  # same ids, another shop: not this request
            (b"\xff\xfe", attrs),
        ],
        compliance: [
            (
                json.dumps({"customer": {"id": A_ID, "email": A_EMAIL}}).encode(),
                {**attrs, "shopify_topic": "customers/data_request"},
            ),
        ],
    }
    subscriber = FakeSubscriber(held)
    queue = PubSubDeadLetters(
        settings, ["shopify-events-dlq-hold", "compliance-dlq-hold"], subscriber=subscriber
    )
    keys = CustomerKeys.of(redact_a(), KEY.encode())
    dropped = queue.purge(lambda data, attributes: message_concerns_customer(data, attributes, keys))
    assert dropped == {"shopify-events-dlq-hold": 1, "compliance-dlq-hold": 1}
    assert sorted(subscriber.nacked) == [f"{events}-1", f"{events}-2", f"{events}-3"]  # given back at once
    dropped = queue.purge(lambda data, attributes: message_concerns_shop(data, attributes, SHOP))
    assert dropped == {"shopify-events-dlq-hold": 2, "compliance-dlq-hold": 0}
    assert subscriber.leased == set()  # nothing left hidden from the operator


def test_hold_subscriptions_are_one_per_dead_letter_topic_of_the_topology() -> None:
    assert hold_subscriptions(load_topology()) == [
        "compliance-dlq-hold",
        "pipeline-dlq-hold",
        "shopify-events-dlq-hold",
    ]


def test_redact_customer_runs_the_request_in_process_and_answers_the_same_twice(tmp_path: Path) -> None:
    from shared.privacy.wiring import redact_customer

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    load_history(warehouse)
    settings = Settings.from_env({"SHOPML_HOME": str(tmp_path / "home"), "SHOPML_PII_HASH_KEY": KEY})
    first = redact_customer(warehouse, settings, SHOP, A_ID, email=A_EMAIL, order_ids=[A_ORDER])
    assert first.status == "completed" and first.redacted_rows == 11
    assert traces(warehouse, [str(A_ID), A_EMAIL]) == {}
    again = redact_customer(warehouse, settings, SHOP, A_ID, email=A_EMAIL, order_ids=[A_ORDER])
    assert again.status == "already_done" and again.redacted_rows == first.redacted_rows


def test_bodies_stored_in_clear_before_scrubbing_existed_are_scrubbed_once(tmp_path: Path) -> None:
    from shared.privacy.redaction import scrub_stored_bodies

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    load_history(warehouse, store_pii=True)  # bodies exactly as received
    assert traces(warehouse, [A_EMAIL], skip=["customers", "orders"])
    rewritten = scrub_stored_bodies(warehouse, KEY.encode())
    # Customer, two versions of its order, the broken one, the other order, the refund (its note);
    # the unparsable body is not JSON.
    assert rewritten == {"raw_events": 6, "rejected_events": 1}
    assert traces(warehouse, [A_EMAIL, "Biller"], skip=["customers", "orders"]) == {
        "raw_events": 1,
        "rejected_events": 1,
    }  # only the unparsable delivery, which customers/redact rewrites as text
    assert scrub_stored_bodies(warehouse, KEY.encode()) == {"raw_events": 0, "rejected_events": 0}
    stored = warehouse.query("SELECT body FROM raw_events WHERE webhook_id = 's0-wh-a-order'")[0]["body"]
    assert json.loads(stored)["email"].startswith("hmac:")
