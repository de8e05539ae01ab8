"""Group commit: concurrent callers share one expensive operation (an RPC, a transaction).

A caller submits an item and waits for its own outcome. A few worker threads take everything
waiting (up to a limit, per key) and flush it at once: an idle worker flushes immediately
(lowest latency when quiet); while another flush is in flight the system is busy, so a worker
lingers a moment to let the batch fill (Nagle-like). Pure threading, no I/O of its own: the
flush function does the work and returns one outcome per item (a result or an exception).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Hashable, list[T]], list["R | BaseException"]]


class GroupCommitClosed(RuntimeError):
    """Submitted after ``close()``."""


class GroupCommitTimeout(TimeoutError):
    """The item's outcome did not arrive in time (it may still be flushed later)."""


class _Waiter(Generic[T, R]):
    """One submitted item. ``done`` is a plain lock held until resolved: a C-level wait, much
    cheaper per item than ``threading.Event`` (a Python-level Condition)."""

    __slots__ = ("done", "item", "outcome", "weight")

    def __init__(self, item: T, weight: int) -> None:
        self.item = item
        self.weight = weight
        self.outcome: R | BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()


class GroupCommit(Generic[T, R]):
    """Batches concurrent ``submit`` calls into ``flush(key, items)`` calls. Thread-safe, lazy."""

    def __init__(
        self,
        flush: Callable[[Hashable, list[T]], list[R | BaseException]],
        *,
        max_items: int = 500,
        max_weight: int = 1 << 62,
        workers: int = 2,
        linger_s: float = 0.002,
        name: str = "group-commit",
    ) -> None:
        self._flush = flush
        self._max_items = max_items
        self._max_weight = max_weight
        self._workers = workers
        self._linger_s = linger_s
        self._name = name
        self._cond = threading.Condition()
        self._queues: dict[Hashable, deque[_Waiter[T, R]]] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._in_flight = 0
        self._sleepers = 0
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # recent flush sizes, for tests and metrics

    def submit(self, item: T, timeout: float, key: Hashable = "", weight: int = 1) -> R:
        """Queue ``item`` and wait for its outcome; raise the flush's exception for it."""
        waiter: _Waiter[T, R] = _Waiter(item, weight)
        with self._cond:
            if self._closed:
                raise GroupCommitClosed(f"{self._name} is closed")
            if not self._threads:
                for index in range(self._workers):
                    thread = threading.Thread(target=self._run, name=f"{self._name}-{index}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._queues.setdefault(key, deque()).append(waiter)
            if self._sleepers:
                self._cond.notify()
        if not waiter.done.acquire(timeout=timeout):
            raise GroupCommitTimeout(f"{self._name}: no outcome within {timeout:.1f} s")
        if isinstance(waiter.outcome, BaseException):
            raise waiter.outcome
        return waiter.outcome  # type: ignore[return-value]

    def close(self) -> None:
        """Flush what is queued, then stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def _take(self) -> tuple[Hashable, list[_Waiter[T, R]]] | None:
        for key, queue in self._queues.items():
            if queue:
                batch = [queue.popleft()]
                weight = batch[0].weight
                while queue and len(batch) < self._max_items and weight + queue[0].weight <= self._max_weight:
                    weight += queue[0].weight
                    batch.append(queue.popleft())
                return key, batch
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not any(self._queues.values()):
                    if self._closed:
                        return
                    self._sleepers += 1
                    self._cond.wait()
                    self._sleepers -= 1
                busy = self._in_flight > 0
            if busy and self._linger_s:
                time.sleep(self._linger_s)
            with self._cond:
                taken = self._take()
                if taken is None:
                    continue
                self._in_flight += 1
            key, batch = taken
            self.batch_sizes.append(len(batch))
            try:
                outcomes = self._flush(key, [w.item for w in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"flush returned {len(outcomes)} outcomes for {len(batch)} items")
            except BaseException as exc:
                outcomes = [exc] * len(batch)
            finally:
                with self._cond:
                    self._in_flight -= 1
            for waiter, outcome in zip(batch, outcomes, strict=True):
                waiter.outcome = outcome
                waiter.done.release()
