"""Step 4 benchmark: predict over HTTP on the local stack, and rollback time.

* **HTTP, 1 item**: open loop at 100 requests/s (``bench.loadgen.open_loop``: latency from the
  scheduled send time, bounded count and time, loopback only) against, in the same run: the
  bare functions-framework endpoint (Flask, ``bench/bare_endpoint``), the bare async endpoint
  on the ASGI path (``bench/bare_endpoint_aio``, ``FUNCTION_USE_ASGI=true``) and ``predict``
  as ``shopml stack up`` runs it (ASGI path, live pointer in the Firestore emulator, the model
  from the ``file://`` registry, bearer key, default sample rate publishing to ``predictions``).
  ``predict`` reads its features over loopback HTTP from ``bench/feature_stand_in.py`` (Feast's
  answer shape, sub-millisecond; not Feast itself), so every item goes through the model.
* **Rollback**: from publishing a request on ``rollback-requests`` to both ``predict``
  instances (``predict``, ``predict-2``) answering with the previous version; repeated, each
  round first registering a newer version (``candidate_registered`` → ``deploy_model``, gates
  and all) and waiting until both instances serve it. Also when the Firestore pointer flipped
  (the Pub/Sub push + the rollback function's share).

Targets (issue 9): HTTP p99 under 10 ms for one item; rollback under 5 s.
Run: ``python -m bench --only serving [--quick]`` or ``python -m bench.serving_bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
MODEL = "demand"
SHOP = "shopml-demo.myshopify.com"  # devkit.local.stack.LOCAL_SHOPS[0]
INSTANCES = ("predict", "predict-2")
FULL = {"rounds": 300, "train_rows": 60_000, "rate": 100, "duration_s": 20, "rollbacks": 7, "warmup": 200}
QUICK = {"rounds": 100, "train_rows": 20_000, "rate": 100, "duration_s": 5, "rollbacks": 5, "warmup": 50}


def bench_card(names: list[str]) -> dict[str, Any]:
    """The predict bench's card plus what the deploy gates read (the trainer's verdicts)."""
    from bench.predict_bench import card

    return {
        **card(names),
        "shops": [SHOP],
        "decision": "promote",
        "reasons": [],
        "gate": {"verdict": "pass", "reasons": []},
        "champion": {"version": None, "decision": "promote"},
        "parity": {"ok": True, "max_abs_diff": 0.0, "rows": 100, "violations": 0},
    }


def register(settings: Any, version: str, onnx_model: bytes, card: dict[str, Any]) -> None:
    from shared import bootstrap
    from shared.registry import register_model

    bootstrap.override(settings=settings)
    try:
        register_model(bootstrap.registry(), bootstrap.publisher(), MODEL, version, onnx_model, card, True)
    finally:
        bootstrap.reset()


def predict_body(variant_id: int = 3) -> bytes:
    return json.dumps(
        {"shop_domain": SHOP, "horizon_days": 7, "items": [{"variant_id": variant_id}]}
    ).encode()


def served(session: requests.Session, url: str, key: str) -> tuple[str, bool]:
    """(model version, any fallback) of one answer."""
    response = session.post(
        url + "/",
        data=predict_body(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )
    response.raise_for_status()
    body = response.json()
    if body["model_version"] != response.headers["X-Model-Version"]:
        raise RuntimeError(f"header and body disagree: {response.headers} {body}")
    return str(body["model_version"]), bool(body["fallback"])


def wait_served(urls: dict[str, str], key: str, version: str, timeout_s: float = 60.0) -> None:
    session = requests.Session()
    deadline = time.monotonic() + timeout_s
    pending = set(urls)
    while pending:
        pending = {name for name in pending if served(session, urls[name], key)[0] != version}
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{sorted(pending)} not serving {version} after {timeout_s} s")
        time.sleep(0.05)


def start_endpoint(name: str, source: Path, env: dict[str, str], log_dir: Path) -> tuple[int, str]:
    from devkit.local.processes import (
        free_port,
        functions_framework_argv,
        http_answers,
        start_process,
        wait_until,
    )

    port = free_port()
    proc = start_process(name, functions_framework_argv(source, "bare", port), env, log_dir, REPO)
    url = f"http://127.0.0.1:{port}"
    wait_until(proc, http_answers(url + "/"), 60, name)
    return proc.pid, url


def http_latency(targets: dict[str, str], key: str, config: dict[str, Any]) -> dict[str, Any]:
    """Each target warmed up, then an open loop at ``rate`` for ``duration_s``; one item each."""
    from bench.loadgen import open_loop

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = predict_body()
    results: dict[str, Any] = {}
    for name, url in targets.items():
        session = requests.Session()
        for _ in range(config["warmup"]):
            session.post(url + "/", data=body, headers=headers, timeout=10).raise_for_status()
        load = open_loop(
            url + "/", config["rate"], config["duration_s"], lambda _i: (body, headers), workers=8
        )
        results[name] = load.summary()
    return results


def rollbacks(
    settings: Any, urls: dict[str, str], key: str, onnx_model: bytes, card: dict[str, Any], repeats: int
) -> dict[str, Any]:
    """``repeats`` rounds: register 1.<n>.0, wait until both instances serve it, publish a rollback
    and time until both serve the previous version (and when the pointer flipped)."""
    from shared import bootstrap
    from shared.adapters.firestore_pointer import FirestorePointerStore
    from shared.serving.deployment import ROLLBACK_REQUESTS_TOPIC

    store = FirestorePointerStore(settings.project, emulator_host=settings.firestore_emulator_host)
    session = requests.Session()
    register(settings, "1.0.0", onnx_model, card)
    wait_served(urls, key, "1.0.0")
    rounds: list[dict[str, Any]] = []
    for number in range(1, repeats + 1):
        newer = f"1.{number}.0"
        register(settings, newer, onnx_model, card)
        wait_served(urls, key, newer)
        target = store.get(MODEL).previous_version
        request = {
            "model": MODEL,
            "reason": f"bench round {number}",
            "requested_by": "bench",
            "idempotency_key": f"bench-rollback:{uuid.uuid4()}",
        }
        bootstrap.override(settings=settings)
        try:
            publisher = bootstrap.publisher()
            published = time.perf_counter()
            publisher.publish(ROLLBACK_REQUESTS_TOPIC, json.dumps(request).encode(), {"model": MODEL})
            flipped: float | None = None
            seen: dict[str, float] = {}
            while len(seen) < len(urls) and time.perf_counter() - published < 60:
                if flipped is None and store.get(MODEL).live_version == target:
                    flipped = time.perf_counter() - published
                for name, url in urls.items():
                    if name not in seen and served(session, url, key)[0] == target:
                        seen[name] = time.perf_counter() - published
                time.sleep(0.02)
        finally:
            bootstrap.reset()
        if len(seen) < len(urls):
            raise RuntimeError(f"round {number}: not every instance served {target}: {seen}")
        rounds.append(
            {
                "from": newer,
                "to": target,
                "pointer_flipped_s": round(flipped, 3) if flipped is not None else None,
                "instances_s": {name: round(s, 3) for name, s in seen.items()},
                "both_s": round(max(seen.values()), 3),
            }
        )
    both = [r["both_s"] for r in rounds]
    flips = [r["pointer_flipped_s"] for r in rounds if r["pointer_flipped_s"] is not None]
    return {
        "rounds": rounds,
        "median_s": round(statistics.median(both), 3),
        "max_s": round(max(both), 3),
        "pointer_flip_median_s": round(statistics.median(flips), 3) if flips else None,
        "pointer_max_age_s": settings.pointer_max_age_seconds,
    }


def run(quick: bool = False) -> dict[str, Any]:
    from bench.predict_bench import train_model
    from devkit.local.processes import free_port, http_answers, start_process, stop_processes, wait_until
    from devkit.local.stack import ASGI_ENV, LocalStack, local_predict_key

    config = QUICK if quick else FULL
    onnx_model, booster, names = train_model(config["rounds"], config["train_rows"])
    card = bench_card(names)
    key = local_predict_key(SHOP)
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as folder:
        home = Path(folder)
        log_dir = home / "bench-logs"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        feature_port = free_port()
        stand_in = start_process(
            "feature-stand-in",
            [sys.executable, "-m", "bench.feature_stand_in", str(feature_port)],
            env,
            log_dir,
            REPO,
        )
        own: list[int] = [stand_in.pid]
        stack = LocalStack(
            home,
            functions=["predict", "deploy_model", "rollback", "load_predictions"],
            predict_instances=2,
            extra_env={"SHOPML_FEATURE_SERVER_URL": f"http://127.0.0.1:{feature_port}"},
        )
        try:
            wait_until(stand_in, http_answers(f"http://127.0.0.1:{feature_port}/"), 30, "feature stand-in")
            info = stack.up()
            settings = info.settings()
            urls = {name: info.url(name) for name in INSTANCES}
            bare_pid, bare_url = start_endpoint("bare", REPO / "bench/bare_endpoint/main.py", env, log_dir)
            own.append(bare_pid)
            aio_pid, aio_url = start_endpoint(
                "bare-aio", REPO / "bench/bare_endpoint_aio/main.py", {**env, **ASGI_ENV}, log_dir
            )
            own.append(aio_pid)
            rollback = rollbacks(settings, urls, key, onnx_model, card, config["rollbacks"])
            version, fallback = served(requests.Session(), urls["predict"], key)
            if fallback:
                raise RuntimeError(f"predict {version} answered a fallback; the bench must use the model")
            http = http_latency(
                {"bare (Flask)": bare_url, "bare (ASGI)": aio_url, "predict": urls["predict"]}, key, config
            )
        finally:
            stack.down()
            stop_processes(own, None)
    return {
        "config": config,
        "model": {"rounds": booster.num_trees(), "inputs": len(names), "onnx_bytes": len(onnx_model)},
        "predict": {"version_measured": version, "sample_rate": settings.predict_sample_rate},
        "http_1_item": http,
        "rollback": rollback,
        "targets_met": {
            "http_p99_under_10ms": http["predict"]["p99_ms"] < 10,
            "rollback_under_5s": rollback["max_s"] < 5,
        },
    }


def report(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = [
        f"HTTP, 1 item (horizon 7), open loop {config['rate']}/s for {config['duration_s']} s, loopback:",
        "",
        "| endpoint | requests | ok | achieved /s | p50 | p99 | mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in results["http_1_item"].items():
        lines.append(
            f"| {name} | {s['requests']} | {s['ok']} | {s['achieved_rate']} | {s['p50_ms']} ms "
            f"| {s['p99_ms']} ms | {s['mean_ms']} ms |"
        )
    rb = results["rollback"]
    lines += [
        "",
        f"rollback (publish → both instances serve the previous version), {len(rb['rounds'])} rounds: "
        f"median {rb['median_s']} s, max {rb['max_s']} s; pointer flipped (Pub/Sub push + rollback "
        f"function) median {rb['pointer_flip_median_s']} s; SHOPML_POINTER_MAX_AGE_SECONDS "
        f"{rb['pointer_max_age_s']}",
        "rounds (both instances, s): " + ", ".join(str(r["both_s"]) for r in rb["rounds"]),
        f"targets met: {results['targets_met']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.serving_bench")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    outcome = run(quick=args.quick)
    print(json.dumps(outcome, indent=2, default=str))
    print(report(outcome))
