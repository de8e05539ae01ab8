"""Parsing training-requests messages into one night's TrainingRequest."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import PubSubMessage
from shared.errors import PermanentError
from shared.training_requests import (
    BadTrainingRequest,
    event_night,
    parse_training_request,
    request_provenance,
    training_window,
)

EVENT_TIME = "2025-03-02T02:00:00.123Z"


def parse(data: bytes = b"", attributes: dict[str, str] | None = None, time: str | None = EVENT_TIME):  # type: ignore[no-untyped-def]
    return parse_training_request(
        PubSubMessage(data=data, attributes=attributes or {}),
        time,
        default_model="demand",
        default_history_days=548,
    )


def test_empty_message_trains_the_default_model_for_the_event_night() -> None:
    request = parse()
    assert (request.model, request.night) == ("demand", date(2025, 3, 2))
    assert request.end == date(2025, 3, 1)  # the last complete day
    assert request.start == date(2025, 3, 1) - timedelta(days=547)  # 548 days inclusive
    assert request.run_id == "shopml-train-demand-20250302"


def test_night_follows_the_utc_date_of_the_event_time() -> None:
    # 23:30 in New York on 1 March is 04:30 UTC on 2 March.
    assert parse(time="2025-03-01T23:30:00-05:00").night == date(2025, 3, 2)
    assert event_night(datetime(2025, 3, 2, 0, 1)) == date(2025, 3, 2)  # naive: taken as UTC


def test_data_fields_override_the_defaults() -> None:
    request = parse(json.dumps({"night": "2024-12-25", "model": "demand_eu", "history_days": 30}).encode())
    assert (request.model, request.night) == ("demand_eu", date(2024, 12, 25))
    assert (request.start, request.end) == (date(2024, 11, 25), date(2024, 12, 24))


def test_attributes_carry_the_same_fields() -> None:
    request = parse(attributes={"night": "2024-12-25", "history_days": "7", "source": "manual"})
    assert (request.start, request.end) == (date(2024, 12, 18), date(2024, 12, 24))


def test_data_and_attributes_may_repeat_a_value_but_not_contradict_it() -> None:
    assert parse(b'{"night": "2024-12-25"}', {"night": "2024-12-25"}).night == date(2024, 12, 25)
    with pytest.raises(BadTrainingRequest, match="night is '2024-12-25' in the data but '2024-12-26'"):
        parse(b'{"night": "2024-12-25"}', {"night": "2024-12-26"})


@pytest.mark.parametrize(
    ("data", "attributes", "message"),
    [
        (b"not json", {}, "message data is not JSON"),
        (b"[1, 2]", {}, "must be a JSON object"),
        (b'{"nigth": "2025-01-01"}', {}, "unknown fields \\['nigth'\\]"),
        (b'{"night": "2025-02-30"}', {}, "not a calendar date"),
        (b'{"night": "20250301"}', {}, "YYYY-MM-DD"),
        (b'{"night": 20250301}', {}, "YYYY-MM-DD"),
        (b'{"history_days": 0}', {}, "between 1 and"),
        (b'{"history_days": "lots"}', {}, "whole number"),
        (b'{"history_days": true}', {}, "whole number"),
        (b'{"history_days": 2.5}', {}, "whole number"),
        (b"", {"history_days": "-3"}, "whole number"),
        (b'{"model": "Demand"}', {}, "model name 'Demand'"),
        (b'{"model": "a/b"}', {}, "model name"),
        (b"\xff\xfe", {}, "not JSON"),
    ],
)
def test_bad_requests_name_the_field(data: bytes, attributes: dict[str, str], message: str) -> None:
    with pytest.raises(BadTrainingRequest, match=message) as caught:
        parse(data, attributes)
    assert isinstance(caught.value, PermanentError)


def test_without_a_night_the_event_must_have_a_time() -> None:
    with pytest.raises(BadTrainingRequest, match="send night"):
        parse(time=None)
    with pytest.raises(BadTrainingRequest, match="RFC 3339"):
        parse(time="yesterday")
    assert parse(b'{"night": "2025-01-10"}', time=None).night == date(2025, 1, 10)


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(min_value=1, max_value=3660),
)
def test_window_has_history_days_and_ends_the_day_before_the_night(night: date, days: int) -> None:
    start, end = training_window(night, days)
    assert end == night - timedelta(days=1)
    assert (end - start).days + 1 == days


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_a_redelivery_with_the_same_publish_time_is_the_same_run(moment: datetime) -> None:
    first = parse(time=moment.isoformat())
    again = parse(time=moment.isoformat())
    assert first.run_id == again.run_id and first.night == moment.date()


def test_a_drift_monitor_request_trains_its_night_and_says_who_asked() -> None:
    body = {
        "model": "demand",
        "night": "2025-03-05",
        "reason": "moderate drift: price moved",
        "requested_by": "drift_monitor",
        "idempotency_key": "drift_monitor:retrain:demand:2025-03-05",
        "evidence": {"drifted": {"price": {"psi": 0.31}}},
    }
    data = json.dumps(body).encode()
    request = parse(data)
    assert (request.model, request.night) == ("demand", date(2025, 3, 5))
    assert request_provenance(PubSubMessage(data=data, attributes={})) == {
        "reason": "moderate drift: price moved",
        "requested_by": "drift_monitor",
        "idempotency_key": "drift_monitor:retrain:demand:2025-03-05",
    }
    assert request_provenance(PubSubMessage(data=b"", attributes={})) == {}
