"""Signature verification, header validation, routing and attribute mapping."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.errors import WebhookRejected
from shared.settings import COMPLIANCE_TOPICS, STORE_TOPICS
from shared.webhooks import (
    message_attributes,
    parse_timestamp,
    parse_webhook_headers,
    route_topic,
    sign_webhook,
    verify_webhook_signature,
)
from tests.conftest import shopify_headers

secrets_st = st.text(min_size=1, max_size=64)


# -- signature -------------------------------------------------------------------------------
def test_known_vector_matches_shopify_scheme() -> None:
    # base64(HMAC-SHA256(key, body)) computed independently with `openssl dgst -sha256 -hmac`.
    assert sign_webhook(b'{"id":1}', "hush") == "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY="


@given(body=st.binary(max_size=2048), secret=secrets_st)
def test_signature_of_body_verifies(body: bytes, secret: str) -> None:
    assert verify_webhook_signature(body, sign_webhook(body, secret), [secret])


@given(body=st.binary(max_size=512), secret=secrets_st, data=st.data())
def test_any_change_to_body_is_rejected(body: bytes, secret: str, data: st.DataObject) -> None:
    other = data.draw(st.binary(max_size=512))
    assume(other != body)
    assert not verify_webhook_signature(other, sign_webhook(body, secret), [secret])


@given(body=st.binary(max_size=512), secret=secrets_st, data=st.data())
def test_any_change_to_signature_is_rejected(body: bytes, secret: str, data: st.DataObject) -> None:
    raw = bytearray(base64.b64decode(sign_webhook(body, secret)))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    assert not verify_webhook_signature(body, base64.b64encode(bytes(raw)).decode(), [secret])


@given(body=st.binary(max_size=256), secret=secrets_st, wrong=secrets_st)
def test_signature_under_another_secret_is_rejected(body: bytes, secret: str, wrong: str) -> None:
    assume(wrong != secret)
    assert not verify_webhook_signature(body, sign_webhook(body, wrong), [secret])


@given(body=st.binary(max_size=256), secrets=st.lists(secrets_st, min_size=1, max_size=4, unique=True))
def test_every_active_secret_works_during_rotation(body: bytes, secrets: list[str]) -> None:
    for secret in secrets:
        assert verify_webhook_signature(body, sign_webhook(body, secret), secrets)


@pytest.mark.parametrize("signature", [None, "", "not base64!!", "c2hvcnQ=", " " * 44])
def test_missing_or_malformed_signature_is_rejected(signature: str | None) -> None:
    assert not verify_webhook_signature(b"{}", signature, ["s"])


def test_no_secrets_rejects_everything() -> None:
    assert not verify_webhook_signature(b"{}", sign_webhook(b"{}", "s"), [])


# -- headers -----------------------------------------------------------------------------------
def test_valid_headers_parse() -> None:
    headers = shopify_headers(b"{}", webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    parsed = parse_webhook_headers(headers)
    assert parsed.topic == "orders/create"
    assert parsed.shop_domain == "demo-store.myshopify.com"
    assert parsed.webhook_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert parsed.event_id == "98880550-7158-44d4-b7cd-2c97c8a091b5"


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in shopify_headers(b"{}").items()}
    assert parse_webhook_headers(headers).topic == "orders/create"


def test_event_id_is_optional() -> None:
    assert parse_webhook_headers(shopify_headers(b"{}", event_id=None)).event_id is None


@pytest.mark.parametrize(
    "missing",
    [
        "X-Shopify-Topic",
        "X-Shopify-Shop-Domain",
        "X-Shopify-Webhook-Id",
        "X-Shopify-API-Version",
        "X-Shopify-Triggered-At",
    ],
)
def test_each_missing_required_header_is_named(missing: str) -> None:
    headers = shopify_headers(b"{}")
    del headers[missing]
    with pytest.raises(WebhookRejected) as caught:
        parse_webhook_headers(headers)
    assert caught.value.status == 400
    assert caught.value.code == "missing_header"
    assert missing in caught.value.message


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Shopify-Shop-Domain", "evil.example.com"),
        ("X-Shopify-Shop-Domain", "shop.myshopify.com.evil.com"),
        ("X-Shopify-API-Version", "2025-13"),
        ("X-Shopify-API-Version", "latest"),
        ("X-Shopify-Topic", "orders"),
        ("X-Shopify-Topic", "../orders/create"),
        ("X-Shopify-Webhook-Id", "id with spaces"),
        ("X-Shopify-Triggered-At", "yesterday"),
        ("X-Shopify-Webhook-Id", "x" * 300),
    ],
)
def test_malformed_header_is_rejected_with_its_name(header: str, value: str) -> None:
    headers = shopify_headers(b"{}")
    headers[header] = value
    with pytest.raises(WebhookRejected) as caught:
        parse_webhook_headers(headers)
    assert caught.value.status == 400
    assert header in caught.value.message


def test_shop_domain_is_normalised_to_lowercase() -> None:
    headers = shopify_headers(b"{}", shop="Demo-Store.MyShopify.com")
    assert parse_webhook_headers(headers).shop_domain == "demo-store.myshopify.com"


@given(st.text(max_size=40))
def test_parse_timestamp_never_raises(text: str) -> None:
    parsed = parse_timestamp(text)
    assert parsed is None or parsed.tzinfo is not None


def test_parse_timestamp_converts_offsets_to_utc() -> None:
    parsed = parse_timestamp("2025-03-01T10:15:00-05:00")
    assert parsed == datetime(2025, 3, 1, 15, 15, tzinfo=UTC)


# -- routing and attributes ------------------------------------------------------------------
@pytest.mark.parametrize("topic", STORE_TOPICS)
def test_store_topics_go_to_shopify_events(topic: str) -> None:
    assert route_topic(topic, STORE_TOPICS, COMPLIANCE_TOPICS) == "shopify-events"


@pytest.mark.parametrize("topic", COMPLIANCE_TOPICS)
def test_privacy_topics_go_to_compliance(topic: str) -> None:
    assert route_topic(topic, STORE_TOPICS, COMPLIANCE_TOPICS) == "compliance"


def test_unknown_topic_is_rejected() -> None:
    with pytest.raises(WebhookRejected) as caught:
        route_topic("carts/create", STORE_TOPICS, COMPLIANCE_TOPICS)
    assert (caught.value.status, caught.value.code) == (400, "unknown_topic")


def test_attributes_carry_every_header_and_receipt_time() -> None:
    parsed = parse_webhook_headers(shopify_headers(b"{}", webhook_id="w-1"))
    received = datetime(2025, 3, 1, 10, 15, 1, 5, tzinfo=UTC)
    attributes = message_attributes(parsed, received)
    assert attributes == {
        "shopify_topic": "orders/create",
        "shop_domain": "demo-store.myshopify.com",
        "webhook_id": "w-1",
        "event_id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "api_version": "2025-07",
        "triggered_at": "2025-03-01T10:15:00.123456Z",
        "received_at": "2025-03-01T10:15:01.000005+00:00",
        "source": "webhook",
    }
    assert "topic" not in attributes  # collides with the Python client's publish argument


def test_attributes_omit_absent_event_id() -> None:
    parsed = parse_webhook_headers(shopify_headers(b"{}", event_id=None))
    assert "event_id" not in message_attributes(parsed, datetime.now(UTC))
