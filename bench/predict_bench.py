"""Step 4 benchmark: predict's latency in process, ONNX Runtime next to native LightGBM, cold start.

* **Model call**: the same rows (1, 28 = one item × 28 horizons, 2,800 = 100 items × 28) through
  ONNX Runtime (``shared.serving.slots.onnx_session``, 1 and 2 intra-op threads) and through
  native LightGBM ``Booster.predict`` (1 thread and all cores). The model has the trainer's
  parameters (tweedie, 63 leaves) and 300 rounds (the trainer's cap is 400) on synthetic
  count demand in the trainer's 26-input layout.
* **In-process predict**: ``forecast()`` (rows from online features, one ONNX call, units)
  and the whole ASGI app in process (auth, JSON, pointer copy, features from memory, answer)
  for 1 and 100 items, horizon 28.
* **Cold start**: process start to the first 200 answer of ``functions-framework --asgi
  --target predict``, with the live pointer in the Firestore emulator (started once, before
  the timed runs) and the model in a ``file://`` registry (imports, pointer read over REST,
  model load, ONNX session), and the model load as the instance logs it.
* **Start-path imports**: ``python -X importtime`` of what a cold instance imports before its
  first answer (functions-framework's CLI, the function, the REST pointer reader, ONNX Runtime),
  per top-level package; and the Firestore client library alone, which the start path no
  longer imports (it comes after the first answer, for the snapshot listener).

Run: ``python -m bench --only predict [--quick]`` or ``python -m bench.predict_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODEL = "demand"
SHOP = "bench.myshopify.com"
KEY = "bench-key"
FULL = {"rounds": 300, "train_rows": 60_000, "calls": 2000, "big_calls": 300, "cold_starts": 5}
LOAD_LINE = re.compile(r"loaded into \w+ in (\d+) ms")
QUICK = {"rounds": 100, "train_rows": 20_000, "calls": 300, "big_calls": 50, "cold_starts": 3}


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
    }


def timed(call: Callable[[], Any], n: int, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def train_model(rounds: int, rows: int) -> tuple[bytes, Any, list[str]]:
    import lightgbm

    from shared.training import export
    from shared.training.dataset import MODEL_FEATURES
    from shared.training.trainer import TrainerConfig

    rng = np.random.default_rng(0)
    names = list(MODEL_FEATURES)
    features = rng.uniform(0, 10, size=(rows, len(names)))
    features[:, names.index("horizon")] = rng.integers(1, 29, rows)
    features[:, names.index("dow")] = rng.integers(1, 8, rows)
    rate = 0.3 * features[:, names.index("rmean_28")] * (1 + 0.5 * (features[:, names.index("dow")] >= 6))
    label = rng.poisson(rate).astype(float)
    features = features.astype(np.float32).astype(np.float64)
    params = {**TrainerConfig(threads=os.cpu_count() or 1).lightgbm_params(), "verbose": -1}
    booster = lightgbm.train(params, lightgbm.Dataset(features, label), num_boost_round=rounds)
    return export.to_onnx(booster, len(names)), booster, names


def card(names: list[str]) -> dict[str, Any]:
    from shared.training.dataset import MISSING

    return {
        "features": names,
        "input": {"name": "features", "missing_value": MISSING},
        "product_types": ["Hats", "Shirts"],
        "shops": [SHOP],
        "best_baseline": "moving_average_28",
    }


def online_rows(variants: range, now: datetime) -> dict[int, dict[str, Any]]:
    from shared.features.online import FeatureValue
    from shared.features.views import VIEWS

    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = {}
    for vid in variants:
        row = {}
        for view in VIEWS:
            for name in view.features:
                value: Any = "Shirts" if name == "product_type" else float(vid % 17) + 0.5
                row[name] = FeatureValue(value, "PRESENT", day)
        rows[vid] = row
    return rows


def rows_timings(onnx_model: bytes, booster: Any, rows32: np.ndarray, calls: int) -> dict[str, Any]:
    """ONNX Runtime (1 and 2 threads) and native LightGBM (1 thread, all cores) on the same rows."""
    from shared.serving.slots import onnx_session

    rows64 = rows32.astype(np.float64)
    entry: dict[str, Any] = {}
    for threads in (1, 2):
        run = onnx_session(onnx_model, threads).run
        entry[f"onnx_{threads}_thread"] = timed(functools.partial(run, None, {"features": rows32}), calls)
    entry["lightgbm_1_thread"] = timed(lambda: booster.predict(rows64, num_threads=1), calls)
    entry["lightgbm_all_cores"] = timed(lambda: booster.predict(rows64), calls)
    onnx_out = onnx_session(onnx_model, 1).run(None, {"features": rows32})[0].ravel()
    entry["max_abs_diff"] = float(np.max(np.abs(onnx_out - booster.predict(rows64))))
    native_p99 = entry["lightgbm_1_thread"]["p99_ms"]
    entry["p99_speedup_1_thread"] = round(native_p99 / entry["onnx_1_thread"]["p99_ms"], 2)
    return entry


def model_calls(onnx_model: bytes, booster: Any, names: list[str], config: dict[str, int]) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    results: dict[str, Any] = {}
    for n_rows in (1, 28, 2800):
        rows32 = rng.uniform(0, 10, size=(n_rows, len(names))).astype(np.float32)
        calls = config["big_calls"] if n_rows > 100 else config["calls"]
        results[f"{n_rows}_rows"] = rows_timings(onnx_model, booster, rows32, calls)
    return results


class StaticPointers:
    """A ``LivePointerStore`` holding one pointer (the in-process runs read no Firestore)."""

    def __init__(self, pointer: Any) -> None:
        self.pointer = pointer

    def get(self, model: str) -> Any:
        return self.pointer

    def compare_and_swap(self, model: str, expected_generation: int, new: Any) -> bool:
        return False

    def watch(self, model: str, callback: Any) -> Any:
        raise NotImplementedError


class DiscardPublisher:
    def publish(self, topic: str, data: bytes, attributes: Any) -> str:
        return "0"


def time_forecast(
    wanted: list[Any], subset: dict[int, Any], model: Any, now: datetime, calls: int
) -> dict[str, float]:
    from shared.serving.forecast import forecast

    return timed(lambda: forecast(SHOP, wanted, 28, model, subset, now=now), calls)


def in_process(registry_dir: Path, config: dict[str, int]) -> dict[str, Any]:
    import httpx
    from functions_framework.aio import create_asgi_app

    from shared.adapters.object_stores import LocalObjectStore
    from shared.serving import predict_app
    from shared.serving.forecast import ONLINE_FEATURES
    from shared.serving.pointer import LivePointer, deploy
    from shared.serving.request import Item
    from shared.serving.slots import load_model, object_store_files
    from shared.settings import Settings

    now = datetime.now(UTC)
    found = online_rows(range(1, 101), now)
    files = object_store_files(LocalObjectStore(registry_dir))
    model = load_model(MODEL, "1.0.0", "blue", files, 1, time.perf_counter)
    results: dict[str, Any] = {"forecast": {}, "asgi": {}}
    for items in (1, 100):
        wanted = [Item(v) for v in range(1, items + 1)]
        subset = {v: found[v] for v in range(1, items + 1)}
        calls = config["big_calls"] if items > 1 else config["calls"]
        results["forecast"][f"{items}_items"] = time_forecast(wanted, subset, model, now, calls)

    app = create_asgi_app("predict", str(REPO / "functions" / "predict" / "main.py"))
    settings = Settings.from_env({"SHOPML_PREDICT_KEYS": f"{SHOP}={KEY}", "SHOPML_PREDICT_SAMPLE_RATE": "0"})
    pointer = deploy(LivePointer(MODEL), "1.0.0", now, "bench")

    def read(variant_ids: list[int], features: tuple[str, ...]) -> dict[int, Any]:
        assert set(features) == set(ONLINE_FEATURES)
        return {v: found[v] for v in variant_ids}

    runtime = predict_app.build_runtime(
        settings,
        pointers=StaticPointers(pointer),
        files=files,
        read_features=read,
        publisher=DiscardPublisher,
    )
    predict_app.use(runtime)

    async def measure() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://predict") as client:
            for items in (1, 100):
                body = {
                    "shop_domain": SHOP,
                    "horizon_days": 28,
                    "items": [{"variant_id": v} for v in range(1, items + 1)],
                }
                headers = {"Authorization": f"Bearer {KEY}"}
                calls = config["big_calls"] if items > 1 else config["calls"]
                samples = []
                for index in range(calls + 20):
                    started = time.perf_counter()
                    response = await client.post("/", json=body, headers=headers)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 200, response.text
                    if index >= 20:
                        samples.append(elapsed)
                results["asgi"][f"{items}_items"] = percentiles(samples)

    asyncio.run(measure())
    predict_app.use(None)
    return results


def cold_start(registry_dir: Path, repeats: int) -> dict[str, Any]:
    """Process start → first 200 answer, the live pointer in the Firestore emulator."""
    from devkit.local.processes import (
        firestore_emulator_argv,
        firestore_ready,
        free_port,
        start_process,
        stop_processes,
        wait_until,
    )
    from shared.adapters.firestore_pointer import FirestorePointerStore
    from shared.serving.pointer import LivePointer, deploy

    log_dir = Path(tempfile.mkdtemp(prefix="predict-bench-logs-"))
    fs_port = free_port()
    emulator = start_process("firestore", firestore_emulator_argv(fs_port), os.environ, log_dir, REPO)
    samples: list[float] = []
    loads: list[float] = []
    try:
        wait_until(emulator, firestore_ready(fs_port), 60, "Firestore emulator")
        host = f"127.0.0.1:{fs_port}"
        store = FirestorePointerStore("shopml-bench", emulator_host=host)
        store.compare_and_swap(MODEL, 0, deploy(LivePointer(MODEL), "1.0.0", datetime.now(UTC), "bench"))
        body = json.dumps({"shop_domain": SHOP, "horizon_days": 7, "items": [{"variant_id": 1}]}).encode()
        for _ in range(repeats):
            port = free_port()
            env = {
                **os.environ,
                "GOOGLE_CLOUD_PROJECT": "shopml-bench",
                "FIRESTORE_EMULATOR_HOST": host,
                "SHOPML_REGISTRY": f"file://{registry_dir}",
                "SHOPML_PREDICT_KEYS": f"{SHOP}={KEY}",
                "SHOPML_PREDICT_SAMPLE_RATE": "0",
                "PYTHONPATH": str(REPO),
            }
            argv = [
                str(Path(sys.executable).with_name("functions-framework")),
                "--asgi", "--source", str(REPO / "functions" / "predict" / "main.py"),
                "--target", "predict", "--host", "127.0.0.1", "--port", str(port),
            ]  # fmt: skip
            started = time.perf_counter()
            server = start_process(f"predict-{port}", argv, env, log_dir, REPO)
            answer = None
            try:
                while time.perf_counter() - started < 60:
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{port}/",
                        data=body,
                        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                    )
                    try:
                        with urllib.request.urlopen(request, timeout=10) as response:
                            answer = json.loads(response.read())
                            break
                    except OSError:
                        time.sleep(0.005)
                samples.append(time.perf_counter() - started)
                if answer is None or answer["model_version"] != "1.0.0":
                    raise RuntimeError(f"predict did not answer with the model: {answer}")
            finally:
                stop_processes([server.pid], None)
            loads.extend(float(ms) for ms in LOAD_LINE.findall(server.log_path.read_text(errors="replace")))
    finally:
        stop_processes([emulator.pid], None)
    return {
        "seconds": [round(s, 3) for s in samples],
        "median_s": round(statistics.median(samples), 3),
        "model_load_ms": loads,
    }


START_PATH = """
import sys
sys.path.insert(0, {repo!r})
import functions_framework._cli
from functions_framework.aio import create_asgi_app
create_asgi_app("predict", {source!r})
import shared.adapters.firestore_rest, shared.adapters.object_stores, urllib3, onnxruntime
"""


def import_profile(code: str) -> tuple[dict[str, float], set[str]]:
    """Cumulative import seconds per top-level import (``python -X importtime``; packages
    grouped by their first name, ``shared.*`` and ``google.*`` by their full name), largest
    first, and every module name imported."""
    found = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    totals: dict[str, float] = {}
    names: set[str] = set()
    for line in found.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, imported = line.split("|")
        if not cumulative.strip().isdigit():
            continue  # the header
        name = imported.strip()
        names.add(name)
        if imported.startswith("  "):
            continue  # nested: counted in its top-level import
        top = name if name.startswith(("shared.", "google.")) else name.split(".")[0]
        totals[top] = totals.get(top, 0.0) + int(cumulative) / 1e6
    ranked = sorted(((k, round(v, 3)) for k, v in totals.items()), key=lambda kv: -kv[1])
    return dict(ranked), names


def start_path_imports(repeats: int) -> dict[str, Any]:
    """The start path's imports (median total over ``repeats``), the top packages of the median
    run, and the Firestore client library alone for comparison."""
    code = START_PATH.format(repo=str(REPO), source=str(REPO / "functions" / "predict" / "main.py"))
    profiles = [import_profile(code) for _ in range(repeats)]
    runs = [totals for totals, _ in profiles]
    sums = [sum(run.values()) for run in runs]
    median_run = runs[sums.index(sorted(sums)[len(sums) // 2])]
    firestore = [import_profile("import google.cloud.firestore")[0] for _ in range(repeats)]
    return {
        "total_s": [round(t, 3) for t in sums],
        "median_total_s": round(statistics.median(sums), 3),
        "top": dict(list(median_run.items())[:8]),
        "firestore_in_start_path": any(
            name.startswith(("google.cloud.firestore", "grpc")) for _, names in profiles for name in names
        ),
        "firestore_client_alone_s": round(
            statistics.median(run.get("google.cloud.firestore", 0.0) for run in firestore), 3
        ),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from shared.adapters.object_stores import LocalObjectStore
    from shared.registry import store_version_files

    config = QUICK if quick else FULL
    onnx_model, booster, names = train_model(config["rounds"], config["train_rows"])
    with tempfile.TemporaryDirectory(prefix="predict-bench-") as folder:
        registry_dir = Path(folder) / "registry"
        store_version_files(LocalObjectStore(registry_dir), MODEL, "1.0.0", onnx_model, card(names))
        results: dict[str, Any] = {
            "config": config,
            "model": {"rounds": booster.num_trees(), "inputs": len(names), "onnx_bytes": len(onnx_model)},
            "model_call": model_calls(onnx_model, booster, names, config),
            "in_process": in_process(registry_dir, config),
            "cold_start": cold_start(registry_dir, config["cold_starts"]),
            "start_path_imports": start_path_imports(config["cold_starts"]),
        }
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        f"model: {results['model']['rounds']} trees, {results['model']['inputs']} inputs, "
        f"{results['model']['onnx_bytes'] / 1e6:.1f} MB ONNX",
        "",
        "| rows | ONNX 1 thread p50 / p99 | ONNX 2 threads p50 / p99 | LightGBM 1 thread p50 / p99 "
        "| LightGBM all cores p50 / p99 | p99 speed-up (1 thread) | max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for rows, entry in results["model_call"].items():
        cells = [
            f"{entry[k]['p50_ms']:.3f} / {entry[k]['p99_ms']:.3f} ms"
            for k in ("onnx_1_thread", "onnx_2_thread", "lightgbm_1_thread", "lightgbm_all_cores")
        ]
        speedup, diff = entry["p99_speedup_1_thread"], entry["max_abs_diff"]
        lines.append(f"| {rows.split('_')[0]} | {' | '.join(cells)} | {speedup}x | {diff:.2g} |")
    lines += ["", "| in process, horizon 28 | p50 | p99 |", "|---|---|---|"]
    for where in ("forecast", "asgi"):
        for items, entry in results["in_process"][where].items():
            label = "forecast() (rows + ONNX + units)" if where == "forecast" else "whole ASGI app in process"
            count = items.replace("_", " ")
            lines.append(f"| {label}, {count} | {entry['p50_ms']:.3f} ms | {entry['p99_ms']:.3f} ms |")
    cold = results["cold_start"]
    lines += [
        "",
        "cold start (process start → first answer, incl. pointer read and model load): "
        f"median {cold['median_s']} s over {cold['seconds']}; model load {cold['model_load_ms']} ms",
    ]
    imports = results["start_path_imports"]
    top = ", ".join(f"{name} {seconds:.3f}" for name, seconds in imports["top"].items())
    lines += [
        f"start-path imports: median {imports['median_total_s']} s over {imports['total_s']} "
        f"(Firestore client on it: {imports['firestore_in_start_path']}); top: {top}",
        f"the Firestore client library alone: {imports['firestore_client_alone_s']} s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.predict_bench")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    outcome = run(quick=args.quick)
    print(json.dumps(outcome, indent=2, default=str))
    print(report(outcome))
