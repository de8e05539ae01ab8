"""Cloud mode of the feature batch job (``SHOPML_FEAST_REPO``), as far as it runs without GCP.

* The offline source of the cloud is a BigQuery query (``store.cloud_source_query``): that exact
  text, and the materialization SQL Feast wraps around it, run here on a DuckDB warehouse through
  ``shared.sql_dialect.bigquery_to_duckdb`` and give what the local path gives.
* The cloud ``feature_store.yaml`` the feature server image's entrypoint writes, loaded by Feast,
  with the definitions the job registers on it (names, source, TTLs).
* ``python -m shared.features`` picks the cloud or the local path by the setting alone.

What needs Google (BigQuery running the query, Redis, the GCS registry) is listed in
infra/README.md ("Nightly materialization").
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.simulator.history import generate_history, write_tables
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.errors import ConfigurationError
from shared.features.build import build_features
from shared.features.store import (
    bind_dates,
    cloud_source_query,
    cloud_window,
    materialize_bounds,
    offline_table,
)
from shared.features.views import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    JOIN_KEY,
    PROJECT,
    PUSH_SOURCE,
    VARIANT_HISTORY,
    VARIANT_STATE,
    VIEWS,
)
from shared.settings import Settings
from shared.sql_dialect import referenced_tables

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "shared" / "features" / "feast_repo" / "feature_store.cloud.yaml"
HISTORY_START, HISTORY_END = date(2024, 1, 1), date(2024, 4, 1)  # [start, end)
END = HISTORY_END - timedelta(days=1)
START = cloud_window(END)[0]
CREATED = datetime(2024, 4, 1, 3, 0, 0, 123456, tzinfo=UTC)
CLOUD_ENV = {
    "GOOGLE_CLOUD_PROJECT": "shop-prod",
    "SHOPML_BQ_DATASET": "shopml",
    "SHOPML_BQ_LOCATION": "EU",
    "SHOPML_FEATURE_BUCKET": "shop-prod-features",
    "SHOPML_REDIS_HOST": "10.0.0.3",
    "SHOPML_REDIS_AUTH": "the-auth-string",
}


@pytest.fixture(scope="module")
def warehouse() -> Iterator[DuckDBWarehouse]:
    history = generate_history(12, HISTORY_START, HISTORY_END, seed=5)
    store = DuckDBWarehouse(":memory:")
    write_tables(store, history.tables)
    yield store
    store.close()


@pytest.fixture(scope="module")
def local_table(warehouse: DuckDBWarehouse) -> Any:
    """What the local path exports for START..END (``offline_table`` of ``build_features``)."""
    return offline_table(build_features(warehouse, START, END), CREATED)


def as_offline_arrow(frame: Any, schema: Any) -> Any:
    """A DuckDB result frame in the offline table's Arrow schema (dates as dates)."""
    import pyarrow as pa

    frame = frame.copy()
    frame["date"] = frame["date"].dt.date
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def sorted_rows(table: Any) -> Any:
    return table.sort_by([("shop_domain", "ascending"), (JOIN_KEY, "ascending"), ("date", "ascending")])


# --- the source query -------------------------------------------------------------------------


def test_cloud_window_covers_the_longest_view_ttl_and_ends_on_the_given_day() -> None:
    start, end = cloud_window(date(2025, 3, 10))
    assert end == date(2025, 3, 10)
    assert end - start == max(view.ttl for view in VIEWS) == timedelta(days=3)


def test_source_query_on_duckdb_gives_the_local_offline_table(
    warehouse: DuckDBWarehouse, local_table: Any
) -> None:
    """The same BigQuery text, translated by shared.sql_dialect, equals the local export: same
    rows, columns, Arrow types and values (INT64 features, event and created timestamps)."""
    query = cloud_source_query("shop-prod", "shopml", START, END, created=CREATED)
    assert "@" not in query  # no parameters: Feast stores and runs the text as it is
    frame = warehouse.query_frame(query)
    assert list(frame.columns) == local_table.schema.names
    cloud = as_offline_arrow(frame, local_table.schema)
    assert cloud.num_rows == local_table.num_rows > 0
    assert sorted_rows(cloud).equals(sorted_rows(local_table))
    assert set(frame["date"].dt.date) == {START + timedelta(days=d) for d in range(4)}
    assert (frame[EVENT_TIMESTAMP] == frame["date"].dt.tz_localize("UTC")).all()
    assert (frame[CREATED_TIMESTAMP] == CREATED).all()


def test_source_query_reads_only_qualified_warehouse_views_and_tables() -> None:
    schema = DuckDBWarehouse(":memory:").schema
    query = cloud_source_query("shop-prod", "shopml", START, END, created=CREATED)
    names = referenced_tables(query)
    assert names and names <= set(schema.views) | set(schema.tables)
    import sqlglot
    from sqlglot import exp

    for table in sqlglot.parse_one(query, read="bigquery").find_all(exp.Table):
        if table.name in names:
            assert (table.catalog, table.db) == ("shop-prod", "shopml"), table.sql("bigquery")
    inner = sqlglot.parse_one(query, read="bigquery").find(exp.Subquery)
    assert isinstance(inner, exp.Subquery) and inner.this.args.get("order") is None  # Feast orders


def test_bind_dates_writes_dates_only_and_refuses_a_missing_parameter() -> None:
    sql = "SELECT 1 FROM t WHERE d BETWEEN @start_date AND @end_date"
    bound = bind_dates(sql, {"start_date": date(2025, 1, 2), "end_date": date(2025, 1, 3)})
    assert (
        "@" not in bound and "CAST('2025-01-02' AS DATE)" in bound and "CAST('2025-01-03' AS DATE)" in bound
    )
    with pytest.raises(ConfigurationError, match="end_date"):
        bind_dates(sql, {"start_date": date(2025, 1, 2)})
    with pytest.raises(ConfigurationError, match="must be a date"):
        bind_dates(sql, {"start_date": "2025-01-02'; DROP TABLE t; --", "end_date": date(2025, 1, 3)})  # type: ignore[dict-item]


# --- Feast around it ------------------------------------------------------------------------


@pytest.fixture
def offline_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Application default credentials that are never used: the BigQuery client Feast builds to
    write its SQL needs some, and nothing here sends a request."""
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))


def bigquery_repo_config(repo_dir: Path) -> Any:
    from feast.repo_config import RepoConfig

    return RepoConfig(
        repo_path=repo_dir,
        project=PROJECT,
        provider="gcp",
        registry=str(repo_dir / "registry.db"),
        offline_store={"type": "bigquery", "project_id": "shop-prod", "dataset": "shopml", "location": "EU"},
        online_store={"type": "sqlite", "path": str(repo_dir / "online.db")},
        entity_key_serialization_version=3,
    )


@pytest.mark.slow
@pytest.mark.usefixtures("offline_credentials")
def test_feast_materialization_sql_over_the_source_runs_on_duckdb_and_keeps_each_variants_last_day(
    warehouse: DuckDBWarehouse, local_table: Any, tmp_path: Path
) -> None:
    """The SQL Feast's BigQuery offline store sends when it materializes each view (its
    timestamp filter with the job's bounds, latest row per variant) around the source query."""
    from feast.infra.offline_stores.bigquery import BigQueryOfflineStore

    from shared.features.feast_repo.definitions import bigquery_query_source

    source = bigquery_query_source(cloud_source_query("shop-prod", "shopml", START, END, created=CREATED))
    begin, finish = materialize_bounds(START, END)
    local = local_table.to_pandas()
    last_day = local[local["date"] == END].set_index(JOIN_KEY)
    assert len(last_day) == local[JOIN_KEY].nunique()  # dense spine: every variant has a row on END
    for view in (VARIANT_HISTORY, VARIANT_STATE):
        job = BigQueryOfflineStore.pull_latest_from_table_or_query(
            bigquery_repo_config(tmp_path),
            source,
            [JOIN_KEY],
            list(view.features),
            EVENT_TIMESTAMP,
            CREATED_TIMESTAMP,
            begin,
            finish,
        )
        got = warehouse.query_frame(job.to_sql()).set_index(JOIN_KEY).sort_index()
        assert list(got.columns) == [*view.features, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
        assert list(got.index) == sorted(last_day.index)
        assert (got[EVENT_TIMESTAMP] == datetime.combine(END, datetime.min.time(), UTC)).all()
        for feature in view.features:
            want = last_day.loc[got.index, feature]
            assert (
                got[feature].astype(object).where(got[feature].notna(), None).tolist()
                == want.astype(object).where(want.notna(), None).tolist()
            ), feature


def load_entrypoint() -> Any:
    spec = importlib.util.spec_from_file_location(
        "feature_server_entrypoint_cloud", REPO / "infra" / "feature_server" / "entrypoint.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cloud_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Any]]:
    """The entrypoint's feature_store.yaml in a repo dir, as Feast would read it in the job, with
    the two parts this machine cannot reach swapped for local stand-ins: the Redis online store
    (SQLite; redis is not installed here) and the GCS registry (a file)."""
    entrypoint = load_entrypoint()
    for name, value in CLOUD_ENV.items():
        monkeypatch.setenv(name, value)
    repo_dir = tmp_path / "feast_repo"
    repo_dir.mkdir()
    rendered = entrypoint.render(TEMPLATE.read_text(), dict(CLOUD_ENV), repo_dir)
    assert "the-auth-string" not in rendered  # Feast expands ${SHOPML_REDIS_AUTH} when it loads
    config = yaml.safe_load(os.path.expandvars(rendered))  # what Feast does with the file
    as_served = json.loads(json.dumps(config))
    config["online_store"] = {"type": "sqlite", "path": str(tmp_path / "online.db")}
    config["registry"]["path"] = str(tmp_path / "registry.db")
    (repo_dir / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return repo_dir, as_served


@pytest.mark.slow
def test_cloud_mode_applies_the_definitions_on_the_entrypoints_config_and_writes_nothing_at_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from feast import BigQuerySource, FeatureStore, PushSource

    from shared.features.__main__ import main

    repo_dir, served = cloud_repo(tmp_path, monkeypatch)
    assert served["project"] == PROJECT
    assert served["offline_store"] == {
        "type": "bigquery",
        "project_id": "shop-prod",
        "dataset": "shopml",
        "location": "EU",
    }
    assert served["registry"]["path"] == "gs://shop-prod-features/feast/registry.db"
    assert served["online_store"]["type"] == "redis"
    assert served["online_store"]["key_ttl_seconds"] == max(v.ttl for v in VIEWS).total_seconds()
    home = tmp_path / "home"
    settings = Settings.from_env({"SHOPML_HOME": str(home), "SHOPML_FEAST_REPO": str(repo_dir)})

    assert main(["apply", "--end", END.isoformat()], settings) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["mode"] == "cloud" and printed["source"]["warehouse"] == "shop-prod.shopml"
    assert printed["source"]["days"] == [START.isoformat(), END.isoformat()]
    assert not home.exists()  # the local repo, parquet and registry are never written
    store = FeatureStore(repo_path=str(repo_dir))
    assert store.project == PROJECT
    views = {fv.name: fv for fv in store.list_feature_views()}
    assert set(views) == {v.name for v in VIEWS}
    for view in VIEWS:
        fv = views[view.name]
        assert fv.ttl == view.ttl and [f.name for f in fv.features] == list(view.features)
        assert isinstance(fv.batch_source, BigQuerySource)
        assert fv.batch_source.timestamp_field == EVENT_TIMESTAMP
        assert fv.batch_source.created_timestamp_column == CREATED_TIMESTAMP
        query = fv.batch_source.query
        assert "`shop-prod`.`shopml`.orders_latest" in query and not fv.batch_source.table
        assert f"CAST('{START}' AS DATE)" in query and f"CAST('{END}' AS DATE)" in query
    stream = views[VARIANT_STATE.name].stream_source
    assert stream is not None and stream.name == PUSH_SOURCE
    assert isinstance(store.get_data_source(PUSH_SOURCE), PushSource)


def test_without_the_setting_the_local_path_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("feast")
    from shared.features.__main__ import main

    home = tmp_path / "home"
    assert main(["apply"], Settings.from_env({"SHOPML_HOME": str(home)})) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["repo"] == str(home.resolve() / "features" / "repo")
    assert (home / "features" / "repo" / "feature_store.yaml").is_file()
    assert (home / "features" / "registry.db").is_file()


def test_cloud_mode_refuses_a_repo_without_config_or_with_a_non_bigquery_offline_store(
    tmp_path: Path,
) -> None:
    pytest.importorskip("feast")
    from shared.features.__main__ import main
    from shared.features.store import write_repo

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match=r"no feature_store\.yaml"):
        main(["materialize"], Settings.from_env({"SHOPML_FEAST_REPO": str(empty)}))
    local = write_repo(tmp_path / "home")  # a local repo: file offline store
    with pytest.raises(ConfigurationError, match="BigQuery offline store"):
        main(["materialize"], Settings.from_env({"SHOPML_FEAST_REPO": str(local.repo_dir)}))
    assert not (tmp_path / "home" / "features" / "registry.db").exists()


@pytest.mark.parametrize("argv", [["export"], ["materialize", "--from-offline"], ["apply", "--home", "x"]])
def test_cloud_mode_refuses_the_local_only_commands(argv: list[str], tmp_path: Path) -> None:
    from shared.features.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(argv, Settings.from_env({"SHOPML_FEAST_REPO": str(tmp_path)}))
    assert exc.value.code == 2


def test_the_entrypoint_gives_its_command_the_repo_it_wrote(tmp_path: Path) -> None:
    entrypoint = load_entrypoint()
    env = entrypoint.child_environment({"PATH": "/usr/bin", "SHOPML_HOME": "/tmp/shopml"}, tmp_path)
    assert env == {"PATH": "/usr/bin", "SHOPML_HOME": "/tmp/shopml", "SHOPML_FEAST_REPO": str(tmp_path)}
    assert Settings.from_env(env).feast_repo == tmp_path
    assert Settings.from_env({}).feast_repo is None
