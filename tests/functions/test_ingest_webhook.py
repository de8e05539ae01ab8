"""ingest_webhook through the HTTP layer (functions-framework's Flask app, real requests)."""

from __future__ import annotations

import json
import sys
import uuid

import pytest

from shared import bootstrap
from shared.settings import Settings
from tests.conftest import OTHER_SECRET, SECRET, shopify_headers
from tests.fakes import RecordingPublisher

ORDER = json.dumps({"id": 820982911946154508, "total_price": "598.94", "note": "café ☕"}).encode()


@pytest.fixture
def client(function_client, publisher: RecordingPublisher):  # type: ignore[no-untyped-def]
    bootstrap.override(
        settings=Settings.from_env(
            {"SHOPIFY_WEBHOOK_SECRETS": f"{SECRET},{OTHER_SECRET}", "SHOPML_MAX_BODY_BYTES": "4096"}
        ),
        publisher=publisher,
    )
    return function_client("ingest_webhook")


def test_signed_webhook_is_published_unchanged_with_attributes(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER, webhook_id="wh-1")
    response = client.post("/", data=ORDER, headers=headers)
    assert response.status_code == 200
    assert response.json["status"] == "accepted"
    assert response.json["webhook_id"] == "wh-1"
    assert response.headers["Content-Type"] == "application/json"
    [(topic, data, attributes)] = publisher.messages
    assert topic == "shopify-events"
    assert data == ORDER  # byte for byte
    assert attributes["webhook_id"] == "wh-1"
    assert attributes["shopify_topic"] == "orders/create"
    assert attributes["shop_domain"] == "demo-store.myshopify.com"
    assert attributes["source"] == "webhook"


def test_rotated_secret_is_accepted(client, publisher) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/", data=ORDER, headers=shopify_headers(ORDER, OTHER_SECRET))
    assert response.status_code == 200
    assert len(publisher.messages) == 1


def test_bad_signature_is_401_and_publishes_nothing(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER, "not-our-secret")
    response = client.post("/", data=ORDER, headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_signature"
    assert publisher.messages == []


def test_tampered_body_is_401(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER)
    response = client.post("/", data=ORDER.replace(b"598.94", b"0.01"), headers=headers)
    assert response.status_code == 401
    assert publisher.messages == []


def test_signature_checked_before_headers(client, publisher) -> None:  # type: ignore[no-untyped-def]
    # An unauthenticated caller learns nothing about which headers are required.
    response = client.post("/", data=ORDER, headers={"X-Shopify-Hmac-Sha256": "AAAA"})
    assert response.status_code == 401


def test_missing_header_is_400_naming_it(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER)
    del headers["X-Shopify-Webhook-Id"]
    response = client.post("/", data=ORDER, headers=headers)
    assert response.status_code == 400
    assert response.json["error"] == "missing_header"
    assert "X-Shopify-Webhook-Id" in response.json["message"]
    assert publisher.messages == []


def test_unknown_topic_is_400(client, publisher) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/", data=ORDER, headers=shopify_headers(ORDER, topic="carts/update"))
    assert response.status_code == 400
    assert response.json["error"] == "unknown_topic"
    assert publisher.messages == []


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact", "shop/redact"])
def test_privacy_webhooks_go_to_compliance(client, publisher, topic: str) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"shop_id": 954889, "shop_domain": "demo-store.myshopify.com"}).encode()
    response = client.post("/", data=body, headers=shopify_headers(body, topic=topic))
    assert response.status_code == 200
    assert publisher.messages[0][0] == "compliance"
    assert publisher.messages[0][2]["shopify_topic"] == topic


def test_oversize_body_is_413_and_publishes_nothing(client, publisher) -> None:  # type: ignore[no-untyped-def]
    body = b'{"pad": "' + b"x" * 5000 + b'"}'
    response = client.post("/", data=body, headers=shopify_headers(body))
    assert response.status_code == 413
    assert response.json["error"] == "body_too_large"
    assert publisher.messages == []


def test_body_at_the_limit_is_accepted(client, publisher) -> None:  # type: ignore[no-untyped-def]
    body = b'{"pad": "' + b"x" * (4096 - 11) + b'"}'
    assert len(body) == 4096
    assert client.post("/", data=body, headers=shopify_headers(body)).status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(client, publisher, method: str) -> None:  # type: ignore[no-untyped-def]
    response = client.open("/", method=method)
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"


def test_publish_failure_is_503_never_200(client, publisher) -> None:  # type: ignore[no-untyped-def]
    publisher.fail = True
    response = client.post("/", data=ORDER, headers=shopify_headers(ORDER))
    assert response.status_code == 503
    assert response.json["error"] == "publish_failed"


def test_unexpected_error_is_503_without_stack_trace(client, publisher) -> None:  # type: ignore[no-untyped-def]
    class Exploding:
        def publish(self, *args: object) -> str:
            raise RuntimeError("boom in /secret/path.py line 3")

    bootstrap.override(publisher=Exploding())
    response = client.post("/", data=ORDER, headers=shopify_headers(ORDER))
    assert response.status_code == 503
    assert b"Traceback" not in response.data
    assert b"boom" not in response.data


def test_missing_secrets_configuration_is_503(function_client, publisher) -> None:  # type: ignore[no-untyped-def]
    bootstrap.override(settings=Settings.from_env({}), publisher=publisher)
    client = function_client("ingest_webhook")
    response = client.post("/", data=ORDER, headers=shopify_headers(ORDER))
    assert response.status_code == 503
    assert response.json["error"] == "not_configured"
    assert publisher.messages == []


def test_logs_are_structured_and_leak_no_secret_or_body(client, publisher, capsys) -> None:  # type: ignore[no-untyped-def]
    webhook_id = str(uuid.uuid4())
    client.post("/", data=ORDER, headers=shopify_headers(ORDER, webhook_id=webhook_id))
    client.post("/", data=ORDER, headers=shopify_headers(ORDER, "wrong"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    accepted = [entry for entry in lines if entry["message"] == "webhook accepted"]
    assert accepted and accepted[0]["severity"] == "INFO"
    assert accepted[0]["logging.googleapis.com/labels"] == {
        "shop": "demo-store.myshopify.com",
        "topic": "orders/create",
    }
    assert accepted[0]["webhook_id"] == webhook_id
    assert any(entry["severity"] == "WARNING" for entry in lines)
    text = json.dumps(lines)
    for forbidden in (
        SECRET,
        OTHER_SECRET,
        "598.94",
        "café",
        shopify_headers(ORDER)["X-Shopify-Hmac-Sha256"],
    ):
        assert forbidden not in text


def test_webhook_module_imports_nothing_heavy(client) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    code = (
        "import sys, functions_framework;"
        "functions_framework.create_app('ingest_webhook', 'functions/ingest_webhook/main.py');"
        "heavy = [m for m in ('lightgbm', 'scipy', 'onnxruntime', 'pandas', 'google.cloud.aiplatform',"
        " 'feast', 'numpy', 'duckdb', 'google.cloud.bigquery')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
