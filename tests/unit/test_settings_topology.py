"""Settings from the environment, and the topology every part reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import ConfigurationError
from shared.settings import COMPLIANCE_TOPICS, Settings
from shared.topology import load_topology, parse_topology


def test_defaults_work_locally() -> None:
    settings = Settings.from_env({})
    assert settings.project == "shopml-local"
    assert settings.webhook_secrets == ()
    assert settings.warehouse_url.startswith("duckdb:///") and settings.warehouse_url.endswith(
        ".shopml/warehouse.duckdb"
    )
    assert settings.topic_path("shopify-events") == "projects/shopml-local/topics/shopify-events"


def test_environment_overrides_and_prefix() -> None:
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p1",
            "SHOPIFY_WEBHOOK_SECRETS": " a , b,,c ",
            "SHOPML_TOPIC_PREFIX": "dev-",
            "SHOPML_MAX_BODY_BYTES": "1000",
            "SHOPML_HOME": "/tmp/x",
        }
    )
    assert settings.webhook_secrets == ("a", "b", "c")
    assert settings.topic_path("compliance") == "projects/p1/topics/dev-compliance"
    assert settings.subscription_path("s") == "projects/p1/subscriptions/dev-s"
    assert settings.max_body_bytes == 1000
    assert settings.warehouse_url == "duckdb:////tmp/x/warehouse.duckdb"


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings.from_env({}).project = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SHOPML_MAX_BODY_BYTES", "lots", "not a whole number"),
        ("SHOPML_MAX_BODY_BYTES", "-1", "greater than zero"),
        ("SHOPML_PUBLISH_TIMEOUT_SECONDS", "soon", "not a number"),
        ("SHOPML_PUBLISH_TIMEOUT_SECONDS", "6", "below 5"),
        ("SHOPML_STORE_TOPICS", "orders/create,shop/redact", "privacy topics"),
        ("SHOPML_PUBLISH_LINGER_MS", "-1", "zero or more"),
        ("SHOPML_PUBLISH_SENDERS", "0", "greater than zero"),
        ("SHOPML_GATE_WAPE_GRAIN", "monthly", "choose weekly (default) or daily"),
        ("SHOPML_GATE_RMSE_MARGIN", "a bit", "not a number"),
    ],
)
def test_bad_settings_are_named(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)
    assert fragment in str(caught.value)


def test_topology_names_every_design_topic() -> None:
    topology = load_topology()
    for topic in (
        "shopify-events",
        "shopify-events-dlq",
        "compliance",
        "reconcile",
        "training-requests",
        "model-events",
        "predictions",
        "drift-checks",
        "rollback-requests",
    ):
        assert topic in topology.topics


def test_every_push_subscription_dead_letters() -> None:
    topology = load_topology()
    for sub in topology.subscriptions:
        assert sub.dead_letter_topic.endswith("dlq")
        assert sub.dead_letter_topic != sub.topic
        assert 5 <= sub.max_delivery_attempts <= 100  # Pub/Sub's allowed range
        assert 0 <= sub.min_backoff_seconds <= sub.max_backoff_seconds <= 600


def test_every_function_folder_is_in_the_topology(repo_root: Path) -> None:
    names = {f.name for f in load_topology().functions}
    folders = {p.parent.name for p in (repo_root / "functions").glob("*/main.py")}
    assert folders <= names
    assert "ingest_webhook" in folders


def test_privacy_topics_are_routed_by_the_webhook_function() -> None:
    spec = load_topology().function("ingest_webhook")
    assert "compliance" in spec.publishes and spec.public
    assert set(COMPLIANCE_TOPICS) == {"customers/data_request", "customers/redact", "shop/redact"}


def test_topology_rejects_dangling_references() -> None:
    raw = json.loads(Path("shared/topology.json").read_text())
    raw["subscriptions"]["x"] = {
        **raw["subscriptions"]["shopify-events-validate-load"],
        "dead_letter_topic": "nope",
    }
    with pytest.raises(ValueError, match="unknown topic 'nope'"):
        parse_topology(raw)


def test_publisher_choice_is_validated() -> None:
    assert Settings.from_env({}).publisher == "group_commit"
    assert Settings.from_env({"SHOPML_PUBLISHER": "client"}).publisher == "client"
    with pytest.raises(ConfigurationError, match="SHOPML_PUBLISHER"):
        Settings.from_env({"SHOPML_PUBLISHER": "kafka"})


def test_group_commit_tuning_settings() -> None:
    settings = Settings.from_env({"SHOPML_PUBLISH_LINGER_MS": "0", "SHOPML_PUBLISH_SENDERS": "1"})
    assert (settings.publish_linger_ms, settings.publish_senders) == (0.0, 1)
