"""Both EventPublisher adapters against the real emulator: every ack means a stored message."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devkit.local.stack import LocalStack
from shared.adapters.pubsub import PubSubPublisher
from shared.adapters.pubsub_group_commit import GroupCommitPublisher
from shared.errors import PublishFailed
from shared.settings import Settings

pytestmark = pytest.mark.integration

PUBLISHERS = {"group_commit": GroupCommitPublisher, "client": PubSubPublisher}


@pytest.mark.parametrize("kind", PUBLISHERS)
def test_concurrent_publishes_all_arrive_once_with_attributes(stack, tap, kind: str) -> None:  # type: ignore[no-untyped-def]
    events = tap("shopify-events")
    publisher = PUBLISHERS[kind](stack.settings())
    ids = [f"{kind}-{i}" for i in range(400)]
    with ThreadPoolExecutor(16) as pool:
        message_ids = list(
            pool.map(lambda i: publisher.publish("shopify-events", i.encode(), {"webhook_id": i}), ids)
        )
    publisher.close()
    assert len(set(message_ids)) == len(ids)  # one server id per message
    got = events.pull(until=len(ids))
    assert sorted(m.attributes["webhook_id"] for m in got) == sorted(ids)
    assert all(m.data == m.attributes["webhook_id"].encode() for m in got)
    assert {m.message_id for m in got} == set(message_ids)


def test_group_commit_batches_under_concurrency(stack, tap) -> None:  # type: ignore[no-untyped-def]
    events = tap("shopify-events")
    publisher = GroupCommitPublisher(stack.settings(), senders=1)
    with ThreadPoolExecutor(32) as pool:
        list(
            pool.map(lambda i: publisher.publish("shopify-events", b"x", {"webhook_id": str(i)}), range(300))
        )
    publisher.close()
    sizes = list(publisher.batcher.batch_sizes)
    assert sum(sizes) == 300
    assert max(sizes) > 1  # concurrent publishes shared RPCs
    assert len(events.pull(until=300)) == 300


@pytest.mark.parametrize("kind", PUBLISHERS)
def test_unreachable_broker_fails_within_the_deadline(tmp_path: Path, kind: str) -> None:
    with LocalStack(tmp_path, functions=[]) as info:
        settings = Settings.from_env({**info.env, "SHOPML_PUBLISH_TIMEOUT_SECONDS": "1"})
        publisher = PUBLISHERS[kind](settings)
        assert publisher.publish("shopify-events", b"warm", {"webhook_id": "w"})
        os.killpg(info.pids["pubsub-emulator"], signal.SIGKILL)
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(PublishFailed):
            publisher.publish("shopify-events", b"lost?", {"webhook_id": "x"})
        assert time.monotonic() - started < 2.5
        publisher.close()


def test_unknown_topic_fails_without_retrying_forever(stack) -> None:  # type: ignore[no-untyped-def]
    publisher = GroupCommitPublisher(stack.settings())
    started = time.monotonic()
    with pytest.raises(PublishFailed, match="NOT_FOUND"):
        publisher.publish("no-such-topic", b"x", {})
    assert time.monotonic() - started < 1.0
    publisher.close()


def test_closed_publisher_refuses(stack) -> None:  # type: ignore[no-untyped-def]
    publisher = GroupCommitPublisher(stack.settings())
    publisher.close()
    with pytest.raises(PublishFailed, match="closed"):
        publisher.publish("shopify-events", b"x", {})
