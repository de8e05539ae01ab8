"""BigQuery warehouse: the cloud backend, with the real ``google-cloud-bigquery`` client.

Same contract as ``DuckDBWarehouse`` (``shared.ports.Warehouse``); where it differs:

* ``write_batch`` is one ``insertAll`` per table, not one transaction. Every row of every
  table is checked by ``conform_rows`` before the first insert, so a row that does not fit
  fails the whole call before anything is written (as on DuckDB); but a transient failure
  after the first table's insert leaves that table written. The caller retries (Pub/Sub
  redelivers) with the same row ids, which BigQuery uses to drop the repeats (best effort,
  about a minute), and the latest-state views de-duplicate whatever gets through.
* Rows are streamed with ``insert_rows_json`` and explicit ``row_ids`` rather than the Storage
  Write API: it is the simplest path (one HTTPS call per table, no stream or protobuf
  descriptors to manage), retries within about a minute are idempotent through the row ids,
  an event is a handful of rows (far below the streaming quotas and the point where the
  Write API's lower price matters), and the views must de-duplicate anyway (delivery is
  at-least-once, and row-id de-duplication is best effort).
* ``ensure_schema`` creates the dataset (when ``create_dataset``), missing tables with their
  partitioning (field, type, expiration) and clustering, adds columns missing from existing
  tables (additive only: a changed type or partitioning needs a migration), and (re)creates
  the views with their table names qualified ``project.dataset.table``. Terraform creates the
  same tables from the same files; running both is harmless. Views carry a label with a hash
  of their SQL, so an unchanged view costs nothing.
* ``query`` runs BigQuery SQL as is, ``@name`` parameters typed from the Python values, with
  the dataset as the default dataset (bare table names work, as on DuckDB).

Errors: unavailable / internal / 429 / rate-limited 403 / deadline / connection errors →
``TransientError``; rows the API calls invalid → ``RowDoesNotFit`` naming row and field; a
query BigQuery rejects → ``PermanentError``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from shared.errors import (
    ConfigurationError,
    PermanentError,
    ShopmlError,
    StreamingBufferBusy,
    TransientError,
)
from shared.sql_dialect import qualify_for_bigquery, views_in_dependency_order
from shared.warehouse_schema import (
    Column,
    RowDoesNotFit,
    TableSpec,
    WarehouseSchema,
    check_row_ids,
    conform_rows,
    load_schema,
)

log = logging.getLogger(__name__)

_SQL_LABEL = "shopml_sql_sha"
_TRANSIENT_REASONS = {
    "rateLimitExceeded",
    "quotaExceeded",
    "backendError",
    "internalError",
    "timeout",
    "badGateway",
}


def _bigquery() -> Any:
    try:
        from google.cloud import bigquery
    except ImportError as exc:  # pragma: no cover - the requirements pin it
        raise ConfigurationError(
            "the BigQuery warehouse needs the 'google-cloud-bigquery' package "
            "(pip install google-cloud-bigquery)"
        ) from exc
    return bigquery


# --------------------------------------------------------------------------------------------
# Values: conformed Python values → BigQuery's JSON representation, and query parameters
# --------------------------------------------------------------------------------------------


def json_safe_float(value: float) -> float | str:
    """BigQuery's JSON API spells non-finite floats as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _json_value(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.repeated:
        single = Column(column.name, column.type, "NULLABLE", column.fields)
        return [_json_value(single, v) for v in value]
    t = column.type
    if t == "RECORD":
        return {f.name: _json_value(f, value.get(f.name)) for f in column.fields}
    if t in ("NUMERIC", "BIGNUMERIC"):
        return format(value, "f")
    if t == "TIMESTAMP":
        return value.astimezone(UTC).isoformat()  # RFC 3339 with +00:00
    if t in ("DATETIME", "DATE", "TIME"):
        return value.isoformat()
    if t == "BYTES":
        return base64.b64encode(value).decode("ascii")
    if t == "FLOAT64":
        return json_safe_float(value)
    return value  # STRING, INT64, BOOL, JSON (already its text)


def to_json_rows(table: TableSpec, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Conformed rows as ``insert_rows_json`` wants them (NULL columns left out)."""
    columns = table.columns
    out = []
    for row in rows:
        converted = {}
        for column in columns:
            value = row.get(column.name)
            if value is not None:
                converted[column.name] = _json_value(column, value)
        out.append(converted)
    return out


def _scalar_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        return "NUMERIC"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, (bytes, bytearray)):
        return "BYTES"
    if isinstance(value, datetime):
        return "TIMESTAMP" if value.tzinfo is not None else "DATETIME"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, time):
        return "TIME"
    raise PermanentError(f"query parameter of type {type(value).__name__} is not supported")


def query_parameter(name: str, value: Any) -> Any:
    """A typed BigQuery query parameter from a Python value.

    int → INT64, str → STRING, float → FLOAT64, Decimal → NUMERIC, bool → BOOL, aware datetime →
    TIMESTAMP (naive → DATETIME), date → DATE, time → TIME, bytes → BYTES, list/tuple → ARRAY of
    the elements' type, dict → STRUCT. ``None`` (and an empty list) are typed STRING: cast in
    SQL when another type is meant, e.g. ``CAST(@x AS INT64)``.
    """
    bigquery = _bigquery()
    if isinstance(value, Mapping):
        return bigquery.StructQueryParameter(name, *(query_parameter(k, v) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        present = [v for v in value if v is not None]
        kinds = {_scalar_type(v) for v in present}
        if len(kinds) > 1:
            if kinds <= {"INT64", "FLOAT64"}:
                kinds = {"FLOAT64"}
            else:
                raise PermanentError(
                    f"query parameter {name!r}: array elements of mixed types {sorted(kinds)}"
                )
        kind = kinds.pop() if kinds else "STRING"
        if kind == "TIMESTAMP":
            value = [v.astimezone(UTC) if v is not None else None for v in value]
        return bigquery.ArrayQueryParameter(name, kind, list(value))
    if value is None:
        return bigquery.ScalarQueryParameter(name, "STRING", None)
    kind = _scalar_type(value)
    if kind == "TIMESTAMP":
        value = value.astimezone(UTC)
    return bigquery.ScalarQueryParameter(name, kind, value)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _reasons(exc: BaseException) -> set[str]:
    errors = getattr(exc, "errors", None) or []
    return {e.get("reason", "") for e in errors if isinstance(e, Mapping)}


def map_api_error(exc: BaseException, action: str) -> ShopmlError:
    """``TransientError`` when retrying may help, else ``PermanentError`` (``ConfigurationError``
    for permissions)."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, ShopmlError):
        return exc
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        mapped = map_api_error(exc.cause, action)
        return type(mapped)(f"{mapped} (gave up retrying)")
    transient_types: tuple[type[BaseException], ...] = (
        gexc.ServiceUnavailable,
        gexc.InternalServerError,
        gexc.BadGateway,
        gexc.GatewayTimeout,
        gexc.TooManyRequests,
        gexc.DeadlineExceeded,
        gexc.RetryError,
        ConnectionError,
        TimeoutError,
    )
    try:
        import requests

        transient_types += (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    except ImportError:  # pragma: no cover
        pass
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, transient_types):
        return TransientError(f"BigQuery {action}: {message}")
    if isinstance(exc, gexc.Forbidden):
        if _reasons(exc) & {"rateLimitExceeded", "quotaExceeded"}:
            return TransientError(f"BigQuery {action}: {message}")
        return ConfigurationError(f"BigQuery {action}: permission denied: {message}")
    if isinstance(exc, gexc.Unauthorized):
        return ConfigurationError(f"BigQuery {action}: not authenticated: {message}")
    if isinstance(exc, gexc.GoogleAPICallError) and _reasons(exc) & _TRANSIENT_REASONS:
        return TransientError(f"BigQuery {action}: {message}")
    return PermanentError(f"BigQuery {action}: {message}")


_STREAMING_BUFFER = "streaming buffer"


def map_dml_error(exc: BaseException) -> ShopmlError:
    """``map_api_error`` for UPDATE / DELETE jobs, plus the streaming buffer.

    BigQuery refuses a DML statement that would touch rows still in the streaming buffer
    (``insertAll`` rows, for up to about 30 minutes, sometimes longer) with a 400 ``invalidQuery``
    "UPDATE or DELETE statement over table ... would affect rows in the streaming buffer, which
    is not supported". Nothing was changed and the same statement succeeds later, so it is a
    ``StreamingBufferBusy`` (transient), not a permanent query error."""
    if isinstance(exc, ShopmlError):
        return exc
    if _STREAMING_BUFFER in str(exc).lower():
        first = str(exc).splitlines()[0]
        return StreamingBufferBusy(f"BigQuery DML: rows are still in the streaming buffer: {first}")
    return map_api_error(exc, "DML")


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


class BigQueryWarehouse:
    """``Warehouse`` on one BigQuery dataset (``bigquery://project/dataset``).

    The client is created on first use (``client=`` injects one, e.g. in tests); ``endpoint``
    points it at an emulator (anonymous credentials then). ``ensure_schema()`` runs lazily
    before the first use in this process unless ``auto_ensure_schema=False``; it costs one
    ``tables.list`` call when nothing changed.
    """

    def __init__(
        self,
        project: str,
        dataset: str,
        schema: WarehouseSchema | None = None,
        *,
        client: Any = None,
        location: str | None = None,
        create_dataset: bool = False,
        endpoint: str | None = None,
        auto_ensure_schema: bool = True,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.project = project
        self.dataset = dataset
        self.schema = schema if schema is not None else load_schema()
        self.location = location
        self.create_dataset = create_dataset
        self.endpoint = endpoint
        self.auto_ensure_schema = auto_ensure_schema
        self.timeout_seconds = timeout_seconds
        self._client = client
        self._lock = threading.RLock()  # _ready() holds it while ensure builds the client
        self._ensured = False

    def __repr__(self) -> str:
        return f"BigQueryWarehouse({self.project!r}, {self.dataset!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    bigquery = _bigquery()
                    if self.endpoint:
                        from google.api_core.client_options import ClientOptions
                        from google.auth.credentials import AnonymousCredentials

                        self._client = bigquery.Client(
                            project=self.project,
                            credentials=AnonymousCredentials(),
                            client_options=ClientOptions(api_endpoint=self.endpoint),
                            location=self.location,
                        )
                    else:
                        self._client = bigquery.Client(project=self.project, location=self.location)
        return self._client

    def table_id(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    def _retry(self) -> Any:
        from google.cloud.bigquery.retry import DEFAULT_RETRY

        # The client's default keeps retrying for 10 minutes; a function has far less.
        return DEFAULT_RETRY.with_deadline(self.timeout_seconds).with_timeout(self.timeout_seconds)

    # -- the port -----------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create what is missing; add missing columns; (re)create views whose SQL changed."""
        self._ensure_checked(full=True)

    def _ensure_checked(self, full: bool) -> None:
        try:
            self._ensure(full)
        except ShopmlError:
            raise
        except Exception as exc:
            raise map_api_error(exc, f"ensure_schema on {self.project}.{self.dataset}") from exc
        self._ensured = True

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str] | None = None
    ) -> None:
        """Stream rows into one table (``insertAll``); ``row_ids`` let BigQuery drop repeats."""
        check_row_ids(table, rows, row_ids)
        spec = self.schema.table(table)
        json_rows = to_json_rows(spec, conform_rows(spec, rows))
        if json_rows:
            self._ready()
            self._insert(spec, json_rows, row_ids)

    def write_batch(
        self,
        rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]],
        row_ids_by_table: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """One ``insertAll`` per table, after every row of every table passed ``conform_rows``
        (so a bad row writes nothing). Not atomic across tables on a transient failure: see the
        module docstring."""
        row_ids_by_table = row_ids_by_table or {}
        prepared = []
        for table, rows in rows_by_table.items():
            ids = row_ids_by_table.get(table)
            check_row_ids(table, rows, ids)
            if rows:
                spec = self.schema.table(table)
                prepared.append((spec, to_json_rows(spec, conform_rows(spec, rows)), ids))
        if not prepared:
            return
        self._ready()
        for spec, json_rows, ids in prepared:
            self._insert(spec, json_rows, ids)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one statement; ``@name`` parameters typed from the Python values."""
        bigquery = _bigquery()
        self._ready()
        config = bigquery.QueryJobConfig(
            query_parameters=[query_parameter(name, value) for name, value in (params or {}).items()],
            default_dataset=bigquery.DatasetReference(self.project, self.dataset),
        )
        try:
            # client.query + result (jobs.insert) rather than query_and_wait (jobs.query): the
            # emulator ignores the default dataset on jobs.query, and these are batch queries.
            job = self.client.query(sql, job_config=config, retry=self._retry(), timeout=self.timeout_seconds)
            rows = job.result(timeout=self.timeout_seconds * 4)
            return [dict(row.items()) for row in rows]
        except Exception as exc:
            raise map_api_error(exc, "query") from exc

    def delete_rows(self, table: str, where: str, params: Mapping[str, Any] | None = None) -> int:
        """Delete the rows of ``table`` matching ``where`` (a DML job); returns how many.

        Raises ``StreamingBufferBusy`` while a row it would delete is still in the streaming
        buffer (see ``map_dml_error``): nothing is deleted then, retry later."""
        from shared.warehouse_dml import delete_statement

        return self._dml(delete_statement(self.schema.table(table), where), params)

    def update_rows(
        self,
        table: str,
        values: Mapping[str, Any],
        where: str,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Set top-level columns of the rows matching ``where`` (a DML job); how many matched.
        ``StreamingBufferBusy`` as for ``delete_rows``."""
        from shared.warehouse_dml import update_statement

        sql, bound = update_statement(self.schema.table(table), values, where, params)
        return self._dml(sql, bound)

    def _dml(self, sql: str, params: Mapping[str, Any] | None) -> int:
        bigquery = _bigquery()
        self._ready()
        config = bigquery.QueryJobConfig(
            query_parameters=[query_parameter(name, value) for name, value in (params or {}).items()],
            default_dataset=bigquery.DatasetReference(self.project, self.dataset),
        )
        try:
            job = self.client.query(sql, job_config=config, retry=self._retry(), timeout=self.timeout_seconds)
            job.result(timeout=self.timeout_seconds * 4)
        except Exception as exc:
            raise map_dml_error(exc) from exc
        return int(job.num_dml_affected_rows or 0)

    def query_frame(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """``query`` for large results, as a pandas DataFrame (through Arrow: no Python rows).

        DATE columns come back as ``datetime64``, TIMESTAMP as UTC ``datetime64``, NUMERIC as
        ``float64`` (cast in SQL if exact cents matter). Needs pyarrow (in the main venv).
        """
        bigquery = _bigquery()
        self._ready()
        config = bigquery.QueryJobConfig(
            query_parameters=[query_parameter(name, value) for name, value in (params or {}).items()],
            default_dataset=bigquery.DatasetReference(self.project, self.dataset),
        )
        try:
            job = self.client.query(sql, job_config=config, retry=self._retry(), timeout=self.timeout_seconds)
            table = job.result(timeout=self.timeout_seconds * 4).to_arrow(create_bqstorage_client=False)
        except Exception as exc:
            raise map_api_error(exc, "query") from exc
        import pyarrow as pa

        columns = []
        for field_ in table.schema:
            column = table.column(field_.name)
            if pa.types.is_decimal(field_.type):
                column = column.cast(pa.float64())
            elif pa.types.is_date(field_.type):
                column = column.cast(pa.timestamp("us"))
            columns.append(column)
        return pa.table(columns, names=table.column_names).to_pandas()

    # -- internals ----------------------------------------------------------------------

    def _ready(self) -> None:
        if self.auto_ensure_schema and not self._ensured:
            with self._lock:
                if not self._ensured:
                    # The lazy path (every cold start): one tables.list when nothing changed;
                    # columns added to existing tables come from Terraform or ensure_schema().
                    self._ensure_checked(full=False)

    def _insert(
        self, spec: TableSpec, json_rows: list[dict[str, Any]], row_ids: Sequence[str] | None
    ) -> None:
        from google.cloud.bigquery import AutoRowIDs

        try:
            errors = self.client.insert_rows_json(
                self.table_id(spec.name),
                json_rows,
                row_ids=list(row_ids) if row_ids is not None else AutoRowIDs.GENERATE_UUID,
                retry=self._retry(),
                timeout=self.timeout_seconds,
            )
        except Exception as exc:
            from google.api_core import exceptions as gexc

            if isinstance(exc, gexc.NotFound):
                # Also seen for a short while after a table is created: retry, then dead-letter.
                raise TransientError(
                    f"BigQuery table {self.table_id(spec.name)} not found: "
                    f"run ensure_schema() or terraform apply ({exc})"
                ) from exc
            raise map_api_error(exc, f"insert into {spec.name}") from exc
        if errors:
            raise self._row_errors(spec, errors)

    def _row_errors(self, spec: TableSpec, errors: Sequence[Mapping[str, Any]]) -> ShopmlError:
        """Per-row ``insertAll`` errors: "invalid" rows are permanent; "stopped" rows are the
        valid ones BigQuery did not write because another row was invalid."""
        for entry in errors:
            for error in entry.get("errors", []):
                if error.get("reason") == "invalid":
                    return RowDoesNotFit(
                        spec.name,
                        entry.get("index"),
                        error.get("location") or None,
                        f"BigQuery refused the row: {error.get('message', 'invalid')}",
                    )
        reasons = {e.get("reason") for entry in errors for e in entry.get("errors", [])}
        if reasons & _TRANSIENT_REASONS or not reasons - {"stopped"}:
            return TransientError(f"BigQuery insert into {spec.name}: {sorted(r for r in reasons if r)}")
        return PermanentError(f"BigQuery insert into {spec.name} failed: {list(errors)[:3]}")

    def _ensure(self, full: bool) -> None:
        bigquery = _bigquery()
        from google.api_core import exceptions as gexc

        client = self.client
        dataset_ref = bigquery.DatasetReference(self.project, self.dataset)
        if self.create_dataset:
            dataset = bigquery.Dataset(dataset_ref)
            if self.location:
                dataset.location = self.location
            client.create_dataset(dataset, exists_ok=True, retry=self._retry(), timeout=self.timeout_seconds)
        try:
            existing = {
                item.table_id: item
                for item in client.list_tables(dataset_ref, retry=self._retry(), timeout=self.timeout_seconds)
            }
        except gexc.NotFound as exc:
            raise ConfigurationError(
                f"BigQuery dataset {self.project}.{self.dataset} does not exist: terraform apply, "
                "or use the URL option create_dataset=true"
            ) from exc
        for spec in self.schema.tables.values():
            item = existing.get(spec.name)
            if item is None:
                self._create_table(spec)
            elif item.table_type == "VIEW":
                raise ConfigurationError(f"BigQuery {self.table_id(spec.name)} is a view, not a table")
            elif full:
                self._add_missing_columns(spec)
        for view in views_in_dependency_order(self.schema):
            sql = qualify_for_bigquery(view.sql, self.project, self.dataset)
            digest = hashlib.sha256(sql.encode()).hexdigest()[:32]
            item = existing.get(view.name)
            if item is not None and item.table_type != "VIEW":
                raise ConfigurationError(f"BigQuery {self.table_id(view.name)} is a table, not a view")
            if item is not None and (item.labels or {}).get(_SQL_LABEL) == digest:
                continue
            table = bigquery.Table(self.table_id(view.name))
            table.view_query = sql
            table.labels = {_SQL_LABEL: digest}
            table.description = f"shopml view from shared/sql/views/{view.name}.sql"
            try:
                if item is None:
                    try:
                        client.create_table(table, retry=self._retry(), timeout=self.timeout_seconds)
                        continue
                    except gexc.Conflict:
                        pass  # created meanwhile by another instance: update it below
                client.update_table(table, ["view_query", "labels", "description"], retry=self._retry())
            except gexc.BadRequest as exc:
                raise ConfigurationError(
                    f"{view.source or view.name}: BigQuery rejects view {view.name}: {exc}"
                ) from exc

    def _create_table(self, spec: TableSpec) -> None:
        bigquery = _bigquery()
        from google.api_core import exceptions as gexc

        table = bigquery.Table(
            self.table_id(spec.name),
            schema=[bigquery.SchemaField.from_api_repr(dict(field)) for field in spec.api_schema],
        )
        table.description = spec.description or None
        if spec.partition_type:
            expiration = spec.partition_expiration_days
            table.time_partitioning = bigquery.TimePartitioning(
                type_=spec.partition_type,
                field=spec.partition_field,
                expiration_ms=int(expiration * 86_400_000) if expiration is not None else None,
            )
            if spec.require_partition_filter:
                table.require_partition_filter = True
        if spec.clustering:
            table.clustering_fields = list(spec.clustering)
        with contextlib.suppress(gexc.Conflict):  # another instance created it meanwhile
            self.client.create_table(table, retry=self._retry(), timeout=self.timeout_seconds)

    def _add_missing_columns(self, spec: TableSpec) -> None:
        bigquery = _bigquery()
        table = self.client.get_table(
            self.table_id(spec.name), retry=self._retry(), timeout=self.timeout_seconds
        )
        have = {field.name.lower() for field in table.schema}
        missing = [dict(f) for f in spec.api_schema if str(f["name"]).lower() not in have]
        if not missing:
            return
        for field in missing:
            if str(field.get("mode", "NULLABLE")).upper() == "REQUIRED":
                field["mode"] = "NULLABLE"  # BigQuery adds columns NULLABLE only (old rows lack them)
        table.schema = list(table.schema) + [bigquery.SchemaField.from_api_repr(f) for f in missing]
        self.client.update_table(table, ["schema"], retry=self._retry(), timeout=self.timeout_seconds)
        log.info("added columns %s to %s", [f["name"] for f in missing], self.table_id(spec.name))
