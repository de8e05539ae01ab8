"""Live accuracy and the monitor's verdict: hand-computed values on small frames."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from shared.errors import PermanentError
from shared.monitoring import accuracy as acc
from shared.monitoring import drift
from shared.monitoring.monitor import (
    Rules,
    card_reference,
    check_request_from_message,
    decide,
    served_reference,
    serving_columns,
)

D0 = date(2026, 11, 2)  # a Monday


def prediction(
    variant: int, first_day: date, units: list[float], at: int = 0, shop: str = "a.myshopify.com"
) -> dict:
    return {
        "shop_domain": shop,
        "variant_id": variant,
        "first_day": first_day,
        "units": units,
        "request_time": datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=at),
    }


def test_each_variant_day_is_scored_once_with_the_freshest_forecast() -> None:
    frame = pd.DataFrame(
        [
            prediction(1, D0, [5.0, 6.0, 7.0], at=0),  # D0+1 at horizon 2: 6
            prediction(1, D0 + timedelta(days=1), [9.0, 9.5], at=5),  # D0+1 at horizon 1: 9 (fresher)
            prediction(1, D0 + timedelta(days=1), [8.0, 8.5], at=9),  # same horizon, later request: 8
            prediction(2, D0, [1.0], at=1),
        ]
    )
    rows = acc.forecast_rows(frame, D0, D0 + timedelta(days=1))
    got = {
        (int(r.variant_id), int(r.day) - acc.day_number(D0)): (int(r.horizon), r.forecast)
        for r in rows.itertuples()
    }
    # D0+2 is outside the window (not complete yet): left out.
    assert got == {(1, 0): (1, 5.0), (1, 1): (1, 8.0), (2, 0): (1, 1.0)}


def daily(rows: dict[tuple[int, date], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"variant_id": v, "date": pd.Timestamp(d), "units": u, "price": 2.0} for (v, d), u in rows.items()]
    )


def test_baselines_come_from_each_rows_origin() -> None:
    history = acc.History.from_frame(
        daily(
            {
                (1, D0 - timedelta(days=7)): 4.0,
                (1, D0 - timedelta(days=1)): 28.0,
                (1, D0 - timedelta(days=14)): 2.0,
            }
        )
    )
    rows = pd.DataFrame(
        {
            "shop_domain": ["a", "a"],
            "variant_id": [1, 1],
            "day": [acc.day_number(D0), acc.day_number(D0)],
            "horizon": [1, 8],
            "forecast": [3.0, 3.0],
        }
    )
    found = acc.baseline_forecasts(rows, history)
    assert found["zero"].tolist() == [0.0, 0.0]
    # horizon 1: origin D0-1, same weekday one week back (D0-7) = 4; horizon 8: two weeks back = 2.
    assert found["seasonal_naive"].tolist() == [4.0, 2.0]
    # horizon 1: the 28 days through D0-1 hold 28 + 4 + 2 = 34 units; horizon 8 (origin D0-8): only 2.
    assert found["moving_average_28"].tolist() == pytest.approx([34 / 28, 2 / 28])


def test_score_window_shop_week_and_last_seven_days() -> None:
    days = [D0 + timedelta(days=i) for i in range(7)]
    sold = {(1, d): 10.0 for d in days} | {(2, d): 0.0 for d in days}
    sold[(2, days[3])] = 4.0
    history = acc.History.from_frame(daily(sold))
    frame = pd.DataFrame(
        [prediction(1, d, [12.0]) for d in days]
        + [prediction(2, d, [1.0], shop="b.myshopify.com") for d in days]
    )
    rows = acc.forecast_rows(frame, days[0], days[-1])
    result = acc.score_window(rows, history, days[0], days[-1])
    assert result.rows == 14 and result.variants == 2 and result.actual_units == 74.0
    # model: |12-10| x 7 + (|1-0| x 6 + |1-4|) = 14 + 9 = 23 over 74 units
    assert result.value("model", "wape") == pytest.approx(23 / 74)
    assert result.value("zero", "wape") == pytest.approx(1.0)
    # shop-week sums: shop a 84 vs 70, shop b 7 vs 4: 1 - (14 + 3) / 74
    assert result.shop_week["accuracy"] == pytest.approx(1 - 17 / 74)
    assert result.shop_week["shop_weeks"] == 2
    assert result.last_7_days["forecast_units"] == 91.0 and result.last_7_days["actual_units"] == 74.0
    assert result.last_7_days["deviation"] == pytest.approx(17 / 91)


def test_nothing_to_score_is_an_empty_window_not_an_error() -> None:
    rows = acc.forecast_rows(pd.DataFrame(), D0, D0)
    result = acc.score_window(rows, acc.History.from_frame(pd.DataFrame()), D0, D0)
    assert result.rows == 0 and result.forecasters == {} and result.to_json()["rows"] == 0


# --- the verdict -----------------------------------------------------------------------------------


CARD = {
    "features": ["horizon", "units_lag_7", "rmean_28", "price"],
    "feature_importance": {"share": {"horizon": 0.1, "units_lag_7": 0.5, "rmean_28": 0.3, "price": 0.1}},
    "metrics": {"model": {"overall": {"wape": 0.50, "rmsse": {"weighted": 0.80}}}},
}


def report_with(drifted: list[str]) -> drift.DriftReport:
    rng = np.random.default_rng(0)
    reference = {name: rng.normal(size=2000) for name in ("units_lag_7", "rmean_28", "price")}
    current = {name: rng.normal(loc=3.0 if name in drifted else 0.0, size=2000) for name in reference}
    return drift.compare(reference, current)


def scored(
    model_wape: float,
    model_rmsse: float,
    best_wape: float = 0.9,
    best_rmsse: float = 1.0,
    weekly: float = 0.95,
) -> acc.Accuracy:
    result = acc.Accuracy(D0, D0, rows=500, variants=20, actual_units=100.0)
    entry = lambda w, r: {"wape": w, "bias": 0.0, "rmsse": {"weighted": r}}  # noqa: E731
    result.forecasters = {
        "model": entry(model_wape, model_rmsse),
        "seasonal_naive": entry(best_wape, best_rmsse),
        "zero": entry(1.0, 2.0),
        "moving_average_28": entry(1.2, 1.5),
    }
    result.best_baseline = "seasonal_naive"
    result.shop_week = {"accuracy": weekly}
    result.last_7_days = {"deviation": 0.05, "actual_units": 100.0, "forecast_units": 95.0}
    return result


def test_drift_on_the_features_that_matter_is_severe_and_asks_for_a_rollback() -> None:
    verdict = decide(report_with(["units_lag_7"]), None, CARD, Rules())
    assert verdict.severity == "severe" and verdict.rollback and not verdict.retrain
    assert verdict.drifted_importance == pytest.approx(0.5)
    assert verdict.alerts == ["drift", "severe_drift"]


def test_drift_on_minor_features_is_moderate_and_asks_for_training() -> None:
    verdict = decide(report_with(["price"]), None, CARD, Rules())
    assert verdict.severity == "moderate" and verdict.retrain and not verdict.rollback
    assert verdict.alerts == ["drift"]


def test_no_drift_and_good_accuracy_is_quiet() -> None:
    verdict = decide(report_with([]), scored(0.5, 0.8), CARD, Rules())
    assert verdict.alerts == [] and not verdict.rollback and not verdict.retrain
    assert verdict.error_ratio == pytest.approx({"wape": 1.0, "rmsse": 1.0})


def test_an_accuracy_slip_over_three_percent_alerts_and_retrains() -> None:
    slipped = decide(None, scored(0.5 * 1.04, 0.8), CARD, Rules())
    assert slipped.alerts == ["accuracy_drop"] and slipped.retrain and not slipped.rollback
    within = decide(None, scored(0.5 * 1.02, 0.8), CARD, Rules())
    assert within.alerts == []


def test_worse_than_the_best_baseline_on_both_metrics_rolls_back() -> None:
    verdict = decide(None, scored(0.95, 1.1, best_wape=0.9, best_rmsse=1.0), CARD, Rules())
    assert "worse_than_baseline" in verdict.alerts and verdict.rollback
    one_metric = decide(None, scored(0.95, 0.9, best_wape=0.9, best_rmsse=1.0), CARD, Rules())
    assert "worse_than_baseline" not in one_metric.alerts


def test_shop_week_floor_and_units_deviation_retrain() -> None:
    low = scored(0.5, 0.8, weekly=0.80)
    assert decide(None, low, CARD, Rules()).alerts == ["accuracy_floor"]
    off = scored(0.5, 0.8)
    off.last_7_days = {"deviation": 0.2, "actual_units": 120.0, "forecast_units": 100.0}
    verdict = decide(None, off, CARD, Rules())
    assert verdict.retrain and verdict.alerts == [] and "20% off" in verdict.reasons[0]


def test_too_few_scored_rows_are_not_judged() -> None:
    few = scored(2.0, 3.0)
    few.rows = 50
    verdict = decide(None, few, CARD, Rules())
    assert not verdict.accuracy_judged and verdict.alerts == []


# --- the reference ---------------------------------------------------------------------------------


def test_the_reference_is_the_served_variants_training_rows() -> None:
    rng = np.random.default_rng(1)
    variants = np.repeat([1, 2, 3, 4], 1000)
    values = {"x": variants.astype(float) * 10 + rng.normal(size=variants.size)}
    found = served_reference(values, variants, np.array([1, 1, 2, 9]), min_rows=100)
    assert found.scope["kind"] == "the served variants' training rows"
    assert found.scope["rows"] == 2000 and found.scope["window_share_in_reference"] == 0.75
    assert np.all(found.columns["x"] < 25)  # variants 3 and 4 are not in the window


def test_the_whole_sample_is_the_reference_without_ids_coverage_or_rows() -> None:
    values = {"x": np.arange(100.0)}
    ids = np.repeat([1, 2], 50)
    assert served_reference(values, None, np.array([1]), 10).scope["kind"] == "training population"
    unseen = served_reference(values, ids, np.array([7, 7, 7, 1]), 10)
    assert unseen.scope["kind"] == "training population" and unseen.scope["window_share_in_reference"] == 0.25
    few = served_reference(values, ids, np.array([1]), 60)
    assert few.scope["kind"] == "training population" and "fewer than 60" in few.scope["why"]
    assert few.columns["x"].size == 100


def test_card_reference_gives_columns_and_variants() -> None:
    matrix = np.array([[1, 100.0], [5, 104.0], [3, -1.0]], dtype=np.float32)
    sample = {
        **drift.encode_sample(matrix, ["horizon", "price"]),
        "variant_ids": drift.encode_ids(np.array([7, 8, 9])),
    }
    columns, variants = card_reference({"reference_sample": sample})
    assert columns["price"].tolist() == [100.0, 104.0, -1.0] and columns["horizon"].tolist() == [1, 5, 3]
    assert variants is not None and variants.tolist() == [7, 8, 9]
    no_ids = card_reference({"reference_sample": drift.encode_sample(matrix, ["horizon", "price"])})
    assert no_ids[1] is None
    with pytest.raises(ValueError, match="no reference sample"):
        card_reference({})


def test_serving_rows_become_one_observation_per_distinct_input_of_a_variant_day() -> None:
    rows = [
        {"variant_id": 1, "first_day": D0, "features": '{"price": 2.5, "units_lag_7": 1}'},
        {"variant_id": 1, "first_day": D0, "features": {"units_lag_7": 1, "price": 2.5}},  # a repeat view
        {"variant_id": 2, "first_day": D0, "features": {"price": 3.0}},
        {"variant_id": 2, "first_day": D0, "features": {"price": 3.5}},  # the price changed that day
        {"variant_id": 1, "first_day": D0 + timedelta(days=1), "features": {"price": 2.5, "units_lag_7": 1}},
        {"variant_id": 3, "first_day": D0, "features": None},
    ]
    columns, variants = serving_columns(rows, ["price", "units_lag_7"])
    assert columns["price"].tolist() == [2.5, 3.0, 3.5, 2.5] and variants.tolist() == [1, 2, 2, 1]
    assert columns["units_lag_7"][0] == 1.0 and np.isnan(columns["units_lag_7"][1])


def test_check_requests_name_a_model_or_take_the_default() -> None:
    assert check_request_from_message(b"", {}, "demand") == "demand"
    assert check_request_from_message(b'{"model": "other"}', {}, "demand") == "other"
    assert check_request_from_message(b"{}", {"model": "x1"}, "demand") == "x1"
    for bad in (b"[1]", b"not json", b'{"model": 3}'):
        with pytest.raises(PermanentError):
            check_request_from_message(bad, {}, "demand")
    with pytest.raises(PermanentError, match="attributes"):
        check_request_from_message(b'{"model": "a"}', {"model": "b"}, "demand")
