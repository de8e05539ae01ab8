"""What the predict tests share: two real ONNX models (LightGBM → ONNX, as the trainer exports
them) in a real local registry folder, an in-memory live pointer store, a feature server stand-in
and the ASGI app served the way functions-framework serves it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shared.adapters.object_stores import LocalObjectStore
from shared.features.online import FeatureServerUnavailable, FeatureValue
from shared.features.views import VARIANT_HISTORY, VARIANT_STATE
from shared.ports import LivePointerStore
from shared.registry import store_version_files
from shared.serving.pointer import LivePointer, deploy
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MODEL = "demand"
SHOP = "demo.myshopify.com"
OTHER_SHOP = "other.myshopify.com"
KEY = "key-demo-0123456789"
OTHER_KEY = "key-other-9876543210"
APP_SECRET = "hush"
ORIGIN = "https://demo.myshopify.com"
NOW = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
TODAY = datetime(2026, 12, 1, tzinfo=UTC)


def settings(**env: str) -> Settings:
    base = {
        "SHOPML_PREDICT_KEYS": f"{SHOP}={KEY},{OTHER_SHOP}={OTHER_KEY}",
        "SHOPIFY_WEBHOOK_SECRETS": f"other-secret,{APP_SECRET}",
        "SHOPML_PREDICT_CORS_ORIGINS": ORIGIN,
        "SHOPML_PREDICT_SAMPLE_RATE": "0",
        "SHOPML_POINTER_MAX_AGE_SECONDS": "1000",
    }
    base.update(env)
    return Settings.from_env(base)


def train_onnx(scale: float, seed: int) -> tuple[bytes, Any]:
    """A small LightGBM model on the trainer's feature layout: units ≈ scale × rmean_28 + weekday
    effect; exported to ONNX the trainer's way. Returns (onnx bytes, booster)."""
    import lightgbm

    from shared.training import export
    from shared.training.dataset import MODEL_FEATURES

    rng = np.random.default_rng(seed)
    n = 3000
    features = rng.uniform(0, 20, size=(n, len(MODEL_FEATURES)))
    names = list(MODEL_FEATURES)
    features[:, names.index("horizon")] = rng.integers(1, 29, n)
    features[:, names.index("dow")] = rng.integers(1, 8, n)
    rmean = features[:, names.index("rmean_28")]
    label = scale * rmean + (features[:, names.index("dow")] >= 6) * 2.0
    features = features.astype(np.float32).astype(np.float64)
    booster = lightgbm.train(
        {"objective": "regression", "verbose": -1, "num_leaves": 15, "seed": seed},
        lightgbm.Dataset(features, label),
        num_boost_round=40,
    )
    return export.to_onnx(booster, len(MODEL_FEATURES)), booster


def card(version: str, **changes: Any) -> dict[str, Any]:
    from shared.training.dataset import MISSING, MODEL_FEATURES

    base: dict[str, Any] = {
        "version": version,
        "features": list(MODEL_FEATURES),
        "input": {"name": "features", "dtype": "float32", "missing_value": MISSING},
        "product_types": ["Hats", "Shirts"],
        "shops": [SHOP],
        "best_baseline": "moving_average_28",
    }
    base.update(changes)
    return base


def write_version(
    root: Path, version: str, onnx_model: bytes, model_card: Mapping[str, Any]
) -> LocalObjectStore:
    store = LocalObjectStore(root)
    store_version_files(store, MODEL, version, onnx_model, model_card)
    return store


class MemoryPointerStore:
    """A ``LivePointerStore`` in a dict: compare-and-swap under a lock; no listener."""

    def __init__(self) -> None:
        self.pointers: dict[str, LivePointer] = {}
        self.reads = 0
        self.fail = False
        self._lock = threading.Lock()

    def get(self, model: str) -> LivePointer:
        if self.fail:
            raise FeatureServerUnavailable("store down")  # a TransientError, as the adapter raises
        with self._lock:
            self.reads += 1
            return self.pointers.get(model, LivePointer(model))

    def compare_and_swap(self, model: str, expected_generation: int, new: LivePointer) -> bool:
        with self._lock:
            if self.pointers.get(model, LivePointer(model)).generation != expected_generation:
                return False
            self.pointers[model] = new
            return True

    def watch(self, model: str, callback: Callable[[LivePointer], None]) -> Callable[[], None]:
        raise NotImplementedError

    def deploy(self, version: str) -> LivePointer:
        current = self.get(MODEL)
        new = deploy(current, version, NOW, f"deploy {version}")
        assert self.compare_and_swap(MODEL, current.generation, new)
        return new

    def set(self, pointer: LivePointer) -> None:
        with self._lock:
            self.pointers[pointer.model] = replace(
                pointer, generation=self.pointers.get(MODEL, pointer).generation + 1
            )


def online_row(
    *,
    rmean_28: float = 5.0,
    history_time: datetime = TODAY,
    state_time: datetime = TODAY,
    product_type: str | None = "Shirts",
    price: float = 19.5,
    inventory: int = 12,
) -> dict[str, FeatureValue]:
    """One variant's row as the feature server reports it (values, statuses, event times)."""
    history = {
        "lag_1": 4.0,
        "lag_7": 6.0,
        "lag_14": 5.0,
        "lag_28": 3.0,
        "rmean_7": 5.5,
        "rstd_7": 1.2,
        "rmean_28": rmean_28,
        "rstd_28": 1.9,
        "product_type": product_type,
        "product_age_days": 120,
    }
    others = {name: 0.5 for name in VARIANT_HISTORY.features if name not in history}  # shares, recency
    row = {
        name: FeatureValue(value, "PRESENT", history_time) for name, value in {**history, **others}.items()
    }
    state = {"price": price, "discount": 0.0, "inventory_on_hand": inventory}
    row.update({name: FeatureValue(value, "PRESENT", state_time) for name, value in state.items()})
    assert set(state) == set(VARIANT_STATE.features)
    return row


class FeatureServer:
    """Stands in for ``OnlineFeatures.read``: rows per variant; ``down`` makes it unavailable."""

    def __init__(self, rows: Mapping[int, Mapping[str, FeatureValue]]) -> None:
        self.rows = dict(rows)
        self.down = False
        self.broken = False  # raise what no caller expects (a bug), not the documented failure
        self.calls = 0

    def read(self, variant_ids: list[int], features: tuple[str, ...]) -> dict[int, dict[str, FeatureValue]]:
        self.calls += 1
        if self.broken:
            raise RuntimeError("an unexpected bug")
        if self.down:
            raise FeatureServerUnavailable("feature server /get-online-features: ConnectionError")
        not_found = FeatureValue(None, "NOT_FOUND", None)
        return {
            vid: {name: dict(self.rows.get(vid, {})).get(name, not_found) for name in features}
            for vid in variant_ids
        }


def serve(
    config: Settings,
    pointers: LivePointerStore,
    store: LocalObjectStore,
    features: FeatureServer | None,
    publisher: Any,
    **options: Any,
) -> tuple[Any, Any]:
    """A Starlette test client on ``functions/predict/main.py`` as functions-framework's ASGI
    app serves it, and the runtime installed in it (``predict_app.use``); the clock is ``NOW``."""
    from functions_framework.aio import create_asgi_app
    from starlette.testclient import TestClient

    from shared.serving import predict_app
    from shared.serving.slots import object_store_files

    app = create_asgi_app("predict", str(REPO / "functions" / "predict" / "main.py"))
    options.setdefault("now", lambda: NOW)
    options.setdefault("wall", NOW.timestamp)
    runtime = predict_app.build_runtime(
        config,
        pointers=pointers,
        files=object_store_files(store),
        read_features=features.read if features is not None else None,
        publisher=lambda: publisher,
        **options,
    )
    predict_app.use(runtime)
    client = TestClient(app, raise_server_exceptions=False)
    # Entered, the client keeps one event loop for all its requests, as uvicorn does: without
    # it each request gets a loop of its own that is closed when the answer is back, cancelling
    # the background send of a sampled answer if it has not started yet (a flaky test on CI).
    client.__enter__()
    OPEN_CLIENTS.append(client)
    return client, runtime


OPEN_CLIENTS: list[Any] = []


def close_clients() -> None:
    """Leave every client ``serve`` entered (``tests/functions/conftest.py`` calls it after each test)."""
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().__exit__(None, None, None)
