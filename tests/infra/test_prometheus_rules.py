"""The Prometheus alert rules: promtool accepts them, their unit tests pass, every alert has a
firing and a quiet case, and every metric a rule reads is one shopml exports."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from typing import Any

import prometheus_client
import pytest
import yaml

from shared.monitoring.metrics import exposed_names, monitoring_metrics
from shared.serving.predict_app import Metrics
from tests.infra.hcl import REPO

PROMETHEUS_DIR = REPO / "infra" / "monitoring" / "prometheus"
RULES = PROMETHEUS_DIR / "shopml-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests.yml"

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
PROMQL_KEYWORDS |= {"bool", "offset", "inf", "nan"}


def promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None
    )
    if found is None:
        pytest.fail(
            "promtool is not installed: `make install` installs it (Debian package `prometheus`, "
            "through the Makefile's system-deps target); the alert rules cannot be checked without it"
        )
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
    )


@functools.cache
def alert_rules() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert len(alerts) == len(rules), "every rule in shopml-rules.yml is an alert (no recording rules)"
    return alerts


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label matchers, ranges, grouping
    clauses, function calls and keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group().lower() in PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def exported_metric_names() -> frozenset[str]:
    monitoring = exposed_names(monitoring_metrics(prometheus_client.CollectorRegistry()).registry)
    return monitoring | exposed_names(Metrics().registry)


def test_promtool_accepts_the_rules() -> None:
    result = run_promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == set(alert_rules()), f"alerts without a firing case: {set(alert_rules()) - firing}"
    assert quiet == set(alert_rules()), f"alerts without a quiet case: {set(alert_rules()) - quiet}"


def test_every_metric_a_rule_reads_is_exported() -> None:
    exported = exported_metric_names()
    for name, rule in alert_rules().items():
        used = metric_names(rule["expr"])
        assert used, f"{name}: found no metric in {rule['expr']!r}"
        unknown = used - exported
        assert not unknown, (
            f"{name} reads {sorted(unknown)}, which neither shared/monitoring/metrics.py nor "
            "predict's Metrics (shared/serving/predict_app.py) exports"
        )


def test_the_metric_name_finder_sees_what_a_rule_reads() -> None:
    # The check above is only as good as this parser: it must find each name once, and no label,
    # function or keyword.
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(predict_latency_seconds_bucket{job="x"}[5m]))) > 0.1 '
        "and on (model) time() - max without (feature) (shopml_drift_check_timestamp_seconds) > 10"
    )
    assert metric_names(expr) == {"predict_latency_seconds_bucket", "shopml_drift_check_timestamp_seconds"}
    assert "not_exported_total" in metric_names("sum(rate(not_exported_total[5m])) > 1")


def test_every_alert_says_how_bad_and_what_happened() -> None:
    for name, rule in alert_rules().items():
        assert name.startswith("Shopml"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_make_install_provides_promtool() -> None:
    makefile = (REPO / "Makefile").read_text()
    system_deps = makefile.split("\nsystem-deps:", 1)[1].split("\n\n", 1)[0]
    assert 'command -v promtool >/dev/null || missing="$$missing prometheus"' in system_deps
    assert re.search(r"^install: .*\bsystem-deps\b", makefile, re.MULTILINE)
