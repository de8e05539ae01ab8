"""Online reads from the feature server: response parsing and the TTL rule Feast does not enforce."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from shared.features import HISTORY, SHOP, STATE
from shared.features.online import (
    FeatureServerUnavailable,
    FeatureValue,
    IdTokenAuth,
    OnlineFeatures,
    apply_ttl,
    feature_event_time,
    feature_refs,
    fresh_value,
    parse_response,
)
from shared.features.views import VARIANT_HISTORY, VARIANT_STATE, VIEWS, view_of

NOW = datetime(2026, 11, 29, 17, 45, tzinfo=UTC)

# Captured from `feast serve` (feast 0.67.0, SQLite online store) for variant ids [1, 2, 3]:
# 1 materialized today, 2 materialized ten days ago (still PRESENT: Feast ignores the TTL),
# 3 never written; lag_7 was stored as null. Note the server's feature order.
REAL_RESPONSE: dict[str, Any] = {
    "results": [
        {
            "values": [1, 2, 3],
            "statuses": ["PRESENT", "PRESENT", "PRESENT"],
            "event_timestamps": ["1970-01-01T00:00:00Z"] * 3,
        },
        {
            "values": ["shirt", "shirt", None],
            "statuses": ["PRESENT", "PRESENT", "NOT_FOUND"],
            "event_timestamps": ["2026-11-29T00:00:00Z", "2026-11-19T00:00:00Z", "1970-01-01T00:00:00Z"],
        },
        {
            "values": [1.0, 1.0, None],
            "statuses": ["PRESENT", "PRESENT", "NOT_FOUND"],
            "event_timestamps": ["2026-11-29T00:00:00Z", "2026-11-19T00:00:00Z", "1970-01-01T00:00:00Z"],
        },
        {
            "values": [None, None, None],
            "statuses": ["PRESENT", "PRESENT", "NOT_FOUND"],
            "event_timestamps": ["2026-11-29T00:00:00Z", "2026-11-19T00:00:00Z", "1970-01-01T00:00:00Z"],
        },
        {
            "values": [10.0, 20.0, None],
            "statuses": ["PRESENT", "PRESENT", "NOT_FOUND"],
            "event_timestamps": ["2026-11-29T00:00:00Z", "2026-11-19T00:00:00Z", "1970-01-01T00:00:00Z"],
        },
        {
            "values": [5, 5, None],
            "statuses": ["PRESENT", "PRESENT", "NOT_FOUND"],
            "event_timestamps": ["2026-11-29T00:00:00Z", "2026-11-19T00:00:00Z", "1970-01-01T00:00:00Z"],
        },
    ],
    "metadata": {
        "feature_names": [
            "variant_id",
            "variant_history__product_type",
            "variant_history__lag_1",
            "variant_history__lag_7",
            "variant_state__price",
            "variant_state__inventory_on_hand",
        ]
    },
}
ASKED = ["lag_1", "lag_7", "product_type", "price", "inventory_on_hand"]


def test_parse_maps_values_by_the_servers_names_not_the_request_order() -> None:
    found = parse_response(REAL_RESPONSE, [1, 2, 3], ASKED)
    assert set(found) == {1, 2, 3}
    assert found[1]["price"] == FeatureValue(10.0, "PRESENT", datetime(2026, 11, 29, tzinfo=UTC))
    assert found[2]["product_type"].value == "shirt"
    assert found[2]["lag_1"].event_time == datetime(2026, 11, 19, tzinfo=UTC)
    assert found[3]["inventory_on_hand"] == FeatureValue(None, "NOT_FOUND", None)  # the epoch means none


def test_ttl_rule_on_the_real_response() -> None:
    values = apply_ttl(parse_response(REAL_RESPONSE, [1, 2, 3], ASKED), NOW)
    # Fresh: served.
    assert values[1] == {
        "lag_1": 1.0,
        "lag_7": None,  # stored null, PRESENT: still missing
        "product_type": "shirt",
        "price": 10.0,
        "inventory_on_hand": 5,
    }
    # Ten days old: Feast says PRESENT, shopml says missing (both views' TTLs are shorter).
    assert REAL_RESPONSE["results"][4]["statuses"][1] == "PRESENT"
    assert values[2] == dict.fromkeys(ASKED)
    # Never written.
    assert values[3] == dict.fromkeys(ASKED)


@pytest.mark.parametrize(
    ("age", "status", "value", "expected"),
    [
        (timedelta(hours=1), "PRESENT", 3.5, 3.5),
        (timedelta(days=2), "PRESENT", 3.5, 3.5),  # exactly the TTL: still fresh
        (timedelta(days=2, seconds=1), "PRESENT", 3.5, None),  # stale
        (timedelta(hours=1), "NOT_FOUND", None, None),
        (timedelta(hours=1), "OUTSIDE_MAX_AGE", 3.5, None),
        (timedelta(hours=1), "NULL_VALUE", None, None),
        (timedelta(hours=1), "PRESENT", None, None),
        (timedelta(hours=1), "PRESENT", "NaN", None),  # non-finite floats arrive as strings
        (timedelta(hours=-3), "PRESENT", 3.5, 3.5),  # stamped ahead of our clock: not stale
    ],
)
def test_fresh_value(age: timedelta, status: str, value: Any, expected: Any) -> None:
    found = FeatureValue(value, status, NOW - age)
    assert fresh_value(found, timedelta(days=2), NOW) == expected


def test_a_string_feature_may_be_called_nan() -> None:
    found = FeatureValue("NaN", "PRESENT", NOW)
    assert fresh_value(found, timedelta(days=2), NOW, numeric=False) == "NaN"


@given(age_s=st.integers(min_value=-86_400, max_value=10 * 86_400), ttl_s=st.integers(1, 5 * 86_400))
def test_fresh_exactly_when_no_older_than_the_ttl(age_s: int, ttl_s: int) -> None:
    found = FeatureValue(1.0, "PRESENT", NOW - timedelta(seconds=age_s))
    served = fresh_value(found, timedelta(seconds=ttl_s), NOW)
    assert (served == 1.0) == (age_s <= ttl_s)
    assert served in (1.0, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T17:43:37Z", datetime(2026, 11, 29, 17, 43, 37, tzinfo=UTC)),
        ("2026-11-29T17:43:37.250Z", datetime(2026, 11, 29, 17, 43, 37, 250_000, tzinfo=UTC)),
        ("2026-11-29T17:43:37.123456Z", datetime(2026, 11, 29, 17, 43, 37, 123_456, tzinfo=UTC)),
        ("2026-11-29T17:43:37.123456789Z", datetime(2026, 11, 29, 17, 43, 37, 123_456, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", None),
    ],
)
def test_feature_event_time_precisions_and_the_epoch_as_none(text: str, expected: datetime | None) -> None:
    assert feature_event_time(text) == expected


def test_parse_rejects_a_response_of_another_shape() -> None:
    short = copy.deepcopy(REAL_RESPONSE)
    short["results"][2]["values"] = [1.0]
    with pytest.raises(ValueError, match="values for 3 entities"):
        parse_response(short, [1, 2, 3], ASKED)
    with pytest.raises(ValueError, match="lacks features"):
        parse_response(REAL_RESPONSE, [1, 2, 3], [*ASKED, "discount"])
    with pytest.raises(ValueError, match="entity column"):
        parse_response(REAL_RESPONSE, [3, 2, 1], ASKED)
    with pytest.raises(ValueError):
        parse_response({"detail": "Not Found"}, [1], ["price"])


def test_every_online_feature_is_in_the_contract_and_in_one_view() -> None:
    online = [f for view in VIEWS for f in view.features]
    assert len(online) == len(set(online))
    assert set(online) <= set(HISTORY) | set(SHOP) | set(STATE)
    assert set(HISTORY) | set(SHOP) <= set(VARIANT_HISTORY.features)  # the shop's weekdays ride along
    assert view_of("price") is VARIANT_STATE
    assert feature_refs(["lag_1", "price"]) == ["variant_history:lag_1", "variant_state:price"]
    with pytest.raises(KeyError):
        view_of("dow")  # planned features are computed by predict, not stored online


# -- the HTTP client -----------------------------------------------------------------------


class FakeResponse:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.content = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.text = self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class FakeSession:
    """Answers like the feature server; records requests; can fail."""

    def __init__(self, answer: Any = None, status: int = 200, error: Exception | None = None) -> None:
        self.answer, self.status, self.error = answer, status, error
        self.requests: list[tuple[str, Any, Any]] = []
        self.headers: list[Any] = []

    def post(self, url: str, json: Any, timeout: Any, headers: Any = None) -> FakeResponse:
        self.requests.append((url, json, timeout))
        self.headers.append(headers)
        if self.error is not None:
            raise self.error
        return FakeResponse(self.status, self.answer)


def test_get_asks_with_full_feature_names_and_the_settings_timeout() -> None:
    session = FakeSession(REAL_RESPONSE)
    client = OnlineFeatures("http://127.0.0.1:6566/", 50, session=session)
    values = client.get([1, 2, 3, 1], ASKED, NOW)  # a repeated id is asked once
    assert values[1]["price"] == 10.0 and values[2]["price"] is None
    url, payload, timeout = session.requests[0]
    assert url == "http://127.0.0.1:6566/get-online-features"
    assert payload == {
        "entities": {"variant_id": [1, 2, 3]},
        "features": [
            "variant_history:lag_1",
            "variant_history:lag_7",
            "variant_history:product_type",
            "variant_state:price",
            "variant_state:inventory_on_hand",
        ],
        "full_feature_names": True,
    }
    assert timeout == pytest.approx(0.05)


@pytest.mark.parametrize(
    "session",
    [
        FakeSession(error=requests.ConnectTimeout("timed out")),
        FakeSession(error=requests.ConnectionError("refused")),
        FakeSession({"detail": "boom"}, status=500),
        FakeSession({"detail": "Feature view variant_state does not exist"}, status=404),
        FakeSession(b"<html>proxy error</html>"),
        FakeSession({"results": []}),
    ],
    ids=["timeout", "refused", "500", "404-not-applied", "not-json", "wrong-shape"],
)
def test_every_failure_is_one_transient_error(session: FakeSession) -> None:
    client = OnlineFeatures("http://127.0.0.1:6566", 50, session=session)
    with pytest.raises(FeatureServerUnavailable):
        client.get([1], ["price"], NOW)


# -- ID tokens for the feature server on Cloud Run (IAM-protected) --------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_https_calls_carry_an_id_token_for_the_server_and_reuse_it() -> None:
    audiences: list[str] = []

    def fetch(audience: str) -> str:
        audiences.append(audience)
        return f"token-{len(audiences)}"

    clock = Clock()
    session = FakeSession(REAL_RESPONSE)
    auth = IdTokenAuth("https://feature-server-abc.a.run.app", fetch=fetch, clock=clock)
    client = OnlineFeatures("https://feature-server-abc.a.run.app/", 50, session=session, auth=auth)
    client.get([1, 2, 3], ASKED, NOW)
    client.get([1, 2, 3], ASKED, NOW)
    assert session.headers == [{"Authorization": "Bearer token-1"}] * 2
    assert audiences == ["https://feature-server-abc.a.run.app"]  # the audience is the service URL
    clock.now = 51 * 60  # tokens live an hour; a new one well before
    client.get([1, 2, 3], ASKED, NOW)
    assert session.headers[-1] == {"Authorization": "Bearer token-2"}


def test_a_refused_token_is_replaced_once_then_the_error_stands() -> None:
    tokens = iter(["old", "new", "newer"])
    session = FakeSession({"detail": "unauthorized"}, status=401)
    auth = IdTokenAuth("https://fs.example", fetch=lambda _: next(tokens))
    client = OnlineFeatures("https://fs.example", 50, session=session, auth=auth)
    with pytest.raises(FeatureServerUnavailable, match="401"):
        client.get([1, 2, 3], ASKED, NOW)
    assert [h["Authorization"] for h in session.headers] == ["Bearer old", "Bearer new"]


def test_local_http_servers_get_no_token_and_a_missing_credential_is_transient() -> None:
    session = FakeSession(REAL_RESPONSE)
    OnlineFeatures("http://127.0.0.1:6566", 50, session=session).get([1, 2, 3], ASKED, NOW)
    assert session.headers == [None]
    assert OnlineFeatures("https://fs.example", 50).auth is not None  # https: on by default

    def no_credentials(_: str) -> str:
        raise RuntimeError("metadata server unreachable")

    auth = IdTokenAuth("https://fs.example", fetch=no_credentials)
    with pytest.raises(FeatureServerUnavailable, match="no ID token"):
        OnlineFeatures("https://fs.example", 50, session=FakeSession(REAL_RESPONSE), auth=auth).get(
            [1], ["price"]
        )
