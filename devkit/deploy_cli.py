"""``shopml deploy`` and ``shopml rollback``: the same gates and the same flip as the functions.

Where they act: when a local stack runs from the home folder (``<home>/run/stack.json``), on it
(its Firestore emulator, registry and warehouse, from the stack's ``env``); otherwise with the
settings of the environment, i.e. the real services in the cloud (``GOOGLE_CLOUD_PROJECT``,
``SHOPML_REGISTRY``, ``SHOPML_WAREHOUSE``; Firestore with the caller's credentials).

``deploy`` runs the use case in this process (``shared.serving.deployment``). ``rollback``
does too by default; ``via_topic`` publishes the request to ``rollback-requests`` instead, as
``drift_monitor`` does, and waits until the live pointer carries its idempotency key.

Exit codes: 0 done (or already done: the same key), 1 a transient failure or the stack is down,
2 bad input (unknown version, bad name), 3 refused (a gate failed, nothing to roll back to, a
concurrent change won).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from shared.settings import Settings

if TYPE_CHECKING:
    from shared.serving.deployment import Deployer, Outcome, RollbackRequest

EXIT_OK, EXIT_TRANSIENT, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 1, 2, 3


def resolve_settings(home: Path | None = None) -> tuple[Settings, str]:
    """Settings of the running local stack under ``home`` if there is one, else of the
    environment; and a few words saying which."""
    from devkit.local.processes import pid_alive
    from devkit.local.stack import read_state

    base = Settings.from_env()
    folder = home or base.home
    info = read_state(folder)
    if info is not None and info.ready and any(pid_alive(pid) for pid in info.pids.values()):
        return Settings.from_env({**os.environ, **info.env}), f"local stack in {folder}"
    target = (
        "Firestore emulator " + base.firestore_emulator_host if base.firestore_emulator_host else "the cloud"
    )
    return base, f"project {base.project} ({target})"


def _requester(requested_by: str | None) -> str:
    if requested_by:
        return requested_by
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _deployer(settings: Settings) -> Deployer:
    from shared import bootstrap
    from shared.serving.deployment import default_deployer

    bootstrap.override(settings=settings)
    return default_deployer()


def _run(settings: Settings, act: Callable[[Deployer], Outcome]) -> Outcome:
    """``act`` on a deployer over ``settings``; the warehouse is let go of afterwards (DuckDB:
    the running stack's functions wait for its file lock)."""
    from shared import bootstrap

    deployer = _deployer(settings)
    try:
        return act(deployer)
    finally:
        if deployer.warehouse is not None:
            bootstrap.close_warehouse(deployer.warehouse)


def _reset() -> None:
    from shared import bootstrap

    bootstrap.reset()


def _report(outcome: Outcome, out: TextIO, as_json: bool) -> int:
    for gate in outcome.gates:
        print(f"  {'pass' if gate.passed else 'FAIL'}  {gate.name}: {gate.detail}", file=out)
    print(("refused: " if outcome.action == "refused" else "") + outcome.message, file=out)
    if as_json:
        print(
            json.dumps(
                {
                    "action": outcome.action,
                    "model": outcome.model,
                    "version": outcome.version,
                    "from_version": outcome.from_version,
                    "live_version": outcome.pointer.live_version,
                    "live_slot": outcome.pointer.live_slot,
                    "generation": outcome.pointer.generation,
                    "forced": outcome.forced,
                    "gates": {g.name: g.to_record() for g in outcome.gates},
                },
                default=str,
            ),
            file=out,
        )
    return EXIT_REFUSED if outcome.action == "refused" else EXIT_OK


def run_deploy(
    model: str,
    version: str,
    *,
    force: bool = False,
    reason: str = "",
    requested_by: str | None = None,
    home: Path | None = None,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Deploy ``model`` ``version`` through the gates (``force``: without them, recorded so)."""
    from shared.errors import PermanentError, TransientError
    from shared.serving.deployment import DeployRequest

    try:
        settings, where = resolve_settings(home)
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"deploying {model} {version} on the {where}" + (" (forced: gates skipped)" if force else ""),
        file=out,
    )
    request = DeployRequest(
        model=model,
        version=version,
        requested_by=_requester(requested_by),
        reason=reason or f"shopml deploy {version}" + (" --force" if force else ""),
        idempotency_key=f"cli-deploy:{uuid.uuid4()}",
        force=force,
        require_newer=False,
    )
    try:
        return _report(_run(settings, lambda deployer: deployer.deploy(request)), out, as_json)
    except TransientError as exc:
        print(f"error, worth retrying: {exc}", file=sys.stderr)
        return EXIT_TRANSIENT
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        _reset()


def run_rollback(
    model: str,
    reason: str,
    *,
    requested_by: str | None = None,
    idempotency_key: str | None = None,
    via_topic: bool = False,
    wait_seconds: float = 30.0,
    home: Path | None = None,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Roll ``model`` back (to the previous version, else the next older servable one)."""
    from shared.errors import PermanentError, TransientError
    from shared.serving.deployment import rollback_request_from_message

    if not reason.strip():
        print("error: --reason is required: say why (it is recorded in model_deployments)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        settings, where = resolve_settings(home)
        request = rollback_request_from_message(
            {
                "model": model,
                "reason": reason,
                "requested_by": _requester(requested_by),
                "idempotency_key": idempotency_key or f"cli-rollback:{uuid.uuid4()}",
            }
        )
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"rolling back {model} on the {where}", file=out)
    try:
        if via_topic:
            return _rollback_via_topic(settings, request, wait_seconds, out)
        return _report(_run(settings, lambda deployer: deployer.rollback(request)), out, as_json)
    except TransientError as exc:
        print(f"error, worth retrying: {exc}", file=sys.stderr)
        return EXIT_TRANSIENT
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        _reset()


def _rollback_via_topic(
    settings: Settings, request: RollbackRequest, wait_seconds: float, out: TextIO
) -> int:
    """Publish to ``rollback-requests`` and wait until the pointer carries the request's key."""
    from shared import bootstrap
    from shared.serving.deployment import ROLLBACK_REQUESTS_TOPIC

    bootstrap.override(settings=settings)
    body = {
        "model": request.model,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "idempotency_key": request.idempotency_key,
    }
    started = time.monotonic()
    bootstrap.publisher().publish(
        ROLLBACK_REQUESTS_TOPIC, json.dumps(body).encode(), {"model": request.model}
    )
    store = bootstrap.live_pointer()
    while time.monotonic() - started < wait_seconds:
        pointer = store.get(request.model)
        if request.idempotency_key in pointer.request_keys:
            seconds = time.monotonic() - started
            print(
                f"{request.model}: {pointer.live_version} is live ({pointer.live_slot}) "
                f"after {seconds:.2f} s",
                file=out,
            )
            return EXIT_OK
        time.sleep(0.1)
    print(
        f"refused or not yet handled: the live pointer did not change within {wait_seconds:g} s "
        "(nothing to roll back to? see model_deployments and the rollback function's log)",
        file=out,
    )
    return EXIT_REFUSED
