"""Fixtures on the real local parts: the Pub/Sub emulator and functions under functions-framework."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.local.stack import LocalStack, StackInfo
from shared.adapters.pubsub import admin_clients
from tests.conftest import SECRET


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A running local stack (emulator + implemented functions), shared by a test module."""
    with LocalStack(tmp_path_factory.mktemp("stack"), webhook_secrets=[SECRET]) as info:
        yield info


class Tap:
    """A pull subscription on a topic, to see exactly what was published."""

    def __init__(self, info: StackInfo, topic: str) -> None:
        self.settings = info.settings()
        self.publisher, self.subscriber = admin_clients(self.settings)
        self.path = self.settings.subscription_path(f"tap-{topic}-{uuid.uuid4().hex[:8]}")
        self.subscriber.create_subscription(name=self.path, topic=self.settings.topic_path(topic))

    def pull(self, until: int, timeout_s: float = 20.0) -> list[Any]:
        """Pull until ``until`` messages arrived (or time runs out); acknowledges them."""
        from google.api_core import exceptions

        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < until and time.monotonic() < deadline:
            try:
                response = self.subscriber.pull(subscription=self.path, max_messages=100, timeout=2)
            except exceptions.DeadlineExceeded:
                continue
            if response.received_messages:
                self.subscriber.acknowledge(
                    subscription=self.path, ack_ids=[m.ack_id for m in response.received_messages]
                )
                got.extend(m.message for m in response.received_messages)
        return got

    def close(self) -> None:
        self.subscriber.delete_subscription(subscription=self.path)
        self.subscriber.close()
        self.publisher.stop()


@pytest.fixture
def tap(stack: StackInfo) -> Iterator[Any]:
    taps: list[Tap] = []

    def make(topic: str) -> Tap:
        taps.append(Tap(stack, topic))
        return taps[-1]

    yield make
    for t in taps:
        t.close()


class FailingPushTarget:
    """A push endpoint that always answers 500 and records each delivery."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                outer.deliveries.append(json.loads(self.rfile.read(length)))
                self.send_response(500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def failing_target() -> Iterator[FailingPushTarget]:
    target = FailingPushTarget()
    yield target
    target.close()


@pytest.fixture(scope="session")
def tmp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")
