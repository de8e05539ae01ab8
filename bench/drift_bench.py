"""Drift check speed and detection quality (issue 10, Step 5).

Speed: one drift check (``shared.monitoring.drift.compare``: KS, PSI, mean shift, corrected
verdicts, report histograms) over 1,000,000 current rows x 30 numeric features against a
200,000-row reference, the reference prepared (sorted, binned) inside the timed check; next
to it, in the same run, a plain loop of ``scipy.stats.ks_2samp`` + ``np.histogram`` PSI +
mean shift over the same columns. Both give identical statistics (max differences reported,
required <= 1e-9) and, through the same rules, identical verdicts. Targets: < 3 s on 2 cores,
>= 2x faster than the loop. Peak memory: tracemalloc's peak of each (numpy reports its
buffers to it) and the process's peak RSS.

The 30 features mix what serving sees: continuous (normal, log-normal), counts (Poisson:
many ties), float32-rounded prices, and shifts of every size, including mild ones at
n d^2 in [2.2, 370) where ``kstwo.sf`` sums the Smirnov series (the loop's slow branch).

Detection quality at the default thresholds (``DriftThresholds()``), on smaller samples so
that 1,000 trials run in a minute: reference 20,000 rows (the card's sample size), current
5,000 rows, 30 features (10 normal, 10 log-normal, 10 Poisson) per trial, fresh data per trial.
Reported: the share of no-drift trials with any feature flagged (target <= 1%), and per
injected change in one feature (normal 2 sd / 0.5 sd / 0.25 sd / 0.1 sd mean shift, x1.5
scale with the same mean) the share of trials that flag it, which rule fired, and false flags
on the other 29.

``python -m bench --only drift [--quick]`` or ``python bench/drift_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a script too
    sys.path.insert(0, str(ROOT))

from shared.monitoring import drift  # noqa: E402
from shared.monitoring.drift import DriftThresholds, FeatureDrift, compare  # noqa: E402

FEATURES = 30
TARGET_SECONDS = 3.0
TARGET_SPEEDUP = 2.0


def speed_data(
    reference_rows: int, current_rows: int, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    # (kind, current mean shift in sd, current scale)
    plan = (
        [("normal", 0.0, 1.0)] * 8
        + [("lognormal", 0.0, 1.0)] * 4
        + [("poisson", 0.0, 1.0)] * 4
        + [("price", 0.0, 1.0)] * 4
        + [("normal", s, 1.0) for s in (0.005, 0.01, 0.02, 0.04)]  # mild: the Smirnov branch
        + [("normal", 0.5, 1.0), ("normal", 2.0, 1.0), ("normal", 0.0, 1.5)]
        + [("poisson", 0.3, 1.0), ("lognormal", 0.1, 1.0), ("price", 0.05, 1.0)]
    )
    assert len(plan) == FEATURES
    for index, (kind, shift, scale) in enumerate(plan):
        name = f"{kind}_{index:02d}"
        for target, rows, mean, sd in (
            (reference, reference_rows, 0.0, 1.0),
            (current, current_rows, shift, scale),
        ):
            if kind == "normal":
                values = rng.normal(mean, sd, size=rows)
            elif kind == "lognormal":
                values = np.exp(rng.normal(mean, sd, size=rows))
            elif kind == "poisson":
                values = rng.poisson(4.0 * (1 + mean), size=rows).astype(np.float64)
            else:  # a price: float32 values with two decimals, many repeats
                values = np.round(rng.gamma(4.0, 5.0 * (1 + mean), size=rows), 2).astype(np.float32)
                values = values.astype(np.float64)
            target[name] = values
    return reference, current


def plain_loop(
    reference: dict[str, Any], current: dict[str, Any], thresholds: DriftThresholds
) -> dict[str, FeatureDrift]:
    """The obvious code: ks_2samp, np.quantile edges + np.histogram PSI, mean shift, per column."""
    from scipy.stats import ks_2samp

    entries: dict[str, FeatureDrift] = {}
    for name in current:
        ref, cur = reference[name], current[name]
        result = ks_2samp(ref, cur)
        edges = np.unique(np.quantile(ref, np.arange(1, thresholds.psi_bins) / thresholds.psi_bins))
        bins = np.concatenate([[-np.inf], edges, [np.inf]])
        ref_share = np.histogram(ref, bins)[0] / ref.size
        cur_share = np.histogram(cur, bins)[0] / cur.size
        entry = FeatureDrift(
            name=name, kind="numeric", reference_rows=ref.size, current_rows=cur.size,
            missing_fraction_reference=0.0, missing_fraction_current=0.0,
            psi=drift.psi(ref_share, cur_share, thresholds.psi_epsilon), psi_bins=edges.size + 1,
        )  # fmt: skip
        entry.ks_statistic, entry.ks_pvalue = float(result.statistic), float(result.pvalue)
        entry.pvalue = entry.ks_pvalue
        entry.mean_shift_sigma = drift.mean_shift_sigma(
            float(ref.mean()), float(ref.std()), float(cur.mean())
        )
        entries[name] = entry
    drift.judge(entries.values(), thresholds)
    return entries


def _timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of the process: all threads, whatever else runs)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - started, time.process_time() - cpu


def _peak_mib(work: Callable[[], Any]) -> float:
    """tracemalloc's peak over one run (a separate, untimed run: tracing slows allocation)."""
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def speed(reference_rows: int, current_rows: int, repeats: int) -> dict[str, Any]:
    reference, current = speed_data(reference_rows, current_rows)
    thresholds = DriftThresholds()
    import scipy.stats  # noqa: F401  (imported before timing: both sides use it)

    fast_runs, fast_one_thread, loop_runs, fast_cpu, loop_cpu = [], [], [], [], []
    report = None
    loop: dict[str, FeatureDrift] = {}
    for _ in range(repeats):
        report, seconds, _ = _timed(lambda: compare(reference, current, thresholds))
        fast_runs.append(seconds)
        _, seconds, cpu = _timed(lambda: compare(reference, current, thresholds, workers=1))
        fast_one_thread.append(seconds)
        fast_cpu.append(cpu)
        loop, seconds, cpu = _timed(lambda: plain_loop(reference, current, thresholds))
        loop_runs.append(seconds)
        loop_cpu.append(cpu)
    fast_peak = _peak_mib(lambda: compare(reference, current, thresholds))
    loop_peak = _peak_mib(lambda: plain_loop(reference, current, thresholds))
    assert report is not None
    diffs = {"ks_statistic": 0.0, "ks_pvalue": 0.0, "psi": 0.0, "mean_shift_sigma": 0.0}
    for name, entry in report.features.items():
        for key in diffs:
            diffs[key] = max(diffs[key], abs(float(getattr(entry, key)) - float(getattr(loop[name], key))))
    same_verdicts = all(report.features[n].drifted == loop[n].drifted for n in loop)
    fast, slow = min(fast_runs), min(loop_runs)
    return {
        "reference_rows": reference_rows,
        "current_rows": current_rows,
        "features": FEATURES,
        "workers": min(4, os.cpu_count() or 1),
        "repeats": repeats,
        "check_seconds": fast_runs,
        "check_seconds_one_thread": fast_one_thread,
        "plain_loop_seconds": loop_runs,
        "best_check_seconds": fast,
        "best_check_seconds_one_thread": min(fast_one_thread),
        "best_plain_loop_seconds": slow,
        "speedup": slow / fast,
        "best_check_cpu_seconds_one_thread": min(fast_cpu),
        "best_plain_loop_cpu_seconds": min(loop_cpu),
        "cpu_speedup": min(loop_cpu) / min(fast_cpu),
        "load_average_1min": os.getloadavg()[0],
        "peak_traced_mib_check": fast_peak,
        "peak_traced_mib_plain_loop": loop_peak,
        "input_mib": sum(v.nbytes for v in (*reference.values(), *current.values())) / 2**20,
        "max_abs_diff": diffs,
        "identical_to_1e-9": all(value <= 1e-9 for value in diffs.values()),
        "same_verdicts": same_verdicts,
        "drifted": report.drifted,
        "targets": {"seconds": TARGET_SECONDS, "speedup": TARGET_SPEEDUP},
        "meets_targets": fast < TARGET_SECONDS and slow / fast >= TARGET_SPEEDUP,
    }


def _trial_data(
    rng: np.random.Generator, reference_rows: int, current_rows: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    reference: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    for index in range(FEATURES):
        group = index // 10
        for target, rows in ((reference, reference_rows), (current, current_rows)):
            if group == 0:
                target[f"f{index:02d}"] = rng.normal(size=rows)
            elif group == 1:
                target[f"f{index:02d}"] = rng.lognormal(0.0, 0.75, size=rows)
            else:
                target[f"f{index:02d}"] = rng.poisson(3.0, size=rows).astype(np.float64)
    return reference, current


CHANGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "mean +2 sd": lambda x: x + 2.0,
    "scale x1.5, same mean": lambda x: x * 1.5,
    "mean +0.5 sd": lambda x: x + 0.5,
    "mean +0.25 sd": lambda x: x + 0.25,
    "mean +0.1 sd": lambda x: x + 0.1,
}


def detection(
    trials: dict[str, int], reference_rows: int, current_rows: int, seed: int = 1
) -> dict[str, Any]:
    """Per change (applied to feature f03, a standard normal): how often the check flags it."""
    thresholds = DriftThresholds()
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {}
    for change, count in trials.items():
        any_flag = target_flag = other_flags = 0
        rules = {"mean": 0, "psi": 0, "ks": 0}
        started = time.perf_counter()
        for _ in range(count):
            reference, current = _trial_data(rng, reference_rows, current_rows)
            current["f03"] = CHANGES[change](current["f03"])
            report = compare(reference, current, thresholds, workers=1, with_histograms=False)
            flagged = report.drifted
            any_flag += bool(flagged)
            target_flag += "f03" in flagged
            other_flags += sum(1 for name in flagged if name != "f03")
            for reason in report.features["f03"].reasons:
                rules[
                    "mean" if reason.startswith("mean") else "psi" if reason.startswith("PSI") else "ks"
                ] += 1
        results[change] = {
            "trials": count,
            "any_feature_flagged": any_flag / count,
            "changed_feature_flagged": target_flag / count,
            "false_flags_other_features_per_trial": other_flags / count,
            "rule_fired_on_changed_feature": {rule: hits / count for rule, hits in rules.items()},
            "seconds": round(time.perf_counter() - started, 1),
        }
    return {
        "reference_rows": reference_rows,
        "current_rows": current_rows,
        "features": FEATURES,
        "changed_feature": "f03 (standard normal)",
        "thresholds": report.to_json()["thresholds"],
        "results": results,
        "false_alarm_rate": results["none"]["any_feature_flagged"],
        "targets": {"false_alarm_rate_max": 0.01, "mean_2sd_detected_min": 0.99},
        "meets_targets": results["none"]["any_feature_flagged"] <= 0.01
        and results["mean +2 sd"]["changed_feature_flagged"] >= 0.99,
    }


def run(quick: bool = False) -> dict[str, Any]:
    if quick:
        speed_result = speed(50_000, 250_000, repeats=1)
        trials = {change: 50 for change in CHANGES}
    else:
        speed_result = speed(200_000, 1_000_000, repeats=3)
        trials = {change: 1000 if change in ("none", "mean +2 sd") else 300 for change in CHANGES}
    return {
        "speed": speed_result,
        "detection": detection(trials, 20_000, 5_000),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpus": os.cpu_count(),
    }


def report(results: dict[str, Any]) -> str:
    s = results["speed"]
    d = results["detection"]
    lines = [
        f"speed: {s['current_rows']:,} x {s['features']} vs {s['reference_rows']:,} reference rows",
        f"  check {s['best_check_seconds']:.2f} s ({s['workers']} threads; 1 thread "
        f"{s['best_check_seconds_one_thread']:.2f} s), plain ks_2samp + np.histogram loop "
        f"{s['best_plain_loop_seconds']:.2f} s: {s['speedup']:.1f}x (best of {s['repeats']}; load "
        f"{s['load_average_1min']:.1f})",
        f"  CPU-s, one thread: check {s['best_check_cpu_seconds_one_thread']:.2f}, loop "
        f"{s['best_plain_loop_cpu_seconds']:.2f}: {s['cpu_speedup']:.1f}x",
        f"  peak traced memory: check {s['peak_traced_mib_check']:.0f} MiB, loop "
        f"{s['peak_traced_mib_plain_loop']:.0f} MiB (inputs {s['input_mib']:.0f} MiB); process peak RSS "
        f"{results['peak_rss_mib']:.0f} MiB",
        f"  max |diff|: {', '.join(f'{k} {v:.1e}' for k, v in s['max_abs_diff'].items())}; "
        f"identical to 1e-9: {s['identical_to_1e-9']}; same verdicts: {s['same_verdicts']}",
        f"  drifted: {', '.join(s['drifted'])}",
        f"  targets (< {TARGET_SECONDS} s, >= {TARGET_SPEEDUP}x): "
        + ("met" if s["meets_targets"] else "NOT met"),
        f"detection: {d['current_rows']:,} current vs {d['reference_rows']:,} reference rows "
        f"x {d['features']}",
    ]
    for change, entry in d["results"].items():
        rules = ", ".join(f"{k} {v:.0%}" for k, v in entry["rule_fired_on_changed_feature"].items())
        lines.append(
            f"  {change:<22} {entry['trials']:>5} trials: any flagged {entry['any_feature_flagged']:.1%}, "
            f"changed feature {entry['changed_feature_flagged']:.1%} ({rules}), other features "
            f"{entry['false_flags_other_features_per_trial']:.3f}/trial"
        )
    lines.append(f"  targets (false alarms <= 1%, 2 sd >= 99%): {'met' if d['meets_targets'] else 'NOT met'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = run(quick=args.quick)
    print(report(results))
    print(json.dumps(results["speed"]["max_abs_diff"]))


if __name__ == "__main__":
    main()
