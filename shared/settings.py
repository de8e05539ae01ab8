"""Settings: one frozen object, built from the environment on first use.

Every default makes the local run work; Terraform supplies the cloud values. Nothing here
imports a cloud client. Tests build ``Settings.from_env({...})`` instead of patching.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parent.parent

# Shopify topics that feed the pipeline (``shopify-events``).
STORE_TOPICS: tuple[str, ...] = (
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "orders/paid",
    "refunds/create",
    "products/create",
    "products/update",
    "products/delete",
    "inventory_levels/update",
    "customers/create",
    "customers/update",
    "app/uninstalled",
)
# Mandatory privacy webhooks; routed to the ``compliance`` topic instead.
COMPLIANCE_TOPICS: tuple[str, ...] = ("customers/data_request", "customers/redact", "shop/redact")

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024  # Pub/Sub's message limit is 10 MB; orders are far smaller.


def _split_csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _float(env: Mapping[str, str], name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise ConfigurationError(f"{name}={raw!r} must be {bound}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be greater than zero")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean (true/false)")


def _shop_keys(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """``shop_domain=key,...`` (``predict``'s bearer keys) as (shop, key) pairs."""
    pairs: list[tuple[str, str]] = []
    for number, part in enumerate(_split_csv(env.get(name, "")), start=1):
        shop, sep, key = part.partition("=")
        if not sep or not shop.strip() or not key.strip():  # the message never shows a key
            raise ConfigurationError(f"{name}: entry {number} is not shop_domain=key")
        pairs.append((shop.strip().lower(), key.strip()))
    return tuple(pairs)


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with local defaults. See README "Configuration"."""

    project: str = "shopml-local"
    pubsub_emulator_host: str | None = None
    topic_prefix: str = ""
    webhook_secrets: tuple[str, ...] = ()
    store_topics: tuple[str, ...] = STORE_TOPICS
    compliance_topics: tuple[str, ...] = COMPLIANCE_TOPICS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    publish_timeout_seconds: float = 3.0
    publish_batch_max_latency_ms: float = 5.0
    publisher: str = "group_commit"  # or "client" (the official client's timer batching)
    publish_linger_ms: float = 2.0  # group commit: how long a busy sender lets a batch fill
    publish_senders: int = 2  # group commit: RPCs in flight at once
    server_timing: bool = False  # ingest_webhook answers with a Server-Timing header (benchmarks)
    home: Path = field(default_factory=lambda: REPO_ROOT / ".shopml")
    warehouse_url: str = ""
    bigquery_endpoint: str | None = None  # BigQuery API endpoint override (the emulator); URL option wins
    store_pii: bool = False  # keep customers' email/phone/address in clear (default: keyed hashes only)
    pii_hash_key: str = ""  # HMAC key for those hashes; set it (Secret Manager) in every real deployment
    log_level: str = "INFO"
    # Step 3: features, training, registry.
    feature_server_url: str = ""  # Feast feature server (``feast serve``); empty: no online features
    feature_timeout_ms: float = 50.0  # request-path budget for one feature-server call
    # A Feast repo dir (its feature_store.yaml) for the batch jobs: set, `python -m shared.features`
    # runs in cloud mode on it (BigQuery query source); unset, it writes the local repo under home.
    feast_repo: Path | None = None
    # file:///dir (default .shopml/registry), gs://bucket/prefix or vertex://project/region
    registry_url: str = ""
    model_name: str = "demand"
    champion_tolerance: float = 0.02  # candidate WAPE may exceed the champion's by this fraction
    # Baseline gate (shared/training/gate.py): in the mean over the cross-validation windows, beat
    # zero, seasonal naive and the 28-day average on WAPE (weekly sums per variant, or daily),
    # RMSE and weighted RMSSE by these fractions, with the mean |bias| within the bound.
    gate_wape_margin: float = 0.01
    gate_rmsse_margin: float = 0.01
    gate_max_abs_bias: float = 0.10
    gate_rmse_margin: float = 0.01
    gate_wape_grain: str = "weekly"  # or "daily"
    training_backend: str = "local"  # or "vertex" (CustomJob)
    training_history_days: int = 548  # about 18 months
    vertex_region: str = "europe-west1"
    trainer_image: str = ""  # container image of the trainer (Vertex backend)
    trainer_service_account: str = ""  # service account the Vertex CustomJob runs as
    vertex_staging_bucket: str = ""  # gs://bucket for Vertex job staging and model artifacts
    # Step 4: predict (shared/serving/*, functions/predict).
    predict_keys: tuple[tuple[str, str], ...] = ()  # (shop_domain, bearer key); Secret Manager in the cloud
    predict_cors_origins: tuple[str, ...] = ()  # storefront origins allowed to call predict from a browser
    predict_max_body_bytes: int = 64 * 1024  # 100 items with price and stock are ~6 KB
    predict_max_items: int = 100
    predict_sample_rate: float = 0.05  # share of answers published to ``predictions``
    predict_onnx_threads: int = 1  # ONNX Runtime intra-op threads per session (bench/predict_bench.py)
    predict_feature_cache_size: int = 10_000  # variants whose last online features an instance keeps
    pointer_max_age_seconds: float = 2.0  # a request re-reads the live pointer when its copy is older
    app_proxy_max_age_seconds: float = 90.0  # an app-proxy signature's timestamp may be this old
    # Step 4: the live pointer and deploy gates (shared/serving/deployment.py, deploy_model, rollback).
    firestore_emulator_host: str | None = None  # FIRESTORE_EMULATOR_HOST (the local stack sets it)
    firestore_database: str = "(default)"  # Firestore database holding the live pointers
    pointer_collection: str = "live_pointers"  # one document per model, id = model name
    deploy_latency_budget_ms: float = 20.0  # gate: p99 of one ONNX call (1 item x 28 horizons, 1 thread)
    deploy_latency_samples: int = 200  # gate: timed calls the p99 is taken over
    # Step 5: drift statistics (shared/monitoring/drift.py; defaults and reasons in its docstring).
    drift_mean_shift_sigma: float = 2.0  # drifted: |mean shift| beyond this many reference sd
    drift_psi_threshold: float = 0.2  # drifted: PSI above this
    drift_psi_bins: int = 10  # PSI bins: reference deciles, open outer bins
    drift_psi_epsilon: float = 1e-4  # share an empty PSI bin counts as
    drift_alpha: float = 0.01  # family-wise level of the KS / chi-square tests after correction
    drift_correction: str = "holm"  # or "bonferroni": over the features tested together
    drift_min_ks_statistic: float = 0.05  # and the KS statistic at least this (a million rows)
    drift_min_linf: float = 0.05  # categorical: and the largest share difference at least this
    drift_min_current_rows: int = 500  # fewer current values: the feature is not judged
    drift_min_reference_rows: int = 1000  # fewer reference values: the feature is not judged
    drift_reference_rows: int = 20_000  # rows of the seeded reference sample in a model card
    # Step 5: drift_monitor (shared/monitoring/monitor.py; each rule explained in its docstring).
    drift_window_hours: float = 24.0  # serving inputs compared: the predictions of the last N hours
    accuracy_window_days: int = 28  # forecasts scored: target days in the last N complete days
    accuracy_min_rows: int = 200  # fewer scored (variant, day) rows: accuracy is not judged
    accuracy_slip: float = 0.03  # alert: live WAPE or RMSSE above the card's holdout error x (1 + this)
    accuracy_floor: float = 0.85  # alert: shop-week accuracy (1 - WAPE) below this
    drift_severe_importance: float = 0.5  # rollback: drifted features carry this share of the model's gain
    retrain_units_deviation: float = 0.15  # retrain: 7-day realised units off the forecast by more
    reports_url: str = ""  # where drift reports go: file:///dir or gs://bucket/prefix
    # Step 4: predict's metrics pushed to Cloud Monitoring (shared/serving/telemetry.py); off locally.
    metrics_export: str = ""  # "" (off: GET /metrics only) or "otlp" (push OTLP/HTTP JSON)
    otlp_endpoint: str = "https://telemetry.googleapis.com/v1/metrics"  # google-auth when *.googleapis.com
    metrics_export_interval_seconds: float = 60.0  # one export per instance per interval
    metrics_location: str = ""  # the instance's region (cloud.region on the exported resource)
    # Step 5: alerts to Slack (shared/adapters/slack.py). The URL is a secret (Secret Manager in the
    # cloud); empty: alerts are not sent to Slack (metrics and drift reports still record them).
    slack_webhook_url: str = field(default="", repr=False)  # a Slack incoming webhook
    slack_timeout_seconds: float = 3.0  # one POST to Slack; a slow Slack never holds up a check
    # Step 6: the Shopify Admin API (shared/adapters/shopify_admin.py), connect, backfill, reconcile.
    shopify_api_version: str = "2025-10"  # Admin API version of every call and of the webhooks subscribed
    shopify_admin_url: str = ""  # empty: https://<shop>; locally the stand-in (http://127.0.0.1:PORT)
    # (shop_domain, access token) pairs, local only; in the cloud tokens come from Secret Manager.
    shopify_access_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    shopify_token_secret: str = ""  # Secret Manager secret id per shop; "{shop}" = the domain's dots as "-"
    shopify_timeout_seconds: float = 10.0  # connect + read deadline of one Admin API call
    shopify_max_retries: int = 5  # retries of one call on 429, 5xx, THROTTLED or a timeout
    shopify_max_calls_per_minute: int = 1000  # hard ceiling of Admin API calls per minute per process
    backfill_history_days: int = 548  # shopml backfill: this many days of history (about 18 months)
    reconcile_overlap_minutes: int = 60  # reconcile: each window starts this long before the watermark
    sync_state_url: str = ""  # watermarks, uninstalled shops, backfill progress: file:///dir or gs://b/p
    # Step 6: privacy requests (shared/privacy, functions/compliance): data-request exports go here.
    privacy_exports_url: str = ""  # file:///dir (default .shopml/privacy-exports) or gs://bucket/prefix

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("SHOPML_HOME") or REPO_ROOT / ".shopml")
        store_topics = _split_csv(env.get("SHOPML_STORE_TOPICS", "")) or STORE_TOPICS
        overlap = set(store_topics) & set(COMPLIANCE_TOPICS)
        if overlap:
            raise ConfigurationError(
                f"SHOPML_STORE_TOPICS lists privacy topics {sorted(overlap)}; they always go to "
                "the compliance topic, remove them"
            )
        settings = cls(
            project=env.get("GOOGLE_CLOUD_PROJECT") or "shopml-local",
            pubsub_emulator_host=env.get("PUBSUB_EMULATOR_HOST") or None,
            topic_prefix=env.get("SHOPML_TOPIC_PREFIX", ""),
            webhook_secrets=_split_csv(env.get("SHOPIFY_WEBHOOK_SECRETS", "")),
            store_topics=store_topics,
            max_body_bytes=_int(env, "SHOPML_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            publish_timeout_seconds=_float(env, "SHOPML_PUBLISH_TIMEOUT_SECONDS", 3.0),
            publish_batch_max_latency_ms=_float(env, "SHOPML_PUBLISH_BATCH_MAX_LATENCY_MS", 5.0),
            publisher=env.get("SHOPML_PUBLISHER", "group_commit"),
            publish_linger_ms=_float(env, "SHOPML_PUBLISH_LINGER_MS", 2.0, allow_zero=True),
            publish_senders=_int(env, "SHOPML_PUBLISH_SENDERS", 2),
            server_timing=_bool(env, "SHOPML_SERVER_TIMING", False),
            home=home,
            warehouse_url=env.get("SHOPML_WAREHOUSE") or f"duckdb:///{home / 'warehouse.duckdb'}",
            bigquery_endpoint=env.get("SHOPML_BIGQUERY_ENDPOINT") or None,
            store_pii=_bool(env, "SHOPML_STORE_PII", False),
            pii_hash_key=env.get("SHOPML_PII_HASH_KEY", ""),
            log_level=env.get("SHOPML_LOG_LEVEL", "INFO").upper(),
            feature_server_url=(env.get("SHOPML_FEATURE_SERVER_URL") or "").rstrip("/"),
            feature_timeout_ms=_float(env, "SHOPML_FEATURE_TIMEOUT_MS", 50.0),
            feast_repo=Path(env["SHOPML_FEAST_REPO"]) if env.get("SHOPML_FEAST_REPO") else None,
            registry_url=env.get("SHOPML_REGISTRY") or f"file://{home / 'registry'}",
            model_name=env.get("SHOPML_MODEL_NAME") or "demand",
            champion_tolerance=_float(env, "SHOPML_CHAMPION_TOLERANCE", 0.02, allow_zero=True),
            gate_wape_margin=_float(env, "SHOPML_GATE_WAPE_MARGIN", 0.01, allow_zero=True),
            gate_rmsse_margin=_float(env, "SHOPML_GATE_RMSSE_MARGIN", 0.01, allow_zero=True),
            gate_max_abs_bias=_float(env, "SHOPML_GATE_MAX_ABS_BIAS", 0.10),
            gate_rmse_margin=_float(env, "SHOPML_GATE_RMSE_MARGIN", 0.01, allow_zero=True),
            gate_wape_grain=(env.get("SHOPML_GATE_WAPE_GRAIN") or "weekly").lower(),
            training_backend=env.get("SHOPML_TRAINING_BACKEND") or "local",
            training_history_days=_int(env, "SHOPML_TRAINING_HISTORY_DAYS", 548),
            vertex_region=env.get("SHOPML_VERTEX_REGION") or "europe-west1",
            trainer_image=env.get("SHOPML_TRAINER_IMAGE", ""),
            trainer_service_account=env.get("SHOPML_TRAINER_SERVICE_ACCOUNT", ""),
            vertex_staging_bucket=env.get("SHOPML_VERTEX_STAGING_BUCKET", ""),
            predict_keys=_shop_keys(env, "SHOPML_PREDICT_KEYS"),
            predict_cors_origins=_split_csv(env.get("SHOPML_PREDICT_CORS_ORIGINS", "")),
            predict_max_body_bytes=_int(env, "SHOPML_PREDICT_MAX_BODY_BYTES", 64 * 1024),
            predict_max_items=_int(env, "SHOPML_PREDICT_MAX_ITEMS", 100),
            predict_sample_rate=_float(env, "SHOPML_PREDICT_SAMPLE_RATE", 0.05, allow_zero=True),
            predict_onnx_threads=_int(env, "SHOPML_PREDICT_ONNX_THREADS", 1),
            predict_feature_cache_size=_int(env, "SHOPML_PREDICT_FEATURE_CACHE_SIZE", 10_000),
            pointer_max_age_seconds=_float(env, "SHOPML_POINTER_MAX_AGE_SECONDS", 2.0),
            app_proxy_max_age_seconds=_float(env, "SHOPML_APP_PROXY_MAX_AGE_SECONDS", 90.0),
            firestore_emulator_host=env.get("FIRESTORE_EMULATOR_HOST") or None,
            firestore_database=env.get("SHOPML_FIRESTORE_DATABASE") or "(default)",
            pointer_collection=env.get("SHOPML_POINTER_COLLECTION") or "live_pointers",
            deploy_latency_budget_ms=_float(env, "SHOPML_DEPLOY_LATENCY_BUDGET_MS", 20.0),
            deploy_latency_samples=_int(env, "SHOPML_DEPLOY_LATENCY_SAMPLES", 200),
            drift_mean_shift_sigma=_float(env, "SHOPML_DRIFT_MEAN_SHIFT_SIGMA", 2.0),
            drift_psi_threshold=_float(env, "SHOPML_DRIFT_PSI_THRESHOLD", 0.2),
            drift_psi_bins=_int(env, "SHOPML_DRIFT_PSI_BINS", 10),
            drift_psi_epsilon=_float(env, "SHOPML_DRIFT_PSI_EPSILON", 1e-4),
            drift_alpha=_float(env, "SHOPML_DRIFT_ALPHA", 0.01),
            drift_correction=(env.get("SHOPML_DRIFT_CORRECTION") or "holm").lower(),
            drift_min_ks_statistic=_float(env, "SHOPML_DRIFT_MIN_KS_STATISTIC", 0.05, allow_zero=True),
            drift_min_linf=_float(env, "SHOPML_DRIFT_MIN_LINF", 0.05, allow_zero=True),
            drift_min_current_rows=_int(env, "SHOPML_DRIFT_MIN_CURRENT_ROWS", 500),
            drift_min_reference_rows=_int(env, "SHOPML_DRIFT_MIN_REFERENCE_ROWS", 1000),
            drift_reference_rows=_int(env, "SHOPML_DRIFT_REFERENCE_ROWS", 20_000),
            drift_window_hours=_float(env, "SHOPML_DRIFT_WINDOW_HOURS", 24.0),
            accuracy_window_days=_int(env, "SHOPML_ACCURACY_WINDOW_DAYS", 28),
            accuracy_min_rows=_int(env, "SHOPML_ACCURACY_MIN_ROWS", 200),
            accuracy_slip=_float(env, "SHOPML_ACCURACY_SLIP", 0.03, allow_zero=True),
            accuracy_floor=_float(env, "SHOPML_ACCURACY_FLOOR", 0.85, allow_zero=True),
            drift_severe_importance=_float(env, "SHOPML_DRIFT_SEVERE_IMPORTANCE", 0.5),
            retrain_units_deviation=_float(env, "SHOPML_RETRAIN_UNITS_DEVIATION", 0.15),
            reports_url=env.get("SHOPML_REPORTS") or f"file://{home / 'reports'}",
            metrics_export=(env.get("SHOPML_METRICS_EXPORT") or "").lower(),
            otlp_endpoint=env.get("SHOPML_OTLP_ENDPOINT") or "https://telemetry.googleapis.com/v1/metrics",
            metrics_export_interval_seconds=_float(env, "SHOPML_METRICS_EXPORT_INTERVAL_SECONDS", 60.0),
            metrics_location=env.get("SHOPML_METRICS_LOCATION", ""),
            slack_webhook_url=(env.get("SHOPML_SLACK_WEBHOOK_URL") or "").strip(),
            slack_timeout_seconds=_float(env, "SHOPML_SLACK_TIMEOUT_SECONDS", 3.0),
            shopify_api_version=env.get("SHOPML_SHOPIFY_API_VERSION") or "2025-10",
            shopify_admin_url=(env.get("SHOPML_SHOPIFY_ADMIN_URL") or "").rstrip("/"),
            shopify_access_tokens=_shop_keys(env, "SHOPML_SHOPIFY_ACCESS_TOKENS"),
            shopify_token_secret=env.get("SHOPML_SHOPIFY_TOKEN_SECRET", ""),
            shopify_timeout_seconds=_float(env, "SHOPML_SHOPIFY_TIMEOUT_SECONDS", 10.0),
            shopify_max_retries=_int(env, "SHOPML_SHOPIFY_MAX_RETRIES", 5),
            shopify_max_calls_per_minute=_int(env, "SHOPML_SHOPIFY_MAX_CALLS_PER_MINUTE", 1000),
            backfill_history_days=_int(env, "SHOPML_BACKFILL_HISTORY_DAYS", 548),
            reconcile_overlap_minutes=_int(env, "SHOPML_RECONCILE_OVERLAP_MINUTES", 60),
            sync_state_url=env.get("SHOPML_SYNC_STATE") or f"file://{home / 'sync'}",
            privacy_exports_url=env.get("SHOPML_PRIVACY_EXPORTS") or f"file://{home / 'privacy-exports'}",
        )
        if settings.predict_sample_rate > 1:
            raise ConfigurationError("SHOPML_PREDICT_SAMPLE_RATE is a share of answers: 0 to 1")
        if settings.drift_correction not in ("holm", "bonferroni"):
            raise ConfigurationError(
                f"SHOPML_DRIFT_CORRECTION={settings.drift_correction!r}: choose holm (default) or bonferroni"
            )
        if settings.drift_alpha >= 1 or settings.drift_psi_bins < 2:
            raise ConfigurationError(
                "SHOPML_DRIFT_ALPHA must be below 1 and SHOPML_DRIFT_PSI_BINS at least 2"
            )
        if settings.accuracy_floor >= 1 or settings.drift_severe_importance > 1:
            raise ConfigurationError(
                "SHOPML_ACCURACY_FLOOR must be below 1 and SHOPML_DRIFT_SEVERE_IMPORTANCE at most 1 (shares)"
            )
        if not settings.reports_url.startswith(("file://", "gs://")):
            raise ConfigurationError(
                f"SHOPML_REPORTS={settings.reports_url!r}: use file:///dir or gs://bucket/prefix"
            )
        if settings.publisher not in ("group_commit", "client"):
            raise ConfigurationError(
                f"SHOPML_PUBLISHER={settings.publisher!r}: choose group_commit (default) or client"
            )
        if settings.metrics_export not in ("", "otlp"):
            raise ConfigurationError(
                f"SHOPML_METRICS_EXPORT={settings.metrics_export!r}: leave it empty (off) or set otlp"
            )
        if settings.gate_wape_grain not in ("weekly", "daily"):
            raise ConfigurationError(
                f"SHOPML_GATE_WAPE_GRAIN={settings.gate_wape_grain!r}: choose weekly (default) or daily"
            )
        if settings.training_backend not in ("local", "vertex"):
            raise ConfigurationError(
                f"SHOPML_TRAINING_BACKEND={settings.training_backend!r}: choose local (default) or vertex"
            )
        if not settings.registry_url.startswith(("file://", "gs://", "vertex://")):
            raise ConfigurationError(
                f"SHOPML_REGISTRY={settings.registry_url!r}: use file:///dir, gs://bucket/prefix "
                "or vertex://project/region"
            )
        if settings.slack_webhook_url and not settings.slack_webhook_url.startswith(("https://", "http://")):
            # The URL carries Slack's token: the message never shows it.
            raise ConfigurationError(
                "SHOPML_SLACK_WEBHOOK_URL must be an http(s) URL (a Slack incoming webhook)"
            )
        if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", settings.shopify_api_version):
            raise ConfigurationError(
                f"SHOPML_SHOPIFY_API_VERSION={settings.shopify_api_version!r}: a quarterly release "
                "(YYYY-01, -04, -07 or -10) or unstable"
            )
        if not settings.sync_state_url.startswith(("file://", "gs://")):
            raise ConfigurationError(
                f"SHOPML_SYNC_STATE={settings.sync_state_url!r}: use file:///dir or gs://bucket/prefix"
            )
        if not settings.privacy_exports_url.startswith(("file://", "gs://")):
            raise ConfigurationError(
                f"SHOPML_PRIVACY_EXPORTS={settings.privacy_exports_url!r}: use file:///dir or gs://bucket/prefix"
            )
        if settings.publish_timeout_seconds >= 5.0:
            raise ConfigurationError(
                "SHOPML_PUBLISH_TIMEOUT_SECONDS must stay below 5: Shopify abandons a delivery after 5 s"
            )
        return settings

    def topic_name(self, topic: str) -> str:
        """The deployed name of a topology topic (local runs may add a prefix)."""
        return f"{self.topic_prefix}{topic}"

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{self.topic_name(topic)}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{self.topic_name(subscription)}"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once, on first use."""
    return Settings.from_env()
