"""The demo's serving stages (Step 4): blue-green deploys, the storefront's call and a gate
that refuses a model that has not earned it.

* ``stage_first_deploy``: the trainer's first candidate reaches ``model-events``;
  ``deploy_model`` runs the gates and flips the live pointer (Firestore emulator) to it.
* ``stage_second_version``: a training request for a later night registers a second version,
  which goes live through the same gates.
* ``stage_predict``: ``predict`` answered as a storefront calls it (per-shop bearer key), with
  latency percentiles from a short sequential run.
* the rollback is Step 5's (``devkit/demo_drift.py``): ``drift_monitor`` asks for it when the
  storefront's inputs shift.
* ``stage_gate_rejection``: the real 85-day retail sample imported with ``import-orders`` into
  a warehouse of its own and trained there: the model does not beat every baseline, so it is
  registered but not promoted, and ``predict`` would answer with the best baseline.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from devkit.demo import say
from devkit.local.stack import StackInfo

_POINTER_STORES: dict[str, Any] = {}


def _pointer(info: StackInfo, model: str) -> Any:
    """The model's live pointer, read from the stack's Firestore emulator (one client per stack)."""
    from shared.bootstrap import build_live_pointer

    store = _POINTER_STORES.get(info.stack_id)
    if store is None:
        store = _POINTER_STORES[info.stack_id] = build_live_pointer(info.settings())
    return store.get(model)


def _wait_for(
    what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 0.2
) -> tuple[Any, float]:
    started = time.monotonic()
    while True:
        found = check()
        if found:
            return found, time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{what}: not seen within {timeout_s:.0f} s")
        time.sleep(interval_s)


def _deployments(info: StackInfo, model: str) -> list[dict[str, Any]]:
    from shared.bootstrap import close_warehouse, create_warehouse

    warehouse = create_warehouse(info.settings())
    try:
        return warehouse.query(
            "SELECT action, version, from_version, forced, reason, requested_by, gates "
            "FROM model_deployments WHERE model = @model ORDER BY decided_at",
            {"model": model},
        )
    finally:
        close_warehouse(warehouse)


def _query(info: StackInfo, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    from shared.bootstrap import close_warehouse, create_warehouse

    warehouse = create_warehouse(info.settings())
    try:
        return warehouse.query(sql, params or {})
    finally:
        close_warehouse(warehouse)


def _gate_verdicts(row: dict[str, Any]) -> dict[str, bool]:
    gates = row.get("gates")
    parsed = json.loads(gates) if isinstance(gates, str) else (gates or {})
    if isinstance(parsed, list):
        return {g["name"]: bool(g.get("passed")) for g in parsed}
    return {name: bool(v.get("passed")) for name, v in parsed.items()}


def stage_first_deploy(info: StackInfo, version: str, timeout_s: float = 120) -> dict[str, Any]:
    model = info.settings().model_name
    pointer, waited = _wait_for(
        f"{model} {version} live",
        lambda: (p := _pointer(info, model)).live_version == version and p,
        timeout_s,
    )
    say(
        f"deploy_model put {model} {version} live in slot {pointer.live_slot} (generation "
        f"{pointer.generation}), {waited:.1f} s after the model-events message was seen"
    )
    return {"deploy_first": {"version": version, "slot": pointer.live_slot, "seconds": round(waited, 1)}}


def stage_second_version(
    info: StackInfo, night: date, first_version: str, timeout_s: float = 300
) -> dict[str, Any]:
    """Train for the next night; ``deploy_model`` deploys the new version through the gates."""
    from shared.adapters.pubsub import admin_clients
    from shared.bootstrap import build_registry

    settings = info.settings()
    model = settings.model_name
    later = night + timedelta(days=1)
    publisher, _ = admin_clients(settings)
    say(f"publishing a training request for the next night ({later}) on training-requests")
    publisher.publish(
        settings.topic_path("training-requests"), json.dumps({"night": str(later)}).encode()
    ).result(timeout=10)
    publisher.stop()
    registry = build_registry(settings)
    newer, waited = _wait_for(
        "a second registered version",
        lambda: [v for v in registry.versions(model) if v.version != first_version],
        timeout_s,
        interval_s=1,
    )
    second = newer[-1]
    promoted = second.card.get("decision", second.card.get("champion", {}).get("decision")) == "promote"
    result: dict[str, Any] = {
        "version": second.version,
        "registered_after_s": round(waited, 1),
        "promoted": promoted,
    }
    if promoted:
        pointer, _ = _wait_for(
            f"{model} {second.version} live",
            lambda: (p := _pointer(info, model)).live_version == second.version and p,
            120,
        )
        result.update(slot=pointer.live_slot, previous=pointer.previous_version)
        say(
            f"{model} {second.version} registered after {waited:.0f} s and deployed through the gates into "
            f"slot {pointer.live_slot}; previous {pointer.previous_version}"
        )
    else:
        say(f"{model} {second.version} registered but not promoted by training: {second.card.get('reasons')}")
    rows = _deployments(info, model)
    result["deployments"] = [
        {"action": r["action"], "version": r["version"], "gates": _gate_verdicts(r)} for r in rows
    ]
    return {"deploy_second": result}


def _predict_keys(info: StackInfo) -> dict[str, str]:
    raw = info.env.get("SHOPML_PREDICT_KEYS", "")
    return dict(entry.split("=", 1) for entry in raw.split(",") if "=" in entry)


def _predict_urls(info: StackInfo) -> list[str]:
    return [
        url
        for name, url in sorted(info.functions.items())
        if name == "predict" or name.startswith("predict-")
    ]


def _call(session: Any, url: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    answer = session.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=5)
    payload = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    return answer.status_code, payload, answer.headers.get("X-Model-Version", "")


def stage_predict(info: StackInfo, shop: str, variants: list[int], requests_n: int) -> dict[str, Any]:
    """Call ``predict`` as a storefront does; the first answer is shown, then latency is measured."""
    import requests

    key = _predict_keys(info).get(shop)
    if key is None:
        raise RuntimeError(
            f"the stack has no predict key for {shop} "
            f"(SHOPML_PREDICT_KEYS={info.env.get('SHOPML_PREDICT_KEYS')!r})"
        )
    url = info.url("predict")
    body = {"shop_domain": shop, "horizon_days": 7, "items": [{"variant_id": v} for v in variants]}
    with requests.Session() as session:
        status, answer, header = _call(session, url, key, body)
        if status != 200:
            raise RuntimeError(f"predict answered {status}: {answer}")
        first = answer["predictions"][0]
        say(
            f"predict for {len(variants)} variants, 7 days from {answer['first_day']}: model {header}, "
            f"first item {first['units']} (fallback {first['fallback']})"
        )
        single: dict[str, Any] = {
            "shop_domain": shop,
            "horizon_days": 7,
            "items": [{"variant_id": variants[0]}],
        }
        latencies = []
        for _ in range(requests_n):
            started = time.perf_counter()
            code, _, _ = _call(session, url, key, single)
            latencies.append((time.perf_counter() - started) * 1000)
            if code != 200:
                raise RuntimeError(f"predict answered {code} during the latency run")
        unauthorised = session.post(url, json=single, timeout=5).status_code
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    say(
        f"predict latency over {requests_n} sequential one-item calls (client side, loopback): "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; without credentials: {unauthorised}"
    )
    return {
        "predict_p50_ms": round(p50, 2),
        "predict_p99_ms": round(p99, 2),
        "predict": {
            "model_version": header,
            "first_day": answer["first_day"],
            "fallback": answer["fallback"],
            "items_with_fallback": sum(1 for p in answer["predictions"] if p["fallback"]),
            "items": len(answer["predictions"]),
            "example": answer["predictions"][0],
            "requests": requests_n,
            "status_without_credentials": unauthorised,
        },
    }


def stage_gate_rejection(info: StackInfo) -> dict[str, Any]:
    """Import the real 85-day sample into its own warehouse and train on it: refused by the gate."""
    from devkit import RETAIL_SAMPLE_CSV
    from devkit.importer import import_orders
    from devkit.unannounced import UnannouncedPublisher
    from shared.bootstrap import build_registry, close_warehouse, create_warehouse
    from shared.settings import Settings
    from shared.training.run import run as train_run
    from shared.training.trainer import TrainerConfig

    base = info.settings()
    home = base.home / "retail-sample"
    env = {
        **info.env,
        "SHOPML_WAREHOUSE": f"duckdb:///{home / 'warehouse.duckdb'}",
        "SHOPML_REGISTRY": f"file://{home / 'registry'}",
        "SHOPML_MODEL_NAME": "demand-retail-sample",
    }
    settings = Settings.from_env(env)
    warehouse = create_warehouse(settings)
    try:
        report = import_orders(RETAIL_SAMPLE_CSV, warehouse=warehouse, settings=settings)
        say(
            f"imported the real retail sample with import-orders: {report.orders} orders, "
            f"{report.lines} lines in {report.seconds:.1f} s"
        )
        registry = build_registry(settings)
        outcome = train_run(
            date(2010, 12, 1),
            date(2011, 2, 23),
            run_id="demo-retail-sample",
            model=settings.model_name,
            warehouse=warehouse,
            registry=registry,
            publisher=UnannouncedPublisher(),  # the sample's model is for show only
            config=TrainerConfig(cv_folds=1, holdout_days=14),  # 85 days: one fold of 14, a 14-day holdout
        )
    finally:
        close_warehouse(warehouse)
    card = outcome.card
    say(
        f"trained on the 85-day real sample: {settings.model_name} {outcome.version} decision "
        f"{outcome.decision}; reasons: {card.get('reasons')}; serving would answer with "
        f"{card.get('best_baseline')}"
    )
    return {
        "gate_rejection": {
            "model": settings.model_name,
            "version": outcome.version,
            "decision": outcome.decision,
            "reasons": card.get("reasons"),
            "best_baseline": card.get("best_baseline"),
            "import": {"orders": report.orders, "lines": report.lines},
        }
    }
