"""Serving on the real local parts: two ``predict`` instances under functions-framework's ASGI
path (as the cloud runs them), deploy_model and rollback on their topics, the Firestore
emulator holding the live pointer, and load_predictions filling the ``predictions`` table.

register → deploy → both instances answer with the new version; a second version likewise;
a rollback request on ``rollback-requests`` → both instances answer with the previous version
within the pointer's bound, and never with the rolled-away version again; a sampled answer
reaches ``predictions``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.local.stack import LOCAL_SHOPS, LocalStack, StackInfo, local_predict_key
from shared import bootstrap
from shared.adapters.firestore_pointer import FirestorePointerStore
from shared.registry import register_model
from shared.serving.deployment import ROLLBACK_REQUESTS_TOPIC
from shared.serving.pointer import LivePointer
from shared.settings import Settings
from shared.training.dataset import MODEL_FEATURES
from tests.serving_fakes import model_card, tiny_onnx

pytestmark = pytest.mark.integration
MODEL = "demand"
SHOP = LOCAL_SHOPS[0]
INSTANCES = ("predict", "predict-2")
# The pointer's bound is SHOPML_POINTER_MAX_AGE_SECONDS (default 2 s): a request on a copy older
# than that re-reads it, and the previous version is still loaded in the other slot (a switch,
# no load). SLACK covers the push delivery, the rollback function and a read on a busy machine;
# the measured time is the benchmark's (bench/serving_bench.py), not this test's.
SLACK_S = 3.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    home = tmp_path_factory.mktemp("serving")
    extra = {
        "SHOPML_DEPLOY_LATENCY_BUDGET_MS": "60000",  # the gate's budget is the bench's business
        "SHOPML_DEPLOY_LATENCY_SAMPLES": "10",
        "SHOPML_PREDICT_SAMPLE_RATE": "1",  # every answer is logged: one must reach the table
    }
    with LocalStack(
        home,
        functions=["predict", "deploy_model", "rollback", "load_predictions"],
        extra_env=extra,
        predict_instances=2,
    ) as info:
        yield info


def ask(info: StackInfo, instance: str, *, key: str | None = None) -> requests.Response:
    key = key if key is not None else local_predict_key(SHOP)
    return requests.post(
        info.url(instance) + "/",
        json={"shop_domain": SHOP, "horizon_days": 3, "items": [{"variant_id": 11}, {"variant_id": 12}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def served_version(info: StackInfo, instance: str) -> str:
    response = ask(info, instance)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == response.headers["X-Model-Version"]
    assert all(min(p["units"]) >= 0 and len(p["units"]) == 3 for p in body["predictions"])
    return str(body["model_version"])


def wait_until_served(info: StackInfo, version: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(INSTANCES)
    while pending:
        pending = {name for name in pending if served_version(info, name) != version}
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"{sorted(pending)} still not serving {version} after {timeout_s} s")
        time.sleep(0.05)


def pointer(info: StackInfo) -> LivePointer:
    settings = info.settings()
    store = FirestorePointerStore(settings.project, emulator_host=settings.firestore_emulator_host)
    return store.get(MODEL)


def register(info: StackInfo, version: str) -> None:
    """As the trainer does: the version's files in the registry and ``candidate_registered``."""
    card = {**model_card(features=MODEL_FEATURES), "shops": [SHOP], "product_types": ["Shirts"]}
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


def publish(settings: Settings, topic: str, body: dict[str, Any]) -> None:
    bootstrap.override(settings=settings)
    try:
        bootstrap.publisher().publish(topic, json.dumps(body).encode(), {"model": MODEL})
    finally:
        bootstrap.reset()


def prediction_rows(info: StackInfo, version: str) -> list[dict[str, Any]]:
    warehouse = bootstrap.create_warehouse(info.settings())
    try:
        return warehouse.query(
            "SELECT shop_domain, variant_id, model_version, horizon_days, units, sample_rate "
            "FROM predictions WHERE model_version = @version",
            {"version": version},
        )
    finally:
        bootstrap.close_warehouse(warehouse)


def test_stack_up_gives_every_local_shop_a_stable_key_and_serves_predict_on_the_asgi_path(
    stack: StackInfo,
) -> None:
    from devkit.importer.run import SHOPIFY_SHOP_DOMAIN
    from devkit.simulator.events import DEFAULT_SHOP_DOMAIN
    from devkit.simulator.retail import RETAIL_SHOP_DOMAIN

    keys = dict(Settings.from_env(stack.env).predict_keys)
    assert {DEFAULT_SHOP_DOMAIN, RETAIL_SHOP_DOMAIN, SHOPIFY_SHOP_DOMAIN} <= set(keys)
    assert keys == {shop: local_predict_key(shop) for shop in LOCAL_SHOPS}  # the same on every `up`
    assert len(set(keys.values())) == len(keys)
    state = json.loads((Path(stack.home) / "run" / "stack.json").read_text())
    assert state["env"]["SHOPML_PREDICT_KEYS"] == stack.env["SHOPML_PREDICT_KEYS"]
    assert set(INSTANCES) <= set(state["functions"]) and set(INSTANCES) <= set(state["pids"])
    assert stack.env["SHOPML_REGISTRY"] == f"file://{Path(stack.home) / 'registry'}"

    for instance in INSTANCES:
        answer = ask(stack, instance)
        assert answer.status_code == 200, answer.text
        assert answer.headers["server"] == "uvicorn"  # the ASGI server, not gunicorn's sync worker
        assert ask(stack, instance, key=local_predict_key("other.myshopify.com")).status_code == 401
    other_shop = requests.post(
        stack.url("predict") + "/",
        json={"shop_domain": LOCAL_SHOPS[1], "horizon_days": 1, "items": [{"variant_id": 1}]},
        headers={"Authorization": f"Bearer {local_predict_key(SHOP)}"},
        timeout=10,
    )
    assert other_shop.status_code == 401 and other_shop.json()["error"] == "wrong_shop"


def test_register_deploy_predict_then_rollback_reaches_both_instances_within_the_bound(
    stack: StackInfo,
) -> None:
    register(stack, "1.0.0")
    wait_until_served(stack, "1.0.0")
    register(stack, "1.1.0")
    wait_until_served(stack, "1.1.0")
    assert (pointer(stack).live_version, pointer(stack).previous_version) == ("1.1.0", "1.0.0")

    settings = stack.settings()
    key = f"test-rollback:{uuid.uuid4()}"
    request = {"model": MODEL, "reason": "forecasts too high", "requested_by": "test", "idempotency_key": key}
    published = time.monotonic()
    publish(settings, ROLLBACK_REQUESTS_TOPIC, request)
    first_seen: dict[str, float] = {}
    bound = settings.pointer_max_age_seconds + SLACK_S
    while len(first_seen) < len(INSTANCES) and time.monotonic() - published < 30:
        for instance in INSTANCES:
            version = served_version(stack, instance)
            if instance in first_seen:  # once back, an instance never serves 1.1.0 again
                assert version == "1.0.0", f"{instance} went back to {version}"
            elif version == "1.0.0":
                first_seen[instance] = time.monotonic() - published
        time.sleep(0.05)
    assert set(first_seen) == set(INSTANCES), f"not every instance rolled back: {first_seen}"
    assert max(first_seen.values()) < bound, f"rollback reached the instances after {first_seen} s"
    back = pointer(stack)
    assert (back.live_version, back.previous_version) == ("1.0.0", "1.1.0") and key in back.request_keys
    for _ in range(5):
        assert {served_version(stack, name) for name in INSTANCES} == {"1.0.0"}

    # Sampled answers (rate 1 here) reach the predictions table through load_predictions.
    deadline = time.monotonic() + 30
    rows: list[dict[str, Any]] = []
    while not rows and time.monotonic() < deadline:
        rows = prediction_rows(stack, "1.1.0")
        time.sleep(0.2)
    assert rows, "no sampled 1.1.0 answer reached the predictions table"
    assert {r["shop_domain"] for r in rows} == {SHOP} and {r["variant_id"] for r in rows} <= {11, 12}
    assert all(r["horizon_days"] == 3 and len(r["units"]) == 3 and r["sample_rate"] == 1.0 for r in rows)
