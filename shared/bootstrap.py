"""Wiring: the one place that builds adapters from settings.

Entry points ask here for what they need; everything is built lazily on first use (never at
import, so emulator variables set later are honoured and cold start stays short). Tests call
``override(...)`` to pass other adapters in, instead of patching internals.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.ports import EventPublisher, Warehouse
from shared.settings import Settings, get_settings

_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_built: dict[str, Any] = {}


def override(**parts: Any) -> None:
    """Replace parts (``settings=``, ``publisher=``) for this process; ``reset()`` undoes it."""
    with _lock:
        _overrides.update(parts)
        _built.clear()


def reset() -> None:
    with _lock:
        _overrides.clear()
        _built.clear()


def settings() -> Settings:
    found = _overrides.get("settings")
    return found if found is not None else get_settings()


def publisher() -> EventPublisher:
    if "publisher" in _overrides:
        return _overrides["publisher"]
    with _lock:
        if "publisher" not in _built:
            current = settings()
            if current.publisher == "client":
                from shared.adapters.pubsub import PubSubPublisher

                _built["publisher"] = PubSubPublisher(current)
            else:
                from shared.adapters.pubsub_fast import GroupCommitPublisher

                _built["publisher"] = GroupCommitPublisher(current)
        return _built["publisher"]


def warehouse() -> Warehouse:
    if "warehouse" in _overrides:
        return _overrides["warehouse"]
    with _lock:
        if "warehouse" not in _built:
            from shared.warehouse import create_warehouse

            _built["warehouse"] = create_warehouse(settings())
        return _built["warehouse"]
