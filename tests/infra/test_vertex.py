"""Training on Vertex AI: the trainer's grants, bucket, image, schedule and settings."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
import sys
from datetime import date
from pathlib import Path

import yaml

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
    assert list(jobs) == ["shopml-nightly-training", "shopml-reconcile", "shopml-drift-checks"]
    drift = jobs["shopml-drift-checks"]
    assert drift["topic_id"] == 'module.pubsub.topic_ids["drift-checks"]'
    assert drift["schedule"] == "var.drift_check_schedule" and set(drift["message"]) == {"model"}
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


def test_trainer_image_is_built_after_tests_and_pushed_before_the_apply() -> None:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}

    def upstream(step_id: str) -> set[str]:
        deps = {d for d in steps[step_id]["waitFor"] if d != "-"}
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    assert {"lint", "test", "deploy-gate"} <= upstream("trainer-image")
    # Pushed before the apply that points the functions at it; the plan names it by its tag.
    assert "trainer-image" in upstream("tf-apply")
    script = " ".join(map(str, steps["trainer-image"]["args"]))
    assert "docker build -f infra/trainer/Dockerfile" in script and "docker push" in script
    assert "TF_VAR_trainer_image" in " ".join(map(str, steps["tf-plan"]["args"]))
    # No targeted apply creates its repository before the plan (a reviewed plan applies everything).
    assert "trainer-repository" not in steps
    dockerfile = (REPO / "infra" / "trainer" / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install -r requirements.txt -c constraints.txt" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "shared.training"]' in dockerfile
    assert "COPY shared/ shared/" in dockerfile


# --- the trainer image's requirements ----------------------------------------------------------------

TRAINER_REQUIREMENTS = REPO / "infra" / "trainer" / "requirements.txt"
# Never in the image: test, lint, profiling and emulator tooling.
DEV_PACKAGES = {
    "pytest",
    "pytest-timeout",
    "hypothesis",
    "ruff",
    "mypy",
    "pyinstrument",
    "python-hcl2",
    "gcp-storage-emulator",
    "checkov",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            found[canonical(name)] = version
    return found


def trainer_third_party_imports() -> set[str]:
    """Dotted names of every non-stdlib, non-shared import in the trainer's import closure."""
    spec = importlib.util.spec_from_file_location("shopml_bundle_trainer", REPO / "infra/scripts/bundle.py")
    assert spec and spec.loader
    bundler = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bundler
    spec.loader.exec_module(bundler)
    closure = bundler.closure(REPO, REPO / "shared" / "training" / "__main__.py")
    assert "shared.training.trainer" in closure.modules and not closure.unresolved
    found: set[str] = set()
    for module in closure.modules:
        tree = ast.parse(bundler.module_path(REPO, module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # "from google.cloud import bigquery": the name may be a module of a namespace.
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            found.update(
                n
                for n in names
                if n.split(".")[0] not in sys.stdlib_module_names and n.split(".")[0] != "shared"
            )
    return found


@functools.cache
def distribution_files() -> dict[str, set[str]]:
    return {
        canonical(dist.metadata["Name"]): {str(f) for f in (dist.files or [])}
        for dist in importlib.metadata.distributions()
    }


def distribution_of(module: str) -> str:
    """The installed distribution that provides ``module`` (namespace packages like google.cloud.*
    resolved by the longest dotted prefix that a distribution's RECORD holds)."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        stem = "/".join(parts[:depth])
        owners = {
            name
            for name, files in distribution_files().items()
            if f"{stem}/__init__.py" in files
            or f"{stem}.py" in files
            or any(f.startswith(f"{stem}.") and f.endswith((".so", ".pyd")) for f in files)
        }
        if owners:
            assert len(owners) == 1, f"{module}: provided by {sorted(owners)}"
            return owners.pop()
    raise AssertionError(f"no installed distribution provides {module}")


def test_trainer_requirements_are_pinned_like_constraints_and_hold_no_dev_tooling() -> None:
    trainer = pins(TRAINER_REQUIREMENTS)
    constraints = pins(REPO / "constraints.txt")
    assert trainer, "infra/trainer/requirements.txt is empty"
    for name, version in trainer.items():
        assert constraints.get(name) == version, (
            f"{name}=={version}, constraints.txt: {constraints.get(name)}"
        )
    assert not set(trainer) & DEV_PACKAGES
    # Whatever the root requirements list under "dev / test" stays out too.
    root = (REPO / "requirements.txt").read_text()
    dev_section = root.split("# dev / test", 1)[1] if "# dev / test" in root else ""
    dev = {canonical(line.split("==")[0]) for line in dev_section.splitlines() if "==" in line}
    assert dev and not set(trainer) & dev


def test_trainer_requirements_cover_every_module_the_trainer_imports() -> None:
    trainer = set(pins(TRAINER_REQUIREMENTS))
    imports = trainer_third_party_imports()
    assert {"lightgbm", "onnxruntime", "numpy", "pandas"} <= {name.split(".")[0] for name in imports}
    needed = {module: distribution_of(module) for module in imports}
    missing = {module: dist for module, dist in needed.items() if dist not in trainer}
    assert not missing, f"the trainer imports these, infra/trainer/requirements.txt lacks them: {missing}"
    # The image installs that file and nothing else (constraints only pin).
    dockerfile = (REPO / "infra" / "trainer" / "Dockerfile").read_text()
    assert "COPY infra/trainer/requirements.txt ./requirements.txt" in dockerfile
    installs = [line.strip() for line in dockerfile.splitlines() if "pip install" in line]
    assert installs == ["RUN pip install -r requirements.txt -c constraints.txt"]
    ignore = (REPO / "infra" / "trainer" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!infra/trainer/requirements.txt" in ignore and "!requirements.txt" not in ignore
