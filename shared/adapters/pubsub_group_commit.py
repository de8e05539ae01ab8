"""Group-commit Pub/Sub publisher: raw gRPC, batches formed by concurrency, not by a timer.

Why not only the official client: every webhook waits for its own publish, and the client's
batching is timer based (a batch leaves after ``max_latency``) with per-message proto-plus
wrapping, a future, and a new commit thread per batch. Measured here (bench/RESULTS.md), that
was the largest part of ingest_webhook's CPU per request.

Group commit (``shared.groupcommit``): an idle sender sends a message at once (lowest latency
when quiet); while an RPC is in flight, new messages queue up and leave together in the next
RPC (big batches exactly when load is high). Per message that costs a queue append and a lock
wait; the RPC's fixed cost is shared by the batch. Retries follow Pub/Sub's documented
retryable codes, bounded by the publish deadline; anything not acknowledged in time raises
``PublishFailed``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Mapping
from typing import Any

from shared.errors import PublishFailed
from shared.groupcommit import GroupCommit, GroupCommitClosed, GroupCommitTimeout
from shared.settings import Settings

MAX_BATCH_MESSAGES = 1000  # Pub/Sub's limit per PublishRequest
MAX_BATCH_BYTES = 9 * 1024 * 1024  # under the 10 MB request limit
# Pub/Sub's documented retryable codes for Publish (grpc.StatusCode names); the async twin
# (pubsub_aio) retries the same ones.
RETRYABLE_CODES = frozenset(
    {"ABORTED", "CANCELLED", "DEADLINE_EXCEEDED", "INTERNAL", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "UNKNOWN"}
)
_SCOPES = ("https://www.googleapis.com/auth/pubsub",)
_ENDPOINT = "pubsub.googleapis.com:443"


class GroupCommitPublisher:
    """``EventPublisher`` over raw gRPC with group-commit batching. Thread-safe, lazy."""

    def __init__(
        self, settings: Settings, *, senders: int | None = None, linger_s: float | None = None
    ) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._stub: Any = None
        self._message_cls: Any = None
        self._request_cls: Any = None
        self._retryable: frozenset[Any] = frozenset()
        self.batcher: GroupCommit[tuple[Any, float], str] = GroupCommit(
            self._send,
            max_items=MAX_BATCH_MESSAGES,
            max_weight=MAX_BATCH_BYTES,
            workers=senders or settings.publish_senders,
            linger_s=settings.publish_linger_ms / 1000 if linger_s is None else linger_s,
            name="pubsub-sender",
        )

    def _start(self) -> None:
        """Build the gRPC stub on first publish (never at import: emulator settings, cold start)."""
        import grpc
        from google.pubsub_v1 import types

        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        if self._settings.pubsub_emulator_host:
            channel = grpc.insecure_channel(self._settings.pubsub_emulator_host, options=options)
        else:
            from google.api_core import grpc_helpers

            channel = grpc_helpers.create_channel(
                _ENDPOINT,
                scopes=None,
                default_scopes=_SCOPES,
                default_host=_ENDPOINT.split(":")[0],
                options=options,
            )
        self._message_cls = types.PubsubMessage.pb()
        self._request_cls = types.PublishRequest.pb()
        self._stub = channel.unary_unary(
            "/google.pubsub.v1.Publisher/Publish",
            request_serializer=self._request_cls.SerializeToString,
            response_deserializer=types.PublishResponse.pb().FromString,
        )
        self._retryable = frozenset(getattr(grpc.StatusCode, name) for name in RETRYABLE_CODES)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        timeout = self._settings.publish_timeout_seconds
        if self._stub is None:
            with self._lock:
                if self._stub is None:
                    self._start()
        message = self._message_cls(data=data, attributes=attributes)
        item = (message, time.monotonic() + timeout)
        try:
            return self.batcher.submit(
                item, timeout, key=self._settings.topic_path(topic), weight=len(data) + 64
            )
        except GroupCommitTimeout as exc:
            raise PublishFailed(f"Pub/Sub did not acknowledge within {timeout:.1f} s") from exc
        except GroupCommitClosed as exc:
            raise PublishFailed("publisher is closed") from exc

    def close(self) -> None:
        self.batcher.close()

    def _send(self, topic: Hashable, items: list[tuple[Any, float]]) -> list[str | BaseException]:
        """One Publish RPC for a batch, retried while retryable and inside every deadline."""
        import grpc

        request = self._request_cls(topic=topic, messages=[message for message, _ in items])
        metadata = (("x-goog-request-params", f"topic={topic}"),)
        deadline = min(until for _, until in items)
        backoff = 0.05
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._failed(items, "deadline passed before Pub/Sub acknowledged")
            try:
                response = self._stub(request, timeout=remaining, metadata=metadata)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code in self._retryable and deadline - time.monotonic() > backoff:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 0.5)
                    continue
                details = exc.details() if hasattr(exc, "details") else exc
                return self._failed(items, f"publish to {topic} failed: {code}: {details}")
            if len(response.message_ids) != len(items):
                return self._failed(
                    items, f"Pub/Sub returned {len(response.message_ids)} ids for {len(items)}"
                )
            return list(response.message_ids)

    @staticmethod
    def _failed(items: list[Any], reason: str) -> list[str | BaseException]:
        return [PublishFailed(reason) for _ in items]
