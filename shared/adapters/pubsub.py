"""Pub/Sub publisher adapter (google-cloud-pubsub), created lazily.

The client is built on first publish, not at import, so that ``PUBSUB_EMULATOR_HOST`` set by
the local stack (or a test) is honoured and cold start stays short.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Mapping
from typing import Any

from shared.errors import PublishFailed
from shared.settings import Settings
from shared.topology import Topology

# Batching trades latency for throughput: every webhook waits for its own publish, so the
# batch window (settings.publish_batch_max_latency_ms) adds to its latency, while bigger
# batches cost less CPU per message. bench/RESULTS.md has the sweep behind the default.
DEFAULT_BATCH_MAX_MESSAGES = 100


def _transport_kwargs(kind: str, emulator_host: str | None) -> dict[str, Any]:
    """Client kwargs that talk to ``emulator_host`` (plaintext, no credentials) when set.

    Taken from settings rather than the process environment, so one process (a test, the
    local stack) can address several emulators.
    """
    if not emulator_host:
        return {}
    import grpc

    if kind == "publisher":
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

        return {"transport": PublisherGrpcTransport(channel=grpc.insecure_channel(emulator_host))}
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    return {"transport": SubscriberGrpcTransport(channel=grpc.insecure_channel(emulator_host))}


def admin_clients(settings: Settings) -> tuple[Any, Any]:
    """(PublisherClient, SubscriberClient) for topology administration and test taps."""
    import google.cloud.pubsub_v1 as pubsub_v1

    publisher = pubsub_v1.PublisherClient(**_transport_kwargs("publisher", settings.pubsub_emulator_host))
    subscriber = pubsub_v1.SubscriberClient(**_transport_kwargs("subscriber", settings.pubsub_emulator_host))
    return publisher, subscriber


class PubSubPublisher:
    """``EventPublisher`` on Google Cloud Pub/Sub (or its emulator)."""

    def __init__(
        self,
        settings: Settings,
        *,
        batch_max_messages: int = DEFAULT_BATCH_MAX_MESSAGES,
    ) -> None:
        self._settings = settings
        self._batch_max_latency_s = settings.publish_batch_max_latency_ms / 1000
        self._batch_max_messages = batch_max_messages
        self._client: Any = None
        self._retry: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import google.cloud.pubsub_v1 as pubsub_v1
                    from google.api_core import exceptions, retry

                    timeout = self._settings.publish_timeout_seconds
                    self._retry = retry.Retry(
                        initial=0.05,
                        maximum=0.5,
                        multiplier=2.0,
                        predicate=retry.if_exception_type(
                            exceptions.ServiceUnavailable,
                            exceptions.DeadlineExceeded,
                            exceptions.InternalServerError,
                            exceptions.TooManyRequests,
                            exceptions.Aborted,
                            exceptions.Unknown,
                        ),
                        timeout=timeout,
                    )
                    self._client = pubsub_v1.PublisherClient(
                        batch_settings=pubsub_v1.types.BatchSettings(
                            max_messages=self._batch_max_messages,
                            max_latency=self._batch_max_latency_s,
                        ),
                        **_transport_kwargs("publisher", self._settings.pubsub_emulator_host),
                    )
        return self._client

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        client = self._get_client()
        timeout = self._settings.publish_timeout_seconds
        future = client.publish(
            self._settings.topic_path(topic),
            data,
            retry=self._retry,
            timeout=timeout,
            **attributes,
        )
        try:
            return str(future.result(timeout=timeout))
        except concurrent.futures.TimeoutError as exc:
            raise PublishFailed(f"Pub/Sub did not acknowledge within {timeout:.1f} s") from exc
        except Exception as exc:  # any client or transport error: the event is not safe yet
            raise PublishFailed(f"publish to {topic} failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.stop()


def ensure_topology(
    settings: Settings,
    topology: Topology,
    push_base_urls: Mapping[str, str],
    *,
    retry_backoff_seconds: tuple[int, int] | None = None,
    pull_functions: frozenset[str] = frozenset(),
) -> dict[str, list[str]]:
    """Create every topic, and a push subscription for each function in ``push_base_urls``.

    Idempotent (existing topics and subscriptions are kept). The push endpoint ends in
    ``/projects/P/topics/T`` because functions-framework derives the CloudEvent ``source``
    from that path, as Eventarc's does in the cloud. ``retry_backoff_seconds`` (min, max)
    replaces the topology's backoff (tests use it to dead-letter in seconds, not minutes);
    attempts and dead-letter topics always come from the topology. Returns what was created.
    """
    from google.api_core import exceptions
    from google.protobuf import duration_pb2

    publisher, subscriber = admin_clients(settings)
    created: dict[str, list[str]] = {"topics": [], "subscriptions": []}
    try:
        for topic in topology.topics:
            try:
                publisher.create_topic(name=settings.topic_path(topic))
                created["topics"].append(topic)
            except exceptions.AlreadyExists:
                pass
        # Dead letters are kept on a pull subscription "<dlq>-hold" until someone looks at
        # them (Terraform creates the same ones): a topic without subscriptions drops messages.
        for dlq in sorted({sub.dead_letter_topic for sub in topology.subscriptions}):
            try:
                subscriber.create_subscription(
                    name=settings.subscription_path(f"{dlq}-hold"), topic=settings.topic_path(dlq)
                )
                created["subscriptions"].append(f"{dlq}-hold")
            except exceptions.AlreadyExists:
                pass
        for sub in topology.subscriptions:
            base = push_base_urls.get(sub.push_to)
            pulled = sub.push_to in pull_functions  # the batching path: same subscription, pulled
            if base is None and not pulled:
                continue
            min_backoff, max_backoff = retry_backoff_seconds or (
                sub.min_backoff_seconds,
                sub.max_backoff_seconds,
            )
            request: dict[str, Any] = {
                "name": settings.subscription_path(sub.name),
                "topic": settings.topic_path(sub.topic),
                "ack_deadline_seconds": sub.ack_deadline_seconds,
                "dead_letter_policy": {
                    "dead_letter_topic": settings.topic_path(sub.dead_letter_topic),
                    "max_delivery_attempts": sub.max_delivery_attempts,
                },
                "retry_policy": {
                    "minimum_backoff": duration_pb2.Duration(seconds=min_backoff),
                    "maximum_backoff": duration_pb2.Duration(seconds=max_backoff),
                },
            }
            if base is not None and not pulled:
                topic_name = settings.topic_name(sub.topic)
                endpoint = f"{base.rstrip('/')}/projects/{settings.project}/topics/{topic_name}"
                request["push_config"] = {"push_endpoint": endpoint}
            try:
                subscriber.create_subscription(request=request)
                created["subscriptions"].append(sub.name)
            except exceptions.AlreadyExists:
                pass
    finally:
        subscriber.close()
        publisher.stop()
    return created


def drain_subscription(subscriber: Any, path: str, idle_rounds: int = 2, timeout_s: float = 2.0) -> list[Any]:
    """Pull and acknowledge everything on a subscription until ``idle_rounds`` pulls come back
    empty (the emulator's synchronous pull blocks, then raises DeadlineExceeded, when empty)."""
    from google.api_core import exceptions

    messages: list[Any] = []
    idle = 0
    while idle < idle_rounds:
        try:
            response = subscriber.pull(subscription=path, max_messages=1000, timeout=timeout_s)
        except exceptions.DeadlineExceeded:
            idle += 1
            continue
        if not response.received_messages:
            idle += 1
            continue
        idle = 0
        messages.extend(m.message for m in response.received_messages)
        subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in response.received_messages])
    return messages
