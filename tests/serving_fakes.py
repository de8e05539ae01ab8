"""Fakes and builders for the serving tests: an in-memory ``LivePointerStore``, model cards shaped
like the trainer's, and small real ONNX models (LightGBM converted as the trainer does)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np

from shared.errors import PermanentError
from shared.serving.pointer import LivePointer

FEATURES: tuple[str, ...] = ("horizon", "units_lag_7", "rmean_28", "price")


class InMemoryPointerStore:
    """``LivePointerStore`` in a dict: compare-and-swap under a lock, ``watch`` by callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pointers: dict[str, LivePointer] = {}
        self._watchers: dict[str, list[Callable[[LivePointer], None]]] = {}
        self.writes = 0

    def get(self, model: str) -> LivePointer:
        with self._lock:
            return self._pointers.get(model) or LivePointer(model)

    def compare_and_swap(self, model: str, expected_generation: int, new: LivePointer) -> bool:
        if new.model != model or new.generation != expected_generation + 1:
            raise PermanentError(
                f"a new pointer for {model!r} from generation {expected_generation} must be model "
                f"{model!r}, generation {expected_generation + 1} (got {new.model!r}, {new.generation})"
            )
        with self._lock:
            current = self._pointers.get(model)
            if (current.generation if current else 0) != expected_generation:
                return False
            self._pointers[model] = new
            self.writes += 1
            watchers = list(self._watchers.get(model, ()))
        for callback in watchers:
            callback(new)
        return True

    def watch(self, model: str, callback: Callable[[LivePointer], None]) -> Callable[[], None]:
        with self._lock:
            self._watchers.setdefault(model, []).append(callback)
        callback(self.get(model))

        def stop() -> None:
            with self._lock:
                if callback in self._watchers.get(model, []):
                    self._watchers[model].remove(callback)

        return stop

    def delete(self, model: str) -> None:
        with self._lock:
            self._pointers.pop(model, None)


class RecordingWarehouse:
    """A ``Warehouse`` that keeps inserted rows per table (the deploy use cases only insert)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def ensure_schema(self) -> None:
        return None

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str] | None = None
    ) -> None:
        with self._lock:
            self.rows.setdefault(table, []).extend(dict(r) for r in rows)

    def write_batch(
        self,
        rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]],
        row_ids_by_table: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        for table, rows in rows_by_table.items():
            self.insert_rows(table, rows)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError("the deploy use cases never query")


def model_card(
    *,
    decision: str = "promote",
    baseline_verdict: str = "pass",
    champion_decision: str = "promote",
    parity_ok: bool | None = True,
    features: Sequence[str] = FEATURES,
    reasons: Sequence[str] = (),
) -> dict[str, Any]:
    """A card with the fields the deploy gates read, as the trainer writes them."""
    quantiles = {
        f"{q:g}": float(q * 10) for q in (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
    }
    card: dict[str, Any] = {
        "features": list(features),
        "input": {
            "name": "features",
            "dtype": "float32",
            "shape": [None, len(features)],
            "missing_value": -1.0,
        },
        "decision": decision,
        "reasons": list(reasons),
        "gate": {"verdict": baseline_verdict, "reasons": list(reasons), "best_baseline": "moving_average_28"},
        "best_baseline": "moving_average_28",
        "champion": {"version": None, "decision": champion_decision},
        "reference_distributions": {
            name: {"count": 100, "missing_fraction": 0.1, "quantiles": quantiles} for name in features
        },
    }
    if parity_ok is not None:
        card["parity"] = {
            "max_abs_diff": 1e-6,
            "rows": 100,
            "violations": 0 if parity_ok else 3,
            "ok": parity_ok,
        }
    return card


@cache
def tiny_onnx(n_features: int = len(FEATURES), negative: bool = False) -> bytes:
    """A small LightGBM model as ONNX (float32 input ``features``), trained on random rows.

    ``negative``: an L2 model fitted to a target below zero, so its forecasts are negative
    (what the smoke gate must refuse); otherwise a Tweedie model (non-negative, as trained)."""
    import lightgbm
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(3)
    x = rng.uniform(0, 10, size=(400, n_features)).astype(np.float32)
    y = x[:, 0] * 0.5 + rng.poisson(2, size=400)
    params = {"objective": "tweedie", "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5}
    if negative:
        y = -y - 5
        params["objective"] = "regression"
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=20)
    model = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        target_opset=15,
        zipmap=False,
    )
    return bytes(model.SerializeToString())
