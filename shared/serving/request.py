"""``predict``'s request body: parse and check it, or say exactly what to fix (a 400).

Pure: bytes in, a ``PredictRequest`` or a ``BadRequest`` (code + message) out. Limits (items,
horizon) come from the caller (settings); nothing here reads the environment.

Body (docs/openapi/predict.yaml)::

    {"shop_domain": "demo.myshopify.com", "horizon_days": 7,
     "items": [{"variant_id": 123, "price": 19.5, "inventory_on_hand": 4}]}

An item may carry values the storefront knows fresher than the online store (``price``,
``discount``, ``inventory_on_hand``); they win over the feature server's. Unknown fields are
ignored (a storefront may send more than it needs). Codes: ``malformed_json``,
``invalid_body``, ``missing_field``, ``invalid_type``, ``invalid_value``,
``horizon_out_of_range``, ``too_many_items``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MAX_HORIZON_DAYS = 28  # the model is trained for horizons 1..28 (shared.training.dataset.MAX_HORIZON)
_MAX_VARIANT_ID = 2**63 - 1


@dataclass(frozen=True)
class BadRequest(Exception):
    """A 400: ``code`` for programs, ``message`` for the person fixing the call."""

    code: str
    message: str

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


@dataclass(frozen=True)
class Item:
    variant_id: int
    price: float | None = None
    discount: float | None = None
    inventory_on_hand: float | None = None


@dataclass(frozen=True)
class PredictRequest:
    shop_domain: str
    items: tuple[Item, ...]
    horizon_days: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(item: dict[str, Any], name: str, where: str, *, upper: float | None = None) -> float | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("invalid_type", f"{where}.{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (upper is not None and number > upper):
        bound = f"between 0 and {upper:g}" if upper is not None else "zero or more"
        raise BadRequest("invalid_value", f"{where}.{name} must be {bound}, got {value!r}")
    return number


def _item(raw: Any, index: int) -> Item:
    where = f"items[{index}]"
    if not isinstance(raw, dict):
        raise BadRequest("invalid_type", f'{where} must be an object like {{"variant_id": 123}}')
    if "variant_id" not in raw:
        raise BadRequest("missing_field", f"{where}.variant_id is required")
    variant_id = raw["variant_id"]
    if not _is_int(variant_id):
        raise BadRequest(
            "invalid_type", f"{where}.variant_id must be an integer, got {type(variant_id).__name__}"
        )
    if not 0 < variant_id <= _MAX_VARIANT_ID:
        raise BadRequest("invalid_value", f"{where}.variant_id must be a positive 64-bit integer")
    return Item(
        variant_id=variant_id,
        price=_number(raw, "price", where),
        discount=_number(raw, "discount", where, upper=1.0),
        inventory_on_hand=_number(raw, "inventory_on_hand", where),
    )


def decode(body: bytes) -> Any:
    """The JSON value of the body; ``BadRequest("malformed_json")`` when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("malformed_json", "the body is not valid JSON (UTF-8)") from None


def claimed_shop(data: Any) -> str | None:
    """The body's ``shop_domain`` when it is a string (checked against the credentials before
    anything else in the body is), else None (``validate`` then says what is wrong)."""
    shop = data.get("shop_domain") if isinstance(data, dict) else None
    return shop.strip().lower() if isinstance(shop, str) and shop.strip() else None


def validate(data: Any, *, max_items: int, max_horizon: int = MAX_HORIZON_DAYS) -> PredictRequest:
    """The checked request; raises ``BadRequest`` at the first problem, in field order."""
    if not isinstance(data, dict):
        raise BadRequest(
            "invalid_body", "the body must be a JSON object with shop_domain, items, horizon_days"
        )
    for name in ("shop_domain", "items", "horizon_days"):
        if name not in data:
            raise BadRequest("missing_field", f"{name} is required")
    shop = claimed_shop(data)
    if shop is None:
        raise BadRequest("invalid_type", "shop_domain must be a non-empty string such as demo.myshopify.com")
    horizon = data["horizon_days"]
    if not _is_int(horizon):
        raise BadRequest("invalid_type", f"horizon_days must be an integer, got {type(horizon).__name__}")
    if not 1 <= horizon <= max_horizon:
        raise BadRequest(
            "horizon_out_of_range", f"horizon_days must be between 1 and {max_horizon}, got {horizon}"
        )
    items = data["items"]
    if not isinstance(items, list):
        raise BadRequest("invalid_type", 'items must be a list of objects like {"variant_id": 123}')
    if not items:
        raise BadRequest("invalid_value", "items is empty: ask for at least one variant")
    if len(items) > max_items:
        raise BadRequest("too_many_items", f"at most {max_items} items per request, got {len(items)}")
    return PredictRequest(
        shop_domain=shop,
        items=tuple(_item(raw, index) for index, raw in enumerate(items)),
        horizon_days=horizon,
    )


def parse_request(body: bytes, *, max_items: int, max_horizon: int = MAX_HORIZON_DAYS) -> PredictRequest:
    """``validate(decode(body))``."""
    return validate(decode(body), max_items=max_items, max_horizon=max_horizon)
