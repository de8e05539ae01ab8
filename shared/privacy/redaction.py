"""What a privacy request does to each place that may hold the customer or the shop (pure logic
over the ports: ``MutableWarehouse``, ``ObjectStore``, ``DeadLetterQueue``).

Every step is idempotent and returns how many rows (objects, messages) it touched, so running
a request again touches nothing more and the counts add up across attempts:

* **Typed tables.** ``customers`` rows of the customer are deleted (a customer is nothing but
  personal data). ``orders`` rows are kept and anonymised: the customer id, email and phone
  hashes and any clear email, phone and addresses set to NULL, so the sales history the
  forecasts learn from stays whole and links to nobody. Found by customer id, the order ids
  Shopify lists, or the keyed hashes of the email and phone (guest checkouts). Line items,
  refunds, products, variants and inventory hold no customer column.
* **Raw and quarantine bodies.** Candidates are found by substring (the customer id, the order
  ids, the email, the phone, their hashes) and decided on the parsed body; a body that concerns
  the customer is rewritten by ``anonymise_body`` (``body_sha256`` follows). Personal fields
  were already hashed at write time (``shared.privacy.scrub``).
* **Data-request exports** of the customer (or of the shop) are deleted.
* **Dead letters**: messages about the customer (or shop) held in the dead-letter
  subscriptions are acknowledged, i.e. dropped.
* **Shop erasure** deletes every row of every table with a ``shop_domain`` column but
  ``privacy_audit`` (the record of the erasure itself).

``predictions`` and the feature store (offline table, online store) are keyed by variant and
hold no customer: nothing there can be found by customer, so ``customers/redact`` has nothing
to do there; ``shop/redact`` deletes the shop's ``predictions`` rows like any other table's.

BigQuery refuses UPDATE and DELETE over rows still in the streaming buffer: the adapter raises
``StreamingBufferBusy`` (transient) and ``shared.privacy.service`` records the attempt as
pending and lets Pub/Sub redeliver (docs/DESIGN.md, "Privacy requests").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from shared.ports import MutableWarehouse, ObjectStore
from shared.privacy.requests import PrivacyRequest
from shared.privacy.scrub import HASH_PREFIX, anonymise_body, keyed_hash

AUDIT_TABLE = "privacy_audit"
BODY_TABLES = ("raw_events", "rejected_events")
EXPORTS_PREFIX = "data-requests"
# Columns of a typed order row that point at a person (NULL after redaction).
ORDER_PERSONAL = (
    "customer_id",
    "email_hash",
    "phone_hash",
    "email",
    "phone",
    "shipping_address_json",
    "billing_address_json",
)


class DeadLetterQueue(Protocol):
    """The dead-letter hold subscriptions (``<dead-letter topic>-hold``): Pub/Sub in the cloud
    and locally (the emulator). ``purge`` drops (acknowledges) the held messages ``matches``
    accepts, leaves the others held, and returns how many it dropped per subscription."""

    def purge(self, matches: Callable[[bytes, Mapping[str, str]], bool]) -> dict[str, int]: ...


@dataclass
class Touched:
    """Rows (objects, messages) touched per (place, action), in the order first touched."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, place: str, action: str, rows: int) -> None:
        key = (place, action)
        self.counts[key] = self.counts.get(key, 0) + rows

    def merge(self, other: Iterable[Mapping[str, Any]]) -> None:
        for entry in other:
            self.add(str(entry["place"]), str(entry["action"]), int(entry["rows"] or 0))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def rows(self) -> list[dict[str, Any]]:
        return [{"place": p, "action": a, "rows": n} for (p, a), n in self.counts.items()]

    def by_place(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (place, _), n in self.counts.items():
            out[place] = out.get(place, 0) + n
        return out


@dataclass(frozen=True)
class CustomerKeys:
    """How one customer can be recognised: id, order ids, clear email/phone, their keyed hashes."""

    shop: str
    customer_id: int | None
    order_ids: tuple[int, ...]
    email: str | None
    phone: str | None
    email_hash: str | None
    phone_hash: str | None

    @classmethod
    def of(cls, request: PrivacyRequest, key: bytes) -> CustomerKeys:
        return cls(
            shop=request.shop_domain,
            customer_id=request.customer_id,
            order_ids=request.order_ids,
            email=request.email.strip().lower() if request.email else None,
            phone=request.phone.strip() if request.phone else None,
            email_hash=keyed_hash(key, "email", request.email) if request.email else None,
            phone_hash=keyed_hash(key, "phone", request.phone) if request.phone else None,
        )

    @property
    def values(self) -> tuple[str, ...]:
        """Strings that stand for this customer anywhere (clear or hashed)."""
        return tuple(v for v in (self.email, self.phone, self.email_hash, self.phone_hash) if v)

    def needles(self) -> list[str]:
        """Substrings that find candidate bodies (decided on the parsed body afterwards)."""
        found = [str(self.customer_id)] if self.customer_id is not None else []
        found += [str(i) for i in self.order_ids]
        return found + list(self.values)

    def typed_predicate(self, id_column: str, *, by_order_id: bool) -> tuple[str, dict[str, Any]]:
        """SQL matching this customer's typed rows (``shop_domain`` included) and its params."""
        terms: list[str] = []
        params: dict[str, Any] = {"shop": self.shop}
        if self.customer_id is not None:
            terms.append(f"{id_column} = @customer_id")
            params["customer_id"] = self.customer_id
        if by_order_id and self.order_ids:
            terms.append("id IN UNNEST(@order_ids)")
            params["order_ids"] = list(self.order_ids)
        for name in ("email_hash", "phone_hash"):
            if getattr(self, name):
                terms.append(f"{name} = @{name}")
                params[name] = getattr(self, name)
        if self.email:
            terms.append("LOWER(email) = @email")
            params["email"] = self.email
        if self.phone:
            terms.append("phone = @phone")
            params["phone"] = self.phone
        return f"shop_domain = @shop AND ({' OR '.join(terms) or 'FALSE'})", params


# -- bodies ----------------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def body_concerns(doc: Any, topic: str | None, keys: CustomerKeys) -> bool:
    """True when a parsed webhook body is about this customer: their customer record, an order
    of theirs (by customer id or a listed order id), a refund of a listed order, or any string
    in it equal to their email, phone or those values' hashes."""
    if not isinstance(doc, dict):
        return False
    cid = keys.customer_id
    topic = topic or ""
    if cid is not None:
        customer = doc.get("customer")
        if isinstance(customer, dict) and customer.get("id") in (cid, str(cid)):
            return True
        if doc.get("customer_id") in (cid, str(cid)):
            return True
        if topic.startswith("customers/") and doc.get("id") in (cid, str(cid)):
            return True
    if keys.order_ids:
        if topic.startswith("orders/") and doc.get("id") in keys.order_ids:
            return True
        if topic.startswith("refunds/") and doc.get("order_id") in keys.order_ids:
            return True
    values = set(keys.values)
    if not values:
        return False
    for text in _strings(doc):
        lowered = text.strip().lower()
        if lowered in values or (lowered.startswith(HASH_PREFIX) and lowered[len(HASH_PREFIX) :] in values):
            return True
    return False


def anonymised_text(body: str, topic: str | None, keys: CustomerKeys) -> str | None:
    """The new stored body for one candidate, or None when it does not concern the customer.

    JSON bodies are decided and rewritten structurally. A body that is not JSON (quarantined as
    unparsable) is rewritten textually: every needle replaced by ``redacted``."""
    try:
        doc = json.loads(body)
    except ValueError:
        lowered = body.lower()
        if not any(needle.lower() in lowered for needle in keys.needles()):
            return None
        text = body
        for needle in sorted(keys.needles(), key=len, reverse=True):
            text = _replace_insensitive(text, needle, "redacted")
        return text
    if not body_concerns(doc, topic, keys):
        return None
    new = anonymise_body(doc, topic, keys.customer_id, keys.values)
    text = json.dumps(new, ensure_ascii=False, separators=(",", ":"))
    return None if text == body else text


def _replace_insensitive(text: str, needle: str, replacement: str) -> str:
    lowered, target = text.lower(), needle.lower()
    out, start = [], 0
    while (at := lowered.find(target, start)) >= 0:
        out.append(text[start:at] + replacement)
        start = at + len(target)
    return "".join(out) + text[start:]


def _candidates(warehouse: MutableWarehouse, table: str, keys: CustomerKeys) -> list[dict[str, Any]]:
    needles = keys.needles()
    if not needles:
        return []
    terms = " OR ".join(f"STRPOS(LOWER(body), @n{i}) > 0" for i in range(len(needles)))
    params: dict[str, Any] = {"shop": keys.shop, **{f"n{i}": n.lower() for i, n in enumerate(needles)}}
    return warehouse.query(
        f"SELECT message_id, shopify_topic, received_at, body FROM {table} "  # noqa: S608 - BODY_TABLES
        f"WHERE shop_domain = @shop AND body_encoding = 'utf-8' AND ({terms})",
        params,
    )


def anonymise_bodies(warehouse: MutableWarehouse, keys: CustomerKeys, touched: Touched) -> None:
    """Rewrite the raw and quarantine bodies that concern the customer (one UPDATE per body)."""
    for table in BODY_TABLES:
        for row in _candidates(warehouse, table, keys):
            text = anonymised_text(row["body"], row["shopify_topic"], keys)
            if text is None:
                continue
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            # received_at (the partitioning column) and shop_domain (clustering) let BigQuery
            # read one partition's cluster instead of the whole table for each body.
            rows = warehouse.update_rows(
                table,
                {"body": text, "body_sha256": digest},
                "received_at = @received_at AND shop_domain = @shop "
                "AND message_id = @message_id AND body = @old",
                {
                    "received_at": row["received_at"],
                    "shop": keys.shop,
                    "message_id": row["message_id"],
                    "old": row["body"],
                },
            )
            touched.add(table, "anonymised", rows)


def scrub_stored_bodies(
    warehouse: MutableWarehouse, key: bytes, *, shop: str | None = None
) -> dict[str, int]:
    """Scrub bodies stored before scrubbing existed (or with ``SHOPML_STORE_PII`` on): every
    raw and quarantine body with personal fields in clear is rewritten as ``plan_load`` writes
    bodies now. Idempotent (a scrubbed body scrubs to itself); returns rows rewritten per table.

    One UPDATE per changed row: right for a local warehouse or a shop's few thousand rows; a
    large BigQuery history is better rewritten by a one-off export, scrub and load."""
    from shared.privacy.scrub import scrub_body

    rewritten: dict[str, int] = {}
    for table in BODY_TABLES:
        where = "body_encoding = 'utf-8'" + (" AND shop_domain = @shop" if shop else "")
        rows = warehouse.query(
            f"SELECT message_id, shopify_topic, body FROM {table} WHERE {where}",  # noqa: S608 - constant
            {"shop": shop} if shop else None,
        )
        count = 0
        for row in rows:
            try:
                doc = json.loads(row["body"])
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            kept = scrub_body(doc, row["shopify_topic"], key)
            if kept is doc:
                continue
            text = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
            count += warehouse.update_rows(
                table,
                {"body": text, "body_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()},
                "message_id = @message_id AND body = @old",
                {"message_id": row["message_id"], "old": row["body"]},
            )
        rewritten[table] = count
    return rewritten


# -- typed tables ----------------------------------------------------------------------------


def redact_typed(warehouse: MutableWarehouse, keys: CustomerKeys, touched: Touched) -> None:
    """Delete the customer's ``customers`` rows; anonymise their ``orders`` rows."""
    where, params = keys.typed_predicate("id", by_order_id=False)
    touched.add("customers", "deleted", warehouse.delete_rows("customers", where, params))
    where, params = keys.typed_predicate("customer_id", by_order_id=True)
    still_personal = " OR ".join(f"{column} IS NOT NULL" for column in ORDER_PERSONAL)
    rows = warehouse.update_rows(
        "orders", dict.fromkeys(ORDER_PERSONAL), f"({where}) AND ({still_personal})", params
    )
    touched.add("orders", "anonymised", rows)


def shop_tables(warehouse: MutableWarehouse) -> list[str]:
    """Every table with a ``shop_domain`` column but the audit table, sorted."""
    schema = getattr(warehouse, "schema", None)
    if schema is None:
        from shared.warehouse_schema import load_schema

        schema = load_schema()
    return sorted(
        name for name, spec in schema.tables.items() if "shop_domain" in spec.by_name and name != AUDIT_TABLE
    )


def shop_variant_ids(warehouse: MutableWarehouse, shop: str) -> list[int]:
    """The shop's variant ids the warehouse knows (the feature store's entities)."""
    rows = warehouse.query(
        "SELECT DISTINCT id AS variant_id FROM variants WHERE shop_domain = @shop "
        "UNION DISTINCT SELECT DISTINCT variant_id FROM order_line_items "
        "WHERE shop_domain = @shop AND variant_id IS NOT NULL",
        {"shop": shop},
    )
    return sorted({int(row["variant_id"]) for row in rows})


def erase_shop_rows(warehouse: MutableWarehouse, shop: str, touched: Touched) -> None:
    for table in shop_tables(warehouse):
        touched.add(table, "deleted", warehouse.delete_rows(table, "shop_domain = @shop", {"shop": shop}))


# -- exports ---------------------------------------------------------------------------------


def customer_folder(shop: str, customer_id: int | None, key: bytes, email_hash: str | None) -> str:
    """The exports folder of one customer: named by a keyed hash of the id, never the id."""
    if customer_id is not None:
        unkeyed = hashlib.sha256(f"{shop}:{customer_id}".encode()).hexdigest()  # local runs without a key
        name = keyed_hash(key, "id", str(customer_id)) or unkeyed
    else:
        name = email_hash or "unknown"
    return f"{EXPORTS_PREFIX}/{shop}/{name}/"


def delete_exports(exports: ObjectStore, prefix: str, touched: Touched) -> None:
    deleted = sum(1 for key in exports.list(prefix) if exports.delete(key))
    touched.add("exports", "deleted", deleted)


# -- dead letters ----------------------------------------------------------------------------


def message_concerns_shop(data: bytes, attributes: Mapping[str, str], shop: str) -> bool:
    if (attributes.get("shop_domain") or attributes.get("X-Shopify-Shop-Domain") or "").lower() == shop:
        return True
    try:
        doc = json.loads(data)
    except ValueError:
        return False
    return isinstance(doc, dict) and str(doc.get("shop_domain") or "").lower() == shop


def message_concerns_customer(data: bytes, attributes: Mapping[str, str], keys: CustomerKeys) -> bool:
    shop = (attributes.get("shop_domain") or attributes.get("X-Shopify-Shop-Domain") or "").lower()
    if shop and shop != keys.shop:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    topic = attributes.get("shopify_topic") or attributes.get("X-Shopify-Topic")
    try:
        doc = json.loads(text)
    except ValueError:
        lowered = text.lower()
        return any(n.lower() in lowered for n in keys.needles())
    if isinstance(doc, dict) and topic in ("customers/data_request", "customers/redact"):
        customer = doc.get("customer") or {}
        return isinstance(customer, dict) and body_concerns({"customer": customer}, None, keys)
    return body_concerns(doc, topic, keys)


def purge_dead_letters(
    queue: DeadLetterQueue | None, matches: Callable[[bytes, Mapping[str, str]], bool], touched: Touched
) -> None:
    if queue is None:
        return
    for subscription, dropped in queue.purge(matches).items():
        touched.add(f"dead_letters:{subscription}", "deleted", dropped)


# -- data request ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def collect_customer_data(warehouse: MutableWarehouse, keys: CustomerKeys) -> dict[str, list[dict[str, Any]]]:
    """Everything the warehouse holds about the customer, by table (JSON-ready values)."""
    found: dict[str, list[dict[str, Any]]] = {}
    where, params = keys.typed_predicate("id", by_order_id=False)
    found["customers"] = warehouse.query(f"SELECT * FROM customers WHERE {where}", params)  # noqa: S608
    where, params = keys.typed_predicate("customer_id", by_order_id=True)
    found["orders"] = warehouse.query(f"SELECT * FROM orders WHERE {where}", params)  # noqa: S608
    order_ids = sorted({int(r["id"]) for r in found["orders"]} | set(keys.order_ids))
    for table in ("order_line_items", "refunds", "refund_line_items"):
        found[table] = (
            warehouse.query(
                f"SELECT * FROM {table} WHERE shop_domain = @shop AND order_id IN UNNEST(@ids)",  # noqa: S608
                {"shop": keys.shop, "ids": order_ids},
            )
            if order_ids
            else []
        )
    for table in BODY_TABLES:
        bodies = []
        for row in _candidates(warehouse, table, keys):
            try:
                doc = json.loads(row["body"])
            except ValueError:  # unparsable (quarantined): the text, if it names the customer
                if anonymised_text(row["body"], row["shopify_topic"], keys) is not None:
                    bodies.append({"message_id": row["message_id"], "body_text": row["body"]})
                continue
            if body_concerns(doc, row["shopify_topic"], keys):
                bodies.append(
                    {"message_id": row["message_id"], "shopify_topic": row["shopify_topic"], "body": doc}
                )
        found[table] = bodies
    return {table: [_plain(r) for r in rows] for table, rows in found.items()}


def export_customer_data(
    warehouse: MutableWarehouse,
    exports: ObjectStore,
    request: PrivacyRequest,
    key: bytes,
    touched: Touched,
    now: datetime,
) -> str:
    """Write the customer's data as one JSON object; returns its URI."""
    keys = CustomerKeys.of(request, key)
    data = collect_customer_data(warehouse, keys)
    document = {
        "shop_domain": request.shop_domain,
        "customer_id": request.customer_id,
        "data_request_id": request.data_request_id,
        "orders_requested": list(request.order_ids),
        "exported_at": now.isoformat(),
        "not_held": {
            "predictions": "sampled forecasts per variant; no customer identifier",
            "feature_store": "features per variant and day, aggregated over all customers",
        },
        "tables": data,
    }
    folder = customer_folder(request.shop_domain, request.customer_id, key, keys.email_hash)
    name = f"{folder}{request.request_id}.json"
    exports.put(name, json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"), "application/json")
    for table, rows in data.items():
        touched.add(table, "exported", len(rows))
    return exports.uri(name)
