"""Shared helpers of tests/infra: the HCL of the root and every module, parsed with python-hcl2 and
normalised, plus the lookups the tests use (resources, locals, variables, module calls)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "infra" / "modules"
MODULES = tuple(sorted(p.name for p in MODULES_DIR.iterdir() if (p / "main.tf").is_file()))
CONFIG_DIRS = (REPO, *(MODULES_DIR / name for name in MODULES))
TOPOLOGY = json.loads((REPO / "shared" / "topology.json").read_text())

# Project-wide grants allowed, each because nothing narrower exists: (module, resource) → role.
# Each carries a comment saying why it is unavoidable (test_iam.py checks it).
ALLOWED_PROJECT_GRANTS = {
    ("iam", "builder_writes_build_logs"): "roles/logging.logWriter",  # no log resource below the project
    ("vertex", "trainer_registers_models"): "roles/aiplatform.user",  # Vertex models: no resource IAM
    ("vertex", "trainer_runs_queries"): "roles/bigquery.jobUser",  # bigquery.jobs.create: project only
    ("vertex", "launcher_submits_jobs"): "roles/aiplatform.user",  # CustomJobs: no resource IAM
    ("bigquery", "job_user"): "roles/bigquery.jobUser",  # functions that query: jobs.create is project-only
    ("serving", "pointer_reader"): "roles/datastore.viewer",  # Firestore: IAM on the project only
    ("serving", "pointer_writer"): "roles/datastore.user",  # Firestore: IAM on the project only
    ("serving", "alias_mover"): "roles/aiplatform.user",  # Vertex model aliases: no resource IAM
    ("serving", "metric_writer"): "roles/monitoring.metricWriter",  # time series: written to a project
}
ALLOWED_PROJECT_ROLES = set(ALLOWED_PROJECT_GRANTS.values())
LABELLED_TYPES = {
    "google_pubsub_topic",
    "google_pubsub_subscription",
    "google_cloudfunctions2_function",
    "google_storage_bucket",
    "google_secret_manager_secret",
    "google_artifact_registry_repository",
    "google_bigquery_dataset",
    "google_bigquery_table",
}


# --- python-hcl2 8.x output, normalised --------------------------------------------------------
#
# hcl2.load (8.1.4) keeps the quotes of string literals and block labels ('"google_x"'),
# wraps every other expression as "${...}", returns each block as a list of dicts and marks
# blocks with "__is_block__". `normalise` turns literals into plain str, expressions into
# Expr (a str holding the bare expression) and drops the markers.


class Expr(str):
    """An HCL expression that is not a plain string literal (``var.x``, ``a ? b : c``...)."""


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {_unquote(key): normalise(item) for key, item in value.items() if key != "__is_block__"}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return Expr(value[2:-1])
        return _unquote(value)
    return value


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        parsed = normalise(hcl2.load(handle))
    assert isinstance(parsed, dict)
    return parsed


def tf_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.tf"))


def blocks(directory: Path, kind: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in tf_files(directory):
        for block in parse(path).get(kind, []):
            yield path, block


def resources(directory: Path, kind: str = "resource") -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource (or data source) declared in ``directory``."""
    found = []
    for _, block in blocks(directory, kind):
        for rtype, named in block.items():
            for name, body in named.items():
                found.append((rtype, name, body))
    return found


def all_resources(kind: str = "resource") -> list[tuple[Path, str, str, dict[str, Any]]]:
    return [(d, rtype, name, body) for d in CONFIG_DIRS for rtype, name, body in resources(d, kind)]


def resource(directory: Path, rtype: str, name: str) -> dict[str, Any]:
    for found_type, found_name, body in resources(directory):
        if (found_type, found_name) == (rtype, name):
            return body
    raise AssertionError(f"{directory.relative_to(REPO)} declares no {rtype}.{name}")


def named_blocks(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """variable / output / module blocks of ``directory`` by name."""
    found: dict[str, dict[str, Any]] = {}
    for _, block in blocks(directory, kind):
        found.update(block)
    return found


def locals_of(directory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for _, block in blocks(directory, "locals"):
        merged.update(block)
    return merged


def single(body: dict[str, Any], block_name: str) -> dict[str, Any]:
    found = body.get(block_name)
    assert isinstance(found, list) and len(found) == 1, (
        f"expected exactly one {block_name} block, got {found!r}"
    )
    return found[0]


def compact(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def module_dir(name: str) -> Path:
    return MODULES_DIR / name


# --- tools --------------------------------------------------------------------------------------


def terraform_binary() -> str:
    found = shutil.which("terraform") or (
        "/usr/local/bin/terraform" if os.access("/usr/local/bin/terraform", os.X_OK) else None
    )
    if found is None:
        pytest.fail("terraform is not installed (expected on PATH or at /usr/local/bin/terraform)")
    return found


def function_folders() -> list[str]:
    return sorted(
        p.name for p in (REPO / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def iam_resources() -> list[tuple[Path, str, str, dict[str, Any]]]:
    return [r for r in all_resources() if re.search(r"_iam_(member|binding|policy)$", r[1])]


def preceding_comment(path: Path, header: str) -> str:
    """The comment lines right above ``header`` (a resource's first line) in ``path``."""
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(header))
    comment: list[str] = []
    for line in reversed(lines[:index]):
        if not line.startswith("#"):
            break
        comment.insert(0, line)
    return " ".join(comment)
