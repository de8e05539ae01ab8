"""Through the ``shopml`` command, as a merchant would: import the real 85-day retail sample,
train on it, and find the model registered but refused by the baseline gate (too little
history to beat every baseline), with the reasons and the best baseline in its card; import
the real 9-month file into a fresh warehouse, train on it, and find the model promoted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "devkit" / "data" / "online_retail_sample.csv"
NINE_MONTHS = Path(__file__).resolve().parents[2] / "devkit" / "data" / "online_retail_2010-12_2011-08.csv.gz"


def shopml(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPML_", "PUBSUB_", "FIRESTORE_"))}
    env.pop("GOOGLE_CLOUD_PROJECT", None)
    env["SHOPML_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "devkit.cli", *argv], env=env, capture_output=True, text=True, timeout=600
    )


def test_import_then_train_the_sample_registers_a_model_the_gate_refuses(tmp_path: Path) -> None:
    imported = shopml(tmp_path, "import-orders", str(SAMPLE))
    assert imported.returncode == 0, imported.stderr
    assert "orders                1,807" in imported.stdout
    assert "rejected rows             0" in imported.stdout

    trained = shopml(
        tmp_path,
        "train",
        "--start",
        "2010-12-01",
        "--end",
        "2011-02-23",
        "--cv-folds",
        "1",
        "--holdout-days",
        "14",
    )
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout.strip().splitlines()[-1])
    assert summary["decision"] == "reject"
    assert summary["gate"] == "fail"
    assert summary["reasons"], "a refused model says why"
    assert "registered without a model-events message" in trained.stderr

    version_dir = tmp_path / "registry" / "demand" / summary["version"]
    card = json.loads((version_dir / "card.json").read_text())
    assert (version_dir / "model.onnx").stat().st_size > 0
    assert card["decision"] == "reject"
    assert card["gate"]["verdict"] == "fail"
    assert card["reasons"] == summary["reasons"]
    assert card["best_baseline"] in {"zero", "seasonal_naive", "moving_average_28"}
    assert card["data_window"] == {"start": "2010-12-01", "end": "2011-02-23"}
    aliases_file = tmp_path / "registry" / "demand" / "aliases.json"
    aliases = json.loads(aliases_file.read_text()) if aliases_file.exists() else {}
    assert "candidate" not in aliases and "live" not in aliases, "a refused model is never promoted"

    again = shopml(tmp_path, "import-orders", str(SAMPLE), "--json")
    assert again.returncode == 0, again.stderr


def test_the_nine_month_file_imports_and_trains_to_a_promoted_model(tmp_path: Path) -> None:
    """The real 9-month file (320,705 lines) on a fresh warehouse, default settings: the model
    beats every baseline in the mean over the cross-validation windows and is promoted."""
    imported = shopml(tmp_path, "import-orders", str(NINE_MONTHS), "--json")
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout.strip().splitlines()[-1])
    assert report["orders"] == 12978

    trained = shopml(tmp_path, "train", "--start", "2010-12-01", "--end", "2011-08-31")
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout.strip().splitlines()[-1])
    card = json.loads((tmp_path / "registry" / "demand" / summary["version"] / "card.json").read_text())
    assert summary["decision"] == "promote", card["reasons"]
    assert card["gate"]["verdict"] == "pass" and card["reasons"] == []
    judged = card["gate"]["judged_on"]
    assert judged["windows"] == len(card["cross_validation"]) + 1
    model = judged["means"]["model"]
    for baseline in ("zero", "seasonal_naive", "moving_average_28"):
        theirs = judged["means"][baseline]
        assert model["wape"] < theirs["wape"] and model["rmse"] < theirs["rmse"]
        assert model["rmsse"] < theirs["rmsse"]
    assert model["abs_bias"] <= 0.10
    assert card["parity"]["ok"] and card["parity"]["max_rel_diff"] < card["parity"]["rtol"]
    aliases = json.loads((tmp_path / "registry" / "demand" / "aliases.json").read_text())
    assert aliases["candidate"] == summary["version"]
