"""ingest_webhook against the real Pub/Sub emulator, served by functions-framework as the cloud
serves it (FUNCTION_USE_ASGI=true: gunicorn with the Uvicorn worker)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest
import requests

from devkit.local.stack import LocalStack, StackInfo
from shared.adapters.pubsub import admin_clients, ensure_topology
from shared.topology import load_topology
from tests.conftest import SECRET, shopify_headers

pytestmark = pytest.mark.integration

ORDER = json.dumps(
    {"id": 450789469, "total_price": "409.94", "line_items": [{"id": 1, "quantity": 2}]}
).encode()


def post(stack: StackInfo, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(stack.url("ingest_webhook"), data=body, headers=headers, timeout=10)


def test_signed_webhook_arrives_byte_for_byte_with_attributes(stack, tap) -> None:  # type: ignore[no-untyped-def]
    events = tap("shopify-events")
    body = ORDER + " ünïcode and trailing spaces   ".encode()
    headers = shopify_headers(body, webhook_id="wh-exact-1")
    response = post(stack, body, headers)
    assert response.status_code == 200
    [message] = events.pull(until=1)
    assert message.data == body
    attributes = dict(message.attributes)
    assert attributes["webhook_id"] == "wh-exact-1"
    assert attributes["shopify_topic"] == "orders/create"
    assert attributes["shop_domain"] == "demo-store.myshopify.com"
    assert attributes["api_version"] == "2025-07"
    assert attributes["event_id"] == headers["X-Shopify-Event-Id"]
    assert attributes["triggered_at"] == headers["X-Shopify-Triggered-At"]
    assert attributes["source"] == "webhook"
    assert attributes["received_at"].endswith("+00:00")
    assert response.json()["message_id"] == message.message_id


def test_bad_signature_publishes_nothing(stack, tap) -> None:  # type: ignore[no-untyped-def]
    events = tap("shopify-events")
    bad = post(stack, ORDER, shopify_headers(ORDER, "wrong-secret", webhook_id="bad-1"))
    assert bad.status_code == 401
    # A good marker after the bad one: when it arrives, anything published before it has too.
    assert post(stack, ORDER, shopify_headers(ORDER, webhook_id="marker-1")).status_code == 200
    messages = events.pull(until=2, timeout_s=5)
    assert [m.attributes["webhook_id"] for m in messages] == ["marker-1"]


def test_duplicate_delivery_arrives_twice_with_same_webhook_id(stack, tap) -> None:  # type: ignore[no-untyped-def]
    events = tap("shopify-events")
    headers = shopify_headers(ORDER, webhook_id="dup-1")
    assert post(stack, ORDER, headers).status_code == 200
    assert post(stack, ORDER, headers).status_code == 200
    messages = events.pull(until=2)
    assert [m.attributes["webhook_id"] for m in messages] == ["dup-1", "dup-1"]
    assert messages[0].message_id != messages[1].message_id


def test_privacy_webhook_arrives_on_compliance_not_shopify_events(stack, tap) -> None:  # type: ignore[no-untyped-def]
    events, compliance = tap("shopify-events"), tap("compliance")
    body = json.dumps(
        {"shop_id": 954889, "shop_domain": "demo-store.myshopify.com", "customer": {"id": 1}}
    ).encode()
    assert (
        post(stack, body, shopify_headers(body, topic="customers/redact", webhook_id="gdpr-1")).status_code
        == 200
    )
    assert post(stack, ORDER, shopify_headers(ORDER, webhook_id="marker-2")).status_code == 200
    [privacy] = compliance.pull(until=1)
    assert privacy.data == body
    assert privacy.attributes["shopify_topic"] == "customers/redact"
    assert [m.attributes["webhook_id"] for m in events.pull(until=2, timeout_s=5)] == ["marker-2"]


def test_concurrent_deliveries_all_arrive(stack, tap) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    events = tap("shopify-events")
    ids = [f"burst-{i}" for i in range(60)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda i: post(stack, ORDER, shopify_headers(ORDER, webhook_id=i)).status_code, ids)
        )
    assert statuses == [200] * len(ids)
    assert sorted(m.attributes["webhook_id"] for m in events.pull(until=len(ids))) == sorted(ids)


def test_emulator_down_answers_503_never_200(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stack = LocalStack(tmp_path, webhook_secrets=[SECRET], extra_env={"SHOPML_PUBLISH_TIMEOUT_SECONDS": "1"})
    with stack as info:
        assert post(info, ORDER, shopify_headers(ORDER)).status_code == 200  # warm: client connected
        os.killpg(info.pids["pubsub-emulator"], signal.SIGKILL)
        time.sleep(0.5)
        started = time.monotonic()
        statuses = [post(info, ORDER, shopify_headers(ORDER)).status_code for _ in range(3)]
        elapsed = time.monotonic() - started
    assert statuses == [503, 503, 503]
    assert elapsed < 3 * 4.5  # each answer well inside Shopify's 5 s


def test_dead_letter_policy_moves_undeliverable_message_to_dlq(stack, tap, failing_target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The real topology's subscription for shopify-events (5 attempts, DLQ shopify-events-dlq),
    # pointed at a push target that always fails; backoff shortened so the test takes seconds.
    settings = stack.settings().__class__.from_env(
        {**stack.env, "SHOPML_TOPIC_PREFIX": f"dlq{uuid.uuid4().hex[:6]}-"}
    )
    ensure_topology(
        settings, load_topology(), {"validate_load": failing_target.url}, retry_backoff_seconds=(1, 2)
    )
    publisher, subscriber = admin_clients(settings)
    dlq_tap = settings.subscription_path("dlq-tap")
    subscriber.create_subscription(name=dlq_tap, topic=settings.topic_path("shopify-events-dlq"))
    publisher.publish(settings.topic_path("shopify-events"), ORDER, webhook_id="doomed-1").result(timeout=10)

    from google.api_core import exceptions

    dead = None
    deadline = time.monotonic() + 90
    while dead is None and time.monotonic() < deadline:
        try:
            response = subscriber.pull(subscription=dlq_tap, max_messages=1, timeout=3)
        except exceptions.DeadlineExceeded:
            continue
        if response.received_messages:
            dead = response.received_messages[0].message
    subscriber.close()
    publisher.stop()
    assert dead is not None, "message never reached shopify-events-dlq"
    assert dead.data == ORDER
    assert dead.attributes["webhook_id"] == "doomed-1"
    assert dead.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert len(failing_target.deliveries) == 5
    assert failing_target.deliveries[0]["message"]["attributes"]["webhook_id"] == "doomed-1"
