"""predict's pure parts: serving builds the trainer's inputs, the app-proxy scheme, units are
never negative or NaN, the feature cache, the prediction log's message checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from shared import features as contract
from shared.errors import PermanentError
from shared.features.online import FeatureValue
from shared.serving import auth
from shared.serving.forecast import (
    FeatureCache,
    ModelSpec,
    forecast,
    item_rows,
)
from shared.serving.prediction_log import prediction_rows
from shared.serving.request import Item
from shared.training import dataset

DAYS = 60


def feature_table() -> pd.DataFrame:
    """One variant, 60 days, every column of the feature contract with varied values."""
    rng = np.random.default_rng(7)
    start = date(2026, 9, 1)
    frame = pd.DataFrame({"date": pd.to_datetime([start + timedelta(days=i) for i in range(DAYS)])})
    frame["shop_domain"] = "demo.myshopify.com"
    frame["variant_id"] = 11
    frame["product_id"] = 1
    for column in contract.COLUMNS:
        if column in frame:
            continue
        frame[column] = rng.integers(0, 9, DAYS).astype(float)
    frame["product_type"] = "Shirts"
    frame["dow"] = frame["date"].dt.isocalendar().day.astype(float)
    frame["month"] = frame["date"].dt.month.astype(float)
    frame["promo_active"] = 0.0
    frame["promo_discount"] = 0.0
    frame["days_to_promo"] = np.nan
    frame["days_since_promo"] = np.nan
    frame.loc[:5, "lag_28"] = np.nan  # missing values reach both as the card's sentinel
    return frame


def test_serving_builds_exactly_the_rows_the_trainer_evaluates_on() -> None:
    frame = feature_table()
    panel = dataset.to_panel(frame, vocabulary=["Hats", "Shirts"])
    cutoff = panel.first_day + 40
    holdout = dataset.holdout_rows(panel, cutoff, horizons=14)
    origin = frame.iloc[41]  # the online store's row: features known at 00:00 of the first forecast day
    values = {name: origin[name] for name in contract.HISTORY + contract.STATE}
    values.update({name: origin[name] for name in getattr(contract, "SHOP", ())})
    card = {
        "features": list(dataset.MODEL_FEATURES),
        "input": {"missing_value": dataset.MISSING},
        "product_types": ["Hats", "Shirts"],
    }
    rows = item_rows(ModelSpec.from_card("1.0.0", card), values, Item(11), origin["date"].date(), 14)
    np.testing.assert_array_equal(rows, holdout.inputs.astype(np.float32))


def test_a_card_with_inputs_serving_cannot_build_is_refused() -> None:
    with pytest.raises(PermanentError, match="cannot build"):
        ModelSpec.from_card("9.0.0", {"features": ["horizon", "weather"], "input": {"missing_value": -1}})
    with pytest.raises(PermanentError, match="missing_value"):
        ModelSpec.from_card("9.0.0", {"features": ["horizon"], "input": {}})


class Wild:
    """A model that answers negative, NaN and infinite units."""

    spec = ModelSpec("3.0.0", ("horizon",), -1.0, (), None, "moving_average_28")

    def run(self, matrix: np.ndarray) -> np.ndarray:
        return np.array([-2.0, np.nan, np.inf, 1.5][: matrix.shape[0]])


def test_units_are_never_negative_and_never_nan() -> None:
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    day = datetime(2026, 12, 1, tzinfo=UTC)
    row = {"rmean_28": FeatureValue(1.0, "PRESENT", day), "price": FeatureValue(2.0, "PRESENT", day)}
    result = forecast("s", [Item(5)], 4, Wild(), {5: row}, now=now)
    assert result.items[0].units == (0.0, 0.0, 0.0, 1.5)
    assert result.items[0].fallback is False


def test_shopifys_documented_app_proxy_example_signs_the_documented_string() -> None:
    # shopify.dev "Authenticate app proxies": /proxy/...?extra=1&extra=2&shop=...&logged_in_customer_id=1
    # &path_prefix=%2Fapps%2Fawesome_reviews&timestamp=1317327555, secret "hush".
    query = [
        ("extra", "1"),
        ("extra", "2"),
        ("shop", "shop-name.myshopify.com"),
        ("logged_in_customer_id", "1"),
        ("path_prefix", "/apps/awesome_reviews"),
        ("timestamp", "1317327555"),
        ("signature", "ignored"),
    ]
    assert auth.app_proxy_message(query) == (
        "extra=1,2logged_in_customer_id=1path_prefix=/apps/awesome_reviewsshop=shop-name.myshopify.comtimestamp=1317327555"
    )
    signature = auth.app_proxy_signature(query, "hush")
    signed = [*query[:-1], ("signature", signature)]
    caller = auth.verify_app_proxy(signed, ["rotated-out", "hush"], now=1317327555 + 10, max_age_seconds=90)
    assert caller == auth.Caller("shop-name.myshopify.com", "app_proxy", "1")
    with pytest.raises(auth.Unauthorized):
        auth.verify_app_proxy(
            [*query[:-1], ("signature", signature[:-1] + "0")], ["hush"], now=1317327555, max_age_seconds=90
        )


def test_bearer_keys_name_their_shop_and_nothing_else() -> None:
    keys = [("a.myshopify.com", "ka"), ("b.myshopify.com", "kb")]
    assert auth.verify_bearer("Bearer kb", keys).shop_domain == "b.myshopify.com"
    assert auth.verify_bearer("bearer  ka ", keys).shop_domain == "a.myshopify.com"
    for header in (None, "", "Bearer", "Basic ka", "Bearer kc", "Bearer ka kb"):
        with pytest.raises(auth.Unauthorized):
            auth.verify_bearer(header, keys)


def test_the_feature_cache_keeps_the_most_recently_seen_variants() -> None:
    cache = FeatureCache(size=2)
    row = {"rmean_28": FeatureValue(1.0, "PRESENT", None)}
    cache.put({1: row, 2: row})
    cache.get([1])
    cache.put({3: row})
    assert sorted(cache.get([1, 2, 3])) == [1, 3]  # 2 was the least recently used
    assert len(cache) == 2


def test_a_prediction_message_that_is_not_the_documented_shape_is_refused() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    good = (
        b'{"shop_domain":"s","model_version":"1.0.0","first_day":"2026-12-01","horizon_days":1,'
        b'"sample_rate":0.5,"request_time":"2026-12-01T08:00:00+00:00","items":[{"variant_id":1,'
        b'"units":[1.0],"fallback":false,"fallback_reason":null,"features":{"horizon":1.0}}]}'
    )
    rows, ids = prediction_rows(good, "m", now)
    assert ids == ["m:0"] and rows[0]["first_day"] == date(2026, 12, 1)
    bad = (
        b"nope",
        b"[]",
        good.replace(b'"sample_rate":0.5', b'"sample_rate":0'),
        good.replace(b'"fallback":false', b'"fallback":0'),
        good.replace(b'"first_day":"2026-12-01"', b'"first_day":"12/01/2026"'),
        good.replace(b'"variant_id":1', b'"variant_id":"1"'),
    )
    for message in bad:
        with pytest.raises(PermanentError):
            prediction_rows(message, "m", now)
