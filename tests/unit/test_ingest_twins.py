"""The two entry points of webhook ingestion: ``accept_webhook`` (blocking) and
``accept_webhook_async`` run the same checks in the same order and give the same answers;
the streamed body reader enforces the limit as bytes arrive; ``bootstrap.async_publisher``
picks the publisher the settings ask for."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import bootstrap
from shared.adapters.pubsub_aio import AsyncGroupCommitPublisher, ThreadedPublisher
from shared.errors import PublishFailed, WebhookRejected
from shared.ingest import (
    IngestResult,
    accept_webhook,
    accept_webhook_async,
    declared_length,
    read_limited_body,
    read_limited_body_async,
)
from shared.logs import get_logger
from shared.settings import Settings
from tests.conftest import SECRET, shopify_headers
from tests.fakes import RecordingPublisher

LIMIT = 64
BODY = b'{"id": 1, "total_price": "9.99"}'
NOW = datetime(2025, 3, 1, 10, 15, 3, tzinfo=UTC)
SETTINGS = Settings(webhook_secrets=(SECRET,), max_body_bytes=LIMIT)


class AsyncRecording:
    def __init__(self, blocking: RecordingPublisher) -> None:
        self.blocking = blocking

    async def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        await asyncio.sleep(0)
        return self.blocking.publish(topic, data, attributes)


async def chunks_of(data: bytes, size: int, taken: list[int] | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        if taken is not None:
            taken.append(start)
        yield data[start : start + size]


def deliveries() -> dict[str, tuple[str, bytes, dict[str, str], Settings, bool]]:
    """name → (method, body, headers, settings, publish fails)."""
    big = b"x" * (LIMIT + 1)
    missing = shopify_headers(BODY, webhook_id="wh")
    del missing["X-Shopify-Topic"]
    return {
        "accepted": ("POST", BODY, shopify_headers(BODY, webhook_id="wh"), SETTINGS, False),
        "compliance": (
            "POST",
            BODY,
            shopify_headers(BODY, webhook_id="wh", topic="shop/redact"),
            SETTINGS,
            False,
        ),
        "wrong method": ("GET", BODY, shopify_headers(BODY, webhook_id="wh"), SETTINGS, False),
        "too large": ("POST", big, shopify_headers(big, webhook_id="wh"), SETTINGS, False),
        "not configured": ("POST", BODY, shopify_headers(BODY, webhook_id="wh"), Settings(), False),
        "bad signature": ("POST", BODY, shopify_headers(BODY, "other", webhook_id="wh"), SETTINGS, False),
        "missing header": ("POST", BODY, missing, SETTINGS, False),
        "unknown topic": (
            "POST",
            BODY,
            shopify_headers(BODY, webhook_id="wh", topic="carts/update"),
            SETTINGS,
            False,
        ),
        "publish fails": ("POST", BODY, shopify_headers(BODY, webhook_id="wh"), SETTINGS, True),
    }


@pytest.mark.parametrize("name", list(deliveries()))
def test_both_twins_answer_and_publish_alike(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    method, body, headers, settings, fails = deliveries()[name]
    logger = get_logger("test", "DEBUG")
    blocking, behind_async = RecordingPublisher(fail=fails), RecordingPublisher(fail=fails)

    sync_result = accept_webhook(
        method,
        headers,
        lambda: read_limited_body(io.BytesIO(body), len(body), settings.max_body_bytes),
        settings,
        blocking,
        logger,
        now=lambda: NOW,
    )
    sync_logs = [line.split('"time"')[0] for line in capsys.readouterr().out.splitlines()]
    async_result = asyncio.run(
        accept_webhook_async(
            method,
            headers,
            lambda: read_limited_body_async(chunks_of(body, 7), len(body), settings.max_body_bytes),
            settings,
            AsyncRecording(behind_async),
            logger,
            now=lambda: NOW,
        )
    )
    async_logs = [line.split('"time"')[0] for line in capsys.readouterr().out.splitlines()]

    assert async_result == sync_result
    assert behind_async.messages == blocking.messages
    assert async_logs == sync_logs
    expected = {
        "accepted": 200,
        "compliance": 200,
        "wrong method": 405,
        "too large": 413,
        "not configured": 503,
        "bad signature": 401,
        "missing header": 400,
        "unknown topic": 400,
        "publish fails": 503,
    }
    assert sync_result.status == expected[name]
    assert (len(blocking.messages) == 1) == (sync_result.status == 200)


def test_the_published_message_is_the_raw_body_with_the_attributes() -> None:
    publisher = RecordingPublisher()
    result = asyncio.run(
        accept_webhook_async(
            "POST",
            shopify_headers(BODY, webhook_id="wh-9", topic="customers/redact"),
            lambda: read_limited_body_async(chunks_of(BODY, 5), None, LIMIT),
            SETTINGS,
            AsyncRecording(publisher),
            get_logger("test"),
            now=lambda: NOW,
        )
    )
    assert result == IngestResult(
        200,
        {"status": "accepted", "webhook_id": "wh-9", "message_id": "1"},
        {"shop": "demo-store.myshopify.com", "topic": "customers/redact"},
    )
    [(topic, data, attributes)] = publisher.messages
    assert (topic, data) == ("compliance", BODY)
    assert attributes["received_at"] == "2025-03-01T10:15:03.000000+00:00"


# -- reading the body ---------------------------------------------------------------------------


def test_a_declared_oversize_body_is_refused_before_any_chunk_is_read() -> None:
    taken: list[int] = []
    with pytest.raises(WebhookRejected) as refused:
        asyncio.run(read_limited_body_async(chunks_of(b"x" * 1000, 10, taken), 1000, LIMIT))
    assert refused.value.status == 413 and taken == []


def test_an_undeclared_oversize_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    taken: list[int] = []
    with pytest.raises(WebhookRejected) as refused:
        asyncio.run(read_limited_body_async(chunks_of(b"x" * 10_000, 10, taken), None, LIMIT))
    assert refused.value.status == 413 and refused.value.code == "body_too_large"
    assert len(taken) == LIMIT // 10 + 1  # stopped at the chunk that crossed the limit


@given(
    st.binary(max_size=200), st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=120)
)
def test_streamed_and_blocking_readers_agree(data: bytes, chunk: int, limit: int) -> None:
    def outcome(read: Callable[[], Any]) -> bytes | int:
        try:
            return read()  # type: ignore[no-any-return]
        except WebhookRejected as rejected:
            return rejected.status

    streamed = outcome(lambda: asyncio.run(read_limited_body_async(chunks_of(data, chunk), None, limit)))
    blocking = outcome(lambda: read_limited_body(io.BytesIO(data), None, limit))
    assert streamed == blocking == (data if len(data) <= limit else 413)


@pytest.mark.parametrize(
    ("header", "expected"), [(None, None), ("12", 12), (" 7 ", 7), ("", None), ("-1", None), ("1e3", None)]
)
def test_content_length_header_as_a_number(header: str | None, expected: int | None) -> None:
    assert declared_length(header) == expected


# -- which publisher ----------------------------------------------------------------------------


def test_the_async_publisher_is_grpc_aio_group_commit_by_default() -> None:
    bootstrap.override(settings=Settings(pubsub_emulator_host="127.0.0.1:1"))
    try:
        chosen = bootstrap.async_publisher()
        assert isinstance(chosen, AsyncGroupCommitPublisher)
        assert bootstrap.async_publisher() is chosen  # built once
    finally:
        bootstrap.reset()


def test_a_blocking_publisher_override_runs_in_a_thread_on_the_async_path() -> None:
    recording = RecordingPublisher()
    bootstrap.override(publisher=recording)
    try:
        chosen = bootstrap.async_publisher()
        assert isinstance(chosen, ThreadedPublisher) and chosen.publisher is recording
        assert asyncio.run(chosen.publish("shopify-events", b"x", {"a": "1"})) == "1"
        recording.fail = True
        with pytest.raises(PublishFailed):
            asyncio.run(chosen.publish("shopify-events", b"x", {}))
    finally:
        bootstrap.reset()


def test_the_official_client_setting_is_honoured_on_the_async_path() -> None:
    bootstrap.override(settings=Settings(publisher="client", pubsub_emulator_host="127.0.0.1:1"))
    try:
        chosen = bootstrap.async_publisher()
        assert isinstance(chosen, ThreadedPublisher)
        assert type(chosen.publisher).__name__ == "PubSubPublisher"
    finally:
        bootstrap.reset()


def test_an_async_override_wins() -> None:
    mine = AsyncRecording(RecordingPublisher())
    bootstrap.override(publisher=RecordingPublisher(), async_publisher=mine)
    try:
        assert bootstrap.async_publisher() is mine
    finally:
        bootstrap.reset()


def test_building_the_async_publisher_imports_no_grpc() -> None:
    # Lazily created: no channel, not even the gRPC import, until a loop's first publish.
    code = (
        "import sys; from shared import bootstrap; from shared.settings import Settings;"
        "bootstrap.override(settings=Settings(pubsub_emulator_host='127.0.0.1:1'));"
        "bootstrap.async_publisher();"
        "print([m for m in ('grpc', 'google.pubsub_v1') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
