"""Drift monitoring on the real local parts: Feast's feature server feeding ``predict``, the
sampled answers loaded into ``predictions``, ``drift_monitor`` on ``drift-checks``, a local
Slack receiver, and ``rollback`` flipping the Firestore live pointer.

The storefront's inputs shift (the online history features x4) → the drift check finds it,
alerts Slack, asks for one rollback → the previous version serves; the next check asks for no
second rollback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from devkit.local.slack_receiver import SlackReceiver
from devkit.local.stack import LOCAL_SHOPS, LocalStack, StackInfo, local_predict_key
from shared import bootstrap
from shared.adapters.firestore_pointer import FirestorePointerStore
from shared.features import COLUMNS, HISTORY
from shared.monitoring import drift
from shared.registry import register_model
from shared.training.dataset import MODEL_FEATURES
from tests.integration import waiting
from tests.serving_fakes import model_card, tiny_onnx

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "demand"
SHOP = LOCAL_SHOPS[0]
VARIANTS = list(range(201, 241))
TODAY = datetime.now(UTC).date()


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    return waiting.wait_for(what, check, timeout_s)


def feature_frame(scale: float, seed: int) -> Any:
    """One row per variant for today; the history columns multiplied by ``scale``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for variant in VARIANTS:
        row: dict[str, Any] = dict.fromkeys(COLUMNS, 0.0)
        row.update(
            shop_domain=SHOP,
            variant_id=variant,
            product_id=variant // 4,
            date=datetime.combine(TODAY, datetime.min.time()),
            product_type="Shirts",
            product_age_days=float(rng.integers(30, 400)),
            price=float(rng.normal(20, 3)),
            inventory_on_hand=float(rng.integers(0, 50)),
            dow=float(TODAY.isoweekday()),
            month=float(TODAY.month),
        )
        for name in HISTORY:
            row[name] = float(rng.gamma(2.0, 2.0)) * scale
        for k in range(1, 8):
            row[f"shop_trading_dow{k}"] = 1.0
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, slack: SlackReceiver) -> Iterator[StackInfo]:
    extra = {
        "SHOPML_DEPLOY_LATENCY_BUDGET_MS": "60000",
        "SHOPML_DEPLOY_LATENCY_SAMPLES": "10",
        "SHOPML_PREDICT_SAMPLE_RATE": "1",
        "SHOPML_SLACK_WEBHOOK_URL": slack.url,
        # 40 variants, one day: 40 observations a day (each distinct input of a variant-day once)
        "SHOPML_DRIFT_MIN_CURRENT_ROWS": "30",
        "SHOPML_DRIFT_MIN_REFERENCE_ROWS": "30",
        # 40 variants per call on a shared 2-core machine: the 50 ms budget would make some
        # answers fallbacks (feature_server_unavailable), whose inputs are not logged.
        "SHOPML_FEATURE_TIMEOUT_MS": "3000",
    }
    with LocalStack(
        tmp_path_factory.mktemp("drift"),
        functions=["predict", "deploy_model", "rollback", "load_predictions", "drift_monitor"],
        extra_env=extra,
        feature_server=True,
    ) as info:
        yield info


def materialize(info: StackInfo, scale: float, seed: int) -> None:
    from shared.features import store

    home = Path(info.home)
    store.export_offline(feature_frame(scale, seed), home, created=datetime.now(UTC))
    store.apply(home)
    store.materialize(home, TODAY - timedelta(days=3), TODAY)


def ask(info: StackInfo) -> dict[str, Any]:
    response = requests.post(
        info.url("predict") + "/",
        json={"shop_domain": SHOP, "horizon_days": 1, "items": [{"variant_id": v} for v in VARIANTS]},
        headers={"Authorization": f"Bearer {local_predict_key(SHOP)}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def query(info: StackInfo, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    warehouse = bootstrap.create_warehouse(info.settings())
    try:
        return warehouse.query(sql, params or {})
    finally:
        bootstrap.close_warehouse(warehouse)


def logged(info: StackInfo, version: str) -> list[dict[str, Any]]:
    return query(
        info,
        "SELECT variant_id, features FROM predictions WHERE model_version = @v AND fallback = FALSE",
        {"v": version},
    )


def serve_until_logged(info: StackInfo, version: str, rows: int) -> None:
    before = len(logged(info, version))
    for _ in range(-(-rows // len(VARIANTS))):
        answer = ask(info)
        fell_back = [p["variant_id"] for p in answer["predictions"] if p["fallback"]]
        assert answer["model_version"] == version and not fell_back, (answer["model_version"], fell_back)
    wait_for(f"{rows} logged answers of {version}", lambda: len(logged(info, version)) >= before + rows)


def register(info: StackInfo, version: str, card: dict[str, Any]) -> None:
    bootstrap.override(settings=info.settings())
    try:
        register_model(
            bootstrap.registry(),
            bootstrap.publisher(),
            MODEL,
            version,
            tiny_onnx(len(MODEL_FEATURES)),
            card,
            promote=True,
        )
    finally:
        bootstrap.reset()


def live(info: StackInfo) -> Any:
    settings = info.settings()
    return FirestorePointerStore(settings.project, emulator_host=settings.firestore_emulator_host).get(MODEL)


def check(info: StackInfo) -> dict[str, Any]:
    """Publish a drift check as Cloud Scheduler does; the drift_reports row it writes."""
    before = len(query(info, "SELECT check_id FROM drift_reports"))
    bootstrap.override(settings=info.settings())
    try:
        bootstrap.publisher().publish("drift-checks", json.dumps({"model": MODEL}).encode(), {})
    finally:
        bootstrap.reset()

    def written() -> list[dict[str, Any]]:
        found = query(info, "SELECT * FROM drift_reports ORDER BY checked_at")
        return found if len(found) > before else []

    rows = wait_for("the drift check's row", written, timeout_s=90)
    return dict(rows[-1])


def base_card() -> dict[str, Any]:
    return {**model_card(features=MODEL_FEATURES), "shops": [SHOP], "product_types": ["Shirts"]}


def test_shifted_inputs_alert_and_roll_back_once(stack: StackInfo, slack: SlackReceiver) -> None:
    materialize(stack, 1.0, seed=1)
    # 1.0.0 goes live; what the storefront's calls feed it is the reference of 1.1.0 (the inputs
    # as predict builds them, with their variants), so an unchanged world shows no drift.
    register(stack, "1.0.0", base_card())
    wait_for("1.0.0 live", lambda: live(stack).live_version == "1.0.0")
    wait_for("the model answering from online features", lambda: not ask(stack)["fallback"], timeout_s=30)
    serve_until_logged(stack, "1.0.0", 600)
    inputs = logged(stack, "1.0.0")
    # one reference row per variant-day, as the trainer's sample has (JSON: a dict from DuckDB)
    distinct = {row["variant_id"]: row["features"] for row in inputs}
    vectors = list(distinct.values())
    matrix = np.array([[vector[name] for name in MODEL_FEATURES] for vector in vectors])
    card = base_card()
    card["reference_sample"] = {
        **drift.encode_sample(matrix, MODEL_FEATURES),
        "variant_ids": drift.encode_ids(np.array(list(distinct))),
    }
    card["feature_importance"] = {
        "type": "gain",
        "share": {name: (0.9 / len(HISTORY) if name in HISTORY else 0.0) for name in MODEL_FEATURES},
    }
    register(stack, "1.1.0", card)
    wait_for("1.1.0 live", lambda: live(stack).live_version == "1.1.0")

    serve_until_logged(stack, "1.1.0", 400)
    quiet = check(stack)
    assert quiet["live_version"] == "1.1.0" and quiet["status"] == "checked", quiet
    assert quiet["drifted_features"] == [] and quiet["alerts"] == [], quiet["reasons"]
    assert quiet["features_judged"] >= len(HISTORY) and quiet["current_rows"] == len(VARIANTS)
    assert json.loads(quiet["reference_scope"])["kind"] == "the served variants' training rows"
    assert slack.received() == []

    materialize(stack, 4.0, seed=2)  # the world moved: every history feature x4
    serve_until_logged(stack, "1.1.0", 800)
    started = time.monotonic()
    found = check(stack)
    assert found["severity"] == "severe" and found["rollback_requested"] is True, found["reasons"]
    assert set(found["drifted_features"]) & set(HISTORY)
    assert found["rollback_key"] == f"drift_monitor:rollback:{MODEL}:1.1.0"
    assert Path(found["report_uri"][len("file://") :]).is_file()
    wait_for("1.0.0 serving again", lambda: ask(stack)["model_version"] == "1.0.0", timeout_s=30)
    rollback_seconds = time.monotonic() - started
    (alert,) = slack.received()
    assert "severe_drift" in json.dumps(alert)
    assert rollback_seconds < 60

    # The next check: 1.0.0 is live now (its card has no reference sample): no second rollback.
    again = check(stack)
    assert again["live_version"] == "1.0.0" and again["rollback_requested"] is False
    rollbacks = query(
        stack,
        "SELECT version, requested_by, idempotency_key FROM model_deployments WHERE action = 'rollback'",
    )
    assert rollbacks == [
        {"version": "1.0.0", "requested_by": "drift_monitor", "idempotency_key": found["rollback_key"]}
    ]
