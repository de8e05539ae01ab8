"""predict: demand forecasts for the storefront, from the live model (HTTP, public, async).

Runs on functions-framework's ASGI path (``@functions_framework.aio.http``, Starlette; start it
with ``--asgi`` or ``FUNCTION_USE_ASGI=true``). Contract: docs/openapi/predict.yaml.

Checks, in this order: wrong method → 405; body over ``SHOPML_PREDICT_MAX_BODY_BYTES`` → 413;
credentials (Shopify app-proxy ``signature``, or ``Authorization: Bearer <key>`` from
``SHOPML_PREDICT_KEYS``) → 401, and the body's ``shop_domain`` must be the authenticated shop
(401 ``wrong_shop``); then the body → 400 ``{"error": code, "message": ...}``. Never a stack
trace; an unexpected failure is a 503 with a generic message.

``GET /metrics`` (same credentials): Prometheus text — requests by status, latency histogram,
fallback items by reason, the live model version (info), the pointer copy's age.

Imports on this path: numpy, onnxruntime, requests (feature server), the Pub/Sub and Firestore
clients, prometheus-client. Never lightgbm, pandas, feast, scipy or aiplatform (a test imports
this module in a fresh interpreter and checks ``sys.modules``).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import functions_framework.aio
import prometheus_client
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared import bootstrap
from shared.errors import TransientError
from shared.features.online import FeatureValue
from shared.logs import StructuredLogger, get_logger
from shared.ports import EventPublisher, LivePointerStore
from shared.serving import auth
from shared.serving.forecast import (
    FALLBACK_REASONS,
    NO_MODEL_VERSION,
    ONLINE_FEATURES,
    FeatureCache,
    forecast,
)
from shared.serving.prediction_log import TOPIC, prediction_message
from shared.serving.request import BadRequest, PredictRequest, claimed_shop, decode, validate
from shared.serving.slots import ModelFiles, ModelSlots, model_files_url, object_store_files
from shared.settings import Settings

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
FeatureReader = Callable[[list[int], tuple[str, ...]], Mapping[int, Mapping[str, FeatureValue]]]


class Metrics:
    """predict's Prometheus metrics, in a registry of their own (one per runtime)."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.requests = prometheus_client.Counter(
            "predict_requests", "predict requests by HTTP status", ["status"], registry=self.registry
        )
        self.latency = prometheus_client.Histogram(
            "predict_latency_seconds",
            "predict request latency (in the function, body read to answer)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = prometheus_client.Counter(
            "predict_fallback_items",
            "items answered with a fallback, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.items = prometheus_client.Counter("predict_items", "items answered", registry=self.registry)
        self.live_model = prometheus_client.Info(
            "predict_live_model", "the model version this instance serves", registry=self.registry
        )
        self.pointer_age = prometheus_client.Gauge(
            "predict_pointer_age_seconds",
            "age of this instance's copy of the live pointer",
            registry=self.registry,
        )
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason=reason)
        self.live_model.info({"version": NO_MODEL_VERSION, "slot": ""})

    def text(self) -> bytes:
        return bytes(prometheus_client.generate_latest(self.registry))


@dataclass
class Runtime:
    """Everything one instance keeps between requests."""

    settings: Settings
    slots: ModelSlots
    read_features: FeatureReader | None  # None: no feature server configured
    publisher: Callable[[], EventPublisher]
    logger: StructuredLogger
    cache: FeatureCache
    metrics: Metrics = field(default_factory=Metrics)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    wall: Callable[[], float] = time.time
    sample: Callable[[], float] = random.random
    background: set[asyncio.Task[Any]] = field(default_factory=set)


def build_runtime(
    settings: Settings,
    *,
    pointers: LivePointerStore,
    files: ModelFiles,
    read_features: FeatureReader | None,
    publisher: Callable[[], EventPublisher],
    **options: Any,
) -> Runtime:
    logger = get_logger("predict", settings.log_level)
    slots = ModelSlots(
        settings.model_name,
        pointers,
        files,
        max_age_s=settings.pointer_max_age_seconds,
        threads=settings.predict_onnx_threads,
        logger=logger,
    )
    return Runtime(
        settings=settings,
        slots=slots,
        read_features=read_features,
        publisher=publisher,
        logger=logger,
        cache=FeatureCache(settings.predict_feature_cache_size),
        **options,
    )


def default_runtime() -> Runtime:
    """The cloud/local wiring from settings (built on the first request, never at import)."""
    settings = bootstrap.settings()
    from shared.adapters.firestore_pointer import FirestorePointerStore
    from shared.adapters.object_stores import create_object_store

    pointers = FirestorePointerStore(
        settings.project,
        settings.firestore_database,
        settings.pointer_collection,
        settings.firestore_emulator_host,
        timeout_seconds=5.0,
    )
    files = object_store_files(create_object_store(model_files_url(settings), project=settings.project))
    read_features: FeatureReader | None = None
    if settings.feature_server_url:
        from shared.features.online import online_features

        client = online_features(settings.feature_server_url, settings.feature_timeout_ms)
        read_features = client.read
    runtime = build_runtime(
        settings, pointers=pointers, files=files, read_features=read_features, publisher=bootstrap.publisher
    )
    runtime.slots.watch()  # faster where CPU stays allocated; the age re-read is the guarantee
    return runtime


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def use(runtime: Runtime | None) -> None:
    """Serve with ``runtime`` (tests, the benchmark); ``None`` goes back to ``default_runtime``."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None and _runtime is not runtime:
            _runtime.slots.close()
        _runtime = runtime


def runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = default_runtime()
        return _runtime


# -- HTTP helpers -------------------------------------------------------------------------


def _cors(settings: Settings, request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if origin is None or origin not in settings.predict_cors_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Expose-Headers": "X-Model-Version",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=dict(headers or {}))


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _caller(rt: Runtime, request: Request) -> auth.Caller:
    return auth.authenticate(
        list(request.query_params.multi_items()),
        request.headers.get("authorization"),
        app_secrets=rt.settings.webhook_secrets,
        keys=rt.settings.predict_keys,
        now=rt.wall(),
        max_age_seconds=rt.settings.app_proxy_max_age_seconds,
    )


async def _features(
    rt: Runtime, variant_ids: list[int]
) -> tuple[Mapping[int, Mapping[str, FeatureValue]], bool]:
    """Online features for the items, or what this instance last saw (second value True)."""
    if rt.read_features is not None:
        budget = rt.settings.feature_timeout_ms / 1000.0
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(rt.read_features, variant_ids, ONLINE_FEATURES), timeout=budget * 2 + 0.05
            )
        except (TransientError, TimeoutError) as exc:
            rt.logger.warning(
                "feature server unavailable; answering from this instance's cache", error=str(exc)
            )
        else:
            rt.cache.put(found)
            return found, False
    return rt.cache.get(variant_ids), True


def _publish_sample(rt: Runtime, data: bytes) -> None:
    async def send() -> None:
        try:
            await asyncio.to_thread(rt.publisher().publish, TOPIC, data, {"source": "predict"})
        except Exception as exc:  # never the storefront's problem
            rt.logger.warning("prediction sample not published", error=f"{type(exc).__name__}: {exc}")

    task = asyncio.get_running_loop().create_task(send())
    rt.background.add(task)
    task.add_done_callback(rt.background.discard)


async def _answer(rt: Runtime, parsed: PredictRequest, cors: Mapping[str, str]) -> Response:
    request_time = rt.now()
    await rt.slots.follow()
    model = rt.slots.current()  # one model for the whole answer
    variant_ids = list(dict.fromkeys(item.variant_id for item in parsed.items))
    found, from_cache = await _features(rt, variant_ids)
    result = forecast(
        parsed.shop_domain,
        parsed.items,
        parsed.horizon_days,
        model,
        found,
        now=request_time,
        features_from_cache=from_cache,
    )
    metrics = rt.metrics
    metrics.items.inc(len(result.items))
    for item in result.items:
        if item.reason is not None:
            metrics.fallbacks.labels(reason=item.reason).inc()
    metrics.live_model.info(
        {"version": result.model_version, "slot": model.slot if model is not None else ""}
    )
    rate = rt.settings.predict_sample_rate
    if rate > 0 and rt.sample() < rate:
        message = prediction_message(result, parsed.shop_domain, parsed.horizon_days, rate, request_time)
        _publish_sample(rt, message)
    headers = {**cors, "X-Model-Version": result.model_version, "Cache-Control": "no-store"}
    return JSONResponse(result.body(), headers=headers)


async def handle(rt: Runtime, request: Request) -> Response:
    settings = rt.settings
    cors = _cors(settings, request)
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={**cors, "Allow": "POST, OPTIONS"})
    if request.url.path.rstrip("/").endswith("/metrics") and request.method == "GET":
        try:
            _caller(rt, request)
        except auth.Unauthorized as exc:
            return _error(401, exc.code, exc.message)
        rt.metrics.pointer_age.set(rt.slots.pointer_age() if rt.slots.pointer is not None else -1)
        return Response(rt.metrics.text(), media_type=prometheus_client.CONTENT_TYPE_LATEST)
    if request.method != "POST":
        return _error(
            405, "method_not_allowed", "use POST with a JSON body", {**cors, "Allow": "POST, OPTIONS"}
        )
    try:
        body = await _read_body(request, settings.predict_max_body_bytes)
    except _TooLarge:
        return _error(
            413, "body_too_large", f"the body may be at most {settings.predict_max_body_bytes} bytes", cors
        )
    try:
        caller = _caller(rt, request)
        data = decode(body)
        shop = claimed_shop(data)
        if shop is not None:
            auth.check_shop(caller, shop)
        parsed = validate(data, max_items=settings.predict_max_items)
    except auth.Unauthorized as exc:
        return _error(401, exc.code, exc.message, cors)
    except BadRequest as exc:
        return _error(400, exc.code, exc.message, cors)
    return await _answer(rt, parsed, cors)


@functions_framework.aio.http
async def predict(request: Request) -> Response:
    started = time.perf_counter()
    rt = runtime()
    is_metrics = request.url.path.rstrip("/").endswith("/metrics")
    try:
        response = await handle(rt, request)
    except Exception:  # never a stack trace to the caller
        rt.logger.exception("unexpected error while predicting")
        response = _error(503, "internal", "temporary failure; retry later", _cors(rt.settings, request))
    rt.metrics.requests.labels(status=str(response.status_code)).inc()
    if not is_metrics:
        rt.metrics.latency.observe(time.perf_counter() - started)
    return response
