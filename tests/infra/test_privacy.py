"""Privacy requests in Terraform, held to the code: the compliance function is internal and fed
by a push subscription with a dead letter that outlasts BigQuery's streaming buffer, the export
bucket is private with a retention rule, and compliance gets exactly the grants its code uses."""

from __future__ import annotations

import re

from shared.adapters.pubsub_dead_letters import hold_subscriptions
from shared.privacy.redaction import EXPORTS_PREFIX
from shared.topology import load_topology
from tests.infra.hcl import (
    REPO,
    TOPOLOGY,
    compact,
    iam_resources,
    locals_of,
    module_dir,
    named_blocks,
    resource,
    single,
)

STREAMING_BUFFER_MINUTES = 90  # BigQuery: usually ~30 minutes, documented up to 90


def test_compliance_is_an_internal_pubsub_function_with_a_dead_letter() -> None:
    spec = TOPOLOGY["functions"]["compliance"]
    assert spec["trigger"] == "pubsub" and spec["public"] is False and spec["publishes"] == []
    assert spec["warehouse"] == "write"
    (sub,) = load_topology().subscriptions_for("compliance")
    assert sub.topic == "compliance" and sub.dead_letter_topic == "compliance-dlq"
    assert sub.ack_deadline_seconds >= spec["timeout_seconds"]
    assert (REPO / "functions" / "compliance" / "main.py").is_file()


def test_redelivery_outlasts_the_streaming_buffer() -> None:
    """A redaction that meets the streaming buffer is retried by Pub/Sub's backoff: the attempts
    before the dead letter must span the buffer's documented worst case."""
    (sub,) = load_topology().subscriptions_for("compliance")
    waited, backoff = 0, sub.min_backoff_seconds
    for _ in range(sub.max_delivery_attempts - 1):
        waited += backoff
        backoff = min(backoff * 2, sub.max_backoff_seconds)
    assert waited >= STREAMING_BUFFER_MINUTES * 60, f"only {waited / 60:.0f} minutes of retries"


def test_export_bucket_is_private_and_deletes_exports_after_the_retention() -> None:
    privacy = module_dir("privacy")
    bucket = resource(privacy, "google_storage_bucket", "exports")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["force_destroy"] is False
    assert "versioning" not in bucket  # a noncurrent version would outlive a redaction
    rule = single(bucket, "lifecycle_rule")
    assert single(rule, "action")["type"] == "Delete"
    assert compact(single(rule, "condition")["age"]) == "var.export_retention_days"
    call = named_blocks(REPO, "module")["privacy"]
    assert compact(call["export_retention_days"]) == "var.privacy_export_retention_days"
    variables = named_blocks(privacy, "variable")
    assert "validation" in variables["export_retention_days"]


def test_compliance_gets_exactly_the_grants_its_code_uses() -> None:
    grants = sorted((t, n, body["role"]) for d, t, n, body in iam_resources() if d == module_dir("privacy"))
    assert grants == [
        ("google_pubsub_subscription_iam_member", "dead_letter_purgers", "roles/pubsub.subscriber"),
        ("google_storage_bucket_iam_member", "exporters", "roles/storage.objectAdmin"),
    ]
    root = locals_of(REPO)
    assert re.findall(r'"([a-z_]+)"', compact(root["privacy_exporters"])) == ["compliance"]
    call = named_blocks(REPO, "module")["privacy"]
    assert "local.privacy_exporters" in compact(call["exporters"])
    assert compact(call["dead_letter_subscriptions"]) == "module.pubsub.dead_letter_hold_subscription_ids"
    # The PII hash key (customer id hashes, email/phone hashes) and jobUser for DML jobs.
    assert "compliance" in root["pii_key_readers"]
    assert "compliance" in compact(root["bigquery_job_users"])


def test_the_code_reads_the_setting_and_subscriptions_terraform_provides() -> None:
    root = locals_of(REPO)
    assert "SHOPML_PRIVACY_EXPORTS=module.privacy.exports_url" in compact(root["function_privacy_env"])
    assert "function_privacy_env" in compact(root["function_environment"])
    assert "SHOPML_PRIVACY_EXPORTS" in (REPO / "shared" / "settings.py").read_text()
    output = named_blocks(module_dir("privacy"), "output")["exports_url"]
    assert compact(output["value"]) == "gs://${google_storage_bucket.exports.name}"
    assert EXPORTS_PREFIX == "data-requests"
    # The hold subscriptions the code purges are the ones the pubsub module creates.
    hold = resource(module_dir("pubsub"), "google_pubsub_subscription", "dead_letter_hold")
    assert compact(hold["name"]) == "${each.key}-hold"
    dead_letter_topics = sorted({sub["dead_letter_topic"] for sub in TOPOLOGY["subscriptions"].values()})
    assert hold_subscriptions(load_topology()) == [f"{t}-hold" for t in dead_letter_topics]
