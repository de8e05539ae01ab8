"""Trainer pieces: metrics, direct multi-horizon rows, baselines, champion decision, ONNX
parity, versions and the model card. Small frames built by hand or from the simulator."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from shared.errors import PermanentError
from shared.features import COLUMNS, HISTORY, PLANNED, SHOP
from shared.ports import ModelVersion
from shared.training import dataset, export, metrics, postprocess
from shared.training.dataset import MODEL_FEATURES
from shared.training.gate import GateRules, best_baseline, judge
from shared.training.trainer import Champion, TrainerConfig, decide, next_version, train


def panel_frame(n_variants: int = 3, days: int = 150, seed: int = 0) -> pd.DataFrame:
    """A feature table in the contract's shape with demand driven by weekday and promotions."""
    rng = np.random.default_rng(seed)
    start = date(2024, 1, 1)
    rows = []
    for v in range(n_variants):
        base = 2.0 + 3 * v
        units: list[float] = []
        for t in range(days):
            day = start + timedelta(days=t)
            promo = 1.0 if t % 30 < 3 else 0.0
            mean = base * (1.5 if day.isoweekday() >= 6 else 1.0) * (2.0 if promo else 1.0)
            units.append(float(rng.poisson(mean)))
        for t in range(days):
            day = start + timedelta(days=t)
            past = units[max(0, t - 28) : t]
            week = units[max(0, t - 7) : t]
            rows.append(
                {
                    "shop_domain": "demo.myshopify.com",
                    "variant_id": 1000 + v,
                    "product_id": 100 + v,
                    "date": pd.Timestamp(day),
                    "units": units[t],
                    **{f"lag_{k}": units[t - k] if t >= k else np.nan for k in (1, 7, 14, 28)},
                    "rmean_7": np.mean(week) if week else np.nan,
                    "rstd_7": np.std(week) if week else np.nan,
                    "rmean_28": np.mean(past) if past else np.nan,
                    "rstd_28": np.std(past) if past else np.nan,
                    "sale_days_28": float(np.mean(np.array(past) > 0)) if past else np.nan,
                    "days_since_sale": next(
                        (float(k) for k in range(1, 29) if t >= k and units[t - k] > 0), np.nan
                    ),
                    **{f"shop_trading_dow{k}": 1.0 for k in range(1, 8)},
                    "price": 20.0 + v,
                    "discount": 0.0,
                    "inventory_on_hand": 50.0,
                    "product_type": ["Hoodie", "Mug", "Tee"][v % 3],
                    "product_age_days": float(t + 10),
                    "dow": day.isoweekday(),
                    "month": day.month,
                    "promo_active": 1.0 if t % 30 < 3 else 0.0,
                    "promo_discount": 0.2 if t % 30 < 3 else 0.0,
                    "days_to_promo": 0.0 if t % 30 < 3 else float(30 - t % 30),
                    "days_since_promo": 0.0 if t % 30 < 3 else float(t % 30 - 2),
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_metrics_known_values() -> None:
    actual = np.array([2.0, 0.0, 4.0])
    forecast = np.array([1.0, 1.0, 4.0])
    scored = metrics.score(actual, forecast)
    assert scored["wape"] == pytest.approx(2 / 6)
    assert scored["mae"] == pytest.approx(2 / 3)
    assert scored["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert scored["bias"] == pytest.approx(0.0)
    assert metrics.bias(np.array([2.0]), np.array([3.0])) == pytest.approx(0.5)
    assert np.isnan(metrics.wape(np.zeros(3), np.ones(3)))  # nothing sold: undefined, not zero


def test_rmsse_follows_m5_on_hand_computed_values() -> None:
    """Four variants, history days 0..4, cutoff day 4, holdout days 5..6.

    v1 history 0 0 2 0 4 (price 2): from its first sale 2 0 4, naive steps (-2, 4), denominator
      (4 + 16) / 2 = 10; holdout actual 1 3, forecast 2 2: MSE 1, RMSSE sqrt(1 / 10).
    v2 history 1 2 1 2 1 (price 1): denominator 1; holdout actual 0 0, forecast 1 3: MSE 5, RMSSE sqrt(5).
    v3 never sold: no denominator, left out. v4 sold 5 every day: denominator 0, left out.
    """
    history = {1: [0, 0, 2, 0, 4, 1, 3], 2: [1, 2, 1, 2, 1, 0, 0], 3: [0] * 7, 4: [5] * 7}
    prices = {1: 2.0, 2: 1.0, 3: 1.0, 4: 1.0}
    variant = np.repeat(list(history), 7)
    day = np.tile(np.arange(7), 4)
    units = np.concatenate([np.array(v, dtype=float) for v in history.values()])
    price = np.repeat([prices[v] for v in history], 7)
    scale = metrics.scales(variant, day, units, price, cutoff_day=4)
    assert scale.denominator[0] == pytest.approx(10.0) and scale.denominator[1] == pytest.approx(1.0)
    assert np.isnan(scale.denominator[2]) and scale.denominator[3] == 0.0
    # Weights: sales over the last 28 days up to the cutoff, in money (M5): v1 6 x 2, v2 7 x 1.
    assert scale.weight_basis == "revenue" and scale.weight[:2].tolist() == [12.0, 7.0]
    holdout = day >= 5
    forecast = {1: [2.0, 2.0], 2: [1.0, 3.0], 3: [0.0, 1.0], 4: [5.0, 5.0]}
    scored = metrics.rmsse(units[holdout], np.concatenate(list(forecast.values())), variant[holdout], scale)
    per_variant = [np.sqrt(1 / 10), np.sqrt(5.0)]
    assert scored["mean"] == pytest.approx(np.mean(per_variant))
    assert scored["weighted"] == pytest.approx((12 * per_variant[0] + 7 * per_variant[1]) / 19)
    assert scored["variants"] == 2 and scored["excluded_variants"] == 2
    # Without a known price on a selling row the weights fall back to units for everyone.
    unpriced = metrics.scales(variant, day, units, np.where(variant == 2, np.nan, price), cutoff_day=4)
    assert unpriced.weight_basis == "units" and unpriced.weight[:2].tolist() == [6.0, 7.0]


def test_a_variant_launched_after_the_cutoff_is_left_out_of_rmsse() -> None:
    scale = metrics.scales(np.array([1, 1, 1]), np.array([0, 1, 2]), np.array([1.0, 2.0, 0.0]), np.ones(3), 2)
    scored = metrics.rmsse(np.array([1.0, 1.0]), np.array([1.0, 2.0]), np.array([1, 9]), scale)
    assert scored["variants"] == 1 and scored["excluded_variants"] == 1 and scored["mean"] == 0.0


def test_metrics_stay_defined_on_a_horizon_without_sales() -> None:
    """Horizon 2 is a day the shop is closed: nothing sold anywhere."""
    variant = np.array([1, 1, 2, 2])
    horizon = np.array([1, 2, 1, 2])
    actual = np.array([4.0, 0.0, 2.0, 0.0])
    forecast = np.array([3.0, 1.0, 2.0, 0.0])
    scale = metrics.scales(
        np.array([1, 1, 2, 2]), np.array([0, 1, 0, 1]), np.array([1.0, 3.0, 2.0, 0.0]), np.ones(4), 1
    )
    scored = metrics.evaluate(actual, forecast, horizon, variant, scale)
    assert scored["horizons_without_sales"] == [2]
    closed = scored["by_horizon"]["2"]
    assert closed["wape"] is None and closed["bias"] is None and closed["actual_units"] == 0.0
    assert closed["mae"] == pytest.approx(0.5) and closed["rmse"] == pytest.approx(np.sqrt(0.5))
    # Sum |error| on the day over the mean units per horizon (6 / 2): its share of the overall WAPE.
    assert closed["scaled_abs_error"] == pytest.approx(1 / 3)
    assert scored["by_horizon"]["1"]["scaled_abs_error"] == pytest.approx(1 / 3)
    assert scored["overall"]["wape"] == pytest.approx(2 / 6)
    # RMSSE on the closed day: v1 sqrt(1 / 4) (steps 1 -> 3), v2 0 (denominator 4).
    assert closed["rmsse"] == pytest.approx(np.mean([np.sqrt(1 / 4), 0.0]))
    assert json_safe(scored)


def json_safe(value: object) -> bool:
    import json

    json.dumps(value, allow_nan=False)
    return True


def evaluation_of(**overall: dict[str, float]) -> dict[str, dict[str, object]]:
    """A minimal holdout evaluation: per forecaster its overall WAPE and weighted RMSSE."""
    return {
        name: {"overall": {"wape": m["wape"], "rmsse": {"weighted": m["rmsse"]}}}
        for name, m in overall.items()
    }


def window(**headline: dict[str, float]) -> dict[str, dict[str, float]]:
    """One cross-validation window as the trainer summarises it: per forecaster its headline
    numbers (daily WAPE defaults to the weekly one, RMSE to 10, bias to 0)."""
    return {
        name: {
            "wape_weekly": m["wape"],
            "wape": m.get("daily", m["wape"]),
            "rmse": m.get("rmse", 10.0),
            "rmsse_weighted": m["rmsse"],
            "bias": m.get("bias", 0.0),
        }
        for name, m in headline.items()
    }


BASELINE_WINDOW = {
    "zero": {"wape": 1.00, "rmsse": 0.80, "bias": -1.0, "rmse": 12.0, "daily": 1.0},
    "seasonal_naive": {"wape": 1.20, "rmsse": 0.95, "rmse": 14.0, "daily": 1.5},
    "moving_average_28": {"wape": 0.95, "rmsse": 0.75, "rmse": 11.0, "daily": 1.3},
}


def test_the_gate_promotes_a_model_that_beats_every_baseline_over_the_windows() -> None:
    windows = [
        window(
            model={"wape": 0.90, "rmsse": 0.70, "bias": -0.05, "rmse": 10.0, "daily": 1.2}, **BASELINE_WINDOW
        ),
        window(
            model={"wape": 0.80, "rmsse": 0.68, "bias": 0.08, "rmse": 9.0, "daily": 1.2}, **BASELINE_WINDOW
        ),
    ]
    verdict = judge(
        windows, GateRules(wape_margin=0.05, rmsse_margin=0.05, max_abs_bias=0.10), "moving_average_28"
    )
    assert verdict.passed and verdict.reasons == []
    assert verdict.judged_on["windows"] == 2
    assert verdict.judged_on["means"]["model"]["wape"] == pytest.approx(0.85)  # weekly, by default
    assert verdict.judged_on["means"]["model"]["abs_bias"] == pytest.approx(0.065)
    assert verdict.judged_on["model_bias_by_window"] == [-0.05, 0.08]
    card = verdict.to_card()
    assert card["verdict"] == "pass" and card["best_baseline"] == "moving_average_28"
    assert card["rules"]["wape_grain"] == "weekly"
    json_safe(card)


def test_the_gate_rejects_with_a_reason_per_failed_comparison() -> None:
    windows = [
        window(model={"wape": 0.97, "rmsse": 0.74, "bias": -0.28, "rmse": 11.5}, **BASELINE_WINDOW),
    ]
    verdict = judge(
        windows, GateRules(wape_margin=0.05, rmsse_margin=0.0, max_abs_bias=0.10, rmse_margin=0.0)
    )
    assert not verdict.passed
    assert verdict.reasons == [
        "WAPE (weekly) 0.9700 is not 5.0% below zero (1.0000)",
        "WAPE (weekly) 0.9700 is not 5.0% below moving_average_28 (0.9500)",
        "RMSE 11.5000 is not 0.0% below moving_average_28 (11.0000)",
        "|bias| 0.280 exceeds 0.100",
    ]
    # Worse than one baseline on RMSSE is a reason of its own.
    worse = judge(
        [
            window(
                model={"wape": 0.5, "rmsse": 0.74, "rmse": 9.0},
                **{**BASELINE_WINDOW, "moving_average_28": {"wape": 1.1, "rmsse": 0.7}},
            )
        ],
        GateRules(0.0, 0.0, 0.5),
    )
    assert worse.reasons == ["RMSSE (weighted) 0.7400 is not 0.0% below moving_average_28 (0.7000)"]
    assert best_baseline(evaluation_of(**BASELINE_WINDOW)) == "moving_average_28"


def test_the_gate_judges_the_mean_over_the_windows_not_the_last_one() -> None:
    """A model that wins the holdout but loses the folds is refused, and the other way round."""
    lucky_holdout = [
        window(model={"wape": 1.20, "rmsse": 0.70}, **BASELINE_WINDOW),
        window(model={"wape": 1.15, "rmsse": 0.70}, **BASELINE_WINDOW),
        window(model={"wape": 0.60, "rmsse": 0.70}, **BASELINE_WINDOW),  # the holdout
    ]
    refused = judge(lucky_holdout, GateRules())
    assert refused.reasons == [
        "WAPE (weekly) 0.9833 is not 1.0% below moving_average_28 (0.9500)",
    ]
    unlucky_holdout = [
        lucky_holdout[2],
        lucky_holdout[2],
        window(model={"wape": 0.98, "rmsse": 0.70}, **BASELINE_WINDOW),
    ]
    assert judge(unlucky_holdout, GateRules()).passed


def test_the_gate_bounds_the_mean_absolute_bias_so_opposite_windows_do_not_cancel() -> None:
    windows = [
        window(model={"wape": 0.5, "rmsse": 0.5, "bias": 0.15}, **BASELINE_WINDOW),
        window(model={"wape": 0.5, "rmsse": 0.5, "bias": -0.15}, **BASELINE_WINDOW),
    ]
    verdict = judge(windows, GateRules(max_abs_bias=0.10))
    assert verdict.reasons == ["|bias| 0.150 exceeds 0.100"]  # the signed mean would be 0


def test_the_gate_can_judge_wape_on_days() -> None:
    """With ``wape_grain="daily"`` the zero forecast's daily WAPE of 1.0 is the bar; the same
    model that passes on weekly sums fails there."""
    windows = [window(model={"wape": 0.80, "rmsse": 0.70, "daily": 1.2}, **BASELINE_WINDOW)]
    assert judge(windows, GateRules()).passed
    daily = judge(windows, GateRules(wape_grain="daily"))
    assert daily.reasons == ["WAPE (daily) 1.2000 is not 1.0% below zero (1.0000)"]
    with pytest.raises(PermanentError, match="choose weekly or daily"):
        GateRules(wape_grain="monthly")
    with pytest.raises(PermanentError, match="at least one evaluation window"):
        judge([], GateRules())


def test_the_gate_rules_come_from_settings() -> None:
    from shared.settings import Settings

    assert GateRules.from_settings(Settings.from_env({})) == GateRules()
    rules = GateRules.from_settings(
        Settings.from_env(
            {
                "SHOPML_GATE_WAPE_MARGIN": "0.02",
                "SHOPML_GATE_RMSSE_MARGIN": "0.03",
                "SHOPML_GATE_RMSE_MARGIN": "0",
                "SHOPML_GATE_MAX_ABS_BIAS": "0.2",
                "SHOPML_GATE_WAPE_GRAIN": "Daily",
            }
        )
    )
    assert rules == GateRules(
        wape_margin=0.02, rmsse_margin=0.03, max_abs_bias=0.2, rmse_margin=0.0, wape_grain="daily"
    )


def test_weekly_wape_sums_each_variant_s_week_from_the_origin() -> None:
    """One lump of 7 units a week on an unknown day: forecasting 1 a day is unbiased and loses
    to the zero forecast day by day (WAPE 12/7 against 1), and is exact week by week."""
    horizon = np.tile(np.arange(1, 15), 2)  # two variants, 14 days each
    variant = np.repeat([11, 12], 14)
    actual = np.zeros(28)
    actual[[2, 9, 14 + 0, 14 + 13]] = 7.0  # one lump in each variant's each week
    forecast = np.ones(28)
    assert metrics.wape(actual, forecast) == pytest.approx(12 / 7)
    assert metrics.wape_weekly(actual, forecast, variant, horizon) == pytest.approx(0.0)
    assert metrics.wape_weekly(actual, np.zeros(28), variant, horizon) == pytest.approx(1.0)
    # Weeks are counted from the origin per variant: a lump moved into the next week is an error.
    shifted = actual.copy()
    shifted[2], shifted[7] = 0.0, 7.0  # variant 11: its week-1 lump moves into week 2
    assert metrics.wape_weekly(shifted, forecast, variant, horizon) == pytest.approx(14 / 28)


def test_scores_are_split_by_horizon() -> None:
    scored = metrics.score_by_horizon(
        np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 0.0]), np.array([1, 1, 2])
    )
    assert scored["by_horizon"]["1"]["wape"] == 0.0
    assert scored["by_horizon"]["2"]["wape"] == pytest.approx(1.0)


def test_direct_rows_take_history_from_the_origin_and_calendar_from_the_target() -> None:
    frame = panel_frame(n_variants=2, days=80)
    for k in range(1, 8):  # a distinct value per weekday and day, to see which one is picked
        frame[SHOP[k - 1]] = k + frame["date"].dt.dayofyear / 1000
    panel = dataset.to_panel(frame)
    cutoff = panel.last_day - 28
    rows = dataset.holdout_rows(panel, cutoff)
    assert rows.size == 2 * 28
    assert set(rows.horizon.tolist()) == set(range(1, 29))
    lag1 = MODEL_FEATURES.index("lag_1")
    dow = MODEL_FEATURES.index("dow")
    for i in range(rows.size):
        target = rows.target_row[i]
        h = rows.horizon[i]
        origin = target - (h - 1)
        # lag_1 of the origin row is the last day known at the forecast origin (the cutoff).
        assert panel.day[origin] == cutoff + 1
        assert rows.features[i, lag1] == panel.units[origin - 1]
        assert rows.features[i, dow] == panel.planned[target, PLANNED.index("dow")]
        assert rows.label[i] == panel.units[target]
        # The shop input is the origin row's share for the forecast day's weekday.
        weekday = int(panel.planned[target, PLANNED.index("dow")])
        assert rows.features[i, MODEL_FEATURES.index("shop_trading_weekday")] == np.float32(
            panel.shop[origin, weekday - 1]
        )
        # Seasonal naive reads a day on or before the origin, the same weekday.
        source_day = panel.day[target] - 7 * int(np.ceil(h / 7))
        assert source_day <= cutoff and (panel.day[target] - source_day) % 7 == 0


def test_training_rows_never_reach_past_the_cutoff() -> None:
    panel = dataset.to_panel(panel_frame(days=120))
    cutoff = panel.last_day - 40
    rows = dataset.training_rows(panel, cutoff, np.random.default_rng(0), horizons_per_row=3)
    assert rows.size > 0
    assert panel.day[rows.target_row].max() <= cutoff
    origins = rows.target_row - (rows.horizon - 1)
    assert (panel.variant_id[origins] == panel.variant_id[rows.target_row]).all()


def test_gaps_in_the_feature_table_are_refused() -> None:
    frame = panel_frame(n_variants=1, days=40).drop(index=[10])
    with pytest.raises(PermanentError, match="without gaps"):
        dataset.to_panel(frame)


def test_variants_that_never_sold_in_the_window_are_left_out() -> None:
    frame = panel_frame(n_variants=4, days=200)
    frame.loc[frame["variant_id"] == 1003, "units"] = 0.0
    result = train(frame, TrainerConfig(cv_folds=1, max_rounds=5, threads=2))
    assert result.card["rows"]["variants"] == 3 and result.card["rows"]["inactive_variants_dropped"] == 1
    assert result.card["rows"]["holdout"] == 3 * 28


def test_too_little_history_is_a_clear_error() -> None:
    with pytest.raises(PermanentError, match="not enough history"):
        train(panel_frame(days=60))


def test_champion_decision_respects_the_tolerance() -> None:
    assert decide(0.50, None, 0.02) == "promote"
    assert decide(0.51, 0.50, 0.02) == "promote"
    assert decide(0.5099, 0.50, 0.02) == "promote"
    assert decide(0.5101, 0.50, 0.02) == "reject"
    assert decide(0.50, 0.50, 0.0) == "promote"


def test_next_version_minor_for_retrains_major_for_new_inputs() -> None:
    features = list(MODEL_FEATURES)

    def version(v: str, names: list[str]) -> ModelVersion:
        return ModelVersion("demand", v, (), "file:///x", {"features": names})

    assert next_version([], features) == "1.0.0"
    assert next_version([version("1.0.0", features), version("1.10.0", features)], features) == "1.11.0"
    assert next_version([version("1.2.0", features[:-1])], features) == "2.0.0"


def test_reference_distributions_describe_each_feature() -> None:
    values = np.column_stack([np.arange(100.0), np.r_[np.full(50, np.nan), np.ones(50)]])
    reference = dataset.reference_distributions(values, ["a", "b"])
    a = reference["a"]
    assert isinstance(a, dict)
    assert a["quantiles"]["0.5"] == pytest.approx(49.5)
    assert sum(a["histogram"]["proportions"]) == pytest.approx(1.0)
    assert reference["b"]["missing_fraction"] == pytest.approx(0.5)  # type: ignore[index]


@pytest.fixture(scope="module")
def trained() -> tuple[pd.DataFrame, object]:
    frame = panel_frame(n_variants=6, days=200)
    return frame, train(frame, TrainerConfig(cv_folds=2, max_rounds=120, threads=2))


def test_model_beats_the_baselines_and_the_card_says_so(trained: tuple[pd.DataFrame, object]) -> None:
    _, result = trained
    card = result.card  # type: ignore[attr-defined]
    assert card["features"] == list(MODEL_FEATURES)
    assert card["shops"] == ["demo.myshopify.com"]  # predict serves these shops, falls back for others
    assert card["wape_model"] < card["wape_seasonal_naive"]
    assert set(card["metrics"]) == {"model", "zero", "seasonal_naive", "moving_average_28"}
    for name in card["metrics"]:
        overall = card["metrics"][name]["overall"]
        assert {"wape", "rmse", "bias", "rmsse"} <= set(overall)
        assert {"mean", "weighted", "variants", "excluded_variants"} <= set(overall["rmsse"])
    assert card["wape_zero"] == pytest.approx(1.0) and card["metrics"]["zero"]["overall"]["bias"] == -1.0
    assert card["gate"]["verdict"] in ("pass", "fail") and card["best_baseline"] in card["metrics"]
    assert card["decision"] == ("promote" if card["gate"]["verdict"] == "pass" else "reject")
    assert len(card["cross_validation"][0]["metrics"]) == 4
    assert set(card["cv_summary"]) == set(card["metrics"])
    json_safe({k: v for k, v in card.items() if k not in ("wape_model",)})
    assert set(card["metrics"]["model"]["by_horizon"]) == {str(h) for h in range(1, 29)}
    assert len(card["cross_validation"]) == 2
    folds = card["cross_validation"]
    assert folds[0]["cutoff"] < folds[1]["cutoff"] < card["trained_through"]  # expanding window
    assert folds[0]["train_rows"] < folds[1]["train_rows"]
    assert card["data_window"] == {"start": "2024-01-01", "end": str(date(2024, 1, 1) + timedelta(days=199))}
    assert card["rows"]["holdout"] == 6 * 28
    assert card["product_types"] == ["Hoodie", "Mug", "Tee"]
    assert set(card["reference_distributions"]) == set(MODEL_FEATURES)
    assert card["champion"]["decision"] == "promote" and card["champion"]["version"] is None
    parity = card["parity"]
    assert parity["ok"] and parity["violations"] == 0
    assert parity["max_abs_diff"] <= parity["atol"] + parity["rtol"] * 20 and parity["max_rel_diff"] >= 0
    assert len(card["git_commit"]) >= 7
    assert card["training_seconds"] > 0


def test_onnx_model_reproduces_lightgbm(trained: tuple[pd.DataFrame, object]) -> None:
    frame, result = trained
    panel = dataset.to_panel(frame)
    rows = dataset.training_rows(panel, panel.last_day, np.random.default_rng(1))
    native = result.booster.predict(rows.inputs)  # type: ignore[attr-defined]
    parity = export.check_parity(result.onnx_model, native, rows.inputs)  # type: ignore[attr-defined]
    assert parity.ok, parity
    # The check is not vacuous: a perturbed forecast fails it.
    assert not export.check_parity(result.onnx_model, native + 1e-3, rows.inputs).ok  # type: ignore[attr-defined]


def high_volume_frame(days: int = 200) -> pd.DataFrame:
    """Wholesale-like demand: hundreds of units a day, so float32 rounding is in the 1e-4s."""
    frame = panel_frame(n_variants=4, days=days, seed=5)
    scale = 150.0
    for column in ("units", "lag_1", "lag_7", "lag_14", "lag_28", "rmean_7", "rstd_7", "rmean_28", "rstd_28"):
        frame[column] = frame[column] * scale + np.where(frame[column].isna(), np.nan, 37.0)
    return frame


def test_parity_is_scale_aware_on_demand_in_the_hundreds() -> None:
    frame = high_volume_frame()
    result = train(frame, TrainerConfig(cv_folds=1, max_rounds=300, early_stopping_rounds=300, threads=2))
    native = result.booster.predict(result.holdout.inputs)
    assert np.median(native) > 100  # the scale the absolute-only bound failed on
    parity = result.parity
    assert parity.ok, parity.describe()
    assert result.card["parity"]["max_rel_diff"] == parity.max_rel_diff <= export.PARITY_RTOL
    # A genuinely different model fails: the same trees minus the last one.
    fewer = result.booster.predict(
        result.holdout.inputs, num_iteration=result.booster.current_iteration() - 1
    )
    assert not export.check_parity(result.onnx_model, fewer, result.holdout.inputs).ok
    # So does a forecast off by a thousandth of itself, everywhere.
    assert not export.check_parity(result.onnx_model, native * 1.001, result.holdout.inputs).ok


def test_a_threshold_between_adjacent_float32_values_splits_them_alike_in_onnx() -> None:
    """LightGBM splits two adjacent float32 values at their double midpoint; rounded to
    nearest (to even) that midpoint becomes the upper value, which ONNX would send left."""
    import lightgbm

    low = np.array([0x418D6DB7], dtype=np.uint32).view(np.float32)[0]  # odd mantissa: ties go up
    high = np.nextafter(low, np.float32(np.inf))
    features = np.r_[np.full(50, low), np.full(50, high)].astype(np.float64)[:, None]
    label = np.r_[np.full(50, 1.0), np.full(50, 100.0)]
    params = {"objective": "tweedie", "min_data_in_leaf": 5, "min_data_in_bin": 1, "verbose": -1}
    booster = lightgbm.train(params, lightgbm.Dataset(features, label), 5)
    threshold = booster.dump_model()["tree_info"][0]["tree_structure"]["threshold"]
    assert float(low) < threshold < float(high) and np.float32(threshold) == high  # the trap is set
    assert export.float32_floor(threshold) == float(low)
    native = np.asarray(booster.predict(features))
    assert export.check_parity(export.to_onnx(booster, 1), native, features).ok


def test_the_parity_bound_is_absolute_near_zero_and_relative_at_scale() -> None:
    native = np.array([0.0, 1e-3, 500.0, 500.0])
    produced = native + np.array([9e-5, 9e-5, 4e-3, 0.0])  # 500 * 1e-5 + 1e-4 = 5.1e-3 allowed
    parity = export.compare(produced, native)
    assert (
        parity.ok
        and parity.max_abs_diff == pytest.approx(4e-3)
        and parity.max_rel_diff == pytest.approx(0.09)
    )
    off = export.compare(native + np.array([0.0, 0.0, 6e-3, 0.0]), native)
    assert not off.ok and off.violations == 1 and off.worst_row == 2
    assert not export.compare(np.array([np.nan]), np.array([1.0])).ok


def test_missing_values_reach_both_runtimes_as_the_same_sentinel(
    trained: tuple[pd.DataFrame, object],
) -> None:
    """A feature with no missing value in training but one at serving time: LightGBM reads NaN
    as 0 there, the ONNX tree does not; the sentinel keeps them equal."""
    frame, result = trained
    panel = dataset.to_panel(frame)
    rows = dataset.holdout_rows(panel, panel.last_day - 28)
    features = rows.features.copy()
    features[:, MODEL_FEATURES.index("price")] = np.nan  # price had no gaps in training
    inputs = dataset.model_input(features)
    assert not np.isnan(inputs).any() and (inputs[:, MODEL_FEATURES.index("price")] == dataset.MISSING).all()
    native = result.booster.predict(inputs)  # type: ignore[attr-defined]
    assert export.check_parity(result.onnx_model, native, inputs).ok  # type: ignore[attr-defined]


def test_a_worse_champion_is_beaten_and_a_better_one_wins(trained: tuple[pd.DataFrame, object]) -> None:
    frame, result = trained
    card = result.card  # type: ignore[attr-defined]
    itself = Champion("1.0.0", card, result.onnx_model)  # type: ignore[attr-defined]
    again = train(frame, TrainerConfig(cv_folds=2, max_rounds=120, threads=2), itself)
    assert again.card["champion"]["comparable"] is True
    # Compared on the holdout at the gate's WAPE grain (weekly sums by default).
    assert again.card["champion"]["wape_grain"] == "weekly"
    assert again.card["champion"]["wape"] == pytest.approx(
        card["metrics"]["model"]["overall"]["wape_weekly"], rel=1e-6
    )
    assert again.decision == "promote"  # equal is not worse
    # A weak candidate (a single tree) loses to the same champion.
    weak = train(frame, TrainerConfig(cv_folds=1, max_rounds=1, threads=2), itself, tolerance=0.0)
    assert weak.card["champion"]["wape"] < weak.card["champion"]["candidate_wape"]
    assert weak.decision == "reject" and weak.card["champion"]["decision"] == "reject"
    assert weak.card["decision"] == "reject" and any("champion" in reason for reason in weak.card["reasons"])


def test_a_model_that_loses_to_a_baseline_is_rejected_with_reasons(
    trained: tuple[pd.DataFrame, object],
) -> None:
    """A single shallow tree barely moves from the average: the baselines beat it."""
    frame, _ = trained
    weak = train(frame, TrainerConfig(cv_folds=1, max_rounds=1, num_leaves=2, threads=2))
    assert weak.card["champion"]["decision"] == "promote"  # no champion: only the gate stands in the way
    assert weak.decision == "reject" and weak.card["gate"]["verdict"] == "fail"
    assert weak.card["reasons"] and all("below" in r or "bias" in r for r in weak.card["reasons"])
    assert weak.card["best_baseline"] in ("zero", "seasonal_naive", "moving_average_28")


def test_history_features_are_the_contract() -> None:
    assert set(HISTORY) <= set(MODEL_FEATURES) and MODEL_FEATURES[0] == "horizon"


def _tiny_onnx_and_forecast() -> tuple[bytes, np.ndarray, np.ndarray]:
    """A small Tweedie booster, its ONNX export, its native forecast and its inputs."""
    import lightgbm

    rng = np.random.default_rng(3)
    features = rng.random((400, 3)).astype(np.float32).astype(np.float64)
    label = rng.poisson(np.exp(3 * features[:, 0])).astype(float)
    booster = lightgbm.train({"objective": "tweedie", "verbose": -1}, lightgbm.Dataset(features, label), 20)
    return export.to_onnx(booster, 3), np.asarray(booster.predict(features)), features


def test_sharpening_in_the_onnx_graph_equals_the_numpy_reference() -> None:
    onnx_model, native, features = _tiny_onnx_and_forecast()
    sharpening = postprocess.Sharpening(k=2.5, s=0.07)
    sharpened = postprocess.to_onnx(onnx_model, sharpening)
    expected = sharpening.apply(native)
    assert not np.allclose(expected, native, rtol=1e-2)  # the transform is not a no-op here
    parity = export.check_parity(sharpened, expected, features)
    assert parity.ok, parity.describe()
    assert not export.check_parity(sharpened, native, features).ok  # ...and parity sees it
    produced = export.onnx_predict(export.onnx_session(sharpened), features)
    assert produced.shape == native.shape  # one output, read the same way serving reads it


def test_the_fitted_scale_keeps_the_fitted_rows_total() -> None:
    rng = np.random.default_rng(4)
    forecast = rng.gamma(0.5, 4.0, 5000)
    actual = rng.poisson(forecast).astype(float)
    fitted = postprocess.fit(forecast, actual, max_abs_bias=0.5)
    for candidate in fitted.candidates:
        total = postprocess.Sharpening(candidate.k, candidate.s).apply(forecast).sum()
        assert total == pytest.approx(forecast.sum(), rel=1e-9)  # no bias added on the fitted rows
        assert candidate.bias == pytest.approx(metrics.bias(actual, forecast), abs=1e-9)
    assert fitted.chosen.k == 1.0  # actuals drawn around the forecast: the mean stays best here
    # Sales concentrated on the rows ranked high (actual proportional to forecast squared, same
    # total): k = 2 reproduces them exactly and is chosen.
    concentrated = np.square(forecast) * forecast.sum() / np.square(forecast).sum()
    sharper = postprocess.fit(forecast, concentrated, max_abs_bias=0.10)
    assert sharper.chosen.k == 2.0 and metrics.wape(concentrated, sharper.chosen.apply(forecast)) < 1e-9
    assert sharper.chosen.apply(forecast).sum() == pytest.approx(forecast.sum(), rel=1e-9)


def test_k_of_one_is_the_identity() -> None:
    onnx_model, native, _ = _tiny_onnx_and_forecast()
    assert postprocess.scale_for(native, 1.0) == 1.0
    identity = postprocess.Sharpening(1.0, postprocess.scale_for(native, 1.0))
    assert identity.identity and np.array_equal(identity.apply(native), native)
    assert postprocess.to_onnx(onnx_model, identity) == onnx_model  # nothing appended


def test_sharpening_falls_back_to_the_identity_when_the_bias_is_out_of_bounds() -> None:
    forecast = np.array([0.1, 0.2, 5.0, 8.0])
    actual = np.array([0.0, 0.0, 10.0, 16.0])  # the model forecasts half of what sold
    fitted = postprocess.fit(forecast, actual, max_abs_bias=0.10)
    assert fitted.chosen == postprocess.Sharpening() and not any(c.allowed for c in fitted.candidates)
    with pytest.raises(PermanentError):
        postprocess.fit(forecast, actual, 0.1, grid=(0.5, 1.0))


def test_a_sharpened_model_is_served_and_checked_as_exported(trained: tuple[pd.DataFrame, object]) -> None:
    """Only k = 2 on offer and a loose bias bound: the trainer must sharpen, export the same
    arithmetic, check parity against it and keep the metrics before and after."""
    frame, _ = trained
    config = TrainerConfig(cv_folds=2, max_rounds=120, threads=2, sharpen=True, sharpen_grid=(2.0,))
    result = train(frame, config, gate_rules=GateRules(max_abs_bias=1.0))
    post = result.card["postprocessing"]
    assert post["kind"] == "sharpen" and post["k"] == 2.0 and not post["identity"]
    assert post["chosen_on"].split()[2] == result.card["cross_validation"][-1]["cutoff"]  # the last fold
    chosen = postprocess.Sharpening(post["k"], post["s"])
    raw = result.booster.predict(result.holdout.inputs)
    served = chosen.apply(raw)
    assert export.check_parity(result.onnx_model, served, result.holdout.inputs).ok
    assert not export.check_parity(result.onnx_model, raw, result.holdout.inputs).ok  # the graph sharpens
    assert result.card["parity"]["ok"]
    assert result.card["wape_model"] == pytest.approx(metrics.wape(result.holdout.label, served))
    holdout = post["metrics"]["holdout"]
    assert holdout["before"]["wape"] == pytest.approx(metrics.wape(result.holdout.label, raw))
    assert holdout["after"]["wape"] == result.card["wape_model"]
    assert set(post["metrics"]["cv_summary"]["before"]) == set(holdout["after"])
    # Off by default: the plain model, nothing appended.
    assert TrainerConfig().sharpen is False
