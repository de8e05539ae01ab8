"""Group-commit Pub/Sub publisher on the event loop: raw gRPC over ``grpc.aio``.

The asynchronous twin of ``shared.adapters.pubsub_group_commit`` for entry points on
functions-framework's ASGI path (``ingest_webhook``). Same wire format (one raw
``google.pubsub.v1.Publisher/Publish`` call per batch, messages as plain protobufs), same
batching rule, no threads:

* an idle loop sends a message at once (lowest latency when quiet);
* while ``senders`` RPCs are in flight, new messages queue up per topic and leave together
  in the next RPC (big batches exactly when load is high). A publish costs a future, a timer
  and a queue append; the RPC's fixed cost is shared by the batch.

Retries follow Pub/Sub's documented retryable codes, bounded by the publish deadline
(``SHOPML_PUBLISH_TIMEOUT_SECONDS``); a message not acknowledged by its deadline raises
``PublishFailed`` (it may still be stored later: the caller answers 503, Shopify retries, and
loading folds the duplicate by ``webhook_id``). A message whose deadline passed before its
batch left is not sent at all.

A ``grpc.aio`` channel belongs to the event loop it was created on, so the channel, the queues
and the senders are created lazily per running loop, on that loop's first publish (never at
import). ``PUBSUB_EMULATOR_HOST`` (``settings.pubsub_emulator_host``) selects a plaintext
channel to the emulator; otherwise the channel is Google's, with application default
credentials looked up off the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from shared.adapters.pubsub_group_commit import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, RETRYABLE_CODES
from shared.errors import PublishFailed
from shared.ports import EventPublisher
from shared.settings import Settings

_SCOPES = ("https://www.googleapis.com/auth/pubsub",)
_ENDPOINT = "pubsub.googleapis.com:443"
_MESSAGE_OVERHEAD = 64  # bytes counted per message on top of its data, towards MAX_BATCH_BYTES

# How long the Publish RPC that carried the caller's last message took, from its first attempt
# to Pub/Sub's answer (seconds): set in the awaiting task's context when ``publish`` returns.
# ``ingest_webhook`` reports it in a ``Server-Timing`` header when asked (the benchmark then
# tells the broker's wait from the function's own time).
LAST_RPC_SECONDS: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "pubsub_rpc_seconds", default=None
)


class _Pending:
    """One message waiting for its batch: the caller awaits ``future``."""

    __slots__ = ("deadline", "future", "message", "rpc_seconds", "weight")

    def __init__(self, message: Any, future: asyncio.Future[str], deadline: float, weight: int) -> None:
        self.message = message
        self.future = future
        self.deadline = deadline
        self.weight = weight
        self.rpc_seconds: float | None = None


class _LoopSender:
    """What one event loop owns: its channel and stub, the queues per topic, the RPCs in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.channel: Any = None
        self.stub: Any = None
        self.connecting: asyncio.Task[None] | None = None
        self.queues: dict[str, deque[_Pending]] = {}
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()  # strong references until each sender ends


def _expire(future: asyncio.Future[str], timeout: float) -> None:
    if not future.done():
        future.set_exception(PublishFailed(f"Pub/Sub did not acknowledge within {timeout:.1f} s"))


class AsyncGroupCommitPublisher:
    """``await publish(topic, data, attributes)`` → the server's message id, after Pub/Sub's ack.

    Safe to share between event loops (each gets its own channel); not thread-safe within one
    loop, like everything on a loop.
    """

    def __init__(self, settings: Settings, *, senders: int | None = None) -> None:
        self._settings = settings
        self._max_in_flight = senders or settings.publish_senders
        self._lock = threading.Lock()  # guards the per-loop map (loops may live in several threads)
        self._by_loop: dict[asyncio.AbstractEventLoop, _LoopSender] = {}
        self._message_cls: Any = None
        self._request_cls: Any = None
        self._response_cls: Any = None
        self._rpc_error: Any = None  # grpc.aio.AioRpcError, once connected
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # recent RPC sizes, for tests and metrics

    # -- the caller's side ------------------------------------------------------------------------

    async def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        loop = asyncio.get_running_loop()
        sender = self._by_loop.get(loop)
        if sender is None or sender.stub is None:
            sender = await self._connected(loop)
        timeout = self._settings.publish_timeout_seconds
        future: asyncio.Future[str] = loop.create_future()
        pending = _Pending(
            self._message_cls(data=data, attributes=attributes),
            future,
            loop.time() + timeout,
            len(data) + _MESSAGE_OVERHEAD,
        )
        path = self._settings.topic_path(topic)
        queue = sender.queues.get(path)
        if queue is None:
            queue = sender.queues[path] = deque()
        queue.append(pending)
        if sender.in_flight < self._max_in_flight:
            sender.in_flight += 1
            task = loop.create_task(self._send_while_queued(sender))
            sender.tasks.add(task)
            task.add_done_callback(sender.tasks.discard)
        timer = loop.call_at(pending.deadline, _expire, future, timeout)
        try:
            message_id = await future
        finally:
            timer.cancel()
        LAST_RPC_SECONDS.set(pending.rpc_seconds)
        return message_id

    async def aclose(self) -> None:
        """Close the running loop's channel (messages still queued on it fail)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            sender = self._by_loop.pop(loop, None)
        if sender is not None and sender.channel is not None:
            await sender.channel.close()

    # -- connecting, once per loop ----------------------------------------------------------------

    async def _connected(self, loop: asyncio.AbstractEventLoop) -> _LoopSender:
        with self._lock:
            sender = self._by_loop.get(loop)
            if sender is None:
                for old in [other for other in self._by_loop if other.is_closed()]:
                    del self._by_loop[old]  # a finished loop's channel went with it
                sender = self._by_loop[loop] = _LoopSender(loop)
                sender.connecting = loop.create_task(self._connect(sender))
        assert sender.connecting is not None
        try:
            # Shielded: a caller that gives up must not cancel the others' connection.
            await asyncio.shield(sender.connecting)
        except asyncio.CancelledError:
            raise  # this caller gave up; the connection goes on for the others
        except BaseException:
            with self._lock:
                if self._by_loop.get(loop) is sender and sender.stub is None:
                    del self._by_loop[loop]  # the next publish tries again
            raise
        return sender

    async def _connect(self, sender: _LoopSender) -> None:
        import grpc.aio
        from google.pubsub_v1 import types

        self._message_cls = types.PubsubMessage.pb()
        self._request_cls = types.PublishRequest.pb()
        self._response_cls = types.PublishResponse.pb()
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        if self._settings.pubsub_emulator_host:
            channel = grpc.aio.insecure_channel(self._settings.pubsub_emulator_host, options=options)
        else:
            import google.auth
            from google.api_core import grpc_helpers_async

            # google.auth.default() may ask the metadata server: off the loop.
            credentials, _ = await asyncio.to_thread(google.auth.default, default_scopes=_SCOPES)
            channel = grpc_helpers_async.create_channel(
                _ENDPOINT,
                credentials=credentials,
                default_scopes=_SCOPES,
                default_host=_ENDPOINT.split(":")[0],
                options=options,
            )
        sender.channel = channel
        sender.stub = channel.unary_unary(
            "/google.pubsub.v1.Publisher/Publish",
            request_serializer=self._request_cls.SerializeToString,
            response_deserializer=self._response_cls.FromString,
        )
        self._rpc_error = grpc.aio.AioRpcError

    # -- the senders ------------------------------------------------------------------------------

    def _take(self, sender: _LoopSender) -> tuple[str, list[_Pending]] | None:
        """The next batch: everything queued for one topic, up to Pub/Sub's request limits,
        leaving out messages whose caller already has an answer (deadline passed, cancelled)."""
        for path, queue in sender.queues.items():
            batch: list[_Pending] = []
            weight = 0
            while queue and len(batch) < MAX_BATCH_MESSAGES:
                head = queue[0]
                if head.future.done():
                    queue.popleft()
                    continue
                if batch and weight + head.weight > MAX_BATCH_BYTES:
                    break
                weight += head.weight
                batch.append(queue.popleft())
            if batch:
                return path, batch
        return None

    async def _send_while_queued(self, sender: _LoopSender) -> None:
        try:
            while True:
                taken = self._take(sender)
                if taken is None:
                    return
                path, batch = taken
                self.batch_sizes.append(len(batch))
                started = time.perf_counter()
                try:
                    outcome = await self._send(sender, path, batch)
                except Exception as exc:  # every waiting caller gets an answer, whatever failed
                    outcome = PublishFailed(f"publish to {path} failed: {type(exc).__name__}: {exc}")
                if isinstance(outcome, PublishFailed):
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(outcome)
                    continue
                rpc_seconds = time.perf_counter() - started
                for pending, message_id in zip(batch, outcome, strict=True):
                    if not pending.future.done():
                        pending.rpc_seconds = rpc_seconds
                        pending.future.set_result(message_id)
        finally:
            sender.in_flight -= 1

    async def _send(self, sender: _LoopSender, path: str, batch: list[_Pending]) -> list[str] | PublishFailed:
        """One Publish RPC for ``batch``, retried while retryable and inside every deadline."""
        loop = sender.loop
        request = self._request_cls(topic=path, messages=[pending.message for pending in batch])
        metadata = (("x-goog-request-params", f"topic={path}"),)
        deadline = min(pending.deadline for pending in batch)
        backoff = 0.05
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return PublishFailed("deadline passed before Pub/Sub acknowledged")
            try:
                response = await sender.stub(request, timeout=remaining, metadata=metadata)
            except self._rpc_error as exc:
                code = exc.code()
                if code.name in RETRYABLE_CODES and deadline - loop.time() > backoff:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 0.5)
                    continue
                return PublishFailed(f"publish to {path} failed: {code}: {exc.details()}")
            ids = list(response.message_ids)
            if len(ids) != len(batch):
                return PublishFailed(f"Pub/Sub returned {len(ids)} ids for {len(batch)}")
            return ids


class ThreadedPublisher:
    """A blocking ``EventPublisher`` on the async path: each publish runs in the loop's default
    executor. For ``SHOPML_PUBLISHER=client`` (the official client) and for publishers passed
    in through ``bootstrap.override(publisher=...)`` (tests, the demo)."""

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher

    async def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        return await asyncio.to_thread(self.publisher.publish, topic, data, attributes)
