"""Training requests: a ``training-requests`` message → one night's ``TrainingRequest``. Pure.

The message may be empty (what Cloud Scheduler sends nightly) or carry, as a JSON object in
its data and/or as attributes:

* ``night`` (``YYYY-MM-DD``): the night to train for. Default: the UTC date of the event's time
  (for a push, the message's publish time, which a redelivery keeps, so a retried night
  stays the same night and the same run id);
* ``model``: default ``SHOPML_MODEL_NAME``;
* ``history_days``: length of the data window, default ``SHOPML_TRAINING_HISTORY_DAYS``.

and, in the data only, who asked and why (``reason``, ``requested_by``, ``idempotency_key``,
``evidence``: what ``drift_monitor`` and a Shopify Flow request send), logged with the run.

The data window ends the day before the night (the last complete day) and spans
``history_days`` days: ``end = night - 1``, ``start = end - history_days + 1``.
A value given both in the data and in the attributes must agree. Every bad input raises a
``BadTrainingRequest`` (permanent: the function logs and acknowledges it) naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.envelope import PubSubMessage
from shared.errors import PermanentError
from shared.ports import TrainingRequest
from shared.registry import check_model_name

FIELDS = ("night", "model", "history_days")
# Who asked and why (drift_monitor, a Shopify Flow workflow): accepted in the data, logged with
# the run, never part of what is trained (the run id stays the model and night).
PROVENANCE = ("reason", "requested_by", "idempotency_key", "evidence")
MAX_HISTORY_DAYS = 3660  # ten years: anything longer is a typo
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadTrainingRequest(PermanentError):
    """A training request that cannot be run as sent; the message says which field and why."""


def _fields_from_data(data: bytes) -> dict[str, Any]:
    if not data.strip():
        return {}
    try:
        decoded = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadTrainingRequest(f"message data is not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise BadTrainingRequest(f"message data must be a JSON object, got {type(decoded).__name__}")
    unknown = sorted(set(decoded) - set(FIELDS) - set(PROVENANCE))
    if unknown:
        raise BadTrainingRequest(
            f"message data has unknown fields {unknown}; allowed: {list(FIELDS + PROVENANCE)}"
        )
    return decoded


def request_provenance(message: PubSubMessage) -> dict[str, Any]:
    """The request's ``reason``, ``requested_by`` and ``idempotency_key`` (for the log), if any."""
    try:
        decoded = json.loads(message.data) if message.data.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {name: decoded[name] for name in PROVENANCE[:3] if isinstance(decoded.get(name), str)}


def _merge(data_fields: Mapping[str, Any], attributes: Mapping[str, str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in FIELDS:
        in_data, in_attrs = data_fields.get(name), attributes.get(name)
        if in_data is not None and in_attrs is not None and str(in_data) != in_attrs:
            raise BadTrainingRequest(
                f"{name} is {in_data!r} in the data but {in_attrs!r} in the attributes; send one value"
            )
        value = in_data if in_data is not None else in_attrs
        if value is not None:
            merged[name] = value
    return merged


def _night(value: Any) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise BadTrainingRequest(f"night {value!r} must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadTrainingRequest(f"night {value!r} is not a calendar date") from None


def _history_days(value: Any) -> int:
    if isinstance(value, bool):
        raise BadTrainingRequest(f"history_days {value!r} must be a whole number of days")
    if isinstance(value, str) and re.fullmatch(r"\d{1,6}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise BadTrainingRequest(f"history_days {value!r} must be a whole number of days")
    if not 1 <= value <= MAX_HISTORY_DAYS:
        raise BadTrainingRequest(f"history_days {value} must be between 1 and {MAX_HISTORY_DAYS}")
    return value


def _model(value: Any) -> str:
    try:
        return check_model_name(value)
    except PermanentError as exc:
        raise BadTrainingRequest(str(exc)) from None


def event_night(event_time: datetime | str | None) -> date:
    """The UTC date of the event's time (a CloudEvent ``time`` attribute, RFC 3339)."""
    if isinstance(event_time, str):
        try:
            event_time = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
        except ValueError:
            raise BadTrainingRequest(f"event time {event_time!r} is not an RFC 3339 timestamp") from None
    if event_time is None:
        raise BadTrainingRequest("no night in the message and the event carries no time: send night")
    if event_time.tzinfo is None:
        event_time = event_time.replace(tzinfo=UTC)
    return event_time.astimezone(UTC).date()


def training_window(night: date, history_days: int) -> tuple[date, date]:
    """(start, end), both inclusive: the ``history_days`` days up to the day before ``night``."""
    try:
        end = night - timedelta(days=1)
        return end - timedelta(days=history_days - 1), end
    except OverflowError:
        raise BadTrainingRequest(
            f"night {night} with {history_days} days of history starts before year 1"
        ) from None


def parse_training_request(
    message: PubSubMessage,
    event_time: datetime | str | None,
    *,
    default_model: str,
    default_history_days: int,
) -> TrainingRequest:
    fields = _merge(_fields_from_data(message.data), message.attributes)
    night = _night(fields["night"]) if "night" in fields else event_night(event_time)
    model = _model(fields.get("model", default_model))
    history_days = _history_days(fields.get("history_days", default_history_days))
    start, end = training_window(night, history_days)
    return TrainingRequest(model=model, night=night, start=start, end=end)
