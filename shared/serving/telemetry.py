"""``predict``'s metrics pushed to Cloud Monitoring: the Prometheus registry as OTLP/HTTP JSON.

Locally the metrics are read on ``GET /metrics``. In the cloud, instances come and go and are
not scraped one by one, so each instance pushes its own series (``SHOPML_METRICS_EXPORT=otlp``)
every ``SHOPML_METRICS_EXPORT_INTERVAL_SECONDS`` (60) to ``SHOPML_OTLP_ENDPOINT``, by default
Google's Telemetry API (``https://telemetry.googleapis.com/v1/metrics``, authenticated with
google-auth's default credentials, scope ``monitoring.write``); any OTLP/HTTP receiver (an
OpenTelemetry Collector) takes the same request. docs/DESIGN.md, "Serving metrics in the
cloud", says why this and not Managed Service for Prometheus or the OpenTelemetry SDK.

The one instrumentation stays the prometheus-client registry (``predict_app.Metrics``); an
export reads it and encodes an ``ExportMetricsServiceRequest`` in OTLP's JSON encoding
(opentelemetry-proto's ``metrics.proto`` with the proto3 JSON mapping: 64-bit integers as
decimal strings, enums as numbers):

* a counter → a monotonic cumulative ``sum`` named as its Prometheus sample
  (``predict_requests_total``), started at the counter's ``_created`` time;
* a histogram → a cumulative ``histogram`` (``explicitBounds`` are the finite ``le`` bounds,
  ``bucketCounts`` the per-bucket counts, the last one above the highest bound);
* a gauge → a ``gauge``; an info metric → a ``gauge`` of value 1 with its labels
  (``predict_live_model_info{version=..., slot=...}``).

Labels with an empty value are left out (Prometheus treats them as absent). The resource names
the service and this instance (``service.instance.id``, a random id per process), so every
instance writes its own series and Cloud Monitoring sums them.

An export never fails a request: it runs on its own daemon thread, and any error (receiver
down, refused, token refresh) is one warning. The exporter is built after the first answer
(``predict_app.after_answer``), so nothing here runs on the cold start. The last export runs
when SIGTERM arrives (Cloud Run's notice before it stops an instance), then the server's own
handler: functions-framework's ``--asgi`` server (gunicorn, uvicorn worker) ends its graceful
shutdown by re-raising SIGTERM with the default action, so the worker dies by the signal and
``atexit`` never runs there; ``atexit`` covers a normal interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from shared.logs import StructuredLogger
from shared.settings import Settings

SCOPE = "https://www.googleapis.com/auth/monitoring.write"
CUMULATIVE = 2  # AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
SCOPE_NAME = "shared.serving.telemetry"
TIMEOUT_SECONDS = 10.0
LAST_EXPORT_TIMEOUT_SECONDS = 5.0  # Cloud Run gives an instance 10 s after SIGTERM

Attributes = list[dict[str, Any]]
HeaderSource = Callable[[], Mapping[str, str]]


def no_headers() -> Mapping[str, str]:
    return {}


def attributes(labels: Mapping[str, str]) -> Attributes:
    """OTLP ``KeyValue`` list of string labels, empty values left out, in key order."""
    return [{"key": key, "value": {"stringValue": value}} for key, value in sorted(labels.items()) if value]


def resource_attributes(settings: Settings, instance_id: str) -> dict[str, str]:
    """The exporting instance: service, namespace, instance, project, region and platform (when
    known). The Telemetry API maps them onto ``prometheus_target``: location from
    ``cloud.region``, namespace from ``service.namespace``, job from ``service.name``."""
    found = {
        "service.name": "predict",
        "service.namespace": "shopml",
        "service.instance.id": instance_id,
        "cloud.provider": "gcp",
        "gcp.project_id": settings.project,
        "cloud.region": settings.metrics_location,
        # Google's prometheus_target mapping: cluster "__run__" (Cloud Functions gen2 run on Cloud Run)
        "cloud.platform": "gcp_cloud_run" if uses_google_auth(settings.otlp_endpoint) else "",
    }
    return {key: value for key, value in found.items() if value}


def _nanos(seconds: float) -> str:
    return str(int(seconds * 1_000_000_000))


def _counter(family: Metric, now_ns: str, started_ns: str) -> list[dict[str, Any]]:
    created = {
        tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name.endswith("_created")
    }
    points: dict[str, list[dict[str, Any]]] = {}
    for sample in family.samples:
        if not sample.name.endswith("_total"):
            continue
        start = created.get(tuple(sorted(sample.labels.items())))
        points.setdefault(sample.name, []).append(
            {
                "attributes": attributes(sample.labels),
                "startTimeUnixNano": _nanos(start) if start is not None else started_ns,
                "timeUnixNano": now_ns,
                "asDouble": sample.value,
            }
        )
    return [
        {
            "name": name,
            "description": family.documentation,
            "sum": {"dataPoints": data, "aggregationTemporality": CUMULATIVE, "isMonotonic": True},
        }
        for name, data in points.items()
    ]


def _histogram(family: Metric, now_ns: str, started_ns: str) -> dict[str, Any]:
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        one = series.setdefault(tuple(sorted(labels.items())), {"labels": labels, "buckets": []})
        if sample.name.endswith("_bucket"):
            one["buckets"].append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_count"):
            one["count"] = sample.value
        elif sample.name.endswith("_sum"):
            one["sum"] = sample.value
        elif sample.name.endswith("_created"):
            one["created"] = sample.value
    data = []
    for one in series.values():
        buckets = sorted(one["buckets"])
        cumulative = [count for _, count in buckets]
        per_bucket = [int(c - p) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
        data.append(
            {
                "attributes": attributes(one["labels"]),
                "startTimeUnixNano": _nanos(one["created"]) if "created" in one else started_ns,
                "timeUnixNano": now_ns,
                "count": str(int(one.get("count", cumulative[-1] if cumulative else 0))),
                "sum": one.get("sum", 0.0),
                "bucketCounts": [str(count) for count in per_bucket],
                "explicitBounds": [bound for bound, _ in buckets if bound != float("inf")],
            }
        )
    return {
        "name": family.name,
        "description": family.documentation,
        "unit": family.unit or ("s" if family.name.endswith("_seconds") else ""),
        "histogram": {"dataPoints": data, "aggregationTemporality": CUMULATIVE},
    }


def _gauge(family: Metric, now_ns: str) -> list[dict[str, Any]]:
    points: dict[str, list[dict[str, Any]]] = {}
    for sample in family.samples:
        points.setdefault(sample.name, []).append(
            {"attributes": attributes(sample.labels), "timeUnixNano": now_ns, "asDouble": sample.value}
        )
    return [
        {"name": name, "description": family.documentation, "gauge": {"dataPoints": data}}
        for name, data in points.items()
    ]


def otlp_metrics(families: Iterable[Metric], *, now: float, started: float) -> list[dict[str, Any]]:
    """OTLP ``Metric`` objects for prometheus-client metric families (counter, histogram,
    gauge, info); ``started`` is the start time of a series without a ``_created`` sample."""
    now_ns, started_ns = _nanos(now), _nanos(started)
    metrics: list[dict[str, Any]] = []
    for family in families:
        if family.type == "counter":
            metrics.extend(_counter(family, now_ns, started_ns))
        elif family.type == "histogram":
            metrics.append(_histogram(family, now_ns, started_ns))
        elif family.type in ("gauge", "info"):
            metrics.extend(_gauge(family, now_ns))
    return metrics


def export_request(
    registry: CollectorRegistry, resource: Mapping[str, str], *, now: float, started: float
) -> dict[str, Any]:
    """The ``ExportMetricsServiceRequest`` (OTLP JSON) for everything in ``registry``."""
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": attributes(resource)},
                "scopeMetrics": [
                    {
                        "scope": {"name": SCOPE_NAME},
                        "metrics": otlp_metrics(registry.collect(), now=now, started=started),
                    }
                ],
            }
        ]
    }


def uses_google_auth(endpoint: str) -> bool:
    """Google's endpoints take an OAuth token; a local receiver or Collector takes none."""
    host = urlsplit(endpoint).hostname or ""
    return host == "googleapis.com" or host.endswith(".googleapis.com")


class GoogleAuthHeaders:
    """``Authorization: Bearer`` from google-auth's default credentials (on Cloud Run, the
    metadata server), refreshed whenever the token is missing or expired."""

    def __init__(self, http: Any) -> None:
        self._http = http
        self._credentials: Any = None
        self._request: Any = None

    def __call__(self) -> Mapping[str, str]:
        if self._credentials is None:
            import google.auth
            from google.auth.transport.urllib3 import Request

            self._credentials, _ = google.auth.default(scopes=[SCOPE])
            self._request = Request(self._http)
        if not self._credentials.valid:
            self._credentials.refresh(self._request)
        return {"Authorization": f"Bearer {self._credentials.token}"}


@dataclass
class ExportResult:
    ok: bool
    bytes: int
    detail: str = ""


@dataclass
class OtlpExporter:
    """Pushes ``registry`` to ``endpoint`` every ``interval`` seconds from a daemon thread."""

    endpoint: str
    registry: CollectorRegistry
    resource: Mapping[str, str]
    logger: StructuredLogger
    interval: float = 60.0
    headers: HeaderSource = no_headers
    before_collect: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.time
    http: Any = None  # urllib3.PoolManager; made on the first export
    started: float = field(default_factory=time.time)
    exports: int = 0
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _closed: bool = False

    def body(self) -> bytes:
        self.before_collect()
        request = export_request(self.registry, self.resource, now=self.clock(), started=self.started)
        return json.dumps(request, separators=(",", ":"), allow_nan=False).encode()

    def export(self, timeout: float = TIMEOUT_SECONDS) -> ExportResult:
        """One export; never raises (a failure is a warning and ``ok`` False)."""
        # The periodic export and the last one never interleave; a signal handler never waits forever.
        if not self._lock.acquire(timeout=timeout):
            return ExportResult(False, 0, "another export is still running")
        try:
            size = 0
            try:
                data = self.body()
                size = len(data)
                if self.http is None:
                    import urllib3

                    self.http = urllib3.PoolManager(maxsize=1, retries=False)
                headers = {"Content-Type": "application/json", **self.headers()}
                answer = self.http.request("POST", self.endpoint, body=data, headers=headers, timeout=timeout)
                result = self._result(answer.status, answer.data, size)
            except Exception as exc:  # receiver down, timeout, token refresh: never the request's
                result = ExportResult(False, size, f"{type(exc).__name__}: {exc}")
            self.exports += 1
            if not result.ok:
                self.failures += 1
                self.logger.warning(
                    "metrics export failed", endpoint=self.endpoint, error=result.detail, bytes=size
                )
            return result
        finally:
            self._lock.release()

    @staticmethod
    def _result(status: int, data: bytes, size: int) -> ExportResult:
        if not 200 <= status < 300:
            return ExportResult(False, size, f"HTTP {status} {data[:300]!r}")
        try:
            partial = json.loads(data or b"{}").get("partialSuccess") or {}
        except (ValueError, AttributeError):
            partial = {}
        rejected = int(partial.get("rejectedDataPoints") or 0)
        if rejected:
            message = partial.get("errorMessage", "")
            return ExportResult(False, size, f"{rejected} data points rejected: {message}")
        return ExportResult(True, size)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Export every ``interval`` seconds, and a last time on SIGTERM or at interpreter exit.
        Signal handlers are set on the main thread: directly, or through ``loop`` (the server's
        event loop) when called from another thread."""
        self._thread = threading.Thread(target=self._run, name="predict-metrics-export", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)
        if threading.current_thread() is threading.main_thread():
            self.export_on_sigterm()
        elif loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.export_on_sigterm)

    def export_on_sigterm(self) -> bool:
        """On the main thread: SIGTERM first runs the last export, then the handler it replaces
        (the server's graceful shutdown, or the default action). False elsewhere."""
        if threading.current_thread() is not threading.main_thread():
            return False
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> None:
            self.shutdown()
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.raise_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.export()

    def shutdown(self, last_export: bool = True) -> ExportResult | None:
        """Stop the periodic export; with ``last_export``, push what was counted since the last."""
        atexit.unregister(self.shutdown)
        if self._closed:
            return None
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=LAST_EXPORT_TIMEOUT_SECONDS)
        return self.export(timeout=LAST_EXPORT_TIMEOUT_SECONDS) if last_export else None


def exporter(
    settings: Settings,
    registry: CollectorRegistry,
    logger: StructuredLogger,
    before_collect: Callable[[], None] = lambda: None,
) -> OtlpExporter:
    """The exporter ``settings`` ask for (not started), for one instance."""
    import urllib3

    http = urllib3.PoolManager(maxsize=1, retries=False)
    headers: HeaderSource = (
        GoogleAuthHeaders(http) if uses_google_auth(settings.otlp_endpoint) else no_headers
    )
    return OtlpExporter(
        endpoint=settings.otlp_endpoint,
        registry=registry,
        resource=resource_attributes(settings, uuid.uuid4().hex),
        logger=logger,
        interval=settings.metrics_export_interval_seconds,
        headers=headers,
        before_collect=before_collect,
        http=http,
    )
