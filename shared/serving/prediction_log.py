"""The prediction log: a sample of ``predict``'s answers, published and loaded into ``predictions``.

``predict`` publishes one message per sampled answer to the ``predictions`` topic, after the
answer is built and off the latency path (a background task; a failed publish is a warning,
never an error for the storefront). ``load_predictions`` (push subscription
``predictions-load-predictions``) turns each message into one row per item in the
``predictions`` table (``shared/schemas/tables/predictions.json``), which drift and accuracy
monitoring read. Why a small loader and not ``validate_load``: these are our own records, not
Shopify events; they need no webhook schema, quarantine or PII handling, only a shape check.

Message (JSON)::

    {"shop_domain": "demo.myshopify.com", "model_version": "1.2.0", "first_day": "2026-12-01",
     "horizon_days": 7, "sample_rate": 0.05, "request_time": "2026-12-01T08:15:02.123456+00:00",
     "items": [{"variant_id": 1, "units": [2.1, ...], "fallback": false, "fallback_reason": null,
                "features": {"horizon": 1.0, "lag_1": 3.0, ...}}]}

Never a customer identifier: the app proxy's ``logged_in_customer_id`` is not passed here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from shared.errors import PermanentError
from shared.serving.forecast import Forecast
from shared.times import parse_timestamp

TOPIC = "predictions"
TABLE = "predictions"


def named_inputs(features: Sequence[str], row: Sequence[float]) -> dict[str, float]:
    """One input row as ``{feature: value}`` (float32 values as the model saw them)."""
    return {name: float(value) for name, value in zip(features, row, strict=True)}


def prediction_message(
    forecast: Forecast, shop_domain: str, horizon_days: int, sample_rate: float, request_time: datetime
) -> bytes:
    """The ``predictions`` message for one answer."""
    items = [
        {
            "variant_id": item.variant_id,
            "units": list(item.units),
            "fallback": item.fallback,
            "fallback_reason": item.reason,
            "features": None if item.inputs is None else named_inputs(forecast.features, item.inputs[0]),
        }
        for item in forecast.items
    ]
    body = {
        "shop_domain": shop_domain,
        "model_version": forecast.model_version,
        "first_day": forecast.first_day.isoformat(),
        "horizon_days": horizon_days,
        "sample_rate": sample_rate,
        "request_time": request_time.isoformat(),
        "items": items,
    }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _require(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PermanentError(f"prediction message: {name} is missing or not {kind}")
    return value


def prediction_rows(
    data: bytes, message_id: str, loaded_at: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    """The table rows (one per item) and their insert ids; ``PermanentError`` for a bad message."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise PermanentError(f"prediction message is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PermanentError("prediction message is not a JSON object")
    request_time = parse_timestamp(str(_require(body, "request_time", str)))
    if request_time is None:
        raise PermanentError("prediction message: request_time is not a timestamp")
    try:
        first_day = date.fromisoformat(_require(body, "first_day", str))
    except ValueError:
        raise PermanentError("prediction message: first_day is not YYYY-MM-DD") from None
    sample_rate = float(_require(body, "sample_rate", (int, float)))
    if not (math.isfinite(sample_rate) and 0 < sample_rate <= 1):
        raise PermanentError("prediction message: sample_rate must be in (0, 1]")
    common = {
        "shop_domain": _require(body, "shop_domain", str),
        "model_version": _require(body, "model_version", str),
        "first_day": first_day,
        "horizon_days": _require(body, "horizon_days", int),
        "sample_rate": sample_rate,
        "request_time": request_time,
        "loaded_at": loaded_at,
    }
    rows: list[dict[str, Any]] = []
    ids: list[str] = []
    for index, item in enumerate(_require(body, "items", list)):
        if not isinstance(item, dict):
            raise PermanentError(f"prediction message: items[{index}] is not an object")
        units = _require(item, "units", list)
        rows.append(
            {
                **common,
                "prediction_id": f"{message_id}:{index}",
                "variant_id": _require(item, "variant_id", int),
                "units": [float(u) for u in units],
                "fallback": _require(item, "fallback", bool),
                "fallback_reason": item.get("fallback_reason"),
                "features": item.get("features"),
            }
        )
        ids.append(f"{message_id}:{index}")
    return rows, ids
