"""conform_rows: the compiled fast path (``conform_tuples``) gives exactly what the reference walk
gives, the same rows or the same RowDoesNotFit, whatever the values."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.warehouse_schema import (
    RowDoesNotFit,
    TableSpec,
    conform_rows,
    conform_rows_reference,
    conform_tuples,
    load_schema,
)

CONTRACT_TABLES = Path(__file__).resolve().parents[1] / "contract" / "schemas" / "tables"
REAL = load_schema()
TYPES = load_schema(tables_dirs=(CONTRACT_TABLES,), views_dirs=()).table("contract_types")
TABLES = [TYPES, *(REAL.table(name) for name in sorted(REAL.tables))]

_PLUS_TWO = timezone(timedelta(hours=2))
# Values of every kind a caller may pass: the conformed type (fast path), what BigQuery's JSON
# API also accepts (converted by the reference), and what no column accepts.
values = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.sampled_from(
        ["12.50", "-3", " 7 ", "2025-03-01T10:00:00+02:00", "2025-03-01", "10:30:00", "aGk=", "x"]
    ),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.sampled_from(
        [Decimal("12.5"), Decimal("12.50"), Decimal("-0"), Decimal("0"), Decimal("1E+29"), Decimal("1E-10")]
    ),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")]),
    st.datetimes(timezones=st.sampled_from([UTC, _PLUS_TWO])),
    st.datetimes(),  # naive
    st.dates(),
    st.times(),
    st.binary(max_size=4),
    st.just([]),
    st.lists(st.text(max_size=3), max_size=2),
    st.just({"city": "Springfield", "zip": None}),
    st.just({"nested": [1, 2]}),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[TableSpec, list[Any]]:
    table = draw(st.sampled_from(TABLES))
    rows: list[Any] = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        shape = draw(st.sampled_from(["valid", "valid", "mutated", "extra", "not a dict"]))
        if shape == "not a dict":
            rows.append(draw(st.sampled_from([None, "row", ["a"], 3])))
            continue
        row = {c.name: _plausible(c) for c in table.columns}
        if shape == "mutated":
            for name in draw(st.lists(st.sampled_from([c.name for c in table.columns]), max_size=3)):
                row[name] = draw(values)
        if shape == "extra":
            row["no_such_column"] = draw(values)
        for name in draw(st.lists(st.sampled_from([c.name for c in table.columns]), max_size=2)):
            row.pop(name, None)
        rows.append(row)
    return table, rows


def _plausible(column: Any) -> Any:
    """A value of the conformed type, as plan_load builds rows."""
    if column.repeated:
        return []
    return {
        "STRING": "text",
        "INT64": 42,
        "NUMERIC": Decimal("19.99"),
        "FLOAT64": 0.5,
        "BOOL": True,
        "TIMESTAMP": datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
        "DATE": date(2025, 3, 1),
        "DATETIME": datetime(2025, 3, 1, 9, 0),
        "TIME": time(9, 30),
        "JSON": {"a": 1},
        "BYTES": b"\x00\x01",
        "RECORD": None if not column.required else {f.name: _plausible(f) for f in column.fields},
    }[column.type]


def _outcome(conform: Any, table: TableSpec, rows: list[Any]) -> Any:
    try:
        out = conform(table, rows)
    except RowDoesNotFit as exc:
        return ("refused", exc.table, exc.row, exc.column, exc.problem)
    return ("conformed", out, [[type(v) for v in row.values()] for row in out])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_fast_path_matches_the_reference(case: tuple[TableSpec, list[Any]]) -> None:
    table, rows = case
    assert _outcome(conform_rows, table, rows) == _outcome(conform_rows_reference, table, rows)


def test_rows_as_plan_load_builds_them_take_the_fast_path_unchanged() -> None:
    row = {c.name: _plausible(c) for c in REAL.table("order_line_items").columns}
    (values,) = conform_tuples(REAL.table("order_line_items"), [row])
    assert values[REAL.table("order_line_items").column_names.index("price")] == Decimal("19.990000000")
    assert conform_rows(REAL.table("order_line_items"), [row]) == conform_rows_reference(
        REAL.table("order_line_items"), [row]
    )


def test_a_missing_required_value_is_refused_naming_row_and_column() -> None:
    table = REAL.table("order_line_items")
    good = {c.name: _plausible(c) for c in table.columns}
    with pytest.raises(RowDoesNotFit) as refused:
        conform_rows(table, [good, dict(good, quantity=None)])
    assert (refused.value.row, refused.value.column) == (1, "quantity")
    assert refused.value.problem == "REQUIRED value is missing (None)"


def test_a_float_for_numeric_is_refused_on_the_fast_path_too() -> None:
    table = REAL.table("order_line_items")
    good = {c.name: _plausible(c) for c in table.columns}
    with pytest.raises(RowDoesNotFit) as refused:
        conform_rows(table, [good, good, dict(good, price=1.5)])
    assert (refused.value.row, refused.value.column) == (2, "price")
    assert "floats lose cents" in refused.value.problem


def test_an_unknown_column_is_refused() -> None:
    table = REAL.table("orders")
    row = dict({c.name: _plausible(c) for c in table.columns}, surprise=1)
    with pytest.raises(RowDoesNotFit) as refused:
        conform_rows(table, [row])
    assert (refused.value.row, refused.value.column) == (0, "surprise")
