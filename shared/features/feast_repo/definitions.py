"""Feast definitions: entity ``variant``, views ``variant_history`` and ``variant_state``.

Batch work only (``shared.features.store``): importing this imports Feast (5–6 s). The names,
features and TTLs come from ``shared.features.views``, which the request-path clients read
without Feast.

* ``variant_history``: lags, rolling statistics, product type and age, materialized nightly.
* ``variant_state``: price, discount, stock on hand; materialized nightly *and* updated in
  between through the push source ``variant_state_push`` (``validate_load`` → feature server
  ``/push``), so a price change or a stock update reaches the online store within seconds.

Both read the same offline table (one row per variant and day, event time the day's 00:00
UTC): a parquet file locally, in the cloud a BigQuery query, the feature SQL itself over the
warehouse's views (``bigquery_query_source``; ``bigquery_source`` reads a table instead). Definitions
are built by a function instead of at import, so the source's location comes from settings
(``SHOPML_HOME`` locally) and ``FeatureStore.apply`` (0.02 s) registers them; the ``feast
apply`` CLI (7.5 s) is not needed.
"""

from __future__ import annotations

from typing import Any

from feast import BigQuerySource, Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_format import ParquetFormat
from feast.data_source import DataSource
from feast.types import Float64, Int64, String

from shared.features.views import (
    CREATED_TIMESTAMP,
    ENTITY,
    EVENT_TIMESTAMP,
    INT64_FEATURES,
    JOIN_KEY,
    PUSH_SOURCE,
    STRING_FEATURES,
    VARIANT_HISTORY,
    VARIANT_STATE,
    View,
)

OFFLINE_SOURCE = "variant_daily_features"

variant = Entity(
    name=ENTITY,
    join_keys=[JOIN_KEY],
    value_type=ValueType.INT64,
    description="A Shopify product variant (ids are unique across shops)",
)


def file_source(path: str) -> FileSource:
    """The local offline table: a parquet file (relative paths resolve against the repo dir)."""
    return FileSource(
        name=OFFLINE_SOURCE,
        path=path,
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description="shopml feature table (shared.features.build), one row per variant and day",
    )


def bigquery_source(table: str) -> BigQuerySource:
    """The cloud offline table, ``project.dataset.table`` with the feature table's columns plus
    ``event_timestamp`` (``TIMESTAMP(date)``) and ``created`` (see feature_store.cloud.yaml)."""
    return BigQuerySource(
        name=OFFLINE_SOURCE,
        table=table,
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description="shopml feature table in BigQuery, one row per variant and day",
    )


def bigquery_query_source(query: str) -> BigQuerySource:
    """The cloud offline table as a BigQuery query (``shared.features.store.cloud_source_query``:
    the feature SQL over the warehouse's views for a window of days). What the nightly job
    registers: Feast runs it inside BigQuery when it materializes, nothing is written to the
    warehouse."""
    return BigQuerySource(
        name=OFFLINE_SOURCE,
        query=query,
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description="shopml feature SQL over the BigQuery warehouse, one row per variant and day",
    )


def _schema(view: View) -> list[Field]:
    def dtype(feature: str) -> Any:
        if feature in STRING_FEATURES:
            return String
        return Int64 if feature in INT64_FEATURES else Float64

    return [Field(name=feature, dtype=dtype(feature)) for feature in view.features]


def feature_objects(batch_source: DataSource) -> list[Any]:
    """Everything ``FeatureStore.apply`` registers, over one offline table."""
    push = PushSource(
        name=PUSH_SOURCE,
        batch_source=batch_source,
        description="price, discount and stock from webhooks (validate_load), online only",
    )
    history = FeatureView(
        name=VARIANT_HISTORY.name,
        entities=[variant],
        ttl=VARIANT_HISTORY.ttl,
        schema=_schema(VARIANT_HISTORY),
        source=batch_source,
        online=True,
        description="demand history known at 00:00 UTC of the day; materialized nightly",
    )
    state = FeatureView(
        name=VARIANT_STATE.name,
        entities=[variant],
        ttl=VARIANT_STATE.ttl,
        schema=_schema(VARIANT_STATE),
        source=push,  # batch_source for materialization, push source for webhooks
        online=True,
        description="price, markdown and stock; materialized nightly, pushed from webhooks",
    )
    return [variant, batch_source, push, history, state]
