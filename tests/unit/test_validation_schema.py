"""The schema files: webhook body schemas, table files, and the rows that must fit them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.settings import STORE_TOPICS
from shared.validation import TYPED_TABLES, plan_load, topic_schemas
from shared.validation.schema import SCHEMA_DIR, Issues, SchemaError, load_topic, walk, walker_of
from tests.unit.test_validation import INDEX, NOW, attributes, encode, fixture

TABLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "tables"
BIGQUERY_TYPES = {
    "STRING",
    "INT64",
    "NUMERIC",
    "TIMESTAMP",
    "BOOL",
    "RECORD",
    "FLOAT64",
    "DATE",
    "JSON",
    "BYTES",
}
MODES = {"NULLABLE", "REQUIRED", "REPEATED"}
INT64 = (-(2**63), 2**63 - 1)


def table_schema(table: str) -> list[dict[str, Any]]:
    schema: list[dict[str, Any]] = json.loads((TABLES_DIR / f"{table}.json").read_text())["schema"]
    return schema


def _fits(value: Any, column: dict[str, Any], where: str) -> None:
    kind = column["type"]
    if kind == "STRING":
        assert isinstance(value, str), where
        value.encode("utf-8")  # BigQuery STRING is valid UTF-8
    elif kind == "INT64":
        assert type(value) is int and INT64[0] <= value <= INT64[1], where
    elif kind == "NUMERIC":
        assert isinstance(value, Decimal) and value.is_finite(), where
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int) and exponent >= -9, f"{where}: more than 9 fractional digits"
        assert len(digits) + exponent <= 29, f"{where}: more than 29 integer digits"
    elif kind == "TIMESTAMP":
        assert isinstance(value, datetime) and value.utcoffset() is not None, where
        assert value.tzinfo == UTC, f"{where}: not UTC"
    elif kind == "BOOL":
        assert type(value) is bool, where
    elif kind == "RECORD":
        assert_row_fits(value, column["fields"], where)
    else:  # pragma: no cover - no other types are used yet
        raise AssertionError(f"{where}: type {kind} not checked")


def assert_row_fits(row: dict[str, Any], table: str | list[dict[str, Any]], where: str = "") -> None:
    """``row`` has exactly the table's columns, in order, with values of the declared types."""
    schema = table_schema(table) if isinstance(table, str) else table
    where = where or (table if isinstance(table, str) else "record")
    assert list(row) == [c["name"] for c in schema], f"{where}: columns differ"
    for column in schema:
        value, name = row[column["name"]], f"{where}.{column['name']}"
        if column["mode"] == "REPEATED":
            assert isinstance(value, list), name
            for element in value:
                _fits(element, column, name)
        elif value is None:
            assert column["mode"] == "NULLABLE", f"{name} is REQUIRED but NULL"
        else:
            _fits(value, column, name)


# --- Webhook schemas ----------------------------------------------------------------------------------


def test_every_store_topic_has_a_schema_and_nothing_else() -> None:
    assert set(topic_schemas()) == set(STORE_TOPICS)


def test_topic_files_are_named_after_their_topic_and_list_existing_tables() -> None:
    for topic, schema in topic_schemas().items():
        assert (SCHEMA_DIR / f"{topic.replace('/', '_')}.json").exists()
        for table in schema.tables:
            assert (TABLES_DIR / f"{table}.json").exists(), f"{topic} lists unknown table {table}"
        versions = [v for v, _ in schema.versions]
        assert versions == sorted(versions) and schema.checked_through >= versions[-1]


def test_order_schema_requires_only_what_the_load_needs() -> None:
    spec = topic_schemas()["orders/create"].versions[-1][1]
    required = {f.name for f in spec.loaded if f.required}
    assert required == {"id", "created_at", "updated_at", "currency", "total_price", "line_items"}
    line_item = next(f for f in spec.loaded if f.name == "line_items").item
    assert line_item is not None and line_item.record is not None
    assert {f.name for f in line_item.record.loaded if f.required} == {"id", "quantity", "price"}
    nullable = {f.name for f in line_item.record.loaded if not f.required}
    assert {"variant_id", "product_id"} <= nullable


def test_resolve_picks_the_newest_version_not_newer_than_the_event() -> None:
    products = topic_schemas()["products/update"]
    assert products.resolve("2024-04")[0] == "2019-10"
    assert products.resolve("2024-07")[0] == "2024-07"
    assert products.resolve("2026-01")[:1] + products.resolve("2026-01")[2:] == ("2024-07", True)
    assert products.resolve("2018-01")[::2] == ("2019-10", False)
    assert products.resolve(None)[::2] == ("2024-07", False)
    assert products.resolve("2099-12")[::2] == ("2024-07", False)


def test_a_broken_schema_file_fails_loudly(tmp_path: Path) -> None:
    base = json.loads((SCHEMA_DIR / "types.json").read_text())["types"]
    bad_type = {
        "topic": "x/y",
        "body": "X",
        "tables": [],
        "checked_through": "2025-01",
        "versions": [{"api_version": "2025-01"}],
    }
    path = tmp_path / "x_y.json"
    path.write_text(json.dumps(bad_type))
    with pytest.raises(SchemaError, match="body type 'X'"):
        load_topic(path, base)
    broken = dict(base, X={"required": {"id": "identifier"}})
    with pytest.raises(SchemaError, match="unknown type 'identifier'"):
        load_topic(path, broken)
    drop_missing = dict(
        bad_type, body="Shop", versions=[{"api_version": "2025-01", "patch": {"Shop": {"drop": ["nope"]}}}]
    )
    path.write_text(json.dumps(drop_missing))
    with pytest.raises(SchemaError, match=r"Shop\.nope"):
        load_topic(path, base)


# --- Table files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(TABLES_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_table_file_is_a_valid_bigquery_table(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert doc["name"] == path.stem and doc["description"]
    columns = {c["name"]: c for c in doc["schema"]}
    assert len(columns) == len(doc["schema"]), "duplicate column"

    def check(column: dict[str, Any]) -> None:
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", column["name"])
        assert column["type"] in BIGQUERY_TYPES and column["mode"] in MODES and column["description"]
        assert ("fields" in column) == (column["type"] == "RECORD")
        for sub in column.get("fields", []):
            check(sub)

    for column in doc["schema"]:
        check(column)
    partition = doc["time_partitioning"]
    assert partition["type"] == "DAY" and set(partition) <= {"type", "field", "expiration_days"}
    assert columns[partition["field"]]["type"] in ("TIMESTAMP", "DATE")
    assert columns[partition["field"]]["mode"] == "REQUIRED"
    assert 1 <= len(doc["clustering"]) <= 4
    for name in doc["clustering"]:
        assert columns[name]["mode"] != "REPEATED" and columns[name]["type"] != "RECORD"
    for name in doc.get("latest_key", []):
        assert columns[name]["mode"] == "REQUIRED" or name == "shop_domain"


@pytest.mark.parametrize("table", TYPED_TABLES)
def test_typed_tables_carry_the_event_metadata(table: str) -> None:
    columns = {c["name"]: c["mode"] for c in table_schema(table)}
    for name in ("shop_domain", "webhook_id", "shopify_topic", "received_at", "loaded_at"):
        assert columns[name] == "REQUIRED", f"{table}.{name}"
    assert "id" in columns or table == "inventory_levels"


# --- Rows fit their tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("store_pii", [False, True])
@pytest.mark.parametrize("entry", INDEX, ids=[e["file"] for e in INDEX])
def test_rows_of_every_fixture_fit_their_tables(entry: dict[str, str], store_pii: bool) -> None:
    result = plan_load(
        attributes(entry["topic"], entry["api_version"]),
        encode(fixture(entry["file"])),
        "m",
        None,
        NOW,
        store_pii=store_pii,
        pii_hash_key="k",
    )
    rows, _ = result.writes()
    for table, table_rows in rows.items():
        for row in table_rows:
            assert_row_fits(row, table)


def test_rejection_and_drift_rows_fit_their_tables() -> None:
    body = fixture("orders_create.json")
    body["total_price"] = "abc"
    body["new_field"] = 1
    result = plan_load(attributes("orders/create", "2099-01"), encode(body), "m", None, NOW)
    rows, _ = result.writes()
    assert {"rejected_events", "schema_drift", "raw_events"} == set(rows)
    for table, table_rows in rows.items():
        for row in table_rows:
            assert_row_fits(row, table)


# --- The compiled walker is the reference walk, only faster -------------------------------------------

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["12.30", "-1", "2024-03-01T10:15:00-05:00", "", "12x", "1e3"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    entry = draw(st.sampled_from(INDEX))
    body = fixture(entry["file"])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(body)[1:] or [()]))
        if not path:
            break
        parent: Any = body
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "insert"]))
        if action == "replace":
            parent[path[-1]] = draw(_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(_values)
    return entry["topic"], body


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutated_bodies())
def test_compiled_walker_matches_the_reference_walk(case: tuple[str, dict[str, Any]]) -> None:
    topic, body = case
    for _, spec in topic_schemas()[topic].versions:
        reference, compiled = Issues(), Issues()
        expected = walk(body, spec, "", "", reference)
        got = walker_of(spec)(body, "", "", compiled)
        assert got == expected
        assert (compiled.reasons, compiled.unknown, compiled.changed) == (
            reference.reasons,
            reference.unknown,
            reference.changed,
        )
