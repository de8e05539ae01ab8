"""Pushes of price, discount and stock from validate_load: never older over newer, never fail a load."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.features.online import FeatureServerUnavailable, FeatureValue, OnlineFeatures
from shared.features.push import (
    PUSH_SOURCE,
    StatePushHook,
    StateUpdate,
    discount_of,
    merge_updates,
    plan_pushes,
    push_body,
    push_state,
    state_updates,
)
from shared.features.views import VARIANT_STATE
from shared.loading import load
from shared.logs import StructuredLogger
from shared.validation import plan_load
from tests.fakes import MemoryWarehouse
from tests.unit.test_loading import push_data

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EPOCH = "1970-01-01T00:00:00Z"


class Response:
    def __init__(self, status: int, body: Any = None, text: str = "") -> None:
        self.status_code = status
        self.content = json.dumps(body).encode() if body is not None else b""
        self.text = text or self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


class FakeFeatureServer:
    """The feature server's two endpoints as feast 0.67 behaves: a push must carry every feature
    of the view, and overwrites whatever is stored (older event or not); whole seconds kept."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[datetime, dict[str, Any]]] = {}
        self.pushes: list[dict[str, Any]] = []
        self.fail = False

    def post(self, url: str, json: Any, timeout: Any, headers: Any = None) -> Response:
        if self.fail:
            return Response(500, text="Internal Server Error")
        if url.endswith("/push"):
            self.pushes.append(json)
            df = json["df"]
            missing = [f for f in VARIANT_STATE.features if f not in df]
            if missing or json["push_source_name"] != PUSH_SOURCE:
                return Response(500, text=f"{missing} not in index")
            for i, vid in enumerate(df["variant_id"]):
                at = datetime.fromisoformat(df["event_timestamp"][i]).replace(microsecond=0)
                self.rows[vid] = (at, {f: df[f][i] for f in VARIANT_STATE.features})
            return Response(200)
        ids = json["entities"]["variant_id"]
        names = ["variant_id"] + [ref.replace(":", "__") for ref in json["features"]]
        results = [
            {"values": ids, "statuses": ["PRESENT"] * len(ids), "event_timestamps": [EPOCH] * len(ids)}
        ]
        for ref in json["features"]:
            feature = ref.split(":")[1]
            values, statuses, stamps = [], [], []
            for vid in ids:
                if vid in self.rows:
                    at, stored = self.rows[vid]
                    values.append(stored[feature])
                    statuses.append("PRESENT")
                    stamps.append(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
                else:
                    values.append(None)
                    statuses.append("NOT_FOUND")
                    stamps.append(EPOCH)
            results.append({"values": values, "statuses": statuses, "event_timestamps": stamps})
        return Response(200, {"results": results, "metadata": {"feature_names": names}})


@pytest.fixture
def server() -> FakeFeatureServer:
    return FakeFeatureServer()


@pytest.fixture
def client(server: FakeFeatureServer) -> OnlineFeatures:
    return OnlineFeatures("http://feature-server", 50, session=server)


def test_push_writes_a_complete_row_and_carries_what_it_did_not_change(
    server: FakeFeatureServer, client: OnlineFeatures
) -> None:
    server.rows[7] = (NOW - timedelta(hours=12), {"price": 10.0, "discount": 0.0, "inventory_on_hand": 4})
    report = push_state(
        [StateUpdate(7, NOW - timedelta(minutes=5), {"price": 8.0, "discount": 0.2})], client, NOW
    )
    assert report.pushed == [7]
    at, stored = server.rows[7]
    assert stored == {"price": 8.0, "discount": 0.2, "inventory_on_hand": 4}
    assert at == (NOW - timedelta(minutes=5)).replace(microsecond=0)
    body = server.pushes[0]
    assert body["to"] == "online" and body["push_source_name"] == "variant_state_push"
    assert set(body["df"]) == {
        "variant_id",
        "event_timestamp",
        "created",
        "price",
        "discount",
        "inventory_on_hand",
    }


def test_an_update_older_than_the_stored_row_is_skipped(
    server: FakeFeatureServer, client: OnlineFeatures
) -> None:
    server.rows[7] = (NOW - timedelta(hours=1), {"price": 10.0, "discount": 0.0, "inventory_on_hand": 4})
    report = push_state([StateUpdate(7, NOW - timedelta(hours=2), {"inventory_on_hand": 99})], client, NOW)
    assert report.skipped_older == [7] and report.pushed == []
    assert server.pushes == []
    assert server.rows[7][1]["inventory_on_hand"] == 4


def test_same_second_is_not_older(server: FakeFeatureServer, client: OnlineFeatures) -> None:
    # The server keeps whole seconds; a redelivered update of the same second goes through.
    at = NOW - timedelta(minutes=1, microseconds=-250_000)
    server.rows[7] = (at.replace(microsecond=0), {"price": 10.0, "discount": 0.0, "inventory_on_hand": 4})
    assert push_state([StateUpdate(7, at, {"inventory_on_hand": 3})], client, NOW).pushed == [7]


def test_a_carried_value_past_its_ttl_is_sent_as_null_not_refreshed(
    server: FakeFeatureServer, client: OnlineFeatures
) -> None:
    server.rows[7] = (NOW - timedelta(days=5), {"price": 10.0, "discount": 0.0, "inventory_on_hand": 4})
    push_state([StateUpdate(7, NOW, {"inventory_on_hand": 2})], client, NOW)
    assert server.rows[7][1] == {"price": None, "discount": None, "inventory_on_hand": 2}


def test_a_new_variant_gets_nulls_for_what_is_unknown(
    server: FakeFeatureServer, client: OnlineFeatures
) -> None:
    push_state([StateUpdate(8, NOW, {"price": 5.0, "discount": 0.0})], client, NOW)
    assert server.rows[8][1] == {"price": 5.0, "discount": 0.0, "inventory_on_hand": None}


def test_an_update_already_past_the_ttl_is_not_pushed(
    server: FakeFeatureServer, client: OnlineFeatures
) -> None:
    report = push_state(
        [StateUpdate(8, NOW - timedelta(days=4), {"price": 5.0, "discount": 0.0})], client, NOW
    )
    assert report.skipped_stale == [8] and server.pushes == []


def test_updates_of_one_variant_merge_newest_value_per_feature() -> None:
    t0 = NOW - timedelta(minutes=10)
    merged = merge_updates(
        [
            StateUpdate(1, t0 + timedelta(minutes=5), {"inventory_on_hand": 2}),
            StateUpdate(1, t0, {"price": 9.0, "discount": 0.1, "inventory_on_hand": 7}),
        ]
    )
    assert merged[1].event_time == t0 + timedelta(minutes=5)
    assert merged[1].values == {"price": 9.0, "discount": 0.1, "inventory_on_hand": 2}


def test_plan_pushes_without_a_server() -> None:
    current = {1: {f: FeatureValue(None, "NOT_FOUND", None) for f in VARIANT_STATE.features}}
    rows, report = plan_pushes([StateUpdate(1, NOW, {"price": 3.0})], current, NOW)
    assert report.pushed == [1]
    assert push_body(rows)["df"]["price"] == [3.0]


def test_unknown_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="not variant_state features"):
        StateUpdate(1, NOW, {"lag_1": 3.0})


def test_server_failure_is_transient(server: FakeFeatureServer, client: OnlineFeatures) -> None:
    server.fail = True
    with pytest.raises(FeatureServerUnavailable):
        push_state([StateUpdate(1, NOW, {"price": 3.0})], client, NOW)


@pytest.mark.parametrize(
    ("price", "compare_at", "expected"),
    [("17.99", "24.99", 1 - 17.99 / 24.99), ("20", "20", 0.0), ("20", "10", 0.0), ("20", None, 0.0)],
)
def test_discount_matches_the_feature_definition(price: str, compare_at: str | None, expected: float) -> None:
    assert discount_of(price, compare_at) == pytest.approx(expected)


# -- from loaded events ---------------------------------------------------------------------

SHOP = "demo-store.myshopify.com"
FIXTURE_NOW = datetime(2022, 1, 1, 12, 0, tzinfo=UTC)  # the fixtures' updated_at is 2021-12-31


def _plan(fixture: str, topic: str) -> Any:
    attributes = {
        "shopify_topic": topic,
        "shop_domain": SHOP,
        "webhook_id": f"wh-{fixture}",
        "api_version": "2025-07",
    }
    return plan_load(attributes, (FIXTURES / fixture).read_bytes(), "m-1", None, FIXTURE_NOW)


def test_product_update_yields_price_and_discount_per_variant() -> None:
    updates = state_updates(_plan("products_update.json", "products/update"), lambda shop, item: [])
    assert [u.variant_id for u in updates] == [642667041472713922, 757650484644203962]
    first = updates[0]
    assert first.values == {"price": 17.99, "discount": pytest.approx(1 - 17.99 / 24.99)}
    assert first.event_time == datetime(2021, 12, 31, 0, 0, tzinfo=UTC)  # the variant's updated_at


def test_inventory_update_yields_the_variants_stock_over_all_locations() -> None:
    asked: list[tuple[str, int]] = []

    def lookup(shop: str, item: int) -> list[tuple[int, int | None]]:
        asked.append((shop, item))
        return [(642667041472713922, 11)]

    updates = state_updates(_plan("inventory_levels_update.json", "inventory_levels/update"), lookup)
    assert asked == [(SHOP, 271878346596884015)]
    assert updates == [
        StateUpdate(642667041472713922, datetime(2022, 1, 1, tzinfo=UTC), {"inventory_on_hand": 11})
    ]


def test_other_topics_push_nothing() -> None:
    plan = _plan("orders_create.json", "orders/create")
    assert state_updates(plan, lambda shop, item: pytest.fail("no lookup for orders")) == []


class RecordingLogger(StructuredLogger):
    def __init__(self) -> None:
        super().__init__("test")
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _emit(self, severity: str, message: str, labels: Any, fields: Any, error: Any = None) -> None:
        self.lines.append((severity, message, dict(fields or {})))


def _body(fixture: str) -> bytes:
    return (FIXTURES / fixture).read_bytes()


def test_validate_load_pushes_after_a_product_update(
    server: FakeFeatureServer, client: OnlineFeatures
) -> None:
    warehouse, logger = MemoryWarehouse(), RecordingLogger()
    hook = StatePushHook(client, lambda shop, item: [], logger, now=lambda: FIXTURE_NOW)
    outcome = load(
        push_data(_body("products_update.json"), topic="products/update"),
        "e-1",
        warehouse.write_batch,
        logger,
        on_loaded=hook,
    )
    assert outcome.status == "loaded"
    assert set(server.rows) == {642667041472713922, 757650484644203962}
    assert any(m == "state features pushed" and f["pushed"] == 2 for _, m, f in logger.lines)


@pytest.mark.parametrize("failure", ["server", "lookup"])
def test_a_failed_push_does_not_fail_the_load(
    failure: str, server: FakeFeatureServer, client: OnlineFeatures
) -> None:
    warehouse, logger = MemoryWarehouse(), RecordingLogger()

    def lookup(shop: str, item: int) -> list[tuple[int, int | None]]:
        if failure == "lookup":
            raise RuntimeError("warehouse unavailable")
        return [(1, 5)]

    server.fail = failure == "server"
    hook = StatePushHook(client, lookup, logger, now=lambda: FIXTURE_NOW)
    outcome = load(
        push_data(_body("inventory_levels_update.json"), topic="inventory_levels/update"),
        "e-1",
        warehouse.write_batch,
        logger,
        on_loaded=hook,
    )
    assert outcome.status == "loaded"
    assert warehouse.tables["inventory_levels"]
    warnings = [m for s, m, _ in logger.lines if s == "WARNING"]
    assert warnings == ["feature push failed; the nightly materialization repairs the online store"]


def test_load_survives_a_hook_that_raises() -> None:
    warehouse, logger = MemoryWarehouse(), RecordingLogger()

    def broken(plan: Any) -> None:
        raise FeatureServerUnavailable("feature server /push answered 500")

    outcome = load(
        push_data(_body("orders_create.json")), "e-1", warehouse.write_batch, logger, on_loaded=broken
    )
    assert outcome.status == "loaded"
    assert [m for s, m, _ in logger.lines if s == "WARNING"] == [
        "post-load hook failed; the event stays loaded"
    ]


def test_request_path_modules_do_not_import_feast() -> None:
    code = (
        "import sys, shared.features.online, shared.features.push, shared.features.views, "
        "shared.features.store; print('feast' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
