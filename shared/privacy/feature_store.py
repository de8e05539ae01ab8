"""Erasing a shop's variants from the feature store (``shop/redact``).

The feature store is keyed by variant (``shared.features.views``: entity ``variant``, join key
``variant_id``) and holds aggregates over all customers, so ``customers/redact`` has nothing to
find there. A shop's variants are the shop's data, though, and ``shop/redact`` erases them:

* **Locally** (Feast's SQLite online store and the parquet offline table under
  ``SHOPML_HOME/features``): ``LocalFeatureStore.erase`` deletes the variants' rows from every
  view's online table and rewrites the offline table without them.
* **In the cloud** the online store is Memorystore for Redis, reached only over the feature
  network by the feature server and the nightly job. ``compliance`` gets no path or secret to
  it: once the shop's warehouse rows are gone, nothing writes its variants again (the nightly
  materialization reads the warehouse; pushes come from new store events, which stop at
  uninstall), and Redis drops each key ``key_ttl_seconds`` (3 days) after its last write, well
  inside the 30 days Shopify allows. The offline source there is a query over the warehouse,
  which holds no copy. docs/DESIGN.md, "Privacy requests".

Online rows are found by Feast's serialized entity key (version 3, ``entity_key_v3``, held
equal to Feast's own ``serialize_entity_key`` by a test), so nothing here imports Feast.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from shared.features.store import FeatureRepo
from shared.features.views import JOIN_KEY, PROJECT, VIEWS

_STRING, _INT64 = 2, 4  # feast.types.Value ValueType enum numbers


class FeatureStoreEraser(Protocol):
    """Removes variants from the feature store; returns how many online entities it removed."""

    def erase(self, variant_ids: Sequence[int]) -> int: ...


def entity_key_v3(variant_id: int, join_key: str = JOIN_KEY) -> bytes:
    """Feast's ``serialize_entity_key`` (entity_key_serialization_version 3) of one INT64 key:
    key count, then (type, length, name) per key, then (type, length, value) per value, all
    little-endian."""
    name = join_key.encode("utf-8")
    return (
        struct.pack("<I", 1)
        + struct.pack("<II", _STRING, len(name))
        + name
        + struct.pack("<II", _INT64, 8)
        + struct.pack("<q", variant_id)
    )


class LocalFeatureStore:
    """``FeatureStoreEraser`` on the local Feast store of one ``SHOPML_HOME``."""

    def __init__(self, home: Path, *, timeout_seconds: float = 10.0) -> None:
        self.repo = FeatureRepo(Path(home))
        self.timeout_seconds = timeout_seconds

    def erase(self, variant_ids: Sequence[int]) -> int:
        ids = sorted(set(variant_ids))
        if not ids:
            return 0
        removed = self._erase_online(ids)
        self._erase_offline(ids)
        return removed

    def _erase_online(self, ids: list[int]) -> int:
        path = self.repo.online_path
        if not path.is_file():
            return 0
        keys = [entity_key_v3(i) for i in ids]
        found: set[bytes] = set()
        # The feature server may hold the file: SQLite's own locking, waited on up to the timeout.
        with sqlite3.connect(path, timeout=self.timeout_seconds) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for view in VIEWS:
                table = f"{PROJECT}_{view.name}"
                if table not in tables:
                    continue
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    found.update(
                        row[0]
                        for row in conn.execute(
                            f'SELECT DISTINCT entity_key FROM "{table}" WHERE entity_key IN ({marks})',  # noqa: S608
                            chunk,
                        )
                    )
                    conn.execute(f'DELETE FROM "{table}" WHERE entity_key IN ({marks})', chunk)  # noqa: S608
        return len(found)

    def _erase_offline(self, ids: list[int]) -> None:
        path = self.repo.offline_path
        if not path.is_file():
            return
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        keep = pc.invert(
            pc.is_in(table[JOIN_KEY], value_set=pa.array(ids, type=table.schema.field(JOIN_KEY).type))
        )
        kept = table.filter(keep)
        if kept.num_rows == table.num_rows:
            return
        tmp = path.with_suffix(".privacy.tmp")
        pq.write_table(kept, tmp)
        tmp.replace(path)
