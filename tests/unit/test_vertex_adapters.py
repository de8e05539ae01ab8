"""Vertex AI adapters: the exact requests they send, with fake clients (nothing reaches Google)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1 as v1

from shared.adapters.object_stores import LocalObjectStore
from shared.adapters.training_backends import VertexTrainingBackend, build_custom_job, run_filter
from shared.adapters.vertex_registry import (
    VertexModelRegistry,
    build_merge_aliases_request,
    build_upload_request,
    create_vertex_registry,
    parse_vertex_url,
)
from shared.errors import ConfigurationError, PermanentError, TransientError
from shared.ports import TrainingRequest
from shared.registry import VersionExists
from shared.settings import Settings

PROJECT, REGION = "shop-prod", "europe-west1"
LOCATION = f"projects/{PROJECT}/locations/{REGION}"
PARENT = f"{LOCATION}/models/shopml-demand"
IMAGE = "europe-west1-docker.pkg.dev/shop-prod/shopml-trainer/trainer:abc123"
TRAINER_SA = "shopml-trainer@shop-prod.iam.gserviceaccount.com"


class FakeStaging(LocalObjectStore):
    """A local folder that names its objects as the staging bucket would."""

    def uri(self, key: str) -> str:
        return f"gs://shop-prod-vertex/registry/{key}"


class FakeModelService:
    def __init__(self, models: list[Any] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.models = models or []  # Model protos of the parent's versions

    def list_models(self, request: Any) -> list[Any]:
        self.calls.append(("list_models", request))
        return [SimpleNamespace(name=PARENT)] if self.models else []

    def list_model_versions(self, request: Any) -> list[Any]:
        self.calls.append(("list_model_versions", request))
        wanted = request.filter.split('"')[1] if request.filter else None
        return [m for m in self.models if wanted is None or m.labels["shopml-version"] == wanted]

    def get_model(self, request: Any) -> Any:
        self.calls.append(("get_model", request))
        alias = request.name.split("@")[1]
        for model in self.models:
            if alias in model.version_aliases:
                return model
        raise exceptions.NotFound("no such alias")

    def upload_model(self, request: Any) -> Any:
        self.calls.append(("upload_model", request))
        return SimpleNamespace(result=lambda timeout: SimpleNamespace(model=PARENT, model_version_id="2"))

    def merge_version_aliases(self, request: Any) -> Any:
        self.calls.append(("merge_version_aliases", request))
        return None


def vertex_model(version: str, version_id: str, aliases: list[str]) -> Any:
    return v1.Model(
        name=PARENT,
        version_id=version_id,
        version_aliases=aliases,
        artifact_uri=f"gs://shop-prod-vertex/registry/demand/{version}",
        labels={"shopml-model": "demand", "shopml-version": version.replace(".", "-")},
    )


@pytest.fixture
def staging(tmp_path: Path) -> FakeStaging:
    return FakeStaging(tmp_path / "staging")


def test_upload_request_is_a_new_version_of_the_parent_model() -> None:
    request = build_upload_request(
        project=PROJECT,
        region=REGION,
        model="demand",
        version="1.3.0",
        artifact_uri="gs://shop-prod-vertex/registry/demand/1.3.0",
        serving_image=IMAGE,
        aliases=("candidate",),
        parent_model=PARENT,
        labels={"app": "shopml"},
    )
    expected = v1.UploadModelRequest(
        parent=LOCATION,
        parent_model=PARENT,
        model=v1.Model(
            display_name="demand",
            description="shopml demand: ONNX model served by the predict function, not by Vertex.",
            version_description="shopml demand 1.3.0",
            version_aliases=["candidate"],
            artifact_uri="gs://shop-prod-vertex/registry/demand/1.3.0",
            labels={"app": "shopml", "shopml-model": "demand", "shopml-version": "1-3-0"},
            container_spec=v1.ModelContainerSpec(
                image_uri=IMAGE,
                predict_route="/not-served-here/use-the-predict-function",
                health_route="/not-served-here",
            ),
        ),
    )
    assert request == expected
    assert not request.model_id


def test_first_upload_creates_the_model_under_a_fixed_id() -> None:
    request = build_upload_request(
        project=PROJECT,
        region=REGION,
        model="demand",
        version="1.0.0",
        artifact_uri="gs://b/registry/demand/1.0.0",
        serving_image=IMAGE,
    )
    assert request.model_id == "shopml-demand" and not request.parent_model
    with pytest.raises(ConfigurationError, match="SHOPML_TRAINER_IMAGE"):
        build_upload_request(
            project=PROJECT,
            region=REGION,
            model="demand",
            version="1.0.0",
            artifact_uri="gs://b",
            serving_image="",
        )


def test_register_stages_files_then_uploads_a_version(staging: FakeStaging) -> None:
    client = FakeModelService(models=[vertex_model("1.2.0", "1", ["default", "live"])])
    registry = VertexModelRegistry(PROJECT, REGION, staging, IMAGE, client=client)
    registered = registry.register("demand", "1.3.0", b"onnx", {"wape": 0.2}, aliases=("candidate",))
    assert staging.get("demand/1.3.0/model.onnx") == b"onnx"
    assert json.loads(staging.get("demand/1.3.0/card.json") or b"") == {"wape": 0.2}
    names = [name for name, _ in client.calls]
    assert names == ["list_models", "list_model_versions", "upload_model"]
    assert client.calls[0][1] == v1.ListModelsRequest(parent=LOCATION, filter='labels.shopml-model="demand"')
    assert client.calls[1][1] == v1.ListModelVersionsRequest(
        name=PARENT, filter='labels.shopml-version="1-3-0"'
    )
    upload = client.calls[2][1]
    assert upload.parent_model == PARENT and list(upload.model.version_aliases) == ["candidate"]
    assert upload.model.artifact_uri == "gs://shop-prod-vertex/registry/demand/1.3.0"
    assert registered.uri == upload.model.artifact_uri and registered.aliases == ("candidate",)


def test_register_refuses_an_existing_version(staging: FakeStaging) -> None:
    staging.put("demand/1.2.0/card.json", b"{}")
    client = FakeModelService(models=[vertex_model("1.2.0", "1", ["default"])])
    registry = VertexModelRegistry(PROJECT, REGION, staging, IMAGE, client=client)
    with pytest.raises(VersionExists):
        registry.register("demand", "1.2.0", b"onnx", {})
    assert "upload_model" not in [name for name, _ in client.calls]


def test_get_by_version_and_alias_and_versions_sorted(staging: FakeStaging) -> None:
    staging.put("demand/1.10.0/card.json", b'{"wape": 0.1}')
    staging.put("demand/1.9.0/card.json", b'{"wape": 0.3}')
    client = FakeModelService(
        models=[vertex_model("1.10.0", "2", ["candidate"]), vertex_model("1.9.0", "1", ["default", "live"])]
    )
    registry = VertexModelRegistry(PROJECT, REGION, staging, IMAGE, client=client)
    by_version = registry.get("demand", "1.9.0")
    assert by_version is not None and by_version.aliases == ("live",)  # Vertex's "default" left out
    assert by_version.card == {"wape": 0.3}
    by_alias = registry.get("demand", "candidate")
    assert by_alias is not None and by_alias.version == "1.10.0"
    assert ("get_model", v1.GetModelRequest(name=f"{PARENT}@candidate")) in client.calls
    assert registry.get("demand", "previous") is None
    assert [v.version for v in registry.versions("demand")] == ["1.9.0", "1.10.0"]


def test_set_alias_merges_the_alias_onto_that_version(staging: FakeStaging) -> None:
    client = FakeModelService(models=[vertex_model("1.9.0", "7", ["default"])])
    registry = VertexModelRegistry(PROJECT, REGION, staging, IMAGE, client=client)
    registry.set_alias("demand", "live", "1.9.0")
    assert client.calls[-1] == (
        "merge_version_aliases",
        v1.MergeVersionAliasesRequest(name=f"{PARENT}@7", version_aliases=["live"]),
    )
    assert build_merge_aliases_request(PARENT, "7", ["live"]) == client.calls[-1][1]
    with pytest.raises(PermanentError, match="no such version"):
        registry.set_alias("demand", "live", "3.0.0")


def test_registry_url_and_staging_bucket_are_checked() -> None:
    assert parse_vertex_url("vertex://shop-prod/europe-west1") == (PROJECT, REGION)
    with pytest.raises(ConfigurationError):
        parse_vertex_url("vertex://shop-prod")
    with pytest.raises(ConfigurationError, match="SHOPML_VERTEX_STAGING_BUCKET"):
        create_vertex_registry("vertex://shop-prod/europe-west1", "", IMAGE)
    registry = create_vertex_registry("vertex://shop-prod/europe-west1", "gs://shop-prod-vertex", IMAGE)
    assert registry.staging.uri("demand/1.0.0") == "gs://shop-prod-vertex/registry/demand/1.0.0"


# --- training backend ------------------------------------------------------------------------

REQUEST = TrainingRequest(
    model="demand", night=date(2025, 3, 2), start=date(2023, 8, 31), end=date(2025, 3, 1)
)
VERTEX_SETTINGS = Settings.from_env(
    {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "SHOPML_WAREHOUSE": "bigquery://shop-prod/shopml",
        "SHOPML_REGISTRY": "vertex://shop-prod/europe-west1",
        "SHOPML_TRAINING_BACKEND": "vertex",
        "SHOPML_VERTEX_REGION": REGION,
        "SHOPML_TRAINER_IMAGE": IMAGE,
        "SHOPML_TRAINER_SERVICE_ACCOUNT": TRAINER_SA,
        "SHOPML_VERTEX_STAGING_BUCKET": "gs://shop-prod-vertex",
    }
)


def test_custom_job_runs_the_trainer_image_as_the_trainer_account() -> None:
    expected = v1.CustomJob(
        display_name="shopml-train-demand-20250302",
        labels={
            "app": "shopml",
            "shopml-run-id": "shopml-train-demand-20250302",
            "shopml-model": "demand",
            "shopml-night": "2025-03-02",
        },
        job_spec=v1.CustomJobSpec(
            worker_pool_specs=[
                v1.WorkerPoolSpec(
                    machine_spec=v1.MachineSpec(machine_type="n1-standard-4"),
                    replica_count=1,
                    container_spec=v1.ContainerSpec(
                        image_uri=IMAGE,
                        command=["python", "-m", "shared.training"],
                        args=[
                            "--model",
                            "demand",
                            "--start",
                            "2023-08-31",
                            "--end",
                            "2025-03-01",
                            "--run-id",
                            "shopml-train-demand-20250302",
                        ],
                        env=[
                            v1.EnvVar(name="GOOGLE_CLOUD_PROJECT", value=PROJECT),
                            v1.EnvVar(name="SHOPML_MODEL_NAME", value="demand"),
                            v1.EnvVar(name="SHOPML_REGISTRY", value="vertex://shop-prod/europe-west1"),
                            v1.EnvVar(name="SHOPML_TRAINER_IMAGE", value=IMAGE),
                            v1.EnvVar(name="SHOPML_VERTEX_STAGING_BUCKET", value="gs://shop-prod-vertex"),
                            v1.EnvVar(name="SHOPML_WAREHOUSE", value="bigquery://shop-prod/shopml"),
                        ],
                    ),
                )
            ],
            service_account=TRAINER_SA,
            base_output_directory=v1.GcsDestination(
                output_uri_prefix="gs://shop-prod-vertex/training/shopml-train-demand-20250302"
            ),
        ),
    )
    assert build_custom_job(REQUEST, VERTEX_SETTINGS) == expected


def test_custom_job_needs_the_vertex_settings() -> None:
    incomplete = Settings.from_env({"SHOPML_TRAINING_BACKEND": "vertex", "SHOPML_TRAINER_IMAGE": IMAGE})
    with pytest.raises(
        ConfigurationError, match="SHOPML_TRAINER_SERVICE_ACCOUNT, SHOPML_VERTEX_STAGING_BUCKET"
    ):
        build_custom_job(REQUEST, incomplete)


class FakeJobService:
    def __init__(self, existing: list[Any] | None = None, fail: Exception | None = None) -> None:
        self.existing = existing or []
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def list_custom_jobs(self, request: Any) -> list[Any]:
        self.calls.append(("list_custom_jobs", request))
        if self.fail:
            raise self.fail
        return self.existing

    def create_custom_job(self, request: Any) -> Any:
        self.calls.append(("create_custom_job", request))
        return v1.CustomJob(
            name=f"{request.parent}/customJobs/123", display_name=request.custom_job.display_name
        )


def test_vertex_backend_creates_one_job_per_night() -> None:
    client = FakeJobService()
    submission = VertexTrainingBackend(VERTEX_SETTINGS, client=client).submit(REQUEST)
    assert submission.created and submission.backend_ref == f"{LOCATION}/customJobs/123"
    assert client.calls == [
        (
            "list_custom_jobs",
            v1.ListCustomJobsRequest(
                parent=LOCATION, filter='labels.shopml-run-id="shopml-train-demand-20250302"'
            ),
        ),
        (
            "create_custom_job",
            v1.CreateCustomJobRequest(parent=LOCATION, custom_job=build_custom_job(REQUEST, VERTEX_SETTINGS)),
        ),
    ]
    assert run_filter(REQUEST.run_id) == 'labels.shopml-run-id="shopml-train-demand-20250302"'


@pytest.mark.parametrize(
    "state", ["JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_PENDING"]
)
def test_vertex_backend_skips_a_night_that_already_has_a_live_or_finished_job(state: str) -> None:
    existing = v1.CustomJob(name=f"{LOCATION}/customJobs/9", state=getattr(v1.JobState, state))
    client = FakeJobService(existing=[existing])
    submission = VertexTrainingBackend(VERTEX_SETTINGS, client=client).submit(REQUEST)
    assert not submission.created and submission.backend_ref == f"{LOCATION}/customJobs/9"
    assert [name for name, _ in client.calls] == ["list_custom_jobs"]


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED"])
def test_vertex_backend_resubmits_a_night_whose_job_failed(state: str) -> None:
    existing = v1.CustomJob(name=f"{LOCATION}/customJobs/9", state=getattr(v1.JobState, state))
    client = FakeJobService(existing=[existing])
    assert VertexTrainingBackend(VERTEX_SETTINGS, client=client).submit(REQUEST).created


def test_vertex_backend_errors_are_classified() -> None:
    unavailable = FakeJobService(fail=exceptions.ServiceUnavailable("try later"))
    with pytest.raises(TransientError):
        VertexTrainingBackend(VERTEX_SETTINGS, client=unavailable).submit(REQUEST)
    invalid = FakeJobService(fail=exceptions.InvalidArgument("bad filter"))
    with pytest.raises(PermanentError):
        VertexTrainingBackend(VERTEX_SETTINGS, client=invalid).submit(REQUEST)
