"""Step 3 benchmark: feature build, training and ONNX export on 18 months × 2,000 variants.

Each repeat runs in a fresh child process (so its peak RSS is its own): build the feature
table from the DuckDB warehouse with the feature SQL, cross-validate and fit LightGBM, export
to ONNX and check parity; WAPE of the model against seasonal naive and a 28-day moving
average on the last 28 days. The reference next to it: native LightGBM prediction vs ONNX
Runtime on the same holdout rows. Then the same comparison on the real retail sample (its
85 days allow one fold and a 14-day holdout), whatever it shows.

Run: ``python -m bench --only training [--quick]`` or ``python -m bench.training_bench``.

Step 3b, real data: ``python -m bench.training_bench --real FILE [--warehouse DB] [--cv-folds N]``
imports an order file (``devkit.importer``: UCI Online Retail, cancellations as refunds) into a
DuckDB file (kept with ``--warehouse``, reused when it exists), then trains on its whole window
and prints every forecaster (model, zero, seasonal naive, 28-day average) on WAPE, RMSE,
RMSSE (mean and weighted) and bias, per cross-validation fold and on the holdout, with the
gate's verdict and the ONNX parity.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from shared.bootstrap import close_warehouse
from shared.settings import Settings

HISTORY_END = date(2024, 6, 30)
FULL = {"variants": 2000, "days": 548, "repeats": 2}
QUICK = {"variants": 300, "days": 548, "repeats": 1}


def _warehouse(path: Path) -> Any:
    from shared.bootstrap import create_warehouse

    warehouse = create_warehouse(Settings(warehouse_url=f"duckdb:///{path}"))
    warehouse.ensure_schema()
    return warehouse


def _windows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-fold and holdout headline metrics of every forecaster, oldest first."""
    from shared.training.gate import BASELINES
    from shared.training.trainer import _headline

    rows = [
        {
            "window": f"fold {fold['cutoff']}",
            "metrics": fold["metrics"],
            "no_sales": fold["horizons_without_sales"],
        }
        for fold in card["cross_validation"]
    ]
    holdout = _headline({name: card["metrics"][name] for name in ("model", *BASELINES)})
    rows.append(
        {
            "window": f"holdout {card['trained_through']}",
            "metrics": holdout,
            "no_sales": card["horizons_without_sales"],
        }
    )
    rows.append({"window": "mean", "metrics": card["cv_summary"], "no_sales": []})
    return rows


def child(
    db: str, start: str, end: str, cv_folds: int, holdout_days: int, sharpen: bool = False
) -> dict[str, Any]:
    """One measured run, in its own process: features → train → export → parity."""
    import numpy as np

    from shared.features.build import build_features
    from shared.training import export
    from shared.training.trainer import TrainerConfig, train

    warehouse = _warehouse(Path(db))
    started = time.perf_counter()
    frame = build_features(warehouse, date.fromisoformat(start), date.fromisoformat(end))
    features_s = time.perf_counter() - started
    result = train(frame, TrainerConfig(cv_folds=cv_folds, holdout_days=holdout_days, sharpen=sharpen))
    total_s = time.perf_counter() - started
    card = result.card
    # Reference: native LightGBM vs ONNX Runtime on the holdout rows (one thread each).
    holdout = result.holdout
    np.savez(
        Path(db).with_suffix(".holdout.npz"),
        variant_id=holdout.variant_id,
        day=holdout.day,
        label=holdout.label,
    )
    session = export.onnx_session(result.onnx_model, threads=1)
    timings: dict[str, list[float]] = {"native": [], "onnx": []}
    for _ in range(3):
        t = time.perf_counter()
        result.booster.predict(holdout.inputs, num_threads=1)
        timings["native"].append(time.perf_counter() - t)
        t = time.perf_counter()
        export.onnx_predict(session, holdout.inputs)
        timings["onnx"].append(time.perf_counter() - t)
    return {
        "feature_rows": len(frame),
        "variants": card["rows"]["variants"],
        "train_rows": card["rows"]["train"],
        "holdout_rows": card["rows"]["holdout"],
        "features_s": features_s,
        "training_s": card["timings"]["training_s"],
        "export_s": card["timings"]["export_s"],
        "parity_s": card["timings"]["parity_s"],
        "total_s": total_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rounds": card["parameters"]["num_boost_round"],
        "parity_max_abs_diff": card["parity"]["max_abs_diff"],
        "wape_model": card["wape_model"],
        "wape_seasonal_naive": card["wape_seasonal_naive"],
        "wape_moving_average_28": card["wape_moving_average_28"],
        "wape_by_horizon": {h: m["wape"] for h, m in card["metrics"]["model"]["by_horizon"].items()},
        "predict_holdout_native_ms": 1000 * statistics.median(timings["native"]),
        "predict_holdout_onnx_ms": 1000 * statistics.median(timings["onnx"]),
        "rows_per_s_features": len(frame) / features_s if features_s else float(np.nan),
        "windows": _windows(card),
        "gate": card["gate"],
        "decision": card["decision"],
        "parity": card["parity"],
        "rmsse_holdout": card["rmsse"],
        "postprocessing": card["postprocessing"],
    }


def _run_child(
    db: Path, start: date, end: date, cv_folds: int = 2, holdout_days: int = 28, sharpen: bool = False
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.training_bench", "--child", str(db), str(start), str(end)]
    argv += [str(cv_folds), str(holdout_days), "sharpen" if sharpen else "plain"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"training child failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def oracle_wape(db: Path, history: Any) -> dict[str, float]:
    """Reference forecasts that know what no forecaster can, on the same holdout rows:
    ``demand_mean`` is the simulator's true expected demand (blind to stock-outs);
    ``sales_mean`` is the expected *sales* given the true stock of each day,
    E[min(demand, stock)] under the simulator's negative binomial (k = 4)."""
    import numpy as np
    from scipy import stats

    saved = np.load(db.with_suffix(".holdout.npz"))
    demand = history.demand
    first_day = (demand.day(0) - date(1970, 1, 1)).days
    columns = {int(v): i for i, v in enumerate(history.catalogue.variant_ids)}
    rows = saved["day"] - first_day
    cols = np.array([columns[int(v)] for v in saved["variant_id"]])
    expected = demand.expected[rows, cols].astype(float)
    stock = demand.inventory_on_hand[rows, cols].astype(np.int64)
    k = 4.0
    p = k / (k + np.maximum(expected, 1e-12))
    sales = np.zeros_like(expected)
    for j in range(int(stock.max(initial=0))):  # E[min(N, s)] = sum_{j < s} P(N > j)
        below = stock > j
        sales[below] += stats.nbinom.sf(j, k, p[below])
    label = saved["label"]

    def wape(forecast: np.ndarray) -> float:
        return float(np.abs(label - forecast).sum() / label.sum())

    return {"demand_mean": wape(expected), "sales_mean": wape(sales)}


def run(quick: bool = False) -> dict[str, Any]:
    from devkit.simulator.history import generate_history, write_tables
    from devkit.simulator.replay import replay_into_warehouse
    from devkit.simulator.retail import retail_events

    size = QUICK if quick else FULL
    start = HISTORY_END - timedelta(days=size["days"] - 1)
    results: dict[str, Any] = {"size": size, "window": [str(start), str(HISTORY_END)]}
    with tempfile.TemporaryDirectory(prefix="shopml-train-bench-") as tmp:
        db = Path(tmp) / "history.duckdb"
        warehouse = _warehouse(db)
        t = time.perf_counter()
        # Lags need 28 days before the window: history starts earlier than the features do.
        # [start - 28 days, end]: lags need 28 days before the window; history ends are exclusive.
        history = generate_history(
            size["variants"], start - timedelta(days=28), HISTORY_END + timedelta(days=1), 0
        )
        write_tables(warehouse, history.tables)
        results["history_write_s"] = time.perf_counter() - t
        results["history"] = {"rows": history.counts(), "variant_days": int(history.demand.units.size)}
        close_warehouse(warehouse)
        results["runs"] = [_run_child(db, start, HISTORY_END) for _ in range(size["repeats"])]
        results["wape_oracle"] = oracle_wape(db, history)
        del history

        retail_db = Path(tmp) / "retail.duckdb"
        retail = _warehouse(retail_db)
        replayed = replay_into_warehouse(retail_events(), retail)
        window = retail.query(
            "SELECT MIN(DATE(created_at)) AS a, MAX(DATE(created_at)) AS b FROM orders_latest"
        )[0]
        close_warehouse(retail)
        results["retail"] = {
            "replayed": replayed.__dict__,
            "window": [str(window["a"]), str(window["b"])],
            **_run_child(retail_db, window["a"], window["b"], cv_folds=1, holdout_days=14),
        }
    return results


def run_real(
    path: Path, db: Path | None, cv_folds: int, holdout_days: int = 28, sharpen: bool = False
) -> dict[str, Any]:
    """Import ``path`` into a DuckDB file (unless ``db`` exists already) and train on it."""
    from devkit.importer import import_orders

    with tempfile.TemporaryDirectory(prefix="shopml-train-real-") as tmp:
        target = db or Path(tmp) / "real.duckdb"
        imported: dict[str, Any] = {"reused": target.exists()}
        warehouse = _warehouse(target)
        if not imported["reused"]:
            t = time.perf_counter()
            report = import_orders(path, warehouse=warehouse)
            imported.update(report.as_dict(), import_s=time.perf_counter() - t)
        window = warehouse.query(
            "SELECT MIN(DATE(created_at)) AS a, MAX(DATE(created_at)) AS b FROM orders_latest"
        )[0]
        close_warehouse(warehouse)
        result = _run_child(target, window["a"], window["b"], cv_folds, holdout_days, sharpen)
    return {"file": str(path), "warehouse": str(db or "temporary"), "import": imported, **result}


def report_real(result: dict[str, Any]) -> str:
    keys = ("wape", "wape_weekly", "rmse", "rmsse_mean", "rmsse_weighted", "bias")
    lines = [
        f"{result['file']}: {result['variants']} variants, {result['feature_rows']:,} feature rows, "
        f"features {result['features_s']:.1f} s, training {result['training_s']:.1f} s, "
        f"{result['rounds']} rounds",
        "| window | forecaster | WAPE daily | WAPE weekly | RMSE | RMSSE mean | RMSSE weighted | bias |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for window in result["windows"]:
        for name, values in window["metrics"].items():
            cells = " | ".join("-" if values.get(k) is None else f"{values[k]:.3f}" for k in keys)
            lines.append(f"| {window['window']} | {name} | {cells} |")
    gate = result["gate"]
    parity = result["parity"]
    post = result.get("postprocessing", {"kind": "none"})
    if post["kind"] == "sharpen":
        grid = ", ".join(
            f"k {c['k']:g}: WAPE {c['wape']:.3f} bias {c['bias']:+.3f}{'' if c['allowed'] else ' (bias out)'}"
            for c in post["grid"]
        )
        lines.append(
            f"sharpening on {post['chosen_on']}: chose k {post['k']:g}, s {post['s']:.4g}; grid: {grid}"
        )
    judged = gate.get("judged_on") or {}
    for name, means in (judged.get("means") or {}).items():
        cells = ", ".join(f"{k} {'-' if v is None else f'{v:.4f}'}" for k, v in means.items())
        lines.append(f"gate means over {judged['windows']} windows, {name}: {cells}")
    lines.append(
        f"gate ({gate['rules']['wape_grain']} WAPE): {gate['verdict']} "
        f"({'; '.join(gate['reasons']) or 'beats every baseline'}); best baseline "
        f"{gate['best_baseline']}; decision {result['decision']}; holdout horizons without sales "
        f"{result['windows'][-2]['no_sales']}"
    )
    lines.append(
        f"ONNX parity on {parity['rows']:,} rows: max abs {parity['max_abs_diff']:.2e}, max rel "
        f"{parity['max_rel_diff']:.2e} (atol {parity['atol']:g}, rtol {parity['rtol']:g}): "
        f"{'ok' if parity['ok'] else 'FAILED'}"
    )
    return "\n".join(lines)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def report(results: dict[str, Any]) -> str:
    runs = results["runs"]
    first, last = results["window"]
    lines = [
        f"history: {results['size']['variants']} variants, window {first}..{last}, "
        f"written in {results['history_write_s']:.1f} s",
        "| repeat | feature rows | features s | training s | export s | total s | peak RSS MiB | "
        "WAPE model | seasonal naive | MA-28 | parity |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        lines.append(
            f"| {i} | {run['feature_rows']:,} | {run['features_s']:.1f} | {run['training_s']:.1f} | "
            f"{run['export_s']:.2f} | {run['total_s']:.1f} | {run['peak_rss_mib']:.0f} | "
            f"{run['wape_model']:.3f} | {run['wape_seasonal_naive']:.3f} | "
            f"{run['wape_moving_average_28']:.3f} | "
            f"{run['parity_max_abs_diff']:.1e} |"
        )
    total = _median(runs, "total_s")
    native, onnx = _median(runs, "predict_holdout_native_ms"), _median(runs, "predict_holdout_onnx_ms")
    improvement = 1 - _median(runs, "wape_model") / _median(runs, "wape_seasonal_naive")
    lines.append(
        f"median total {total:.1f} s (target < 180), peak RSS {max(r['peak_rss_mib'] for r in runs):.0f} MiB "
        f"(target < 4096), WAPE {improvement:.1%} below seasonal naive (target >= 20%); holdout predict: "
        f"native {native:.1f} ms vs ONNX {onnx:.1f} ms"
    )
    oracle = results["wape_oracle"]
    naive = _median(runs, "wape_seasonal_naive")
    lines.append(
        f"reference forecasts that know the simulator's truth, same holdout: true expected demand "
        f"WAPE {oracle['demand_mean']:.3f} ({1 - oracle['demand_mean'] / naive:.1%} below seasonal naive), "
        f"expected sales given each day's true stock {oracle['sales_mean']:.3f} "
        f"({1 - oracle['sales_mean'] / naive:.1%} below)"
    )
    retail = results["retail"]
    lines.append(
        f"retail sample ({retail['window'][0]}..{retail['window'][1]}, {retail['variants']} variants, "
        f"{retail['feature_rows']:,} rows, 1 fold, 14-day holdout): WAPE model {retail['wape_model']:.3f}, "
        f"seasonal naive {retail['wape_seasonal_naive']:.3f}, MA-28 {retail['wape_moving_average_28']:.3f}; "
        f"gate {retail['gate']['verdict']} ({'; '.join(retail['gate']['reasons'])}), best baseline "
        f"{retail['gate']['best_baseline']}"
    )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        db, start, end, folds, holdout, mode = sys.argv[2:8]
        print(json.dumps(child(db, start, end, int(folds), int(holdout), mode == "sharpen")))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.training_bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--real", type=Path, help="an order file to import and train on (Step 3b)")
    parser.add_argument("--warehouse", type=Path, help="with --real: the DuckDB file to keep or reuse")
    parser.add_argument("--cv-folds", type=int, default=5, help="with --real: expanding-window folds")
    parser.add_argument("--holdout-days", type=int, default=28, help="with --real: days per fold and holdout")
    parser.add_argument(
        "--sharpen",
        action="store_true",
        help="with --real: post-hoc sharpening s*yhat**k, k fitted on the last fold",
    )
    args = parser.parse_args()
    if args.real:
        real = run_real(args.real, args.warehouse, args.cv_folds, args.holdout_days, args.sharpen)
        print(json.dumps(real, indent=2, default=str))
        print(report_real(real))
        return
    results = run(quick=args.quick)
    print(json.dumps(results, indent=2, default=str))
    print(report(results))


if __name__ == "__main__":
    main()
