"""Pub/Sub: topics, push subscriptions with dead letters, retries and OIDC, publisher grants."""

from __future__ import annotations

from tests.infra.hcl import (
    REPO,
    TOPOLOGY,
    compact,
    iam_resources,
    locals_of,
    module_dir,
    resource,
    resources,
    single,
)


def test_functions_publish_only_to_the_topics_they_list() -> None:
    functions = module_dir("functions")
    grant = resource(functions, "google_pubsub_topic_iam_member", "publisher")
    assert grant["role"] == "roles/pubsub.publisher"
    assert grant["for_each"] == "local.publisher_grants"
    grants_expr = compact(locals_of(functions)["publisher_grants"])
    assert "fn.publishes" in grants_expr and "forname,fninvar.functions" in grants_expr
    assert compact(grant["topic"]) == "var.topic_ids[each.value.topic]"
    assert compact(grant["member"]) == "serviceAccount:${var.service_account_emails[each.value.function]}"
    # No other path to publishing: no other publisher grant anywhere.
    publishers = [
        (d, t, n)
        for d, t, n, body in iam_resources()
        if body.get("role") in {"roles/pubsub.publisher", "roles/pubsub.editor", "roles/pubsub.admin"}
    ]
    assert sorted((d.name, n) for d, _, n in publishers) == [
        ("functions", "publisher"),
        ("pubsub", "dead_letter_publisher"),
        (
            "storesync",
            "shopify_delivery",
        ),  # Shopify's Pub/Sub delivery, on shopify-events only (test_storesync)
        ("vertex", "trainer_publishes_model_events"),  # the trainer announces registered versions
    ]


def test_push_subscriptions_have_dead_letter_retry_and_oidc() -> None:
    pubsub = module_dir("pubsub")
    pushed = [
        (n, b) for t, n, b in resources(pubsub) if t == "google_pubsub_subscription" and "push_config" in b
    ]
    assert [n for n, _ in pushed] == ["push"]
    _, sub = pushed[0]
    assert sub["for_each"] == "var.subscriptions"
    assert compact(sub["ack_deadline_seconds"]) == "each.value.ack_deadline_seconds"
    dead_letter = single(sub, "dead_letter_policy")
    assert (
        compact(dead_letter["dead_letter_topic"])
        == "google_pubsub_topic.this[each.value.dead_letter_topic].id"
    )
    assert compact(dead_letter["max_delivery_attempts"]) == "each.value.max_delivery_attempts"
    retry = single(sub, "retry_policy")
    assert compact(retry["minimum_backoff"]) == "each.value.min_backoff"
    assert compact(retry["maximum_backoff"]) == "each.value.max_backoff"
    push = single(sub, "push_config")
    # functions-framework takes the CloudEvent source from projects/<p>/topics/<t> in the path.
    assert push["push_endpoint"] == (
        "${var.push_endpoints[each.value.push_to]}/projects/${var.project_id}/topics/${each.value.topic}"
    )
    oidc = single(push, "oidc_token")
    assert compact(oidc["service_account_email"]) == "var.push_service_account_email"
    assert compact(oidc["audience"]) == "var.push_endpoints[each.value.push_to]"
    assert single(sub, "expiration_policy")["ttl"] == ""
    # The subscriptions the root passes are topology.json's (those of deployed functions).
    assert "contains(local.enabled_functions,sub.push_to)" in compact(locals_of(REPO)["subscriptions"])


def test_topology_subscriptions_fit_pubsub_limits() -> None:
    for name, sub in TOPOLOGY["subscriptions"].items():
        assert 5 <= sub["max_delivery_attempts"] <= 100, name
        assert 10 <= sub["ack_deadline_seconds"] <= 600, name
        assert sub["dead_letter_topic"] in TOPOLOGY["topics"] and sub["dead_letter_topic"] != sub["topic"], (
            name
        )
        assert int(sub["min_backoff"].rstrip("s")) <= int(sub["max_backoff"].rstrip("s")) <= 600, name


def test_pubsub_service_agent_can_dead_letter() -> None:
    pubsub = module_dir("pubsub")
    agent = locals_of(pubsub)["pubsub_service_agent"]
    assert agent == "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    publisher = resource(pubsub, "google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert (publisher["for_each"], publisher["role"]) == ("var.dead_letter_topics", "roles/pubsub.publisher")
    assert publisher["member"] == "local.pubsub_service_agent"
    subscriber = resource(pubsub, "google_pubsub_subscription_iam_member", "dead_letter_subscriber")
    assert (subscriber["for_each"], subscriber["role"]) == ("var.subscriptions", "roles/pubsub.subscriber")
    assert subscriber["member"] == "local.pubsub_service_agent"
    assert compact(subscriber["subscription"]) == "google_pubsub_subscription.push[each.key].name"


def test_topics_keep_topology_retention() -> None:
    topic = resource(module_dir("pubsub"), "google_pubsub_topic", "this")
    assert topic["for_each"] == "var.topics"
    assert compact(topic["message_retention_duration"]) == "each.value.retention"
