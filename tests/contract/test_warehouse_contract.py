"""The Warehouse contract, identical on every backend (see conftest.py for how BigQuery runs)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from shared.errors import PermanentError
from shared.warehouse_schema import RowDoesNotFit, WarehouseSchema, load_table_file
from tests.contract import datasets
from tests.contract.conftest import FIXTURE_TABLES, Backend, contract_schema, skip_on_emulator
from tests.samples import sample_row

REAL = contract_schema()
LATEST_VIEWS = sorted(
    name for name, view in REAL.views.items() if name.endswith("_latest") and not name.startswith("contract_")
)
REAL_TABLES = sorted(name for name in REAL.tables if not name.startswith("contract_"))

TS = datetime(2025, 3, 1, 23, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-2)))  # 2025-03-02 01:30 UTC

FULL_ROW: dict[str, Any] = {
    "id": 1,
    "label": "ünïcode ✓ 'quoted'",
    "amount": Decimal("12345678901234567890.123456789"),
    "ratio": 0.1,
    "flag": True,
    "ts": TS,
    "day": date(2025, 2, 28),
    "civil": datetime(2025, 3, 1, 12, 0, 0, 500000),
    "clock": time(23, 59, 58, 999999),
    "doc": {"a": [1, 2, {"b": None}], "c": "d"},
    "blob": b"\x00\xffbytes",
    "counter": -(2**63),
    "tags": ["red", "blue"],
    "address": {"city": "Köln", "zip": None},
    "lines": [
        {
            "sku": "A-1",
            "quantity": 2,
            "price": Decimal("19.990000001"),
            "seen_at": TS,
            "discounts": [{"code": "TEN", "amount": Decimal("1.5")}],
        },
        {"sku": "B-2", "quantity": None, "price": None, "seen_at": None, "discounts": []},
    ],
}
NULL_ROW: dict[str, Any] = {"id": 2}


def _expected_full() -> dict[str, Any]:
    row = dict(FULL_ROW)
    row["ts"] = TS.astimezone(UTC)
    row["lines"] = [
        {**FULL_ROW["lines"][0], "seen_at": TS.astimezone(UTC)},
        FULL_ROW["lines"][1],
    ]
    return row


def _expected_null() -> dict[str, Any]:
    expected: dict[str, Any] = {c.name: None for c in REAL.table("contract_types").columns}
    expected.update({"id": 2, "tags": [], "lines": []})
    return expected


def _assert_utc(value: Any) -> None:
    assert isinstance(value, datetime) and value.tzinfo is UTC, f"{value!r} is not an aware UTC datetime"


# -- schema -------------------------------------------------------------------------------


def test_ensure_schema_is_idempotent_and_creates_every_table_with_its_columns(backend: Backend) -> None:
    warehouse = backend.warehouse
    warehouse.ensure_schema()
    warehouse.ensure_schema()
    for name, spec in REAL.tables.items():
        columns = backend.columns(name)
        assert list(columns) == [c.name for c in spec.columns], name
        if backend.name == "duckdb":
            for column in spec.columns:
                assert _duck(columns[column.name]) == _duck(column.duckdb_type()), (name, column.name)
        else:
            for column in spec.columns:
                assert columns[column.name] in {
                    column.type,
                    {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "RECORD": "RECORD"}.get(
                        column.type
                    ),
                }, (name, column.name)
    for view in REAL.views:
        assert warehouse.query(f"SELECT * FROM {view} LIMIT 0") == []  # noqa: S608 - names from the schema files


def _duck(type_name: str) -> str:
    """DuckDB's spelling of a type, comparable (it reports TIMESTAMPTZ as TIMESTAMP WITH TIME ZONE)."""
    return type_name.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ").replace(" ", "").replace('"', "")


def test_a_new_warehouse_works_without_an_explicit_ensure_schema(backend: Backend) -> None:
    # backend.warehouse has never been ensured: the first call creates what it needs.
    backend.warehouse.insert_rows("contract_types", [NULL_ROW])
    assert backend.warehouse.query("SELECT id FROM contract_types") == [{"id": 2}]


def test_a_column_added_to_a_table_file_is_added_by_ensure_schema(
    backend: Backend, schema: WarehouseSchema
) -> None:
    backend.warehouse.ensure_schema()
    backend.warehouse.insert_rows("contract_entities", [_entity(1, "old", None, 0)])
    skip_on_emulator(
        backend, "tables.patch adds a column to the catalog but not to the table's DuckDB storage"
    )
    raw = json.loads((FIXTURE_TABLES / "contract_entities.json").read_text())
    raw["schema"].append({"name": "colour", "type": "STRING", "mode": "NULLABLE"})
    from shared.warehouse_schema import parse_table

    evolved = WarehouseSchema({**schema.tables, "contract_entities": parse_table(raw)}, schema.views)
    newer = backend.make(evolved)
    newer.ensure_schema()
    newer.insert_rows("contract_entities", [{**_entity(2, "new", None, 1), "colour": "teal"}])
    rows = newer.query("SELECT id, colour FROM contract_entities ORDER BY id")
    assert rows == [{"id": 1, "colour": None}, {"id": 2, "colour": "teal"}]


# -- round trips ------------------------------------------------------------------------


def test_every_type_round_trips_with_nulls(backend: Backend) -> None:
    backend.warehouse.insert_rows("contract_types", [FULL_ROW, NULL_ROW], row_ids=["r1", "r2"])
    rows = backend.warehouse.query("SELECT * FROM contract_types ORDER BY id")
    assert rows == [_expected_full(), _expected_null()]
    full = rows[0]
    assert full["amount"] == Decimal("12345678901234567890.123456789")
    assert full["lines"][0]["price"] == Decimal("19.990000001")
    _assert_utc(full["ts"])
    _assert_utc(full["lines"][0]["seen_at"])
    assert full["civil"].tzinfo is None
    assert isinstance(full["doc"], dict) and isinstance(full["blob"], bytes)


def test_numeric_is_exact_to_nine_decimal_places(backend: Backend) -> None:
    amounts = [
        Decimal("0.000000001"),
        Decimal("0.1"),
        Decimal("0.2"),
        Decimal("-99999999999999999999999999999.999999999"),
    ]
    backend.warehouse.insert_rows("contract_types", [{"id": i, "amount": a} for i, a in enumerate(amounts)])
    rows = backend.warehouse.query("SELECT amount FROM contract_types ORDER BY id")
    assert [r["amount"] for r in rows] == amounts
    total = backend.warehouse.query("SELECT SUM(amount) AS total FROM contract_types WHERE amount > 0")
    assert total == [{"total": Decimal("0.300000001")}]
    computed = backend.warehouse.query(
        "SELECT CAST(@a AS NUMERIC) + CAST(@b AS NUMERIC) AS s", {"a": Decimal("0.1"), "b": Decimal("0.2")}
    )
    assert computed[0]["s"] == Decimal("0.3")


def test_timestamps_are_stored_as_instants_and_read_back_as_aware_utc(backend: Backend) -> None:
    backend.warehouse.insert_rows(
        "contract_types", [{"id": 1, "ts": TS}, {"id": 2, "ts": "2025-03-02T01:30:15.123456Z"}]
    )
    rows = backend.warehouse.query(
        "SELECT id, ts, DATE(ts) AS day, EXTRACT(HOUR FROM ts) AS hour FROM contract_types ORDER BY id"
    )
    for row in rows:
        _assert_utc(row["ts"])
        assert row["ts"] == datetime(2025, 3, 2, 1, 30, 15, 123456, tzinfo=UTC)
        assert row["day"] == date(2025, 3, 2)  # civil conversions happen in UTC
        assert row["hour"] == 1
    later = backend.warehouse.query(
        "SELECT COUNT(*) AS n FROM contract_types WHERE ts >= @since",
        {"since": datetime(2025, 3, 2, 1, 30, tzinfo=UTC)},
    )
    assert later == [{"n": 2}]


def test_repeated_records_round_trip_and_unnest(backend: Backend) -> None:
    backend.warehouse.insert_rows("contract_types", [FULL_ROW])
    rows = backend.warehouse.query(
        "SELECT t.id, line.sku, line.price, ARRAY_LENGTH(line.discounts) AS discounts "
        "FROM contract_types AS t, UNNEST(t.lines) AS line ORDER BY line.sku"
    )
    assert rows == [
        {"id": 1, "sku": "A-1", "price": Decimal("19.990000001"), "discounts": 1},
        {"id": 1, "sku": "B-2", "price": None, "discounts": 0},
    ]


def test_every_real_table_accepts_a_row_of_every_column(backend: Backend) -> None:
    for name in REAL_TABLES:
        spec = REAL.table(name)
        row = sample_row(spec, seed=3)
        backend.warehouse.insert_rows(name, [row])
        got = backend.warehouse.query(f"SELECT * FROM {name}")  # noqa: S608 - names from the schema files
        assert len(got) == 1, name
        assert datasets.canonical(got[0]) == datasets.canonical(_normalised(spec, row)), name


def _normalised(spec: Any, row: dict[str, Any]) -> dict[str, Any]:
    from shared.warehouse_schema import conform_rows

    out = conform_rows(spec, [row])[0]
    for column in spec.columns:
        if column.type == "JSON" and out[column.name] is not None:
            out[column.name] = json.loads(out[column.name])
    return out


# -- write_batch ----------------------------------------------------------------------------


def _entity(
    i: int,
    name: str,
    updated: datetime | None,
    received: int,
    shop: str = "alpha.myshopify.com",
    webhook: str | None = None,
) -> dict[str, Any]:
    return {
        "shop_domain": shop,
        "id": i,
        "name": name,
        "price": Decimal(i) + Decimal("0.99"),
        "updated_at": updated,
        "webhook_id": webhook or f"wh-{received}",
        "received_at": datetime(2025, 3, 1, tzinfo=UTC) + timedelta(seconds=received),
    }


def test_write_batch_lands_rows_in_every_table(backend: Backend) -> None:
    backend.warehouse.write_batch(
        {
            "contract_types": [FULL_ROW],
            "contract_entities": [_entity(1, "a", None, 0), _entity(2, "b", None, 1)],
        },
        {"contract_types": ["e1:types:0"], "contract_entities": ["e1:ent:0", "e1:ent:1"]},
    )
    assert backend.warehouse.query("SELECT COUNT(*) AS n FROM contract_types") == [{"n": 1}]
    assert backend.warehouse.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 2}]


def test_write_batch_with_a_row_that_does_not_fit_writes_nothing(backend: Backend) -> None:
    bad = {**_entity(2, "b", None, 1), "price": "twelve"}
    with pytest.raises(RowDoesNotFit) as caught:
        backend.warehouse.write_batch(
            {"contract_types": [FULL_ROW], "contract_entities": [_entity(1, "a", None, 0), bad]}
        )
    assert (caught.value.table, caught.value.row, caught.value.column) == ("contract_entities", 1, "price")
    assert backend.warehouse.query("SELECT COUNT(*) AS n FROM contract_types") == [{"n": 0}]
    assert backend.warehouse.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 0}]


def test_write_batch_is_one_transaction_even_when_the_database_refuses_a_row(backend: Backend) -> None:
    if backend.name == "bigquery":
        pytest.skip(
            "BigQuery has no multi-table insert transaction: write_batch is one insertAll per table, "
            "and atomic only for rows conform_rows rejects (previous test); see BigQueryWarehouse"
        )
    warehouse = backend.warehouse
    warehouse.ensure_schema()
    with warehouse.connection() as cursor:  # a table that drifted from its file: name became an INTEGER
        cursor.execute("DROP VIEW contract_entity_totals")
        cursor.execute("DROP VIEW contract_entities_latest")
        cursor.execute("ALTER TABLE contract_entities ALTER name TYPE BIGINT USING NULL")
    with pytest.raises(RowDoesNotFit) as caught:
        warehouse.write_batch(
            {"contract_types": [FULL_ROW], "contract_entities": [_entity(1, "not a number", None, 0)]}
        )
    assert caught.value.table == "contract_entities" and caught.value.column == "name"
    assert warehouse.query("SELECT COUNT(*) AS n FROM contract_types") == [{"n": 0}]


# -- query parameters -------------------------------------------------------------------------


PARAMS: dict[str, Any] = {
    "i": 42,
    "big": 2**62,
    "s": "x'; DROP TABLE contract_types; --",
    "f": 1.25,
    "d": Decimal("123.000000001"),
    "b": True,
    "ts": datetime(2025, 3, 1, 10, 0, 0, 1, tzinfo=UTC),
    "day": date(2025, 3, 1),
    "civil": datetime(2025, 3, 1, 10, 0),
    "ints": [3, 1, 2],
    "strs": ["a", "b"],
    "none": None,
}


def test_query_parameters_of_every_type_bind_as_values(backend: Backend) -> None:
    rows = backend.warehouse.query(
        "SELECT @i AS i, @big AS big, @s AS s, @f AS f, @d AS d, @b AS b, @ts AS ts, @day AS day, "
        "@civil AS civil, @ints AS ints, @strs AS strs, @none IS NULL AS none_is_null, "
        "ARRAY_LENGTH(@ints) AS n",
        PARAMS,
    )
    expected = {k: v for k, v in PARAMS.items() if k != "none"}
    assert rows == [{**expected, "none_is_null": True, "n": 3}]
    _assert_utc(rows[0]["ts"])
    assert backend.warehouse.query("SELECT COUNT(*) AS n FROM contract_types") == [{"n": 0}]  # still there


def test_query_parameters_filter_rows(backend: Backend) -> None:
    backend.warehouse.insert_rows(
        "contract_entities",
        [
            _entity(i, f"e{i}", None, i, shop="beta.myshopify.com" if i == 3 else "alpha.myshopify.com")
            for i in range(1, 5)
        ],
    )
    rows = backend.warehouse.query(
        "SELECT id FROM contract_entities "
        "WHERE shop_domain = @shop AND id IN UNNEST(@ids) AND price > @min ORDER BY id",
        {"shop": "alpha.myshopify.com", "ids": [1, 2, 3], "min": Decimal("2.5"), "unused": "ignored"},
    )
    assert rows == [{"id": 2}]


# -- views ---------------------------------------------------------------------------------


def test_latest_view_returns_the_newest_version_despite_duplicates_and_disorder(backend: Backend) -> None:
    t = datetime(2025, 3, 1, 12, tzinfo=UTC)
    deliveries = [
        _entity(1, "v3", t + timedelta(minutes=3), 0),  # newest, delivered first
        _entity(1, "v1", t + timedelta(minutes=1), 1),
        _entity(1, "v3", t + timedelta(minutes=3), 0),  # exact duplicate (a retried insert)
        _entity(1, "v2", t + timedelta(minutes=2), 2),
        _entity(1, "test notification", None, 3),  # NULL updated_at loses
        _entity(2, "only", t, 4),
        _entity(1, "other shop", t, 5, shop="beta.myshopify.com"),
        _entity(3, "tie-early", t, 6, webhook="wh-a"),
        _entity(3, "tie-late", t, 7, webhook="wh-b"),  # same updated_at: later received_at wins
    ]
    for row in deliveries:
        backend.warehouse.write_batch({"contract_entities": [row]})
    rows = backend.warehouse.query(
        "SELECT shop_domain, id, name FROM contract_entities_latest ORDER BY shop_domain, id"
    )
    assert rows == [
        {"shop_domain": "alpha.myshopify.com", "id": 1, "name": "v3"},
        {"shop_domain": "alpha.myshopify.com", "id": 2, "name": "only"},
        {"shop_domain": "alpha.myshopify.com", "id": 3, "name": "tie-late"},
        {"shop_domain": "beta.myshopify.com", "id": 1, "name": "other shop"},
    ]
    totals = backend.warehouse.query("SELECT * FROM contract_entity_totals ORDER BY shop_domain")
    assert totals == [
        {
            "shop_domain": "alpha.myshopify.com",
            "entities": 3,
            "total_price": Decimal("1.99") + Decimal("2.99") + Decimal("3.99"),
        },
        {"shop_domain": "beta.myshopify.com", "entities": 1, "total_price": Decimal("1.99")},
    ]


@pytest.mark.parametrize(
    "view",
    LATEST_VIEWS
    or [pytest.param("none", marks=pytest.mark.skip(reason="no *_latest views in shared/sql/views yet"))],
)
def test_real_latest_view_keeps_one_row_per_key(backend: Backend, view: str) -> None:
    base = view.removesuffix("_latest")
    if base not in REAL.tables or not {"shop_domain", "id"} <= set(REAL.table(base).by_name):
        pytest.skip(f"{view}: its table has no (shop_domain, id) key; covered by the cross-backend snapshot")
    for batch in datasets.deliveries(REAL, REAL_TABLES):
        backend.warehouse.write_batch(batch)
    rows = backend.warehouse.query(f"SELECT shop_domain, id FROM {view}")  # noqa: S608 - names from the schema files
    keys = [(r["shop_domain"], r["id"]) for r in rows]
    assert len(keys) == len(set(keys)), f"{view} returned a key twice"
    present = backend.warehouse.query(f"SELECT DISTINCT shop_domain, id FROM {base}")  # noqa: S608 - names from the schema files
    assert set(keys) <= {(r["shop_domain"], r["id"]) for r in present}
    assert rows, f"{view} returned nothing from a data set with {len(present)} keys"


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ({"id": "abc"}, "id"),
        ({"label": "no id"}, "id"),
        ({"id": 1, "nope": 1}, "nope"),
        ({"id": 1, "amount": Decimal("0.0000000001")}, "amount"),
        ({"id": 1, "amount": 0.1}, "amount"),
        ({"id": 1, "ts": datetime(2025, 1, 1)}, "ts"),
        ({"id": 1, "lines": [{"quantity": 1}]}, "lines[0].sku"),
        ({"id": 1, "tags": "red"}, "tags"),
        ({"id": 2**63}, "id"),
    ],
    ids=[
        "string-for-int",
        "required-missing",
        "unknown-column",
        "eleven-decimals",
        "float-for-numeric",
        "naive-timestamp",
        "nested-required",
        "scalar-for-repeated",
        "int64-overflow",
    ],
)
def test_a_row_that_does_not_fit_is_a_permanent_error_naming_table_and_column(
    backend: Backend, row: dict[str, Any], column: str
) -> None:
    with pytest.raises(RowDoesNotFit) as caught:
        backend.warehouse.insert_rows("contract_types", [{"id": 9}, row])
    assert isinstance(caught.value, PermanentError)
    assert (caught.value.table, caught.value.row, caught.value.column) == ("contract_types", 1, column)
    assert "contract_types" in str(caught.value) and column in str(caught.value)
    assert backend.warehouse.query("SELECT COUNT(*) AS n FROM contract_types") == [{"n": 0}]


def test_unknown_table_bad_sql_and_missing_parameters_are_permanent(backend: Backend) -> None:
    with pytest.raises(PermanentError, match="unknown table"):
        backend.warehouse.insert_rows("no_such_table", [{"id": 1}])
    with pytest.raises(PermanentError):
        backend.warehouse.query("SELEC 1")
    with pytest.raises(PermanentError):
        backend.warehouse.query("SELECT * FROM no_such_table")
    with pytest.raises(PermanentError):
        backend.warehouse.query("SELECT @missing AS x")


def test_row_ids_must_match_rows(backend: Backend) -> None:
    with pytest.raises(PermanentError, match="row ids"):
        backend.warehouse.insert_rows("contract_types", [{"id": 1}], row_ids=["a", "b"])


def test_table_files_in_the_repository_parse() -> None:
    from shared.warehouse_schema import TABLES_DIR

    for path in sorted(TABLES_DIR.glob("*.json")):
        assert load_table_file(path).name == path.stem


def test_every_view_answers_the_messy_data_set(backend: Backend, schema: WarehouseSchema) -> None:
    """Every view runs on duplicated, out-of-order data. With SHOPML_CONTRACT_SNAPSHOT_DIR set
    (by test_bigquery_contract_runner) the answers are saved, and the runner checks that DuckDB
    gives exactly the same ones."""
    import os
    from pathlib import Path

    result = datasets.load_and_snapshot(backend.warehouse, schema)
    assert set(result) == set(schema.views)
    assert result["contract_entities_latest"], "the fixture view returned nothing"
    out = os.environ.get("SHOPML_CONTRACT_SNAPSHOT_DIR")
    if out:
        Path(out, f"{backend.name}.json").write_text(json.dumps(result, indent=1, sort_keys=True))
