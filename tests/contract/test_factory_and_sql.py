"""The factory (SHOPML_WAREHOUSE URLs, lazy imports) and SQL translation / qualification."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.bootstrap import create_warehouse, parse_warehouse_url
from shared.errors import ConfigurationError, PermanentError
from shared.settings import REPO_ROOT, Settings
from shared.sql_dialect import (
    bigquery_to_duckdb,
    qualify_for_bigquery,
    referenced_tables,
    views_in_dependency_order,
)
from shared.warehouse_schema import ViewSpec, WarehouseSchema


def _settings(url: str) -> Settings:
    return Settings.from_env({"SHOPML_WAREHOUSE": url})


def test_duckdb_urls_build_the_duckdb_adapter(tmp_path: Path) -> None:
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse

    warehouse = create_warehouse(_settings(f"duckdb://{tmp_path}/w.duckdb?idle_close_ms=50&lock_timeout_s=2"))
    assert isinstance(warehouse, DuckDBWarehouse)
    assert warehouse.path == f"{tmp_path}/w.duckdb" and warehouse.lock_timeout_seconds == 2.0
    memory = create_warehouse(_settings("duckdb:///:memory:"))
    assert isinstance(memory, DuckDBWarehouse) and memory.path == ":memory:"
    assert memory.query("SELECT 1 AS one") == [{"one": 1}]


def test_the_default_settings_point_at_the_local_duckdb_file() -> None:
    target = parse_warehouse_url(Settings.from_env({}).warehouse_url)
    assert target.backend == "duckdb" and target.path.endswith(".shopml/warehouse.duckdb")


def test_bigquery_url_builds_the_bigquery_adapter_without_touching_the_network() -> None:
    from shared.adapters.bigquery_warehouse import BigQueryWarehouse

    warehouse = create_warehouse(
        Settings.from_env(
            {
                "SHOPML_WAREHOUSE": "bigquery://my-project/shop_data?location=EU&create_dataset=true",
                "SHOPML_BIGQUERY_ENDPOINT": "http://127.0.0.1:9050",
            }
        )
    )
    assert isinstance(warehouse, BigQueryWarehouse)
    assert (warehouse.project, warehouse.dataset, warehouse.location) == ("my-project", "shop_data", "EU")
    assert warehouse.create_dataset and warehouse.endpoint == "http://127.0.0.1:9050"
    assert warehouse._client is None  # created lazily, on first use


@pytest.mark.parametrize(
    "url",
    [
        "",
        "postgres://x/y",
        "duckdb://relative/path.duckdb",
        "duckdb:///dir/",
        "duckdb:///x.duckdb?colour=blue",
        "bigquery://project-only",
        "bigquery://Bad_Project/ds",
        "bigquery://my-project/bad-dataset",
        "bigquery://my-project/ds?ensure_schema=maybe",
    ],
)
def test_a_malformed_warehouse_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="SHOPML_WAREHOUSE"):
        create_warehouse(_settings(url) if url else Settings(warehouse_url=""))


def test_importing_the_warehouse_modules_imports_no_database_client() -> None:
    code = (
        "import sys, shared.warehouse_schema, shared.sql_dialect, shared.bootstrap, shared.ports, "
        "shared.adapters.duckdb_warehouse, shared.adapters.bigquery_warehouse\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('duckdb', 'sqlglot', 'pyarrow') "
        "or m.startswith('google.cloud.bigquery'))\n"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


# -- translation -----------------------------------------------------------------------------


def test_parameters_become_duckdb_named_parameters() -> None:
    sql = bigquery_to_duckdb("SELECT * FROM orders WHERE shop_domain = @shop AND created_at >= @since")
    assert "$shop" in sql and "$since" in sql and "@" not in sql


def test_numeric_keeps_bigquery_precision_and_scale() -> None:
    sql = bigquery_to_duckdb(
        "SELECT CAST(x AS NUMERIC), CAST(y AS BIGNUMERIC), CAST(z AS NUMERIC(10, 2)) FROM t"
    )
    assert sql.count("DECIMAL(38, 9)") == 2 and "DECIMAL(10, 2)" in sql


def test_bigquery_types_and_functions_translate() -> None:
    sql = bigquery_to_duckdb(
        "SELECT SAFE_CAST(a AS INT64), CAST(b AS TIMESTAMP), CAST(c AS DATETIME), COUNTIF(d), "
        "TIMESTAMP_TRUNC(e, DAY) FROM `p.d.t` WHERE TRUE QUALIFY ROW_NUMBER() OVER (ORDER BY f) = 1"
    )
    assert "TRY_CAST(a AS BIGINT)" in sql
    assert "TIMESTAMPTZ" in sql and "CAST(c AS TIMESTAMP)" in sql
    assert "COUNT_IF" in sql and "QUALIFY" in sql
    assert "ORDER BY f NULLS FIRST" in sql  # BigQuery sorts NULLs first ascending; DuckDB last
    assert 'FROM "t"' in sql or "FROM t" in sql  # project.dataset dropped: a DuckDB file is one dataset


def test_only_one_statement_is_accepted() -> None:
    with pytest.raises(PermanentError, match="exactly one"):
        bigquery_to_duckdb("SELECT 1; DROP TABLE orders")
    with pytest.raises(PermanentError):
        bigquery_to_duckdb("SELEC FROM")


def test_bigquery_view_sql_is_qualified_except_ctes() -> None:
    sql = qualify_for_bigquery(
        "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN order_line_items AS li USING (id), "
        "UNNEST(li.discounts) AS d",
        "my-project",
        "shop_data",
    )
    assert "`my-project`.`shop_data`.orders" in sql or "`my-project`.`shop_data`.`orders`" in sql
    assert "`shop_data`.`order_line_items`" in sql or "`shop_data`.order_line_items" in sql
    assert "`shop_data`.recent" not in sql and "`shop_data`.`recent`" not in sql


def test_views_are_created_after_the_views_they_read() -> None:
    schema = WarehouseSchema(
        {},
        {
            "c": ViewSpec("c", "SELECT * FROM b JOIN a USING (id)"),
            "a": ViewSpec("a", "SELECT * FROM orders"),
            "b": ViewSpec("b", "WITH x AS (SELECT * FROM a) SELECT * FROM x"),
        },
    )
    assert [v.name for v in views_in_dependency_order(schema)] == ["a", "b", "c"]
    assert referenced_tables("WITH x AS (SELECT * FROM a) SELECT * FROM x") == {"a"}
    cyclic = WarehouseSchema(
        {}, {"a": ViewSpec("a", "SELECT * FROM b"), "b": ViewSpec("b", "SELECT * FROM a")}
    )
    with pytest.raises(ConfigurationError, match="cycle"):
        views_in_dependency_order(cyclic)


def test_every_view_in_the_repository_translates_to_duckdb() -> None:
    from shared.warehouse_schema import load_schema

    for view in load_schema().views.values():
        translated = bigquery_to_duckdb(view.sql)
        assert "SELECT" in translated.upper() and "@" not in translated, view.name
