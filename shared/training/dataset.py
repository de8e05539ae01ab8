"""From the daily feature table to direct multi-horizon training and evaluation matrices.

One model serves every horizon h = 1..28: a row forecasting day D at horizon h takes the
history and state features of day D - h + 1 (what is known at 00:00 of that day, i.e. data
through the forecast origin D - h), the planned features (calendar, announced promotions) of
D itself, and ``horizon`` = h. Training samples one or more horizons per target day, so the
row count stays that of the feature table; evaluation uses every horizon from one origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.errors import PermanentError
from shared.features import HISTORY, LABEL, PLANNED, SHOP

MAX_HORIZON = 28
# What the model sees for a missing value (a lag before the variant existed, no promotion
# known, no price yet). LightGBM and ONNX Runtime disagree on NaN in a feature that had none
# in training (LightGBM reads it as 0, the ONNX tree follows its false branch): measured
# forecast differences of 1.8 units. A sentinel no real value takes keeps them identical.
MISSING = -1.0
STATE_NUMERIC: tuple[str, ...] = ("price", "discount", "inventory_on_hand")
MODEL_FEATURES: tuple[str, ...] = (
    "horizon",
    *HISTORY,
    # From the origin row's SHOP columns, the one of the forecast day's weekday: how often the
    # shop traded on that weekday in the 4 weeks before the origin (0: e.g. never on Saturdays).
    "shop_trading_weekday",
    *STATE_NUMERIC,
    "product_type_code",
    "product_age_days",
    *PLANNED,
)


def product_type_vocabulary(product_types: pd.Series) -> list[str]:
    """Sorted distinct product types; code 0 is "unknown", code i + 1 the i-th entry."""
    return sorted({str(value) for value in product_types.dropna().unique() if str(value) != ""})


@dataclass(frozen=True)
class Panel:
    """The feature table as dense per-variant arrays (rows sorted by variant, then date)."""

    variant_id: np.ndarray  # int64 per row
    day: np.ndarray  # int64 days since epoch per row
    units: np.ndarray  # float64 label per row
    history: np.ndarray  # float64 [rows, len(HISTORY)]
    shop: np.ndarray  # float64 [rows, 7]: SHOP, ISO weekday k in column k - 1
    state: np.ndarray  # float64 [rows, 3]: price, discount, inventory_on_hand
    product_type_code: np.ndarray  # float64 per row
    product_age_days: np.ndarray  # float64 per row
    planned: np.ndarray  # float64 [rows, len(PLANNED)]
    first_row: np.ndarray  # per row: index of its variant's first row
    vocabulary: tuple[str, ...]

    @property
    def rows(self) -> int:
        return int(self.units.size)

    @property
    def first_day(self) -> int:
        return int(self.day.min())

    @property
    def last_day(self) -> int:
        return int(self.day.max())


def active_variants(frame: pd.DataFrame) -> pd.Series:
    """Rows of variants that sold something in the window. The others (discontinued, or a
    shop's old catalogue) teach nothing and would only add zeros to the holdout."""
    return frame.groupby("variant_id")[LABEL].transform("sum") > 0


def to_panel(frame: pd.DataFrame, vocabulary: Sequence[str] | None = None) -> Panel:
    """Sort and check the feature table; every variant must have one row per day, no gaps."""
    if frame.empty:
        raise PermanentError("the feature table is empty: no sales history in the training window")
    ordered = frame.sort_values(["variant_id", "date"], kind="stable").reset_index(drop=True)
    variant = ordered["variant_id"].to_numpy(dtype=np.int64)
    day = (pd.to_datetime(ordered["date"]).to_numpy(dtype="datetime64[D]")).astype(np.int64)
    starts = np.r_[True, variant[1:] != variant[:-1]]
    steps = np.diff(day)
    if np.any(steps[~starts[1:]] != 1):
        raise PermanentError("the feature table must have one row per variant and day, without gaps")
    first_row = np.maximum.accumulate(np.where(starts, np.arange(variant.size), 0))
    if vocabulary is None:
        vocabulary = product_type_vocabulary(ordered["product_type"])
    vocab = tuple(vocabulary)
    codes = {name: index + 1 for index, name in enumerate(vocab)}
    type_code = ordered["product_type"].map(lambda value: codes.get(str(value), 0)).to_numpy(dtype=np.float64)

    def matrix(columns: Sequence[str]) -> np.ndarray:
        return ordered[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)

    return Panel(
        variant_id=variant,
        day=day,
        units=ordered[LABEL].to_numpy(dtype=np.float64, na_value=0.0),
        history=matrix(HISTORY),
        shop=matrix(SHOP),
        state=matrix(STATE_NUMERIC),
        product_type_code=type_code,
        product_age_days=ordered["product_age_days"].to_numpy(dtype=np.float64, na_value=np.nan),
        planned=matrix(PLANNED),
        first_row=first_row,
        vocabulary=vocab,
    )


@dataclass(frozen=True)
class Rows:
    """Model inputs (``MODEL_FEATURES`` order) with labels, horizons and baseline forecasts."""

    features: np.ndarray  # float64 [n, len(MODEL_FEATURES)]
    label: np.ndarray
    horizon: np.ndarray  # int64
    target_row: np.ndarray  # panel index of the forecast day
    variant_id: np.ndarray  # of the forecast day's row
    day: np.ndarray  # the forecast day, days since epoch
    seasonal_naive: np.ndarray  # same weekday, last week known at the origin
    moving_average_28: np.ndarray  # mean of the 28 days up to the origin

    @property
    def size(self) -> int:
        return int(self.label.size)

    @property
    def inputs(self) -> np.ndarray:
        """What the model is fed: ``features`` with missing values as ``MISSING``."""
        return model_input(self.features)


def model_input(features: np.ndarray) -> np.ndarray:
    """Missing values to the ``MISSING`` sentinel (serving must do the same; see the card)."""
    return np.where(np.isnan(features), MISSING, features)


def _assemble(panel: Panel, target: np.ndarray, horizon: np.ndarray) -> Rows:
    origin = target - (horizon - 1)  # the row whose history ends at the forecast origin
    features = np.empty((target.size, len(MODEL_FEATURES)), dtype=np.float64)
    features[:, 0] = horizon
    weekday = panel.planned[target, PLANNED.index("dow")]
    shop = panel.shop[origin, np.clip(np.nan_to_num(weekday, nan=1.0).astype(np.int64) - 1, 0, 6)]
    column = 1
    for block in (panel.history[origin], shop[:, None], panel.state[origin]):
        features[:, column : column + block.shape[1]] = block
        column += block.shape[1]
    features[:, column] = panel.product_type_code[origin]
    features[:, column + 1] = panel.product_age_days[origin] + (horizon - 1)
    features[:, column + 2 :] = panel.planned[target]
    # Seasonal naive: the same weekday in the last week fully known at the origin.
    lag = 7 * np.ceil(horizon / 7).astype(np.int64)
    source = target - lag
    known = source >= panel.first_row[target]
    naive = np.where(known, panel.units[np.where(known, source, target)], 0.0)
    moving = np.nan_to_num(panel.history[origin, HISTORY.index("rmean_28")], nan=0.0)
    # Features are float32 values (held in float64): the ONNX model takes float32 inputs and
    # compares them with float32 thresholds, so training on the same values keeps every split
    # decision identical in both (0.30000000000000004 and 0.3 are one value to both).
    features = features.astype(np.float32).astype(np.float64)
    return Rows(
        features,
        panel.units[target],
        horizon.astype(np.int64),
        target,
        panel.variant_id[target],
        panel.day[target],
        naive,
        moving,
    )


def training_rows(panel: Panel, cutoff_day: int, rng: np.random.Generator, horizons_per_row: int = 1) -> Rows:
    """Rows whose forecast day and features all lie on or before ``cutoff_day`` (days since epoch)."""
    candidates = np.flatnonzero(panel.day <= cutoff_day)
    targets = np.repeat(candidates, horizons_per_row)
    horizon = rng.integers(1, MAX_HORIZON + 1, size=targets.size)
    valid = targets - (horizon - 1) >= panel.first_row[targets]
    return _assemble(panel, targets[valid], horizon[valid])


def holdout_rows(panel: Panel, cutoff_day: int, horizons: int = MAX_HORIZON) -> Rows:
    """Every horizon 1..``horizons`` from the origin ``cutoff_day``: forecasts of the next days."""
    origin = np.flatnonzero(panel.day == cutoff_day + 1)  # features known at 00:00 after the cutoff
    horizon = np.tile(np.arange(1, horizons + 1), origin.size)
    target = np.repeat(origin, horizons) + horizon - 1
    inside = target < panel.units.size
    same_variant = panel.variant_id[target[inside]] == panel.variant_id[np.repeat(origin, horizons)[inside]]
    inside[inside] &= same_variant
    return _assemble(panel, target[inside], horizon[inside])


def reference_distributions(features: np.ndarray, names: Sequence[str], bins: int = 10) -> dict[str, object]:
    """Per feature: quantiles, histogram (quantile edges + proportions), mean, std, missing share.

    What ``drift_monitor`` compares serving inputs against (PSI over these bins, KS on the
    quantiles, mean shift in standard deviations).
    """
    levels = [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]
    reference: dict[str, object] = {}
    for index, name in enumerate(names):
        column = features[:, index]
        present = column[~np.isnan(column)]
        entry: dict[str, object] = {
            "count": int(column.size),
            "missing_fraction": float(1 - present.size / column.size) if column.size else 0.0,
        }
        if present.size:
            edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
            if edges.size < 2:
                edges = np.array([edges[0], edges[0] + 1.0])
            counts, _ = np.histogram(present, bins=edges)
            entry.update(
                mean=float(present.mean()),
                std=float(present.std()),
                quantiles=dict(
                    zip(
                        [f"{level:g}" for level in levels],
                        map(float, np.quantile(present, levels)),
                        strict=True,
                    )
                ),
                histogram={
                    "edges": [float(edge) for edge in edges],
                    "proportions": [float(count / present.size) for count in counts],
                },
            )
        reference[name] = entry
    return reference


def reference_sample(
    inputs: np.ndarray, names: Sequence[str], rows: int, seed: int, variant_id: np.ndarray | None = None
) -> dict[str, object]:
    """A seeded sample of the training inputs for drift checks (KS needs the values, not a
    summary): ``rows`` rows drawn without replacement (all when there are fewer), in training
    order, as the model sees them (float32 values, missing as ``MISSING``), stored compactly
    in the card (``shared.monitoring.drift.encode_sample``: float32, zlib, base64; ~1 MB for
    20,000 rows x 23 features). With ``variant_id`` (one per input row) the sample also keeps
    each row's variant (``encode_ids``), so ``drift_monitor`` can weight the reference to the
    variants shoppers actually look at (shared/monitoring/monitor.py)."""
    from shared.monitoring.drift import encode_ids, encode_sample

    count = min(rows, inputs.shape[0])
    chosen = np.sort(np.random.default_rng(seed).choice(inputs.shape[0], size=count, replace=False))
    sample: dict[str, object] = {
        **encode_sample(inputs[chosen], names),
        "seed": seed,
        "drawn_from": f"{inputs.shape[0]} training rows (model inputs, missing as {MISSING:g})",
    }
    if variant_id is not None:
        sample["variant_ids"] = encode_ids(np.asarray(variant_id)[chosen])
    return sample


def psi_bins(inputs: np.ndarray, names: Sequence[str], bins: int = 10) -> dict[str, object]:
    """Per feature: PSI inner edges (the distinct training quantiles at 1/bins .. (bins-1)/bins;
    the outer bins are open, (-inf, e1) and [e_last, +inf)) and the training share per bin."""
    from shared.monitoring.drift import bin_counts, psi_edges, shares

    found: dict[str, object] = {}
    for index, name in enumerate(names):
        column = np.sort(inputs[:, index][np.isfinite(inputs[:, index])])
        edges = psi_edges(column, bins)
        found[name] = {
            "edges": [float(edge) for edge in edges],
            "reference_shares": [float(share) for share in shares(bin_counts(column, edges))],
        }
    return {"bins": bins, "open_outer_bins": True, "features": found}
