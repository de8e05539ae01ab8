"""shopml backfill killed with SIGKILL in the middle of its orders, then run again: it polls the
same bulk operation, resumes at the recorded offset, and every version is loaded exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from tests.standin import SHOP, TOKEN, simulated_stand_in

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def backfill_command(home: Path, url: str) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "SHOPML_HOME": str(home),
        "SHOPML_SHOPIFY_ADMIN_URL": url,
        "SHOPML_SHOPIFY_ACCESS_TOKENS": f"{SHOP}={TOKEN}",
        "PYTHONPATH": str(REPO),
    }
    args = [sys.executable, "-m", "devkit.cli", "backfill", "--shop", SHOP, "--since", "2024-10-01",
            "--direct", "--batch", "10"]  # fmt: skip
    return args, env


def test_a_backfill_killed_mid_orders_resumes(tmp_path: Path) -> None:
    standin, _ = simulated_stand_in(n_variants=12, days=30)
    try:
        args, env = backfill_command(tmp_path, standin.url)
        state_file = tmp_path / "sync" / "backfill" / f"{SHOP}.json"
        child = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        killed_at: dict | None = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            try:
                record = json.loads(state_file.read_text())
            except (FileNotFoundError, ValueError):
                record = {}
            if record.get("stages", {}).get("orders", {}).get("offset", 0) > 0:
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=10)
                killed_at = record
                break
            time.sleep(0.01)
        assert killed_at is not None, "the backfill finished (or never reached its orders) before the kill"
        operation = killed_at["stages"]["orders"]["operation"]
        operations = len(standin.bulk.operations)

        done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        record = json.loads(state_file.read_text())
        assert record["done"] and record["stages"]["orders"]["operation"] == operation
        assert len(standin.bulk.operations) == operations + 1  # inventory only: orders resumed
        warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        raw = warehouse.query("SELECT COUNT(*) AS n, COUNT(DISTINCT webhook_id) AS d FROM raw_events")[0]
        orders = warehouse.query("SELECT COUNT(DISTINCT id) AS n FROM orders_latest")[0]["n"]
        warehouse.close()
        assert raw["n"] == raw["d"], "a version was loaded twice"
        assert orders == len(standin.state.shops[SHOP].orders)
    finally:
        standin.stop()
