"""predict's REST reader of the live pointer reads what the transactional adapter writes.

The same documents, written by ``FirestorePointerStore`` (the client library, in a transaction)
into the official emulator, read back by ``FirestoreRestPointerStore`` over REST: the same
``LivePointer``, field for field, in every state a pointer goes through (none, first deploy,
second deploy, rollback with retired versions and request keys). Plus the decoding of
Firestore's typed JSON values, and what an unreachable store raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.firestore_rest import (
    FirestoreRestPointerStore,
    decode_value,
    document_url,
    parse_timestamp,
    pointer_from_document,
)
from shared.errors import PermanentError, TransientError
from shared.serving.pointer import LivePointer, deploy, rollback, with_request_key
from tests.contract.test_live_pointer_contract import firestore_emulator  # noqa: F401 (fixture)

AT = datetime(2024, 5, 1, 3, 0, 0, 123456, tzinfo=UTC)


def states(model: str) -> Iterator[LivePointer]:
    """A pointer's life: first deploy, second deploy, rollback (retired, previous, request keys)."""
    first = with_request_key(deploy(LivePointer(model), "1.0.0", AT, "deploy 1.0.0"), "key-1")
    yield first
    second = with_request_key(deploy(first, "1.1.0", AT + timedelta(hours=1), "deploy 1.1.0"), "key-2")
    yield second
    target = "1.0.0"
    back = rollback(second, target, AT + timedelta(hours=2), "rollback: bad numbers é ✓")
    yield with_request_key(back, "rollback-key")


@pytest.mark.integration
def test_the_rest_reader_reads_every_state_the_transactional_adapter_writes(
    firestore_emulator: str,  # noqa: F811
) -> None:
    from shared.adapters.firestore_pointer import FirestorePointerStore

    project = f"rest-{uuid.uuid4().hex[:8]}"
    writer = FirestorePointerStore(project, emulator_host=firestore_emulator)
    reader = FirestoreRestPointerStore(project, emulator_host=firestore_emulator)
    model = f"m{uuid.uuid4().hex[:10]}"
    assert reader.get(model) == writer.get(model) == LivePointer(model)  # no document yet
    generation = 0
    for state in states(model):
        assert writer.compare_and_swap(model, generation, state)
        generation = state.generation
        read = reader.get(model)
        assert read == state
        assert read.to_dict() == writer.get(model).to_dict()
        assert read.updated_at is not None and read.updated_at.tzinfo is not None
    assert reader.get(model).retired == ("1.1.0",)


@pytest.mark.integration
def test_writes_through_the_rest_store_go_through_the_transaction(firestore_emulator: str) -> None:  # noqa: F811
    store = FirestoreRestPointerStore(f"rest-{uuid.uuid4().hex[:8]}", emulator_host=firestore_emulator)
    model = f"m{uuid.uuid4().hex[:10]}"
    first = deploy(LivePointer(model), "1.0.0", AT, "deploy")
    assert store.compare_and_swap(model, 0, first)
    assert store.compare_and_swap(model, 0, replace(first, reason="a stale writer")) is False
    assert store.get(model) == first


def test_an_unreachable_store_is_a_transient_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = FirestoreRestPointerStore("p", emulator_host=f"127.0.0.1:{port}", timeout_seconds=1.0)
    with pytest.raises(TransientError):
        store.get("demand")


def test_a_model_name_that_is_not_allowed_is_refused_before_any_request() -> None:
    store = FirestoreRestPointerStore("p", emulator_host="127.0.0.1:1")
    with pytest.raises(PermanentError):
        store.get("../other_collection/x")


def test_the_document_url_names_project_database_collection_and_model() -> None:
    assert document_url("proj", "(default)", "live_pointers", "demand", "http://127.0.0.1:8080") == (
        "http://127.0.0.1:8080/v1/projects/proj/databases/(default)/documents/live_pointers/demand"
    )


def test_typed_values_decode_as_the_client_library_returns_them() -> None:
    assert decode_value({"nullValue": None}) is None
    assert decode_value({"stringValue": "blue"}) == "blue"
    assert decode_value({"integerValue": "9007199254740993"}) == 9007199254740993  # beyond a double
    assert decode_value({"doubleValue": 0.5}) == 0.5
    assert decode_value({"booleanValue": True}) is True
    assert decode_value({"arrayValue": {}}) == []
    assert decode_value({"arrayValue": {"values": [{"stringValue": "a"}, {"integerValue": "2"}]}}) == ["a", 2]
    assert decode_value({"mapValue": {"fields": {"k": {"stringValue": "v"}}}}) == {"k": "v"}
    with pytest.raises(PermanentError):
        decode_value({"geoPointValue": {"latitude": 1, "longitude": 2}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T03:00:00Z", datetime(2024, 5, 1, 3, tzinfo=UTC)),
        ("2024-05-01T03:00:00.123456Z", datetime(2024, 5, 1, 3, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T03:00:00.123456789Z", datetime(2024, 5, 1, 3, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T03:00:00.5Z", datetime(2024, 5, 1, 3, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T05:00:00+02:00", datetime(2024, 5, 1, 3, tzinfo=UTC)),
    ],
)
def test_timestamps_up_to_nanoseconds_read_as_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


def test_a_document_that_is_not_a_pointer_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError):
        pointer_from_document("demand", {"fields": {"live_slot": {"stringValue": "purple"}}})
    with pytest.raises(PermanentError):
        pointer_from_document("demand", {"fields": {"generation": {"stringValue": "many"}}})
