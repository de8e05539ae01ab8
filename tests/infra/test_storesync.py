"""Store syncing in Terraform: reconcile deployed internal with its Scheduler job every 4 hours,
the per-shop access-token secrets read by reconcile only, the sync-state bucket, and Shopify's
Pub/Sub delivery grant (optional, on shopify-events only)."""

from __future__ import annotations

import re

from shared.adapters.shopify_admin import secret_id
from shared.settings import Settings
from shared.storesync.subscriptions import pubsub_uri
from tests.infra.hcl import (
    REPO,
    TOPOLOGY,
    compact,
    locals_of,
    module_dir,
    named_blocks,
    resource,
    resources,
    single,
)


def test_reconcile_is_an_internal_function_fed_by_its_topic() -> None:
    spec = TOPOLOGY["functions"]["reconcile"]
    assert spec["trigger"] == "pubsub" and spec["public"] is False
    assert spec["publishes"] == ["shopify-events"] and spec["warehouse"] == "read"
    assert (REPO / "functions" / "reconcile" / "main.py").is_file()
    sub = TOPOLOGY["subscriptions"]["reconcile-reconcile"]
    assert (sub["topic"], sub["push_to"]) == ("reconcile", "reconcile")
    assert sub["ack_deadline_seconds"] >= spec["timeout_seconds"]
    # Its queries run as BigQuery jobs: jobUser (the data stays the dataset's read grant).
    assert '"reconcile"' in compact(locals_of(REPO)["bigquery_job_users"])


def test_scheduler_asks_for_a_pass_every_four_hours() -> None:
    job = named_blocks(REPO, "module")["scheduler"]["jobs"]["shopml-reconcile"]
    assert job["topic_id"] == 'module.pubsub.topic_ids["reconcile"]'
    assert job["message"] == {}  # every connected shop
    assert (job["schedule"], job["paused"]) == ("var.reconcile_schedule", "var.reconcile_paused")
    variable = named_blocks(REPO, "variable")["reconcile_schedule"]
    assert variable["default"] == "0 */4 * * *" and variable.get("validation")


def test_each_shop_token_has_its_own_secret_read_by_reconcile_only() -> None:
    storesync = module_dir("storesync")
    secret = resource(storesync, "google_secret_manager_secret", "shop_token")
    assert secret["for_each"] == "local.token_secrets"
    token_secrets = compact(locals_of(storesync)["token_secrets"])
    assert '"shopify-token-${replace(shop,".","-")}"' in token_secrets
    grant = resource(storesync, "google_secret_manager_secret_iam_member", "token_reader")
    assert grant["role"] == "roles/secretmanager.secretAccessor" and grant["for_each"] == "local.token_grants"
    assert "secret_data" not in secret and not any(
        t == "google_secret_manager_secret_version" for t, _, _ in resources(storesync)
    ), "tokens are added with gcloud, never through Terraform"
    call = named_blocks(REPO, "module")["storesync"]
    assert compact(call["token_readers"]) == (
        "{fornameinlocal.token_readers:name=>module.iam.function_members[name]}"
    )
    assert compact(locals_of(REPO)["token_readers"]).startswith('[fornamein["reconcile"]')
    # The code finds the secret by the same name.
    env = compact(locals_of(REPO)["function_storesync_env"])
    assert 'SHOPML_SHOPIFY_TOKEN_SECRET="shopify-token-{shop}"' in env
    assert "SHOPML_SYNC_STATE=module.storesync.sync_state_url" in env
    assert (
        secret_id("shopify-token-{shop}", "My-Store.myshopify.com") == "shopify-token-my-store-myshopify-com"
    )
    shops = named_blocks(REPO, "variable")["shopify_shops"]
    assert shops["default"] == [] and shops.get("validation")


def test_sync_state_bucket_is_private_and_written_by_reconcile_only() -> None:
    storesync = module_dir("storesync")
    bucket = resource(storesync, "google_storage_bucket", "sync_state")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert single(bucket, "versioning")["enabled"] is True
    writer = resource(storesync, "google_storage_bucket_iam_member", "state_writers")
    assert writer["role"] == "roles/storage.objectUser" and writer["for_each"] == "var.state_writers"
    call = named_blocks(REPO, "module")["storesync"]
    assert (
        compact(call["state_writers"])
        == "{fornameinlocal.token_readers:name=>module.iam.function_members[name]}"
    )
    output = named_blocks(storesync, "output")["sync_state_url"]
    assert compact(output["value"]) == "gs://${google_storage_bucket.sync_state.name}/sync"
    Settings.from_env({"SHOPML_SYNC_STATE": "gs://p-shopml-sync/sync"})  # the code accepts it


def test_shopify_pubsub_delivery_is_optional_and_on_shopify_events_only() -> None:
    storesync = module_dir("storesync")
    grant = resource(storesync, "google_pubsub_topic_iam_member", "shopify_delivery")
    assert grant["role"] == "roles/pubsub.publisher"
    assert compact(grant["for_each"]).startswith("var.shopify_pubsub_delivery?toset([")
    assert grant["topic"] == "var.delivery_topic_id"
    variables = named_blocks(storesync, "variable")
    assert variables["shopify_delivery_service_account"]["default"] == (
        "delivery@shopify-pubsub-webhooks.iam.gserviceaccount.com"
    )
    root_variable = named_blocks(REPO, "variable")["shopify_pubsub_delivery"]
    assert root_variable["default"] is False
    call = named_blocks(REPO, "module")["storesync"]
    assert call["delivery_topic_id"] == 'module.pubsub.topic_ids["shopify-events"]'
    assert call["shopify_pubsub_delivery"] == "var.shopify_pubsub_delivery"
    # shopml connect --pubsub subscribes the same topic.
    assert re.fullmatch(r"pubsub://p1:shopify-events", pubsub_uri("p1", "shopify-events"))
