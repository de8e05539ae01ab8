"""From online features to ``predict``'s answer: model inputs, fallbacks, units per horizon.

Pure apart from a small thread-safe cache: numpy in, numpy out; the model is anything with
``spec`` and ``run(matrix)`` (``shared.serving.slots.LoadedModel`` on ONNX Runtime). No
pandas, lightgbm or feast import (``predict``'s request path).

**Inputs, as the trainer built them** (``shared.training.dataset._assemble``): one row per
item and horizon h = 1..``horizon_days``, in the card's ``features`` order, float32, with the
card's ``input.missing_value`` for anything unknown. The online store holds each variant's
latest day (history and state known at 00:00 UTC of that day), so ``first_day`` (the day of
``units[0]``) is today in UTC, and for horizon h:

* ``horizon`` = h; history (``lag_*``, ``rmean_*``, ``rstd_*``) and state (``price``,
  ``discount``, ``inventory_on_hand``) as served, an item's own ``price``/``discount``/
  ``inventory_on_hand`` winning; ``product_type_code`` = 1 + the type's index in the card's
  ``product_types`` (0: unknown or none, as in training); ``product_age_days`` + h - 1;
* planned features of the forecast day ``first_day + h - 1``: ``dow`` (ISO, Monday 1) and
  ``month`` from the calendar. Promotions are not in the online store: ``promo_active`` and
  ``promo_discount`` are 0 (what training saw on days without one), ``days_to_promo`` and
  ``days_since_promo`` missing (training's "none known").

**Fallbacks, per item, flagged** (the answer's ``fallback`` is true when any item's is):

* ``no_live_model`` / ``unknown_shop`` (the card's ``shops`` does not list the shop; a card
  without ``shops`` serves every shop) / ``stale_features`` (the variant's history or state
  row is older than its view's TTL, and the item does not bring price and stock itself) → the
  best baseline the online features can compute: zero where the card's ``best_baseline`` is
  ``zero``, else the 28-day average ``rmean_28`` (seasonal naive needs daily lags the online
  store does not hold, so the 28-day average stands in for it); zero when ``rmean_28`` is
  itself missing or stale.
* ``no_history``: the online store has no history row for the variant → zeros.
* ``feature_server_unavailable``: the feature server did not answer in time → the same rules
  on what this instance last saw (``FeatureCache``; the TTL still applies), every item flagged;
  a variant never seen → zeros.

Units are never negative and never NaN: the model's output goes through ``nan_to_num`` and a
floor at zero.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from shared import features as features_contract
from shared.errors import PermanentError
from shared.features.online import FeatureValue, fresh_value
from shared.features.views import STRING_FEATURES, VARIANT_HISTORY, VARIANT_STATE, VIEWS, View, view_of
from shared.serving.request import Item

HISTORY_FEATURES: tuple[str, ...] = features_contract.HISTORY
# Shop-level trading share per ISO weekday (``shop_trading_dow1..7``) where the contract has
# them; the model takes the forecast day's weekday's one as ``shop_trading_weekday``.
SHOP_WEEKDAY_FEATURES: tuple[str, ...] = getattr(features_contract, "SHOP", ())
STATE_FEATURES: tuple[str, ...] = ("price", "discount", "inventory_on_hand")
PLANNED_FEATURES: tuple[str, ...] = features_contract.PLANNED
# The model inputs this module can build, in the trainer's order
# (``shared.training.dataset.MODEL_FEATURES``; a test keeps the two equal). A card asking for
# anything else cannot be served.
BUILDABLE_FEATURES: tuple[str, ...] = (
    "horizon",
    *HISTORY_FEATURES,
    *(("shop_trading_weekday",) if SHOP_WEEKDAY_FEATURES else ()),
    *STATE_FEATURES,
    "product_type_code",
    "product_age_days",
    *PLANNED_FEATURES,
)
# What to ask the feature server for: every feature of both views.
ONLINE_FEATURES: tuple[str, ...] = tuple(feature for view in VIEWS for feature in view.features)
NO_MODEL_VERSION = "none"  # ``model_version`` when no model is live
BASELINE_ZERO = "zero"

NO_LIVE_MODEL = "no_live_model"
UNKNOWN_SHOP = "unknown_shop"
STALE_FEATURES = "stale_features"
NO_HISTORY = "no_history"
FEATURE_SERVER_UNAVAILABLE = "feature_server_unavailable"
FALLBACK_REASONS: tuple[str, ...] = (
    NO_LIVE_MODEL,
    UNKNOWN_SHOP,
    STALE_FEATURES,
    NO_HISTORY,
    FEATURE_SERVER_UNAVAILABLE,
)


@dataclass(frozen=True)
class ModelSpec:
    """What serving needs from a model card."""

    version: str
    features: tuple[str, ...]
    missing_value: float
    product_types: tuple[str, ...]
    shops: frozenset[str] | None  # None: the card does not say (serve every shop)
    best_baseline: str

    @classmethod
    def from_card(cls, version: str, card: Mapping[str, Any]) -> ModelSpec:
        features = tuple(str(name) for name in card.get("features") or ())
        unknown = [name for name in features if name not in BUILDABLE_FEATURES]
        if not features or unknown:
            raise PermanentError(
                f"model {version}: cannot build its inputs (features {unknown or 'missing'} in the card; "
                f"serving builds {list(BUILDABLE_FEATURES)})"
            )
        missing = (card.get("input") or {}).get("missing_value")
        if not isinstance(missing, int | float) or isinstance(missing, bool) or not math.isfinite(missing):
            raise PermanentError(f"model {version}: the card has no numeric input.missing_value")
        shops = card.get("shops")
        return cls(
            version=version,
            features=features,
            missing_value=float(missing),
            product_types=tuple(str(t) for t in card.get("product_types") or ()),
            shops=None if shops is None else frozenset(str(s).lower() for s in shops),
            best_baseline=str(card.get("best_baseline") or "moving_average_28"),
        )

    def knows(self, shop_domain: str) -> bool:
        return self.shops is None or shop_domain.lower() in self.shops


class Model(Protocol):
    """A loaded model: its card's serving facts and a batch prediction (float32 rows in)."""

    @property
    def spec(self) -> ModelSpec: ...

    def run(self, matrix: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ItemForecast:
    variant_id: int
    units: tuple[float, ...]
    fallback: bool
    reason: str | None  # one of FALLBACK_REASONS when ``fallback``
    inputs: np.ndarray | None  # the rows the model saw (float32 [h, features]), None if it saw none


@dataclass(frozen=True)
class Forecast:
    model_version: str
    first_day: date
    items: tuple[ItemForecast, ...]
    features: tuple[str, ...]  # names of the ``inputs`` columns (the card's order)

    @property
    def fallback(self) -> bool:
        return any(item.fallback for item in self.items)

    def body(self) -> dict[str, Any]:
        """The 200 answer's JSON object."""
        return {
            "model_version": self.model_version,
            "first_day": self.first_day.isoformat(),
            "fallback": self.fallback,
            "predictions": [
                {"variant_id": item.variant_id, "units": list(item.units), "fallback": item.fallback}
                for item in self.items
            ],
        }


def view_status(found: Mapping[str, FeatureValue], view: View, now: datetime) -> str:
    """``fresh``, ``stale`` (older than the view's TTL) or ``absent`` (nothing stored) for one
    variant's row of ``view``: judged on the newest event time among its present values."""
    times = [
        value.event_time
        for name, value in found.items()
        if name in view.features and value.status == "PRESENT" and value.event_time is not None
    ]
    if not times:
        return "absent"
    return "stale" if now - max(times) > view.ttl else "fresh"


def fresh_values(found: Mapping[str, FeatureValue], now: datetime) -> dict[str, Any]:
    """Each feature's value under the TTL rule (None: missing or stale)."""
    return {
        name: fresh_value(value, view_of(name).ttl, now, numeric=name not in STRING_FEATURES)
        for name, value in found.items()
    }


def _float_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def baseline_units(best_baseline: str, rmean_28: float | None, horizon_days: int) -> tuple[float, ...]:
    """The fallback forecast: zeros where zero was best (or nothing is known), else the 28-day average."""
    level = 0.0 if best_baseline == BASELINE_ZERO or rmean_28 is None else max(0.0, rmean_28)
    return (round(level, 4),) * horizon_days


def calendar(first_day: date, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """ISO weekday and month of each forecast day."""
    days = [first_day + timedelta(days=h) for h in range(horizon_days)]
    return (
        np.array([d.isoweekday() for d in days], dtype=np.float64),
        np.array([d.month for d in days], dtype=np.float64),
    )


def item_rows(
    spec: ModelSpec, values: Mapping[str, Any], item: Item, first_day: date, horizon_days: int
) -> np.ndarray:
    """The model's rows for one item, horizons 1..``horizon_days`` (float32, the card's order)."""
    known: dict[str, float | None] = {name: _float_or_none(values.get(name)) for name in HISTORY_FEATURES}
    for name in STATE_FEATURES:
        own = getattr(item, name)
        known[name] = own if own is not None else _float_or_none(values.get(name))
    product_type = values.get("product_type")
    codes = {name: index + 1 for index, name in enumerate(spec.product_types)}
    known["product_type_code"] = float(codes.get(str(product_type), 0)) if product_type is not None else 0.0
    # Promotions are not in the online store: none running (0), none known (missing).
    known.update(promo_active=0.0, promo_discount=0.0, days_to_promo=None, days_since_promo=None)
    age = _float_or_none(values.get("product_age_days"))
    steps = np.arange(horizon_days, dtype=np.float64)
    dow, month = calendar(first_day, horizon_days)
    rows = np.empty((horizon_days, len(spec.features)), dtype=np.float64)
    for column, name in enumerate(spec.features):
        if name == "horizon":
            rows[:, column] = steps + 1
        elif name == "product_age_days":
            rows[:, column] = spec.missing_value if age is None else age + steps
        elif name == "dow":
            rows[:, column] = dow
        elif name == "month":
            rows[:, column] = month
        elif name == "shop_trading_weekday":
            shares = [_float_or_none(values.get(f)) for f in SHOP_WEEKDAY_FEATURES]
            rows[:, column] = [
                spec.missing_value if shares[int(d) - 1] is None else shares[int(d) - 1] for d in dow
            ]
        else:
            value = known.get(name)
            rows[:, column] = spec.missing_value if value is None else value
    return rows.astype(np.float32)


def _clean(units: np.ndarray) -> tuple[float, ...]:
    finite = np.nan_to_num(np.asarray(units, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return tuple(round(float(u), 4) for u in np.maximum(finite, 0.0))


def forecast(
    shop_domain: str,
    items: Sequence[Item],
    horizon_days: int,
    model: Model | None,
    found: Mapping[int, Mapping[str, FeatureValue]],
    *,
    now: datetime,
    features_from_cache: bool = False,
) -> Forecast:
    """The answer for ``items`` (see the module docstring for every rule).

    ``found``: the raw online features per variant (``OnlineFeatures.read``), or what the
    instance last saw when ``features_from_cache`` (the feature server did not answer).
    One model for the whole answer: the caller took it once, so two versions never mix.
    """
    first_day = now.date()
    spec = model.spec if model is not None else None
    shop_known = spec is not None and spec.knows(shop_domain)
    best = spec.best_baseline if spec is not None else "moving_average_28"
    plans: list[tuple[Item, str | None, np.ndarray | None, float | None]] = []
    for item in items:
        row = found.get(item.variant_id) or {}
        values = fresh_values(row, now)
        rmean_28 = _float_or_none(values.get("rmean_28"))
        history = view_status(row, VARIANT_HISTORY, now)
        state = view_status(row, VARIANT_STATE, now)
        brings_state = item.price is not None and item.inventory_on_hand is not None
        reason: str | None = FEATURE_SERVER_UNAVAILABLE if features_from_cache else None
        rows = None
        if history == "absent":
            reason, rmean_28 = reason or NO_HISTORY, None
        elif spec is None:
            reason = reason or NO_LIVE_MODEL
        elif not shop_known:
            reason = reason or UNKNOWN_SHOP
        elif history == "stale" or (state != "fresh" and not brings_state):
            reason = reason or STALE_FEATURES
        else:
            rows = item_rows(spec, values, item, first_day, horizon_days)
        plans.append((item, reason, rows, rmean_28))
    batch = [rows for _, _, rows, _ in plans if rows is not None]
    outputs: list[np.ndarray] = []
    if batch and model is not None:
        predicted = np.asarray(model.run(np.concatenate(batch)), dtype=np.float64).ravel()
        outputs = np.split(predicted, len(batch))
    results = []
    for item, reason, rows, rmean_28 in plans:
        if rows is not None:
            units = _clean(outputs.pop(0))
        elif reason == NO_HISTORY:
            units = (0.0,) * horizon_days
        else:
            units = baseline_units(best, rmean_28, horizon_days)
        results.append(ItemForecast(item.variant_id, units, reason is not None, reason, rows))
    return Forecast(
        model_version=spec.version if spec is not None else NO_MODEL_VERSION,
        first_day=first_day,
        items=tuple(results),
        features=spec.features if spec is not None else (),
    )


class FeatureCache:
    """The last online features this instance saw per variant (bounded, least recently used
    dropped first): what ``predict`` answers from when the feature server does not answer."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: OrderedDict[int, Mapping[str, FeatureValue]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, found: Mapping[int, Mapping[str, FeatureValue]]) -> None:
        with self._lock:
            for variant_id, row in found.items():
                self._rows[variant_id] = row
                self._rows.move_to_end(variant_id)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def get(self, variant_ids: Iterable[int]) -> dict[int, Mapping[str, FeatureValue]]:
        with self._lock:
            found = {vid: self._rows[vid] for vid in variant_ids if vid in self._rows}
            for vid in found:
                self._rows.move_to_end(vid)
            return found

    def __len__(self) -> int:
        return len(self._rows)
