"""Personal data in raw webhook bodies: keyed hashes at write time, gone at redaction.

``raw_events`` and ``rejected_events`` keep each delivery's body for audit and replay. Kept
exactly, they would hold customers' email, phone, names and addresses in clear for 400 days
(quarantine: until triaged), undoing the hashing of the typed tables. So, unless
``SHOPML_STORE_PII`` is on, a body is stored with its personal fields replaced before it is
written (docs/DESIGN.md, "Personal data"):

* **Which fields.** At the top of an order: ``email``, ``contact_email``, ``phone``,
  ``browser_ip``, ``note``; everything personal inside the containers ``customer``,
  ``billing_address``, ``shipping_address``, ``default_address``, ``addresses`` and
  ``client_details`` (names, email, phone, street, city, zip, company, coordinates, IP, user
  agent, notes), at any depth. A ``customers/*`` body is itself a customer. Ids, country and
  province codes, amounts and everything else stay, so the body still validates and loads the
  same typed rows (apart from the personal columns, which are hashed there anyway).
* **By what.** Email and phone become ``"hmac:" + HMAC-SHA256(SHOPML_PII_HASH_KEY, value)``
  in hex, normalised as in the typed tables (so ``hmac:<x>`` in a body equals that row's
  ``email_hash`` ``<x>``: joinable, not readable); without a key ``"redacted"`` (an unkeyed
  hash of an email is reversed by guessing). Names, streets, city, zip, IP and notes become
  ``"redacted"``: the typed tables keep no hash of them either, so a hash would only link
  deliveries by a person. Numbers (coordinates) become null.
* **Integrity.** ``body_sha256`` is the digest of the stored body: an unkeyed digest of the
  original would let anyone holding the scrubbed body confirm a guessed email.
* **Redaction.** ``anonymise_body`` takes a stored body and removes what still links it to
  one customer: the customer's ids (``customer.id``, a customer body's ``id``, GraphQL ids) and
  every value equal to their email, phone or those values' hashes, all set to null.

Pure: no I/O, no cloud import. ``scrub_body`` touches only the parts it changes (copy on
write) and returns the input itself when nothing is personal.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

HASH_PREFIX = "hmac:"
REDACTED = "redacted"

# Fields that are personal wherever they appear at the top of an order body.
TOP_LEVEL_PERSONAL = frozenset({"email", "contact_email", "phone", "browser_ip", "note"})
# Objects (or lists of objects) that describe a person: everything personal inside is replaced.
PERSONAL_CONTAINERS = frozenset(
    {"customer", "billing_address", "shipping_address", "default_address", "addresses", "client_details"}
)
# Personal fields inside those containers (and at the top of a customer body).
PERSONAL_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "name",
        "email",
        "phone",
        "address1",
        "address2",
        "city",
        "zip",
        "company",
        "latitude",
        "longitude",
        "note",
        "browser_ip",
        "user_agent",
        "accept_language",
        "multipass_identifier",
    }
)
# Personal fields kept as keyed hashes (they join the typed tables' email_hash / phone_hash);
# every other personal field becomes "redacted": nothing links it to anything.
HASHED_FIELDS = frozenset({"email", "contact_email", "phone"})
# Every field name whose value may be personal somewhere: reasons and drift rows about these
# paths keep the JSON type of what was found, never the value.
ANY_PERSONAL = TOP_LEVEL_PERSONAL | PERSONAL_FIELDS
_PHONE_NOISE = re.compile(r"[^\d+]")


def keyed_hash(key: bytes, field: str, value: str) -> str | None:
    """HMAC-SHA256 hex of ``value`` (email lower-cased, phone reduced to digits and +, as in
    the typed tables); None without a key or for an empty value."""
    if not key:
        return None
    if field in ("email", "contact_email"):
        value = value.strip().lower()
    elif field == "phone":
        value = _PHONE_NOISE.sub("", value)
    return hmac.digest(key, value.encode("utf-8"), "sha256").hex() if value else None


def _replacement(key: bytes, field: str, value: Any) -> Any:
    if value is None or value == "":
        return value
    if isinstance(value, str):
        if value == REDACTED or value.startswith(HASH_PREFIX):
            return value  # already scrubbed (a stored body scrubbed again stays the same)
        digest = keyed_hash(key, field, value) if field in HASHED_FIELDS else None
        return HASH_PREFIX + digest if digest else REDACTED
    if isinstance(value, (bool, dict, list)):
        return value
    return None  # numbers (coordinates): no string may stand where a number is validated


Replace = Callable[[str, Any], Any]
_TOP_LEVEL_SCRUBBED = TOP_LEVEL_PERSONAL | PERSONAL_CONTAINERS


def _scrub_container(value: Any, replace: Replace) -> Any:
    """``value`` with every personal field replaced, at any depth; the same object if unchanged."""
    if isinstance(value, list):
        items = [_scrub_container(item, replace) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if not isinstance(value, dict):
        return value
    changed: dict[str, Any] | None = None
    for name in value.keys() & PERSONAL_FIELDS:
        item = value[name]
        if isinstance(item, (dict, list)):
            continue
        new = replace(name, item)
        if new is not item and new != item:
            if changed is None:
                changed = dict(value)
            changed[name] = new
    for name, item in value.items():
        if type(item) is dict or type(item) is list:
            new = _scrub_container(item, replace)
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[name] = new
    return value if changed is None else changed


def _scrub(doc: Mapping[str, Any], topic: str | None, replace: Replace) -> Mapping[str, Any]:
    if topic is not None and topic.startswith("customers/"):
        scrubbed: Any = _scrub_container(doc, replace)
        return scrubbed
    changed: dict[str, Any] | None = None
    for name in doc.keys() & _TOP_LEVEL_SCRUBBED:  # the result does not depend on the order
        item = doc[name]
        if name in TOP_LEVEL_PERSONAL:
            if isinstance(item, (dict, list)):
                continue
            new = replace(name, item)
        else:
            new = _scrub_container(item, replace)
        if new is not item and new != item:
            if changed is None:
                changed = dict(doc)
            changed[name] = new
    return doc if changed is None else changed


def scrub_body(doc: Mapping[str, Any], topic: str | None, key: bytes) -> Mapping[str, Any]:
    """The body to store for ``doc`` (a parsed webhook body): personal fields replaced by keyed
    hashes. Returns ``doc`` itself when it holds nothing personal (the exact body is kept)."""
    # An order repeats the same email and phone in several places: each distinct value is
    # hashed once (HMAC is most of the cost).
    seen: dict[tuple[str, Any], Any] = {}

    def replace(field: str, value: Any) -> Any:
        kind = field if field in ("email", "contact_email", "phone") else ""
        found = seen.get((kind, value), seen)
        if found is seen:
            found = seen[(kind, value)] = _replacement(key, field, value)
        return found

    return _scrub(doc, topic, replace)


def _to_null(field: str, value: Any) -> Any:
    return None


def redact_got(path: str, got: str) -> str:
    """A reason's or drift row's ``got`` text for ``path``: only the JSON type when the field
    may be personal (``describe`` adds short values, e.g. ``string 'ada@example.com'``)."""
    field = path.rsplit(".", 1)[-1].removesuffix("[]")
    if field in ANY_PERSONAL:
        return got.split(" ", 1)[0]
    return got


def anonymise_body(doc: Any, topic: str | None, customer_id: int | None, values: Iterable[str]) -> Any:
    """``doc`` (a stored body that concerns one customer) with that customer taken out: every
    personal field null (clear or hashed), their id null wherever it is a customer's
    (``customer.id``, ``customer_id``, the top ``id`` of a ``customers/*`` body, GraphQL ids
    ``gid://shopify/Customer/<id>``), and any string equal (case-insensitively) to one of
    ``values`` (their email, phone, the hashes of those) null wherever it is. A new object."""
    ids: set[Any] = set() if customer_id is None else {customer_id, str(customer_id)}
    gid = f"/Customer/{customer_id}" if customer_id is not None else None
    needles = {v.strip().lower() for v in values if v and v.strip()}

    def walk(value: Any, in_customer: bool) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for name, item in value.items():
                if (
                    isinstance(item, (int, str))
                    and not isinstance(item, bool)
                    and item in ids
                    and (name == "customer_id" or (name == "id" and in_customer))
                ):
                    out[name] = None
                else:
                    out[name] = walk(item, name == "customer")
            return out
        if isinstance(value, list):
            return [walk(item, False) for item in value]
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in needles or (gid is not None and gid in value):
                return None
            if lowered.startswith(HASH_PREFIX) and lowered[len(HASH_PREFIX) :] in needles:
                return None
        return value

    if not isinstance(doc, dict):
        return walk(doc, False)
    nulled = _scrub(doc, topic, _to_null)
    return walk(nulled, topic is not None and topic.startswith("customers/"))
