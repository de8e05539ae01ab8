"""An ``EventPublisher`` that loads in this process instead of going through Pub/Sub.

``shopml backfill --direct`` (no local stack needed), the tests and the benchmark publish
converted store events through this: each message is planned by ``plan_load`` exactly as
``validate_load`` plans a Pub/Sub message (a random message id, as Pub/Sub assigns one), and
plans are written in batches by the pull loader's ``store_batch`` (one ``write_batch``,
permanent failures isolated and quarantined). ``flush`` writes what is buffered;
``publish_events`` calls it at the end of every batch, so a batch is in the warehouse before
its progress is recorded, as with an acknowledged publish.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from devkit.pull_loader import store_batch
from shared.errors import TransientError
from shared.ports import Warehouse
from shared.validation import LoadPlan, plan_load


class DirectLoader:
    """``publish(topic, data, attributes)`` → planned now, written at ``flush`` (or every ``batch``)."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        store_pii: bool = False,
        pii_hash_key: str = "",
        batch: int = 1000,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.warehouse = warehouse
        self.store_pii = store_pii
        self.pii_hash_key = pii_hash_key
        self.batch = batch
        self.now = now
        self.published = 0
        self.loaded = 0
        self.rejected = 0
        self._plans: list[LoadPlan] = []
        self._lock = threading.Lock()

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        if topic != "shopify-events":
            raise TransientError(f"DirectLoader loads shopify-events only, not {topic}")
        message_id = uuid.uuid4().hex
        now = self.now()
        plan = plan_load(attributes, data, message_id, now, now, self.store_pii, self.pii_hash_key)
        with self._lock:
            self._plans.append(plan)
            self.published += 1
            if len(self._plans) >= self.batch:
                self._write_locked()
        return message_id

    def flush(self) -> None:
        with self._lock:
            self._write_locked()

    def _write_locked(self) -> None:
        plans, self._plans = self._plans, []
        if not plans:
            return
        for outcome in store_batch(plans, self.warehouse, self.now()):
            if isinstance(outcome, TransientError):
                self._plans = plans  # keep them: the caller's next flush retries
                raise outcome
            if outcome.rejected:
                self.rejected += 1
            else:
                self.loaded += 1
