"""Ports: the small interfaces pure logic talks to. Adapters implement them per backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shared.serving.pointer import LivePointer


class EventPublisher(Protocol):
    """Publishes one message and returns only once the broker acknowledged it.

    Raises ``shared.errors.PublishFailed`` when the broker did not acknowledge in time.
    ``topic`` is a topology name (``shopify-events``); the adapter resolves prefix and project.
    """

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


class Warehouse(Protocol):
    """The analytical store: BigQuery in the cloud, DuckDB locally, same semantics.

    Tables and views come from ``shared/schemas/tables/*.json`` (BigQuery JSON schema plus
    partitioning/clustering, read by Terraform too) and ``shared/sql/views/*.sql`` (BigQuery
    dialect; translated for DuckDB). Row values are plain Python: ``int``, ``str``, ``bool``,
    ``float``, ``decimal.Decimal`` (NUMERIC), aware UTC ``datetime`` (TIMESTAMP), ``date``,
    ``list`` (REPEATED) and ``dict`` (RECORD); ``None`` for NULL.

    Errors: ``TransientError`` when retrying may help (unavailable, lock held, quota),
    ``PermanentError`` when it cannot (a row that does not fit its table).
    """

    def ensure_schema(self) -> None:
        """Create missing tables and (re)create views. Idempotent, safe to call on every start."""
        ...

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str] | None = None
    ) -> None:
        """Append rows to one table. ``row_ids`` lets BigQuery de-duplicate retried inserts."""
        ...

    def write_batch(
        self,
        rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]],
        row_ids_by_table: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Append rows to several tables as one unit where the backend allows (DuckDB: one
        transaction; BigQuery: one insert per table, idempotent through row ids)."""
        ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one statement written in BigQuery's dialect with ``@name`` parameters."""
        ...


class FrameWarehouse(Warehouse, Protocol):
    """Optional bulk paths a ``Warehouse`` may offer (DuckDB: both; BigQuery: ``query_frame``).

    Callers test for them (``getattr(warehouse, "query_frame", None)``) and fall back to
    ``query`` / ``insert_rows``, so every ``Warehouse`` keeps working.
    """

    def query_frame(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """``query``, returning a pandas DataFrame (large results: features, training sets)."""
        ...

    def insert_frame(self, table: str, frame: Any) -> int:
        """Append a pandas DataFrame / pyarrow Table with the table's column names; row count."""
        ...


class MutableWarehouse(Warehouse, Protocol):
    """A ``Warehouse`` that can also take rows out or overwrite columns (both adapters do):
    what privacy requests need (``shared.privacy``). Statements come from
    ``shared.warehouse_dml``; ``where`` is one BigQuery-dialect predicate with ``@name``
    parameters.

    Errors: as ``query``; and on BigQuery ``StreamingBufferBusy`` (a ``TransientError``) while
    a matching row is still in the streaming buffer (about 30 minutes after it was streamed),
    which only a later attempt can get past.
    """

    def delete_rows(self, table: str, where: str, params: Mapping[str, Any] | None = None) -> int:
        """Delete the rows of ``table`` matching ``where``; how many were deleted."""
        ...

    def update_rows(
        self,
        table: str,
        values: Mapping[str, Any],
        where: str,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Set top-level columns (``None``: NULL) of the rows matching ``where``; how many matched."""
        ...


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: its ONNX file and model card live at ``uri``."""

    model: str
    version: str  # semantic version, e.g. "1.3.0"
    aliases: tuple[str, ...]  # e.g. ("candidate",); later steps add "live", "previous"
    uri: str  # folder (file:// or gs://) holding model.onnx and card.json
    card: Mapping[str, Any]


class ModelRegistry(Protocol):
    """Model versions with aliases: Vertex AI Model Registry in the cloud, a folder locally.

    An alias names at most one version of a model at a time; setting it moves it.
    """

    def register(
        self,
        model: str,
        version: str,
        onnx_model: bytes,
        card: Mapping[str, Any],
        aliases: Sequence[str] = (),
    ) -> ModelVersion:
        """Store a new version (its files first, then its entry); an existing version is an error."""
        ...

    def get(self, model: str, ref: str) -> ModelVersion | None:
        """The version named ``ref`` (a semantic version or an alias), or None."""
        ...

    def versions(self, model: str) -> list[ModelVersion]:
        """Every version of ``model``, oldest first."""
        ...

    def load_onnx(self, version: ModelVersion) -> bytes: ...

    def set_alias(self, model: str, alias: str, version: str) -> None: ...


@dataclass(frozen=True)
class TrainingRequest:
    """One night's training run. ``run_id`` is the idempotency key: one run per model and night."""

    model: str
    night: date
    start: date  # first day of the data window (inclusive)
    end: date  # last day of the data window (inclusive)

    @property
    def run_id(self) -> str:
        return f"shopml-train-{self.model}-{self.night:%Y%m%d}"


@dataclass(frozen=True)
class TrainingSubmission:
    run_id: str
    backend_ref: str  # Vertex CustomJob resource name, or the local process's log file
    created: bool  # False when this night's run already existed (idempotent retry)


class TrainingBackend(Protocol):
    """Runs the trainer (``python -m shared.training``): Vertex AI CustomJob or a local process."""

    def submit(self, request: TrainingRequest) -> TrainingSubmission: ...


class ObjectStore(Protocol):
    """Named blobs under one root: a local folder, or a GCS bucket and prefix.

    Keys are ``/``-separated relative paths (``demand/1.3.0/model.onnx``). ``put`` replaces a
    whole object at once: readers see the old or the new bytes, never a mix (a local rename,
    a GCS upload). Neither adapter offers compare-and-swap (the storage emulator ignores
    preconditions), so callers must not build mutual exclusion on it.

    Errors: ``TransientError`` when retrying may help (unavailable, throttled),
    ``PermanentError`` when it cannot (no such bucket, no permission).
    """

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (a folder-like prefix ending in ``/`` or empty), sorted."""
        ...

    def uri(self, key: str) -> str:
        """Where ``key`` lives, for humans and other tools: ``file:///...`` or ``gs://bucket/...``."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed. Removing a missing key is not an error."""
        ...


class LivePointerStore(Protocol):
    """The live pointer per model (``shared.serving.pointer.LivePointer``): a Firestore
    document changed only inside a transaction in the cloud, a dict in tests.

    Errors: ``TransientError`` when the store is unreachable (retry), ``PermanentError`` when a
    stored document cannot be read as a pointer.
    """

    def get(self, model: str) -> LivePointer:
        """The stored pointer, or ``LivePointer(model)`` (generation 0, nothing live) if none."""
        ...

    def compare_and_swap(self, model: str, expected_generation: int, new: LivePointer) -> bool:
        """Write ``new`` (whose generation is ``expected_generation + 1``) only if the stored
        generation is still ``expected_generation`` (0: no pointer yet), atomically. True when
        written; False when another writer got there first (nothing written)."""
        ...

    def watch(self, model: str, callback: Callable[[LivePointer], None]) -> Callable[[], None]:
        """Call ``callback`` with the pointer now and after every change; returns ``stop``.
        Optional: a store without push raises ``NotImplementedError`` (readers poll ``get``)."""
        ...


@dataclass(frozen=True)
class Alert:
    """One alert for people: a title, a short text, a severity and a few named facts."""

    title: str
    text: str
    severity: str = "warning"  # "warning" | "critical" | "resolved"
    fields: Mapping[str, str] = field(default_factory=dict)  # e.g. {"model": "demand", "psi": "0.31"}
    link: str = ""  # where to look (a drift report's URL), "" if none


@dataclass(frozen=True)
class NotificationResult:
    """What became of one notification: ``delivered`` or not, and why not (``detail``)."""

    delivered: bool
    detail: str = ""


class AlertNotifier(Protocol):
    """Tells people about an alert (a Slack incoming webhook in the cloud and locally).

    Never raises: a notifier that cannot deliver returns ``NotificationResult(False, reason)``
    (and logs it), so a failing chat service never fails the check that raised the alert.
    """

    def notify(self, alert: Alert) -> NotificationResult: ...
