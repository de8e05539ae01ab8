"""BigQuery's UPDATE / DELETE against a fake client: what the emulator cannot show.

BigQuery refuses DML over rows still in the streaming buffer (about 30 minutes after
``insertAll``); the emulator has no streaming buffer. The adapter must turn that refusal into
``StreamingBufferBusy`` (transient: retry later), return the affected-row count of a DML job,
and bind every value as a typed parameter with NULLs written as literals.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("google.cloud.bigquery")

from google.api_core import exceptions as gexc

from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.errors import PermanentError, StreamingBufferBusy, TransientError
from tests.contract.test_bigquery_adapter_unit import SCHEMA, FakeClient

BUFFER_MESSAGE = (
    "UPDATE or DELETE statement over table proj.ds.contract_entities would affect rows in the "
    "streaming buffer, which is not supported"
)


class DmlJob:
    def __init__(self, affected: int, error: Exception | None) -> None:
        self.num_dml_affected_rows = affected
        self.error = error

    def result(self, timeout: float | None = None) -> list[Any]:
        if self.error:
            raise self.error
        return []


class DmlClient(FakeClient):
    def __init__(self) -> None:
        super().__init__()
        self.affected = 0

    def query(self, sql: str, job_config: Any = None, **_: Any) -> Any:
        self.queries.append((sql, job_config))
        return DmlJob(self.affected, self.query_error)


@pytest.fixture
def client() -> DmlClient:
    return DmlClient()


@pytest.fixture
def warehouse(client: DmlClient) -> BigQueryWarehouse:
    made = BigQueryWarehouse("proj", "ds", SCHEMA, client=client)
    made.ensure_schema()
    return made


def test_rows_in_the_streaming_buffer_are_a_transient_refusal(
    warehouse: BigQueryWarehouse, client: DmlClient
) -> None:
    client.query_error = gexc.BadRequest(BUFFER_MESSAGE, errors=[{"reason": "invalidQuery"}])
    with pytest.raises(StreamingBufferBusy, match="streaming buffer") as caught:
        warehouse.delete_rows("contract_entities", "id = @id", {"id": 1})
    assert isinstance(caught.value, TransientError)
    with pytest.raises(StreamingBufferBusy):
        warehouse.update_rows("contract_entities", {"name": None}, "id = @id", {"id": 1})
    # Any other refusal of the statement stays permanent.
    client.query_error = gexc.BadRequest("Unrecognized name: nope", errors=[{"reason": "invalidQuery"}])
    with pytest.raises(PermanentError) as other:
        warehouse.delete_rows("contract_entities", "nope = 1")
    assert not isinstance(other.value, TransientError)


def test_dml_returns_the_affected_rows_and_binds_typed_values(
    warehouse: BigQueryWarehouse, client: DmlClient
) -> None:
    client.affected = 3
    assert (
        warehouse.update_rows(
            "contract_entities", {"name": "x", "price": None}, "shop_domain = @shop", {"shop": "s"}
        )
        == 3
    )
    sql, config = client.queries[-1]
    assert (
        sql == "UPDATE `contract_entities` SET `name` = @set_name, `price` = NULL WHERE (shop_domain = @shop)"
    )
    assert {(p.name, p.type_, p.value) for p in config.query_parameters} == {
        ("set_name", "STRING", "x"),
        ("shop", "STRING", "s"),
    }
    assert config.default_dataset.dataset_id == "ds"
    client.affected = 0
    assert warehouse.delete_rows("contract_entities", "id IN UNNEST(@ids)", {"ids": [1, 2]}) == 0
    assert client.queries[-1][0] == "DELETE FROM `contract_entities` WHERE (id IN UNNEST(@ids))"
