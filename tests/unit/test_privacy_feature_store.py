"""shop/redact reaches the local feature store: the shop's variants leave Feast's SQLite online
store and the parquet offline table; the entity key is Feast's own serialization."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.object_stores import LocalObjectStore
from shared.features.store import FeatureRepo
from shared.features.views import PROJECT, VIEWS
from shared.privacy.feature_store import LocalFeatureStore, entity_key_v3
from shared.privacy.redaction import shop_variant_ids
from shared.privacy.service import PrivacyDeps, handle_request
from tests.privacy_support import KEY, NOW, OTHER_SHOP, SHOP, load_history, shop_redact

# The online table of Feast's SQLite store, as feast/infra/online_stores/sqlite.py creates it.
FEAST_DDL = (
    'CREATE TABLE IF NOT EXISTS "{table}" (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT, '
    "vector_value BLOB, event_ts timestamp, created_ts timestamp, PRIMARY KEY(entity_key, feature_name))"
)


@pytest.mark.parametrize("variant_id", [1, 5, 642667041472713922, 2**63 - 1])
def test_entity_key_is_feasts_serialization_v3(variant_id: int) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    expected = serialize_entity_key(
        EntityKey(join_keys=["variant_id"], entity_values=[Value(int64_val=variant_id)]),
        entity_key_serialization_version=3,
    )
    assert entity_key_v3(variant_id) == expected


def _seed_store(home: Path, variant_ids: list[int]) -> FeatureRepo:
    repo = FeatureRepo(home)
    repo.offline_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(repo.online_path) as conn:
        for view in VIEWS:
            table = f"{PROJECT}_{view.name}"
            conn.execute(FEAST_DDL.format(table=table))
            for variant_id in variant_ids:
                for feature in view.features:
                    conn.execute(
                        f'INSERT INTO "{table}" (entity_key, feature_name, value) VALUES (?, ?, ?)',  # noqa: S608
                        (entity_key_v3(variant_id), feature, b"\x01"),
                    )
    day = datetime(2025, 3, 1, tzinfo=UTC)
    pq.write_table(
        pa.table(
            {
                "variant_id": pa.array([v for v in variant_ids for _ in range(2)], pa.int64()),
                "event_timestamp": [day + timedelta(days=i % 2) for i in range(2 * len(variant_ids))],
            }
        ),
        repo.offline_path,
    )
    return repo


def _online_ids(repo: FeatureRepo, variant_ids: list[int]) -> set[int]:
    keys: set[bytes] = set()
    with sqlite3.connect(repo.online_path) as conn:
        for view in VIEWS:
            sql = f'SELECT entity_key FROM "{PROJECT}_{view.name}"'  # noqa: S608 - names from views.py
            keys.update(row[0] for row in conn.execute(sql))
    return {v for v in variant_ids if entity_key_v3(v) in keys}


def test_shop_redact_erases_the_shops_variants_from_the_local_feature_store(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    load_history(warehouse, shops=(SHOP,))
    ours = shop_variant_ids(warehouse, SHOP)
    assert ours
    theirs = [11, 12]  # another shop's variants
    repo = _seed_store(tmp_path / "home", ours + theirs)
    deps = PrivacyDeps(
        warehouse,
        LocalObjectStore(tmp_path / "exports"),
        KEY.encode(),
        feature_store=LocalFeatureStore(tmp_path / "home"),
        now=lambda: NOW,
    )
    outcome = handle_request(shop_redact(), deps)
    assert outcome.touched["online_store"] == len(ours)
    assert _online_ids(repo, ours + theirs) == set(theirs)
    assert sorted(set(pq.read_table(repo.offline_path)["variant_id"].to_pylist())) == theirs
    # A second shop/redact (another webhook) finds nothing left.
    again = handle_request(shop_redact(webhook_id="wh-shop-redact-2"), deps)
    assert again.touched["online_store"] == 0
    assert OTHER_SHOP not in outcome.touched
