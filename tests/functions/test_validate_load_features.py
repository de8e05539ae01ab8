"""validate_load through the HTTP layer with a feature server configured: pushes never fail a load."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from devkit.local.processes import free_port
from shared import bootstrap
from shared.settings import Settings
from tests.fakes import MemoryWarehouse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


def product_update_event(updated_at: datetime) -> CloudEvent:
    doc = json.loads((FIXTURES / "products_update.json").read_text())
    for variant in doc["variants"]:
        variant["updated_at"] = updated_at.isoformat()
    message = {
        "data": base64.b64encode(json.dumps(doc).encode()).decode(),
        "attributes": {
            "shopify_topic": "products/update",
            "shop_domain": "demo-store.myshopify.com",
            "webhook_id": "wh-features-1",
            "api_version": "2025-07",
            "source": "webhook",
        },
        "messageId": "m-1",
        "publishTime": updated_at.isoformat(),
    }
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/shopml-local/topics/shopify-events",
        },
        {"message": message},
    )


@pytest.fixture
def warehouse() -> Iterator[MemoryWarehouse]:
    memory = MemoryWarehouse()
    # Nothing listens on this port: every push attempt is refused.
    url = f"http://127.0.0.1:{free_port()}"
    bootstrap.override(
        settings=Settings.from_env({"SHOPML_FEATURE_SERVER_URL": url, "SHOPML_FEATURE_TIMEOUT_MS": "200"}),
        warehouse=memory,
    )
    yield memory
    bootstrap.reset()


def test_an_unreachable_feature_server_does_not_fail_the_load(
    function_client: Any, warehouse: MemoryWarehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    client = function_client("validate_load")
    headers, body = to_binary(product_update_event(datetime.now(UTC) - timedelta(minutes=1)))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200  # acked: no redelivery of an event that loaded
    assert len(warehouse.tables["variants"]) == 2
    log = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    failed = [e for e in log if e["message"].startswith("feature push failed")]
    assert failed and failed[0]["severity"] == "WARNING"
    assert failed[0]["error_type"] == "FeatureServerUnavailable"


def test_without_a_feature_server_nothing_is_pushed(
    function_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    memory = MemoryWarehouse()
    bootstrap.override(settings=Settings.from_env({}), warehouse=memory)
    try:
        client = function_client("validate_load")
        headers, body = to_binary(product_update_event(datetime.now(UTC)))
        assert client.post("/", headers=headers, data=body).status_code == 200
    finally:
        bootstrap.reset()
    out = capsys.readouterr().out
    assert '"status": "loaded"' in out
    assert "feature push" not in out and "state features" not in out
