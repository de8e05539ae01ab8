"""Child processes of the local stack: started in their own session, stopped as a group.

Every child gets ``SHOPML_STACK_ID`` in its environment, so ``down`` can also find and stop
descendants that left their process group (the gcloud wrapper's Java child, for example).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

STACK_ID_VAR = "SHOPML_STACK_ID"


class StackError(RuntimeError):
    """The local stack could not start or stop; the message says which part and why."""


def functions_framework_argv(source: Path, target: str, port: int) -> list[str]:
    """How Cloud Functions serves a function, on loopback: functions-framework (gunicorn)."""
    return [
        sys.executable, "-m", "functions_framework", "--source", str(source), "--target", target,
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def feature_server_argv(repo_dir: Path, port: int, registry_refresh_s: int = 5) -> list[str]:
    """Feast's feature server on loopback, as docs/DESIGN.md records it: without ``--max-requests 0``
    gunicorn recycles the worker every ~1,000 requests (a ~0.8 s stall); ``-r`` is how often
    it re-reads the registry, so a later ``apply`` is served within seconds."""
    script = Path(sys.executable).with_name("feast")
    launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "feast.cli.cli"]
    return [
        *launcher, "-c", str(repo_dir), "serve", "-h", "127.0.0.1", "-p", str(port),
        "--no-access-log", "--max-requests", "0", "-r", str(registry_refresh_s),
    ]  # fmt: skip


def firestore_emulator_argv(port: int) -> list[str]:
    """The official Firestore emulator (gcloud) on loopback, native mode; ready in ~3 s.

    gcloud runs it as a Java child of a wrapper: start it in its own group, stop the group."""
    return ["gcloud", "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}", "--quiet"]


def firestore_ready(port: int) -> Callable[[], bool]:
    """The Firestore emulator answers ``Ok`` on ``GET /`` once it serves."""
    return http_answers(f"http://127.0.0.1:{port}/", expect_body=b"Ok")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    name: str
    pid: int
    log_path: Path

    def alive(self) -> bool:
        return pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_process(
    name: str, argv: list[str], env: Mapping[str, str], log_dir: Path, cwd: Path
) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: stopped as one
        )
    return ManagedProcess(name=name, pid=proc.pid, log_path=log_path)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(process: ManagedProcess, ready: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``ready`` until true; raise with the log's tail if the process dies or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if not process.alive():
            raise StackError(f"{what} exited during start-up; last log lines:\n{log_tail(process.log_path)}")
        if ready():
            return time.monotonic() - start
        time.sleep(0.05)
    raise StackError(
        f"{what} not ready after {timeout_s:.0f} s; last log lines:\n{log_tail(process.log_path)}"
    )


def http_answers(url: str, expect_body: bytes | None = None) -> Callable[[], bool]:
    """A readiness check: the URL answers HTTP at all (any status), optionally with a body."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL we built
                return expect_body is None or response.read().strip() == expect_body
        except urllib.error.HTTPError:
            return expect_body is None
        except OSError:
            return False

    return check


def processes_with_marker(stack_id: str) -> list[int]:
    """PIDs of live processes whose environment carries this stack's id."""
    needle = f"{STACK_ID_VAR}={stack_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def stop_processes(pids: Iterable[int], stack_id: str | None, grace_s: float = 5.0) -> list[int]:
    """SIGTERM each process group, then SIGKILL what is left; returns PIDs that survived."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        left = [p for p in pids if pid_alive(p)]
        if stack_id:
            left += [p for p in processes_with_marker(stack_id) if p not in left]
        if not left:
            break
        time.sleep(0.1)
    stragglers = [p for p in pids if pid_alive(p)]
    if stack_id:
        stragglers += [p for p in processes_with_marker(stack_id) if p not in stragglers]
    for pid in stragglers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    survivors = [p for p in stragglers if pid_alive(p)]
    # Reap our own children so they do not linger as zombies.
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    return survivors
