"""Step 3 online features against a real ``feast serve`` in the local stack.

Offline parquet → apply → ``materialize(START, END)`` → reads over HTTP with the TTL rule;
pushes that never put an older value over a newer one; and the real webhook path:
ingest_webhook → Pub/Sub → validate_load → feature server ``/push``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.local.processes import pid_alive
from devkit.local.stack import LocalStack, StackInfo
from shared.features import COLUMNS
from shared.features.online import FeatureServerUnavailable, OnlineFeatures
from shared.features.push import StateUpdate, push_body, push_state
from tests.conftest import SECRET, shopify_headers
from tests.integration.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
TODAY = datetime.now(UTC).date()
FRESH, STALE, SPARSE, RACED = 101, 102, 103, 104
ASK = [
    "lag_1",
    "lag_7",
    "rmean_7",
    "product_type",
    "product_age_days",
    "price",
    "discount",
    "inventory_on_hand",
]


def feature_row(variant_id: int, day: date, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, 1.0)
    row.update(
        shop_domain="demo-store.myshopify.com",
        variant_id=variant_id,
        product_id=9,
        date=datetime.combine(day, datetime.min.time()),
        product_type="shirt",
        product_age_days=40.0,
        price=10.0,
        discount=0.0,
        inventory_on_hand=7.0,
    )
    row.update(values)
    return row


def hand_made_frame() -> Any:
    import pandas as pd

    return pd.DataFrame(
        [
            feature_row(FRESH, TODAY - timedelta(days=1), lag_1=2.0, price=9.0),
            feature_row(FRESH, TODAY, lag_1=3.0, price=10.0),
            feature_row(STALE, TODAY - timedelta(days=10), lag_1=4.0, price=20.0),
            feature_row(SPARSE, TODAY, lag_7=float("nan"), inventory_on_hand=float("nan")),
            feature_row(RACED, TODAY, price=30.0),
        ]
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with LocalStack(
        tmp_path_factory.mktemp("features"), webhook_secrets=[SECRET], feature_server=True
    ) as info:
        yield info


@pytest.fixture(scope="module")
def client(stack: StackInfo) -> Iterator[OnlineFeatures]:
    online = OnlineFeatures(stack.feature_server, 3000)  # generous: 2 cores, many processes
    yield online
    online.close()


@pytest.fixture(scope="module")
def published(stack: StackInfo, client: OnlineFeatures) -> dict[str, Any]:
    """Before apply the server runs on an empty registry (every read fails transiently);
    afterwards it picks the definitions up by itself within its registry refresh."""
    from shared.features import store

    home = Path(stack.home)
    with pytest.raises(FeatureServerUnavailable, match="404"):
        client.get([FRESH], ["price"])
    store.export_offline(hand_made_frame(), home)
    views = store.apply(home)
    window = store.materialize(home, TODAY - timedelta(days=30), TODAY)

    def served() -> bool:
        try:
            return client.get([FRESH], ["price"])[FRESH]["price"] is not None
        except FeatureServerUnavailable:
            return False

    wait_for("the feature server to load the applied registry", served, 20)
    return {"views": views, "window": window}


def test_stack_runs_the_feature_server_and_tells_the_functions(stack: StackInfo) -> None:
    assert stack.feature_server.startswith("http://127.0.0.1:")
    assert stack.env["SHOPML_FEATURE_SERVER_URL"] == stack.feature_server
    assert pid_alive(stack.pids["feature-server"])
    assert requests.get(stack.feature_server + "/health", timeout=5).status_code == 200
    assert (Path(stack.home) / "features" / "repo" / "feature_store.yaml").is_file()


def test_materialized_values_are_served(published: dict[str, Any], client: OnlineFeatures) -> None:
    assert published["views"] == ["variant_history", "variant_state"]
    values = client.get([FRESH, SPARSE], ASK)
    assert values[FRESH] == {
        "lag_1": 3.0,  # today's row, not yesterday's
        "lag_7": 1.0,
        "rmean_7": 1.0,
        "product_type": "shirt",
        "product_age_days": 40,
        "price": 10.0,
        "discount": 0.0,
        "inventory_on_hand": 7,
    }
    assert values[SPARSE]["lag_7"] is None and values[SPARSE]["inventory_on_hand"] is None
    assert values[SPARSE]["lag_1"] == 1.0


def test_a_row_older_than_the_ttl_is_missing_although_feast_says_present(
    published: dict[str, Any], client: OnlineFeatures
) -> None:
    raw = client.read([STALE], ["lag_1", "price"])[STALE]
    assert raw["lag_1"].status == "PRESENT" and raw["lag_1"].value == 4.0  # Feast serves it
    assert raw["price"].event_time == datetime.combine(TODAY - timedelta(days=10), datetime.min.time(), UTC)
    assert client.get([STALE], ["lag_1", "price"])[STALE] == {"lag_1": None, "price": None}
    assert client.get([999_999], ["price"])[999_999] == {"price": None}  # never written


def test_a_newer_push_is_read_back_with_the_rest_of_the_row_kept(
    published: dict[str, Any], client: OnlineFeatures
) -> None:
    now = datetime.now(UTC)
    report = push_state(
        [StateUpdate(FRESH, now - timedelta(seconds=2), {"price": 12.5, "discount": 0.1})], client
    )
    assert report.pushed == [FRESH]
    values = client.get([FRESH], ["price", "discount", "inventory_on_hand", "lag_1"])[FRESH]
    assert values == {"price": 12.5, "discount": 0.1, "inventory_on_hand": 7, "lag_1": 3.0}


def test_an_older_push_is_skipped_where_feast_would_overwrite(
    published: dict[str, Any], client: OnlineFeatures
) -> None:
    now = datetime.now(UTC)
    assert push_state([StateUpdate(RACED, now - timedelta(seconds=5), {"price": 31.0})], client).pushed == [
        RACED
    ]
    older = StateUpdate(RACED, now - timedelta(hours=1), {"price": 29.0})
    report = push_state([older], client)
    assert report.skipped_older == [RACED] and report.pushed == []
    assert client.get([RACED], ["price"])[RACED]["price"] == 31.0
    # Why the check exists: Feast itself lets the older event win (last write wins).
    row = {
        "variant_id": RACED,
        "event_timestamp": older.event_time.isoformat(),
        "created": now.isoformat(),
        "price": 29.0,
        "discount": 0.0,
        "inventory_on_hand": 7,
    }
    client.post("/push", push_body([row]))
    assert client.get([RACED], ["price"])[RACED]["price"] == 29.0


def _deliver(stack: StackInfo, fixture: str, topic: str, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads((FIXTURES / fixture).read_text())
    edit(doc)
    body = json.dumps(doc).encode()
    headers = shopify_headers(body, topic=topic, webhook_id=str(uuid.uuid4()), event_id=None)
    response = requests.post(stack.url("ingest_webhook") + "/", data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def test_webhooks_reach_the_online_store_through_validate_load(
    stack: StackInfo, published: dict[str, Any], client: OnlineFeatures
) -> None:
    variant, item = 642667041472713922, 271878346596884015  # from products_update.json
    changed = (datetime.now(UTC) - timedelta(minutes=2)).replace(microsecond=0)

    def product(doc: dict[str, Any]) -> None:
        doc["updated_at"] = changed.isoformat()
        for v in doc["variants"]:
            v["updated_at"] = changed.isoformat()
            if v["id"] == variant:
                v["price"], v["compare_at_price"] = "15.00", "20.00"

    _deliver(stack, "products_update.json", "products/update", product)

    def price_pushed() -> bool:
        return client.get([variant], ["price"])[variant]["price"] == 15.0

    wait_for("validate_load to push the new price", price_pushed, 60)
    assert client.get([variant], ["discount", "inventory_on_hand"])[variant] == {
        "discount": pytest.approx(0.25),
        "inventory_on_hand": None,  # no stock known yet
    }

    def stock(doc: dict[str, Any]) -> None:
        doc["updated_at"] = (changed + timedelta(minutes=1)).isoformat()
        doc["available"] = 6

    _deliver(stack, "inventory_levels_update.json", "inventory_levels/update", stock)
    assert item  # the variant is found through variants_latest.inventory_item_id

    def stock_pushed() -> bool:
        return client.get([variant], ["inventory_on_hand"])[variant]["inventory_on_hand"] == 6

    wait_for("validate_load to push the stock level", stock_pushed, 60)
    assert client.get([variant], ["price"])[variant]["price"] == 15.0  # carried, not lost

    log = (Path(stack.home) / "run" / "logs" / "validate_load.log").read_text()
    assert "feature push failed" not in log
