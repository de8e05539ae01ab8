"""Scalar conversions from Shopify JSON to warehouse values (pure, no I/O).

Each converter takes a parsed JSON value (``dict``, ``list``, ``str``, ``int``, ``float``,
``bool``, ``None``) and returns the normalised value, or raises ``BadValue`` naming what was
expected. Decisions:

* **ids** → ``int`` in 1..2**63-1 (BigQuery INT64). Shopify sends JSON integers; a string of
  ASCII digits (what JavaScript clients and GraphQL's ``legacyResourceId`` produce) is accepted
  too. Anything else (``"12x"``, ``-1``, ``1.5``, ``true``) is rejected.
* **money** → ``Decimal`` that fits NUMERIC (at most 29 integer and 9 fractional digits).
  Shopify's money is a decimal string (``"12.30"``, negative where a refund or adjustment
  says so), taken exactly. Refund line items carry JSON numbers (``89.99``): the parser gives
  a float, read back through its shortest repr, so any amount of up to 15 significant digits
  is exact; longer fractions are rounded to 9 places. Strings must be plain decimals: no
  exponent, no spaces, no ``NaN``.
* **timestamps** → aware ``datetime`` in UTC. Shopify writes the shop's offset
  (``2024-03-01T10:15:00-05:00``); a time without an offset is rejected (ambiguous).
* **booleans** must be JSON booleans; **ints** JSON integers in INT64 (never booleans).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
NUMERIC_MAX = Decimal("99999999999999999999999999999.999999999")
NUMERIC_QUANTUM = Decimal("1e-9")
# Wide enough for any NUMERIC value and sums of many: the default context (28 digits) would round.
EXACT = Context(prec=80)
MONEY_TEXT = re.compile(r"-?\d{1,29}(?:\.\d{1,9})?")
_DIGITS = re.compile(r"[0-9]{1,19}")


class BadValue(Exception):
    """A JSON value that does not have the expected type or form."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = describe(value)


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe(value: Any, limit: int = 60) -> str:
    """``got`` text for a reason: the JSON type, and the value itself when it is a short scalar."""
    kind = json_type(value)
    if kind in ("array", "object", "null"):
        return kind
    text = repr(value) if isinstance(value, str) else str(value).lower() if kind == "boolean" else str(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{kind} {text}"


def to_id(value: Any) -> int:
    if type(value) is int:
        if 0 < value <= INT64_MAX:
            return value
    elif type(value) is str and _DIGITS.fullmatch(value):
        number = int(value)
        if 0 < number <= INT64_MAX:
            return number
    raise BadValue("integer id in 1..2^63-1", value)


def to_int(value: Any) -> int:
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    raise BadValue("integer (INT64)", value)


def to_uint(value: Any) -> int:
    if type(value) is int and 0 <= value <= INT64_MAX:
        return value
    raise BadValue("integer >= 0", value)


def to_money(value: Any) -> Decimal:
    kind = type(value)
    if kind is str:
        if MONEY_TEXT.fullmatch(value):
            return Decimal(value)
        raise BadValue("decimal string (at most 29 integer and 9 fractional digits)", value)
    if kind is float and math.isfinite(value):
        number = Decimal(repr(value))
        if abs(number) <= NUMERIC_MAX:
            exponent = number.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -9:
                return number.quantize(NUMERIC_QUANTUM, rounding=ROUND_HALF_EVEN, context=EXACT)
            return number
    elif kind is int and abs(value) <= NUMERIC_MAX:
        return Decimal(value)
    raise BadValue("money: decimal string or number within NUMERIC", value)


def to_number(value: Any) -> float | int:
    if (type(value) is float and math.isfinite(value)) or type(value) is int:
        return value
    raise BadValue("finite number", value)


def to_timestamp(value: Any) -> datetime:
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None and parsed.utcoffset() is not None:
                return parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
        raise BadValue("ISO 8601 timestamp with UTC offset", value)
    raise BadValue("ISO 8601 timestamp string", value)


def to_string(value: Any) -> str:
    if type(value) is str:
        return value
    raise BadValue("string", value)


def to_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise BadValue("boolean", value)


def to_object(value: Any) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise BadValue("object", value)


def to_array(value: Any) -> list[Any]:
    if type(value) is list:
        return value
    raise BadValue("array", value)


def to_any(value: Any) -> Any:
    return value


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "id": to_id,
    "int": to_int,
    "uint": to_uint,
    "money": to_money,
    "number": to_number,
    "timestamp": to_timestamp,
    "string": to_string,
    "bool": to_bool,
    "object": to_object,
    "array": to_array,
    "any": to_any,
}

# Exact Python classes per type, for fields that are known but not loaded (a JSON boolean in
# an integer field is a change of type, so classes are compared, not isinstance).
SHALLOW_TYPES: dict[str, frozenset[type]] = {
    "id": frozenset({int, str}),
    "int": frozenset({int}),
    "uint": frozenset({int}),
    "money": frozenset({str, int, float}),
    "number": frozenset({int, float}),
    "timestamp": frozenset({str}),
    "string": frozenset({str}),
    "bool": frozenset({bool}),
    "object": frozenset({dict}),
    "array": frozenset({list}),
}

# An empty string carries no value: read as NULL in optional money/timestamp/id fields (not rejected).
EMPTY_AS_NULL = frozenset({"money", "timestamp", "id"})
