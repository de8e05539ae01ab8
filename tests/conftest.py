"""Shared fixtures: signed webhook headers, an in-memory publisher, a real local stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import prometheus_client  # noqa: F401  (first: see below)
import pytest

from shared import bootstrap
from shared.webhooks import sign_webhook
from tests.fakes import RecordingPublisher

# Importing feast sets PROMETHEUS_MULTIPROC_DIR (feast/metrics.py). prometheus_client picks its
# value store when it is first imported: after feast, every metric of the process is file-backed
# and shared by name, so a fresh registry would start with another test's counts. Imported here
# first, it keeps the in-memory store that predict (which never imports feast) runs with.
SECRET = "test-secret-1"
OTHER_SECRET = "test-secret-2"


def shopify_headers(
    body: bytes,
    secret: str = SECRET,
    *,
    topic: str = "orders/create",
    shop: str = "demo-store.myshopify.com",
    webhook_id: str | None = None,
    event_id: str | None = "98880550-7158-44d4-b7cd-2c97c8a091b5",
    api_version: str = "2025-07",
    triggered_at: str = "2025-03-01T10:15:00.123456Z",
) -> dict[str, str]:
    """The headers Shopify sends with a webhook delivery, signed over ``body``."""
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_webhook(body, secret),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Triggered-At": triggered_at,
    }
    if event_id:
        headers["X-Shopify-Event-Id"] = event_id
    return headers


@pytest.fixture
def publisher() -> Iterator[RecordingPublisher]:
    recording = RecordingPublisher()
    bootstrap.override(publisher=recording)
    yield recording
    bootstrap.reset()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def function_client(repo_root: Path):  # type: ignore[no-untyped-def]
    """A test client for ``functions/<name>/main.py``, served the way functions-framework serves it."""
    from functions_framework import create_app

    def make(name: str):  # type: ignore[no-untyped-def]
        app = create_app(name, str(repo_root / "functions" / name / "main.py"))
        return app.test_client()

    return make
