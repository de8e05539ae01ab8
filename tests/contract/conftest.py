"""The warehouse contract: the same tests against every backend.

``backend`` is parametrised over ``duckdb`` (always) and ``bigquery`` (only when
``SHOPML_TEST_BIGQUERY_ENDPOINT`` points at a BigQuery API: the emulator, started by
``test_bigquery_contract_runner.py``, which runs this suite inside ``.venv-bq``).

This conftest imports only the standard library, pytest and ``shared`` (no hypothesis, no
functions-framework), so the suite also runs in ``.venv-bq``; the runner passes
``--confcutdir tests/contract`` there so that ``tests/conftest.py`` is not loaded.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.warehouse_schema import TABLES_DIR, VIEWS_DIR, WarehouseSchema, load_schema

HERE = Path(__file__).resolve().parent
FIXTURE_TABLES = HERE / "schemas" / "tables"
FIXTURE_VIEWS = HERE / "schemas" / "views"
BQ_ENDPOINT = os.environ.get("SHOPML_TEST_BIGQUERY_ENDPOINT", "")
BQ_PROJECT = os.environ.get("SHOPML_TEST_BIGQUERY_PROJECT", "shopml-contract")


def contract_schema() -> WarehouseSchema:
    """The repository's table and view files plus the suite's own fixtures."""
    return load_schema((TABLES_DIR, FIXTURE_TABLES), (VIEWS_DIR, FIXTURE_VIEWS))


def backends() -> list[str]:
    return ["duckdb", "bigquery"] if BQ_ENDPOINT else ["duckdb"]


class Backend:
    """One warehouse under test plus what the tests need to look behind the port."""

    name: str
    emulator: bool = False

    def __init__(self, warehouse: Any) -> None:
        self.warehouse = warehouse

    def columns(self, table: str) -> dict[str, str]:
        raise NotImplementedError

    def make(self, schema: WarehouseSchema, **options: Any) -> Any:
        """Another warehouse on the same storage (same file / dataset), other definitions."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class DuckDBBackend(Backend):
    name = "duckdb"

    def __init__(self, path: Path, schema: WarehouseSchema) -> None:
        self.path = path
        super().__init__(self.make(schema))

    def make(self, schema: WarehouseSchema, **options: Any) -> Any:
        from shared.adapters.duckdb_warehouse import DuckDBWarehouse

        options.setdefault("idle_close_seconds", 0.1)
        return DuckDBWarehouse(self.path, schema, **options)

    def columns(self, table: str) -> dict[str, str]:
        with self.warehouse.connection() as cursor:
            rows = cursor.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
        return dict(rows)

    def close(self) -> None:
        self.warehouse.close()


class BigQueryBackend(Backend):
    name = "bigquery"
    emulator = True

    def __init__(self, schema: WarehouseSchema) -> None:
        self.dataset = f"contract_{uuid.uuid4().hex[:10]}"
        super().__init__(self.make(schema))

    def make(self, schema: WarehouseSchema, **options: Any) -> Any:
        from shared.adapters.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(
            BQ_PROJECT,
            self.dataset,
            schema,
            endpoint=BQ_ENDPOINT,
            create_dataset=True,
            timeout_seconds=8.0,
            **options,
        )

    def columns(self, table: str) -> dict[str, str]:
        found = self.warehouse.client.get_table(self.warehouse.table_id(table))
        return {field.name: field.field_type for field in found.schema}

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the emulator is discarded after the run anyway
            self.warehouse.client.delete_dataset(
                f"{BQ_PROJECT}.{self.dataset}", delete_contents=True, not_found_ok=True
            )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends(), indirect=True)


@pytest.fixture
def schema() -> WarehouseSchema:
    return contract_schema()


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path, schema: WarehouseSchema) -> Iterator[Backend]:
    made: Backend
    if request.param == "duckdb":
        made = DuckDBBackend(tmp_path / "contract.duckdb", schema)
    else:
        made = BigQueryBackend(schema)
    try:
        yield made
    finally:
        made.close()


def skip_on_emulator(backend: Backend, limitation: str) -> None:
    """Skip one case the BigQuery emulator cannot do (the rest of the test file still runs)."""
    if backend.emulator:
        pytest.skip(f"bqemulator 1.4.0 limitation: {limitation}")
