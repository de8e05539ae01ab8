"""Replay webhook events straight into a warehouse, through the real ingest and validation
code but without HTTP or Pub/Sub: for benchmarks and tests that need loaded history fast.

Each event is signed, accepted by ``accept_webhook`` (HMAC, headers, routing) into an
in-memory publisher, validated by ``plan_load`` and written in batches by ``store_batch`` —
the same rows ``validate_load`` writes, quarantine included.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from devkit.pull_loader import store_batch
from devkit.simulator.events import WebhookEvent, headers
from shared.ingest import accept_webhook
from shared.logs import get_logger
from shared.ports import Warehouse
from shared.settings import Settings
from shared.validation import plan_load

_SECRET = "replay-secret"  # noqa: S105 - signs and verifies in-process only, never a real secret


@dataclass
class _Captured:
    messages: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.messages.append((data, dict(attributes)))
        return str(len(self.messages))


@dataclass(frozen=True)
class ReplaySummary:
    events: int
    loaded: int
    quarantined: int
    refused: int  # not accepted by ingest (status other than 200)


def replay_into_warehouse(
    events: Iterable[WebhookEvent], warehouse: Warehouse, batch_size: int = 500
) -> ReplaySummary:
    settings = Settings(webhook_secrets=(_SECRET,))
    logger = get_logger("replay", "WARNING")
    captured = _Captured()
    count = refused = loaded = quarantined = 0
    for event in events:
        count += 1
        body = functools.partial(bytes, event.body)
        result = accept_webhook("POST", headers(event, _SECRET), body, settings, captured, logger)
        if result.status != 200:
            refused += 1
    now = datetime.now(UTC)
    for start in range(0, len(captured.messages), batch_size):
        chunk = captured.messages[start : start + batch_size]
        plans = [
            plan_load(attributes, data, f"replay-{start + i}", now, now)
            for i, (data, attributes) in enumerate(chunk)
        ]
        for outcome in store_batch(plans, warehouse, now):
            if isinstance(outcome, Exception):
                raise outcome
            if outcome.rejection is not None:
                quarantined += 1
            else:
                loaded += 1
    return ReplaySummary(count, loaded, quarantined, refused)
