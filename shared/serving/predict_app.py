"""``predict``'s request handling, free of any web framework: a request in, an answer out.

``functions/predict/main.py`` only hands functions-framework's request to
``shared.serving.http_app`` (the one Starlette-facing module), which turns it into an
``Incoming`` and the ``Answer`` back into a response. Everything else is here:

* the order of the checks: wrong method → 405; body over ``SHOPML_PREDICT_MAX_BODY_BYTES`` →
  413; credentials (``shared.serving.auth``) → 401, and the body's ``shop_domain`` must be the
  authenticated shop (401 ``wrong_shop``); then the body (``shared.serving.request``) → 400
  ``{"error": code, "message": ...}``. Never a stack trace: an unexpected failure is a 503;
* CORS for the configured storefront origins, the preflight (``OPTIONS``);
* ``GET /metrics`` (same credentials): Prometheus text — requests by status, latency
  histogram, fallback items by reason, the live model version (info), the pointer copy's age;
* the answer from the live model (``shared.serving.slots``, ``shared.serving.forecast``), and
  the sampled answers published to ``predictions`` in the background, off the latency path.

One ``Runtime`` per process (``runtime()``; tests and the benchmark install their own with
``use``). It is built on the first request, never at import. Its live pointer store reads the
pointer over Firestore's REST API (``shared.adapters.firestore_rest``): the Firestore client
library (gRPC, ~1 s to import) is only imported after the first answer, in the background,
for the snapshot listener.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import prometheus_client

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
JSON = "application/json"
Features = Mapping[int, Mapping[str, FeatureValue]]
# ``AsyncOnlineFeatures.read`` (awaited on the loop) or a blocking reader (run in a thread).
FeatureReader = Callable[[list[int], tuple[str, ...]], Features | Awaitable[Features]]


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
    # Start the pointer's snapshot listener after the first answer (False: re-read on age only).
    watch_after_first_answer: bool = False
    watch_started: bool = False
    # SHOPML_METRICS_EXPORT=otlp: the push exporter (shared.serving.telemetry), built after the first answer.
    exporter: Any = None
    export_started: bool = False


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
    from shared.adapters.firestore_rest import FirestoreRestPointerStore
    from shared.adapters.object_stores import create_object_store

    pointers = FirestoreRestPointerStore(
        settings.project,
        settings.firestore_database,
        settings.pointer_collection,
        settings.firestore_emulator_host,
        timeout_seconds=5.0,
    )
    files = object_store_files(create_object_store(model_files_url(settings), project=settings.project))
    read_features: FeatureReader | None = None
    if settings.feature_server_url:
        from shared.features.online import async_online_features

        # On the event loop: no worker-thread hand-off on the latency path.
        client = async_online_features(settings.feature_server_url, settings.feature_timeout_ms)
        read_features = client.read
    # The listener is faster where CPU stays allocated; the age re-read is the guarantee.
    return build_runtime(
        settings,
        pointers=pointers,
        files=files,
        read_features=read_features,
        publisher=bootstrap.publisher,
        watch_after_first_answer=True,
    )


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


# -- a request and an answer, without a framework ------------------------------------------


class BodyTooLarge(Exception):
    """The body is over the limit (raised by the framework's body reader)."""


BodyReader = Callable[[int], Awaitable[bytes]]  # limit → body, or BodyTooLarge


@dataclass(frozen=True)
class Incoming:
    """What the checks need of an HTTP request; ``headers`` keys are lower case."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]

    @property
    def is_metrics(self) -> bool:
        return self.path.rstrip("/").endswith("/metrics")

    @property
    def is_retrain(self) -> bool:
        return self.path.rstrip("/").endswith("/retrain")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str | None = None


def json_answer(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Answer:
    """JSON as Starlette's ``JSONResponse`` writes it (UTF-8, compact, no NaN)."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return Answer(status, body, dict(headers or {}), JSON)


def error_answer(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return json_answer({"error": code, "message": message}, status, headers)


def cors_headers(allowed_origins: Sequence[str], origin: str | None) -> dict[str, str]:
    """CORS headers for a configured storefront origin; none for any other origin."""
    if origin is None or origin not in allowed_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Expose-Headers": "X-Model-Version",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def caller(rt: Runtime, incoming: Incoming) -> auth.Caller:
    return auth.authenticate(
        list(incoming.query),
        incoming.headers.get("authorization"),
        app_secrets=rt.settings.webhook_secrets,
        keys=rt.settings.predict_keys,
        now=rt.wall(),
        max_age_seconds=rt.settings.app_proxy_max_age_seconds,
    )


async def read_features(reader: FeatureReader, variant_ids: list[int]) -> Features:
    """One read: an async reader awaited on the loop, a blocking one in a worker thread."""
    if inspect.iscoroutinefunction(reader):
        return await cast(Awaitable[Features], reader(variant_ids, ONLINE_FEATURES))
    return await asyncio.to_thread(cast(Callable[..., Features], reader), variant_ids, ONLINE_FEATURES)


async def features(rt: Runtime, variant_ids: list[int]) -> tuple[Features, bool]:
    """Online features for the items, or what this instance last saw (second value True)."""
    if rt.read_features is not None:
        budget = rt.settings.feature_timeout_ms / 1000.0
        try:
            # The reader keeps its own timeout; this bound only guards against one that does not.
            async with asyncio.timeout(budget * 2 + 0.05):
                found = await read_features(rt.read_features, variant_ids)
        except (TransientError, TimeoutError) as exc:
            rt.logger.warning(
                "feature server unavailable; answering from this instance's cache", error=str(exc)
            )
        else:
            rt.cache.put(found)
            return found, False
    return rt.cache.get(variant_ids), True


def publish_sample(rt: Runtime, data: bytes) -> None:
    """Publish a sampled answer in a background task (a failure is a warning, never the caller's)."""

    async def send() -> None:
        try:
            await asyncio.to_thread(rt.publisher().publish, TOPIC, data, {"source": "predict"})
        except Exception as exc:  # never the storefront's problem
            rt.logger.warning("prediction sample not published", error=f"{type(exc).__name__}: {exc}")

    task = asyncio.get_running_loop().create_task(send())
    rt.background.add(task)
    task.add_done_callback(rt.background.discard)


async def answer(rt: Runtime, parsed: PredictRequest, cors: Mapping[str, str]) -> Answer:
    request_time = rt.now()
    await rt.slots.follow()
    model = rt.slots.current()  # one model for the whole answer
    variant_ids = list(dict.fromkeys(item.variant_id for item in parsed.items))
    found, from_cache = await features(rt, variant_ids)
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
        publish_sample(rt, message)
    headers = {**cors, "X-Model-Version": result.model_version, "Cache-Control": "no-store"}
    return json_answer(result.body(), headers=headers)


async def handle(rt: Runtime, incoming: Incoming, read_body: BodyReader) -> Answer:
    """The checks in their order, then the answer (exceptions escape: ``respond`` maps them)."""
    settings = rt.settings
    cors = cors_headers(settings.predict_cors_origins, incoming.headers.get("origin"))
    if incoming.method == "OPTIONS":
        return Answer(204, headers={**cors, "Allow": "POST, OPTIONS"})
    if incoming.is_metrics and incoming.method == "GET":
        try:
            caller(rt, incoming)
        except auth.Unauthorized as exc:
            return error_answer(401, exc.code, exc.message)
        observe_pointer_age(rt)
        return Answer(200, rt.metrics.text(), {}, prometheus_client.CONTENT_TYPE_LATEST)
    if incoming.method != "POST":
        return error_answer(
            405, "method_not_allowed", "use POST with a JSON body", {**cors, "Allow": "POST, OPTIONS"}
        )
    try:
        body = await read_body(settings.predict_max_body_bytes)
    except BodyTooLarge:
        limit = settings.predict_max_body_bytes
        return error_answer(413, "body_too_large", f"the body may be at most {limit} bytes", cors)
    if incoming.is_retrain:
        return await request_retraining(rt, incoming, body)
    try:
        who = caller(rt, incoming)
        data = decode(body)
        shop = claimed_shop(data)
        if shop is not None:
            auth.check_shop(who, shop)
        parsed = validate(data, max_items=settings.predict_max_items)
    except auth.Unauthorized as exc:
        return error_answer(401, exc.code, exc.message, cors)
    except BadRequest as exc:
        return error_answer(400, exc.code, exc.message, cors)
    return await answer(rt, parsed, cors)


async def request_retraining(rt: Runtime, incoming: Incoming, body: bytes) -> Answer:
    """``POST /retrain`` from a Shopify Flow workflow (``shared.serving.retrain``): a bearer key
    only, then one message on ``training-requests``, answered once Pub/Sub acknowledged."""
    from shared.errors import PublishFailed
    from shared.serving import retrain

    try:
        who = caller(rt, incoming)
        if who.method != "key":
            raise auth.Unauthorized(
                "a retrain request needs the shop's key (Authorization: Bearer <key>), "
                "not an app proxy signature",
                code="key_required",
            )
        reason = retrain.parse_retrain_body(body)
    except auth.Unauthorized as exc:
        return error_answer(401, exc.code, exc.message)
    except BadRequest as exc:
        return error_answer(400, exc.code, exc.message)
    model = rt.settings.model_name
    data, attributes, key = retrain.retrain_message(who.shop_domain, model, reason, rt.now())
    try:
        await asyncio.to_thread(rt.publisher().publish, retrain.TOPIC, data, attributes)
    except PublishFailed as exc:
        rt.logger.error("retrain request not published", error=str(exc), shop=who.shop_domain)
        return error_answer(503, "publish_failed", "not queued yet; retry later")
    rt.logger.info("retrain requested", labels={"shop": who.shop_domain, "model": model}, idempotency_key=key)
    return json_answer({"status": "accepted", "model": model, "idempotency_key": key}, status=202)


async def respond(rt: Runtime, incoming: Incoming, read_body: BodyReader) -> Answer:
    """``handle`` with the request metrics, and a 503 without a trace for anything unexpected."""
    started = time.perf_counter()
    try:
        result = await handle(rt, incoming, read_body)
    except Exception:  # never a stack trace to the caller
        rt.logger.exception("unexpected error while predicting")
        cors = cors_headers(rt.settings.predict_cors_origins, incoming.headers.get("origin"))
        result = error_answer(503, "internal", "temporary failure; retry later", cors)
    rt.metrics.requests.labels(status=str(result.status)).inc()
    if not incoming.is_metrics:
        rt.metrics.latency.observe(time.perf_counter() - started)
    return result


def observe_pointer_age(rt: Runtime) -> None:
    rt.metrics.pointer_age.set(rt.slots.pointer_age() if rt.slots.pointer is not None else -1)


def start_metrics_export(rt: Runtime) -> Callable[[], None] | None:
    """With ``SHOPML_METRICS_EXPORT=otlp``, once per runtime: work that starts the push of the
    metrics (``shared.serving.telemetry``, imported here, off the cold start); else None."""
    if rt.settings.metrics_export != "otlp" or rt.export_started:
        return None
    rt.export_started = True
    try:  # the server's loop (main thread) sets the SIGTERM handler for the last export
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None

    def start() -> None:
        try:
            from shared.serving import telemetry

            rt.exporter = telemetry.exporter(
                rt.settings, rt.metrics.registry, rt.logger, lambda: observe_pointer_age(rt)
            )
            rt.exporter.start(loop)
        except Exception as exc:  # never the storefront's problem; /metrics still works
            rt.logger.warning("metrics export not started", error=f"{type(exc).__name__}: {exc}")

    return start


def after_answer(rt: Runtime) -> Callable[[], None] | None:
    """Work to run once the answer has been sent, or None: after the first answer, start the
    pointer's snapshot listener in a thread (importing the Firestore client takes about a second,
    which the first answer does not wait for)."""
    export = start_metrics_export(rt)
    if not rt.watch_after_first_answer or rt.watch_started:
        return export
    rt.watch_started = True

    def start() -> None:
        try:
            listening = rt.slots.watch()
        except Exception as exc:  # the age re-read still follows the pointer
            rt.logger.warning("live pointer listener not started", error=f"{type(exc).__name__}: {exc}")
        else:
            rt.logger.info("live pointer listener started" if listening else "no live pointer listener")

    def later() -> None:
        threading.Thread(target=start, name="predict-pointer-watch", daemon=True).start()
        if export is not None:
            export()

    return later
