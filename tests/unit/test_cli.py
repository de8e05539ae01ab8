"""The ``shopml`` command: every subcommand answers --help, bad input exits 2, and --help stays
cheap (no heavy import before a subcommand runs)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.cli import build_parser, main
from devkit.progress import Progress

SUBCOMMANDS = (
    "stack", "demo", "import-orders", "train", "features", "deploy", "rollback", "simulate", "drift",
)  # fmt: skip
# google.cloud itself is a namespace package some .pth files import at start-up; its clients are heavy.
HEAVY = (
    "pandas", "numpy", "lightgbm", "onnxruntime", "duckdb", "feast", "scipy", "sqlglot",
    "google.cloud.pubsub_v1", "google.cloud.bigquery", "google.cloud.storage", "google.cloud.aiplatform",
)  # fmt: skip


def test_help_imports_nothing_heavy(repo_root: Path) -> None:
    probe = (
        "import sys\n"
        "from devkit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exit_:\n    assert exit_.code == 0\n"
        f"heavy = [m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY!r})]\n"
        "print('HEAVY:' + ','.join(sorted(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=repo_root, capture_output=True, text=True, check=True, timeout=60
    )
    assert "usage: shopml" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY:", "--help imported heavy modules"


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    assert f"usage: shopml {name}" in capsys.readouterr().out


def test_subcommands_are_the_documented_ones() -> None:
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(SUBCOMMANDS) <= set(choices)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["train", "--start", "2024-13-01", "--end", "2024-12-31"],
        ["train", "--end", "2024-12-31"],
        ["import-orders", "x.csv", "--format", "xml"],
        ["stack", "sideways"],
        ["rollback", "demand"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2


def test_import_orders_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "orders.csv"
    assert main(["import-orders", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().out


def test_train_end_before_start_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["train", "--start", "2024-02-01", "--end", "2024-01-01"])
    assert exited.value.code == 2
    assert "before --start" in capsys.readouterr().err


def test_the_console_script_runs_the_cli(repo_root: Path) -> None:
    script = repo_root / ".venv" / "bin" / "shopml"
    if not script.exists():
        pytest.skip("make install writes .venv/bin/shopml; this run did not come through make")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0
    assert "usage: shopml" in out.stdout


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_in_a_log_writes_plain_lines_at_an_interval() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress("importing", total=1000, unit="lines", stream=stream, plain_every=5, clock=clock)
    progress.update(count=10)  # the first call only starts the interval
    clock.now += 2
    progress.update(count=200)
    assert stream.getvalue() == ""
    clock.now += 4
    progress.update(count=600)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "importing: 600 / 1,000 lines (60.0%) 100 lines/s, 4 s left"
    assert lines[1].startswith("importing: 600 / 1,000 lines (60.0%) 100 lines/s, 4 s left, done in 6.0 s")


def test_progress_on_a_terminal_redraws_one_line() -> None:
    clock, stream = Clock(), io.StringIO()
    with Progress("loading", stream=stream, interactive=True, clock=clock) as progress:
        for _ in range(3):
            clock.now += 1
            progress.update(advance=50)
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") == 4  # three redraws and the final line
    assert text.endswith("loading: 150 items 50 items/s, done in 3.0 s\n")
