"""trigger_training through the HTTP layer: real CloudEvents and real Pub/Sub push envelopes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.adapters.training_backends import LocalProcessBackend
from shared.errors import TransientError
from shared.ports import TrainingRequest, TrainingSubmission
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SUBSCRIPTION_SOURCE = "//pubsub.googleapis.com/projects/shopml-local/topics/training-requests"


class RecordingBackend:
    """A ``TrainingBackend`` that remembers every submit and, like the real ones, creates one
    run per run id."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.submitted: list[TrainingRequest] = []
        self.runs: dict[str, TrainingRequest] = {}

    def submit(self, request: TrainingRequest) -> TrainingSubmission:
        if self.fail:
            raise self.fail
        self.submitted.append(request)
        created = request.run_id not in self.runs
        self.runs.setdefault(request.run_id, request)
        return TrainingSubmission(
            run_id=request.run_id, backend_ref=f"fake/{request.run_id}", created=created
        )


def push_event(
    data: bytes = b"", attributes: dict[str, str] | None = None, time: str = "2025-03-02T02:00:00Z"
) -> CloudEvent:
    """The CloudEvent functions-framework makes of a Pub/Sub push (data still base64)."""
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes or {},
        "messageId": "m-1",
        "publishTime": time,
    }
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": SUBSCRIPTION_SOURCE,
            "time": time,
        },
        {"message": message},
    )


def post_event(client: Any, event: CloudEvent) -> Any:
    headers, body = to_binary(event)
    return client.post("/", headers=headers, data=body)


@pytest.fixture
def backend() -> Any:
    recording = RecordingBackend()
    bootstrap.override(
        settings=Settings.from_env({"SHOPML_MODEL_NAME": "demand", "SHOPML_TRAINING_HISTORY_DAYS": "90"}),
        training_backend=recording,
    )
    yield recording
    bootstrap.reset()


@pytest.fixture
def client(function_client, backend: RecordingBackend):  # type: ignore[no-untyped-def]
    return function_client("trigger_training")


def test_scheduler_message_submits_the_night_of_the_event(client, backend, capsys) -> None:  # type: ignore[no-untyped-def]
    response = post_event(client, push_event())
    assert response.status_code == 200
    [request] = backend.submitted
    assert request == TrainingRequest(
        model="demand", night=date(2025, 3, 2), start=date(2024, 12, 2), end=date(2025, 3, 1)
    )
    log = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    submitted = [entry for entry in log if entry["message"] == "training submitted"]
    assert submitted and submitted[0]["run_id"] == "shopml-train-demand-20250302"
    assert submitted[0]["created"] is True


def test_the_same_night_twice_is_one_run(client, backend, capsys) -> None:  # type: ignore[no-untyped-def]
    assert post_event(client, push_event(time="2025-03-02T02:00:00Z")).status_code == 200
    assert post_event(client, push_event(time="2025-03-02T02:00:07Z")).status_code == 200
    assert len(backend.runs) == 1
    log = capsys.readouterr().out
    assert "training already submitted for this night" in log


def test_manual_request_names_night_model_and_history(client, backend) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"night": "2024-12-25", "model": "demand_eu", "history_days": 7}).encode()
    assert post_event(client, push_event(body)).status_code == 200
    [request] = backend.submitted
    assert (request.model, request.start, request.end) == (
        "demand_eu",
        date(2024, 12, 18),
        date(2024, 12, 24),
    )


def test_raw_pubsub_push_envelope_is_understood(client, backend) -> None:  # type: ignore[no-untyped-def]
    # What a push subscription really sends; functions-framework builds the CloudEvent itself.
    envelope = {
        "subscription": "projects/shopml-local/subscriptions/training-requests-trigger-training",
        "message": {
            "data": base64.b64encode(b'{"history_days": 10}').decode(),
            "attributes": {"source": "scheduler"},
            "messageId": "42",
            "publishTime": "2025-06-01T01:30:00Z",
        },
    }
    response = client.post(
        "/projects/shopml-local/topics/training-requests",
        json=envelope,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    [request] = backend.submitted
    assert (request.night, request.start, request.end) == (
        date(2025, 6, 1),
        date(2025, 5, 22),
        date(2025, 5, 31),
    )


@pytest.mark.parametrize(
    "event",
    [
        push_event(b"not json"),
        push_event(b'{"night": "2025-02-30"}'),
        push_event(attributes={"history_days": "0"}),
        CloudEvent({"type": "t", "source": "s"}, {"no": "message"}),
    ],
)
def test_bad_requests_are_acknowledged_and_start_nothing(client, backend, capsys, event) -> None:  # type: ignore[no-untyped-def]
    response = post_event(client, event)
    assert response.status_code == 200  # acknowledged: retrying cannot help
    assert backend.submitted == []
    assert "training request refused" in capsys.readouterr().out


def test_transient_backend_failure_is_retried(function_client) -> None:  # type: ignore[no-untyped-def]
    bootstrap.override(
        settings=Settings.from_env({}), training_backend=RecordingBackend(fail=TransientError("Vertex down"))
    )
    try:
        response = post_event(function_client("trigger_training"), push_event())
    finally:
        bootstrap.reset()
    assert response.status_code == 500  # Pub/Sub redelivers


# --- the real local backend, with a stand-in trainer -----------------------------------------

FAKE_TRAINER = (
    "import json, os, sys, time; time.sleep(float(os.environ.get('FAKE_TRAINER_SLEEP', '0'))); "
    "print(json.dumps({'argv': sys.argv[1:], 'registry': os.environ['SHOPML_REGISTRY'], "
    "'warehouse': os.environ['SHOPML_WAREHOUSE'], 'home': os.environ['SHOPML_HOME']}), flush=True); "
    "sys.exit(int(os.environ.get('FAKE_TRAINER_EXIT', '0')))"
)
REQUEST = TrainingRequest(
    model="demand", night=date(2025, 3, 2), start=date(2025, 2, 1), end=date(2025, 3, 1)
)


def wait_for_text(path: Path, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} stayed empty")


def test_local_backend_starts_the_trainer_once_per_night(tmp_path: Path) -> None:
    settings = Settings.from_env({"SHOPML_HOME": str(tmp_path)})
    backend = LocalProcessBackend(settings, command=[sys.executable, "-c", FAKE_TRAINER])
    first = backend.submit(REQUEST)
    second = backend.submit(REQUEST)
    assert first.created and not second.created
    assert (
        first.backend_ref
        == second.backend_ref
        == str(tmp_path / "run" / "training" / f"{REQUEST.run_id}.log")
    )
    marker = json.loads((tmp_path / "training" / f"{REQUEST.run_id}.json").read_text())
    assert marker["run_id"] == REQUEST.run_id and marker["pid"] > 0
    ran = json.loads(wait_for_text(Path(first.backend_ref)).splitlines()[0])
    assert ran["argv"] == [
        "--model",
        "demand",
        "--start",
        "2025-02-01",
        "--end",
        "2025-03-01",
        "--run-id",
        "shopml-train-demand-20250302",
    ]
    assert ran["registry"] == f"file://{tmp_path / 'registry'}"
    assert ran["warehouse"] == f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    assert ran["home"] == str(tmp_path)


def test_local_backend_concurrent_submits_start_one_process(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FAKE_TRAINER_SLEEP", "0.5")
    backend = LocalProcessBackend(
        Settings.from_env({"SHOPML_HOME": str(tmp_path)}), command=[sys.executable, "-c", FAKE_TRAINER]
    )
    results: list[TrainingSubmission] = []
    threads = [threading.Thread(target=lambda: results.append(backend.submit(REQUEST))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.created for r in results) == 1


def test_local_backend_foreground_run_returns_the_exit_code(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    backend = LocalProcessBackend(
        Settings.from_env({"SHOPML_HOME": str(tmp_path)}), command=[sys.executable, "-c", FAKE_TRAINER]
    )
    assert backend.run(REQUEST) == 0
    monkeypatch.setenv("FAKE_TRAINER_EXIT", "3")
    assert backend.run(REQUEST) == 3
    assert not (tmp_path / "training").exists()  # run() claims no marker
    assert backend.log_path(REQUEST.run_id).read_text().count("--run-id") == 2


def test_local_backend_that_cannot_start_releases_the_night(tmp_path: Path) -> None:
    backend = LocalProcessBackend(
        Settings.from_env({"SHOPML_HOME": str(tmp_path)}), command=[str(tmp_path / "no-such-python")]
    )
    with pytest.raises(TransientError, match="could not start the trainer"):
        backend.submit(REQUEST)
    assert not backend.marker_path(REQUEST.run_id).exists()


def test_trigger_training_imports_no_heavy_library() -> None:
    # Cold start: aiplatform (~3 s) is imported by the Vertex backend only when it submits.
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('main', 'functions/trigger_training/main.py')\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "from shared import bootstrap\n"
        "heavy = ('google.cloud.aiplatform', 'google.cloud.aiplatform_v1', 'lightgbm', 'onnxruntime',\n"
        "         'sklearn', 'scipy', 'feast', 'google.cloud.storage', 'duckdb')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
