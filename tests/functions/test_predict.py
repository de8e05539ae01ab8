"""predict through its HTTP layer (functions-framework's ASGI app, real ONNX models, real
registry folder): every status code, both kinds of credentials, the fallbacks, CORS, metrics,
the prediction sample, and following the live pointer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest

from shared.serving.auth import app_proxy_signature
from shared.serving.forecast import ONLINE_FEATURES, ModelSpec, item_rows
from shared.serving.pointer import rollback
from shared.serving.prediction_log import prediction_rows
from shared.serving.request import Item
from tests.fakes import RecordingPublisher
from tests.functions.predict_support import (
    APP_SECRET,
    KEY,
    NOW,
    ORIGIN,
    OTHER_KEY,
    OTHER_SHOP,
    REPO,
    SHOP,
    FeatureServer,
    MemoryPointerStore,
    card,
    online_row,
    serve,
    settings,
    train_onnx,
    write_version,
)

VARIANTS = {101: online_row(rmean_28=5.0), 102: online_row(rmean_28=12.0, product_type="Hats")}


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[bytes, Any]]:
    return {"1.0.0": train_onnx(1.0, seed=1), "2.0.0": train_onnx(3.0, seed=2)}


@pytest.fixture
def registry(tmp_path: Path, models: dict[str, tuple[bytes, Any]]) -> Any:
    store = None
    for version, (onnx_model, _) in models.items():
        store = write_version(tmp_path / "registry", version, onnx_model, card(version))
    return store


@pytest.fixture
def pointers() -> MemoryPointerStore:
    store = MemoryPointerStore()
    store.deploy("1.0.0")
    return store


@pytest.fixture
def features() -> FeatureServer:
    return FeatureServer(VARIANTS)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def client(
    registry: Any, pointers: MemoryPointerStore, features: FeatureServer, publisher: RecordingPublisher
) -> Any:
    test_client, _ = serve(settings(), pointers, registry, features, publisher)
    return test_client


def body(*variants: int, horizon: int = 7, shop: str = SHOP, **extra: Any) -> dict[str, Any]:
    return {
        "shop_domain": shop,
        "horizon_days": horizon,
        "items": [{"variant_id": v} for v in variants],
        **extra,
    }


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def proxy_query(
    shop: str = SHOP, *, timestamp: float | None = None, customer: str = "", secret: str = APP_SECRET
) -> str:
    """An app-proxy query as Shopify forwards it, signed with ``secret``."""
    params = [
        ("shop", shop),
        ("logged_in_customer_id", customer),
        ("path_prefix", "/apps/forecast"),
        ("timestamp", str(int(NOW.timestamp() if timestamp is None else timestamp))),
    ]
    signature = app_proxy_signature(params, secret)
    return urlencode([*params, ("signature", signature)])


def expected_units(
    booster: Any, version_card: dict[str, Any], row: dict[str, Any], horizon: int
) -> list[float]:
    """What native LightGBM forecasts on the rows serving builds (rounded as the answer is)."""
    from shared.serving.forecast import fresh_values

    rows = item_rows(
        ModelSpec.from_card("x", version_card), fresh_values(row, NOW), Item(1), NOW.date(), horizon
    )
    return [round(max(0.0, float(u)), 4) for u in booster.predict(rows.astype(np.float64))]


# -- 200 -------------------------------------------------------------------------------------


def test_a_keyed_request_gets_the_live_models_forecast_per_horizon(client: Any, models: Any) -> None:
    response = client.post("/", json=body(101, 102, horizon=7), headers=bearer())
    assert response.status_code == 200
    answer = response.json()
    assert response.headers["X-Model-Version"] == answer["model_version"] == "1.0.0"
    assert answer["first_day"] == "2026-12-01"
    assert answer["fallback"] is False
    assert [p["variant_id"] for p in answer["predictions"]] == [101, 102]
    booster = models["1.0.0"][1]
    for prediction in answer["predictions"]:
        assert prediction["fallback"] is False
        assert len(prediction["units"]) == 7
        # ONNX Runtime on the instance agrees with native LightGBM on the same rows.
        native = expected_units(booster, card("1.0.0"), VARIANTS[prediction["variant_id"]], 7)
        assert prediction["units"] == pytest.approx(native, abs=1e-3)
    assert answer["predictions"][0]["units"] != answer["predictions"][1]["units"]


def test_an_app_proxy_request_with_a_valid_signature_is_answered(client: Any) -> None:
    response = client.post(f"/?{proxy_query()}", json=body(101, horizon=3))
    assert response.status_code == 200
    assert len(response.json()["predictions"][0]["units"]) == 3


def published(publisher: RecordingPublisher) -> list[dict[str, Any]]:
    """The rows of the prediction samples published so far (they are sent in the background)."""
    deadline = time.monotonic() + 10  # generous: a loaded CI machine delays the background send
    while not publisher.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    return [row for _, data, _ in publisher.messages for row in prediction_rows(data, "m", NOW)[0]]


def test_prices_and_stock_the_storefront_sends_win_over_the_online_store(
    registry: Any, pointers: MemoryPointerStore, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    test_client, _ = serve(settings(SHOPML_PREDICT_SAMPLE_RATE="1"), pointers, registry, features, publisher)
    request = body(101)
    request["items"][0].update(price=999.0, inventory_on_hand=0, discount=0.25)
    assert test_client.post("/", json=request, headers=bearer()).json()["predictions"][0]["fallback"] is False
    [row] = published(publisher)
    assert (row["features"]["price"], row["features"]["inventory_on_hand"]) == (999.0, 0.0)
    assert row["features"]["discount"] == 0.25
    assert row["features"]["lag_7"] == 6.0  # the rest still from the online store


# -- 405, 413 --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_a_wrong_method_is_405_before_anything_else(client: Any, method: str) -> None:
    response = client.request(method, "/", content=b"x" * 100_000)  # no credentials, oversized
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_a_body_over_the_limit_is_413_before_credentials_are_checked(
    registry: Any, pointers: MemoryPointerStore, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    test_client, _ = serve(
        settings(SHOPML_PREDICT_MAX_BODY_BYTES="2048"), pointers, registry, features, publisher
    )
    big = json.dumps(body(*range(1, 400))).encode()
    assert len(big) > 2048
    response = test_client.post("/", content=big)  # and no credentials
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


# -- 401 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "missing"),
        ({"Authorization": f"Bearer {KEY}x"}, "tampered key"),
        ({"Authorization": f"Bearer {KEY[:-1]}"}, "truncated key"),
        ({"Authorization": KEY}, "no Bearer scheme"),
        ({"Authorization": "Bearer "}, "empty key"),
    ],
)
def test_missing_or_wrong_keys_are_401(client: Any, headers: dict[str, str], why: str) -> None:
    response = client.post("/", json=body(101), headers=headers)
    assert response.status_code == 401, why
    assert response.json()["error"] == "unauthorized"
    assert KEY not in response.text


def test_a_key_for_another_shop_is_401_wrong_shop(client: Any) -> None:
    response = client.post("/", json=body(101, shop=SHOP), headers=bearer(OTHER_KEY))
    assert response.status_code == 401
    assert response.json()["error"] == "wrong_shop"


def test_credentials_are_checked_before_the_body(client: Any) -> None:
    assert client.post("/", content=b"{not json", headers={}).status_code == 401
    wrong_shop_bad_horizon = body(101, shop=OTHER_SHOP, horizon=99)
    response = client.post("/", json=wrong_shop_bad_horizon, headers=bearer())
    assert (response.status_code, response.json()["error"]) == (401, "wrong_shop")


def test_a_tampered_app_proxy_query_is_401(client: Any) -> None:
    query = proxy_query().replace("path_prefix=%2Fapps%2Fforecast", "path_prefix=%2Fapps%2Fother")
    assert client.post(f"/?{query}", json=body(101)).status_code == 401
    forged = proxy_query(secret="not-the-app-secret")
    assert client.post(f"/?{forged}", json=body(101)).status_code == 401
    shop_swapped = proxy_query().replace(f"shop={SHOP}", f"shop={OTHER_SHOP}")
    assert client.post(f"/?{shop_swapped}", json=body(101, shop=OTHER_SHOP)).status_code == 401


def test_an_app_proxy_signature_for_another_shop_is_401_wrong_shop(client: Any) -> None:
    response = client.post(f"/?{proxy_query(OTHER_SHOP)}", json=body(101, shop=SHOP))
    assert (response.status_code, response.json()["error"]) == (401, "wrong_shop")


def test_an_old_app_proxy_signature_is_401(client: Any) -> None:
    stale = proxy_query(timestamp=NOW.timestamp() - 600)
    assert client.post(f"/?{stale}", json=body(101)).status_code == 401


def test_a_bad_signature_is_not_rescued_by_a_good_key(client: Any) -> None:
    forged = proxy_query(secret="wrong")
    assert client.post(f"/?{forged}", json=body(101), headers=bearer()).status_code == 401


# -- 400 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "invalid_body"),
        (json.dumps({"shop_domain": SHOP, "items": [{"variant_id": 1}]}).encode(), "missing_field"),
        (json.dumps({"shop_domain": SHOP, "horizon_days": 7}).encode(), "missing_field"),
        (json.dumps({**body(101), "horizon_days": "7"}).encode(), "invalid_type"),
        (json.dumps({**body(101), "horizon_days": 7.0}).encode(), "invalid_type"),
        (json.dumps(body(101, horizon=0)).encode(), "horizon_out_of_range"),
        (json.dumps(body(101, horizon=29)).encode(), "horizon_out_of_range"),
        (json.dumps({**body(101), "items": "101"}).encode(), "invalid_type"),
        (json.dumps({**body(101), "items": []}).encode(), "invalid_value"),
        (json.dumps({**body(101), "items": [101]}).encode(), "invalid_type"),
        (json.dumps({**body(101), "items": [{"sku": "x"}]}).encode(), "missing_field"),
        (json.dumps({**body(101), "items": [{"variant_id": "101"}]}).encode(), "invalid_type"),
        (json.dumps({**body(101), "items": [{"variant_id": True}]}).encode(), "invalid_type"),
        (json.dumps({**body(101), "items": [{"variant_id": -5}]}).encode(), "invalid_value"),
        (json.dumps({**body(101), "items": [{"variant_id": 1, "price": -1}]}).encode(), "invalid_value"),
        (json.dumps({**body(101), "items": [{"variant_id": 1, "discount": 2}]}).encode(), "invalid_value"),
        (
            json.dumps({**body(101), "items": [{"variant_id": 1, "inventory_on_hand": "4"}]}).encode(),
            "invalid_type",
        ),
        (json.dumps(body(*range(1, 102))).encode(), "too_many_items"),
    ],
)
def test_bad_bodies_are_400_with_a_code_and_what_to_fix(client: Any, payload: bytes, code: str) -> None:
    response = client.post("/", content=payload, headers={**bearer(), "Content-Type": "application/json"})
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == code
    assert answer["message"] and "Traceback" not in answer["message"]


def test_a_shop_domain_of_the_wrong_type_is_400_not_401(client: Any) -> None:
    response = client.post("/", json=body(101, shop=123), headers=bearer())  # type: ignore[arg-type]
    assert (response.status_code, response.json()["error"]) == (400, "invalid_type")


# -- fallbacks -------------------------------------------------------------------------------


def fallback_of(
    client: Any, *variants: int, headers: dict[str, str] | None = None, horizon: int = 5
) -> dict[str, Any]:
    response = client.post("/", json=body(*variants, horizon=horizon), headers=headers or bearer())
    assert response.status_code == 200
    return response.json()


def test_no_live_model_answers_the_28_day_average_flagged(
    registry: Any, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    test_client, _ = serve(settings(), MemoryPointerStore(), registry, features, publisher)
    response = test_client.post("/", json=body(101, 102, horizon=5), headers=bearer())
    answer = response.json()
    assert response.headers["X-Model-Version"] == answer["model_version"] == "none"
    assert answer["fallback"] is True
    assert [p["units"] for p in answer["predictions"]] == [[5.0] * 5, [12.0] * 5]
    assert all(p["fallback"] for p in answer["predictions"])


def test_a_shop_the_model_was_not_trained_on_gets_the_baseline(client: Any) -> None:
    response = client.post("/", json=body(101, horizon=4, shop=OTHER_SHOP), headers=bearer(OTHER_KEY))
    answer = response.json()
    assert answer["model_version"] == "1.0.0"
    assert answer["predictions"] == [{"variant_id": 101, "units": [5.0] * 4, "fallback": True}]


def test_zero_is_the_baseline_where_the_card_says_zero_was_best(
    tmp_path: Path, models: Any, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    store = write_version(
        tmp_path, "1.0.0", models["1.0.0"][0], card("1.0.0", best_baseline="zero", shops=["x"])
    )
    pointers = MemoryPointerStore()
    pointers.deploy("1.0.0")
    test_client, _ = serve(settings(), pointers, store, features, publisher)
    answer = fallback_of(test_client, 102, horizon=3)
    assert answer["predictions"] == [{"variant_id": 102, "units": [0.0] * 3, "fallback": True}]


def test_stale_features_fall_back_unless_the_item_brings_its_own_state(
    client: Any, features: FeatureServer
) -> None:
    features.rows[201] = online_row(
        rmean_28=7.0, history_time=datetime(2026, 11, 25, tzinfo=UTC)
    )  # TTL 2 days
    features.rows[202] = online_row(rmean_28=8.0, state_time=datetime(2026, 11, 20, tzinfo=UTC))  # TTL 3 days
    answer = fallback_of(client, 201, 202)
    assert answer["predictions"][0] == {
        "variant_id": 201,
        "units": [0.0] * 5,
        "fallback": True,
    }  # rmean_28 stale too
    assert answer["predictions"][1] == {"variant_id": 202, "units": [8.0] * 5, "fallback": True}
    request = body(202, horizon=5)
    request["items"][0].update(price=10.0, inventory_on_hand=3)
    own_state = client.post("/", json=request, headers=bearer()).json()["predictions"][0]
    assert own_state["fallback"] is False


def test_a_variant_without_history_gets_zeros_flagged(client: Any) -> None:
    answer = fallback_of(client, 999, 101)
    assert answer["predictions"][0] == {"variant_id": 999, "units": [0.0] * 5, "fallback": True}
    assert answer["predictions"][1]["fallback"] is False
    assert answer["fallback"] is True  # any item's fallback flags the answer


def test_feature_server_down_answers_from_what_the_instance_last_saw_flagged(
    client: Any, features: FeatureServer
) -> None:
    before = fallback_of(client, 101)["predictions"][0]
    features.down = True
    started = time.perf_counter()
    after = fallback_of(client, 101, 102 + 1000)
    assert time.perf_counter() - started < 2.0
    assert after["predictions"][0] == {**before, "fallback": True}  # same forecast, flagged
    assert after["predictions"][1] == {"variant_id": 1102, "units": [0.0] * 5, "fallback": True}


def test_no_feature_server_configured_answers_zeros_flagged(
    registry: Any, pointers: MemoryPointerStore, publisher: RecordingPublisher
) -> None:
    test_client, _ = serve(settings(), pointers, registry, None, publisher)
    answer = fallback_of(test_client, 101)
    assert answer["predictions"] == [{"variant_id": 101, "units": [0.0] * 5, "fallback": True}]


def test_an_unexpected_failure_is_a_503_without_a_stack_trace(client: Any, features: FeatureServer) -> None:
    features.broken = True
    response = client.post("/", json=body(101), headers=bearer())
    assert response.status_code == 503
    assert response.json() == {"error": "internal", "message": "temporary failure; retry later"}


def test_a_model_whose_input_does_not_match_its_card_is_never_switched_to(
    tmp_path: Path, models: Any, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    store = write_version(tmp_path, "1.0.0", models["1.0.0"][0], card("1.0.0"))
    short = card("2.0.0", features=["horizon", "rmean_28"])  # the ONNX file takes 25+ inputs
    write_version(tmp_path, "2.0.0", models["2.0.0"][0], short)
    pointers = MemoryPointerStore()
    pointers.deploy("1.0.0")
    test_client, runtime = serve(settings(), pointers, store, features, publisher)
    assert test_client.post("/", json=body(101), headers=bearer()).json()["model_version"] == "1.0.0"
    pointers.deploy("2.0.0")
    runtime.slots.background = lambda work: work()  # load at once, in this thread
    runtime.slots.refresh()
    response = test_client.post("/", json=body(101), headers=bearer())
    assert (response.status_code, response.json()["model_version"]) == (200, "1.0.0")


# -- CORS, metrics, sampling ------------------------------------------------------------------


def test_cors_headers_only_for_configured_storefront_origins(client: Any) -> None:
    allowed = client.post("/", json=body(101), headers={**bearer(), "Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Model-Version" in allowed.headers["Access-Control-Expose-Headers"]
    other = client.post("/", json=body(101), headers={**bearer(), "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options("/", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


def test_metrics_need_credentials_and_count_requests_fallbacks_and_the_version(client: Any) -> None:
    answered = client.post("/", json=body(101, 999), headers=bearer())
    assert answered.status_code == 200, answered.text
    assert client.post("/", json=body(101), headers={}).status_code == 401
    assert client.get("/metrics").status_code == 401
    text = client.get("/metrics", headers=bearer()).text
    assert 'predict_requests_total{status="200"} 1.0' in text, text
    assert 'predict_requests_total{status="401"} 2.0' in text  # the POST and the first GET
    assert 'predict_fallback_items_total{reason="no_history"} 1.0' in text
    assert 'predict_live_model_info{slot="blue",version="1.0.0"} 1.0' in text
    assert "predict_latency_seconds_bucket" in text
    assert client.get(f"/metrics?{proxy_query()}").status_code == 200


def test_a_sampled_answer_is_published_with_its_inputs_and_no_customer_id(
    registry: Any, pointers: MemoryPointerStore, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    test_client, _ = serve(settings(SHOPML_PREDICT_SAMPLE_RATE="1"), pointers, registry, features, publisher)
    answer = test_client.post(
        f"/?{proxy_query(customer='5550001234')}", json=body(101, 999, horizon=3)
    ).json()
    published(publisher)
    [(topic, data, _attributes)] = publisher.messages
    assert topic == "predictions"
    assert b"5550001234" not in data
    rows, ids = prediction_rows(data, "m-1", NOW)
    assert ids == ["m-1:0", "m-1:1"]
    assert [row["units"] for row in rows] == [p["units"] for p in answer["predictions"]]
    assert rows[0]["model_version"] == "1.0.0" and rows[0]["sample_rate"] == 1.0
    assert rows[0]["features"]["rmean_28"] == 5.0 and rows[0]["features"]["horizon"] == 1.0
    assert rows[1]["features"] is None and rows[1]["fallback_reason"] == "no_history"
    from shared.warehouse_schema import conform_rows, load_schema

    conform_rows(load_schema().tables["predictions"], rows)  # the rows fit the table file


def test_nothing_is_published_at_sample_rate_zero(client: Any, publisher: RecordingPublisher) -> None:
    client.post("/", json=body(101), headers=bearer())
    assert publisher.messages == []


# -- following the live pointer --------------------------------------------------------------


def test_a_new_version_is_loaded_off_the_request_path_and_switched_to_when_ready(
    registry: Any, pointers: MemoryPointerStore, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    deferred: list[Any] = []
    test_client, runtime = serve(
        settings(SHOPML_POINTER_MAX_AGE_SECONDS="0.001"), pointers, registry, features, publisher
    )
    runtime.slots.background = deferred.append  # loads wait until the test runs them
    assert test_client.post("/", json=body(101), headers=bearer()).json()["model_version"] == "1.0.0"
    pointers.deploy("2.0.0")
    time.sleep(0.01)
    during = test_client.post("/", json=body(101), headers=bearer())
    assert during.json()["model_version"] == "1.0.0"  # the new slot is still loading: the old one answers
    [load] = deferred
    load()
    time.sleep(0.01)
    after = test_client.post("/", json=body(101), headers=bearer())
    assert after.headers["X-Model-Version"] == after.json()["model_version"] == "2.0.0"
    assert runtime.slots.current().slot == "green"


def test_a_cold_instance_whose_first_load_is_already_running_waits_for_it_and_answers_with_it(
    registry: Any, pointers: MemoryPointerStore, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    # The snapshot listener delivered the pointer first and started the load in the background;
    # the first request's read must wait for that load, not answer with no model.
    import threading

    deferred: list[Any] = []
    test_client, runtime = serve(settings(), pointers, registry, features, publisher)
    runtime.slots.background = deferred.append
    runtime.slots._on_snapshot(pointers.get("demand"))  # what the listener calls
    [load] = deferred
    threading.Timer(0.3, load).start()  # the listener's load finishes while the request waits
    answer = test_client.post("/", json=body(101), headers=bearer()).json()
    assert answer["model_version"] == "1.0.0" and answer["fallback"] is False


def test_a_rollback_to_the_other_loaded_slot_is_a_switch_without_a_load(
    registry: Any, pointers: MemoryPointerStore, features: FeatureServer, publisher: RecordingPublisher
) -> None:
    test_client, runtime = serve(
        settings(SHOPML_POINTER_MAX_AGE_SECONDS="0.001"), pointers, registry, features, publisher
    )
    test_client.post("/", json=body(101), headers=bearer())
    pointers.deploy("2.0.0")
    runtime.slots.refresh()
    for _ in range(1000):  # up to 10 s on a loaded machine
        if runtime.slots.current().version == "2.0.0":
            break
        time.sleep(0.01)
    loads: list[Any] = []
    runtime.slots.background = loads.append
    current = pointers.get("demand")
    assert pointers.compare_and_swap("demand", current.generation, rollback(current, "1.0.0", NOW, "test"))
    time.sleep(0.01)
    assert test_client.post("/", json=body(101), headers=bearer()).json()["model_version"] == "1.0.0"
    assert loads == []


def test_flips_during_a_stream_of_requests_never_mix_versions(
    registry: Any,
    pointers: MemoryPointerStore,
    features: FeatureServer,
    publisher: RecordingPublisher,
    models: Any,
) -> None:
    import threading

    test_client, _runtime = serve(
        settings(SHOPML_POINTER_MAX_AGE_SECONDS="0.001"), pointers, registry, features, publisher
    )
    expected = {v: expected_units(models[v][1], card(v), VARIANTS[101], 3) for v in models}
    stop = threading.Event()

    def flipper() -> None:
        while not stop.is_set():
            current = pointers.get("demand")
            target = "2.0.0" if current.live_version == "1.0.0" else "1.0.0"
            from shared.serving.pointer import deploy

            pointers.compare_and_swap("demand", current.generation, deploy(current, target, NOW, "flip"))
            time.sleep(0.005)

    thread = threading.Thread(target=flipper)
    thread.start()
    seen = set()
    try:
        for _ in range(80):
            response = test_client.post("/", json=body(101, 101, horizon=3), headers=bearer())
            assert response.status_code == 200
            answer = response.json()
            version = answer["model_version"]
            assert response.headers["X-Model-Version"] == version
            for prediction in answer["predictions"]:
                assert prediction["units"] == pytest.approx(expected[version], abs=1e-3)
            seen.add(version)
    finally:
        stop.set()
        thread.join()
    assert seen == {"1.0.0", "2.0.0"}


def test_an_unreadable_pointer_store_keeps_serving_the_copy_it_has(
    client: Any, pointers: MemoryPointerStore
) -> None:
    assert client.post("/", json=body(101), headers=bearer()).status_code == 200
    pointers.fail = True
    response = client.post("/", json=body(101), headers=bearer())
    assert (response.status_code, response.json()["model_version"]) == (200, "1.0.0")


# -- what the function imports -----------------------------------------------------------------


def test_predict_imports_no_training_or_batch_libraries() -> None:
    # The module as functions-framework loads it, plus everything its runtime imports lazily
    # (Firestore pointer, object store, feature client, Pub/Sub publisher, ONNX Runtime).
    script = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from functions_framework.aio import create_asgi_app
create_asgi_app("predict", {str(REPO / "functions" / "predict" / "main.py")!r})
import onnxruntime, google.cloud.firestore, google.cloud.storage, requests, urllib3, google.auth
import shared.adapters.firestore_pointer, shared.adapters.firestore_rest, shared.adapters.object_stores
import shared.features.online, shared.serving.predict_app, shared.serving.http_app
import shared.adapters.pubsub_group_commit, shared.serving.slots
banned = ("lightgbm", "pandas", "feast", "scipy", "google.cloud.aiplatform", "sklearn", "onnxmltools")
print(sorted(name for name in sys.modules if name.startswith(banned)))
"""
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert found.stdout.strip() == "[]", found.stdout


def test_the_first_answer_imports_neither_the_firestore_client_nor_grpc(tmp_path: Path) -> None:
    # Cold start: the live pointer is read over REST; the client library (gRPC, ~1 s to import)
    # only comes after the first answer, for the listener. The runtime is the default wiring
    # (settings from the environment), the pointer store unreachable: the answer is a fallback.
    # With the metrics push on, its module and thread also wait for the first answer.
    script = f"""
import asyncio, os, socket, sys, threading
sys.path.insert(0, {str(REPO)!r})
with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
os.environ.update(FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{{port}}", SHOPML_REGISTRY={tmp_path.as_uri()!r},
                  SHOPML_PREDICT_KEYS="{SHOP}={KEY}", SHOPML_PREDICT_SAMPLE_RATE="0",
                  SHOPML_METRICS_EXPORT="otlp", SHOPML_OTLP_ENDPOINT=f"http://127.0.0.1:{{port}}/v1/metrics")
from functions_framework.aio import create_asgi_app
create_asgi_app("predict", {str(REPO / "functions" / "predict" / "main.py")!r})
from shared.serving import predict_app

async def read(limit):
    return b'{{"shop_domain": "{SHOP}", "horizon_days": 2, "items": [{{"variant_id": 1}}]}}'

incoming = predict_app.Incoming("POST", "/", [], {{"authorization": "Bearer {KEY}"}})
answer = asyncio.run(predict_app.respond(predict_app.runtime(), incoming, read))
print(answer.status, answer.headers["X-Model-Version"])
print(sorted(name for name in sys.modules if name.startswith(("google.cloud.firestore", "grpc"))))
print(sorted(name for name in sys.modules if name.startswith("shared.serving.telemetry")),
      sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("predict-")))
predict_app.after_answer(predict_app.runtime())()
print(sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("predict-")))
predict_app.runtime().exporter.shutdown(last_export=False)
"""
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO, timeout=120
    )
    assert found.stdout.splitlines()[-4:] == [
        "200 none",
        "[]",
        "[] []",
        "['predict-metrics-export', 'predict-pointer-watch']",
    ], found.stdout + found.stderr


def test_the_online_features_asked_for_cover_every_buildable_input() -> None:
    from shared.serving.forecast import BUILDABLE_FEATURES
    from shared.training.dataset import MODEL_FEATURES

    assert BUILDABLE_FEATURES == MODEL_FEATURES
    assert {"rmean_28", "price", "inventory_on_hand", "product_type", "product_age_days"} <= set(
        ONLINE_FEATURES
    )


# --- retraining asked for by a Shopify Flow workflow ------------------------------------------------


def test_a_flow_retrain_request_with_the_shops_key_is_queued_once_for_the_night(
    client: Any, publisher: RecordingPublisher
) -> None:
    answer = client.post("/retrain", json={"reason": "inventory moved"}, headers=bearer())
    assert answer.status_code == 202, answer.text
    key = f"flow:{SHOP}:demand:{NOW.date().isoformat()}"
    assert answer.json() == {"status": "accepted", "model": "demand", "idempotency_key": key}
    ((_, data, attributes),) = [m for m in publisher.messages if m[0] == "training-requests"]
    assert attributes == {"source": "shopify-flow", "shop_domain": SHOP}
    message = json.loads(data)
    assert message["night"] == NOW.date().isoformat() and message["requested_by"] == f"shopify-flow:{SHOP}"
    # It is a training request trigger_training accepts (the run id is the model and night).
    from shared.envelope import PubSubMessage
    from shared.training_requests import parse_training_request

    parsed = parse_training_request(
        PubSubMessage(data=data, attributes=attributes), None, default_model="demand", default_history_days=90
    )
    assert parsed.night == NOW.date()
    assert client.post("/retrain", headers=bearer()).status_code == 202  # an empty body is fine


def test_a_retrain_request_needs_the_key_not_a_shoppers_signature(
    client: Any, publisher: RecordingPublisher
) -> None:
    assert client.post("/retrain", json={}).status_code == 401
    proxied = client.post(f"/retrain?{proxy_query()}", json={})
    assert proxied.status_code == 401 and proxied.json()["error"] == "key_required"
    assert client.post("/retrain", json={"reason": 3}, headers=bearer()).status_code == 400
    assert client.post("/retrain", json={"night": "2020-01-01"}, headers=bearer()).status_code == 400
    assert client.get("/retrain", headers=bearer()).status_code == 405
    assert not [m for m in publisher.messages if m[0] == "training-requests"]


def test_a_retrain_request_that_cannot_be_queued_is_a_503(client: Any, publisher: RecordingPublisher) -> None:
    publisher.fail = True
    answer = client.post("/retrain", json={"reason": "x"}, headers=bearer())
    assert answer.status_code == 503 and answer.json()["error"] == "publish_failed"
