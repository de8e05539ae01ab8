"""ingest_webhook's async path against the real Pub/Sub emulator: the grpc.aio group-commit
publisher on its own, the ASGI app in-process with it (batches formed by concurrent requests),
and the function served by functions-framework with FUNCTION_USE_ASGI=true while the emulator
stalls (503, never 200, and nothing acknowledged is lost)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.local.stack import LocalStack, StackInfo
from shared import bootstrap
from shared.adapters.pubsub_aio import AsyncGroupCommitPublisher
from shared.errors import PublishFailed
from shared.settings import Settings
from tests.conftest import SECRET, shopify_headers

pytestmark = pytest.mark.integration

SOURCE = Path(__file__).resolve().parents[2] / "functions" / "ingest_webhook" / "main.py"
ORDER = json.dumps({"id": 450789469, "total_price": "409.94", "line_items": [{"id": 1}]}).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The emulator and ingest_webhook alone, served as the cloud serves it (ASGI), 1 s deadline."""
    home = tmp_path_factory.mktemp("aio-stack")
    extra = {"SHOPML_PUBLISH_TIMEOUT_SECONDS": "1"}
    with LocalStack(home, functions=["ingest_webhook"], webhook_secrets=[SECRET], extra_env=extra) as info:
        yield info


def settings_of(info: StackInfo, **extra: str) -> Settings:
    return Settings.from_env({**info.env, "SHOPIFY_WEBHOOK_SECRETS": SECRET, **extra})


async def publish_all(publisher: AsyncGroupCommitPublisher, ids: list[str]) -> list[str]:
    try:
        return list(
            await asyncio.gather(
                *(publisher.publish("shopify-events", i.encode(), {"webhook_id": i}) for i in ids)
            )
        )
    finally:
        await publisher.aclose()


def test_concurrent_publishes_all_arrive_once_with_attributes(stack, tap) -> None:  # type: ignore[no-untyped-def]
    events = tap("shopify-events")
    publisher = AsyncGroupCommitPublisher(settings_of(stack))
    ids = [f"aio-{i}" for i in range(400)]
    message_ids = asyncio.run(publish_all(publisher, ids))
    assert len(set(message_ids)) == len(ids)  # one server id per message
    got = events.pull(until=len(ids))
    assert sorted(m.attributes["webhook_id"] for m in got) == sorted(ids)
    assert all(m.data == m.attributes["webhook_id"].encode() for m in got)
    assert {m.message_id for m in got} == set(message_ids)


def test_publishes_arriving_while_an_rpc_is_in_flight_share_the_next_one(stack, tap) -> None:  # type: ignore[no-untyped-def]
    events = tap("shopify-events")
    publisher = AsyncGroupCommitPublisher(settings_of(stack), senders=1)

    async def staggered() -> None:
        await publisher.publish("shopify-events", b"warm", {"webhook_id": "warm"})  # channel open

        async def later(i: int) -> str:
            await asyncio.sleep(i * 0.0002)  # arrivals spread over 60 ms, one RPC at a time
            return await publisher.publish("shopify-events", b"x", {"webhook_id": f"share-{i}"})

        await asyncio.gather(*(later(i) for i in range(300)))
        await publisher.aclose()

    asyncio.run(staggered())
    sizes = list(publisher.batch_sizes)
    assert sum(sizes) == 301
    assert sizes[:2] == [1, 1]  # idle: the warm-up and the first arrival each left at once, alone
    assert max(sizes) > 1  # arrivals during an RPC left together in the next one
    assert len(sizes) < 150
    assert len(events.pull(until=301)) == 301


def test_publishes_made_together_leave_in_one_rpc(stack) -> None:  # type: ignore[no-untyped-def]
    publisher = AsyncGroupCommitPublisher(settings_of(stack), senders=1)
    asyncio.run(publish_all(publisher, [f"together-{i}" for i in range(50)]))
    assert list(publisher.batch_sizes) == [50]  # queued in one loop turn: no timer, one RPC


def test_a_quiet_publisher_sends_each_message_at_once(stack) -> None:  # type: ignore[no-untyped-def]
    publisher = AsyncGroupCommitPublisher(settings_of(stack))

    async def one_by_one() -> None:
        for i in range(5):
            await publisher.publish("shopify-events", b"x", {"webhook_id": f"quiet-{i}"})
        await publisher.aclose()

    asyncio.run(one_by_one())
    assert list(publisher.batch_sizes) == [1] * 5


def test_each_event_loop_gets_its_own_channel(stack) -> None:  # type: ignore[no-untyped-def]
    # A grpc.aio channel belongs to its loop: the same publisher keeps working on a new loop.
    publisher = AsyncGroupCommitPublisher(settings_of(stack))
    first = asyncio.run(publisher.publish("shopify-events", b"1", {"webhook_id": "loop-1"}))
    second = asyncio.run(publisher.publish("shopify-events", b"2", {"webhook_id": "loop-2"}))
    assert first and second and first != second


def test_unknown_topic_fails_without_retrying_until_the_deadline(stack) -> None:  # type: ignore[no-untyped-def]
    publisher = AsyncGroupCommitPublisher(settings_of(stack, SHOPML_PUBLISH_TIMEOUT_SECONDS="3"))
    started = time.monotonic()
    with pytest.raises(PublishFailed, match="NOT_FOUND"):
        asyncio.run(publisher.publish("no-such-topic", b"x", {}))
    assert time.monotonic() - started < 1.0


def test_concurrent_webhooks_through_the_app_form_batches_and_all_arrive(stack, tap) -> None:  # type: ignore[no-untyped-def]
    import httpx
    from functions_framework.aio import create_asgi_app

    events = tap("shopify-events")
    publisher = AsyncGroupCommitPublisher(settings_of(stack), senders=1)
    bootstrap.override(settings=settings_of(stack), async_publisher=publisher)
    app = create_asgi_app("ingest_webhook", str(SOURCE))
    ids = [f"app-{i}" for i in range(200)]

    async def deliver() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            try:
                return list(
                    await asyncio.gather(
                        *(
                            client.post("/", content=ORDER, headers=shopify_headers(ORDER, webhook_id=i))
                            for i in ids
                        )
                    )
                )
            finally:
                await publisher.aclose()

    try:
        responses = asyncio.run(deliver())
    finally:
        bootstrap.reset()
    assert [r.status_code for r in responses] == [200] * len(ids)
    assert max(publisher.batch_sizes) > 1 and sum(publisher.batch_sizes) == len(ids)
    got = events.pull(until=len(ids))
    assert sorted(m.attributes["webhook_id"] for m in got) == sorted(ids)
    assert {r.json()["message_id"] for r in responses} == {m.message_id for m in got}


def test_server_timing_reports_the_publish_rpc_only_when_asked(stack) -> None:  # type: ignore[no-untyped-def]
    import httpx
    from functions_framework.aio import create_asgi_app

    app = create_asgi_app("ingest_webhook", str(SOURCE))

    async def deliver(server_timing: str) -> list[httpx.Response]:
        settings = settings_of(stack, SHOPML_SERVER_TIMING=server_timing)
        publisher = AsyncGroupCommitPublisher(settings)
        bootstrap.override(settings=settings, async_publisher=publisher)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
                ids = [f"timing-{server_timing}-{i}" for i in range(3)]
                good = [
                    await client.post("/", content=ORDER, headers=shopify_headers(ORDER, webhook_id=i))
                    for i in ids
                ]
                bad = await client.post("/", content=ORDER, headers={"X-Shopify-Hmac-Sha256": "x"})
                return [*good, bad]
        finally:
            await publisher.aclose()
            bootstrap.reset()

    started = time.perf_counter()
    timed = asyncio.run(deliver("true"))
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert [r.status_code for r in timed] == [200, 200, 200, 401]
    rpc_ms = [float(r.headers["server-timing"].removeprefix("pubsub;dur=")) for r in timed[:3]]
    assert all(0 < ms < elapsed_ms for ms in rpc_ms)  # the RPC's round trip, inside the request's
    assert "server-timing" not in timed[3].headers  # nothing was published
    assert all("server-timing" not in r.headers for r in asyncio.run(deliver("false")))


def post(info: StackInfo, webhook_id: str) -> requests.Response:
    headers = shopify_headers(ORDER, webhook_id=webhook_id)
    return requests.post(info.url("ingest_webhook"), data=ORDER, headers=headers, timeout=10)


def test_a_stalled_emulator_is_503_within_the_deadline_and_nothing_acknowledged_is_lost(stack, tap) -> None:  # type: ignore[no-untyped-def]
    events = tap("shopify-events")
    assert post(stack, "before-stall").status_code == 200  # warm: the process's channel is open
    emulator = stack.pids["pubsub-emulator"]
    os.killpg(emulator, signal.SIGSTOP)
    try:
        stalled_ids = [f"stalled-{i}" for i in range(20)]
        started = time.monotonic()
        with ThreadPoolExecutor(20) as pool:
            stalled = list(pool.map(lambda i: post(stack, i), stalled_ids))
        elapsed = time.monotonic() - started
    finally:
        os.killpg(emulator, signal.SIGCONT)
    assert [r.status_code for r in stalled] == [503] * len(stalled_ids)
    assert {r.json()["error"] for r in stalled} == {"publish_failed"}
    assert elapsed < 4.0  # SHOPML_PUBLISH_TIMEOUT_SECONDS=1: well inside Shopify's 5 s
    # Shopify retries every 503; now each is acknowledged, and so stored.
    retried = {i: post(stack, i) for i in stalled_ids}
    after = [post(stack, f"after-{i}") for i in range(5)]
    assert all(r.status_code == 200 for r in [*retried.values(), *after])
    acknowledged = {"before-stall", *stalled_ids, *(f"after-{i}" for i in range(5))}
    # The stalled attempts may arrive too (a late acknowledgement): duplicates, never a loss.
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while not acknowledged <= seen and time.monotonic() < deadline:
        seen |= {m.attributes["webhook_id"] for m in events.pull(until=1, timeout_s=3)}
    assert acknowledged <= seen


def test_the_served_function_runs_on_the_asgi_path(stack) -> None:  # type: ignore[no-untyped-def]
    response = requests.get(stack.url("ingest_webhook"), timeout=5)
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
    assert response.headers["server"] == "uvicorn"  # gunicorn's Uvicorn worker, not gthread + Flask


def test_unavailable_is_retried_until_the_broker_answers_within_the_deadline() -> None:
    import grpc
    import grpc.aio
    from google.pubsub_v1 import types

    from devkit.local.processes import free_port

    port = free_port()
    request_cls, response_cls = types.PublishRequest.pb(), types.PublishResponse.pb()

    async def answer(request: Any, context: Any) -> Any:
        return response_cls(message_ids=["late-but-stored"])

    handler = grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Publisher",
        {
            "Publish": grpc.unary_unary_rpc_method_handler(
                answer,
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            )
        },
    )
    settings = Settings.from_env(
        {"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{port}", "SHOPML_PUBLISH_TIMEOUT_SECONDS": "4"}
    )

    async def broker_comes_up_late() -> tuple[str, float]:
        publisher = AsyncGroupCommitPublisher(settings)
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))

        async def start_later() -> None:
            await asyncio.sleep(0.5)  # the first attempts find nothing listening: UNAVAILABLE
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()

        starter = asyncio.create_task(start_later())
        started = time.monotonic()
        try:
            message_id = await publisher.publish("shopify-events", b"x", {})
            return message_id, time.monotonic() - started
        finally:
            await starter
            await publisher.aclose()
            await server.stop(None)

    message_id, elapsed = asyncio.run(broker_comes_up_late())
    assert message_id == "late-but-stored"
    assert 0.5 <= elapsed < 4.0


def test_nothing_listening_is_retried_then_fails_by_the_deadline() -> None:
    import grpc.aio  # noqa: F401 - imported before the clock starts (the first publish imports it)
    from google.pubsub_v1 import types  # noqa: F401

    from devkit.local.processes import free_port

    settings = Settings.from_env(
        {"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}", "SHOPML_PUBLISH_TIMEOUT_SECONDS": "1"}
    )
    publisher = AsyncGroupCommitPublisher(settings)
    started = time.monotonic()
    with pytest.raises(PublishFailed):
        asyncio.run(publisher.publish("shopify-events", b"x", {}))
    elapsed = time.monotonic() - started
    # UNAVAILABLE retried with backoff (0.05 + 0.1 + 0.2 + 0.4 s) while a retry fits, then given up.
    assert 0.7 <= elapsed < 2.5
