"""A deterministic, messy data set for every table in the schema, and a canonical snapshot.

Deliveries mimic the pipeline: each event writes one row to every table in one ``write_batch``
(same ``shop_domain``, entity id in ``id`` and every INT64 ``*_id`` column, ``webhook_id``);
events are delivered out of order (``updated_at`` drawn at random, some NULL, some tied),
some twice (a redelivery: same rows, later ``received_at``) and one delivery is written twice
exactly (a retried insert). ``received_at`` is unique per delivery, so every latest-state view
that breaks ties on it has one right answer, and both backends must give it.
"""

from __future__ import annotations

import base64
import decimal
import json
import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from shared.warehouse_schema import WarehouseSchema
from tests.samples import sample_row

SHOPS = ("alpha.myshopify.com", "beta.myshopify.com")
BASE = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
_EXACT = decimal.Context(prec=100)


def deliveries(
    schema: WarehouseSchema, tables: Iterable[str], events: int = 24, seed: int = 7
) -> list[dict[str, list[dict[str, Any]]]]:
    rng = random.Random(seed)
    tables = sorted(tables)
    batches = []
    for k in range(events):
        shop = rng.choice(SHOPS)
        entity = rng.randint(1, 3)
        updated = None if rng.random() < 0.15 else BASE + timedelta(minutes=rng.randint(0, 6))
        value_seed = rng.randint(0, 40)
        batch: dict[str, list[dict[str, Any]]] = {}
        for name in tables:
            spec = schema.table(name)
            overrides: dict[str, Any] = {}
            for column in spec.columns:
                if column.repeated:
                    continue
                if column.name == "shop_domain":
                    overrides[column.name] = shop
                elif column.type == "INT64" and (column.name == "id" or column.name.endswith("_id")):
                    overrides[column.name] = entity
                elif column.name == "webhook_id":
                    overrides[column.name] = f"wh-{k:03d}"
                elif column.name == "updated_at" and column.type == "TIMESTAMP":
                    overrides[column.name] = updated if updated is not None or not column.required else BASE
            batch[name] = [sample_row(spec, overrides, seed=value_seed + k)]
        batches.append(batch)
    order = list(range(events)) + [rng.randrange(events) for _ in range(events // 4)]  # redeliveries
    rng.shuffle(order)
    out = []
    for index, k in enumerate(order):
        received = BASE + timedelta(hours=1, seconds=index)
        delivered = {}
        for name, rows in batches[k].items():
            names = schema.table(name).by_name
            stamped = []
            for row in rows:
                row = dict(row)
                if "received_at" in names:
                    row["received_at"] = received
                if "loaded_at" in names:
                    row["loaded_at"] = received + timedelta(seconds=1)
                stamped.append(row)
            delivered[name] = stamped
        out.append(delivered)
    out.append(out[len(out) // 2])  # one delivery written twice exactly (a retried insert)
    return out


def canonical(value: Any) -> Any:
    """A JSON-able, backend-neutral form of a query result value."""
    if isinstance(value, Decimal):
        return "D:" + format(_EXACT.normalize(value), "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return "TS:" + value.astimezone(UTC).isoformat()
        return "DT:" + value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return "B:" + base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    return value


def snapshot(warehouse: Any, views: Iterable[str]) -> dict[str, list[str]]:
    """Every row of every view, canonical and sorted: comparable across backends."""
    out = {}
    for view in sorted(views):
        rows = warehouse.query(f"SELECT * FROM {view}")  # noqa: S608 - names from the schema files
        out[view] = sorted(json.dumps(canonical(row), sort_keys=True) for row in rows)
    return out


def load_and_snapshot(warehouse: Any, schema: WarehouseSchema) -> dict[str, list[str]]:
    """Write the messy data set to every table, then snapshot every view (real and fixtures)."""
    for batch in deliveries(schema, schema.tables):
        warehouse.write_batch(batch)
    return snapshot(warehouse, schema.views)
