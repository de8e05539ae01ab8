"""End to end on the local parts: simulated history in DuckDB → feature SQL → trainer →
ONNX + card in the local registry → a ``model-events`` message; and the champion gate."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from devkit.simulator.history import write_history
from shared import bootstrap
from shared.adapters.object_store_registry import ObjectStoreRegistry
from shared.adapters.object_stores import create_object_store
from shared.bootstrap import close_warehouse, create_warehouse
from shared.settings import REPO_ROOT, Settings
from shared.training.export import onnx_predict, onnx_session
from shared.training.run import run
from shared.training.trainer import TrainerConfig
from tests.fakes import RecordingPublisher

pytestmark = [pytest.mark.integration, pytest.mark.slow]

END = date(2024, 6, 30)
START = END - timedelta(days=199)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("training-home")
    warehouse = create_warehouse(Settings.from_env({"SHOPML_HOME": str(home)}))
    warehouse.ensure_schema()
    write_history(warehouse, 40, START - timedelta(days=28), END + timedelta(days=1), seed=3)
    close_warehouse(warehouse)
    return home


@pytest.fixture()
def wired(home: Path) -> tuple[ObjectStoreRegistry, RecordingPublisher]:
    settings = Settings.from_env({"SHOPML_HOME": str(home), "SHOPML_CHAMPION_TOLERANCE": "0"})
    registry = ObjectStoreRegistry(create_object_store(settings.registry_url))
    publisher = RecordingPublisher()
    bootstrap.override(settings=settings, registry=registry, publisher=publisher)
    yield registry, publisher
    bootstrap.reset()


def test_a_trained_model_lands_in_the_registry_as_candidate_and_a_worse_one_does_not(
    home: Path, wired: tuple[ObjectStoreRegistry, RecordingPublisher]
) -> None:
    registry, publisher = wired
    first = run(START, END, "shopml-train-demand-20240701", config=TrainerConfig(threads=2))
    assert first.decision == "promote" and first.version == "1.0.0"
    folder = home / "registry" / "demand" / "1.0.0"
    card = json.loads((folder / "card.json").read_text())
    onnx_model = (folder / "model.onnx").read_bytes()
    assert card["model"] == "demand" and card["version"] == "1.0.0"
    assert card["run_id"] == "shopml-train-demand-20240701"
    assert card["data_window"] == {"start": str(START), "end": str(END)}
    assert card["rows"]["variants"] == 40 and card["rows"]["feature_table"] > 40 * 150
    assert card["wape_model"] < card["wape_seasonal_naive"]
    assert card["parity"]["ok"] and card["timings"]["features_s"] > 0
    # The gate: it beats the zero forecast, seasonal naive and the 28-day average.
    assert card["gate"]["verdict"] == "pass" and card["decision"] == "promote" and card["reasons"] == []
    assert card["wape_model"] < card["wape_zero"]
    assert card["best_baseline"] in ("zero", "seasonal_naive", "moving_average_28")
    assert registry.get("demand", "candidate").version == "1.0.0"  # type: ignore[union-attr]
    # The registered file is the model the card describes.
    session = onnx_session(onnx_model)
    sample = np.zeros((3, len(card["features"])), dtype=np.float32)
    assert onnx_predict(session, sample).shape == (3,)

    topic, data, attributes = publisher.messages[-1]
    assert topic == "model-events" and attributes["event_type"] == "candidate_registered"
    assert json.loads(data)["version"] == "1.0.0"

    # A much weaker model (one tree) is kept for the record but not promoted: the champion
    # (the candidate, nothing is live yet) stays.
    second = run(START, END, "shopml-train-demand-20240702", config=TrainerConfig(max_rounds=1, cv_folds=1))
    assert second.decision == "reject" and second.version == "1.1.0"
    assert second.card["champion"]["version"] == "1.0.0"
    assert second.card["champion"]["wape"] < second.card["wape_model"]
    assert second.card["decision"] == "reject" and second.card["reasons"]
    assert registry.get("demand", "candidate").version == "1.0.0"  # type: ignore[union-attr]
    assert "candidate" not in registry.get("demand", "1.1.0").aliases  # type: ignore[union-attr]
    assert publisher.messages[-1][2]["event_type"] == "rejected"


def test_the_cli_names_too_little_history_and_registers_nothing(home: Path, tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SHOPML_HOME": str(home),
        "SHOPML_REGISTRY": f"file://{tmp_path / 'registry'}",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.training",
            "--start",
            str(END - timedelta(days=20)),
            "--end",
            str(END),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "not enough history" in out.stderr
    assert not (tmp_path / "registry").exists() or not any((tmp_path / "registry").rglob("model.onnx"))


def test_the_cli_refuses_a_window_that_ends_before_it_starts() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "shared.training", "--start", "2024-02-01", "--end", "2024-01-01"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "before --start" in out.stderr
