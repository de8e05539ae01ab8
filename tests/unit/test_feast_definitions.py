"""The Feast definitions load and agree with the column contract and the request-path constants.

Imports Feast (5–6 s), hence ``slow``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.features import HISTORY, SHOP, STATE
from shared.features.store import FeatureRepo, repo_config_yaml, write_repo
from shared.features.views import (
    INT64_FEATURES,
    PUSH_SOURCE,
    STRING_FEATURES,
    VARIANT_HISTORY,
    VARIANT_STATE,
    VIEWS,
)

pytestmark = pytest.mark.slow

feast = pytest.importorskip("feast")
definitions = pytest.importorskip("shared.features.feast_repo.definitions")

CLOUD_YAML = Path(definitions.__file__).with_name("feature_store.cloud.yaml")


@pytest.fixture(scope="module")
def objects() -> dict[str, Any]:
    found = definitions.feature_objects(definitions.file_source("../offline/variant_features.parquet"))
    return {obj.name: obj for obj in found}


def test_entity_is_the_variant_keyed_by_an_int64_variant_id(objects: dict[str, Any]) -> None:
    entity = objects["variant"]
    assert entity.join_key == "variant_id"
    assert entity.value_type == feast.ValueType.INT64


def test_views_match_the_request_path_constants(objects: dict[str, Any]) -> None:
    for view in VIEWS:
        fv = objects[view.name]
        assert fv.ttl == view.ttl
        assert [f.name for f in fv.features] == list(view.features)
        assert fv.entities == ["variant"]
        assert fv.online
    assert {v.name for v in VIEWS} == {o for o in objects if isinstance(objects[o], feast.FeatureView)}


def test_feature_names_and_types_come_from_the_contract(objects: dict[str, Any]) -> None:
    assert set(HISTORY) <= set(VARIANT_HISTORY.features)
    assert set(VARIANT_HISTORY.features) | set(VARIANT_STATE.features) == set(HISTORY) | set(SHOP) | set(
        STATE
    )
    for view in VIEWS:
        for field in objects[view.name].features:
            expected = (
                feast.types.String
                if field.name in STRING_FEATURES
                else feast.types.Int64
                if field.name in INT64_FEATURES
                else feast.types.Float64
            )
            assert field.dtype == expected, field.name


def test_state_view_is_fed_by_the_push_source_over_the_offline_table(objects: dict[str, Any]) -> None:
    push = objects[PUSH_SOURCE]
    assert isinstance(push, feast.PushSource)
    state = objects[VARIANT_STATE.name]
    assert state.stream_source.name == PUSH_SOURCE
    assert state.batch_source.name == push.batch_source.name == "variant_daily_features"
    history = objects[VARIANT_HISTORY.name]
    assert history.stream_source is None
    assert history.batch_source.timestamp_field == "event_timestamp"
    assert history.batch_source.created_timestamp_column == "created"


def test_generated_config_follows_the_home(tmp_path: Path) -> None:
    from feast.repo_config import load_repo_config

    repo = write_repo(tmp_path / "home")
    config = load_repo_config(repo.repo_dir, repo.config_path)
    assert config.project == "shopml"
    assert config.provider == "local"
    assert config.online_store.type == "sqlite"
    assert Path(config.online_store.path) == tmp_path / "home" / "features" / "online.db"
    assert config.offline_store.type in ("file", "dask")
    assert Path(config.registry.path) == tmp_path / "home" / "features" / "registry.db"
    assert repo.offline_uri == "../offline/variant_features.parquet"
    assert repo_config_yaml(FeatureRepo(tmp_path / "home")) == repo.config_path.read_text()


def test_cloud_config_is_bigquery_redis_gcs(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": "shop-prod",
        "SHOPML_BQ_DATASET": "shopml",
        "SHOPML_BQ_LOCATION": "EU",
        "SHOPML_FEATURE_BUCKET": "shop-prod-features",
        "SHOPML_REDIS_HOST": "10.0.0.3",
        "SHOPML_REDIS_AUTH": "secret",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    raw = yaml.safe_load(os.path.expandvars(CLOUD_YAML.read_text()))  # what Feast does with it
    assert raw["offline_store"] == {
        "type": "bigquery",
        "project_id": "shop-prod",
        "dataset": "shopml",
        "location": "EU",
    }
    assert raw["registry"]["path"] == "gs://shop-prod-features/feast/registry.db"
    online = raw["online_store"]
    assert online["type"] == "redis"
    assert online["key_ttl_seconds"] == max(v.ttl for v in VIEWS).total_seconds()
    # Everything but the Redis store validates here (redis is not installed in this venv).
    from feast.repo_config import RepoConfig

    config = RepoConfig(repo_path=Path("/tmp"), **{**raw, "online_store": {"type": "sqlite"}})
    assert config.offline_store.type == "bigquery"
    assert definitions.bigquery_source("shop-prod.shopml.variant_features").table == (
        "shop-prod.shopml.variant_features"
    )
