"""The batching path's write decisions, with an in-memory warehouse."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from devkit.pull_loader import store_batch
from shared.errors import TransientError
from shared.validation import LoadPlan, plan_load
from tests.fakes import MemoryWarehouse
from tests.unit.test_loading import ORDER

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def plan(webhook_id: str, body: bytes = ORDER) -> LoadPlan:
    attributes = {"shopify_topic": "orders/create", "shop_domain": "demo-store.myshopify.com",
                  "webhook_id": webhook_id, "api_version": "2025-07"}  # fmt: skip
    return plan_load(attributes, body, f"m-{webhook_id}", None, NOW)


def test_a_batch_is_one_write() -> None:
    warehouse = MemoryWarehouse()
    outcomes = store_batch([plan(f"w{i}", json.dumps(dict(json.loads(ORDER), id=i + 1)).encode())
                            for i in range(50)], warehouse, NOW)  # fmt: skip
    assert warehouse.batches == 1
    assert all(isinstance(o, LoadPlan) and not o.rejected for o in outcomes)
    assert len(warehouse.tables["raw_events"]) == 50


def test_a_permanent_failure_is_isolated_and_quarantined() -> None:
    warehouse = MemoryWarehouse()
    warehouse.reject_table = "orders"
    inventory = b'{"inventory_item_id": 1, "location_id": 2, "available": 3, '
    inventory += b'"updated_at": "2025-03-01T10:00:00-05:00"}'
    attributes = {
        "shopify_topic": "inventory_levels/update",
        "shop_domain": "demo-store.myshopify.com",
        "webhook_id": "inv",
        "api_version": "2025-07",
    }
    good = plan_load(attributes, inventory, "m-inv", None, NOW)
    outcomes = store_batch([plan("order"), good], warehouse, NOW)
    assert isinstance(outcomes[0], LoadPlan) and outcomes[0].rejected
    assert outcomes[0].reasons[0].path == "(load)"
    assert isinstance(outcomes[1], LoadPlan) and not outcomes[1].rejected
    assert [r["webhook_id"] for r in warehouse.tables["rejected_events"]] == ["order"]
    assert "orders" not in warehouse.tables


def test_transient_and_unexpected_failures_keep_every_message() -> None:
    for failure in (TransientError("locked"), FileNotFoundError("no such directory")):
        warehouse = MemoryWarehouse()
        warehouse.fail_with = failure
        outcomes = store_batch([plan("a"), plan("b")], warehouse, NOW)
        assert all(isinstance(o, TransientError) for o in outcomes)
        assert warehouse.tables == {}


class FakeSubscriber:
    """Hands out one batch of messages; records acks and nacks."""

    def __init__(self, plans: list[tuple[str, bytes, dict[str, str]]]) -> None:
        from google.pubsub_v1 import types

        self.response = types.PullResponse(
            received_messages=[
                types.ReceivedMessage(
                    ack_id=f"ack-{i}",
                    message=types.PubsubMessage(data=data, attributes=attributes, message_id=message_id),
                )
                for i, (message_id, data, attributes) in enumerate(plans)
            ]
        )
        self.acked: list[str] = []

    def pull(self, **_: object) -> object:
        return self.response

    def acknowledge(self, subscription: str, ack_ids: list[str]) -> None:
        self.acked += ack_ids

    def modify_ack_deadline(self, **_: object) -> None:
        raise AssertionError("nothing should be nacked")

    def close(self) -> None:
        pass


def test_the_pull_loader_runs_the_post_load_hook_for_loaded_events_only() -> None:
    from devkit.pull_loader import PullLoader
    from shared.logs import get_logger
    from shared.settings import Settings

    attributes = {"shopify_topic": "orders/create", "shop_domain": "demo-store.myshopify.com",
                  "webhook_id": "w-good", "api_version": "2025-07"}  # fmt: skip
    messages = [("m1", ORDER, attributes), ("m2", b"{not json", {**attributes, "webhook_id": "w-bad"})]
    hooked: list[str] = []

    def hook(loaded: LoadPlan) -> None:
        hooked.append(loaded.raw_row["webhook_id"])
        raise RuntimeError("feature server down")  # must not turn the batch into a redelivery

    settings = Settings(pubsub_emulator_host="127.0.0.1:9")
    loader = PullLoader(settings, MemoryWarehouse, get_logger("test", "ERROR"), on_loaded=hook)
    loader.subscriber = FakeSubscriber(messages)
    stats = loader.run_once()
    assert (stats.loaded, stats.quarantined) == (1, 1)
    assert hooked == ["w-good"]  # the quarantined event is not pushed
    assert sorted(loader.subscriber.acked) == ["ack-0", "ack-1"]
    loader.close()
