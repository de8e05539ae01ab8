"""Decoding the Pub/Sub push envelope that functions-framework passes as CloudEvent data."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import MalformedEnvelope, decode_push_message


def envelope(data: bytes, **attributes: str) -> dict[str, Any]:
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": "123",
            "publishTime": "2025-03-01T10:15:02.123Z",
        }
    }


def test_decodes_data_attributes_id_and_time() -> None:
    message = decode_push_message(envelope(b'{"id": 1}', webhook_id="w1"))
    assert message.data == b'{"id": 1}'
    assert message.attributes == {"webhook_id": "w1"}
    assert message.message_id == "123"
    assert message.publish_time == datetime(2025, 3, 1, 10, 15, 2, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (None, "expected an object"),
        ({}, "no 'message'"),
        ({"message": {"data": 5}}, "base64 text"),
        ({"message": {"data": "***"}}, "not valid base64"),
        ({"message": {"data": "", "attributes": {"a": 1}}}, "strings to strings"),
    ],
)
def test_malformed_envelopes_are_named(data: Any, fragment: str) -> None:
    with pytest.raises(MalformedEnvelope, match=fragment):
        decode_push_message(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_any_json_either_decodes_or_raises_malformed(data: Any) -> None:
    with contextlib.suppress(MalformedEnvelope):
        decode_push_message(data)


@given(st.binary(max_size=256))
def test_round_trips_any_bytes(data: bytes) -> None:
    assert decode_push_message(envelope(data)).data == data
