"""terraform fmt and checkov over the whole configuration, and the reasons on checkov's skips."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.hcl import CONFIG_DIRS, REPO, terraform_binary, tf_files


def test_terraform_fmt_is_clean() -> None:
    result = subprocess.run(
        [terraform_binary(), "fmt", "-check", "-recursive", "-diff"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The machine points TF_CLI_CONFIG_FILE at a missing file: that warning goes to stderr.
    assert result.returncode == 0, (
        f"terraform fmt -check failed; run `terraform fmt -recursive`:\n{result.stdout}"
    )


def checkov_skip_comments() -> list[tuple[Path, str]]:
    found = []
    for directory in CONFIG_DIRS:
        for path in tf_files(directory):
            for line in path.read_text().splitlines():
                if "checkov:skip" in line:
                    found.append((path, line.strip()))
    return found


CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def test_checkov_passes_with_only_justified_skips() -> None:
    if not os.access(CHECKOV, os.X_OK):
        pytest.fail(
            f"{CHECKOV.relative_to(REPO)} is missing: run `make test`, which builds .venv-checkov first"
        )
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(REPO),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--compact",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", output)
    assert summary, f"checkov scanned no Terraform (no summary line):\n{output}"
    passed, failed, skipped = (int(n) for n in summary.groups())
    assert result.returncode == 0 and failed == 0, f"checkov found problems:\n{output}"
    assert passed > 0
    # Every skip comment must suppress a finding that exists: no stale, unexplained skips.
    assert skipped == len(checkov_skip_comments()), (
        f"checkov skipped {skipped} checks but the HCL has {len(checkov_skip_comments())} skip comments"
    )


def test_every_checkov_skip_gives_a_reason() -> None:
    skips = checkov_skip_comments()
    assert skips, "expected the documented checkov skips (CMEK, access logs, public ingress)"
    for path, line in skips:
        match = re.fullmatch(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+):(.+)", line)
        assert match, f"{path.relative_to(REPO)}: malformed skip {line!r} (want #checkov:skip=CKV_X_N:reason)"
        assert len(match.group(2).split()) >= 8, (
            f"{path.relative_to(REPO)}: {match.group(1)} needs a real reason"
        )
