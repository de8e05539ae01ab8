"""Step 4 infrastructure: predict, deploy_model and rollback (identities, ingress, grants, settings),
Firestore, the predict keys secret, the serving tables and the nightly materialization."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.infra.hcl import (
    REPO,
    TOPOLOGY,
    Expr,
    all_resources,
    compact,
    iam_resources,
    locals_of,
    module_dir,
    named_blocks,
    preceding_comment,
    resource,
    single,
    terraform_binary,
)
from tests.infra.test_vertex import canonical, distribution_of, pins

SERVING = module_dir("serving")
FEATURES = module_dir("features")
SERVING_FUNCTIONS = ("predict", "deploy_model", "rollback", "load_predictions")


# --- the functions ---------------------------------------------------------------------------------


def test_every_topology_function_gets_its_own_account_when_deployed() -> None:
    # One account per deployed function, deployed = topology entries whose code exists.
    root_locals = locals_of(REPO)
    assert "keys(local.topology.functions)" in compact(root_locals["implemented_functions"])
    assert compact(named_blocks(REPO, "module")["iam"]["function_names"]) == "toset(keys(local.functions))"
    account = resource(module_dir("iam"), "google_service_account", "function")
    assert account["for_each"] == "var.function_names"
    for name in SERVING_FUNCTIONS:
        assert name in TOPOLOGY["functions"], name


def test_predict_is_public_warm_and_says_why_the_others_are_internal() -> None:
    predict = TOPOLOGY["functions"]["predict"]
    assert (predict["trigger"], predict["public"]) == ("http", True)
    assert predict["min_instances"] >= 1, "predict is on the page-render path: no cold start"
    reason = predict["public_reason"]
    assert "signature" in reason and "SHOPML_PREDICT_KEYS" in reason
    assert predict["publishes"] == ["predictions", "training-requests"]  # answers; POST /retrain
    for name in ("deploy_model", "rollback", "load_predictions"):
        fn = TOPOLOGY["functions"][name]
        assert (fn["trigger"], fn["public"]) == ("pubsub", False), name
        assert fn["publishes"] == [], name
    subscribers = {sub["push_to"]: sub["topic"] for sub in TOPOLOGY["subscriptions"].values()}
    assert subscribers["deploy_model"] == "model-events"
    assert subscribers["rollback"] == "rollback-requests"
    assert subscribers["load_predictions"] == "predictions"


def test_the_cpu_allocation_of_predict_is_stated_where_functions_are_defined() -> None:
    lines = (module_dir("functions") / "main.tf").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "service_config {")
    comment_lines: list[str] = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        comment_lines.insert(0, line.strip())
    comment = " ".join(comment_lines)
    assert "request-based" in comment and "predict" in comment
    assert "SHOPML_POINTER_MAX_AGE_SECONDS" in comment and "snapshot listener" in comment
    assert "SHOPML_POINTER_MAX_AGE_SECONDS" in (REPO / "shared" / "settings.py").read_text()
    # No always-on CPU is set anywhere for the functions (nothing to contradict the comment).
    service = single(
        resource(module_dir("functions"), "google_cloudfunctions2_function", "this"), "service_config"
    )
    assert not {"cpu_idle", "cpu_throttling"} & set(service)


def serving_view(deployed: list[str]) -> dict[str, Any]:
    """Per deployed function: which serving grants and settings it gets, computed by terraform from
    the root's locals exactly as written (module outputs replaced by placeholders)."""
    root = locals_of(REPO)
    names = (
        "pointer_readers",
        "pointer_writers",
        "registry_readers",
        "alias_movers",
        "metric_writers",
        "webhook_secret_id",
        "webhook_secret_readers",
        "pii_key_secret_id",
        "pii_key_readers",
        "predict_keys_secret_id",
        "predict_keys_readers",
        "slack_secret_id",
        "slack_secret_readers",
        "slack_alerts",
        "report_writers",
        "function_secret_env",
        "function_serving_env",
    )
    # Expressions as written; literals (lists of names, secret ids) as JSON, which HCL reads too.
    body = "\n".join(
        f"  {name} = {root[name] if isinstance(root[name], Expr) else json.dumps(root[name])}"
        for name in names
    )
    body = (
        body.replace("module.serving.firestore_database", '"(default)"')
        .replace("var.predict_cors_origins", '["https://shop.example.com"]')
        .replace("var.region", '"europe-west1"')
        .replace("var.slack_alerts", "true")
        .replace("var.slack_webhook_url_version", "0")
        .replace("module.monitoring.reports_bucket_name", '"p-shopml-reports"')
    )
    config = f"""
variable "deployed" {{
  type = list(string)
}}

locals {{
  functions = {{ for name in var.deployed : name => {{}} }}
{body}
  result = {{
    for name in keys(local.functions) : name => {{
      pointer_reader = contains(local.pointer_readers, name)
      pointer_writer = contains(local.pointer_writers, name)
      registry       = contains(local.registry_readers, name)
      alias_mover    = contains(local.alias_movers, name)
      metric_writer  = contains(local.metric_writers, name)
      secrets        = local.function_secret_env[name]
      env            = local.function_serving_env[name]
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
    decoded: dict[str, Any] = json.loads(json.loads(console.stdout.strip()))
    return decoded


@pytest.mark.parametrize(
    "deployed",
    [sorted(TOPOLOGY["functions"]), ["ingest_webhook", "predict", "validate_load"]],
    ids=["all", "predict-only"],
)
def test_each_serving_function_gets_exactly_what_it_touches(deployed: list[str]) -> None:
    view = serving_view(deployed)
    assert sorted(view) == sorted(deployed)
    expected = {
        # follows the pointer, reads model files, checks app-proxy signatures and bearer keys
        "predict": (True, False, True, False),
        # change the pointer in transactions, read files and cards, move live / previous
        "deploy_model": (False, True, True, True),
        "rollback": (False, True, True, True),
        # reads the live version and its card (reference sample, importances, holdout metrics)
        "drift_monitor": (True, False, True, False),
    }
    for name, fn in view.items():
        got = (fn["pointer_reader"], fn["pointer_writer"], fn["registry"], fn["alias_mover"])
        assert got == expected.get(name, (False, False, False, False)), name
        if name in {"predict", "deploy_model", "rollback", "drift_monitor"}:
            assert fn["env"]["SHOPML_FIRESTORE_DATABASE"] == "(default)", name
        else:
            assert "SHOPML_FIRESTORE_DATABASE" not in fn["env"], name
    predict = view["predict"]
    assert predict["secrets"] == {
        "SHOPIFY_WEBHOOK_SECRETS": "shopify-webhook-secrets",
        "SHOPML_PREDICT_KEYS": "shopml-predict-keys",
    }
    assert predict["env"]["SHOPML_PREDICT_CORS_ORIGINS"] == "https://shop.example.com"
    # predict pushes its metrics to the Telemetry API, labelled with its region; nobody else does.
    assert predict["metric_writer"] is True
    assert predict["env"]["SHOPML_METRICS_EXPORT"] == "otlp"
    assert predict["env"]["SHOPML_METRICS_LOCATION"] == "europe-west1"
    # drift_monitor pushes its gauges (the alert policies read them), writes its reports to the
    # reports bucket and alone reads the Slack webhook URL.
    if "drift_monitor" in view:
        monitor = view["drift_monitor"]
        assert monitor["metric_writer"] is True and monitor["env"]["SHOPML_METRICS_EXPORT"] == "otlp"
        assert monitor["env"]["SHOPML_REPORTS"] == "gs://p-shopml-reports/drift-reports"
        assert monitor["secrets"] == {"SHOPML_SLACK_WEBHOOK_URL": "shopml-slack-webhook-url"}
    # Nobody else reads the predict keys, the Slack URL or writes reports.
    for name, fn in view.items():
        # FUNCTION_USE_ASGI comes from the functions module, for every async entry point
        # (tests/infra/test_functions_asgi.py), never from here as well.
        assert "FUNCTION_USE_ASGI" not in fn["env"], name
        if name != "predict":
            assert "SHOPML_PREDICT_KEYS" not in fn["secrets"], name
        if name not in {"predict", "drift_monitor"}:
            assert fn["metric_writer"] is False and "SHOPML_METRICS_EXPORT" not in fn["env"], name
        if name != "drift_monitor":
            assert "SHOPML_SLACK_WEBHOOK_URL" not in fn["secrets"] and "SHOPML_REPORTS" not in fn["env"], name
    if "ingest_webhook" in view:
        assert view["ingest_webhook"]["secrets"] == {"SHOPIFY_WEBHOOK_SECRETS": "shopify-webhook-secrets"}


def test_the_settings_the_functions_get_are_the_ones_the_code_reads() -> None:
    settings = (REPO / "shared" / "settings.py").read_text()
    for variable in (
        "SHOPML_FIRESTORE_DATABASE",
        "SHOPML_PREDICT_KEYS",
        "SHOPML_PREDICT_CORS_ORIGINS",
        "SHOPML_METRICS_EXPORT",
        "SHOPML_METRICS_LOCATION",
    ):
        assert f'"{variable}"' in settings, variable
    # predict's entry point is an ASGI one: the functions module gives it FUNCTION_USE_ASGI.
    assert "functions_framework.aio" in (REPO / "functions" / "predict" / "main.py").read_text()
    call = named_blocks(REPO, "module")["functions"]
    assert call["function_environment_variables"] == "local.function_environment"
    env = compact(locals_of(REPO)["function_environment"])
    assert "local.function_serving_env[name]" in env and "lookup(local.function_feature_env,name,{})" in env


# --- grants ------------------------------------------------------------------------------------------


def test_firestore_is_native_in_a_location_variable_and_its_api_is_enabled() -> None:
    database = resource(SERVING, "google_firestore_database", "pointers")
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["location_id"] == "var.location"
    assert database["name"] == "var.database_name"
    assert database["concurrency_mode"] == "OPTIMISTIC"
    assert "DELETE_PROTECTION_ENABLED" in database["delete_protection_state"]
    call = named_blocks(REPO, "module")["serving"]
    assert call["location"] == "var.firestore_location" and call["database_name"] == "var.firestore_database"
    root_vars = named_blocks(REPO, "variable")
    assert root_vars["firestore_location"]["default"] == "eur3"
    assert root_vars["firestore_database"]["default"] == "(default)"
    assert "firestore.googleapis.com" in root_vars["activate_apis"]["default"]
    assert "google_project_service.this" in call["depends_on"]


def test_firestore_grants_are_project_level_because_nothing_finer_exists() -> None:
    grants = {
        name: body
        for directory, rtype, name, body in iam_resources()
        if directory == SERVING and rtype == "google_project_iam_member"
    }
    assert {n: b["role"] for n, b in grants.items()} == {
        "pointer_reader": "roles/datastore.viewer",
        "pointer_writer": "roles/datastore.user",
        "alias_mover": "roles/aiplatform.user",
        "metric_writer": "roles/monitoring.metricWriter",
    }
    for name in ("pointer_reader", "pointer_writer"):
        comment = preceding_comment(SERVING / "main.tf", f'resource "google_project_iam_member" "{name}"')
        assert "unavoidable" in comment.lower() and "Firestore has no IAM on a database" in comment
    # Granted from the deployed serving functions only; nobody else touches Firestore or Vertex
    # aliases (the trainer's and trigger_training's aiplatform.user are in module.vertex).
    call = named_blocks(REPO, "module")["serving"]
    for variable in (
        "pointer_readers",
        "pointer_writers",
        "registry_readers",
        "alias_movers",
        "metric_writers",
    ):
        assert compact(call[variable]) == (
            f"{{fornameinlocal.{variable}:name=>module.iam.function_members[name]}}"
        ), variable
    firestore_roles = [
        (d.name, n) for d, _, n, b in iam_resources() if str(b.get("role", "")).startswith("roles/datastore")
    ]
    assert sorted(firestore_roles) == [("serving", "pointer_reader"), ("serving", "pointer_writer")]


def test_registry_files_are_readable_by_the_serving_functions_only_under_registry() -> None:
    grant = resource(SERVING, "google_storage_bucket_iam_member", "registry_reader")
    assert (grant["role"], grant["for_each"], grant["bucket"]) == (
        "roles/storage.objectViewer",
        "var.registry_readers",
        "var.registry_bucket",
    )
    condition = single(grant, "condition")
    assert "resource.name.startsWith" in condition["expression"]
    assert "local.registry_objects" in condition["expression"]
    assert locals_of(SERVING)["registry_objects"] == (
        "projects/_/buckets/${var.registry_bucket}/objects/${var.registry_prefix}/"
    )
    assert named_blocks(SERVING, "variable")["registry_prefix"]["default"] == "registry"
    # The prefix predict reads from (shared/serving/slots.py: gs://<staging bucket>/registry).
    assert 'f"gs://{bucket}/registry"' in (REPO / "shared" / "serving" / "slots.py").read_text()
    assert named_blocks(REPO, "module")["serving"]["registry_bucket"] == "module.vertex.bucket_name"
    # No serving grant writes objects: aliases are Vertex version aliases (SHOPML_REGISTRY=vertex://).
    assert "vertex://" in locals_of(REPO)["model_environment"]["SHOPML_REGISTRY"]
    writes = [
        (d.name, n)
        for d, t, n, b in iam_resources()
        if d == SERVING
        and str(b.get("role", "")) in {"roles/storage.objectAdmin", "roles/storage.objectCreator"}
    ]
    assert writes == []


def test_predict_publishes_only_to_predictions_and_training_requests() -> None:
    # Publisher grants are keyed on each function's topology "publishes" (test_pubsub holds the
    # mechanism); for predict that is the predictions topic (sampled answers) and
    # training-requests (POST /retrain from a Shopify Flow workflow), nothing else.
    grant = resource(module_dir("functions"), "google_pubsub_topic_iam_member", "publisher")
    assert grant["for_each"] == "local.publisher_grants" and grant["role"] == "roles/pubsub.publisher"
    assert TOPOLOGY["functions"]["predict"]["publishes"] == ["predictions", "training-requests"]
    assert {"predictions", "training-requests"} <= set(TOPOLOGY["topics"])


def test_the_predict_keys_secret_is_predicts_alone_and_never_in_state() -> None:
    secrets = named_blocks(REPO, "module")["secrets"]
    specs = {key: spec for key, spec in secrets["secrets"].items() if "predict_keys" in key}
    assert len(specs) == 1
    (spec,) = specs.values()
    assert "SHOPML_PREDICT_KEYS" in spec["description"]
    assert locals_of(REPO)["predict_keys_secret_id"] == "shopml-predict-keys"
    # The value: never through Terraform by default; the optional write-only path stores nothing.
    root_vars = named_blocks(REPO, "variable")
    assert root_vars["predict_keys_version"]["default"] == 0
    value = root_vars["predict_keys"]
    assert value.get("ephemeral") is True and value.get("sensitive") is True and value.get("default") is None
    wo = compact(secrets["secret_values_wo"])
    assert "var.predict_keys_version>0?{(local.predict_keys_secret_id)=var.predict_keys}:{}" in wo
    for _, rtype, name, body in all_resources():
        if rtype == "google_secret_manager_secret_version":
            assert "secret_data" not in body, name


def test_the_serving_tables_exist_in_the_dataset_with_their_writers() -> None:
    tables_dir = REPO / "shared" / "schemas" / "tables"
    for table in ("predictions", "model_deployments"):
        spec = json.loads((tables_dir / f"{table}.json").read_text())
        # The shape module.bigquery's `tables` variable takes.
        assert isinstance(spec["description"], str) and spec["description"]
        assert isinstance(spec["schema"], list) and spec["schema"]
        assert {"name", "type"} <= set(spec["schema"][0])
        partitioning = spec.get("time_partitioning")
        if partitioning is not None:
            assert partitioning["type"] in {"DAY", "HOUR", "MONTH", "YEAR"}
            assert partitioning.get("field") in {c["name"] for c in spec["schema"]} | {None}
    # Every schema file becomes a table of the one dataset (fileset over the folder).
    assert 'fileset("${path.module}/shared/schemas/tables","*.json")' in compact(
        locals_of(REPO)["warehouse_tables"]
    )
    # Who writes them: load_predictions the predictions, deploy_model and rollback the deployments
    # (dataEditor on the dataset, from topology "warehouse": the adapter's lazy ensure_schema lists
    # the dataset's tables on a cold start, which a table-level grant would not allow).
    for name in ("load_predictions", "deploy_model", "rollback"):
        assert TOPOLOGY["functions"][name]["warehouse"] == "write", name
    assert "warehouse" not in TOPOLOGY["functions"]["predict"], "predict never writes the warehouse"


# --- the nightly materialization ---------------------------------------------------------------------


def materialize_job() -> dict[str, Any]:
    return resource(FEATURES, "google_cloud_run_v2_job", "materialize")


def test_materialization_job_runs_the_feature_store_batch_in_the_feature_server_image() -> None:
    job = materialize_job()
    task = single(single(job, "template"), "template")
    assert compact(task["service_account"]) == "google_service_account.materializer.email"
    container = single(task, "containers")
    assert container["image"] == "var.image"  # the feature server image (entrypoint + cloud config)
    assert [str(a) for a in container["args"]] == ["python", "-m", "shared.features", "materialize"]
    assert "materialize" in (REPO / "shared" / "features" / "__main__.py").read_text()
    # Redis's private IP over the same Direct VPC egress as the feature server.
    vpc = single(task, "vpc_access")
    interface = single(vpc, "network_interfaces")
    assert (interface["network"], interface["subnetwork"], vpc["egress"]) == (
        "var.network",
        "var.subnetwork",
        "PRIVATE_RANGES_ONLY",
    )
    # Every variable the cloud Feast config needs, the warehouse, shared/ on the path.
    template = (REPO / "shared" / "features" / "feast_repo" / "feature_store.cloud.yaml").read_text()
    needed = {
        n for line in template.splitlines() for n in re.findall(r"\$\{([A-Z_]+)\}", line.split("#", 1)[0])
    }
    env = {e["name"]: e for e in container["env"]}
    assert needed <= set(env), sorted(needed - set(env))
    assert env["PYTHONPATH"]["value"] == "/app"
    assert compact(env["SHOPML_WAREHOUSE"]["value"]) == "bigquery://${var.project_id}/${var.bigquery_dataset}"
    auth = single(single(env["SHOPML_REDIS_AUTH"], "value_source"), "secret_key_ref")
    assert "value" not in env["SHOPML_REDIS_AUTH"]
    assert compact(auth["version"]) == "google_secret_manager_secret_version.redis_auth.version"
    dockerfile = (REPO / "infra" / "feature_server" / "Dockerfile").read_text()
    assert "COPY shared/ shared/" in dockerfile and "WORKDIR /app" in dockerfile
    ignore = (REPO / "infra" / "feature_server" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!shared/" in ignore and "!infra/feature_server/batch-requirements.txt" in ignore


def test_materialization_account_holds_exactly_its_grants() -> None:
    own = {
        (t, n, b["role"]) for _, t, n, b in iam_resources() if b.get("member") == "local.materializer_member"
    }
    assert own == {
        ("google_storage_bucket_iam_member", "materializer_writes_registry", "roles/storage.objectAdmin"),
        (
            "google_storage_bucket_iam_member",
            "materializer_gets_registry_bucket",
            "roles/storage.legacyBucketReader",
        ),
        (
            "google_secret_manager_secret_iam_member",
            "materializer_reads_redis_auth",
            "roles/secretmanager.secretAccessor",
        ),
    }
    for name in ("materializer_writes_registry", "materializer_gets_registry_bucket"):
        body = resource(FEATURES, "google_storage_bucket_iam_member", name)
        assert compact(body["bucket"]) == "google_storage_bucket.registry.name"  # the Feast registry only
    # Warehouse: dataset read and the project-level jobUser, through the bigquery module.
    call = named_blocks(REPO, "module")["bigquery"]
    assert "shopml_materialize=module.features.materializer_member" in compact(call["readers"])
    assert "shopml_materialize=module.features.materializer_member" in compact(call["job_users"])
    assert "materializer" not in compact(call["writers"])
    assert (
        compact(named_blocks(FEATURES, "output")["materializer_member"]["value"])
        == "local.materializer_member"
    )


def test_materialization_is_scheduled_nightly_after_the_training_request() -> None:
    schedule = resource(FEATURES, "google_cloud_scheduler_job", "materialize")
    target = single(schedule, "http_target")
    assert target["http_method"] == "POST"
    assert compact(target["uri"]).endswith("/jobs/${google_cloud_run_v2_job.materialize.name}:run")
    assert compact(target["uri"]).startswith(
        "https://run.googleapis.com/v2/projects/${var.project_id}/locations/"
    )
    token = single(target, "oauth_token")
    assert compact(token["service_account_email"]) == "google_service_account.materialize_trigger.email"
    assert (schedule["schedule"], schedule["time_zone"]) == (
        "var.materialize_schedule",
        "var.materialize_time_zone",
    )
    # The trigger may run this job and do nothing else.
    trigger = [
        (t, n, b["role"]) for _, t, n, b in iam_resources() if b.get("member") == "local.trigger_member"
    ]
    assert trigger == [
        ("google_cloud_run_v2_job_iam_member", "trigger_runs_materialize", "roles/run.invoker")
    ]
    assert compact(
        resource(FEATURES, "google_cloud_run_v2_job_iam_member", "trigger_runs_materialize")["name"]
    ) == ("google_cloud_run_v2_job.materialize.name")
    # Wired from the root; by default an hour after the nightly training request, both in UTC.
    call = named_blocks(REPO, "module")["features"]
    assert call["materialize_schedule"] == "var.materialization_schedule"
    root_vars = named_blocks(REPO, "variable")
    materialize = root_vars["materialization_schedule"]["default"].split()
    training = root_vars["training_schedule"]["default"].split()
    assert (
        root_vars["materialization_time_zone"]["default"]
        == root_vars["training_time_zone"]["default"]
        == "UTC"
    )
    assert materialize[2:] == training[2:] == ["*", "*", "*"], "both nightly"
    assert int(materialize[1]) > int(training[1])
    readme = (REPO / "infra" / "README.md").read_text()
    assert "03:00 UTC" in readme and "shopml-nightly-materialize" in readme


def test_deployer_may_act_as_the_new_accounts() -> None:
    for name, account in (
        ("deployer_acts_as_materializer", "materializer"),
        ("deployer_acts_as_materialize_trigger", "materialize_trigger"),
    ):
        grant = resource(FEATURES, "google_service_account_iam_member", name)
        assert grant["for_each"] == "var.deployer_members" and grant["role"] == "roles/iam.serviceAccountUser"
        assert compact(grant["service_account_id"]) == f"google_service_account.{account}.name"


def features_batch_imports() -> set[str]:
    """Dotted names of every third-party import in the import closure of shared/features/__main__.py."""
    spec = importlib.util.spec_from_file_location("shopml_bundle_features", REPO / "infra/scripts/bundle.py")
    assert spec and spec.loader
    bundler = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bundler
    spec.loader.exec_module(bundler)
    closure = bundler.closure(REPO, REPO / "shared" / "features" / "__main__.py")
    assert "shared.features.store" in closure.modules and not closure.unresolved
    found: set[str] = set()
    for module in closure.modules:
        for node in ast.walk(ast.parse(bundler.module_path(REPO, module).read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            found.update(
                n
                for n in names
                if n.split(".")[0] not in sys.stdlib_module_names and n.split(".")[0] != "shared"
            )
    return found


def test_feature_server_image_holds_what_the_materialization_imports() -> None:
    batch = pins(REPO / "infra" / "feature_server" / "batch-requirements.txt")
    constraints = pins(REPO / "constraints.txt")
    for name, version in batch.items():
        assert constraints.get(name) == version, (
            f"{name}=={version}, constraints.txt: {constraints.get(name)}"
        )
    imports = features_batch_imports()
    assert "feast" in {m.split(".")[0] for m in imports}
    dockerfile = (REPO / "infra" / "feature_server" / "Dockerfile").read_text()
    serving = {
        canonical(m.group(1))
        for m in re.finditer(
            r"\b([a-z][a-z0-9_.-]+)==", dockerfile.split("RUN pip install", 1)[1].split("\n\n", 1)[0]
        )
    }
    missing = {m: d for m in imports if (d := distribution_of(m)) not in set(batch) | serving}
    assert not missing, f"the materialization imports these, the feature server image lacks them: {missing}"
    assert "RUN pip install -r batch-requirements.txt -c constraints.txt" in dockerfile
