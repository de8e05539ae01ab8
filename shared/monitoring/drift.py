"""Drift statistics: is the current window of inputs distributed like the reference sample?

Pure numpy/scipy, no I/O: ``drift_monitor`` (on the live model's card and the ``predictions``
window) and ``shopml drift`` (on any two files) run exactly this code.

Per numeric feature
    * two-sample Kolmogorov–Smirnov: statistic and p-value equal to
      ``scipy.stats.ks_2samp(reference, current)`` (``method="auto"``, two-sided) on the same
      finite values. Computed faster: each column is sorted once, the ECDFs are compared only at
      the reference's distinct values and just below them (the supremum of ``F_ref - F_cur`` is
      attained there; see ``ks_statistic``), and in the asymptotic regime the p-value goes
      through the same ``kstwo.sf(d, round(en))`` call ``ks_2samp`` makes, except in the one
      branch where that call sums the Birnbaum–Tingey series in a scalar loop (0.2-0.7 s per
      feature at en ~ 170,000): there the same series is summed vectorised (``_smirnov_sf``,
      relative difference ~1e-11). Below ``MAX_AUTO_N`` rows on both sides ``ks_2samp``
      computes an exact p-value (and rounds the statistic to a lattice point): that case, cheap
      at those sizes, is delegated to ``ks_2samp`` itself.
    * PSI on reference-quantile bins: inner edges are the distinct reference quantiles at
      1/B, ..., (B-1)/B, the outer bins are open, (-inf, e1) and [e_{B-1}, +inf); bins are
      half-open [a, b) like ``np.histogram``'s. ``PSI = sum (c - r) * ln(c / r)`` over bin
      shares, each share floored at ``psi_epsilon`` (default 1e-4) so an empty bin counts as
      0.01% instead of making the sum infinite. The form is symmetric: it is
      KL(c||r) + KL(r||c), so swapping the two share vectors gives the same value.
    * mean shift in reference standard deviations: ``(mean_cur - mean_ref) / std_ref``
      (population std, ``ddof=0``); a constant reference column gives 0 when the means are
      equal and +-inf otherwise (written to JSON as null).

Per categorical feature: chi-square test of homogeneity on the 2 x k table of counts
(``scipy.stats.chi2_contingency(table, correction=False)``), the L-infinity distance between
the category shares, and PSI over the categories (same epsilon).

Non-finite numeric values (NaN, +-inf) and missing categories are left out of the statistics
and reported as ``missing_fraction`` per side.

Verdicts (thresholds: ``DriftThresholds``, from settings ``SHOPML_DRIFT_*``)
    numeric: |mean shift| > ``mean_shift_sigma`` (2), or PSI > ``psi`` (0.2) *and* beyond
    chance (below), or the KS
    p-value, corrected for the number of features tested together (Holm by default, or
    Bonferroni), below ``alpha`` (0.01 family-wise) *and* the KS statistic at least
    ``min_ks_statistic`` (0.05). The p-value alone flags differences too small to matter once
    there are a million rows (there, D = 0.003 is already "significant"); the floor alone would
    alarm on noise in a small window. 0.05 and not 0.1: a pure scale change x1.5 of a normal
    feature has D = 0.097 and PSI = 0.19, a 0.25 sigma shift D = 0.099; a 0.1 floor would miss
    both (bench/RESULTS.md, Step 5).
    categorical: PSI > ``psi`` and beyond chance, or the corrected chi-square p-value below
    ``alpha`` and the L-infinity distance at least ``min_linf`` (0.05).
    PSI beyond chance: PSI's size under no drift depends on the sample sizes (about
    ``(B - 1) / n_eff`` for B bins, n_eff = n_ref n_cur / (n_ref + n_cur)): with 20 current
    values and 10 bins, identical distributions give PSI ~0.5, over the 0.2 rule of thumb,
    which was made for large samples. To second order PSI is the two-sample chi-square
    statistic divided by n_eff, so ``n_eff * PSI`` is compared with chi-square(B - 1) and a
    PSI verdict needs ``psi_pvalue`` below ``alpha`` / (features judged) (Bonferroni) as well.
    That approximation, like any chi-square test, needs about 5 expected values per bin, and
    with fewer an empty bin's ``psi_epsilon`` floor alone adds ~0.7 to PSI: so PSI counts
    toward a verdict only from ``5 x bins`` current values (50 for deciles); below that the
    KS test and the mean shift judge the feature (``psi_judged`` false; PSI is still
    reported). At the sizes PSI is usually quoted for (thousands of rows) none of this
    changes anything.
    A feature with fewer than ``min_current_rows`` (500) finite current values or
    ``min_reference_rows`` (1000) reference values is not judged (``status`` "insufficient"),
    so a quiet hour does not alarm, and it is not counted in the correction.
"""

from __future__ import annotations

import base64
import math
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shared.settings import Settings

MIN_VALUES_PER_BIN = 5  # PSI counts toward a verdict from 5 x bins current values (chi-square's rule)
MAX_AUTO_N = 10_000  # ks_2samp(method="auto"): exact p-value when both samples are this small
CORRECTIONS = ("holm", "bonferroni")


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted; defaults documented in the module docstring and README."""

    mean_shift_sigma: float = 2.0
    psi: float = 0.2
    alpha: float = 0.01  # family-wise, over the features judged together
    correction: str = "holm"  # or "bonferroni"
    min_ks_statistic: float = 0.05
    min_linf: float = 0.05
    min_current_rows: int = 500
    min_reference_rows: int = 1000
    psi_bins: int = 10
    psi_epsilon: float = 1e-4

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction {self.correction!r}: choose holm or bonferroni")
        if self.psi_bins < 2:
            raise ValueError("psi_bins must be at least 2")

    @classmethod
    def from_settings(cls, settings: Settings) -> DriftThresholds:
        return cls(
            mean_shift_sigma=settings.drift_mean_shift_sigma,
            psi=settings.drift_psi_threshold,
            alpha=settings.drift_alpha,
            correction=settings.drift_correction,
            min_ks_statistic=settings.drift_min_ks_statistic,
            min_linf=settings.drift_min_linf,
            min_current_rows=settings.drift_min_current_rows,
            min_reference_rows=settings.drift_min_reference_rows,
            psi_bins=settings.drift_psi_bins,
            psi_epsilon=settings.drift_psi_epsilon,
        )


# --- the statistics, one at a time ----------------------------------------------------------------


def finite_sorted(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The finite values as sorted float64, and how many were left out (NaN, +-inf)."""
    column = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(column)
    kept = column if finite.all() else column[finite]
    return np.sort(kept), int(column.size - kept.size)


def psi_edges(sorted_reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges: the distinct reference quantiles at 1/bins .. (bins-1)/bins (linear
    interpolation, numpy's default). The outer bins are open: (-inf, e1) and [e_last, +inf)."""
    if sorted_reference.size == 0:
        return np.empty(0)
    levels = np.arange(1, bins) / bins
    return np.unique(np.quantile(sorted_reference, levels))


def bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e1), [e1, e2), ..., [e_last, +inf) of sorted finite values: what
    ``np.histogram(values, np.r_[-inf, edges, inf])`` counts."""
    cuts = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], cuts, [sorted_values.size])))


def psi(reference_shares: np.ndarray, current_shares: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index ``sum (c - r) ln(c / r)`` with shares floored at ``epsilon``."""
    r = np.maximum(np.asarray(reference_shares, dtype=np.float64), epsilon)
    c = np.maximum(np.asarray(current_shares, dtype=np.float64), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(counts.size)


@dataclass(frozen=True)
class NumericReference:
    """One reference column, prepared once: sorted finite values, the ECDF at its distinct
    values, PSI edges and shares, mean and standard deviation."""

    values: np.ndarray  # sorted finite float64
    missing: int
    distinct: np.ndarray  # distinct values, ascending
    at_or_below: np.ndarray  # int64: reference values <= distinct[j]
    edges: np.ndarray  # PSI inner edges
    shares: np.ndarray  # reference share per PSI bin
    mean: float
    std: float

    @property
    def size(self) -> int:
        return int(self.values.size)

    @classmethod
    def build(cls, values: np.ndarray, bins: int = 10, edges: np.ndarray | None = None) -> NumericReference:
        ordered, missing = finite_sorted(values)
        if ordered.size:
            last = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])  # last of each run
            distinct, at_or_below = ordered[last], last + 1
            mean, std = float(ordered.mean()), float(ordered.std())
        else:
            distinct, at_or_below = ordered, np.empty(0, dtype=np.int64)
            mean = std = float("nan")
        edges = psi_edges(ordered, bins) if edges is None else np.unique(np.asarray(edges, dtype=np.float64))
        return cls(
            ordered, missing, distinct, at_or_below.astype(np.int64), edges,
            shares(bin_counts(ordered, edges)), mean, std,
        )  # fmt: skip


def ks_statistic(reference: NumericReference, current_sorted: np.ndarray) -> float:
    """``sup |F_ref - F_cur|`` exactly as ``ks_2samp(reference, current)`` computes it (same
    integer counts, same divisions: the same float).

    ``ks_2samp`` evaluates ``F_ref(x)/n_ref - F_cur(x)/n_cur`` at every value of both samples.
    Between two distinct reference values F_ref is constant and F_cur rises, so over those
    points the difference is largest at the interval's start (a reference value, evaluated
    here) and smallest at the last current value before the next reference value (evaluated
    here through the count of current values strictly below it). Values above the largest
    reference value give differences in [0, 1 - F_cur(max ref)], covered at that value.
    """
    n_ref, n_cur = reference.size, current_sorted.size
    left = np.searchsorted(current_sorted, reference.distinct, side="left")
    # Counts at or below each distinct value: more than ``left`` only where the current sample
    # holds that value; search again for those alone (none for continuous data).
    right = left.copy()
    if current_sorted.size:
        tied = current_sorted[np.minimum(left, current_sorted.size - 1)] == reference.distinct
        if tied.any():
            right[tied] = np.searchsorted(current_sorted, reference.distinct[tied], side="right")
    below_previous = np.concatenate(([0], reference.at_or_below[:-1]))
    at_values = reference.at_or_below / n_ref - right / n_cur
    before_values = below_previous / n_ref - left / n_cur
    top = max(float(at_values.max()), float(before_values.max()))
    bottom = min(float(at_values.min()), float(before_values.min()))
    low = min(max(-bottom, 0.0), 1.0)
    return low if low > top else top


def _smirnov_sf(n: float, d: float) -> float:
    """``scipy.special.smirnov(n, d)``, P(D+_n >= d), by the Birnbaum–Tingey sum
    ``d * sum_{v=0}^{floor(n(1-d))} C(n,v) (d+v/n)^(v-1) (1-d-v/n)^(n-v)`` in log space,
    vectorised over v (relative difference to scipy's scalar loop ~1e-11)."""
    from scipy.special import gammaln

    v = np.arange(math.floor(n * (1.0 - d)) + 1, dtype=np.float64)
    at = d + v / n
    rest = 1.0 - at
    keep = rest > 0
    v, at, rest = v[keep], at[keep], rest[keep]
    log_terms = gammaln(n + 1) - gammaln(v + 1) - gammaln(n - v + 1)
    log_terms += (v - 1) * np.log(at) + (n - v) * np.log(rest)
    return float(d * np.exp(log_terms).sum())


def kstwo_sf(d: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(d, n)`` (n a whole number): scipy's own call, except its slow
    branch (n > 140, 2.2 <= n d^2 < 370, 1 < n d < n - 1, d < 0.5: 2 * smirnov(n, d)), summed
    vectorised by ``_smirnov_sf``."""
    t = n * d
    if n > 140 and 1.0 < t < n - 1 and d < 0.5 and 2.2 <= t * d < 370.0:
        return min(max(2.0 * _smirnov_sf(n, d), 0.0), 1.0)
    from scipy.stats import distributions

    return float(distributions.kstwo.sf(d, n))


def ks_test(reference: NumericReference, current_sorted: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of ``scipy.stats.ks_2samp(reference, current)``, two-sided, auto."""
    n1, n2 = reference.size, current_sorted.size
    if max(n1, n2) <= MAX_AUTO_N:  # exact p-value (and lattice-rounded statistic): scipy's own
        from scipy.stats import ks_2samp

        result = ks_2samp(reference.values, current_sorted)
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic(reference, current_sorted)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return d, min(max(kstwo_sf(d, float(np.round(en))), 0.0), 1.0)


def mean_shift_sigma(reference_mean: float, reference_std: float, current_mean: float) -> float:
    """(current mean - reference mean) in reference standard deviations."""
    delta = current_mean - reference_mean
    if reference_std > 0:
        return float(delta / reference_std)
    return 0.0 if delta == 0 else math.copysign(math.inf, delta)


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float, int]:
    """Chi-square test of homogeneity of two count vectors over the same categories:
    (statistic, p-value, degrees of freedom), as ``chi2_contingency(..., correction=False)``.
    Categories absent from both are dropped; one category left gives (0, 1, 0)."""
    from scipy.stats import chi2

    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    dof = table.shape[1] - 1
    if dof < 1 or table.sum(axis=1).min() == 0:
        return 0.0, 1.0, max(dof, 0)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(chi2.sf(statistic, dof)), dof


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(value) for value in adjusted]


def bonferroni(pvalues: Sequence[float]) -> list[float]:
    m = len(pvalues)
    return [float(min(1.0, p * m)) for p in pvalues]


# --- one check over many features ---------------------------------------------------------------


@dataclass
class FeatureDrift:
    """One feature's statistics and verdict. ``status``: "ok", "drifted" or "insufficient"."""

    name: str
    kind: str  # "numeric" or "categorical"
    reference_rows: int
    current_rows: int
    missing_fraction_reference: float
    missing_fraction_current: float
    psi: float
    drifted: bool = False
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    pvalue: float = 1.0  # the test's raw p-value (KS or chi-square)
    pvalue_adjusted: float = 1.0
    psi_bins: int = 0  # bins (categories) PSI was summed over; 0: the thresholds' psi_bins
    psi_pvalue: float | None = None  # chance of a PSI this large without drift (judge)
    psi_judged: bool = False  # enough current values (5 per bin) for PSI to count (judge)
    # numeric
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    mean_shift_sigma: float | None = None
    reference_mean: float | None = None
    current_mean: float | None = None
    reference_std: float | None = None
    # categorical
    chi2_statistic: float | None = None
    chi2_pvalue: float | None = None
    chi2_dof: int | None = None
    linf: float | None = None
    # for the report: (edges, reference shares, current shares) of a display histogram
    histogram: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``drift.json`` entry (non-finite numbers as null)."""
        base: dict[str, Any] = {"kind": self.kind}
        if self.kind == "numeric":
            base.update(
                ks_statistic=self.ks_statistic,
                ks_pvalue=self.ks_pvalue,
                ks_pvalue_adjusted=self.pvalue_adjusted,
                psi=self.psi,
                psi_pvalue=self.psi_pvalue,
                psi_judged=self.psi_judged,
                mean_shift_sigma=self.mean_shift_sigma,
                reference_mean=self.reference_mean,
                current_mean=self.current_mean,
                reference_std=self.reference_std,
            )
        else:
            base.update(
                chi2_statistic=self.chi2_statistic,
                chi2_pvalue=self.chi2_pvalue,
                chi2_pvalue_adjusted=self.pvalue_adjusted,
                chi2_dof=self.chi2_dof,
                linf=self.linf,
                psi=self.psi,
                psi_pvalue=self.psi_pvalue,
                psi_judged=self.psi_judged,
            )
        base.update(
            drifted=self.drifted,
            status=self.status,
            reasons=list(self.reasons),
            reference_rows=self.reference_rows,
            current_rows=self.current_rows,
            missing_fraction_reference=self.missing_fraction_reference,
            missing_fraction_current=self.missing_fraction_current,
        )
        return {key: _json_number(value) for key, value in base.items()}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class DriftReport:
    features: dict[str, FeatureDrift]
    thresholds: DriftThresholds

    @property
    def drifted(self) -> list[str]:
        return [name for name, entry in self.features.items() if entry.drifted]

    def to_json(self) -> dict[str, Any]:
        """``{"features": {column: {...}}, "drifted": [column, ...], "thresholds": {...}}``."""
        return {
            "features": {name: entry.to_json() for name, entry in self.features.items()},
            "drifted": self.drifted,
            "thresholds": {
                key: getattr(self.thresholds, key) for key in self.thresholds.__dataclass_fields__
            },
        }


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _display_histogram(reference: np.ndarray, current: np.ndarray, bins: int = 30) -> dict[str, list[Any]]:
    """Equal-width bins over the 0.5%-99.5% range of both sorted samples, for the report."""
    if reference.size == 0 or current.size == 0:
        return {}
    lo = min(reference[int(0.005 * (reference.size - 1))], current[int(0.005 * (current.size - 1))])
    hi = max(reference[int(0.995 * (reference.size - 1))], current[int(0.995 * (current.size - 1))])
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    inner = edges[1:-1]
    ref_counts = bin_counts(reference, inner)  # outer bins also take what lies outside the range
    cur_counts = bin_counts(current, inner)
    return {
        "edges": [float(edge) for edge in edges],
        "reference": [float(x) for x in shares(ref_counts)],
        "current": [float(x) for x in shares(cur_counts)],
    }


def numeric_drift(
    name: str,
    reference: NumericReference,
    current: np.ndarray,
    thresholds: DriftThresholds,
    with_histogram: bool = True,
) -> FeatureDrift:
    """Statistics of one numeric feature (the verdict waits for the correction: ``judge``)."""
    ordered, missing = finite_sorted(current)
    entry = FeatureDrift(
        name=name,
        kind="numeric",
        reference_rows=reference.size,
        current_rows=int(ordered.size),
        missing_fraction_reference=_fraction(reference.missing, reference.size + reference.missing),
        missing_fraction_current=_fraction(missing, ordered.size + missing),
        psi=float("nan"),
        reference_mean=reference.mean,
        reference_std=reference.std,
    )
    if reference.size < thresholds.min_reference_rows or ordered.size < thresholds.min_current_rows:
        entry.status = "insufficient"
        entry.reasons.append(
            f"{ordered.size} current and {reference.size} reference values; needs at least "
            f"{thresholds.min_current_rows} and {thresholds.min_reference_rows}"
        )
        if ordered.size == 0 or reference.size == 0:
            return entry
    statistic, pvalue = ks_test(reference, ordered)
    entry.ks_statistic, entry.ks_pvalue, entry.pvalue = statistic, pvalue, pvalue
    entry.psi = psi(reference.shares, shares(bin_counts(ordered, reference.edges)), thresholds.psi_epsilon)
    entry.psi_bins = int(reference.edges.size + 1)
    entry.current_mean = float(ordered.mean())
    entry.mean_shift_sigma = mean_shift_sigma(reference.mean, reference.std, entry.current_mean)
    if with_histogram:
        entry.histogram = _display_histogram(reference.values, ordered)
    return entry


def _categories(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Present values as strings, and how many were missing (None, NaN, empty)."""
    column = np.asarray(values, dtype=object)
    present = np.array([str(v) for v in column if v is not None and v == v and str(v) != ""], dtype=object)
    return present, int(column.size - present.size)


def categorical_drift(
    name: str, reference: np.ndarray, current: np.ndarray, thresholds: DriftThresholds
) -> FeatureDrift:
    ref, ref_missing = _categories(reference)
    cur, cur_missing = _categories(current)
    labels = np.unique(np.concatenate([ref, cur]).astype(str)) if ref.size + cur.size else np.array([])
    ref_counts = np.array([0] * labels.size, dtype=np.int64)
    cur_counts = np.array([0] * labels.size, dtype=np.int64)
    if ref.size:
        ref_counts = np.bincount(np.searchsorted(labels, ref.astype(str)), minlength=labels.size)
    if cur.size:
        cur_counts = np.bincount(np.searchsorted(labels, cur.astype(str)), minlength=labels.size)
    entry = FeatureDrift(
        name=name,
        kind="categorical",
        reference_rows=int(ref.size),
        current_rows=int(cur.size),
        missing_fraction_reference=_fraction(ref_missing, ref.size + ref_missing),
        missing_fraction_current=_fraction(cur_missing, cur.size + cur_missing),
        psi=float("nan"),
    )
    if ref.size < thresholds.min_reference_rows or cur.size < thresholds.min_current_rows:
        entry.status = "insufficient"
        entry.reasons.append(
            f"{cur.size} current and {ref.size} reference values; needs at least "
            f"{thresholds.min_current_rows} and {thresholds.min_reference_rows}"
        )
        if ref.size == 0 or cur.size == 0:
            return entry
    r, c = shares(ref_counts), shares(cur_counts)
    statistic, pvalue, dof = chi_square(ref_counts, cur_counts)
    entry.chi2_statistic, entry.chi2_pvalue, entry.chi2_dof, entry.pvalue = statistic, pvalue, dof, pvalue
    entry.linf = float(np.abs(c - r).max())
    entry.psi = psi(r, c, thresholds.psi_epsilon)
    entry.psi_bins = int(labels.size)
    entry.histogram = {
        "labels": [str(label) for label in labels],
        "reference": [float(x) for x in r],
        "current": [float(x) for x in c],
    }
    return entry


def psi_pvalue(value: float, reference_rows: int, current_rows: int, bins: int) -> float:
    """P(PSI >= value) without drift: ``chi2.sf(n_eff * PSI, bins - 1)`` (module docstring)."""
    from scipy.stats import chi2

    if not math.isfinite(value) or reference_rows <= 0 or current_rows <= 0:
        return 1.0
    effective = reference_rows * current_rows / (reference_rows + current_rows)
    return float(chi2.sf(value * effective, max(bins - 1, 1)))


def judge(entries: Iterable[FeatureDrift], thresholds: DriftThresholds) -> None:
    """Correct the judged features' p-values together, then give each its verdict and reasons."""
    judged = [entry for entry in entries if entry.status != "insufficient"]
    correct = holm if thresholds.correction == "holm" else bonferroni
    psi_alpha = thresholds.alpha / max(len(judged), 1)
    for entry, adjusted in zip(judged, correct([e.pvalue for e in judged]), strict=True):
        entry.pvalue_adjusted = adjusted
        reasons: list[str] = []
        significant = adjusted < thresholds.alpha
        if entry.kind == "numeric":
            shift = entry.mean_shift_sigma if entry.mean_shift_sigma is not None else 0.0
            if abs(shift) > thresholds.mean_shift_sigma:
                reasons.append(f"mean moved {shift:+.2f} reference sd (> {thresholds.mean_shift_sigma:g})")
            statistic = entry.ks_statistic or 0.0
            if significant and statistic >= thresholds.min_ks_statistic:
                reasons.append(
                    f"KS D {statistic:.3f} >= {thresholds.min_ks_statistic:g} with corrected p "
                    f"{adjusted:.2g} < {thresholds.alpha:g}"
                )
        else:
            linf = entry.linf or 0.0
            if significant and linf >= thresholds.min_linf:
                reasons.append(
                    f"category shares moved up to {linf:.3f} (>= {thresholds.min_linf:g}) with corrected "
                    f"chi-square p {adjusted:.2g} < {thresholds.alpha:g}"
                )
        bins = entry.psi_bins or thresholds.psi_bins
        entry.psi_pvalue = psi_pvalue(entry.psi, entry.reference_rows, entry.current_rows, bins)
        entry.psi_judged = entry.current_rows >= MIN_VALUES_PER_BIN * bins
        if entry.psi_judged and entry.psi > thresholds.psi and entry.psi_pvalue < psi_alpha:
            reasons.append(f"PSI {entry.psi:.3f} > {thresholds.psi:g} (chance p {entry.psi_pvalue:.2g})")
        entry.reasons = reasons
        entry.drifted = bool(reasons)
        entry.status = "drifted" if reasons else "ok"


def compare(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    thresholds: DriftThresholds | None = None,
    *,
    categorical: Iterable[str] = (),
    edges: Mapping[str, Sequence[float]] | None = None,
    references: Mapping[str, NumericReference] | None = None,
    workers: int | None = None,
    with_histograms: bool = True,
) -> DriftReport:
    """Every column of ``current`` against the same column of ``reference``.

    ``categorical``: columns compared as categories (the rest numeric). ``edges``: PSI inner
    edges per column (e.g. the card's); default the reference quantiles. ``references``:
    numeric references already prepared (``NumericReference.build``), e.g. cached per model.
    ``workers``: threads over columns (sorting and searching release the GIL); default
    min(4, CPUs).
    """
    thresholds = thresholds or DriftThresholds()
    categorical = set(categorical)
    edges = edges or {}
    prepared = dict(references or {})
    names = list(current)

    def one(name: str) -> FeatureDrift:
        if name in categorical:
            return categorical_drift(name, np.asarray(reference[name]), np.asarray(current[name]), thresholds)
        ref = prepared.get(name)
        if ref is None:
            custom = edges.get(name)
            ref = NumericReference.build(
                np.asarray(reference[name]),
                thresholds.psi_bins,
                None if custom is None else np.asarray(custom, dtype=np.float64),
            )
        return numeric_drift(name, ref, np.asarray(current[name]), thresholds, with_histograms)

    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            entries = list(pool.map(one, names))
    else:
        entries = [one(name) for name in names]
    judge(entries, thresholds)
    return DriftReport({entry.name: entry for entry in entries}, thresholds)


# --- the reference sample in a model card ---------------------------------------------------------


def encode_sample(matrix: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """A reference sample for a model card: float32, column by column, zlib, base64.

    The model's inputs are float32 values (the ONNX input type), so float32 keeps them exactly.
    """
    block = np.ascontiguousarray(np.asarray(matrix, dtype=np.float32).T)
    return {
        "encoding": "float32 little-endian, column-major (one column after another), zlib, base64",
        "rows": int(block.shape[1]) if block.ndim == 2 else 0,
        "columns": list(names),
        "data": base64.b64encode(zlib.compress(block.astype("<f4").tobytes(), 6)).decode("ascii"),
    }


def decode_sample(entry: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The card's reference sample as {column: float64 values}."""
    names = list(entry["columns"])
    raw = zlib.decompress(base64.b64decode(entry["data"]))
    block = np.frombuffer(raw, dtype="<f4").reshape(len(names), int(entry["rows"]))
    return {name: block[index].astype(np.float64) for index, name in enumerate(names)}


def encode_ids(ids: np.ndarray) -> str:
    """Integer ids (e.g. the reference sample's variants) as int64 little-endian, zlib, base64."""
    return base64.b64encode(zlib.compress(np.asarray(ids, dtype="<i8").tobytes(), 6)).decode("ascii")


def decode_ids(text: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<i8").astype(np.int64)
