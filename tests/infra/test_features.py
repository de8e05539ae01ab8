"""The Feast feature server, its Redis online store and its callers' way into the VPC."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.hcl import (
    CONFIG_DIRS,
    MODULES_DIR,
    REPO,
    TOPOLOGY,
    all_resources,
    blocks,
    compact,
    function_folders,
    iam_resources,
    locals_of,
    module_dir,
    named_blocks,
    resource,
    single,
    terraform_binary,
    tf_files,
)

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
        ("features", "trigger_runs_materialize"),  # the job, not the service (test_serving.py)
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
    assert call["function_environment_variables"] == "local.function_environment"
    # function_environment = the feature server's URL merged with the serving settings, per function.
    assert "lookup(local.function_feature_env,name,{})" in compact(root_locals["function_environment"])
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
    assert FEATURE_URL not in str(locals_of(REPO)["function_serving_env"])
    call = named_blocks(REPO, "module")["functions"]
    assert call["function_environment_variables"] == "local.function_environment"
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
    # The AUTH string reaches Secret Manager as a write-only argument: never stored in the
    # version's state. A new instance (new string) replaces the version.
    version = resource(FEATURES, "google_secret_manager_secret_version", "redis_auth")
    assert compact(version["secret_data_wo"]) == "google_redis_instance.online.auth_string"
    assert "secret_data" not in version
    assert single(version, "lifecycle")["replace_triggered_by"] == ["google_redis_instance.online.id"]
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
    # Serving reads Redis only: no BigQuery grant, not even through the bigquery module (the
    # materialization job's account, a different one, reads the warehouse).
    readers = compact(named_blocks(REPO, "module")["bigquery"]["readers"])
    assert "module.features." in readers and "module.features.service_account" not in readers
    assert set(re.findall(r"module\.features\.(\w+)", readers)) == {"materializer_member"}
    bucket = resource(FEATURES, "google_storage_bucket", "registry")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert single(bucket, "versioning")["enabled"] is True
    assert compact(single(feature_server(), "template")["service_account"]) == (
        "google_service_account.server.email"
    )


def test_feature_server_image_is_built_after_tests_and_pushed_before_the_apply() -> None:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}

    def upstream(step_id: str) -> set[str]:
        deps = {d for d in steps[step_id]["waitFor"] if d != "-"}
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    assert {"lint", "test", "deploy-gate"} <= upstream("feature-server-image")
    assert "feature-server-image" in upstream("tf-apply")
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


def test_no_secret_value_is_stored_by_the_configuration() -> None:
    # Secret versions only through write-only arguments (Terraform >= 1.11): never secret_data.
    versions = [(d, n, b) for d, t, n, b in all_resources() if t == "google_secret_manager_secret_version"]
    assert {(d.name, n) for d, n, _ in versions} == {("features", "redis_auth"), ("secrets", "write_only")}
    for directory, name, body in versions:
        assert "secret_data" not in body and "secret_data_wo" in body, f"{directory.name}: {name}"
    # The Redis AUTH string is read in exactly one place, that write-only argument: no output,
    # local, environment value or label carries it (it stays the instance's own attribute).
    uses = [
        (path.relative_to(REPO), line.strip())
        for directory in CONFIG_DIRS
        for path in tf_files(directory)
        for line in path.read_text().splitlines()
        if "auth_string" in line.split("#", 1)[0]
    ]
    assert uses == [
        (
            Path("infra/modules/features/main.tf"),
            "secret_data_wo = google_redis_instance.online.auth_string",
        )
    ]
    # The server reads the value from Secret Manager, never as a plain environment value.
    container = single(single(feature_server(), "template"), "containers")
    auth = next(e for e in container["env"] if e["name"] == "SHOPML_REDIS_AUTH")
    assert "value" not in auth and "value_source" in auth
    # Write-only arguments need Terraform 1.11 or later.
    (terraform,) = [block for _, block in blocks(REPO, "terraform") if "required_version" in block]
    assert terraform["required_version"].startswith(">= 1.11")


def test_materialization_job_runs_in_cloud_mode_through_the_image_entrypoint() -> None:
    """The job keeps the image's entrypoint (no ``command``), which writes the cloud config and
    passes its dir as SHOPML_FEAST_REPO: the setting that selects the cloud path of
    ``python -m shared.features`` (tests/unit/test_features_cloud.py). The job must not set it
    to anything else, and the image carries what that path imports (sqlglot for the query)."""
    job = resource(FEATURES, "google_cloud_run_v2_job", "materialize")
    task = single(single(job, "template"), "template")
    container = single(task, "containers")
    assert "command" not in container
    assert "SHOPML_FEAST_REPO" not in {e["name"] for e in container["env"]}
    dockerfile = (REPO / "infra" / "feature_server" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "/app/entrypoint.py"]' in dockerfile
    entrypoint = (REPO / "infra" / "feature_server" / "entrypoint.py").read_text()
    assert "child_environment(dict(os.environ), REPO_DIR)" in entrypoint
    batch = (REPO / "infra" / "feature_server" / "batch-requirements.txt").read_text()
    assert re.search(r"^sqlglot==", batch, re.MULTILINE)
