"""The local stack starts every part, records where it listens, and leaves no process behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devkit.local.processes import pid_alive, processes_with_marker
from devkit.local.stack import LocalStack, read_state
from shared.topology import load_topology

pytestmark = pytest.mark.integration


def test_up_then_down_leaves_no_process(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    info = stack.up()
    try:
        state = json.loads((tmp_path / "run" / "stack.json").read_text())
        assert state["functions"] == info.functions
        implemented = {f.name for f in load_topology().functions if f.implemented}
        assert set(info.pids) == {"pubsub-emulator", "firestore-emulator"} | implemented
        assert {"ingest_webhook", "validate_load"} <= implemented
        assert all(pid_alive(pid) for pid in info.pids.values())
        # The gcloud wrapper starts a Java child: more processes than we recorded carry the marker.
        assert len(processes_with_marker(info.stack_id)) >= len(info.pids)
        assert requests.get(info.url("ingest_webhook"), timeout=5).status_code == 405
    finally:
        stack.down()
    assert processes_with_marker(info.stack_id) == []
    assert not any(pid_alive(pid) for pid in info.pids.values())
    assert read_state(tmp_path) is None


def test_a_second_up_on_the_same_home_is_refused(tmp_path: Path) -> None:
    with LocalStack(tmp_path) as info:
        from devkit.local.processes import StackError

        with pytest.raises(StackError, match="already running"):
            LocalStack(tmp_path).up()
        assert all(pid_alive(pid) for pid in info.pids.values())


def test_cli_foreground_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit.local", "up", "--foreground", "--home", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline and state is None:
        state = read_state(tmp_path)
        if state is not None and not state.ready:
            state = None
        time.sleep(0.2)
    assert state is not None, "stack never came up"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "stack stopped" in output
    assert processes_with_marker(state.stack_id) == []


def test_ctrl_c_during_start_up_leaves_no_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit.local", "up", "--foreground", "--home", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline and state is None:
        state = read_state(tmp_path)  # written as soon as the emulator runs, before functions
        time.sleep(0.05)
    assert state is not None
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert "stack stopped" in output
    assert processes_with_marker(state.stack_id) == []


def test_cli_down_stops_a_detached_stack(tmp_path: Path) -> None:
    up = subprocess.run(
        [sys.executable, "-m", "devkit.local", "up", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert up.returncode == 0, up.stderr
    state = read_state(tmp_path)
    assert state is not None and all(pid_alive(pid) for pid in state.pids.values())
    down = subprocess.run(
        [sys.executable, "-m", "devkit.local", "down", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0, down.stderr
    assert processes_with_marker(state.stack_id) == []
