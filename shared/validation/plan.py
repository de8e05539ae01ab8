"""``plan_load``: one ``shopify-events`` message in, every warehouse row it should become out.

Pure and fast: no I/O, no cloud import, never raises on any bytes or attributes (a bad event
is a rejection, not an exception). The caller writes ``plan.writes()`` in one
``Warehouse.write_batch`` and acks; a transient warehouse error is the caller's to re-raise.

Row ids are deterministic, ``"<webhook_id>:<table>:<index>"``, so a duplicate delivery of the
same webhook (or a redelivered message) yields the same ids: BigQuery's best-effort
de-duplication drops most repeats, and the ``*_latest`` views make the rest harmless. The raw
landing row is keyed by the Pub/Sub message id instead (one row per delivery, by design).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from shared.privacy.scrub import redact_got, scrub_body
from shared.storesync.pubsub_delivery import our_attributes
from shared.times import as_utc, parse_timestamp
from shared.validation.rows import BUILDERS, Pii, Rows, product_tombstone
from shared.validation.schema import Issues, topic_schemas, walker_of
from shared.validation.values import describe, json_type

RAW_TABLE = "raw_events"
REJECTED_TABLE = "rejected_events"
DRIFT_TABLE = "schema_drift"
REQUIRED_ATTRIBUTES = ("webhook_id", "shop_domain", "shopify_topic")
MAX_DRIFT_ROWS = 200


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an event was rejected: where, what was expected, what was there."""

    path: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, got {self.got}"

    def as_row(self) -> dict[str, str]:
        return {"path": self.path, "expected": self.expected, "got": self.got}


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """Everything one event becomes in the warehouse.

    ``raw_row`` always (``status`` loaded or rejected); ``rows_by_table`` the typed rows
    (empty when rejected), with ``row_ids_by_table`` of the same shape; ``unknown_fields``
    the body's fields no schema declares (dotted, ``line_items[].new_field``), also in
    ``drift_rows`` for ``schema_drift`` together with type changes of unloaded fields and an
    API version newer than the schemas; ``rejection`` the ``rejected_events`` row or None.
    """

    status: Literal["loaded", "rejected"]
    raw_row: dict[str, Any]
    raw_row_id: str
    rows_by_table: dict[str, list[dict[str, Any]]]
    row_ids_by_table: dict[str, list[str]]
    unknown_fields: list[str]
    drift_rows: list[dict[str, Any]]
    rejection: dict[str, Any] | None
    reasons: list[Reason] = field(default_factory=list)
    schema_version: str | None = None
    api_version_known: bool = True

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"

    def writes(self) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
        """(rows_by_table, row_ids_by_table) of every table this event touches, raw included,
        ready for one ``Warehouse.write_batch``."""
        rows: dict[str, list[dict[str, Any]]] = {RAW_TABLE: [self.raw_row], **self.rows_by_table}
        ids: dict[str, list[str]] = {RAW_TABLE: [self.raw_row_id], **self.row_ids_by_table}
        key = self.raw_row["webhook_id"] or self.raw_row["message_id"]
        if self.drift_rows:
            rows[DRIFT_TABLE] = self.drift_rows
            ids[DRIFT_TABLE] = [f"{key}:{DRIFT_TABLE}:{i}" for i in range(len(self.drift_rows))]
        if self.rejection is not None:
            rows[REJECTED_TABLE] = [self.rejection]
            ids[REJECTED_TABLE] = [f"{key}:{REJECTED_TABLE}:0"]
        return rows, ids


def plan_load(
    attributes: Mapping[str, str],
    data: bytes,
    message_id: str,
    publish_time: datetime | None,
    now: datetime,
    store_pii: bool = False,
    pii_hash_key: str = "",
) -> LoadPlan:
    """Validate and normalise one event; return the rows to write (see ``LoadPlan``).

    ``attributes`` are the message attributes (docs/DESIGN.md, "message attributes"),
    ``data`` the exact webhook body, ``now`` the load time (``loaded_at`` / ``rejected_at``).
    ``received_at`` comes from the attribute, else ``publish_time``, else ``now``.
    """
    now = as_utc(now) if now is not None else datetime.now(UTC)
    published = as_utc(publish_time) if publish_time is not None else None
    # Messages Shopify published to Pub/Sub itself carry its header names: map them to ours.
    attrs = our_attributes(attributes, published.isoformat() if published else None)
    webhook_id = attrs.get("webhook_id") or None
    shop = (attrs.get("shop_domain") or "").lower() or None
    topic = attrs.get("shopify_topic") or None
    api_version = attrs.get("api_version") or None
    received_at = parse_timestamp(attrs.get("received_at") or "") or published or now
    triggered_at = parse_timestamp(attrs.get("triggered_at") or "")

    issues = Issues()
    for name in REQUIRED_ATTRIBUTES:
        if not attrs.get(name):
            issues.reject(f"attributes.{name}", "non-empty string", "missing")
    schemas = topic_schemas()
    schema = schemas.get(topic) if topic else None
    if topic and schema is None:
        issues.reject("attributes.shopify_topic", "a store topic with a body schema", describe(topic))

    try:
        text: str | None = data.decode("utf-8")
        body_text, encoding = text, "utf-8"
    except UnicodeDecodeError as error:
        text = None
        body_text, encoding = base64.b64encode(data).decode("ascii"), "base64"
        issues.reject("(body)", "UTF-8 text", f"invalid byte at offset {error.start}")

    doc: Any = None
    if text is not None:
        try:
            doc = parse_json(data, text)
        except (ValueError, RecursionError) as error:
            issues.reject("(body)", "JSON", f"unparsable: {str(error)[:120]}")
            text = None
        else:
            if type(doc) is not dict:
                issues.reject("(body)", "JSON object", json_type(doc))
                text = None

    schema_version: str | None = None
    api_known = True
    normalised: dict[str, Any] = {}
    if schema is not None and text is not None:
        schema_version, spec, api_known = schema.resolve(api_version)
        normalised = walker_of(spec)(doc, "", "", issues)

    # Personal data never lands in clear in the raw and quarantine bodies (shared.privacy.scrub):
    # a body with personal fields is stored with them replaced by keyed hashes.
    stored_text, body_sha256 = body_text, None
    if not store_pii and text is not None and type(doc) is dict:
        kept = scrub_body(doc, topic, pii_hash_key.encode("utf-8"))
        if kept is not doc:
            stored = dump_json(kept)
            stored_text, body_sha256 = stored.decode("utf-8"), hashlib.sha256(stored).hexdigest()

    meta = {
        "webhook_id": webhook_id,
        "event_id": attrs.get("event_id") or None,
        "shopify_topic": topic,
        "api_version": api_version,
        "source": attrs.get("source") or None,
        "received_at": received_at,
        "loaded_at": now,
    }
    rejected = bool(issues.reasons)
    raw_row = {
        "message_id": message_id,
        "webhook_id": webhook_id,
        "event_id": meta["event_id"],
        "shop_domain": shop,
        "shopify_topic": topic,
        "api_version": api_version,
        "source": meta["source"],
        "triggered_at": triggered_at,
        "received_at": received_at,
        "publish_time": as_utc(publish_time) if publish_time is not None else None,
        "attributes_json": json.dumps(attrs, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        "body": stored_text,
        "body_encoding": encoding,
        "body_sha256": body_sha256 or hashlib.sha256(data).hexdigest(),
        "status": "rejected" if rejected else "loaded",
        "loaded_at": now,
    }
    drift_rows = _drift_rows(
        issues, shop, topic, api_version, schema_version, api_known, webhook_id, received_at, now
    )
    unknown = list(dict.fromkeys(issues.unknown))
    reasons = [Reason(*r) for r in issues.reasons]
    if not store_pii:  # a reason or drift row about a personal field keeps the type, not the value
        reasons = [Reason(r.path, r.expected, redact_got(r.path, r.got)) for r in reasons]
        for row in drift_rows:
            if row["got"]:
                row["got"] = redact_got(row["field_path"], row["got"])
    if issues.unlisted:
        reasons.append(
            Reason("(more)", f"at most {len(issues.reasons)} reasons listed", f"{issues.unlisted} more")
        )

    if rejected:
        rejection = rejection_row(
            raw_row, reasons, schema_version, now, len(issues.reasons) + issues.unlisted
        )
        return LoadPlan(
            "rejected",
            raw_row,
            message_id,
            {},
            {},
            unknown,
            drift_rows,
            rejection,
            reasons,
            schema_version,
            api_known,
        )

    if schema is None or shop is None or webhook_id is None:  # every None path returned above
        raise RuntimeError("plan_load reached the load step without a schema, shop or webhook id")
    pii = Pii(store_pii, pii_hash_key.encode("utf-8"))
    if schema.body == "ProductDeletion":
        rows: Rows = product_tombstone(normalised, meta, shop, triggered_at or received_at)
    else:
        rows = BUILDERS[schema.body](normalised, meta, shop, pii)
    rows = {table: table_rows for table, table_rows in rows.items() if table_rows}
    row_ids = {
        table: [f"{webhook_id}:{table}:{i}" for i in range(len(table_rows))]
        for table, table_rows in rows.items()
    }
    return LoadPlan(
        "loaded", raw_row, message_id, rows, row_ids, unknown, drift_rows, None, [], schema_version, api_known
    )


def rejection_row(
    raw_row: Mapping[str, Any],
    reasons: Sequence[Reason],
    schema_version: str | None,
    rejected_at: datetime,
    total: int | None = None,
) -> dict[str, Any]:
    """The ``rejected_events`` row of the event whose raw landing row is ``raw_row``.

    ``reasons`` must not be empty; ``total`` is how many there were when more were found than
    listed. Public so that a caller quarantining a loaded plan (a permanent warehouse error)
    writes the same row.
    """
    if not reasons:
        raise ValueError("a rejection needs at least one reason")
    more = (total if total is not None else len(reasons)) - 1
    return {
        "message_id": raw_row["message_id"],
        "webhook_id": raw_row["webhook_id"],
        "event_id": raw_row["event_id"],
        "shop_domain": raw_row["shop_domain"],
        "shopify_topic": raw_row["shopify_topic"],
        "api_version": raw_row["api_version"],
        "schema_version": schema_version,
        "source": raw_row["source"],
        "reasons": [r.as_row() for r in reasons],
        "reason_summary": str(reasons[0]) + (f" (+{more} more)" if more > 0 else ""),
        "body": raw_row["body"],
        "body_encoding": raw_row["body_encoding"],
        "body_sha256": raw_row["body_sha256"],
        "attributes_json": raw_row["attributes_json"],
        "received_at": raw_row["received_at"],
        "rejected_at": rejected_at,
    }


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _stdlib_json(data: bytes, text: str) -> Any:
    """``json.loads`` made as strict as pydantic_core: no NaN/Infinity, no lone surrogates."""
    doc = json.loads(text, parse_constant=_no_constant)
    if "\\u" in text and _has_lone_surrogate(doc):
        raise ValueError("lone surrogate in a string (not Unicode text)")
    return doc


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _pick_parser() -> Callable[[bytes, str], Any]:
    """pydantic_core's Rust parser (about 2.3x faster than ``json`` on an order) when installed."""
    try:
        from pydantic_core import from_json
    except ImportError:  # pragma: no cover - the stdlib parser is equivalent, only slower
        return _stdlib_json

    def rust_json(data: bytes, text: str) -> Any:
        return from_json(data, allow_inf_nan=False, cache_strings="keys")

    return rust_json


parse_json: Callable[[bytes, str], Any] = _pick_parser()


def _pick_dumper() -> Callable[[Any], bytes]:
    """Compact UTF-8 JSON: pydantic_core's Rust encoder (about 2.5x ``json.dumps``) when installed."""
    try:
        from pydantic_core import to_json
    except ImportError:  # pragma: no cover - the stdlib encoder writes the same JSON, only slower

        def stdlib_json(value: Any) -> bytes:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

        return stdlib_json
    return to_json


dump_json: Callable[[Any], bytes] = _pick_dumper()


def _drift_rows(
    issues: Issues,
    shop: str | None,
    topic: str | None,
    api_version: str | None,
    schema_version: str | None,
    api_known: bool,
    webhook_id: str | None,
    received_at: datetime,
    now: datetime,
) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    if not api_known:
        found[("unknown_api_version", "(api_version)")] = (schema_version, api_version)
    for path in issues.unknown:
        found.setdefault(("unknown_field", path), (None, None))
    for path, expected, got in issues.changed:
        found.setdefault(("type_changed", path), (expected, got))
    return [
        {
            "shop_domain": shop,
            "shopify_topic": topic,
            "api_version": api_version,
            "schema_version": schema_version,
            "kind": kind,
            "field_path": path,
            "expected": expected,
            "got": got,
            "webhook_id": webhook_id,
            "received_at": received_at,
            "loaded_at": now,
        }
        for (kind, path), (expected, got) in list(found.items())[:MAX_DRIFT_ROWS]
    ]
