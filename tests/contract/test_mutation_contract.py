"""``delete_rows`` / ``update_rows`` (shared.ports.MutableWarehouse), identical on every backend.

What privacy requests rely on: a predicate with parameters picks the rows, the count of rows
touched comes back, NULL can be set on any nullable type, nothing else is changed, and a
statement that names an unknown column or drops the WHERE is refused before it runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared.errors import PermanentError
from tests.contract.conftest import Backend

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SHOP = "mutate.myshopify.com"
OTHER = "other.myshopify.com"


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "shop_domain": SHOP,
            "id": 1,
            "name": "ada@example.com",
            "price": Decimal("1.50"),
            "updated_at": T0,
            "webhook_id": "w1",
            "received_at": T0,
        },
        {
            "shop_domain": SHOP,
            "id": 2,
            "name": "bob",
            "price": Decimal("2.00"),
            "updated_at": T0,
            "webhook_id": "w2",
            "received_at": T0,
        },
        {
            "shop_domain": SHOP,
            "id": 3,
            "name": "ada@example.com",
            "price": None,
            "updated_at": None,
            "webhook_id": "w3",
            "received_at": T0,
        },
        {
            "shop_domain": OTHER,
            "id": 1,
            "name": "ada@example.com",
            "price": Decimal("9"),
            "updated_at": T0,
            "webhook_id": "w4",
            "received_at": T0,
        },
    ]


def _load(backend: Backend) -> None:
    backend.warehouse.insert_rows("contract_entities", _rows(), [f"m{i}" for i in range(4)])


def _state(backend: Backend) -> list[tuple[Any, ...]]:
    rows = backend.warehouse.query(
        "SELECT shop_domain, id, name, price, updated_at FROM contract_entities ORDER BY shop_domain, id"
    )
    return [(r["shop_domain"], r["id"], r["name"], r["price"], r["updated_at"]) for r in rows]


def test_delete_rows_removes_exactly_the_matching_rows_and_counts_them(backend: Backend) -> None:
    _load(backend)
    deleted = backend.warehouse.delete_rows(
        "contract_entities", "shop_domain = @shop AND id IN UNNEST(@ids)", {"shop": SHOP, "ids": [1, 3, 99]}
    )
    assert deleted == 2
    assert [(s, i) for s, i, *_ in _state(backend)] == [(SHOP, 2), (OTHER, 1)]
    # Again: nothing left to match, nothing changes.
    assert (
        backend.warehouse.delete_rows(
            "contract_entities", "shop_domain = @shop AND id IN UNNEST(@ids)", {"shop": SHOP, "ids": [1, 3]}
        )
        == 0
    )
    assert len(_state(backend)) == 2


def test_update_rows_sets_values_and_nulls_only_where_the_predicate_holds(backend: Backend) -> None:
    _load(backend)
    touched = backend.warehouse.update_rows(
        "contract_entities",
        {"name": None, "price": None, "updated_at": None},
        "shop_domain = @shop AND STRPOS(name, @needle) > 0",
        {"shop": SHOP, "needle": "ada@"},
    )
    assert touched == 2
    assert _state(backend) == [
        (SHOP, 1, None, None, None),
        (SHOP, 2, "bob", Decimal("2.00"), T0),
        (SHOP, 3, None, None, None),
        (OTHER, 1, "ada@example.com", Decimal("9"), T0),
    ]
    touched = backend.warehouse.update_rows(
        "contract_entities",
        {"name": "anonymous", "price": Decimal("0.5")},
        "id = @id AND name = @name",
        {"id": 2, "name": "bob"},
    )
    assert touched == 1
    assert _state(backend)[1] == (SHOP, 2, "anonymous", Decimal("0.5"), T0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda w: w.delete_rows("contract_entities", "  "), "WHERE"),
        (lambda w: w.delete_rows("contract_entities", "TRUE; DROP TABLE x"), "';'"),
        (lambda w: w.update_rows("contract_entities", {"nope": 1}, "TRUE"), "nope"),
        (lambda w: w.update_rows("contract_entities", {"shop_domain": None}, "TRUE"), "REQUIRED"),
        (lambda w: w.update_rows("contract_entities", {}, "TRUE"), "no column"),
        (lambda w: w.update_rows("contract_entities", {"name": "x"}, "TRUE", {"set_name": "y"}), "reserved"),
    ],
)
def test_bad_statements_are_refused_before_anything_runs(backend: Backend, call: Any, message: str) -> None:
    _load(backend)
    with pytest.raises(PermanentError, match=message):
        call(backend.warehouse)
    assert len(_state(backend)) == 4
