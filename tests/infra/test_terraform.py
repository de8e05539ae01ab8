"""shopml's Terraform held to its contract: formatted, checkov-clean, derived from
shared/topology.json, least-privilege, and deployed by a Cloud Build that tests first.

``terraform init/validate/plan`` cannot run on these machines (the google provider cannot be
downloaded), so besides ``terraform fmt`` and checkov these tests parse the HCL with
python-hcl2 and check what the configuration says, expression by expression.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2
import pytest
import yaml

from shared.webhooks import sign_webhook, verify_webhook_signature

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "infra" / "modules"
MODULES = tuple(sorted(p.name for p in MODULES_DIR.iterdir() if (p / "main.tf").is_file()))
CONFIG_DIRS = (REPO, *(MODULES_DIR / name for name in MODULES))
TOPOLOGY = json.loads((REPO / "shared" / "topology.json").read_text())
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
BUNDLE_SCRIPT = REPO / "infra" / "scripts" / "bundle_functions.sh"
SMOKE_SCRIPT = REPO / "infra" / "scripts" / "smoke_webhook.py"

# Project-wide grants allowed, each because nothing narrower exists: (module, resource) → role.
# Each carries a comment saying why it is unavoidable (checked below).
ALLOWED_PROJECT_GRANTS = {
    ("iam", "builder_writes_build_logs"): "roles/logging.logWriter",  # no log resource below the project
    ("vertex", "trainer_registers_models"): "roles/aiplatform.user",  # Vertex models: no resource IAM
    ("vertex", "trainer_runs_queries"): "roles/bigquery.jobUser",  # bigquery.jobs.create: project only
    ("vertex", "launcher_submits_jobs"): "roles/aiplatform.user",  # CustomJobs: no resource IAM
}
ALLOWED_PROJECT_ROLES = set(ALLOWED_PROJECT_GRANTS.values())
LABELLED_TYPES = {
    "google_pubsub_topic",
    "google_pubsub_subscription",
    "google_cloudfunctions2_function",
    "google_storage_bucket",
    "google_secret_manager_secret",
    "google_artifact_registry_repository",
    "google_bigquery_dataset",
    "google_bigquery_table",
}


# --- python-hcl2 8.x output, normalised --------------------------------------------------------
#
# hcl2.load (8.1.4) keeps the quotes of string literals and block labels ('"google_x"'),
# wraps every other expression as "${...}", returns each block as a list of dicts and marks
# blocks with "__is_block__". `normalise` turns literals into plain str, expressions into
# Expr (a str holding the bare expression) and drops the markers.


class Expr(str):
    """An HCL expression that is not a plain string literal (``var.x``, ``a ? b : c``...)."""


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {_unquote(key): normalise(item) for key, item in value.items() if key != "__is_block__"}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return Expr(value[2:-1])
        return _unquote(value)
    return value


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        parsed = normalise(hcl2.load(handle))
    assert isinstance(parsed, dict)
    return parsed


def tf_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.tf"))


def blocks(directory: Path, kind: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in tf_files(directory):
        for block in parse(path).get(kind, []):
            yield path, block


def resources(directory: Path, kind: str = "resource") -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource (or data source) declared in ``directory``."""
    found = []
    for _, block in blocks(directory, kind):
        for rtype, named in block.items():
            for name, body in named.items():
                found.append((rtype, name, body))
    return found


def all_resources(kind: str = "resource") -> list[tuple[Path, str, str, dict[str, Any]]]:
    return [(d, rtype, name, body) for d in CONFIG_DIRS for rtype, name, body in resources(d, kind)]


def resource(directory: Path, rtype: str, name: str) -> dict[str, Any]:
    for found_type, found_name, body in resources(directory):
        if (found_type, found_name) == (rtype, name):
            return body
    raise AssertionError(f"{directory.relative_to(REPO)} declares no {rtype}.{name}")


def named_blocks(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """variable / output / module blocks of ``directory`` by name."""
    found: dict[str, dict[str, Any]] = {}
    for _, block in blocks(directory, kind):
        found.update(block)
    return found


def locals_of(directory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for _, block in blocks(directory, "locals"):
        merged.update(block)
    return merged


def single(body: dict[str, Any], block_name: str) -> dict[str, Any]:
    found = body.get(block_name)
    assert isinstance(found, list) and len(found) == 1, (
        f"expected exactly one {block_name} block, got {found!r}"
    )
    return found[0]


def compact(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def module_dir(name: str) -> Path:
    return MODULES_DIR / name


# --- tools --------------------------------------------------------------------------------------


def terraform_binary() -> str:
    found = shutil.which("terraform") or (
        "/usr/local/bin/terraform" if os.access("/usr/local/bin/terraform", os.X_OK) else None
    )
    if found is None:
        pytest.fail("terraform is not installed (expected on PATH or at /usr/local/bin/terraform)")
    return found


def test_terraform_fmt_is_clean() -> None:
    result = subprocess.run(
        [terraform_binary(), "fmt", "-check", "-recursive", "-diff"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The machine points TF_CLI_CONFIG_FILE at a missing file: that warning goes to stderr.
    assert result.returncode == 0, (
        f"terraform fmt -check failed; run `terraform fmt -recursive`:\n{result.stdout}"
    )


def checkov_skip_comments() -> list[tuple[Path, str]]:
    found = []
    for directory in CONFIG_DIRS:
        for path in tf_files(directory):
            for line in path.read_text().splitlines():
                if "checkov:skip" in line:
                    found.append((path, line.strip()))
    return found


def test_checkov_passes_with_only_justified_skips() -> None:
    if not os.access(CHECKOV, os.X_OK):
        pytest.fail(
            f"{CHECKOV.relative_to(REPO)} is missing: run `make test`, which builds .venv-checkov first"
        )
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(REPO),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--compact",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", output)
    assert summary, f"checkov scanned no Terraform (no summary line):\n{output}"
    passed, failed, skipped = (int(n) for n in summary.groups())
    assert result.returncode == 0 and failed == 0, f"checkov found problems:\n{output}"
    assert passed > 0
    # Every skip comment must suppress a finding that exists: no stale, unexplained skips.
    assert skipped == len(checkov_skip_comments()), (
        f"checkov skipped {skipped} checks but the HCL has {len(checkov_skip_comments())} skip comments"
    )


def test_every_checkov_skip_gives_a_reason() -> None:
    skips = checkov_skip_comments()
    assert skips, "expected the documented checkov skips (CMEK, access logs, public ingress)"
    for path, line in skips:
        match = re.fullmatch(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+):(.+)", line)
        assert match, f"{path.relative_to(REPO)}: malformed skip {line!r} (want #checkov:skip=CKV_X_N:reason)"
        assert len(match.group(2).split()) >= 8, (
            f"{path.relative_to(REPO)}: {match.group(1)} needs a real reason"
        )


# --- the root is derived from shared/topology.json ---------------------------------------------


def test_root_reads_shared_topology_json() -> None:
    topology = locals_of(REPO)["topology"]
    assert compact(topology) == compact('jsondecode(file("${path.module}/shared/topology.json"))')
    calls = named_blocks(REPO, "module")
    assert calls["pubsub"]["topics"] == "local.topology.topics"
    assert compact(calls["pubsub"]["dead_letter_topics"]) == "local.dead_letter_topics"
    assert "local.topology.subscriptions" in locals_of(REPO)["subscriptions"]
    assert "local.topology.subscriptions" in locals_of(REPO)["dead_letter_topics"]
    assert calls["functions"]["functions"] == "local.functions"
    # Functions deploy once functions/<name>/main.py exists, with every setting from the file.
    implemented = compact(locals_of(REPO)["implemented_functions"])
    assert 'fileexists("${path.module}/functions/${name}/main.py")' in implemented
    functions = locals_of(REPO)["functions"]
    for setting in ("trigger", "public", "publishes", "memory", "cpu", "timeout_seconds", "concurrency"):
        assert f"local.topology.functions[name].{setting}" in functions, setting


def function_folders() -> list[str]:
    return sorted(
        p.name for p in (REPO / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def test_every_function_folder_is_in_topology() -> None:
    folders = function_folders()
    assert folders, "no function folders under functions/"
    unknown = sorted(set(folders) - set(TOPOLOGY["functions"]))
    assert not unknown, f"functions/ holds folders that shared/topology.json does not list: {unknown}"


def test_every_implemented_function_can_be_bundled() -> None:
    implemented = [
        name for name in TOPOLOGY["functions"] if (REPO / "functions" / name / "main.py").is_file()
    ]
    assert implemented, "no function is implemented yet"
    missing = [name for name in implemented if not (REPO / "functions" / name / "requirements.txt").is_file()]
    assert not missing, (
        f"Cloud Functions installs from functions/<name>/requirements.txt; missing for {missing}"
    )


def test_topology_public_functions_are_http_and_say_why() -> None:
    for name, spec in TOPOLOGY["functions"].items():
        if spec.get("public"):
            assert spec["trigger"] == "http", f"{name} is public but not an HTTP function"
            assert len(spec.get("public_reason", "").split()) >= 5, (
                f"{name} is public without a public_reason"
            )


# --- IAM ------------------------------------------------------------------------------------------


def iam_resources() -> list[tuple[Path, str, str, dict[str, Any]]]:
    return [r for r in all_resources() if re.search(r"_iam_(member|binding|policy)$", r[1])]


def test_no_owner_or_editor_and_project_roles_only_where_unavoidable() -> None:
    grants = iam_resources()
    assert len(grants) >= 8, (
        "expected the resource-level grants of the iam, pubsub, functions and secrets modules"
    )
    for directory, rtype, name, body in grants:
        where = f"{directory.relative_to(REPO) or '.'}: {rtype}.{name}"
        role = body.get("role", "")
        assert role not in {"roles/owner", "roles/editor"}, f"{where} grants {role}"
        assert not rtype.endswith("_policy"), (
            f"{where}: authoritative IAM policies would wipe Google's own grants"
        )
        if rtype.startswith("google_project_iam"):
            assert rtype == "google_project_iam_member", (
                f"{where}: project bindings are authoritative for the role"
            )
            assert ALLOWED_PROJECT_GRANTS.get((directory.name, name)) == role, (
                f"{where}: project-wide {role}; grant it on the resource instead"
            )
            assert role in ALLOWED_PROJECT_ROLES
            assert isinstance(role, str) and not isinstance(role, Expr), (
                f"{where}: project role must be a literal"
            )
    # The only IAM member ever given to anyone outside the project is allUsers -> run.invoker.
    for _, rtype, name, body in grants:
        if str(body.get("member", "")) in {"allUsers", "allAuthenticatedUsers"}:
            assert (rtype, body["role"]) == ("google_cloud_run_v2_service_iam_member", "roles/run.invoker"), (
                name
            )
            assert body["for_each"] == "local.public_functions"


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
        ("vertex", "trainer_publishes_model_events"),  # the trainer announces registered versions
    ]


def test_one_service_account_per_function() -> None:
    account = resource(module_dir("iam"), "google_service_account", "function")
    assert account["for_each"] == "var.function_names"
    assert compact(named_blocks(REPO, "module")["iam"]["function_names"]) == "toset(keys(local.functions))"
    function = resource(module_dir("functions"), "google_cloudfunctions2_function", "this")
    service = single(function, "service_config")
    assert compact(service["service_account_email"]) == "var.service_account_emails[each.key]"


def test_event_functions_are_internal_and_invoked_only_by_the_push_account() -> None:
    functions = module_dir("functions")
    function = resource(functions, "google_cloudfunctions2_function", "this")
    assert function["for_each"] == "var.functions"
    assert "event_trigger" not in function, (
        "push subscriptions are ours; an Eventarc trigger would add its own"
    )
    service = single(function, "service_config")
    assert compact(service["ingress_settings"]) == compact(
        'each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"'
    )
    assert "each.value.public_reason" in function["description"]
    local = locals_of(functions)
    assert 'fn.trigger=="pubsub"' in compact(local["pubsub_functions"])
    assert "iffn.public" in compact(local["public_functions"])
    invoker = resource(functions, "google_cloud_run_v2_service_iam_member", "push_invoker")
    assert invoker["for_each"] == "local.pubsub_functions"
    assert invoker["role"] == "roles/run.invoker"
    assert compact(invoker["member"]) == "serviceAccount:${var.invoker_service_account_email}"
    public = resource(functions, "google_cloud_run_v2_service_iam_member", "public_invoker")
    assert (public["for_each"], public["member"]) == ("local.public_functions", "allUsers")
    root_call = named_blocks(REPO, "module")["functions"]
    assert compact(root_call["invoker_service_account_email"]) == "module.iam.push_invoker_email"
    assert (
        compact(named_blocks(REPO, "module")["pubsub"]["push_service_account_email"])
        == "module.iam.push_invoker_email"
    )


def test_each_secret_is_readable_only_by_the_functions_that_need_it() -> None:
    accessors = [r for r in iam_resources() if r[1] == "google_secret_manager_secret_iam_member"]
    # The secrets module's one (for_each) grant, and the feature server's Redis AUTH (checked in
    # test_redis_requires_auth_and_tls_and_its_secret_is_the_servers_only).
    assert sorted((d.name, n) for d, _, n, _ in accessors) == [
        ("features", "server_reads_redis_auth"),
        ("secrets", "accessor"),
    ]
    _, _, _, grant = next(r for r in accessors if r[0].name == "secrets")
    assert grant["role"] == "roles/secretmanager.secretAccessor"
    root = locals_of(REPO)
    assert root["webhook_secret_readers"] == ["ingest_webhook"]
    assert root["webhook_secret_function"] == "ingest_webhook"
    assert root["pii_key_readers"] == ["validate_load", "compliance"]
    secrets_call = named_blocks(REPO, "module")["secrets"]
    specs = dict(secrets_call["secrets"].items())
    assert len(specs) == 2
    by_id = {("webhook" if "webhook_secret_id" in key else "pii"): spec for key, spec in specs.items()}
    assert compact(by_id["webhook"]["accessors"]).startswith(
        "{fornameinlocal.webhook_secret_readers:name=>module.iam.function_members[name]"
    )
    assert compact(by_id["pii"]["accessors"]).startswith(
        "{fornameinlocal.pii_key_readers:name=>module.iam.function_members[name]"
    )
    env_expr = compact(root["function_secret_env"])
    assert "SHOPIFY_WEBHOOK_SECRETS=local.webhook_secret_id" in env_expr
    assert "SHOPML_PII_HASH_KEY=local.pii_key_secret_id" in env_expr
    # Exposed to the function as SHOPIFY_WEBHOOK_SECRETS, resolved from Secret Manager.
    secret_env = named_blocks(REPO, "module")["functions"]["secret_environment_variables"]
    assert "local.function_secret_env" in secret_env and "module.secrets.secret_ids[secret]" in secret_env
    service = single(
        resource(module_dir("functions"), "google_cloudfunctions2_function", "this"), "service_config"
    )
    dynamic = service["dynamic"][0]["secret_environment_variables"]
    assert compact(dynamic["for_each"]) == "lookup(var.secret_environment_variables,each.key,{})"
    # Automatic replication; no plaintext secret value ever in the configuration or state.
    secret = resource(module_dir("secrets"), "google_secret_manager_secret", "this")
    assert "auto" in single(secret, "replication")
    version = resource(module_dir("secrets"), "google_secret_manager_secret_version", "write_only")
    assert "secret_data" not in version and "secret_data_wo" in version
    values = named_blocks(module_dir("secrets"), "variable")["secret_values_wo"]
    assert values.get("ephemeral") is True and values.get("sensitive") is True
    root_value = named_blocks(REPO, "variable")["webhook_secrets"]
    assert root_value.get("ephemeral") is True and root_value.get("default") is None


# --- Pub/Sub -------------------------------------------------------------------------------------


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


# --- functions --------------------------------------------------------------------------------------


def test_functions_run_python311_with_topology_sizing_and_cloud_settings() -> None:
    functions = module_dir("functions")
    function = resource(functions, "google_cloudfunctions2_function", "this")
    build = single(function, "build_config")
    assert build["runtime"] == "var.runtime" and build["entry_point"] == "each.key"
    assert named_blocks(functions, "variable")["runtime"]["default"] == "python311"
    service = single(function, "service_config")
    expected = {
        "available_memory": "each.value.memory",
        "available_cpu": "each.value.cpu",
        "timeout_seconds": "each.value.timeout_seconds",
        "min_instance_count": "each.value.min_instances",
        "max_instance_count": "each.value.max_instances",
        "max_instance_request_concurrency": "each.value.concurrency",
        "environment_variables": (
            "merge(local.runtime_environment,lookup(var.function_environment_variables,each.key,{}))"
        ),
    }
    assert {key: compact(service[key]) for key in expected} == expected
    env = compact(locals_of(functions)["runtime_environment"])
    assert "GOOGLE_CLOUD_PROJECT=var.project_id" in env
    assert 'SHOPML_WAREHOUSE="bigquery://${var.project_id}/${var.warehouse_dataset}"' in env
    assert 'SHOPML_TOPIC_PREFIX=""' in env


def test_function_source_is_named_by_content_hash() -> None:
    functions = module_dir("functions")
    archive = next(
        body for t, n, body in resources(functions, "data") if (t, n) == ("archive_file", "source")
    )
    assert archive["source_dir"] == "${var.bundle_dir}/${each.key}"
    obj = resource(functions, "google_storage_bucket_object", "source")
    assert obj["name"] == "${each.key}/${data.archive_file.source[each.key].output_md5}.zip"
    source = single(
        single(
            single(resource(functions, "google_cloudfunctions2_function", "this"), "build_config"), "source"
        ),
        "storage_source",
    )
    assert compact(source["object"]) == "google_storage_bucket_object.source[each.key].name"


def test_everything_is_labelled() -> None:
    labelled = [(d, t, n, b) for d, t, n, b in all_resources() if t in LABELLED_TYPES]
    assert len(labelled) >= 6
    for directory, rtype, name, body in labelled:
        assert "labels" in body, f"{directory.relative_to(REPO) or '.'}: {rtype}.{name} has no labels"
    labels = compact(locals_of(REPO)["labels"])
    assert 'app="shopml"' in labels and "environment=var.environment" in labels
    for call in named_blocks(REPO, "module").values():
        if "labels" in call:
            assert call["labels"] == "local.labels"


# --- module hygiene -----------------------------------------------------------------------------


def required_providers(directory: Path) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for _, block in blocks(directory, "terraform"):
        for providers in block.get("required_providers", []):
            found.update(providers)
    return found


def test_provider_versions_are_pinned_exactly_and_agree() -> None:
    root = required_providers(REPO)
    assert {"google", "archive"} <= set(root)
    for directory in CONFIG_DIRS:
        assert (directory / "versions.tf").is_file(), f"{directory} has no versions.tf"
        providers = required_providers(directory)
        assert providers, f"{directory} pins no providers"
        for name, spec in providers.items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", spec["version"]), (
                f"{directory}: {name} {spec['version']!r} is not exact"
            )
            assert spec["source"] == f"hashicorp/{name}"
            assert spec == root[name], (
                f"{directory}: {name} pinned to {spec['version']}, root to {root[name]['version']}"
            )
        if directory != REPO:
            assert not list(blocks(directory, "provider")), (
                f"{directory}: modules must not configure providers"
            )


def test_every_variable_has_type_and_description() -> None:
    count = 0
    for directory in CONFIG_DIRS:
        for name, body in named_blocks(directory, "variable").items():
            count += 1
            where = f"{directory.relative_to(REPO) or '.'}: variable {name}"
            assert body.get("type"), f"{where} has no type"
            assert len(str(body.get("description", "")).split()) >= 3, f"{where} has no real description"
    assert count >= 30


def test_every_output_is_described_and_modules_have_the_standard_files() -> None:
    for name in MODULES:
        for file in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (module_dir(name) / file).is_file(), f"infra/modules/{name}/{file} missing"
    for directory in CONFIG_DIRS:
        for name, body in named_blocks(directory, "output").items():
            assert body.get("description"), f"{directory}: output {name} has no description"
    calls = named_blocks(REPO, "module")
    assert {call["source"] for call in calls.values()} == {f"./infra/modules/{name}" for name in MODULES}


def test_collections_use_for_each_never_count() -> None:
    for directory in CONFIG_DIRS:
        for kind in ("resource", "data"):
            for rtype, name, body in resources(directory, kind):
                assert "count" not in body, (
                    f"{directory}: {rtype}.{name} uses count; key it by name with for_each"
                )
        for name, body in named_blocks(directory, "module").items():
            assert "count" not in body, f"module {name} uses count"
    keyed = [(t, n) for _, t, n, b in all_resources() if "for_each" in b]
    assert len(keyed) >= 15


# --- bundling and smoke test scripts ------------------------------------------------------------


def test_bundle_holds_the_function_and_shared_without_local_code(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for relative, text in {
        "functions/alpha/main.py": "def alpha(): ...\n",
        "functions/alpha/requirements.txt": "functions-framework==3.10.2\n",
        "functions/alpha/__pycache__/main.cpython-311.pyc": "x",
        "functions/notyet/README.md": "no main.py: not bundled\n",
        "shared/__init__.py": "",
        "shared/settings.py": "X = 1\n",
        "shared/topology.json": "{}\n",
        "shared/adapters/pubsub.py": "\n",
        "shared/local/__main__.py": "local stack\n",
        "shared/simulator/replay.py": "simulator\n",
        "shared/__pycache__/settings.cpython-311.pyc": "x",
    }.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    out = tmp_path / "out"
    result = subprocess.run(
        ["bash", str(BUNDLE_SCRIPT), str(repo), str(out)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "alpha/main.py",
        "alpha/requirements.txt",
        "alpha/shared/__init__.py",
        "alpha/shared/adapters/pubsub.py",
        "alpha/shared/settings.py",
        "alpha/shared/topology.json",
    ]
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in out.rglob("*") if p.is_file())

    (repo / "functions" / "alpha" / "requirements.txt").unlink()
    failed = subprocess.run(
        ["bash", str(BUNDLE_SCRIPT), str(repo), str(out)], capture_output=True, text=True, timeout=60
    )
    assert failed.returncode != 0 and "requirements.txt" in failed.stderr


def load_smoke_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_webhook", SMOKE_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_webhooks(verify: bool) -> ThreadingHTTPServer:
    """A stand-in for ingest_webhook: 401 unless the body is signed with "s1" (when verify)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = not verify or verify_webhook_signature(
                body, self.headers.get("X-Shopify-Hmac-Sha256"), ["s1"]
            )
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_smoke_script_signs_like_shopify_and_catches_a_webhook_that_does_not_verify() -> None:
    smoke = load_smoke_script()
    assert smoke.shopify_signature(b'{"id": 1}', "s1") == sign_webhook(b'{"id": 1}', "s1")
    verifying = serve_webhooks(verify=True)
    careless = serve_webhooks(verify=False)
    try:
        url = f"http://127.0.0.1:{verifying.server_port}/"
        assert smoke.run(url, "s1,s2", timeout=5) == []
        assert smoke.run(url, "wrong-secret", timeout=5), (
            "a signature under the wrong secret must fail the smoke test"
        )
        failures = smoke.run(f"http://127.0.0.1:{careless.server_port}/", "s1", timeout=5)
        assert len(failures) == 2 and all("expected 401" in f for f in failures)
        assert smoke.run(url, " , ", timeout=5) == [f"{smoke.SECRETS_ENV} holds no secret"]
    finally:
        verifying.shutdown()
        careless.shutdown()


# --- Cloud Build -----------------------------------------------------------------------------------


def test_cloud_build_tests_before_it_builds_or_deploys() -> None:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}
    assert len(steps) == len(build["steps"]), "step ids must be unique"
    for step_id, step in steps.items():
        assert "waitFor" in step, f"step {step_id} has no waitFor"
        for dep in step["waitFor"]:
            assert dep == "-" or dep in steps, f"step {step_id} waits for unknown step {dep}"

    def upstream(step_id: str) -> set[str]:
        deps = {d for d in steps[step_id]["waitFor"] if d != "-"}
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    for step_id in ("bundle", "tf-init", "tf-plan", "tf-apply", "smoke-test", "promote"):
        assert {"lint", "test"} <= upstream(step_id), f"{step_id} may run before lint and test passed"
    assert "tf-plan" in upstream("tf-apply") and "tf-apply" in upstream("smoke-test")
    assert "smoke-test" in upstream("promote")
    script = {step_id: " ".join(map(str, step.get("args", []))) for step_id, step in steps.items()}
    assert "make lint" in script["lint"] and "make test" in script["test"]
    assert "bundle_functions.sh" in script["bundle"]
    assert "fmt -check -recursive" in script["tf-fmt"]
    assert "apply" in script["tf-apply"] and "/workspace/tfplan" in script["tf-apply"]
    assert "smoke_webhook.py" in script["smoke-test"]
    for name in ("_REGION", "_ENV", "_TF_STATE_BUCKET"):
        assert name in build["substitutions"], name


# --- warehouse (BigQuery) ------------------------------------------------------------------------


def test_bigquery_tables_come_from_the_schema_files_the_code_reads() -> None:
    root_locals = locals_of(REPO)
    tables_expr = compact(root_locals["warehouse_tables"])
    assert 'fileset("${path.module}/shared/schemas/tables","*.json")' in tables_expr
    assert "jsondecode(file(" in tables_expr
    table = resource(module_dir("bigquery"), "google_bigquery_table", "this")
    assert table["for_each"] == "var.tables"
    assert compact(table["schema"]) == "jsonencode(each.value.schema)"
    assert "time_partitioning" in table["dynamic"][0]
    call = named_blocks(REPO, "module")["bigquery"]
    assert "local.warehouse_tables" in compact(call["tables"])
    assert (REPO / "shared" / "schemas" / "tables" / "raw_events.json").is_file()


def test_bigquery_access_is_granted_on_the_dataset_from_topology() -> None:
    bigquery = module_dir("bigquery")
    writer = resource(bigquery, "google_bigquery_dataset_iam_member", "writer")
    reader = resource(bigquery, "google_bigquery_dataset_iam_member", "reader")
    assert (writer["role"], reader["role"]) == ("roles/bigquery.dataEditor", "roles/bigquery.dataViewer")
    access_expr = compact(locals_of(REPO)["warehouse_access"])
    assert "local.topology.functions[name].warehouse" in access_expr
    call = named_blocks(REPO, "module")["bigquery"]
    assert 'access=="write"' in compact(call["writers"]) and 'access=="read"' in compact(call["readers"])
    # No project-wide BigQuery role but the trainer's jobUser (a query is a project-level job;
    # what it may read is the dataset grant).
    assert [
        (d.name, n, body["role"])
        for d, t, n, body in iam_resources()
        if t.startswith("google_project_iam") and str(body.get("role", "")).startswith("roles/bigquery")
    ] == [("vertex", "trainer_runs_queries", "roles/bigquery.jobUser")]
    # The webhook path never touches the warehouse.
    assert "warehouse" not in TOPOLOGY["functions"]["ingest_webhook"]
    assert TOPOLOGY["functions"]["validate_load"]["warehouse"] == "write"


# --- training: Vertex AI, the trainer image, the nightly schedule ---------------------------------


def preceding_comment(path: Path, header: str) -> str:
    """The comment lines right above ``header`` (a resource's first line) in ``path``."""
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(header))
    comment: list[str] = []
    for line in reversed(lines[:index]):
        if not line.startswith("#"):
            break
        comment.insert(0, line)
    return " ".join(comment)


def test_every_project_level_grant_says_why_it_is_unavoidable() -> None:
    found = {
        (d.name if d != REPO else ".", n)
        for d, t, n, _ in iam_resources()
        if t.startswith("google_project_iam")
    }
    assert found == set(ALLOWED_PROJECT_GRANTS)
    for module, name in ALLOWED_PROJECT_GRANTS:
        comment = preceding_comment(
            module_dir(module) / "main.tf", f'resource "google_project_iam_member" "{name}"'
        )
        assert "unavoidable" in comment.lower(), f"{module}: {name} does not say why it is project-wide"


def test_trainer_account_holds_only_resource_grants_besides_the_justified_ones() -> None:
    vertex = module_dir("vertex")
    assert locals_of(vertex)["trainer_member"] == "serviceAccount:${google_service_account.trainer.email}"
    trainer_grants = {
        (t, n, body["role"])
        for _, t, n, body in iam_resources()
        if body.get("member") == "local.trainer_member"
    }
    assert trainer_grants == {
        ("google_storage_bucket_iam_member", "trainer_writes_artifacts", "roles/storage.objectAdmin"),
        ("google_pubsub_topic_iam_member", "trainer_publishes_model_events", "roles/pubsub.publisher"),
        ("google_project_iam_member", "trainer_registers_models", "roles/aiplatform.user"),
        ("google_project_iam_member", "trainer_runs_queries", "roles/bigquery.jobUser"),
    }
    bucket_grant = resource(vertex, "google_storage_bucket_iam_member", "trainer_writes_artifacts")
    assert compact(bucket_grant["bucket"]) == "google_storage_bucket.vertex.name"
    # The model-events topic from the topology, nothing else.
    assert "model-events" in TOPOLOGY["topics"]
    call = named_blocks(REPO, "module")["vertex"]
    assert compact(call["model_events_topic_id"]) == 'module.pubsub.topic_ids["model-events"]'
    # Dataset read through the bigquery module, like a function with "warehouse": "read".
    assert "shopml_trainer=module.vertex.trainer_member" in compact(
        named_blocks(REPO, "module")["bigquery"]["readers"]
    )


def test_only_trigger_training_may_start_jobs_as_the_trainer() -> None:
    vertex = module_dir("vertex")
    acts_as = resource(vertex, "google_service_account_iam_member", "launcher_acts_as_trainer")
    assert (acts_as["role"], acts_as["for_each"]) == ("roles/iam.serviceAccountUser", "var.launchers")
    assert compact(acts_as["service_account_id"]) == "google_service_account.trainer.name"
    submits = resource(vertex, "google_project_iam_member", "launcher_submits_jobs")
    assert (submits["role"], submits["for_each"]) == ("roles/aiplatform.user", "var.launchers")
    launchers = compact(locals_of(REPO)["training_launchers"])
    assert launchers.startswith('[fornamein["trigger_training"]')
    assert compact(named_blocks(REPO, "module")["vertex"]["launchers"]) == (
        "{fornameinlocal.training_launchers:name=>module.iam.function_emails[name]}"
    )
    # Nobody else acts as the trainer.
    trainer_users = [
        n
        for _, t, n, body in iam_resources()
        if t == "google_service_account_iam_member"
        and "google_service_account.trainer" in compact(str(body.get("service_account_id", "")))
    ]
    assert trainer_users == ["launcher_acts_as_trainer"]


def test_vertex_bucket_is_private_versioned_and_uniform() -> None:
    bucket = resource(module_dir("vertex"), "google_storage_bucket", "vertex")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert single(bucket, "versioning")["enabled"] is True
    assert bucket["force_destroy"] is False
    repo = resource(module_dir("vertex"), "google_artifact_registry_repository", "trainer")
    assert repo["format"] == "DOCKER"


def test_scheduler_publishes_nightly_to_the_training_requests_topic() -> None:
    assert "training-requests" in TOPOLOGY["topics"]
    assert any(
        sub["topic"] == "training-requests" and sub["push_to"] == "trigger_training"
        for sub in TOPOLOGY["subscriptions"].values()
    )
    jobs = named_blocks(REPO, "module")["scheduler"]["jobs"]
    assert list(jobs) == ["shopml-nightly-training"]
    job = jobs["shopml-nightly-training"]
    assert job["topic_id"] == 'module.pubsub.topic_ids["training-requests"]'
    assert (job["schedule"], job["time_zone"]) == ("var.training_schedule", "var.training_time_zone")
    # The message parses as a training request (the night comes from the publish time).
    assert set(job["message"]) <= {"night", "model", "history_days"}
    scheduler = resource(module_dir("scheduler"), "google_cloud_scheduler_job", "this")
    assert scheduler["for_each"] == "var.jobs"
    target = single(scheduler, "pubsub_target")
    assert target["topic_name"] == "each.value.topic_id"
    assert compact(target["data"]) == "base64encode(jsonencode(each.value.message))"
    variables = named_blocks(REPO, "variable")
    for name in ("training_schedule", "training_time_zone"):
        assert variables[name].get("validation"), f"{name} has no validation"
    assert named_blocks(module_dir("scheduler"), "variable")["jobs"].get("validation")


def test_training_apis_are_enabled() -> None:
    apis = named_blocks(REPO, "variable")["activate_apis"]["default"]
    assert {
        "aiplatform.googleapis.com",
        "cloudscheduler.googleapis.com",
        "artifactregistry.googleapis.com",
    } <= set(apis)


def test_functions_get_the_training_settings_the_code_reads() -> None:
    settings_source = (REPO / "shared" / "settings.py").read_text()
    environment = locals_of(REPO)["model_environment"]
    # Every variable Terraform sets is one the code reads...
    for name in environment:
        assert f'"{name}"' in settings_source, (
            f"{name} is set by Terraform but shared/settings.py never reads it"
        )
    # ...and every setting the Vertex backend and registry need is set.
    needed = {
        "SHOPML_TRAINING_BACKEND",
        "SHOPML_REGISTRY",
        "SHOPML_TRAINER_IMAGE",
        "SHOPML_TRAINER_SERVICE_ACCOUNT",
        "SHOPML_VERTEX_STAGING_BUCKET",
        "SHOPML_VERTEX_REGION",
        "SHOPML_MODEL_NAME",
    }
    assert needed <= set(environment)
    assert environment["SHOPML_TRAINING_BACKEND"] == "vertex"
    assert environment["SHOPML_REGISTRY"] == "vertex://${var.project_id}/${local.vertex_region}"
    assert environment["SHOPML_TRAINER_SERVICE_ACCOUNT"] == "module.vertex.trainer_email"
    assert environment["SHOPML_VERTEX_STAGING_BUCKET"] == "module.vertex.bucket_url"
    extra = compact(named_blocks(REPO, "module")["functions"]["extra_environment_variables"])
    assert extra.startswith("merge(local.model_environment,")
    # The CustomJob passes the trainer the same names (shared/adapters/training_backends.py).
    from shared.adapters.training_backends import trainer_environment
    from shared.ports import TrainingRequest
    from shared.settings import Settings

    request = TrainingRequest("demand", date(2025, 3, 2), date(2025, 3, 1), date(2025, 3, 1))
    job_env = trainer_environment(Settings.from_env({"SHOPML_REGISTRY": "vertex://p/europe-west1"}), request)
    for name in job_env:
        assert name == "GOOGLE_CLOUD_PROJECT" or f'"{name}"' in settings_source, name


def test_trainer_image_is_built_and_pushed_after_tests_and_before_the_plan() -> None:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}

    def upstream(step_id: str) -> set[str]:
        deps = {d for d in steps[step_id]["waitFor"] if d != "-"}
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    assert {"lint", "test", "trainer-repository"} <= upstream("trainer-image")
    assert "trainer-image" in upstream("tf-plan") and "trainer-image" in upstream("tf-apply")
    script = " ".join(map(str, steps["trainer-image"]["args"]))
    assert "docker build -f infra/trainer/Dockerfile" in script and "docker push" in script
    assert "TF_VAR_trainer_image" in " ".join(map(str, steps["tf-plan"]["args"]))
    assert "module.vertex.google_artifact_registry_repository.trainer" in " ".join(
        map(str, steps["trainer-repository"]["args"])
    )
    dockerfile = (REPO / "infra" / "trainer" / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install -r requirements.txt -c constraints.txt" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "shared.training"]' in dockerfile
    assert "COPY shared/ shared/" in dockerfile


# --- features: the Feast feature server and its online store -------------------------------------

FEATURES = MODULES_DIR / "features"


def feature_server() -> dict[str, Any]:
    return resource(FEATURES, "google_cloud_run_v2_service", "server")


def test_feature_server_is_internal_long_running_and_never_recycles_its_worker() -> None:
    service = feature_server()
    variables = named_blocks(FEATURES, "variable")
    assert service["ingress"] == "var.ingress"
    assert variables["ingress"]["default"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    # Whatever the variable says, never public ingress.
    allowed = compact(variables["ingress"]["validation"][0]["condition"])
    assert "INGRESS_TRAFFIC_ALL" not in allowed and "INGRESS_TRAFFIC_INTERNAL_ONLY" in allowed
    template = single(service, "template")
    scaling = single(template, "scaling")
    assert scaling["min_instance_count"] == "var.min_instances"
    assert variables["min_instances"]["default"] >= 1
    assert "var.min_instances>=1" in compact(variables["min_instances"]["validation"][0]["condition"])
    root_min = named_blocks(REPO, "variable")["feature_server_min_instances"]
    assert root_min["default"] >= 1 and "var.feature_server_min_instances>=1" in compact(
        root_min["validation"][0]["condition"]
    )
    assert named_blocks(REPO, "module")["features"]["min_instances"] == "var.feature_server_min_instances"
    container = single(template, "containers")
    args = [str(a) for a in container["args"]]
    assert args[:2] == ["feast", "serve"] and "--no-access-log" in args
    assert args[args.index("--max-requests") + 1] == "0", "gunicorn would recycle the worker"
    assert args[args.index("-h") + 1] == "0.0.0.0"
    # Direct VPC egress to Redis's private IP, Google APIs on their default route.
    vpc = single(template, "vpc_access")
    assert vpc["egress"] == "PRIVATE_RANGES_ONLY"
    assert single(vpc, "network_interfaces")["network"] == "var.network"
    # The image's default command is the same (a manual `docker run` behaves like Cloud Run).
    dockerfile = (REPO / "infra" / "feature_server" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and '"--max-requests", "0"' in dockerfile
    install = dockerfile.split("RUN pip install", 1)[1].split("\n\n", 1)[0]
    assert "feast[" not in install, "feast[gcp] downgrades google-cloud-storage (DESIGN.md)"
    assert "feast==" in install and "redis==" in install and "hiredis==" in install
    feast_pin = next(
        line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("feast==")
    )
    assert feast_pin in install
    assert "pip install -c constraints.txt" in dockerfile
    assert "COPY shared/features/feast_repo/" in dockerfile


def test_feature_server_environment_matches_the_cloud_feast_config() -> None:
    template = (REPO / "shared" / "features" / "feast_repo" / "feature_store.cloud.yaml").read_text()
    needed = {
        name
        for line in template.splitlines()
        for name in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", line.split("#", 1)[0])
    }
    container = single(single(feature_server(), "template"), "containers")
    env = {e["name"]: e for e in container["env"]}
    assert needed <= set(env), f"the service does not set {sorted(needed - set(env))}"
    # The AUTH string comes from Secret Manager, pinned to the version Terraform wrote.
    auth = single(single(env["SHOPML_REDIS_AUTH"], "value_source"), "secret_key_ref")
    assert "value" not in env["SHOPML_REDIS_AUTH"]
    assert compact(auth["secret"]) == "google_secret_manager_secret.redis_auth.secret_id"
    assert compact(auth["version"]) == "google_secret_manager_secret_version.redis_auth.version"
    assert "SHOPML_REDIS_CA_CERTS" in env and "6378,ssl=true" in template


def test_feature_server_invoked_only_by_validate_load_predict_and_the_listed_accounts() -> None:
    invoker = resource(FEATURES, "google_cloud_run_v2_service_iam_member", "invoker")
    assert (invoker["role"], invoker["for_each"], invoker["member"]) == (
        "roles/run.invoker",
        "var.invokers",
        "each.value",
    )
    assert compact(invoker["name"]) == "google_cloud_run_v2_service.server.name"
    # Service accounts only (never allUsers / allAuthenticatedUsers).
    condition = named_blocks(FEATURES, "variable")["invokers"]["validation"][0]["condition"]
    assert "^serviceAccount:" in condition
    # The only other run.invoker grants are the functions module's.
    invokers = sorted(
        (d.name, n) for d, t, n, body in iam_resources() if body.get("role") == "roles/run.invoker"
    )
    assert invokers == [
        ("features", "invoker"),
        ("functions", "public_invoker"),
        ("functions", "push_invoker"),
    ]
    root_locals = locals_of(REPO)
    assert compact(root_locals["feature_server_clients"]) == (
        '[fornamein["validate_load","predict"]:nameifcontains(keys(local.functions),name)]'
    )
    call = named_blocks(REPO, "module")["features"]
    assert compact(call["invokers"]) == compact(
        "merge({ for name in local.feature_server_clients : name => module.iam.function_members[name] },"
        " { for member in var.feature_server_invoker_members : member => member })"
    )
    extra = named_blocks(REPO, "variable")["feature_server_invoker_members"]
    assert extra["default"] == [] and "^serviceAccount:" in extra["validation"][0]["condition"]


def test_validate_load_gets_the_feature_server_url() -> None:
    assert "SHOPML_FEATURE_SERVER_URL" in (REPO / "shared" / "settings.py").read_text()
    root_locals = locals_of(REPO)
    assert compact(root_locals["function_feature_env"]) == (
        "{fornameinlocal.feature_server_clients:name=>{SHOPML_FEATURE_SERVER_URL=module.features.url}}"
    )
    call = named_blocks(REPO, "module")["functions"]
    assert call["function_environment_variables"] == "local.function_feature_env"
    assert "validate_load" in TOPOLOGY["functions"]
    # Per-function variables reach the function, and cannot replace the module's own.
    service = single(
        resource(module_dir("functions"), "google_cloudfunctions2_function", "this"), "service_config"
    )
    assert "lookup(var.function_environment_variables,each.key,{})" in compact(
        service["environment_variables"]
    )
    conditions = " ".join(
        compact(v["condition"])
        for v in named_blocks(module_dir("functions"), "variable")["function_environment_variables"][
            "validation"
        ]
    )
    assert '"GOOGLE_CLOUD_PROJECT","SHOPML_WAREHOUSE","SHOPML_TOPIC_PREFIX"' in conditions
    assert compact(named_blocks(REPO, "output")["feature_server_url"]["value"]) == "module.features.url"


# --- features: the callers' way into the VPC (the service's ingress is internal) ---------------

NETWORK = MODULES_DIR / "network"
FEATURE_URL = "SHOPML_FEATURE_SERVER_URL"
CONNECTOR = "projects/p-123456/locations/europe-west1/connectors/shopml-features"


def function_egress(deployed: list[str]) -> dict[str, dict[str, Any]]:
    """Per deployed function: its SHOPML_FEATURE_SERVER_URL, vpc_connector and
    vpc_connector_egress_settings, computed by terraform from the expressions exactly as written in
    main.tf and the functions module (module outputs replaced by placeholders; no provider needed)."""
    root_locals = locals_of(REPO)
    service = single(
        resource(module_dir("functions"), "google_cloudfunctions2_function", "this"), "service_config"
    )

    def in_function(expr: str) -> str:
        return expr.replace("var.vpc_egress", "local.function_vpc_egress").replace("each.key", "name")

    feature_env = root_locals["function_feature_env"].replace(
        "module.features.url", '"https://feature-server.example"'
    )
    vpc_egress = root_locals["function_vpc_egress"].replace("module.network.connector_id", f'"{CONNECTOR}"')
    config = f"""
variable "deployed" {{
  type = list(string)
}}

locals {{
  functions              = {{ for name in var.deployed : name => {{}} }}
  feature_server_clients = {root_locals["feature_server_clients"]}
  function_feature_env   = {feature_env}
  function_vpc_egress    = {vpc_egress}
  result = {{
    for name in keys(local.functions) : name => {{
      url             = lookup(lookup(local.function_feature_env, name, {{}}), "{FEATURE_URL}", null)
      connector       = {in_function(service["vpc_connector"])}
      egress_settings = {in_function(service["vpc_connector_egress_settings"])}
    }}
  }}
}}
"""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "main.tf").write_text(config)
        run = functools.partial(subprocess.run, cwd=tmp, capture_output=True, text=True, timeout=120)
        init = run([terraform_binary(), "init", "-input=false", "-backend=false"])
        assert init.returncode == 0, init.stdout + init.stderr
        console = run(
            [terraform_binary(), "console", f"-var=deployed={json.dumps(deployed)}"],
            input="jsonencode(local.result)\n",
        )
        assert console.returncode == 0, console.stdout + console.stderr
    decoded: dict[str, dict[str, Any]] = json.loads(json.loads(console.stdout.strip()))
    return decoded


@pytest.mark.parametrize(
    "deployed",
    [
        sorted(TOPOLOGY["functions"]),  # everything in topology.json (predict included)
        function_folders(),  # what ships today
        [name for name in sorted(TOPOLOGY["functions"]) if name != "validate_load"],
    ],
    ids=["all", "implemented", "without-validate_load"],
)
def test_every_feature_server_caller_routes_all_traffic_through_the_vpc(deployed: list[str]) -> None:
    functions = function_egress(deployed)
    assert sorted(functions) == sorted(deployed)
    for name, fn in functions.items():
        if fn["url"] is not None:
            # Internal ingress admits the call only with all of the caller's egress in the VPC.
            assert (fn["connector"], fn["egress_settings"]) == (CONNECTOR, "ALL_TRAFFIC"), name
        else:
            # Unchanged: no connector, no egress setting (the provider leaves both unset).
            assert (fn["connector"], fn["egress_settings"]) == (None, None), name
    callers = {name for name, fn in functions.items() if fn["url"] is not None}
    assert callers == {"validate_load", "predict"} & set(deployed)


def test_the_feature_server_url_reaches_functions_only_per_function() -> None:
    # So the per-function map above is the only way a function learns the URL: none of the
    # settings every function gets may carry it.
    for source in (
        locals_of(REPO)["model_environment"],
        named_blocks(REPO, "module")["functions"]["extra_environment_variables"],
        locals_of(module_dir("functions"))["runtime_environment"],
    ):
        assert FEATURE_URL not in str(source)
    call = named_blocks(REPO, "module")["functions"]
    assert call["function_environment_variables"] == "local.function_feature_env"
    assert call["vpc_egress"] == "local.function_vpc_egress"


def test_functions_vpc_egress_is_optional_and_validated() -> None:
    variable = named_blocks(module_dir("functions"), "variable")["vpc_egress"]
    assert variable["default"] == {}
    assert 'optional(string,"ALL_TRAFFIC")' in compact(variable["type"])
    conditions = " ".join(compact(v["condition"]) for v in variable["validation"])
    assert "contains(keys(var.functions),name)" in conditions
    assert '["ALL_TRAFFIC","PRIVATE_RANGES_ONLY"]' in conditions
    assert "==var.region" in conditions  # a connector serves its own region only
    service = single(
        resource(module_dir("functions"), "google_cloudfunctions2_function", "this"), "service_config"
    )
    for attribute, field in (
        ("vpc_connector", "connector"),
        ("vpc_connector_egress_settings", "egress_settings"),
    ):
        assert compact(service[attribute]) == (
            f"contains(keys(var.vpc_egress),each.key)?var.vpc_egress[each.key].{field}:null"
        )


def test_connector_subnet_has_private_google_access_and_no_nat_is_needed() -> None:
    subnet = resource(NETWORK, "google_compute_subnetwork", "connector")
    assert subnet["private_ip_google_access"] is True
    assert subnet["ip_cidr_range"] == "var.ip_cidr_range"
    assert single(subnet, "log_config")
    connector = resource(NETWORK, "google_vpc_access_connector", "this")
    assert compact(single(connector, "subnet")["name"]) == "google_compute_subnetwork.connector.name"
    assert "ip_cidr_range" not in connector  # the subnet above, not one the service creates
    assert compact(named_blocks(NETWORK, "output")["connector_id"]["value"]) == (
        "google_vpc_access_connector.this.id"
    )
    # /28 in private space, validated in the module and at the root.
    for directory, name in ((NETWORK, "ip_cidr_range"), (REPO, "feature_connector_ip_cidr_range")):
        variable = named_blocks(directory, "variable")[name]
        condition = compact(variable["validation"][0]["condition"])
        assert '"/28"' in condition and "cidrsubnet" in condition and "192" in condition, name
    call = named_blocks(REPO, "module")["network"]
    assert call["ip_cidr_range"] == "var.feature_connector_ip_cidr_range"
    assert call["network"] == named_blocks(REPO, "module")["features"]["network"]
    # Nothing routes to the internet through the VPC: no Cloud NAT (documented in the module).
    assert not [
        t for _, t, _, _ in all_resources() if t in {"google_compute_router", "google_compute_router_nat"}
    ]
    assert "Cloud NAT" in (NETWORK / "main.tf").read_text()
    assert "vpcaccess.googleapis.com" in named_blocks(REPO, "variable")["activate_apis"]["default"]


def test_redis_requires_auth_and_tls_and_its_secret_is_the_servers_only() -> None:
    redis = resource(FEATURES, "google_redis_instance", "online")
    assert redis["auth_enabled"] is True
    assert redis["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    assert redis["tier"] == "var.redis_tier" and redis["authorized_network"] == "var.network"
    assert named_blocks(FEATURES, "variable")["redis_tier"]["default"] == "STANDARD_HA"
    version = resource(FEATURES, "google_secret_manager_secret_version", "redis_auth")
    assert compact(version["secret_data"]) == "google_redis_instance.online.auth_string"
    grant = resource(FEATURES, "google_secret_manager_secret_iam_member", "server_reads_redis_auth")
    assert (grant["role"], grant["member"]) == ("roles/secretmanager.secretAccessor", "local.server_member")
    assert "for_each" not in grant


def test_feature_server_account_reads_the_registry_and_nothing_else() -> None:
    server_grants = {
        (t, n, body["role"])
        for _, t, n, body in iam_resources()
        if body.get("member") == "local.server_member"
    }
    assert server_grants == {
        (
            "google_secret_manager_secret_iam_member",
            "server_reads_redis_auth",
            "roles/secretmanager.secretAccessor",
        ),
        ("google_storage_bucket_iam_member", "server_reads_registry", "roles/storage.objectViewer"),
        (
            "google_storage_bucket_iam_member",
            "server_gets_registry_bucket",
            "roles/storage.legacyBucketReader",
        ),
    }
    # Serving reads Redis only: no BigQuery grant, not even through the bigquery module.
    assert "features" not in compact(named_blocks(REPO, "module")["bigquery"]["readers"])
    bucket = resource(FEATURES, "google_storage_bucket", "registry")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert single(bucket, "versioning")["enabled"] is True
    assert compact(single(feature_server(), "template")["service_account"]) == (
        "google_service_account.server.email"
    )


def test_feature_server_image_is_built_after_tests_and_handed_to_the_plan() -> None:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}

    def upstream(step_id: str) -> set[str]:
        deps = {d for d in steps[step_id]["waitFor"] if d != "-"}
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    assert {"lint", "test", "trainer-repository"} <= upstream("feature-server-image")
    assert "feature-server-image" in upstream("tf-plan")
    script = " ".join(map(str, steps["feature-server-image"]["args"]))
    assert "docker build -f infra/feature_server/Dockerfile" in script and "docker push" in script
    assert "TF_VAR_feature_server_image" in " ".join(map(str, steps["tf-plan"]["args"]))
    assert named_blocks(REPO, "variable")["feature_server_image"]["default"] == ""


def test_feature_server_entrypoint_keeps_secrets_for_feast_and_adds_the_redis_ca(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "feature_server_entrypoint", REPO / "infra" / "feature_server" / "entrypoint.py"
    )
    assert spec and spec.loader
    entrypoint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entrypoint)
    template = (REPO / "shared" / "features" / "feast_repo" / "feature_store.cloud.yaml").read_text()
    env = {name: "x" for name in entrypoint.referenced_variables(template)}
    env["SHOPML_REDIS_AUTH"] = "the-auth-string"
    env["SHOPML_REDIS_CA_CERTS"] = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----"
    text = entrypoint.render(template, env, tmp_path)
    assert "the-auth-string" not in text and "${SHOPML_REDIS_AUTH}" in text
    config = yaml.safe_load(text)
    assert config["online_store"]["connection_string"].endswith(
        f",ssl_ca_certs={tmp_path}/redis-server-ca.pem"
    )
    assert "abc" in (tmp_path / "redis-server-ca.pem").read_text()
    with pytest.raises(SystemExit, match="SHOPML_REDIS_HOST"):
        entrypoint.render(template, {k: v for k, v in env.items() if k != "SHOPML_REDIS_HOST"}, tmp_path)
