"""Training backends: where ``python -m shared.training`` runs.

* ``LocalProcessBackend`` (``SHOPML_TRAINING_BACKEND=local``): a detached process on this
  machine, its log in ``<home>/run/training/<run_id>.log``.
* ``VertexTrainingBackend`` (``vertex``): a Vertex AI CustomJob running the trainer image.

Both are idempotent on ``TrainingRequest.run_id`` (one run per model and night): Pub/Sub
delivers at least once and a scheduler may fire twice, and a night must not train twice.
``google.cloud.aiplatform_v1`` is imported inside functions only (about 3 s to import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from shared.adapters.vertex_api import aiplatform_v1, location_path, regional_client_options
from shared.errors import ConfigurationError, PermanentError, TransientError
from shared.ports import TrainingRequest, TrainingSubmission
from shared.settings import REPO_ROOT, Settings

TRAINER_MODULE = "shared.training"
# Jobs in these states did not (and will not) produce a model: the night may be submitted again.
RETRYABLE_JOB_STATES = ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
DEFAULT_MACHINE_TYPE = "n1-standard-4"


def trainer_args(request: TrainingRequest) -> list[str]:
    """The trainer CLI's arguments for one request (``python -m shared.training ...``)."""
    return [
        "--model",
        request.model,
        "--start",
        request.start.isoformat(),
        "--end",
        request.end.isoformat(),
        "--run-id",
        request.run_id,
    ]


def trainer_environment(settings: Settings, request: TrainingRequest) -> dict[str, str]:
    """What the trainer reads from its environment: where the data is, where models go."""
    env = {
        "GOOGLE_CLOUD_PROJECT": settings.project,
        "SHOPML_WAREHOUSE": settings.warehouse_url,
        "SHOPML_REGISTRY": settings.registry_url,
        "SHOPML_MODEL_NAME": request.model,
    }
    if settings.registry_url.startswith("vertex://"):
        # The Vertex registry stages model files there and needs an image for container_spec.
        env["SHOPML_VERTEX_STAGING_BUCKET"] = settings.vertex_staging_bucket
        env["SHOPML_TRAINER_IMAGE"] = settings.trainer_image
    return env


# --- local process ------------------------------------------------------------------------------


class LocalProcessBackend:
    """Runs the trainer as a process of this machine.

    ``submit`` claims the marker ``<home>/training/<run_id>.json`` with ``O_CREAT | O_EXCL``
    (atomic on a local file system: of two submits for the same night exactly one creates it),
    then starts the trainer detached (its own session, so it outlives a function worker) and
    records its pid in the marker. A second submit finds the marker and starts nothing
    (``created=False``). If the process cannot be started the marker is removed, so a retry can.
    Delete the marker to train the same night again.

    ``run`` is the foreground variant (a terminal, tests): it starts the trainer, waits and
    returns the exit code; it claims no marker.
    """

    def __init__(
        self, settings: Settings, *, command: Sequence[str] | None = None, cwd: Path | None = None
    ) -> None:
        self.settings = settings
        self.command = list(command) if command is not None else [sys.executable, "-m", TRAINER_MODULE]
        self.cwd = cwd or REPO_ROOT

    def marker_path(self, run_id: str) -> Path:
        return self.settings.home / "training" / f"{run_id}.json"

    def log_path(self, run_id: str) -> Path:
        return self.settings.run_dir / "training" / f"{run_id}.log"

    def argv(self, request: TrainingRequest) -> list[str]:
        return [*self.command, *trainer_args(request)]

    def environment(self, request: TrainingRequest) -> dict[str, str]:
        env = dict(os.environ)
        env.update(trainer_environment(self.settings, request))
        env["SHOPML_HOME"] = str(self.settings.home)
        env["SHOPML_TOPIC_PREFIX"] = self.settings.topic_prefix
        if self.settings.pubsub_emulator_host:
            env["PUBSUB_EMULATOR_HOST"] = self.settings.pubsub_emulator_host
        return env

    def _process(self, request: TrainingRequest, log_file: IO[bytes]) -> dict[str, Any]:
        """What both ways of starting the trainer share: command, folder, environment, log."""
        return {
            "args": self.argv(request),
            "cwd": self.cwd,
            "env": self.environment(request),
            "stdin": subprocess.DEVNULL,
            "stdout": log_file,
            "stderr": subprocess.STDOUT,
        }

    def submit(self, request: TrainingRequest) -> TrainingSubmission:
        marker = self.marker_path(request.run_id)
        log = self.log_path(request.run_id)
        marker.parent.mkdir(parents=True, exist_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return TrainingSubmission(run_id=request.run_id, backend_ref=str(log), created=False)
        try:
            with open(log, "ab") as log_file:
                process = subprocess.Popen(**self._process(request, log_file), start_new_session=True)
        except OSError as exc:
            os.close(fd)
            marker.unlink(missing_ok=True)
            raise TransientError(f"could not start the trainer for {request.run_id}: {exc}") from exc
        record = {
            "run_id": request.run_id,
            "model": request.model,
            "night": request.night.isoformat(),
            "start": request.start.isoformat(),
            "end": request.end.isoformat(),
            "pid": process.pid,
            "log": str(log),
            "submitted_at": datetime.now(UTC).isoformat(),
        }
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2)
        return TrainingSubmission(run_id=request.run_id, backend_ref=str(log), created=True)

    def run(self, request: TrainingRequest, *, timeout_s: float | None = None) -> int:
        """Run the trainer in the foreground (log in the same file); return its exit code."""
        log = self.log_path(request.run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as log_file:
            completed = subprocess.run(**self._process(request, log_file), timeout=timeout_s, check=False)
        return completed.returncode


# --- Vertex AI CustomJob ------------------------------------------------------------------------


def job_labels(request: TrainingRequest) -> dict[str, str]:
    return {
        "app": "shopml",
        "shopml-run-id": request.run_id,
        "shopml-model": request.model,
        "shopml-night": request.night.isoformat(),
    }


def run_filter(run_id: str) -> str:
    """The ``ListCustomJobs`` filter that finds this night's job."""
    return f'labels.shopml-run-id="{run_id}"'


def check_vertex_settings(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("SHOPML_TRAINER_IMAGE", settings.trainer_image),
            ("SHOPML_TRAINER_SERVICE_ACCOUNT", settings.trainer_service_account),
            ("SHOPML_VERTEX_STAGING_BUCKET", settings.vertex_staging_bucket),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(
            f"SHOPML_TRAINING_BACKEND=vertex needs {', '.join(missing)} (Terraform sets them)"
        )
    if not settings.vertex_staging_bucket.startswith("gs://"):
        raise ConfigurationError(
            f"SHOPML_VERTEX_STAGING_BUCKET={settings.vertex_staging_bucket!r} must be gs://<bucket>"
        )


def build_custom_job(
    request: TrainingRequest, settings: Settings, *, machine_type: str = DEFAULT_MACHINE_TYPE
) -> Any:
    """The Vertex AI ``CustomJob`` that runs ``python -m shared.training`` for ``request``."""
    v1 = aiplatform_v1()
    check_vertex_settings(settings)
    env = trainer_environment(settings, request)
    staging = settings.vertex_staging_bucket.rstrip("/")
    return v1.CustomJob(
        display_name=request.run_id,
        labels=job_labels(request),
        job_spec=v1.CustomJobSpec(
            worker_pool_specs=[
                v1.WorkerPoolSpec(
                    machine_spec=v1.MachineSpec(machine_type=machine_type),
                    replica_count=1,
                    container_spec=v1.ContainerSpec(
                        image_uri=settings.trainer_image,
                        command=["python", "-m", TRAINER_MODULE],
                        args=trainer_args(request),
                        env=[v1.EnvVar(name=k, value=v) for k, v in sorted(env.items())],
                    ),
                )
            ],
            service_account=settings.trainer_service_account,
            base_output_directory=v1.GcsDestination(output_uri_prefix=f"{staging}/training/{request.run_id}"),
        ),
    )


def _map_error(exc: Exception, what: str) -> Exception:
    from google.api_core import exceptions

    if isinstance(exc, exceptions.InvalidArgument | exceptions.FailedPrecondition):
        return PermanentError(f"{what}: {exc}")
    # Unavailable, quota, permission (often a deploy still in progress): retried by Pub/Sub,
    # and kept in the dead-letter topic if it never heals.
    return TransientError(f"{what}: {exc}")


class VertexTrainingBackend:
    """Submits one Vertex AI CustomJob per run id.

    Idempotency: before creating, it lists the CustomJobs labelled ``shopml-run-id=<run_id>``
    and creates nothing if one exists that is not FAILED, CANCELLED or EXPIRED (queued,
    running or succeeded): a redelivered request returns that job with ``created=False``.
    A failed night may be submitted again. The check and the create are two calls: two
    deliveries of the same request handled at the very same moment could both create a job
    (Vertex has no create-if-absent for jobs); the subscription's ack deadline and the
    function's one-request concurrency make that unlikely, and the trainer's registration
    refuses a duplicate version.
    """

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def parent(self) -> str:
        return location_path(self.settings.project, self.settings.vertex_region)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aiplatform_v1().JobServiceClient(
                client_options=regional_client_options(self.settings.vertex_region)
            )
        return self._client

    def existing_job(self, run_id: str) -> Any | None:
        from google.api_core import exceptions

        request = aiplatform_v1().ListCustomJobsRequest(parent=self.parent, filter=run_filter(run_id))
        try:
            jobs = list(self.client.list_custom_jobs(request=request))
        except exceptions.GoogleAPICallError as exc:
            raise _map_error(exc, f"listing CustomJobs of {run_id}") from exc
        for job in jobs:
            state = getattr(job.state, "name", str(job.state))
            if state not in RETRYABLE_JOB_STATES:
                return job
        return None

    def submit(self, request: TrainingRequest) -> TrainingSubmission:
        from google.api_core import exceptions

        custom_job = build_custom_job(request, self.settings)  # settings errors before any call
        existing = self.existing_job(request.run_id)
        if existing is not None:
            return TrainingSubmission(run_id=request.run_id, backend_ref=str(existing.name), created=False)
        create = aiplatform_v1().CreateCustomJobRequest(parent=self.parent, custom_job=custom_job)
        try:
            created = self.client.create_custom_job(request=create)
        except exceptions.GoogleAPICallError as exc:
            raise _map_error(exc, f"creating the CustomJob of {request.run_id}") from exc
        return TrainingSubmission(run_id=request.run_id, backend_ref=str(created.name), created=True)


def describe(submission: TrainingSubmission) -> Mapping[str, Any]:
    return {"run_id": submission.run_id, "backend_ref": submission.backend_ref, "created": submission.created}
