"""Group commit: every submitter gets its own outcome; concurrency forms batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.groupcommit import GroupCommit, GroupCommitClosed, GroupCommitTimeout


def test_each_submitter_gets_its_own_result() -> None:
    batcher: GroupCommit[int, int] = GroupCommit(lambda key, items: [i * 10 for i in items])
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: batcher.submit(i, timeout=5), range(200)))
    batcher.close()
    assert results == [i * 10 for i in range(200)]


def test_concurrent_submits_share_flushes_and_respect_limits() -> None:
    calls: list[list[int]] = []

    def slow_flush(key: Hashable, items: list[int]) -> list[int | BaseException]:
        calls.append(items)
        time.sleep(0.01)  # an RPC: meanwhile more items queue up
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit(slow_flush, max_items=7, workers=1, linger_s=0)
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda i: batcher.submit(i, timeout=10), range(100)))
    batcher.close()
    assert sorted(i for call in calls for i in call) == list(range(100))
    assert max(len(c) for c in calls) == 7
    assert len(calls) < 100


def test_weight_limit_splits_batches_but_an_oversize_item_still_goes_alone() -> None:
    calls: list[list[int]] = []

    def flush(key: Hashable, items: list[int]) -> list[int | BaseException]:
        calls.append(items)
        time.sleep(0.005)
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit(flush, max_weight=10, workers=1, linger_s=0)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: batcher.submit(i, timeout=10, weight=4), range(20)))
    assert batcher.submit(99, timeout=5, weight=50) == 99
    batcher.close()
    assert all(len(c) <= 2 for c in calls[:-1])
    assert calls[-1] == [99]


def test_per_item_exceptions_reach_only_their_submitter() -> None:
    def flush(key: Hashable, items: list[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {i}") if i % 2 else i for i in items]

    batcher: GroupCommit[int, int] = GroupCommit(flush)
    assert batcher.submit(2, timeout=5) == 2
    with pytest.raises(ValueError, match="bad 3"):
        batcher.submit(3, timeout=5)
    batcher.close()


def test_a_failing_flush_fails_every_item_of_the_batch_and_keeps_serving() -> None:
    state = {"fail": True}

    def flush(key: Hashable, items: list[int]) -> list[int | BaseException]:
        if state["fail"]:
            raise ConnectionError("backend down")
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit(flush)
    with pytest.raises(ConnectionError):
        batcher.submit(1, timeout=5)
    state["fail"] = False
    assert batcher.submit(2, timeout=5) == 2
    batcher.close()


def test_keys_are_flushed_separately() -> None:
    seen: list[tuple[Hashable, list[str]]] = []
    lock = threading.Lock()

    def flush(key: Hashable, items: list[str]) -> list[str | BaseException]:
        with lock:
            seen.append((key, items))
        time.sleep(0.005)
        return [f"{key}:{i}" for i in items]

    batcher: GroupCommit[str, str] = GroupCommit(flush)
    with ThreadPoolExecutor(16) as pool:
        out = list(pool.map(lambda i: batcher.submit(str(i), timeout=5, key="ab"[i % 2]), range(40)))
    batcher.close()
    assert out == [f"{'ab'[i % 2]}:{i}" for i in range(40)]
    assert all(all(int(i) % 2 == "ab".index(key) for i in items) for key, items in seen)  # type: ignore[arg-type]


def test_timeout_and_closed() -> None:
    release = threading.Event()

    def stuck(key: Hashable, items: list[int]) -> list[int | BaseException]:
        release.wait(5)
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit(stuck, workers=1)
    started = time.monotonic()
    with pytest.raises(GroupCommitTimeout):
        batcher.submit(1, timeout=0.2)
    assert time.monotonic() - started < 1
    release.set()
    batcher.close()
    with pytest.raises(GroupCommitClosed):
        batcher.submit(2, timeout=1)


def test_idle_submit_is_flushed_at_once() -> None:
    batcher: GroupCommit[int, int] = GroupCommit(lambda key, items: list(items), linger_s=2.0)
    batcher.submit(0, timeout=5)  # starts the workers
    started = time.monotonic()
    batcher.submit(1, timeout=5)
    assert time.monotonic() - started < 1.0  # no linger when nothing else is in flight
    batcher.close()


def test_wrong_number_of_outcomes_is_an_error_for_everyone() -> None:
    batcher: GroupCommit[int, int] = GroupCommit(lambda key, items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1"):
        batcher.submit(1, timeout=5)
    batcher.close()
