"""compliance through the HTTP layer: real CloudEvents carrying the Pub/Sub pushes that
ingest_webhook's messages become, against a DuckDB warehouse loaded by the real load path."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.envelope import PubSubMessage
from shared.errors import ConfigurationError
from shared.settings import Settings
from tests.privacy_support import (
    A_EMAIL,
    A_ID,
    A_ORDER,
    A_PHONE,
    A_TRACES,
    KEY,
    NOW,
    SHOP,
    Clock,
    StreamingBufferWarehouse,
    load_history,
    traces,
)
from tests.privacy_support import privacy_message as message


def push_event(message: PubSubMessage) -> CloudEvent:
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/shopml-local/topics/compliance",
        },
        {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "attributes": message.attributes,
                "messageId": message.message_id,
                "publishTime": "2025-03-02T09:00:02Z",
            }
        },
    )


def post(client: Any, event: CloudEvent) -> Any:
    headers, body = to_binary(event)
    return client.post("/", headers=headers, data=body)


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    made = DuckDBWarehouse(tmp_path / "warehouse.duckdb", idle_close_seconds=0.05)
    settings = Settings.from_env(
        {
            "SHOPML_HOME": str(tmp_path),
            "SHOPML_PII_HASH_KEY": KEY,
            "SHOPML_PRIVACY_EXPORTS": f"file://{tmp_path / 'exports'}",
        }
    )
    bootstrap.override(settings=settings, warehouse=made)
    try:
        yield made
    finally:
        bootstrap.reset()
        made.close()


REDACT = {
    "shop_id": 954889,
    "shop_domain": SHOP,
    "customer": {"id": A_ID, "email": A_EMAIL, "phone": A_PHONE},
    "orders_to_redact": [A_ORDER],
}


def test_customers_redact_event_erases_the_customer_and_is_audited_once(
    function_client: Any, warehouse: DuckDBWarehouse
) -> None:
    load_history(warehouse)
    client = function_client("compliance")
    event = push_event(message("customers/redact", REDACT, "wh-fn-redact"))
    assert post(client, event).status_code == 200
    assert traces(warehouse, A_TRACES) == {}
    assert post(client, event).status_code == 200  # Pub/Sub redelivers: nothing more happens
    rows = warehouse.query("SELECT status, attempt, total_rows FROM privacy_audit")
    assert rows == [{"status": "completed", "attempt": 1, "total_rows": 11}]


def test_data_request_event_writes_the_export_where_settings_say(
    function_client: Any, warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    load_history(warehouse)
    body = {**REDACT, "orders_requested": [A_ORDER], "data_request": {"id": 77}}
    del body["orders_to_redact"]
    event = push_event(message("customers/data_request", body, "wh-fn-dr"))
    response = post(function_client("compliance"), event)
    assert response.status_code == 200
    (row,) = warehouse.query("SELECT export_uri, data_request_id FROM privacy_audit")
    assert row["data_request_id"] == 77 and row["export_uri"].startswith(f"file://{tmp_path / 'exports'}")
    exported = json.loads(Path(row["export_uri"][len("file://") :]).read_text())
    assert exported["tables"]["customers"][0]["id"] == A_ID


@pytest.mark.parametrize(
    ("topic", "body", "why"),
    [
        ("customers/redact", {"shop_domain": SHOP, "customer": "nobody"}, "customer"),
        ("customers/redact", {"shop_domain": SHOP, "customer": {"id": "x1"}}, "customer.id"),
        ("orders/create", {"shop_domain": SHOP}, "shopify_topic"),
        ("shop/redact", {"shop_domain": "someone-else.myshopify.com"}, "differs"),
    ],
)
def test_malformed_requests_are_acknowledged_and_change_nothing(
    function_client: Any, warehouse: DuckDBWarehouse, topic: str, body: dict[str, Any], why: str, capsys: Any
) -> None:
    load_history(warehouse)
    before = traces(warehouse, A_TRACES)
    response = post(function_client("compliance"), push_event(message(topic, body, "wh-bad")))
    assert response.status_code == 200
    assert why in capsys.readouterr().out
    assert traces(warehouse, A_TRACES) == before
    assert warehouse.query("SELECT COUNT(*) AS n FROM privacy_audit") == [{"n": 0}]


def test_a_redaction_blocked_by_the_streaming_buffer_answers_500_until_it_completes(
    function_client: Any, warehouse: DuckDBWarehouse
) -> None:
    clock = Clock(NOW)
    refusing = StreamingBufferWarehouse(warehouse, clock)
    load_history(refusing)
    bootstrap.override(warehouse=refusing)
    client = function_client("compliance")
    event = push_event(message("customers/redact", REDACT, "wh-fn-buffer"))
    clock.now = NOW + timedelta(minutes=3)
    assert post(client, event).status_code == 500  # Pub/Sub redelivers with backoff
    clock.now = NOW + timedelta(minutes=35)
    assert post(client, event).status_code == 200
    rows = warehouse.query("SELECT status, attempt FROM privacy_audit ORDER BY attempt")
    assert rows == [{"status": "pending", "attempt": 1}, {"status": "completed", "attempt": 2}]
    assert traces(warehouse, A_TRACES) == {}


class NoPermission(StreamingBufferWarehouse):
    def delete_rows(self, table: str, where: str, params: Any = None) -> int:
        raise ConfigurationError("BigQuery DML: permission denied: bigquery.tables.updateData")


def test_a_permanent_failure_on_a_valid_request_is_not_acknowledged(
    function_client: Any, warehouse: DuckDBWarehouse
) -> None:
    """Shopify does not resend a privacy request: a valid one that fails is redelivered and then
    held on compliance-dlq, never acknowledged and lost."""
    load_history(warehouse)
    bootstrap.override(warehouse=NoPermission(warehouse, Clock(NOW)))
    response = post(
        function_client("compliance"), push_event(message("customers/redact", REDACT, "wh-fn-perm"))
    )
    assert response.status_code == 500
    (row,) = warehouse.query("SELECT status, detail FROM privacy_audit")
    assert row["status"] == "pending" and "permission denied" in row["detail"]
