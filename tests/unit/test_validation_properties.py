"""Property-based tests of plan_load: no input crashes it, and its promises hold for all inputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.settings import STORE_TOPICS
from shared.validation import LoadPlan, plan_load, topic_schemas
from shared.validation.values import BadValue, to_money, to_timestamp
from tests.unit.test_validation import NOW, attributes, encode, fixture, strings_in
from tests.unit.test_validation_schema import assert_row_fits, mutated_bodies

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=40,
)
topics = st.sampled_from([*STORE_TOPICS, "customers/redact", "", "orders/delete"])
attribute_maps = st.dictionaries(
    st.sampled_from(
        ["shopify_topic", "shop_domain", "webhook_id", "api_version", "received_at", "event_id", "x"]
    )
    | st.text(max_size=8),
    st.text(max_size=30),
    max_size=8,
)


def check(result: LoadPlan) -> None:
    """What every plan promises, whatever the input."""
    assert result.status in ("loaded", "rejected")
    assert result.raw_row["status"] == result.status
    assert_row_fits(result.raw_row, "raw_events")
    if result.rejected:
        assert result.reasons, "a rejection without a reason"
        assert all(r.path and r.expected and r.got for r in result.reasons)
        assert result.rows_by_table == {} and result.row_ids_by_table == {}
        assert result.rejection is not None
        assert_row_fits(result.rejection, "rejected_events")
        assert len(result.rejection["reasons"]) == len(result.reasons)
    else:
        assert result.reasons == [] and result.rejection is None
        for table, rows in result.rows_by_table.items():
            assert rows and len(result.row_ids_by_table[table]) == len(rows)
            for row in rows:
                assert_row_fits(row, table)
    for row in result.drift_rows:
        assert_row_fits(row, "schema_drift")
    rows_by_table, ids = result.writes()
    assert {t: len(r) for t, r in rows_by_table.items()} == {t: len(i) for t, i in ids.items()}
    assert len({i for table_ids in ids.values() for i in table_ids}) == sum(len(i) for i in ids.values())


@FAST
@given(st.binary(max_size=2000), topics)
def test_arbitrary_bytes_never_crash(data: bytes, topic: str) -> None:
    check(plan_load(attributes(topic), data, "m", None, NOW))


@FAST
@given(json_values, topics)
def test_arbitrary_json_never_crashes(value: Any, topic: str) -> None:
    check(plan_load(attributes(topic), json.dumps(value).encode("utf-8", "surrogatepass"), "m", None, NOW))


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "line_items",
                "created_at",
                "updated_at",
                "currency",
                "total_price",
                "variants",
                "customer",
                "refunds",
                "refund_line_items",
                "inventory_item_id",
                "location_id",
                "available",
                "order_id",
            ]
        ),
        json_values,
        max_size=10,
    ),
    topics,
)
def test_arbitrary_json_with_schema_field_names_never_crashes(value: dict[str, Any], topic: str) -> None:
    check(plan_load(attributes(topic), encode(value), "m", None, NOW, pii_hash_key="k"))


@FAST
@given(attribute_maps, st.binary(max_size=200) | st.just(encode(fixture("orders_create.json"))))
def test_arbitrary_attributes_never_crash(attrs: dict[str, str], data: bytes) -> None:
    check(plan_load(attrs, data, "m", None, NOW))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutated_bodies(), st.sampled_from(["2019-10", "2024-07", "2025-07", "2099-01", "unstable"]), st.booleans()
)
def test_mutated_shopify_payloads_never_crash(
    case: tuple[str, dict[str, Any]], version: str, pii: bool
) -> None:
    topic, body = case
    check(
        plan_load(attributes(topic, version), encode(body), "m", None, NOW, store_pii=pii, pii_hash_key="k")
    )


# --- Unknown fields are counted, wrong types rejected -----------------------------------------------

ORDER = fixture("orders_create_5_items.json")
ORDER_SPEC = topic_schemas()["orders/create"].versions[-1][1]
LINE_SPEC = next(f for f in ORDER_SPEC.loaded if f.name == "line_items").item.record  # type: ignore[union-attr]
field_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)


@FAST
@given(field_names, json_values, st.booleans())
def test_extra_unknown_field_is_loaded_and_counted(name: str, value: Any, in_line_item: bool) -> None:
    spec = LINE_SPEC if in_line_item else ORDER_SPEC
    assert spec is not None
    assume(name not in spec.names)
    body = json.loads(json.dumps(ORDER))
    if in_line_item:
        body["line_items"][2][name] = value
    else:
        body[name] = value
    result = plan_load(attributes("orders/create"), encode(body), "m", None, NOW)
    check(result)
    assert result.status == "loaded"
    path = f"line_items[].{name}" if in_line_item else name
    assert result.unknown_fields == [path]
    assert [(r["kind"], r["field_path"]) for r in result.drift_rows] == [("unknown_field", path)]


REQUIRED_PATHS: list[tuple[tuple[Any, ...], str]] = [
    (("id",), "id"),
    (("total_price",), "money"),
    (("currency",), "string"),
    (("created_at",), "timestamp"),
    (("updated_at",), "timestamp"),
    (("line_items",), "array"),
    (("line_items", 0, "id"), "id"),
    (("line_items", 4, "quantity"), "uint"),
    (("line_items", 3, "price"), "money"),
]
# Only JSON-representable values: NaN and ±Infinity are not JSON (json.dumps writes them
# anyway), and a body holding them is rightly rejected as unparsable, not for the field.
FINITE = st.floats(allow_nan=False, allow_infinity=False)
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "id": st.booleans()
    | FINITE
    | st.integers(max_value=0)
    | st.integers(min_value=2**63)
    | st.text().filter(lambda s: not (s.isascii() and s.isdigit() and 0 < int(s) < 2**63))
    | st.lists(st.none()),
    "money": st.booleans()
    | st.dictionaries(st.text(), st.none())
    | st.lists(st.integers())
    | st.text().filter(lambda s: not _is_plain_decimal(s)),
    "string": st.booleans() | st.integers() | FINITE | st.lists(st.text()),
    "timestamp": st.integers() | st.booleans() | st.text().filter(lambda s: not _is_aware_timestamp(s)),
    "array": st.text() | st.integers() | st.dictionaries(st.text(), st.integers()),
    "uint": st.integers(max_value=-1) | st.text() | FINITE | st.booleans(),
}


def _is_plain_decimal(text: str) -> bool:
    try:
        to_money(text)
    except BadValue:
        return False
    return True


def _is_aware_timestamp(text: str) -> bool:
    try:
        to_timestamp(text)
    except BadValue:
        return False
    return True


@FAST
@given(st.data())
def test_required_field_of_the_wrong_type_is_rejected_with_its_path(data: st.DataObject) -> None:
    path, kind = data.draw(st.sampled_from(REQUIRED_PATHS))
    value = data.draw(WRONG[kind])
    body = json.loads(json.dumps(ORDER))
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    result = plan_load(attributes("orders/create"), encode(body), "m", None, NOW)
    check(result)
    assert result.status == "rejected"
    assert dotted(path) in {r.path for r in result.reasons}


def dotted(path: tuple[Any, ...]) -> str:
    """("line_items", 0, "id") -> "line_items[0].id", as reasons name paths."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f"{'.' if text else ''}{step}"
    return text


# --- Normalisation --------------------------------------------------------------------------------------


@given(st.decimals(min_value=Decimal("-1e28"), max_value=Decimal("1e28"), places=2, allow_nan=False))
def test_money_strings_are_exact(amount: Decimal) -> None:
    text = f"{amount:f}"
    assert to_money(text) == amount and str(to_money(text)) == text


@given(st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2, allow_nan=False))
def test_money_numbers_with_cents_are_exact(amount: Decimal) -> None:
    assert to_money(float(amount)) == amount


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_offsets_become_the_same_instant_in_utc(moment: datetime, offset_minutes: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = moment.replace(tzinfo=zone)
    parsed = to_timestamp(local.isoformat())
    assert parsed == local and parsed.tzinfo == UTC


@FAST
@given(
    st.emails(),
    st.from_regex(r"\+?[0-9]{6,14}", fullmatch=True),
    st.sampled_from(["orders/create", "customers/create"]),
)
def test_email_and_phone_never_appear_in_clear_without_store_pii(email: str, phone: str, topic: str) -> None:
    body = fixture("orders_create.json" if topic == "orders/create" else "customers_create.json")
    body["email"], body["phone"] = email, phone
    result = plan_load(attributes(topic), encode(body), "m", None, NOW, pii_hash_key="key")
    assert result.status == "loaded"
    text = strings_in(result.rows_by_table) + strings_in(result.drift_rows)
    assert not any(email in s or email.lower() in s or phone in s for s in text)
    shown = plan_load(attributes(topic), encode(body), "m", None, NOW, store_pii=True, pii_hash_key="key")
    assert email in strings_in(shown.rows_by_table) and phone in strings_in(shown.rows_by_table)


@FAST
@given(mutated_bodies())
def test_same_event_gives_the_same_rows_and_ids(case: tuple[str, dict[str, Any]]) -> None:
    topic, body = case
    first = plan_load(attributes(topic), encode(body), "m", None, NOW, pii_hash_key="k")
    again = plan_load(attributes(topic), encode(body), "m", None, NOW, pii_hash_key="k")
    assert first.writes() == again.writes()
