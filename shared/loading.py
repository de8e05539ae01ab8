"""Validation and load, the use case behind ``validate_load``.

Decode the push envelope → ``plan_load`` (pure validation and normalisation) → write the
plan's rows (raw landing row always; typed rows, or a quarantine row with reasons) in one
warehouse batch. Retrying is a decision made here:

* ``TransientError`` from the warehouse propagates: the entry point re-raises, Pub/Sub
  redelivers with backoff and finally dead-letters. Nothing is lost.
* ``PermanentError`` from the warehouse (rows that do not fit a table, which validation
  should have caught): the event is quarantined with that reason instead, so it is not
  retried forever and not dropped.

Redelivery adds nothing but an audit row: every row has a deterministic id (the raw landing
row the Pub/Sub message id, the others ``<webhook_id>:<table>:<index>``), the DuckDB adapter
skips an id its table holds, BigQuery drops most repeats and the ``*_latest`` views fold the
rest. So a Shopify retry (same webhook, new message) adds one ``raw_events`` row, and the same
message delivered twice adds none.

Concurrent deliveries share transactions inside the DuckDB adapter (group commit); the pull
loader (``devkit.pull_loader``) writes whole batches at once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.envelope import MalformedEnvelope, PubSubMessage, decode_push_message
from shared.errors import PermanentError, TransientError
from shared.logs import StructuredLogger
from shared.validation import LoadPlan, Reason, plan_load, rejection_row

Rows = dict[str, list[dict[str, Any]]]
RowIds = dict[str, list[str]]


@dataclass(frozen=True)
class LoadOutcome:
    status: str  # "loaded" or "rejected"
    webhook_id: str | None
    shopify_topic: str | None
    reasons: tuple[str, ...] = ()
    unknown_fields: tuple[str, ...] = ()


def quarantined(plan: LoadPlan, reason: Reason, now: datetime) -> LoadPlan:
    """The same event as a rejection with ``reason`` first: raw row kept, no typed rows."""
    raw = {**plan.raw_row, "status": "rejected"}
    reasons = [reason, *plan.reasons]
    rejection = rejection_row(raw, reasons, plan.schema_version, now)
    return dataclasses.replace(
        plan,
        status="rejected",
        raw_row=raw,
        rows_by_table={},
        row_ids_by_table={},
        rejection=rejection,
        reasons=reasons,
    )


def plan_message(
    event_data: Any, event_id: str, now: datetime, *, store_pii: bool, pii_hash_key: str
) -> LoadPlan:
    """A load plan for one push delivery; a malformed envelope becomes a quarantined plan."""
    try:
        message = decode_push_message(event_data)
    except MalformedEnvelope as exc:
        # Keep the envelope itself as the body, so what arrived can be inspected and replayed.
        text = json.dumps(event_data, default=str, sort_keys=True)
        message = PubSubMessage(data=text.encode("utf-8"), message_id=event_id)
        plan = plan_load({}, message.data, message.message_id, None, now, store_pii, pii_hash_key)
        return quarantined(plan, Reason("(envelope)", "a Pub/Sub push message", str(exc)), now)
    return plan_load(
        message.attributes,
        message.data,
        message.message_id or event_id,
        message.publish_time,
        now,
        store_pii,
        pii_hash_key,
    )


def store_plan(plan: LoadPlan, write: Callable[[Rows, RowIds], None], now: datetime) -> LoadPlan:
    """Write one plan; a permanent failure quarantines it instead. Returns what was written.

    Raises ``TransientError`` when the write may succeed later, or when not even the
    quarantine row fits (the message is kept: redelivery, then the dead-letter topic).
    """
    try:
        write(*plan.writes())
        return plan
    except PermanentError as exc:
        plan = quarantined(plan, Reason("(load)", "rows that fit the warehouse tables", str(exc)), now)
        try:
            write(*plan.writes())
        except PermanentError as again:
            raise TransientError(f"cannot quarantine event: {again}") from again
        return plan


def log_outcome(plan: LoadPlan, logger: StructuredLogger) -> None:
    labels = {"shop": plan.raw_row["shop_domain"], "topic": plan.raw_row["shopify_topic"]}
    fields: dict[str, Any] = {"webhook_id": plan.raw_row["webhook_id"], "status": plan.status}
    if plan.rejected:
        logger.warning(
            "event quarantined", labels=labels, reasons=[str(r) for r in plan.reasons[:5]], **fields
        )
    else:
        if plan.unknown_fields:
            fields["unknown_fields"] = plan.unknown_fields[:20]
        logger.info("event loaded", labels=labels, **fields)


def outcome_of(plan: LoadPlan) -> LoadOutcome:
    return LoadOutcome(
        status=plan.status,
        webhook_id=plan.raw_row["webhook_id"],
        shopify_topic=plan.raw_row["shopify_topic"],
        reasons=tuple(str(r) for r in plan.reasons),
        unknown_fields=tuple(plan.unknown_fields),
    )


def load(
    event_data: Any,
    event_id: str,
    write: Callable[[Rows, RowIds], None],
    logger: StructuredLogger,
    *,
    store_pii: bool = False,
    pii_hash_key: str = "",
    on_loaded: Callable[[LoadPlan], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> LoadOutcome:
    """Validate and write one delivery. Raises ``TransientError`` to ask for redelivery."""
    plan = plan_message(event_data, event_id, now(), store_pii=store_pii, pii_hash_key=pii_hash_key)
    plan = store_plan(plan, write, now())
    log_outcome(plan, logger)
    if on_loaded is not None and not plan.rejected:
        run_after_load(on_loaded, plan, logger)
    return outcome_of(plan)


def run_after_load(hook: Callable[[LoadPlan], None], plan: LoadPlan, logger: StructuredLogger) -> None:
    """Run a post-load hook (real-time feature pushes) without letting it fail the load.

    The event is already written: raising now would make Pub/Sub redeliver an event that
    loaded fine. What the hook feeds must be repairable from the warehouse (the feature
    store is: the nightly materialization rewrites it), so a failure is a warning.
    """
    try:
        hook(plan)
    except Exception as exc:
        logger.warning(
            "post-load hook failed; the event stays loaded",
            labels={"shop": plan.raw_row["shop_domain"], "topic": plan.raw_row["shopify_topic"]},
            webhook_id=plan.raw_row["webhook_id"],
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
