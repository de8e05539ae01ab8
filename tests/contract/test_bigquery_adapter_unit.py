"""BigQuery adapter against a fake client: what the emulator cannot show.

The emulator never returns per-row insert errors (a bad value is an HTTP 500 there) and never
throttles, so error mapping, value encoding, parameter typing and the ensure_schema calls are
checked here, with the real google-cloud-bigquery types and exceptions.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("google.cloud.bigquery")

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from shared.adapters.bigquery_warehouse import BigQueryWarehouse, query_parameter
from shared.errors import ConfigurationError, PermanentError, TransientError
from shared.warehouse_schema import RowDoesNotFit
from tests.contract.conftest import contract_schema

SCHEMA = contract_schema()


class FakeJob:
    def __init__(self, rows: list[dict[str, Any]], error: Exception | None) -> None:
        self.rows, self.error = rows, error

    def result(self, timeout: float | None = None) -> list[Any]:
        if self.error:
            raise self.error
        return [bigquery.Row(tuple(r.values()), {k: i for i, k in enumerate(r)}) for r in self.rows]


class ListItem:
    def __init__(self, table_id: str, table_type: str, labels: dict[str, str] | None = None) -> None:
        self.table_id, self.table_type, self.labels = table_id, table_type, labels or {}


class FakeClient:
    def __init__(self) -> None:
        self.inserts: list[tuple[str, list[dict[str, Any]], Any]] = []
        self.insert_result: list[dict[str, Any]] = []
        self.insert_error: Exception | None = None
        self.queries: list[tuple[str, Any]] = []
        self.query_rows: list[dict[str, Any]] = []
        self.query_error: Exception | None = None
        self.existing: dict[str, ListItem] = {}
        self.created: list[Any] = []
        self.updated: list[tuple[Any, list[str]]] = []
        self.list_calls = 0

    def insert_rows_json(
        self, table: str, rows: list[dict[str, Any]], row_ids: Any = None, **_: Any
    ) -> list[dict[str, Any]]:
        if self.insert_error:
            raise self.insert_error
        self.inserts.append((table, rows, row_ids))
        return self.insert_result

    def query(self, sql: str, job_config: Any = None, **_: Any) -> FakeJob:
        self.queries.append((sql, job_config))
        return FakeJob(self.query_rows, self.query_error)

    def create_dataset(self, dataset: Any, **_: Any) -> None:
        pass

    def list_tables(self, dataset: Any, **_: Any) -> list[ListItem]:
        self.list_calls += 1
        return list(self.existing.values())

    def create_table(self, table: Any, **_: Any) -> Any:
        self.created.append(table)
        self.existing[table.table_id] = ListItem(
            table.table_id, "VIEW" if table.view_query else "TABLE", table.labels
        )
        return table

    def update_table(self, table: Any, fields: list[str], **_: Any) -> Any:
        self.updated.append((table, fields))
        return table

    def get_table(self, table_id: str, **_: Any) -> Any:
        name = table_id.rsplit(".", 1)[1]
        spec = SCHEMA.table(name)
        return bigquery.Table(
            table_id, schema=[bigquery.SchemaField.from_api_repr(dict(f)) for f in spec.api_schema]
        )


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def warehouse(client: FakeClient) -> BigQueryWarehouse:
    made = BigQueryWarehouse("proj", "ds", SCHEMA, client=client)
    made.ensure_schema()
    client.created.clear()
    client.updated.clear()
    return made


def test_rows_are_encoded_as_bigquery_json(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    ts = datetime(2025, 3, 1, 23, 0, 0, 5, tzinfo=timezone(timedelta(hours=-2)))
    warehouse.insert_rows(
        "contract_types",
        [
            {
                "id": 1,
                "amount": Decimal("12.5"),
                "ratio": float("nan"),
                "ts": ts,
                "day": date(2025, 3, 1),
                "civil": datetime(2025, 3, 1, 8, 0),
                "clock": time(8, 0, 1),
                "doc": {"a": [1, None]},
                "blob": b"\x00\x01",
                "tags": ["x"],
                "lines": [
                    {
                        "sku": "A",
                        "price": Decimal("1"),
                        "seen_at": ts,
                        "discounts": [{"amount": Decimal("0.5")}],
                    }
                ],
            },
            {"id": 2},
        ],
        row_ids=["a", "b"],
    )
    table, rows, row_ids = client.inserts[0]
    assert table == "proj.ds.contract_types" and row_ids == ["a", "b"]
    assert rows[0] == {
        "id": 1,
        "amount": "12.500000000",
        "ratio": "NaN",
        "ts": "2025-03-02T01:00:00.000005+00:00",
        "day": "2025-03-01",
        "civil": "2025-03-01T08:00:00",
        "clock": "08:00:01",
        "doc": json.dumps({"a": [1, None]}, separators=(",", ":")),
        "blob": "AAE=",
        "tags": ["x"],
        "lines": [
            {
                "sku": "A",
                "quantity": None,
                "price": "1.000000000",
                "seen_at": "2025-03-02T01:00:00.000005+00:00",
                "discounts": [{"code": None, "amount": "0.500000000"}],
            }
        ],
    }
    assert rows[1] == {"id": 2, "tags": [], "lines": []}  # NULL columns left out; REPEATED as []


def test_write_batch_is_one_insert_per_table_with_its_row_ids(
    warehouse: BigQueryWarehouse, client: FakeClient
) -> None:
    warehouse.write_batch(
        {
            "contract_types": [{"id": 1}],
            "contract_entities": [
                {
                    "shop_domain": "s",
                    "id": 1,
                    "webhook_id": "w",
                    "received_at": datetime(2025, 1, 1, tzinfo=UTC),
                }
            ],
        },
        {"contract_types": ["w:t:0"], "contract_entities": ["w:e:0"]},
    )
    assert [(t, ids) for t, _, ids in client.inserts] == [
        ("proj.ds.contract_types", ["w:t:0"]),
        ("proj.ds.contract_entities", ["w:e:0"]),
    ]


def test_a_bad_row_anywhere_in_write_batch_sends_nothing(
    warehouse: BigQueryWarehouse, client: FakeClient
) -> None:
    with pytest.raises(RowDoesNotFit):
        warehouse.write_batch({"contract_types": [{"id": 1}], "contract_entities": [{"id": "x"}]})
    assert client.inserts == []


def test_rows_the_api_calls_invalid_are_permanent_and_named(
    warehouse: BigQueryWarehouse, client: FakeClient
) -> None:
    client.insert_result = [
        {"index": 0, "errors": [{"reason": "stopped", "location": "", "message": ""}]},
        {
            "index": 1,
            "errors": [{"reason": "invalid", "location": "amount", "message": "Invalid NUMERIC value: x"}],
        },
    ]
    with pytest.raises(RowDoesNotFit) as caught:
        warehouse.insert_rows("contract_types", [{"id": 1}, {"id": 2}])
    assert (caught.value.table, caught.value.row, caught.value.column) == ("contract_types", 1, "amount")
    assert "Invalid NUMERIC" in str(caught.value)


def test_per_row_backend_errors_are_transient(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    client.insert_result = [{"index": 0, "errors": [{"reason": "backendError", "message": "try again"}]}]
    with pytest.raises(TransientError):
        warehouse.insert_rows("contract_types", [{"id": 1}])


@pytest.mark.parametrize(
    "error",
    [
        gexc.ServiceUnavailable("down"),
        gexc.InternalServerError("oops"),
        gexc.BadGateway("bad gateway"),
        gexc.TooManyRequests("slow down"),
        gexc.Forbidden("quota", errors=[{"reason": "rateLimitExceeded", "message": "Exceeded rate limits"}]),
        gexc.Forbidden("quota", errors=[{"reason": "quotaExceeded", "message": "Quota exceeded"}]),
        gexc.DeadlineExceeded("slow"),
        gexc.RetryError("gave up", cause=gexc.ServiceUnavailable("down")),
        ConnectionError("reset"),
        gexc.NotFound("table missing (just created?)"),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "errors", "") or "")[:20],
)
def test_unavailable_throttled_and_network_errors_are_transient(
    warehouse: BigQueryWarehouse, client: FakeClient, error: Exception
) -> None:
    client.insert_error = error
    with pytest.raises(TransientError):
        warehouse.insert_rows("contract_types", [{"id": 1}])


def test_requests_connection_errors_are_transient(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    import requests

    client.insert_error = requests.exceptions.ConnectionError("refused")
    with pytest.raises(TransientError):
        warehouse.insert_rows("contract_types", [{"id": 1}])


def test_access_denied_is_a_configuration_error(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    client.insert_error = gexc.Forbidden("denied", errors=[{"reason": "accessDenied"}])
    with pytest.raises(ConfigurationError, match="permission denied"):
        warehouse.insert_rows("contract_types", [{"id": 1}])


def test_a_query_bigquery_rejects_is_permanent(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    client.query_error = gexc.BadRequest("Syntax error", errors=[{"reason": "invalidQuery"}])
    with pytest.raises(PermanentError) as caught:
        warehouse.query("SELEC 1")
    assert not isinstance(caught.value, TransientError)
    client.query_error = gexc.InternalServerError("backend", errors=[{"reason": "backendError"}])
    with pytest.raises(TransientError):
        warehouse.query("SELECT 1")


def test_queries_run_with_typed_parameters_in_the_dataset(
    warehouse: BigQueryWarehouse, client: FakeClient
) -> None:
    client.query_rows = [{"n": 1}]
    assert warehouse.query("SELECT COUNT(*) AS n FROM orders WHERE id IN UNNEST(@ids)", {"ids": [1, 2]}) == [
        {"n": 1}
    ]
    sql, config = client.queries[0]
    assert sql == "SELECT COUNT(*) AS n FROM orders WHERE id IN UNNEST(@ids)"  # sent as written
    assert config.default_dataset.dataset_id == "ds" and config.default_dataset.project == "proj"
    (param,) = config.query_parameters
    assert isinstance(param, bigquery.ArrayQueryParameter) and param.array_type == "INT64"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (1, "INT64"),
        ("s", "STRING"),
        (1.5, "FLOAT64"),
        (Decimal("1.5"), "NUMERIC"),
        (True, "BOOL"),
        (datetime(2025, 1, 1, tzinfo=UTC), "TIMESTAMP"),
        (datetime(2025, 1, 1), "DATETIME"),
        (date(2025, 1, 1), "DATE"),
        (time(1, 2), "TIME"),
        (b"x", "BYTES"),
        (None, "STRING"),
    ],
)
def test_query_parameter_types_follow_the_python_value(value: Any, kind: str) -> None:
    param = query_parameter("p", value)
    assert isinstance(param, bigquery.ScalarQueryParameter) and param.type_ == kind


def test_array_and_struct_parameters() -> None:
    assert query_parameter("p", [Decimal("1")]).array_type == "NUMERIC"
    assert query_parameter("p", []).array_type == "STRING"
    assert query_parameter("p", [1, 2.5]).array_type == "FLOAT64"
    assert isinstance(query_parameter("p", {"a": 1, "b": "x"}), bigquery.StructQueryParameter)
    with pytest.raises(PermanentError, match="mixed"):
        query_parameter("p", [1, "x"])


def test_ensure_schema_creates_partitioned_clustered_tables_and_qualified_views(client: FakeClient) -> None:
    BigQueryWarehouse("proj", "ds", SCHEMA, client=client, create_dataset=True).ensure_schema()
    tables = {t.table_id: t for t in client.created if not t.view_query}
    views = {t.table_id: t for t in client.created if t.view_query}
    assert set(tables) == set(SCHEMA.tables) and set(views) == set(SCHEMA.views)
    types = tables["contract_types"]
    assert types.time_partitioning.field == "ts" and types.time_partitioning.type_ == "DAY"
    assert types.time_partitioning.expiration_ms == 30 * 86_400_000
    assert types.clustering_fields == ["id"]
    assert [f.name for f in types.schema] == [c.name for c in SCHEMA.table("contract_types").columns]
    latest = views["contract_entities_latest"].view_query
    assert "`proj`.`ds`.`contract_entities`" in latest or "`proj`.`ds`.contract_entities" in latest
    # Views were created after the views they read.
    order = [t.table_id for t in client.created if t.view_query]
    assert order.index("contract_entities_latest") < order.index("contract_entity_totals")


def test_ensure_schema_on_an_unchanged_dataset_is_one_list_call(client: FakeClient) -> None:
    BigQueryWarehouse("proj", "ds", SCHEMA, client=client).ensure_schema()
    client.created.clear()
    client.list_calls = 0
    lazy = BigQueryWarehouse("proj", "ds", SCHEMA, client=client)
    lazy.insert_rows("contract_types", [{"id": 1}])  # first use: lazy ensure
    assert client.list_calls == 1 and client.created == [] and client.updated == []


def test_a_changed_view_is_updated_in_place(client: FakeClient) -> None:
    BigQueryWarehouse("proj", "ds", SCHEMA, client=client).ensure_schema()
    client.existing["contract_entity_totals"].labels = {"shopml_sql_sha": "stale"}
    BigQueryWarehouse("proj", "ds", SCHEMA, client=client).ensure_schema()
    assert [(t.table_id, fields) for t, fields in client.updated if t.view_query] == [
        ("contract_entity_totals", ["view_query", "labels", "description"])
    ]
