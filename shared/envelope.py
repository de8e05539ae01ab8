"""The Pub/Sub push envelope, as functions-framework hands it to a CloudEvent function.

functions-framework turns a push request ``{"subscription", "message": {"data": b64,
"attributes", "messageId", "publishTime"}}`` into a CloudEvent whose ``data`` is
``{"message": {...}}`` (the data still base64). Decoding is pure and total: a malformed
envelope raises ``PermanentError`` naming what is wrong, never anything else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.errors import PermanentError
from shared.times import parse_timestamp


class MalformedEnvelope(PermanentError):
    """The push request is not a Pub/Sub message envelope."""


@dataclass(frozen=True)
class PubSubMessage:
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str = ""
    publish_time: datetime | None = None
    delivery_attempt: int | None = None


def decode_push_message(event_data: Any) -> PubSubMessage:
    """The Pub/Sub message inside a push CloudEvent's ``data``."""
    if not isinstance(event_data, Mapping):
        raise MalformedEnvelope(f"event data is {type(event_data).__name__}, expected an object")
    message = event_data.get("message")
    if not isinstance(message, Mapping):
        raise MalformedEnvelope("event data has no 'message' object")
    raw = message.get("data", "")
    if not isinstance(raw, str):
        raise MalformedEnvelope(f"message.data is {type(raw).__name__}, expected base64 text")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEnvelope(f"message.data is not valid base64: {exc}") from None
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise MalformedEnvelope("message.attributes must map strings to strings")
    message_id = message.get("messageId") or message.get("message_id") or ""
    publish_time = message.get("publishTime") or message.get("publish_time")
    attempt = event_data.get("deliveryAttempt")
    return PubSubMessage(
        data=data,
        attributes=dict(attributes),
        message_id=str(message_id),
        publish_time=parse_timestamp(publish_time) if isinstance(publish_time, str) else None,
        delivery_attempt=attempt if isinstance(attempt, int) else None,
    )
