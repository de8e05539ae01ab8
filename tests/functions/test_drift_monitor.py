"""drift_monitor through the HTTP layer: a CloudEvent from drift-checks → a check over a real
DuckDB warehouse, a registry folder, an in-memory live pointer and a local Slack receiver."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devkit.local.slack_receiver import SlackReceiver
from shared import bootstrap
from shared.adapters.object_store_registry import ObjectStoreRegistry
from shared.adapters.object_stores import LocalObjectStore
from shared.bootstrap import close_warehouse, create_warehouse
from shared.monitoring import drift
from shared.monitoring.monitor import DriftMonitor, default_monitor, process_metrics
from shared.registry import register_model
from shared.serving.pointer import LivePointer
from shared.settings import Settings
from tests.fakes import RecordingPublisher
from tests.functions.test_deploy_and_rollback import post, push_event
from tests.serving_fakes import InMemoryPointerStore, model_card, tiny_onnx

MODEL = "demand"
FEATURES = ("horizon", "units_lag_7", "rmean_28", "price")
NOW = datetime.now(UTC).replace(microsecond=0)  # the function itself reads the real clock
VARIANTS = np.arange(1, 21)


def card_with_reference(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows = 5000
    matrix = np.column_stack(
        [
            rng.integers(1, 29, rows),
            rng.normal(5, 1, rows),
            rng.normal(10, 2, rows),
            rng.normal(20, 3, rows),
        ]
    )
    variants = rng.choice(VARIANTS, rows)
    card = model_card(features=FEATURES)
    card["reference_sample"] = {
        **drift.encode_sample(matrix, FEATURES),
        "variant_ids": drift.encode_ids(variants),
    }
    card["feature_importance"] = {
        "type": "gain",
        "share": {"horizon": 0.05, "units_lag_7": 0.6, "rmean_28": 0.25, "price": 0.1},
    }
    card["metrics"] = {"model": {"overall": {"wape": 0.5, "rmsse": {"weighted": 0.8}}}}
    return card


def prediction_rows(
    version: str, n: int, shift: dict[str, float] | None = None, seed: int = 1
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    shift = shift or {}
    out = []
    for i in range(n):
        features = {
            "horizon": 1.0,
            "units_lag_7": float(rng.normal(5, 1)) + shift.get("units_lag_7", 0.0),
            "rmean_28": float(rng.normal(10, 2)) + shift.get("rmean_28", 0.0),
            "price": float(rng.normal(20, 3)) + shift.get("price", 0.0),
        }
        out.append(
            {
                "prediction_id": f"{version}-{seed}-{i}",
                "shop_domain": "demo.myshopify.com",
                "variant_id": int(rng.choice(VARIANTS)),
                "model_version": version,
                "first_day": NOW.date(),
                "horizon_days": 1,
                "units": [1.0],
                "fallback": False,
                "fallback_reason": None,
                "features": json.dumps(features),
                "sample_rate": 1.0,
                "request_time": NOW - timedelta(minutes=int(rng.integers(1, 600))),
                "loaded_at": NOW,
            }
        )
    return out


class Parts:
    def __init__(self, root: Path, slack_url: str) -> None:
        self.settings = Settings.from_env(
            {
                "SHOPML_HOME": str(root),
                "SHOPML_WAREHOUSE": f"duckdb:///{root / 'warehouse.duckdb'}",
                "SHOPML_REPORTS": f"file://{root / 'reports'}",
                "SHOPML_SLACK_WEBHOOK_URL": slack_url,
            }
        )
        self.registry = ObjectStoreRegistry(LocalObjectStore(root / "registry"))
        self.pointers = InMemoryPointerStore()
        self.publisher = RecordingPublisher()
        self.warehouse = create_warehouse(self.settings)
        for version in ("1.0.0", "1.1.0"):
            register_model(
                self.registry,
                self.publisher,
                MODEL,
                version,
                tiny_onnx(),
                card_with_reference(),
                promote=True,
            )
        self.publisher.messages.clear()
        self.pointers.compare_and_swap(
            MODEL,
            0,
            LivePointer(MODEL, 1, "green", "1.1.0", "1.0.0", blue_version="1.0.0", green_version="1.1.0"),
        )

    def requests(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(data) for t, data, _ in self.publisher.messages if t == topic]

    def reports(self) -> list[dict[str, Any]]:
        return self.warehouse.query("SELECT * FROM drift_reports ORDER BY checked_at, check_id")


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


@pytest.fixture
def parts(tmp_path: Path, slack: SlackReceiver) -> Iterator[Parts]:
    made = Parts(tmp_path, slack.url)
    bootstrap.override(
        settings=made.settings,
        registry=made.registry,
        live_pointer=made.pointers,
        warehouse=made.warehouse,
        publisher=made.publisher,
    )
    yield made
    bootstrap.reset()
    close_warehouse(made.warehouse)


def check_event(message_id: str, body: bytes = b"{}") -> Any:
    return push_event(body, {}, "drift-checks", message_id=message_id)


def monitor(parts: Parts, clock: datetime = NOW) -> DriftMonitor:
    found = default_monitor()
    found.clock = lambda: clock
    return found


def test_a_quiet_window_is_recorded_without_alerts(parts: Parts, slack: SlackReceiver) -> None:
    parts.warehouse.insert_rows("predictions", prediction_rows("1.1.0", 1500))
    result = monitor(parts).check(MODEL, check_id="c-1")
    assert result.report is not None and result.report.drifted == []
    assert result.reference_scope["kind"] == "the served variants' training rows"
    assert result.verdict.alerts == [] and not result.rollback_requested and not result.training_requested
    assert slack.received() == [] and parts.publisher.messages == []
    (row,) = parts.reports()
    assert row["status"] == "checked" and row["current_rows"] == 1500 and row["features_judged"] == 3
    assert row["notification"] == "none" and Path(row["report_uri"][len("file://") :]).is_file()
    # horizon is the clock, not drift: never judged
    assert "horizon" not in json.loads(row["drift"])["features"]


def test_severe_drift_alerts_slack_and_asks_for_one_rollback(
    function_client: Any, parts: Parts, slack: SlackReceiver
) -> None:
    parts.warehouse.insert_rows("predictions", prediction_rows("1.1.0", 1500, {"units_lag_7": 4.0}))
    client = function_client("drift_monitor")
    assert post(client, check_event("c-1")).status_code == 200
    (rollback,) = parts.requests("rollback-requests")
    assert rollback["model"] == MODEL and rollback["requested_by"] == "drift_monitor"
    assert rollback["idempotency_key"] == f"drift_monitor:rollback:{MODEL}:1.1.0"
    assert "units_lag_7" in rollback["reason"] and rollback["evidence"]["current_rows"] == 1500
    assert rollback["evidence"]["drifted"]["units_lag_7"]["drifted"] is True
    (alert,) = slack.received()
    assert "severe_drift" in json.dumps(alert) and "units_lag_7" in json.dumps(alert)
    # The next hour: the same version still live (the rollback not applied yet): no second request.
    assert post(client, check_event("c-2")).status_code == 200
    assert len(parts.requests("rollback-requests")) == 1
    first, second = parts.reports()
    assert first["rollback_requested"] is True and second["rollback_requested"] is False
    assert any("already requested" in reason for reason in second["reasons"])
    assert first["severity"] == "severe" and first["drifted_features"] == ["units_lag_7"]
    assert first["notification"] == "delivered"
    metrics = process_metrics().text().decode()
    assert 'shopml_monitor_alert_state{alert="severe_drift",model="demand"} 1.0' in metrics
    assert 'shopml_drift_feature_drifted{feature="units_lag_7",model="demand"} 1.0' in metrics


def test_moderate_drift_asks_for_training_once_a_day(parts: Parts, slack: SlackReceiver) -> None:
    parts.warehouse.insert_rows("predictions", prediction_rows("1.1.0", 1500, {"price": 9.0}))
    first = monitor(parts).check(MODEL, check_id="c-1")
    second = monitor(parts, NOW + timedelta(hours=1)).check(MODEL, check_id="c-2")
    assert first.verdict.severity == "moderate" and first.training_requested and not first.rollback_requested
    assert not second.training_requested
    (request,) = parts.requests("training-requests")
    assert request["night"] == NOW.date().isoformat() and request["model"] == MODEL
    assert request["idempotency_key"] == f"drift_monitor:retrain:{MODEL}:{NOW.date()}"


def test_a_failing_slack_never_fails_the_check(parts: Parts, slack: SlackReceiver) -> None:
    slack.status, slack.body = 500, b"internal_error"
    parts.warehouse.insert_rows("predictions", prediction_rows("1.1.0", 1500, {"units_lag_7": 4.0}))
    result = monitor(parts).check(MODEL, check_id="c-1")
    assert result.rollback_requested and result.notification.startswith("failed")


def test_a_quiet_hour_does_not_alarm(parts: Parts) -> None:
    rows = prediction_rows("1.1.0", 100, {"units_lag_7": 4.0})
    # a thousand more views of the same inputs are the same 100 observations
    repeats = [{**row, "prediction_id": f"{row['prediction_id']}-{i}"} for i in range(10) for row in rows]
    parts.warehouse.insert_rows("predictions", rows + repeats)
    result = monitor(parts).check(MODEL, check_id="c-1")
    assert result.report is not None and result.report.drifted == [] and result.current_rows == 100
    assert {e.status for e in result.report.features.values()} == {"insufficient"}
    assert not result.verdict.alerts


def test_nothing_live_is_a_row_saying_so(parts: Parts) -> None:
    parts.pointers.delete(MODEL)
    result = monitor(parts).check(MODEL, check_id="c-1")
    assert result.status == "no_live_model"
    (row,) = parts.reports()
    assert row["status"] == "no_live_model" and row["live_version"] is None


def test_a_malformed_request_is_acknowledged(function_client: Any, parts: Parts) -> None:
    assert post(function_client("drift_monitor"), check_event("c-1", b"[not an object")).status_code == 200
    assert parts.reports() == []


def test_accuracy_is_scored_against_realised_sales(parts: Parts) -> None:
    """Forecasts for past days next to what sold (read_daily stands in for the feature SQL, which
    tests/integration covers): a model far worse than seasonal naive asks for a rollback."""
    first = NOW.date() - timedelta(days=10)
    rows = []
    for variant in VARIANTS:
        for offset in range(7):
            day = first + timedelta(days=offset)
            rows.append(
                {
                    "prediction_id": f"p-{variant}-{offset}",
                    "shop_domain": "demo.myshopify.com",
                    "variant_id": int(variant),
                    "model_version": "1.1.0",
                    "first_day": day,
                    "horizon_days": 1,
                    "units": [30.0],
                    "fallback": False,
                    "fallback_reason": None,
                    "features": None,
                    "sample_rate": 1.0,
                    "request_time": datetime.combine(day, datetime.min.time(), UTC),
                    "loaded_at": NOW,
                }
            )
    parts.warehouse.insert_rows("predictions", rows)

    def read_daily(start: date, end: date) -> pd.DataFrame:
        days = pd.date_range(start, end, freq="D")
        return pd.DataFrame(
            [
                {"variant_id": int(v), "date": d, "units": 2.0 + d.dayofweek % 3, "price": 2.0}
                for v in VARIANTS
                for d in days
            ]
        )

    found = monitor(parts)
    found.read_daily = read_daily
    found.settings = dataclasses.replace(found.settings, accuracy_min_rows=100)  # 140 rows scored
    result = found.check(MODEL, check_id="c-1")
    assert result.accuracy is not None and result.accuracy.rows == 140
    assert result.accuracy.value("seasonal_naive", "wape") == pytest.approx(0.0)
    assert result.accuracy.value("model", "wape") > 5  # 30 a day against 2 to 4 sold
    assert "worse_than_baseline" in result.verdict.alerts and result.rollback_requested
    (row,) = parts.reports()
    assert row["shop_week_accuracy"] == pytest.approx(result.accuracy.shop_week["accuracy"])
    assert row["shop_week_accuracy"] < 0.85 and "accuracy_floor" in row["alerts"]


def test_accuracy_is_scored_once_a_day_and_reused_by_later_checks(parts: Parts) -> None:
    day = NOW.date() - timedelta(days=3)
    parts.warehouse.insert_rows(
        "predictions",
        [
            {
                **prediction_rows("1.1.0", 1, seed=9)[0],
                "prediction_id": f"acc-{v}",
                "variant_id": int(v),
                "first_day": day,
                "units": [5.0],
                "features": None,
            }
            for v in VARIANTS
        ],
    )
    reads: list[tuple[date, date]] = []

    def read_daily(start: date, end: date) -> pd.DataFrame:
        reads.append((start, end))
        return pd.DataFrame(
            [{"variant_id": int(v), "date": pd.Timestamp(day), "units": 4.0} for v in VARIANTS]
        )

    first = monitor(parts)
    first.read_daily = read_daily
    scored = first.check(MODEL, check_id="c-1")
    later = monitor(parts, NOW + timedelta(seconds=1))  # the same day
    later.read_daily = read_daily
    reused = later.check(MODEL, check_id="c-2")
    assert len(reads) == 1 and scored.accuracy is not None and reused.accuracy is not None
    assert reused.accuracy.rows == scored.accuracy.rows == len(VARIANTS)
    assert reused.accuracy.value("model", "wape") == pytest.approx(scored.accuracy.value("model", "wape"))
    assert any("sales change once a day" in note for note in reused.notes)
