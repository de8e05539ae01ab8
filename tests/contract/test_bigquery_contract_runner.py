"""Runs the warehouse contract suite against BigQuery: bqemulator inside ``.venv-bq``.

bqemulator (PyPI 1.4.0) caps protobuf below 7 and sqlglot below 30.12, so it cannot live in
the main venv; ``mk/bq.mk`` builds ``.venv-bq`` (``make test`` does it first). This test starts
the emulator on free ports (HOME = ``.venv-bq/home``, where the DuckDB spatial extension it
needs has been copied, so it never tries to download it), runs ``pytest tests/contract -k
bigquery`` there with the real google-cloud-bigquery client pointed at it, stops the emulator's
whole process group, and then compares every view's answer on the shared messy data set with
DuckDB's. ``tests/conftest.py`` is kept out of that run (``--confcutdir``): it imports packages
``.venv-bq`` does not have; ``-p no:bqemulator`` disables bqemulator's own pytest plugin (it
needs testcontainers).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT
from tests.contract import datasets
from tests.contract.conftest import contract_schema

BQ_VENV = REPO_ROOT / ".venv-bq"
PROJECT = "shopml-contract"
INNER = os.environ.get("SHOPML_TEST_BIGQUERY_ENDPOINT")  # set inside the .venv-bq run


def _require_bq_venv() -> None:
    missing = [
        p
        for p in (BQ_VENV / "bin" / "python", BQ_VENV / "bin" / "bqemulator", BQ_VENV / ".installed")
        if not p.exists()
    ]
    if missing:
        pytest.fail(
            f"{BQ_VENV} is missing or incomplete ({', '.join(p.name for p in missing)}): "
            "run `make test` (it builds .venv-bq through mk/bq.mk), or `make bq-venv`",
            pytrace=False,
        )


@contextmanager
def running_emulator(workdir: Path) -> Iterator[str]:
    """A fresh, in-memory bqemulator on free ports; yields its REST endpoint."""
    log_path = workdir / "bqemulator.log"
    env = {**os.environ, "HOME": str(BQ_VENV / "home")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(BQ_VENV / "bin" / "bqemulator"),
                "start",
                "--project",
                PROJECT,
                "--rest-host",
                "127.0.0.1",
                "--rest-port",
                "0",
                "--grpc-host",
                "127.0.0.1",
                "--grpc-port",
                "0",
                "--log-format",
                "json",
                "--ephemeral",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stopped as a whole, no orphans
        )
    try:
        endpoint = _wait_for_rest_port(process, log_path, timeout=60)
        yield endpoint
    finally:
        _stop_group(process)


def _wait_for_rest_port(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if '"rest.listen"' in line:
                try:
                    return f"http://127.0.0.1:{json.loads(line)['port']}"
                except (ValueError, KeyError):
                    match = re.search(r'"port":\s*(\d+)', line)
                    if match:
                        return f"http://127.0.0.1:{match.group(1)}"
        if process.poll() is not None:
            break
        time.sleep(0.1)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    pytest.fail(f"bqemulator did not start (exit {process.poll()}):\n{tail}", pytrace=False)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # anything left in the group (there should be none)
        os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.integration
@pytest.mark.skipif(
    bool(INNER), reason="this is the outer runner; inside .venv-bq it would start itself again"
)
def test_bigquery_contract_suite_passes_against_bqemulator(tmp_path: Path) -> None:
    _require_bq_venv()
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    junit = tmp_path / "junit.xml"
    with running_emulator(tmp_path) as endpoint:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "SHOPML_TEST_BIGQUERY_ENDPOINT": endpoint,
            "SHOPML_TEST_BIGQUERY_PROJECT": PROJECT,
            "SHOPML_CONTRACT_SNAPSHOT_DIR": str(snapshots),
            "HOME": str(BQ_VENV / "home"),
        }
        env.pop("VIRTUAL_ENV", None)
        run = subprocess.run(
            [
                str(BQ_VENV / "bin" / "python"),
                "-m",
                "pytest",
                "tests/contract",
                "-k",
                "bigquery and not runner",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:bqemulator",
                "--confcutdir",
                "tests/contract",
                "-q",
                "-rs",
                f"--junitxml={junit}",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    output = run.stdout + run.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    print(output[-6000:])  # shown with -s / on failure: the inner summary and skip reasons
    assert run.returncode != 5, f"the BigQuery contract run collected no tests:\n{output[-3000:]}"
    assert run.returncode == 0, f"the BigQuery contract run failed (exit {run.returncode}):\n{output[-8000:]}"
    found = re.search(r"(\d+) passed", summary)
    passed = int(found.group(1)) if found else 0
    assert passed > 0, f"no test passed against the emulator: {summary}"
    emulated = _passed_against_emulator(junit)
    assert emulated >= 20, f"only {emulated} contract tests ran against the emulator ({summary})"

    # Same data, same views: the emulator's answers must be DuckDB's answers, row for row.
    bq_answers = json.loads((snapshots / "bigquery.json").read_text())
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse

    schema = contract_schema()
    duck_answers = datasets.load_and_snapshot(DuckDBWarehouse(tmp_path / "compare.duckdb", schema), schema)
    assert set(bq_answers) == set(duck_answers)
    for view in sorted(duck_answers):
        assert bq_answers[view] == duck_answers[view], (
            f"view {view} answers differently on BigQuery and DuckDB"
        )


def _passed_against_emulator(junit: Path) -> int:
    count = 0
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own pytest's output
        if "[bigquery" in case.get("name", "") and not any(
            child.tag in ("failure", "error", "skipped") for child in case
        ):
            count += 1
    return count
