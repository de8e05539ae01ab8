"""``shopml drift`` end to end on files: exit codes 0/1/2, the drift.json shape, and an HTML
report that loads nothing from elsewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devkit.cli import main


def _write(path: Path, frame: pd.DataFrame) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def _frames(rng: np.random.Generator, shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    def frame(n: int, mean: float, weights: list[float]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "price": rng.normal(20.0 + mean * 5.0, 5.0, size=n),
                "units": rng.poisson(3.0, size=n),
                "channel": rng.choice(["web", "pos", "app"], size=n, p=weights),
            }
        )

    return frame(4000, 0.0, [0.6, 0.3, 0.1]), frame(2000, shift, [0.6, 0.3, 0.1])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_no_drift_exits_0_and_writes_both_files(tmp_path: Path, suffix: str) -> None:
    reference, current = _frames(np.random.default_rng(1), shift=0.0)
    code = main(
        [
            "drift",
            "--reference", str(_write(tmp_path / f"ref{suffix}", reference)),
            "--current", str(_write(tmp_path / f"cur{suffix}", current)),
            "--out", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    assert code == 0
    document = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert document["drifted"] == []
    assert set(document["features"]) == {"price", "units", "channel"}
    assert (tmp_path / "out" / "drift.html").is_file()


def test_drift_exits_1_with_the_documented_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference, current = _frames(np.random.default_rng(2), shift=1.0)  # price moves 1 sd
    current["channel"] = np.random.default_rng(3).choice(["web", "pos", "app"], size=len(current))
    ref_path, cur_path = _write(tmp_path / "r.csv", reference), _write(tmp_path / "c.csv", current)
    assert (
        main(["drift", "--reference", str(ref_path), "--current", str(cur_path), "--out", str(tmp_path)]) == 1
    )
    document = json.loads((tmp_path / "drift.json").read_text())
    assert set(document) >= {"features", "drifted"}
    assert document["drifted"] == ["price", "channel"]
    price = document["features"]["price"]
    for key in ("ks_statistic", "ks_pvalue", "psi", "mean_shift_sigma"):
        assert isinstance(price[key], float), key
    assert price["drifted"] is True and document["features"]["units"]["drifted"] is False
    channel = document["features"]["channel"]
    assert channel["kind"] == "categorical" and {"chi2_pvalue", "linf", "psi"} <= set(channel)
    assert "price" in capsys.readouterr().out


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    reference, current = _frames(np.random.default_rng(4), shift=1.0)
    ref_path, cur_path = _write(tmp_path / "r.csv", reference), _write(tmp_path / "c.csv", current)
    main(["drift", "--reference", str(ref_path), "--current", str(cur_path), "--out", str(tmp_path)])
    page = (tmp_path / "drift.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "@import" not in page
    assert page.count("<svg") == 3  # a histogram per feature


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference, current = _frames(np.random.default_rng(5), shift=0.0)
    ref_path = _write(tmp_path / "r.csv", reference)
    missing = tmp_path / "absent.csv"
    assert main(["drift", "--reference", str(ref_path), "--current", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    other = _write(tmp_path / "other.csv", current.rename(columns={"units": "quantity"}))
    assert main(["drift", "--reference", str(ref_path), "--current", str(other), "--out", str(tmp_path)]) == 2
    message = capsys.readouterr().err
    assert "units" in message and "quantity" in message
    assert not (tmp_path / "drift.json").exists()
