"""Wiring: the one place that builds adapters from settings.

Entry points ask here for what they need; everything is built lazily on first use (never at
import, so emulator variables set later are honoured and cold start stays short). Tests call
``override(...)`` to pass other adapters in, instead of patching internals.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from shared.errors import ConfigurationError
from shared.ports import EventPublisher, LivePointerStore, ModelRegistry, TrainingBackend, Warehouse
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from shared.ingest import AsyncEventPublisher
    from shared.warehouse_schema import WarehouseSchema

_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_built: dict[str, Any] = {}


def override(**parts: Any) -> None:
    """Replace parts (``settings=``, ``publisher=``, ``async_publisher=``, ``warehouse=``,
    ``registry=``, ``training_backend=``, ``live_pointer=``) for this process; ``reset()`` undoes it."""
    with _lock:
        _overrides.update(parts)
        _built.clear()


def reset() -> None:
    with _lock:
        _overrides.clear()
        _built.clear()


def settings() -> Settings:
    found = _overrides.get("settings")
    return found if found is not None else get_settings()


def publisher() -> EventPublisher:
    if "publisher" in _overrides:
        return _overrides["publisher"]
    with _lock:
        if "publisher" not in _built:
            current = settings()
            if current.publisher == "client":
                from shared.adapters.pubsub import PubSubPublisher

                _built["publisher"] = PubSubPublisher(current)
            else:
                from shared.adapters.pubsub_group_commit import GroupCommitPublisher

                _built["publisher"] = GroupCommitPublisher(current)
        return _built["publisher"]


def async_publisher() -> AsyncEventPublisher:
    """The publisher of async entry points (``ingest_webhook``), built once.

    Pub/Sub over ``grpc.aio`` with group commit (one channel per event loop, on its first
    publish). A blocking publisher runs in a thread instead where one was chosen: a
    ``publisher=`` override (tests, the demo) or ``SHOPML_PUBLISHER=client``.
    ``override(async_publisher=...)`` passes an async one in."""
    if "async_publisher" in _overrides:
        return _overrides["async_publisher"]
    built = _built.get("async_publisher")  # the request path: no lock once built
    if built is not None:
        return built
    blocking = publisher() if "publisher" in _overrides or settings().publisher == "client" else None
    with _lock:
        if "async_publisher" not in _built:
            from shared.adapters import pubsub_aio

            if blocking is not None:
                _built["async_publisher"] = pubsub_aio.ThreadedPublisher(blocking)
            else:
                _built["async_publisher"] = pubsub_aio.AsyncGroupCommitPublisher(settings())
        return _built["async_publisher"]


def warehouse() -> Warehouse:
    if "warehouse" in _overrides:
        return _overrides["warehouse"]
    with _lock:
        if "warehouse" not in _built:
            _built["warehouse"] = create_warehouse(settings())
        return _built["warehouse"]


# -- the warehouse factory: SHOPML_WAREHOUSE URLs ----------------------------------------------


@dataclass(frozen=True)
class WarehouseTarget:
    """A parsed ``SHOPML_WAREHOUSE`` URL."""

    backend: str  # "duckdb" or "bigquery"
    path: str = ""  # duckdb: absolute file path or ":memory:"
    project: str = ""  # bigquery
    dataset: str = ""  # bigquery
    options: Mapping[str, str] = field(default_factory=dict)


_DUCKDB_OPTIONS = {"idle_close_ms", "lock_timeout_s", "ensure_schema", "max_batch_events"}
_BIGQUERY_OPTIONS = {"location", "create_dataset", "endpoint", "ensure_schema", "timeout_s"}
_HELP = "use duckdb:///abs/path.duckdb, duckdb:///:memory: or bigquery://project/dataset"


def parse_warehouse_url(url: str) -> WarehouseTarget:
    """Parse ``duckdb:///abs/path.duckdb``, ``duckdb:///:memory:`` or ``bigquery://project/dataset``.

    Options go in the query string: DuckDB ``idle_close_ms``, ``lock_timeout_s``,
    ``max_batch_events``, ``ensure_schema``; BigQuery ``location``, ``create_dataset``,
    ``endpoint``, ``ensure_schema``, ``timeout_s``.
    """
    if not url:
        raise ConfigurationError(f"SHOPML_WAREHOUSE is empty: {_HELP}")
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if parts.scheme == "duckdb":
        if parts.netloc:
            raise ConfigurationError(
                f"SHOPML_WAREHOUSE={url!r}: a DuckDB path must be absolute (three slashes: duckdb:///abs/path.duckdb)"
            )
        path = parts.path
        if path == "/:memory:":
            path = ":memory:"
        elif not path.startswith("/") or path.endswith("/"):
            raise ConfigurationError(f"SHOPML_WAREHOUSE={url!r}: {_HELP}")
        unknown = set(options) - _DUCKDB_OPTIONS
        if unknown:
            raise ConfigurationError(f"SHOPML_WAREHOUSE: unknown DuckDB option(s) {sorted(unknown)}")
        return WarehouseTarget("duckdb", path=path, options=options)
    if parts.scheme == "bigquery":
        project = parts.netloc
        dataset = parts.path.strip("/")
        if not re.fullmatch(
            r"[a-z][a-z0-9.:-]{4,62}[a-z0-9]|[a-z][a-z0-9-]*", project or ""
        ) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,1023}", dataset):
            raise ConfigurationError(f"SHOPML_WAREHOUSE={url!r}: {_HELP} (project id, then dataset id)")
        unknown = set(options) - _BIGQUERY_OPTIONS
        if unknown:
            raise ConfigurationError(f"SHOPML_WAREHOUSE: unknown BigQuery option(s) {sorted(unknown)}")
        return WarehouseTarget("bigquery", project=project, dataset=dataset, options=options)
    raise ConfigurationError(f"SHOPML_WAREHOUSE={url!r}: unknown scheme {parts.scheme!r}; {_HELP}")


def _flag(options: Mapping[str, str], name: str, default: bool) -> bool:
    raw = options.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"SHOPML_WAREHOUSE option {name}={raw!r}: use true or false")


def _number(options: Mapping[str, str], name: str, default: float) -> float:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"SHOPML_WAREHOUSE option {name}={raw!r} is not a number") from None
    if value < 0:
        raise ConfigurationError(f"SHOPML_WAREHOUSE option {name}={raw!r} must not be negative")
    return value


def close_warehouse(warehouse: Warehouse) -> None:
    """Let go of a warehouse now where the backend holds something (DuckDB: the file lock,
    which another process of the stack is waiting for); a no-op for the others."""
    close = getattr(warehouse, "close", None)
    if close is not None:
        close()


def create_warehouse(settings: Settings, schema: WarehouseSchema | None = None) -> Warehouse:
    """The ``Warehouse`` named by ``settings.warehouse_url``; its module is imported only now.

    ``schema`` defaults to the repository's table and view files. For BigQuery the API endpoint
    can be overridden (the emulator) with the URL option ``endpoint=``, else
    ``settings.bigquery_endpoint`` (``SHOPML_BIGQUERY_ENDPOINT``).
    """
    from shared.warehouse_schema import load_schema

    target = parse_warehouse_url(settings.warehouse_url)
    schema = schema if schema is not None else load_schema()
    if target.backend == "duckdb":
        from shared.adapters.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(
            target.path,
            schema,
            idle_close_seconds=_number(target.options, "idle_close_ms", 250) / 1000,
            lock_timeout_seconds=_number(target.options, "lock_timeout_s", 5.0),
            max_batch_events=int(_number(target.options, "max_batch_events", 64)) or 1,
            auto_ensure_schema=_flag(target.options, "ensure_schema", True),
        )
    from shared.adapters.bigquery_warehouse import BigQueryWarehouse

    return BigQueryWarehouse(
        target.project,
        target.dataset,
        schema,
        location=target.options.get("location") or None,
        create_dataset=_flag(target.options, "create_dataset", False),
        endpoint=target.options.get("endpoint") or settings.bigquery_endpoint or None,
        auto_ensure_schema=_flag(target.options, "ensure_schema", True),
        timeout_seconds=_number(target.options, "timeout_s", 30.0),
    )


def build_registry(current: Settings) -> ModelRegistry:
    """A new registry for ``SHOPML_REGISTRY`` (file://, gs:// or vertex://); uncached."""
    if current.registry_url.startswith("vertex://"):
        from shared.adapters.vertex_registry import create_vertex_registry

        return create_vertex_registry(
            current.registry_url, current.vertex_staging_bucket, current.trainer_image
        )
    from shared.adapters.object_store_registry import ObjectStoreRegistry
    from shared.adapters.object_stores import create_object_store

    return ObjectStoreRegistry(create_object_store(current.registry_url, project=current.project))


def build_training_backend(current: Settings) -> TrainingBackend:
    """A new training backend for ``SHOPML_TRAINING_BACKEND`` (local or vertex); uncached."""
    from shared.adapters import training_backends

    if current.training_backend == "vertex":
        return training_backends.VertexTrainingBackend(current)
    return training_backends.LocalProcessBackend(current)


def registry() -> ModelRegistry:
    """The model registry named by ``SHOPML_REGISTRY``, built once."""
    if "registry" in _overrides:
        return _overrides["registry"]
    with _lock:
        if "registry" not in _built:
            _built["registry"] = build_registry(settings())
        return _built["registry"]


def training_backend() -> TrainingBackend:
    """Where the trainer runs (``SHOPML_TRAINING_BACKEND``: a local process or Vertex AI), built once."""
    if "training_backend" in _overrides:
        return _overrides["training_backend"]
    with _lock:
        if "training_backend" not in _built:
            _built["training_backend"] = build_training_backend(settings())
        return _built["training_backend"]


def build_live_pointer(current: Settings) -> LivePointerStore:
    """A new live-pointer store: Firestore, always (the emulator when ``FIRESTORE_EMULATOR_HOST``
    is set, as the local stack does; else the project's database). There is no in-memory
    choice in settings: a pointer only one process sees cannot coordinate functions."""
    from shared.adapters.firestore_pointer import FirestorePointerStore

    return FirestorePointerStore(
        current.project,
        database=current.firestore_database,
        collection=current.pointer_collection,
        emulator_host=current.firestore_emulator_host,
    )


def live_pointer() -> LivePointerStore:
    """The live pointers (``shared.serving.pointer``), built once on first use."""
    if "live_pointer" in _overrides:
        return _overrides["live_pointer"]
    with _lock:
        if "live_pointer" not in _built:
            _built["live_pointer"] = build_live_pointer(settings())
        return _built["live_pointer"]
