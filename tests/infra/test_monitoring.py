"""The Cloud Monitoring alert policies (infra/modules/monitoring) against the Prometheus rules
(infra/monitoring/prometheus/shopml-rules.yml): the same alerts, thresholds, durations and
severities, the PromQL conditions with the rules' expressions verbatim, and the wiring from the
root (threshold variables, dead-letter subscriptions, notification channels)."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.infra.hcl import (
    REPO,
    TOPOLOGY,
    Expr,
    compact,
    module_dir,
    named_blocks,
    resource,
    single,
    terraform_binary,
)

MONITORING = module_dir("monitoring")
RULES = REPO / "infra" / "monitoring" / "prometheus" / "shopml-rules.yml"
# Root variable behind each field of the module's `thresholds`.
THRESHOLD_VARIABLES = {
    "predict_p99_seconds": "alert_predict_p99_seconds",
    "predict_error_share": "alert_predict_error_share",
    "fallback_share": "alert_fallback_share",
    "dead_letter_messages": "alert_dead_letter_messages",
    "accuracy_error_ratio": "alert_accuracy_error_ratio",
    "accuracy_floor": "alert_accuracy_floor",
    "drift_check_max_age_seconds": "alert_drift_check_max_age_seconds",
}
# Cloud Monitoring's unit over the rule's, for thresholds on Cloud Monitoring's own metrics.
UNIT_SCALE = {"ShopmlPredictLatencyP99": 1000.0}  # request_latencies is in ms, the rule in seconds
DEAD_LETTER_HOLDS = sorted(
    f"{sub['dead_letter_topic']}-hold"
    for sub in {s["dead_letter_topic"]: s for s in TOPOLOGY["subscriptions"].values()}.values()
)


@functools.cache
def rules() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


def rule_threshold(expr: str) -> tuple[str, float]:
    """The comparison an alert expression ends with: (">" or "<", number)."""
    match = re.search(r"([<>])\s*([0-9.eE+-]+)\s*$", expr)
    assert match, f"expected the expression to end in a comparison with a number: {expr!r}"
    return match.group(1), float(match.group(2))


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, duration
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def root_threshold_defaults() -> dict[str, float]:
    variables = named_blocks(REPO, "variable")
    return {field: float(variables[name]["default"]) for field, name in THRESHOLD_VARIABLES.items()}


@functools.cache
def alert_definitions() -> dict[str, Any]:
    """The module's alerts.tf evaluated by terraform with the root's default thresholds and the
    hold subscriptions the root derives from module.pubsub's IDs."""
    dead_letter_expr = named_blocks(REPO, "module")["monitoring"]["dead_letter_subscriptions"].replace(
        "module.pubsub.dead_letter_hold_subscription_ids", "local.hold_ids"
    )
    hold_ids = {
        name.removesuffix("-hold"): f"projects/shopml-test/subscriptions/{name}" for name in DEAD_LETTER_HOLDS
    }
    thresholds = root_threshold_defaults()
    config = f"""
locals {{
  thresholds = {json.dumps(thresholds)}
  hold_ids   = {json.dumps(hold_ids)}
  dead_letter_subscriptions = {dead_letter_expr}
  result = {{
    threshold = local.threshold_alerts
    promql    = local.promql_alerts
    dead_letter_subscriptions = local.dead_letter_subscriptions
  }}
}}
"""
    # alerts.tf reads var.*: the module's variables, given the values the root passes.
    variables = (MONITORING / "variables.tf").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "alerts.tf").write_text((MONITORING / "alerts.tf").read_text())
        Path(tmp, "variables.tf").write_text(variables)
        Path(tmp, "test.tf").write_text(config)
        run = functools.partial(subprocess.run, cwd=tmp, capture_output=True, text=True, timeout=120)
        init = run([terraform_binary(), "init", "-input=false", "-backend=false"])
        assert init.returncode == 0, init.stdout + init.stderr
        tfvars = {
            "project_id": "shopml-test",
            "thresholds": thresholds,
            # What the root passes: the names derived from the IDs (checked below).
            "dead_letter_subscriptions": DEAD_LETTER_HOLDS,
        }
        Path(tmp, "test.tfvars.json").write_text(json.dumps(tfvars))
        console = run(
            [terraform_binary(), "console", "-var-file=test.tfvars.json"], input="jsonencode(local.result)\n"
        )
        assert console.returncode == 0, console.stdout + console.stderr
    decoded: dict[str, Any] = json.loads(json.loads(console.stdout.strip()))
    return decoded


def test_every_rule_is_a_policy_and_every_policy_a_rule() -> None:
    definitions = alert_definitions()
    policies = set(definitions["threshold"]) | set(definitions["promql"])
    assert not set(definitions["threshold"]) & set(definitions["promql"])
    assert policies == set(rules()), (
        f"only in the rules: {set(rules()) - policies}; only in Terraform: {policies - set(rules())}"
    )


def test_promql_policies_use_the_rules_expressions_verbatim() -> None:
    for name, policy in alert_definitions()["promql"].items():
        rule = rules()[name]
        assert policy["query"] == rule["expr"], name
        assert seconds(policy["duration"]) == seconds(rule.get("for", "0s")), name


def test_threshold_policies_have_the_rules_thresholds_and_durations() -> None:
    for name, policy in alert_definitions()["threshold"].items():
        rule = rules()[name]
        comparison, threshold = rule_threshold(rule["expr"])
        assert comparison == ">", f"{name}: the threshold policies compare with COMPARISON_GT"
        assert policy["threshold_value"] == threshold * UNIT_SCALE.get(name, 1.0), name
        assert seconds(policy["duration"]) == seconds(rule.get("for", "0s")), name
        # Aligned over the rule's rate window; a gauge without one, per minute.
        window = re.search(r"\[(\d+[smh])\]", rule["expr"])
        assert seconds(policy["alignment_period"]) == (seconds(window.group(1)) if window else 60), name


def test_severities_match() -> None:
    definitions = alert_definitions()
    for name, policy in {**definitions["threshold"], **definitions["promql"]}.items():
        assert policy["severity"] == rules()[name]["labels"]["severity"].upper(), name


def test_each_threshold_variable_defaults_to_its_rules_threshold() -> None:
    # The variable descriptions name their alert; that alert's rule carries the same number.
    variables = named_blocks(REPO, "variable")
    for field, name in THRESHOLD_VARIABLES.items():
        alert = re.match(r"Alert (Shopml\w+):", variables[name]["description"])
        assert alert, f"{name}'s description starts with the alert it sets"
        _, threshold = rule_threshold(rules()[alert.group(1)]["expr"])
        assert float(variables[name]["default"]) == threshold, (name, field)


def test_the_root_passes_each_threshold_variable_to_its_field() -> None:
    call = named_blocks(REPO, "module")["monitoring"]
    assert call["source"] == "./infra/modules/monitoring"
    assert call["thresholds"] == {field: f"var.{name}" for field, name in THRESHOLD_VARIABLES.items()}
    module_type = compact(named_blocks(MONITORING, "variable")["thresholds"]["type"])
    for field in THRESHOLD_VARIABLES:
        assert f"{field}=number" in module_type, field


def test_dead_letter_alert_watches_every_hold_subscription() -> None:
    definitions = alert_definitions()
    # The root turns module.pubsub's hold subscription IDs into names.
    assert sorted(definitions["dead_letter_subscriptions"]) == DEAD_LETTER_HOLDS
    policy = definitions["threshold"]["ShopmlDeadLetterBacklog"]
    assert "pubsub.googleapis.com/subscription/num_undelivered_messages" in policy["filter"]
    listed = re.search(r"one_of\(([^)]*)\)", policy["filter"])
    assert listed and sorted(json.loads(f"[{listed.group(1)}]")) == DEAD_LETTER_HOLDS
    pubsub_hold = resource(module_dir("pubsub"), "google_pubsub_subscription", "dead_letter_hold")
    assert pubsub_hold["name"] == "${each.key}-hold"


def test_predict_policies_read_cloud_runs_metrics_of_the_predict_service() -> None:
    threshold = alert_definitions()["threshold"]
    latency, errors = threshold["ShopmlPredictLatencyP99"], threshold["ShopmlPredictErrorRate"]
    for policy in (latency, errors):
        assert 'resource.label.service_name = "predict"' in policy["filter"]
    assert 'metric.type = "run.googleapis.com/request_latencies"' in latency["filter"]
    assert latency["aligner"] == "ALIGN_PERCENTILE_99"
    # A ratio: 5xx answers over all answers, summed over revisions alike.
    assert 'metric.label.response_code_class = "5xx"' in errors["filter"]
    assert "response_code_class" not in errors["denominator_filter"]
    assert (
        errors["filter"].replace(' AND metric.label.response_code_class = "5xx"', "")
        == errors["denominator_filter"]
    )
    assert named_blocks(REPO, "module")["monitoring"]["predict_service_name"] == "predict"
    assert "predict" in TOPOLOGY["functions"]


def test_policies_are_made_per_alert_name_and_notify_every_channel() -> None:
    for kind in ("threshold", "promql"):
        policy = resource(MONITORING, "google_monitoring_alert_policy", kind)
        assert policy["for_each"] == f"local.{kind}_alerts"
        assert policy["display_name"] == "each.key"
        assert policy["notification_channels"] == "local.notification_channels"
        assert policy["severity"] == "each.value.severity"
    promql = single(
        single(resource(MONITORING, "google_monitoring_alert_policy", "promql"), "conditions"),
        "condition_prometheus_query_language",
    )
    # The shopml_* series do not exist before the first push: the policy must be creatable anyway.
    assert promql["disable_metric_validation"] is True


def test_slack_and_email_channels_are_optional() -> None:
    variables = named_blocks(MONITORING, "variable")
    assert variables["slack_channel_name"]["default"] == ""
    assert variables["slack_auth_token"]["default"] is None
    assert variables["slack_auth_token"]["sensitive"] is True
    assert variables["email_addresses"]["default"] == []
    slack = resource(MONITORING, "google_monitoring_notification_channel", "slack")
    assert compact(slack["for_each"]) == compact(
        'var.slack_channel_name == "" ? toset([]) : toset([var.slack_channel_name])'
    )
    assert single(slack, "sensitive_labels")["auth_token"] == "var.slack_auth_token"
    email = resource(MONITORING, "google_monitoring_notification_channel", "email")
    assert email["for_each"] == "var.email_addresses"
    root = named_blocks(REPO, "variable")
    assert root["alert_slack_auth_token"]["sensitive"] is True
    assert root["alert_slack_channel"]["default"] == ""


def test_monitoring_api_is_enabled() -> None:
    assert "monitoring.googleapis.com" in named_blocks(REPO, "variable")["activate_apis"]["default"]


def test_alert_definitions_read_no_resources() -> None:
    # alerts.tf is evaluated on its own above: it may read variables and its own locals only.
    text = (MONITORING / "alerts.tf").read_text()
    assert not re.search(r"\b(?:google_\w+|module|data)\.\w+", text)
    assert isinstance(named_blocks(MONITORING, "variable")["thresholds"]["type"], Expr)
