"""shopml connect: planning subscriptions, applying them to the stand-in idempotently, the
app toml's [webhooks] section, and Shopify's own Pub/Sub messages mapped to our attributes."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devkit.app_toml import replace_section, webhooks_section, write_webhooks_section
from devkit.cli import main as shopml
from devkit.connect import connect, existing_subscriptions
from devkit.shopify_standin import StandIn
from shared.adapters.object_stores import LocalObjectStore
from shared.adapters.shopify_admin import ShopifyAdmin
from shared.settings import COMPLIANCE_TOPICS, STORE_TOPICS, get_settings
from shared.storesync.pubsub_delivery import is_privacy_topic, our_attributes
from shared.storesync.state import SyncState
from shared.storesync.subscriptions import (
    Delivery,
    Existing,
    plan_subscriptions,
    shop_topics,
    topic_enum,
    topic_name,
)
from shared.validation import plan_load
from tests.standin import SHOP, TOKEN, simulated_stand_in

INGEST = "https://ingest-abc-ew.a.run.app/"
PUBSUB = "pubsub://shopml-prod:shopify-events"
HTTPS = Delivery("https", INGEST, PUBSUB)
VIA_PUBSUB = Delivery("pubsub", INGEST, PUBSUB)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server, _ = simulated_stand_in(n_variants=2, days=2)
    yield server
    server.stop()


def test_topic_names_round_trip() -> None:
    for topic in STORE_TOPICS:
        assert topic_name(topic_enum(topic)) == topic
    assert topic_enum("inventory_levels/update") == "INVENTORY_LEVELS_UPDATE"


def test_plan_creates_what_is_missing_and_keeps_what_is_right() -> None:
    topics = ["orders/create", "orders/updated"]
    changes = plan_subscriptions([], topics, HTTPS)
    assert [(c.action, c.topic, c.uri) for c in changes] == [("create", t, INGEST) for t in topics]
    existing = [Existing("gid://shopify/WebhookSubscription/1", "orders/create", INGEST)]
    actions = [c.action for c in plan_subscriptions(existing, topics, HTTPS)]
    assert actions == ["keep", "create"]


def test_plan_fixes_wrong_removes_stale_and_never_delivers_twice() -> None:
    existing = [
        Existing("1", "orders/create", "https://ingest-abc-ew.a.run.app/old-path"),  # ours, wrong path
        Existing("2", "orders/create", PUBSUB),  # the other delivery of the same topic
        Existing("3", "customers/create", INGEST),  # a topic no longer wanted
        Existing("4", "orders/updated", "https://partner.example/hook"),  # not ours
        Existing("5", "app/uninstalled", INGEST),  # the toml holds it now
    ]
    changes = {
        (c.action, c.id) for c in plan_subscriptions(existing, ["orders/create", "orders/updated"], HTTPS)
    }
    assert ("update", "1") in changes and ("delete", "2") in changes
    assert ("delete", "3") in changes and ("delete", "5") in changes
    assert ("foreign", "4") in changes and ("create", None) in changes  # orders/updated to us


def test_app_uninstalled_is_subscribed_in_the_toml_not_per_shop() -> None:
    assert "app/uninstalled" not in shop_topics(STORE_TOPICS)
    assert len(shop_topics(STORE_TOPICS)) == len(STORE_TOPICS) - 1


def test_delivery_addresses_are_checked() -> None:
    with pytest.raises(Exception, match="pubsub://"):
        Delivery("pubsub", INGEST, "")
    with pytest.raises(Exception, match="https"):
        Delivery("https", "ftp://x")
    assert HTTPS.owns("https://ingest-abc-ew.a.run.app/anything")
    assert HTTPS.owns("pubsub://shopml-prod:other-topic") and not HTTPS.owns("pubsub://someone:else")


def state_in(tmp_path: Path) -> SyncState:
    return SyncState(LocalObjectStore(tmp_path / "sync"))


def test_connect_is_idempotent_against_the_stand_in(standin: StandIn, tmp_path: Path) -> None:
    admin = ShopifyAdmin(SHOP, TOKEN, admin_url=standin.url)
    toml = tmp_path / "shopify.app.toml"
    toml.write_text('client_id = "abc"\nname = "shopml"\n\n[access_scopes]\nscopes = "read_orders"\n')
    lines: list[str] = []
    first = connect(admin, HTTPS, STORE_TOPICS, COMPLIANCE_TOPICS, api_version="2025-10",
                    app_toml=toml, state=state_in(tmp_path), say=lines.append)  # fmt: skip
    assert first.changed and sum(c.action == "create" for c in first.changes) == len(STORE_TOPICS) - 1
    subs = {(s.topic, s.uri) for s in existing_subscriptions(admin)}
    assert subs == {(t, INGEST) for t in shop_topics(STORE_TOPICS)}
    before = {k: v.node() for k, v in standin.state.shops[SHOP].subscriptions.items()}
    toml_before = toml.read_text()
    lines.clear()
    second = connect(admin, HTTPS, STORE_TOPICS, COMPLIANCE_TOPICS, api_version="2025-10",
                     app_toml=toml, state=state_in(tmp_path), say=lines.append)  # fmt: skip
    assert not second.changed and lines[-1].endswith("nothing to change")
    assert {k: v.node() for k, v in standin.state.shops[SHOP].subscriptions.items()} == before
    assert toml.read_text() == toml_before
    parsed = tomllib.loads(toml_before)
    assert parsed["client_id"] == "abc" and parsed["access_scopes"]["scopes"] == "read_orders"
    assert parsed["webhooks"]["api_version"] == "2025-10"
    entries = parsed["webhooks"]["subscriptions"]
    assert {"topics": ["app/uninstalled"], "uri": INGEST} in entries
    assert {"compliance_topics": list(COMPLIANCE_TOPICS), "uri": INGEST} in entries


def test_switching_to_pubsub_moves_every_topic_once(standin: StandIn, tmp_path: Path) -> None:
    admin = ShopifyAdmin(SHOP, TOKEN, admin_url=standin.url)
    connect(admin, HTTPS, STORE_TOPICS, COMPLIANCE_TOPICS, api_version="2025-10", app_toml=None,
            state=None, say=lambda _: None)  # fmt: skip
    report = connect(admin, VIA_PUBSUB, STORE_TOPICS, COMPLIANCE_TOPICS, api_version="2025-10",
                     app_toml=None, state=None, say=lambda _: None)  # fmt: skip
    assert {c.action for c in report.changes} == {"update"}
    subs = existing_subscriptions(admin)
    assert sorted(s.topic for s in subs) == sorted(shop_topics(STORE_TOPICS))  # one per topic
    assert {s.uri for s in subs} == {PUBSUB}


def test_connect_clears_an_uninstalled_mark(standin: StandIn, tmp_path: Path) -> None:
    state = state_in(tmp_path)
    state.mark_uninstalled(SHOP, datetime(2024, 11, 2, tzinfo=UTC), "raw_events")
    assert state.uninstalled(SHOP)
    admin = ShopifyAdmin(SHOP, TOKEN, admin_url=standin.url)
    report = connect(admin, HTTPS, STORE_TOPICS, COMPLIANCE_TOPICS, api_version="2025-10", app_toml=None,
                     state=state, say=lambda _: None)  # fmt: skip
    assert report.reinstalled and state.uninstalled(SHOP) is None
    assert state.connected_shops() == [SHOP]


def test_shopml_connect_command(standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("SHOPML_SHOPIFY_ACCESS_TOKENS", f"{SHOP}={TOKEN}")
    monkeypatch.setenv("SHOPML_SHOPIFY_ADMIN_URL", standin.url)
    monkeypatch.setenv("SHOPML_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        args = ["connect", "--shop", SHOP, "--ingest-url", INGEST, "--app-toml", str(tmp_path / "app.toml")]
        assert shopml(args) == 0
        first = capsys.readouterr().out
        assert shopml(args) == 0
        second = capsys.readouterr().out
    finally:
        get_settings.cache_clear()
    created = [line for line in first.splitlines() if line.startswith("create ")]
    assert len(created) == len(STORE_TOPICS) - 1 and TOKEN not in first
    assert "nothing to change" in second and not any(
        line.startswith("create ") for line in second.splitlines()
    )


def test_toml_section_replacement_keeps_the_rest() -> None:
    original = (
        'name = "x"\n\n[webhooks]\napi_version = "2024-01"\n\n  [[webhooks.subscriptions]]\n'
        '  topics = ["a/b"]\n  uri = "https://old"\n\n[build]\ninclude = true\n'
    )
    section = webhooks_section("2025-10", INGEST, ["app/uninstalled"], COMPLIANCE_TOPICS)
    updated = tomllib.loads(replace_section(original, section))
    assert updated["name"] == "x" and updated["build"] == {"include": True}
    assert updated["webhooks"]["api_version"] == "2025-10"
    assert all(e["uri"] == INGEST for e in updated["webhooks"]["subscriptions"])


def test_toml_written_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "shopify.app.toml"
    assert write_webhooks_section(path, "2025-10", INGEST, [], COMPLIANCE_TOPICS)
    assert not write_webhooks_section(path, "2025-10", INGEST, [], COMPLIANCE_TOPICS)
    assert write_webhooks_section(path, "2026-01", INGEST, [], COMPLIANCE_TOPICS)


def shopify_pubsub_attributes(topic: str = "orders/create") -> dict[str, str]:
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "Shopml-Demo.myshopify.com",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-API-Version": "2025-07",
        "X-Shopify-Triggered-At": "2024-11-01T15:40:37.000Z",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Hmac-SHA256": "c2lnbmF0dXJl",
    }


def test_shopify_pubsub_attributes_are_mapped_to_ours() -> None:
    mapped = our_attributes(shopify_pubsub_attributes(), "2024-11-01T15:40:38+00:00")
    assert mapped == {
        "shopify_topic": "orders/create",
        "shop_domain": "shopml-demo.myshopify.com",
        "webhook_id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "api_version": "2025-07",
        "triggered_at": "2024-11-01T15:40:37.000Z",
        "event_id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "source": "pubsub",
        "received_at": "2024-11-01T15:40:38+00:00",
    }
    ours = {"shopify_topic": "orders/create", "shop_domain": SHOP, "webhook_id": "w", "source": "webhook"}
    assert our_attributes(ours) == ours
    lower = {k.lower(): v for k, v in shopify_pubsub_attributes("customers/redact").items()}
    assert is_privacy_topic(lower) and not is_privacy_topic(shopify_pubsub_attributes())


def test_a_message_shopify_published_loads_like_a_webhook() -> None:
    from devkit.simulator import StoreSimulator

    event = next(
        e for e in StoreSimulator(0, 2, days=3, shop_domain=SHOP).events() if e.topic == "orders/create"
    )
    attrs = {**shopify_pubsub_attributes(), "X-Shopify-Webhook-Id": event.webhook_id}
    plan = plan_load(
        attrs, event.body, "m-1", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    )
    assert plan.status == "loaded", plan.reasons
    assert plan.raw_row["source"] == "pubsub" and plan.raw_row["shop_domain"] == SHOP
    assert plan.rows_by_table["orders"][0]["id"] == event.payload()["id"]
