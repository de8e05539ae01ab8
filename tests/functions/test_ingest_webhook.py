"""ingest_webhook through the HTTP layer: functions-framework's ASGI app (Starlette), real requests.

The app is built as the cloud builds it with ``FUNCTION_USE_ASGI=true``
(``functions_framework.aio.create_asgi_app``). The publisher is a fake of the port: a blocking
``RecordingPublisher`` (``bootstrap.override(publisher=...)``, run in a thread like
``SHOPML_PUBLISHER=client``) or an async one (``override(async_publisher=...)``). The real
grpc.aio publisher against the emulator: tests/integration/test_ingest_aio.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from shared import bootstrap
from shared.errors import PublishFailed
from shared.settings import Settings
from tests.conftest import OTHER_SECRET, SECRET, shopify_headers
from tests.fakes import RecordingPublisher

ORDER = json.dumps({"id": 820982911946154508, "total_price": "598.94", "note": "café ☕"}).encode()
SOURCE = Path(__file__).resolve().parents[2] / "functions" / "ingest_webhook" / "main.py"
SETTINGS = {"SHOPIFY_WEBHOOK_SECRETS": f"{SECRET},{OTHER_SECRET}", "SHOPML_MAX_BODY_BYTES": "4096"}


class AsyncRecordingPublisher:
    """An in-memory async publisher: records, or fails like a publish that timed out."""

    def __init__(self) -> None:
        self.fail = False
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        await asyncio.sleep(0)  # a real await, as the gRPC call has
        if self.fail:
            raise PublishFailed("Pub/Sub did not acknowledge within 3.0 s")
        self.messages.append((topic, data, dict(attributes)))
        return str(len(self.messages))


def asgi_client() -> Any:
    from functions_framework.aio import create_asgi_app
    from starlette.testclient import TestClient

    return TestClient(create_asgi_app("ingest_webhook", str(SOURCE)), raise_server_exceptions=False)


@pytest.fixture
def client(publisher: RecordingPublisher) -> Any:
    bootstrap.override(settings=Settings.from_env(SETTINGS), publisher=publisher)
    return asgi_client()


@pytest.fixture
def async_publisher() -> Iterator[AsyncRecordingPublisher]:
    recording = AsyncRecordingPublisher()
    bootstrap.override(settings=Settings.from_env(SETTINGS), async_publisher=recording)
    yield recording
    bootstrap.reset()


def test_signed_webhook_is_published_unchanged_with_attributes(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER, webhook_id="wh-1")
    response = client.post("/", content=ORDER, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    assert response.json()["webhook_id"] == "wh-1"
    assert response.headers["Content-Type"] == "application/json"
    [(topic, data, attributes)] = publisher.messages
    assert topic == "shopify-events"
    assert data == ORDER  # byte for byte
    assert attributes["webhook_id"] == "wh-1"
    assert attributes["shopify_topic"] == "orders/create"
    assert attributes["shop_domain"] == "demo-store.myshopify.com"
    assert attributes["source"] == "webhook"


def test_the_attribute_set_is_exactly_the_documented_one(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER, webhook_id="wh-attrs")
    assert client.post("/", content=ORDER, headers=headers).status_code == 200
    attributes = publisher.messages[0][2]
    assert set(attributes) == {
        "shopify_topic",
        "shop_domain",
        "webhook_id",
        "event_id",
        "api_version",
        "triggered_at",
        "received_at",
        "source",
    }
    assert attributes["event_id"] == headers["X-Shopify-Event-Id"]
    assert attributes["triggered_at"] == headers["X-Shopify-Triggered-At"]
    assert attributes["received_at"].endswith("+00:00")


def test_an_async_publisher_is_awaited_and_answered_with_its_message_id(async_publisher) -> None:  # type: ignore[no-untyped-def]
    client = asgi_client()
    response = client.post("/", content=ORDER, headers=shopify_headers(ORDER, webhook_id="wh-async"))
    assert response.status_code == 200
    assert response.json()["message_id"] == "1"
    assert async_publisher.messages[0][:2] == ("shopify-events", ORDER)


def test_rotated_secret_is_accepted(client, publisher) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/", content=ORDER, headers=shopify_headers(ORDER, OTHER_SECRET))
    assert response.status_code == 200
    assert len(publisher.messages) == 1


def test_bad_signature_is_401_and_publishes_nothing(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER, "not-our-secret")
    response = client.post("/", content=ORDER, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    assert publisher.messages == []


def test_tampered_body_is_401(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER)
    response = client.post("/", content=ORDER.replace(b"598.94", b"0.01"), headers=headers)
    assert response.status_code == 401
    assert publisher.messages == []


def test_signature_checked_before_headers(client, publisher) -> None:  # type: ignore[no-untyped-def]
    # An unauthenticated caller learns nothing about which headers are required.
    response = client.post("/", content=ORDER, headers={"X-Shopify-Hmac-Sha256": "AAAA"})
    assert response.status_code == 401


def test_missing_header_is_400_naming_it(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = shopify_headers(ORDER)
    del headers["X-Shopify-Webhook-Id"]
    response = client.post("/", content=ORDER, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "missing_header"
    assert "X-Shopify-Webhook-Id" in response.json()["message"]
    assert publisher.messages == []


def test_header_names_are_case_insensitive(client, publisher) -> None:  # type: ignore[no-untyped-def]
    headers = {name.lower(): value for name, value in shopify_headers(ORDER, webhook_id="wh-lc").items()}
    response = client.post("/", content=ORDER, headers=headers)
    assert response.status_code == 200
    assert publisher.messages[0][2]["webhook_id"] == "wh-lc"


def test_unknown_topic_is_400(client, publisher) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/", content=ORDER, headers=shopify_headers(ORDER, topic="carts/update"))
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_topic"
    assert publisher.messages == []


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact", "shop/redact"])
def test_privacy_webhooks_go_to_compliance(client, publisher, topic: str) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"shop_id": 954889, "shop_domain": "demo-store.myshopify.com"}).encode()
    response = client.post("/", content=body, headers=shopify_headers(body, topic=topic))
    assert response.status_code == 200
    assert publisher.messages[0][0] == "compliance"
    assert publisher.messages[0][2]["shopify_topic"] == topic


def test_oversize_body_is_413_and_publishes_nothing(client, publisher) -> None:  # type: ignore[no-untyped-def]
    body = b'{"pad": "' + b"x" * 5000 + b'"}'
    response = client.post("/", content=body, headers=shopify_headers(body))
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert publisher.messages == []


def test_oversize_chunked_body_without_length_is_413(client, publisher) -> None:  # type: ignore[no-untyped-def]
    # No Content-Length: the limit is enforced on the bytes as they stream in.
    body = b'{"pad": "' + b"x" * 5000 + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = client.post("/", content=chunks(), headers=shopify_headers(body))
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert publisher.messages == []


def test_chunked_body_within_the_limit_is_accepted_unchanged(client, publisher) -> None:  # type: ignore[no-untyped-def]
    def chunks() -> Iterator[bytes]:
        yield ORDER[:10]
        yield ORDER[10:]

    response = client.post("/", content=chunks(), headers=shopify_headers(ORDER))
    assert response.status_code == 200
    assert publisher.messages[0][1] == ORDER


def test_body_at_the_limit_is_accepted(client, publisher) -> None:  # type: ignore[no-untyped-def]
    body = b'{"pad": "' + b"x" * (4096 - 11) + b'"}'
    assert len(body) == 4096
    assert client.post("/", content=body, headers=shopify_headers(body)).status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(client, publisher, method: str) -> None:  # type: ignore[no-untyped-def]
    response = client.request(method, "/")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_publish_failure_is_503_never_200(client, publisher) -> None:  # type: ignore[no-untyped-def]
    publisher.fail = True
    response = client.post("/", content=ORDER, headers=shopify_headers(ORDER))
    assert response.status_code == 503
    assert response.json()["error"] == "publish_failed"


def test_async_publish_failure_is_503_and_stores_nothing(async_publisher) -> None:  # type: ignore[no-untyped-def]
    async_publisher.fail = True
    response = asgi_client().post("/", content=ORDER, headers=shopify_headers(ORDER))
    assert response.status_code == 503
    assert response.json()["error"] == "publish_failed"
    assert async_publisher.messages == []


def test_unexpected_error_is_503_without_stack_trace(client, publisher) -> None:  # type: ignore[no-untyped-def]
    class Exploding:
        async def publish(self, *args: object) -> str:
            raise RuntimeError("boom in /secret/path.py line 3")

    bootstrap.override(async_publisher=Exploding())
    response = client.post("/", content=ORDER, headers=shopify_headers(ORDER))
    assert response.status_code == 503
    assert b"Traceback" not in response.content
    assert b"boom" not in response.content


def test_missing_secrets_configuration_is_503(publisher) -> None:  # type: ignore[no-untyped-def]
    bootstrap.override(settings=Settings.from_env({}), publisher=publisher)
    response = asgi_client().post("/", content=ORDER, headers=shopify_headers(ORDER))
    assert response.status_code == 503
    assert response.json()["error"] == "not_configured"
    assert publisher.messages == []


def test_logs_are_structured_and_leak_no_secret_or_body(client, publisher, capsys) -> None:  # type: ignore[no-untyped-def]
    webhook_id = str(uuid.uuid4())
    client.post("/", content=ORDER, headers=shopify_headers(ORDER, webhook_id=webhook_id))
    client.post("/", content=ORDER, headers=shopify_headers(ORDER, "wrong"))
    publisher.fail = True
    client.post("/", content=ORDER, headers=shopify_headers(ORDER, webhook_id="wh-failed"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    accepted = [entry for entry in lines if entry["message"] == "webhook accepted"]
    assert accepted and accepted[0]["severity"] == "INFO"
    assert accepted[0]["logging.googleapis.com/labels"] == {
        "shop": "demo-store.myshopify.com",
        "topic": "orders/create",
    }
    assert accepted[0]["webhook_id"] == webhook_id
    assert any(entry["severity"] == "WARNING" for entry in lines)
    failed = [entry for entry in lines if entry["message"].startswith("publish failed")]
    assert failed and failed[0]["severity"] == "ERROR" and failed[0]["webhook_id"] == "wh-failed"
    text = json.dumps(lines)
    for forbidden in (
        SECRET,
        OTHER_SECRET,
        "598.94",
        "café",
        shopify_headers(ORDER)["X-Shopify-Hmac-Sha256"],
    ):
        assert forbidden not in text


def test_functions_framework_serves_it_on_the_asgi_path_with_or_without_the_switch() -> None:
    # Without FUNCTION_USE_ASGI, create_app (what the `functions-framework` command runs) sees
    # the @aio decorator and returns the Starlette app too, after building a Flask app it drops.
    code = (
        "import functions_framework;"
        f"app = functions_framework.create_app('ingest_webhook', {str(SOURCE)!r});"
        "print(type(app).__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("starlette")


def test_webhook_module_imports_nothing_heavy() -> None:
    # Nothing heavy at start; not even gRPC and the Pub/Sub protobufs (first publish brings them).
    code = (
        "import sys; from functions_framework.aio import create_asgi_app;"
        f"create_asgi_app('ingest_webhook', {str(SOURCE)!r});"
        "heavy = [m for m in ('lightgbm', 'scipy', 'onnxruntime', 'pandas', 'google.cloud.aiplatform',"
        " 'feast', 'numpy', 'duckdb', 'google.cloud.bigquery', 'grpc', 'google.pubsub_v1')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
