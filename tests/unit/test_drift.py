"""Drift statistics (shared/monitoring/drift.py): KS equal to scipy's ks_2samp, PSI's properties
and hand-computed values, the chi-square test, the corrections and the verdict rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import smirnov

from shared.monitoring import drift
from shared.monitoring.drift import DriftThresholds, NumericReference, compare


def _ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    ordered, _ = drift.finite_sorted(current)
    return drift.ks_test(NumericReference.build(reference), ordered)


# --- KS --------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    n1=st.integers(1, 400),
    n2=st.integers(1, 400),
    levels=st.integers(2, 1000),
    shift=st.floats(-0.5, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_ks_equals_scipy_on_small_samples_with_ties(
    n1: int, n2: int, levels: int, shift: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(size=n1) * levels) / levels  # few levels: many ties
    b = np.round((rng.normal(size=n2) + shift) * levels) / levels
    expected = stats.ks_2samp(a, b)
    statistic, pvalue = _ks(a, b)
    assert statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert pvalue == pytest.approx(expected.pvalue, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    n1=st.integers(10_001, 40_000),
    n2=st.integers(1, 30_000),
    discrete=st.booleans(),
    shift=st.floats(0.0, 0.08),
    seed=st.integers(0, 2**32 - 1),
)
def test_ks_equals_scipy_in_the_asymptotic_regime(
    n1: int, n2: int, discrete: bool, shift: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n1), rng.normal(shift, 1.0, size=n2)
    if discrete:
        a, b = np.floor(a * 3), np.floor(b * 3)
    expected = stats.ks_2samp(a, b)
    statistic, pvalue = _ks(a, b)
    assert statistic == expected.statistic  # the same counts and divisions: the same float
    assert pvalue == pytest.approx(expected.pvalue, abs=1e-9, rel=1e-9)


# (n, x) with 2.2 <= n x^2 < 370: the branch of kstwo.sf that _smirnov_sf replaces.
SMIRNOV_BRANCH = [
    (n, x)
    for n in (150, 4_167, 20_000, 166_667)
    for x in (0.004, 0.006, 0.01, 0.02, 0.04, 0.1, 0.3)
    if 2.2 <= n * x * x < 370
]


@pytest.mark.parametrize(("n", "x"), SMIRNOV_BRANCH)
def test_vectorised_smirnov_matches_scipy_in_the_branch_it_replaces(n: int, x: float) -> None:
    assert drift._smirnov_sf(n, x) == pytest.approx(smirnov(n, x), rel=1e-9, abs=1e-300)
    assert drift.kstwo_sf(x, n) == pytest.approx(stats.kstwo.sf(x, n), rel=1e-9, abs=1e-300)


def test_ks_statistic_by_hand() -> None:
    # F_ref at 1,2,3,4 = .25,.5,.75,1; current {2.5, 3.5}: F_cur = 0,0,.5,1 -> sup at 2 is .5
    statistic, _ = _ks(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.5, 3.5]))
    assert statistic == pytest.approx(0.5)


def test_ks_ignores_non_finite_values_and_counts_them_missing() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=12_000), rng.normal(size=500)
    with_gaps = np.concatenate([b, [np.nan, np.inf, -np.inf]])
    report = compare({"x": a}, {"x": with_gaps}, workers=1)
    assert report.features["x"].ks_statistic == stats.ks_2samp(a, b).statistic
    assert report.features["x"].missing_fraction_current == pytest.approx(3 / 503)


# --- PSI -------------------------------------------------------------------------------------------


def test_psi_by_hand() -> None:
    r, c = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert drift.psi(r, c) == pytest.approx(expected)


def test_psi_floors_an_empty_bin_at_epsilon() -> None:
    value = drift.psi(np.array([0.5, 0.5]), np.array([1.0, 0.0]), epsilon=1e-4)
    expected = (1.0 - 0.5) * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert value == pytest.approx(expected)
    assert math.isfinite(value)


def test_psi_bins_are_open_at_both_ends_like_np_histogram() -> None:
    rng = np.random.default_rng(5)
    reference = NumericReference.build(rng.normal(size=5000))
    current = np.sort(rng.normal(3.0, 2.0, size=4000))  # far outside the reference's range
    edges = np.concatenate([[-np.inf], reference.edges, [np.inf]])
    assert drift.bin_counts(current, reference.edges).tolist() == np.histogram(current, edges)[0].tolist()
    assert drift.bin_counts(current, reference.edges).sum() == current.size
    assert reference.edges.size == 9 and reference.shares == pytest.approx(np.full(10, 0.1), abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1000, 5000))
def test_psi_is_zero_for_identical_samples(seed: int, n: int) -> None:
    values = np.random.default_rng(seed).gamma(2.0, size=n)
    report = compare({"x": values}, {"x": values.copy()}, workers=1)
    assert report.features["x"].psi == pytest.approx(0.0, abs=1e-12)
    assert report.features["x"].ks_statistic == 0.0
    assert not report.drifted


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_psi_grows_with_the_shift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference, noise = rng.normal(size=20_000), rng.normal(size=20_000)
    values = [
        compare({"x": reference}, {"x": noise + shift}, workers=1).features["x"].psi
        for shift in (0.25, 0.5, 1.0, 2.0)
    ]
    assert values == sorted(values) and values[0] < values[-1]


@given(
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20).filter(lambda xs: sum(xs) > 0),
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20).filter(lambda xs: sum(xs) > 0),
)
def test_psi_is_symmetric_in_its_two_share_vectors(a: list[float], b: list[float]) -> None:
    size = min(len(a), len(b))
    p = np.array(a[:size]) / sum(a[:size]) if sum(a[:size]) else np.full(size, 1 / size)
    q = np.array(b[:size]) / sum(b[:size]) if sum(b[:size]) else np.full(size, 1 / size)
    assert drift.psi(p, q) == pytest.approx(drift.psi(q, p), rel=1e-12, abs=1e-15)
    assert drift.psi(p, q) >= 0


# --- mean shift, categories, corrections -------------------------------------------------------


def test_mean_shift_is_in_reference_standard_deviations() -> None:
    assert drift.mean_shift_sigma(10.0, 2.0, 14.0) == 2.0
    assert drift.mean_shift_sigma(1.0, 0.0, 1.0) == 0.0
    assert drift.mean_shift_sigma(1.0, 0.0, 0.5) == -math.inf


def test_chi_square_matches_scipy_contingency() -> None:
    ref, cur = np.array([500, 300, 200, 0]), np.array([40, 30, 30, 0])
    statistic, pvalue, dof = drift.chi_square(ref, cur)
    expected = stats.chi2_contingency(np.vstack([ref, cur])[:, :3], correction=False)  # d: in neither
    assert (statistic, pvalue, dof) == pytest.approx((expected.statistic, expected.pvalue, expected.dof))


def test_categorical_shares_and_linf() -> None:
    reference = np.array(["a"] * 600 + ["b"] * 400 + [None] * 10, dtype=object)
    current = np.array(["a"] * 300 + ["b"] * 600 + ["c"] * 100, dtype=object)
    entry = compare({"t": reference}, {"t": current}, categorical=["t"], workers=1).features["t"]
    assert entry.linf == pytest.approx(0.3)  # a: .6 -> .3, b: .4 -> .6, c: 0 -> .1
    assert entry.missing_fraction_reference == pytest.approx(10 / 1010)
    assert entry.drifted and entry.kind == "categorical"


def test_holm_and_bonferroni_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.5]
    assert drift.holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert drift.bonferroni(p) == pytest.approx([0.04, 0.16, 0.12, 1.0])


# --- verdicts --------------------------------------------------------------------------------------


def _frame(rng: np.random.Generator, n: int, columns: int = 5) -> dict[str, np.ndarray]:
    return {f"f{i}": rng.normal(size=n) for i in range(columns)}


def test_a_two_sigma_shift_drifts_only_its_feature() -> None:
    rng = np.random.default_rng(11)
    reference, current = _frame(rng, 20_000), _frame(rng, 5000)
    current["f2"] = current["f2"] + 2.5
    report = compare(reference, current)
    assert report.drifted == ["f2"]
    assert any("mean moved" in reason for reason in report.features["f2"].reasons)


def test_a_significant_but_tiny_difference_is_not_drift_at_a_million_rows() -> None:
    rng = np.random.default_rng(12)
    reference, current = rng.normal(size=200_000), rng.normal(0.02, 1.0, size=1_000_000)
    entry = compare({"x": reference}, {"x": current}).features["x"]
    assert entry.ks_pvalue is not None and entry.ks_pvalue < 1e-6  # "significant"
    assert entry.ks_statistic is not None and entry.ks_statistic < 0.05
    assert not entry.drifted


def test_a_scale_change_with_the_same_mean_is_drift() -> None:
    rng = np.random.default_rng(13)
    entry = compare({"x": rng.normal(size=20_000)}, {"x": rng.normal(0, 1.5, size=5000)}).features["x"]
    assert entry.drifted and abs(entry.mean_shift_sigma or 0) < 0.2


def test_a_quiet_hour_is_not_judged() -> None:
    rng = np.random.default_rng(14)
    thresholds = DriftThresholds(min_current_rows=500)
    report = compare({"x": rng.normal(size=20_000)}, {"x": rng.normal(5.0, 1, size=100)}, thresholds)
    assert report.features["x"].status == "insufficient" and not report.drifted


def test_thresholds_come_from_settings() -> None:
    from shared.settings import Settings

    settings = Settings.from_env(
        {"SHOPML_DRIFT_PSI_THRESHOLD": "0.1", "SHOPML_DRIFT_CORRECTION": "bonferroni"}
    )
    thresholds = DriftThresholds.from_settings(settings)
    assert thresholds.psi == 0.1 and thresholds.correction == "bonferroni"
    assert DriftThresholds.from_settings(Settings.from_env({})) == DriftThresholds()


def test_report_json_has_the_documented_shape() -> None:
    rng = np.random.default_rng(15)
    reference, current = _frame(rng, 2000, 2), _frame(rng, 1000, 2)
    current["f1"] = current["f1"] * 3
    document = compare(reference, current).to_json()
    assert document["drifted"] == ["f1"]
    for entry in document["features"].values():
        assert {"ks_statistic", "ks_pvalue", "psi", "mean_shift_sigma", "drifted"} <= set(entry)
        assert all(isinstance(entry[key], float) for key in ("ks_statistic", "ks_pvalue", "psi"))


def test_card_sample_round_trips_float32_values() -> None:
    rng = np.random.default_rng(16)
    matrix = rng.normal(size=(300, 3)).astype(np.float32).astype(np.float64)
    decoded = drift.decode_sample(drift.encode_sample(matrix, ["a", "b", "c"]))
    assert list(decoded) == ["a", "b", "c"]
    assert np.array_equal(decoded["b"], matrix[:, 1])


# --- the model card's drift references ------------------------------------------------------------


def test_reference_sample_is_seeded_rows_of_the_inputs() -> None:
    from shared.training import dataset

    inputs = np.arange(5000 * 3, dtype=np.float64).reshape(5000, 3)
    sample = dataset.reference_sample(inputs, ["a", "b", "c"], rows=200, seed=7)
    decoded = drift.decode_sample(sample)
    rows = np.column_stack([decoded["a"], decoded["b"], decoded["c"]])
    assert rows.shape == (200, 3) and np.unique(rows[:, 0]).size == 200
    assert np.all(rows[:, 1] == rows[:, 0] + 1) and np.all(rows[:, 0] % 3 == 0)  # whole rows
    assert drift.decode_sample(dataset.reference_sample(inputs, ["a", "b", "c"], 200, 7))["a"].tolist() == (
        decoded["a"].tolist()
    )
    assert drift.decode_sample(dataset.reference_sample(inputs, ["a", "b", "c"], 200, 8))["a"].tolist() != (
        decoded["a"].tolist()
    )
    assert dataset.reference_sample(inputs, ["a", "b", "c"], rows=10_000, seed=7)["rows"] == 5000


def test_trained_card_carries_sample_psi_bins_and_gain_importance() -> None:
    import json

    from shared.training.dataset import MODEL_FEATURES
    from shared.training.trainer import TrainerConfig, train
    from tests.unit.test_training import panel_frame

    config = TrainerConfig(cv_folds=1, max_rounds=20, threads=2, reference_sample_rows=500, psi_bins=5)
    card = train(panel_frame(n_variants=4, days=200), config).card
    sample = drift.decode_sample(card["reference_sample"])
    assert list(sample) == list(MODEL_FEATURES) and all(v.size == 500 for v in sample.values())
    assert set(sample["horizon"]) <= set(range(1, 29))
    bins = card["psi_bins"]
    assert bins["bins"] == 5 and set(bins["features"]) == set(MODEL_FEATURES)
    for entry in bins["features"].values():
        assert len(entry["reference_shares"]) == len(entry["edges"]) + 1
        assert sum(entry["reference_shares"]) == pytest.approx(1.0)
    importance = card["feature_importance"]
    assert importance["type"] == "gain" and set(importance["gain"]) == set(MODEL_FEATURES)
    assert sum(importance["share"].values()) == pytest.approx(1.0)
    assert any(gain > 0 for gain in importance["gain"].values())
    json.dumps(card["reference_sample"])  # JSON as it is stored


def test_psi_of_a_small_sample_must_also_be_beyond_chance() -> None:
    """60 current values from the reference's own distribution: PSI over the 0.2 rule of thumb
    by chance alone (about (bins - 1) / n); the chance test keeps it from alarming, and a real
    shift of the same small sample still counts."""
    rng = np.random.default_rng(5)
    reference = {"x": rng.normal(size=20_000)}
    thresholds = DriftThresholds(min_current_rows=10)
    same = compare(reference, {"x": rng.normal(size=60)}, thresholds).features["x"]
    assert same.psi > 0.2 and same.psi_judged and same.psi_pvalue is not None and same.psi_pvalue > 0.01
    assert not same.drifted
    moved = compare(reference, {"x": rng.normal(loc=3.0, size=60)}, thresholds).features["x"]
    assert moved.drifted and moved.psi_pvalue is not None and moved.psi_pvalue < 1e-6
    # n_eff x PSI against chi-square(bins - 1), as documented
    expected = stats.chi2.sf(same.psi * 20_000 * 60 / 20_060, same.psi_bins - 1)
    assert same.psi_pvalue == pytest.approx(expected) and same.psi_bins == 10


def test_psi_does_not_judge_fewer_than_five_values_per_bin() -> None:
    """Discrete values, 20 current rows over 10 bins: empty bins alone push PSI past 0.2 (their
    floor) and make its chance test meaningless; KS and the mean shift judge the feature."""
    rng = np.random.default_rng(7)
    reference = {"x": rng.poisson(1.5, size=20_000).astype(float)}
    thresholds = DriftThresholds(min_current_rows=10)
    entry = compare(reference, {"x": rng.poisson(1.5, size=20).astype(float)}, thresholds).features["x"]
    assert not entry.psi_judged and not entry.drifted
    moved = compare(reference, {"x": rng.poisson(6.0, size=20).astype(float)}, thresholds).features["x"]
    assert not moved.psi_judged and moved.drifted and not any(r.startswith("PSI") for r in moved.reasons)
