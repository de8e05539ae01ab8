"""Small durable state of store syncing, one JSON object per key in an object store.

``file:///dir`` locally (``SHOPML_SYNC_STATE``, default ``$SHOPML_HOME/sync``), a GCS bucket
in the cloud (Terraform's watermark bucket). Objects are replaced whole (atomic rename
locally, a completed upload on GCS), so a reader never sees half a document. One writer per
shop is assumed (one ``reconcile`` at a time: the function runs with concurrency 1 and
Scheduler every 4 hours); nothing here relies on compare-and-swap.

Keys: ``watermarks/<shop>.json`` (reconcile), ``uninstalled/<shop>.json`` (``app/uninstalled``
seen: polling stops, data stays until ``shop/redact``), ``backfill/<shop>.json`` (progress).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from shared.errors import PermanentError


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def list(self, prefix: str = "") -> list[str]: ...


def _shop_key(shop: str) -> str:
    shop = shop.lower()
    if not shop.endswith(".myshopify.com") or "/" in shop:
        raise PermanentError(f"shop {shop!r} must be a *.myshopify.com domain")
    return shop


class SyncState:
    """Watermarks, uninstalled shops and backfill progress over an ``ObjectStore``."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def _get(self, key: str) -> dict[str, Any] | None:
        raw = self.store.get(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise PermanentError(f"sync state {key} is not JSON; remove it to start over") from exc
        return value if isinstance(value, dict) else None

    def _put(self, key: str, value: dict[str, Any]) -> None:
        self.store.put(key, json.dumps(value, sort_keys=True, indent=1).encode(), "application/json")

    # -- reconcile watermarks ------------------------------------------------------------------
    def watermark(self, shop: str) -> dict[str, Any] | None:
        """``{"resource": "ISO time", ...}``: everything updated before it has been compared."""
        return self._get(f"watermarks/{_shop_key(shop)}.json")

    def set_watermark(self, shop: str, value: dict[str, Any]) -> None:
        self._put(f"watermarks/{_shop_key(shop)}.json", value)

    # -- uninstalled shops ---------------------------------------------------------------------
    def mark_uninstalled(self, shop: str, at: datetime, source: str) -> None:
        self._put(
            f"uninstalled/{_shop_key(shop)}.json", {"shop": shop, "at": at.isoformat(), "source": source}
        )

    def clear_uninstalled(self, shop: str) -> bool:
        """A reinstall (``shopml connect``): the shop is polled again. True if it was marked."""
        key = f"uninstalled/{_shop_key(shop)}.json"
        if self._get(key) is None:
            return False
        self._put(key, {"shop": shop, "reinstalled": True})
        return True

    def uninstalled(self, shop: str) -> dict[str, Any] | None:
        record = self._get(f"uninstalled/{_shop_key(shop)}.json")
        return None if record is None or record.get("reinstalled") else record

    # -- connected shops and backfill progress ---------------------------------------------------
    def connected_shops(self) -> list[str]:
        """Shops ``shopml connect`` has set up (reconcile polls these, less the uninstalled)."""
        return sorted(
            k.split("/", 1)[1][: -len(".json")] for k in self.store.list("connected/") if k.endswith(".json")
        )

    def connected(self, shop: str) -> dict[str, Any] | None:
        return self._get(f"connected/{_shop_key(shop)}.json")

    def mark_connected(self, shop: str, details: dict[str, Any]) -> None:
        self._put(f"connected/{_shop_key(shop)}.json", {"shop": shop, **details})

    def backfill(self, shop: str) -> dict[str, Any] | None:
        return self._get(f"backfill/{_shop_key(shop)}.json")

    def set_backfill(self, shop: str, value: dict[str, Any]) -> None:
        self._put(f"backfill/{_shop_key(shop)}.json", value)
