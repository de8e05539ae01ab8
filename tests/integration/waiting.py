"""Waiting on the local stack: its functions work asynchronously (Pub/Sub push, loads)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 0.25) -> Any:
    """``check()``'s first truthy value, polled every ``interval_s``; an AssertionError naming
    ``what`` when ``timeout_s`` passes without one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")
