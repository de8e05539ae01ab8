"""Group-commit Pub/Sub publisher: raw gRPC, batches formed by concurrency, not by a timer.

Why not only the official client: every webhook waits for its own publish, and the client's
batching is timer based (a batch leaves after ``max_latency``) with per-message proto-plus
wrapping, a future, and a new commit thread per batch. Measured here (bench/RESULTS.md): ~250 µs
of CPU per message at webhook rates, the largest part of ingest_webhook's cost.

Group commit: an idle sender sends a message at once (lowest latency when quiet); while its
RPC is in flight, new messages queue up and leave together in the next RPC (big batches exactly
when load is high). Per message that costs one queue append and one event wait; the RPC's fixed
cost (~230 µs) is shared by the batch. Retries follow Pub/Sub's documented retryable codes,
bounded by the publish deadline; anything not acknowledged in time raises ``PublishFailed``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from shared.errors import PublishFailed
from shared.settings import Settings

MAX_BATCH_MESSAGES = 1000  # Pub/Sub's limit per PublishRequest
MAX_BATCH_BYTES = 9 * 1024 * 1024  # under the 10 MB request limit
SENDERS = 2  # RPCs in flight at once
LINGER_S = 0.002  # how long a busy sender waits to fill a batch (never when idle)
_SCOPES = ("https://www.googleapis.com/auth/pubsub",)
_ENDPOINT = "pubsub.googleapis.com:443"


class _Pending:
    """One message waiting for its acknowledgement.

    ``done`` is a plain lock taken at creation and released by the sender: a C-level wait,
    much cheaper per message than ``threading.Event`` (a Python-level Condition).
    """

    __slots__ = ("deadline", "done", "error", "message", "message_id", "size")

    def __init__(self, message: Any, size: int, deadline: float) -> None:
        self.message = message
        self.size = size
        self.deadline = deadline
        self.done = threading.Lock()
        self.done.acquire()
        self.message_id: str | None = None
        self.error: str | None = None

    def resolve(self, message_id: str | None, error: str | None) -> None:
        self.message_id = message_id
        self.error = error
        self.done.release()


class GroupCommitPublisher:
    """``EventPublisher`` over raw gRPC with group-commit batching. Thread-safe, lazy."""

    def __init__(self, settings: Settings, *, senders: int = SENDERS, linger_s: float = LINGER_S) -> None:
        self._settings = settings
        self._senders = senders
        self._linger_s = linger_s
        self._in_flight = 0
        self._sleepers = 0  # senders waiting for work (publish notifies only if any)
        self._cond = threading.Condition()
        self._queues: dict[str, deque[_Pending]] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._stub: Any = None
        self._message_cls: Any = None
        self._request_cls: Any = None
        self._retryable: frozenset[Any] = frozenset()

    # -- set-up (first publish) -------------------------------------------------------------
    def _start(self) -> None:
        import grpc
        from google.pubsub_v1 import types

        self._message_cls = types.PubsubMessage.pb()
        self._request_cls = types.PublishRequest.pb()
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        if self._settings.pubsub_emulator_host:
            channel = grpc.insecure_channel(self._settings.pubsub_emulator_host, options=options)
        else:
            from google.api_core import grpc_helpers

            channel = grpc_helpers.create_channel(
                _ENDPOINT, scopes=None, default_scopes=_SCOPES, default_host=_ENDPOINT.split(":")[0],
                options=options,
            )  # fmt: skip
        self._stub = channel.unary_unary(
            "/google.pubsub.v1.Publisher/Publish",
            request_serializer=self._request_cls.SerializeToString,
            response_deserializer=types.PublishResponse.pb().FromString,
        )
        # Pub/Sub's documented retryable codes for Publish.
        self._retryable = frozenset(
            {
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.INTERNAL,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.UNKNOWN,
            }
        )
        for index in range(self._senders):
            thread = threading.Thread(target=self._send_loop, name=f"pubsub-sender-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # -- the port ------------------------------------------------------------------------
    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        timeout = self._settings.publish_timeout_seconds
        with self._cond:
            if self._closed:
                raise PublishFailed("publisher is closed")
            if self._stub is None:
                self._start()
            message = self._message_cls(data=data, attributes=attributes)
            pending = _Pending(message, len(data) + 64, time.monotonic() + timeout)
            self._queues.setdefault(self._settings.topic_path(topic), deque()).append(pending)
            if self._sleepers:
                self._cond.notify()
        if not pending.done.acquire(timeout=timeout):
            raise PublishFailed(f"Pub/Sub did not acknowledge within {timeout:.1f} s")
        if pending.error is not None:
            raise PublishFailed(f"publish to {topic} failed: {pending.error}")
        assert pending.message_id is not None
        return pending.message_id

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- senders ---------------------------------------------------------------------------
    def _take_batch(self) -> tuple[str, list[_Pending]] | None:
        """Under the lock: the oldest waiting topic's messages, up to the batch limits."""
        for topic, queue in self._queues.items():
            if queue:
                batch: list[_Pending] = []
                size = 0
                while queue and len(batch) < MAX_BATCH_MESSAGES and size + queue[0].size <= MAX_BATCH_BYTES:
                    item = queue.popleft()
                    batch.append(item)
                    size += item.size
                if not batch:  # one message larger than the byte limit: send it alone
                    batch.append(queue.popleft())
                return topic, batch
        return None

    def _queued(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queued():
                    if self._closed:
                        return
                    self._sleepers += 1
                    self._cond.wait()
                    self._sleepers -= 1
                busy = self._in_flight > 0
            # Nagle-like: while another RPC is in flight the system is busy, so give the batch a
            # moment to fill instead of sending it tiny. When idle, send at once.
            if busy and self._linger_s:
                time.sleep(self._linger_s)
            with self._cond:
                taken = self._take_batch()
                if taken is None:
                    continue
                self._in_flight += 1
            try:
                self._send(*taken)
            finally:
                with self._cond:
                    self._in_flight -= 1

    def _send(self, topic: str, batch: list[_Pending]) -> None:
        import grpc

        request = self._request_cls(topic=topic, messages=[p.message for p in batch])
        metadata = (("x-goog-request-params", f"topic={topic}"),)
        deadline = min(p.deadline for p in batch)
        backoff = 0.05
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(batch, "deadline passed before Pub/Sub acknowledged")
                return
            try:
                response = self._stub(request, timeout=remaining, metadata=metadata)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code in self._retryable and deadline - time.monotonic() > backoff:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 0.5)
                    continue
                self._fail(batch, f"{code}: {exc.details() if hasattr(exc, 'details') else exc}")
                return
            except Exception as exc:  # serialisation or channel errors: fail the batch, keep serving
                self._fail(batch, f"{type(exc).__name__}: {exc}")
                return
            if len(response.message_ids) != len(batch):
                self._fail(
                    batch, f"Pub/Sub returned {len(response.message_ids)} ids for {len(batch)} messages"
                )
                return
            for pending, message_id in zip(batch, response.message_ids, strict=True):
                pending.resolve(message_id, None)
            return

    @staticmethod
    def _fail(batch: list[_Pending], reason: str) -> None:
        for pending in batch:
            pending.resolve(None, reason)
