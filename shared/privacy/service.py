"""The use case behind ``compliance``: one privacy request, done once, audited.

``handle_request(request, deps)``:

1. Reads the request's ``privacy_audit`` rows. A ``completed`` row means it was done:
   nothing is touched and nothing is written (a redelivery changes nothing more).
2. Runs the topic's steps (``shared.privacy.redaction``): data request → export; customer
   redact → typed tables, raw and quarantine bodies, exports, dead letters; shop redact →
   every table with the shop's rows, exports, dead letters.
3. Appends one audit row: ``completed`` with ``completed_at`` and the rows touched per place
   summed over every attempt; or, when a step raised (``StreamingBufferBusy`` from BigQuery's
   streaming buffer, an unavailable service, a missing permission), ``pending`` with what this
   attempt did and why it stopped, and re-raises, so Pub/Sub redelivers with backoff and the
   next attempt carries on (every step is idempotent, so it redoes only what is left).

The audit table is append-only (``insert_rows``), never updated, so the streaming buffer never
blocks writing it. It holds the customer only as a keyed hash of the id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import ShopmlError
from shared.ports import MutableWarehouse, ObjectStore
from shared.privacy.feature_store import FeatureStoreEraser
from shared.privacy.redaction import (
    AUDIT_TABLE,
    EXPORTS_PREFIX,
    CustomerKeys,
    DeadLetterQueue,
    Touched,
    anonymise_bodies,
    customer_folder,
    delete_exports,
    erase_shop_rows,
    export_customer_data,
    message_concerns_customer,
    message_concerns_shop,
    purge_dead_letters,
    redact_typed,
    shop_variant_ids,
)
from shared.privacy.requests import CUSTOMER_REDACT, DATA_REQUEST, SHOP_REDACT, PrivacyRequest
from shared.privacy.scrub import keyed_hash

COMPLETED = "completed"
PENDING = "pending"
NOT_TABLES = ("exports", "online_store")


@dataclass(frozen=True)
class PrivacyDeps:
    """What a privacy request needs: built from settings by ``shared.privacy.wiring``; tests
    pass fakes. ``dead_letters`` None: no dead-letter subscriptions to purge (a bare warehouse);
    ``feature_store`` None: no feature-store copy this process can reach (the cloud: see
    ``shared.privacy.feature_store``)."""

    warehouse: MutableWarehouse
    exports: ObjectStore
    hash_key: bytes
    dead_letters: DeadLetterQueue | None = None
    feature_store: FeatureStoreEraser | None = None  # None: no copy to erase here (the cloud's TTL)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class PrivacyOutcome:
    """What became of one request. ``already_done``: an earlier attempt completed it."""

    request: PrivacyRequest
    status: str  # "completed" or "already_done"
    attempt: int
    touched: dict[str, int]  # rows (objects, messages) per place over all attempts
    total_rows: int  # everything touched, as in the audit row
    redacted_rows: int  # warehouse rows deleted or anonymised: the demo's ``redacted_rows``
    export_uri: str | None = None

    def log_fields(self) -> dict[str, Any]:
        return {
            "request_id": self.request.request_id,
            "topic": self.request.topic,
            "shop": self.request.shop_domain,
            "status": self.status,
            "attempt": self.attempt,
            "total_rows": self.total_rows,
            "redacted_rows": self.redacted_rows,
            "rows_by_place": self.touched,
        }


def customer_id_hash(request: PrivacyRequest, key: bytes) -> str | None:
    if request.customer_id is None:
        return None
    return keyed_hash(key, "id", str(request.customer_id))


def previous_attempts(warehouse: MutableWarehouse, request_id: str) -> list[dict[str, Any]]:
    return warehouse.query(
        f"SELECT status, attempt, rows_touched, export_uri FROM {AUDIT_TABLE} "  # noqa: S608 - constant
        "WHERE request_id = @request_id ORDER BY attempt",
        {"request_id": request_id},
    )


def audit_row(
    request: PrivacyRequest,
    key: bytes,
    *,
    status: str,
    attempt: int,
    touched: Touched,
    attempted_at: datetime,
    export_uri: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """One ``privacy_audit`` row; never an email, name or phone (the id only as a keyed hash)."""
    return {
        "request_id": request.request_id,
        "shopify_topic": request.topic,
        "shop_domain": request.shop_domain,
        "shop_id": request.shop_id,
        "customer_id_hash": customer_id_hash(request, key),
        "data_request_id": request.data_request_id,
        "orders_named": len(request.order_ids) if not request.is_shop else None,
        "status": status,
        "attempt": attempt,
        "requested_at": request.requested_at,
        "attempted_at": attempted_at,
        "completed_at": attempted_at if status == COMPLETED else None,
        "rows_touched": touched.rows(),
        "total_rows": touched.total,
        "export_uri": export_uri,
        "detail": detail,
    }


def run_steps(request: PrivacyRequest, deps: PrivacyDeps, touched: Touched, now: datetime) -> str | None:
    """The topic's steps; returns the export's URI for a data request."""
    warehouse = deps.warehouse
    if request.topic == DATA_REQUEST:
        return export_customer_data(warehouse, deps.exports, request, deps.hash_key, touched, now)
    if request.topic == CUSTOMER_REDACT:
        keys = CustomerKeys.of(request, deps.hash_key)
        redact_typed(warehouse, keys, touched)
        anonymise_bodies(warehouse, keys, touched)
        folder = customer_folder(request.shop_domain, request.customer_id, deps.hash_key, keys.email_hash)
        delete_exports(deps.exports, folder, touched)
        purge_dead_letters(deps.dead_letters, lambda d, a: message_concerns_customer(d, a, keys), touched)
        return None
    if request.topic == SHOP_REDACT:
        shop = request.shop_domain
        if deps.feature_store is not None:  # first: the variant ids come from the rows erased next
            touched.add(
                "online_store", "deleted", deps.feature_store.erase(shop_variant_ids(warehouse, shop))
            )
        erase_shop_rows(warehouse, shop, touched)
        delete_exports(deps.exports, f"{EXPORTS_PREFIX}/{shop}/", touched)
        purge_dead_letters(deps.dead_letters, lambda d, a: message_concerns_shop(d, a, shop), touched)
        return None
    raise ValueError(f"not a privacy topic: {request.topic!r}")  # parse_privacy_request refuses it first


def handle_request(request: PrivacyRequest, deps: PrivacyDeps) -> PrivacyOutcome:
    """Do ``request`` once (see the module docstring). Raises what a step raised after
    recording a pending attempt, so the caller lets Pub/Sub redeliver."""
    earlier = previous_attempts(deps.warehouse, request.request_id)
    if any(row["status"] == COMPLETED for row in earlier):
        done = [row for row in earlier if row["status"] == COMPLETED][-1]
        total = Touched()
        total.merge(done["rows_touched"] or [])
        return PrivacyOutcome(
            request,
            "already_done",
            int(done["attempt"]),
            total.by_place(),
            total.total,
            _redacted(total),
            done["export_uri"],
        )
    attempt = max((int(row["attempt"]) for row in earlier), default=0) + 1
    now = deps.now()
    touched = Touched()
    try:
        export_uri = run_steps(request, deps, touched, now)
    except ShopmlError as exc:  # transient (the streaming buffer) or not: pending, and raised
        detail = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
        row = audit_row(
            request,
            deps.hash_key,
            status=PENDING,
            attempt=attempt,
            touched=touched,
            attempted_at=now,
            detail=detail,
        )
        with contextlib.suppress(ShopmlError):  # the warehouse may be what failed: keep that error
            deps.warehouse.insert_rows(AUDIT_TABLE, [row], [f"{request.request_id}:attempt:{attempt}"])
        raise
    total = Touched()
    for row in earlier:
        total.merge(row["rows_touched"] or [])
    total.merge(touched.rows())
    row = audit_row(
        request,
        deps.hash_key,
        status=COMPLETED,
        attempt=attempt,
        touched=total,
        attempted_at=deps.now(),
        export_uri=export_uri,
    )
    deps.warehouse.insert_rows(AUDIT_TABLE, [row], [f"{request.request_id}:{COMPLETED}"])
    return PrivacyOutcome(
        request, COMPLETED, attempt, total.by_place(), total.total, _redacted(total), export_uri
    )


def _redacted(touched: Touched) -> int:
    """Warehouse rows deleted or anonymised (not exports, dead letters or feature-store entities)."""
    return sum(
        n
        for (place, action), n in touched.counts.items()
        if action in ("deleted", "anonymised")
        and place not in NOT_TABLES
        and not place.startswith("dead_letters:")
    )
