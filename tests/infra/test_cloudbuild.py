"""Cloud Build: lint and test before anything is built or deployed, and the post-deploy smoke test."""

from __future__ import annotations

import importlib.util
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from shared.webhooks import sign_webhook, verify_webhook_signature
from tests.infra.hcl import REPO


def test_cloud_build_tests_before_it_builds_or_deploys() -> None:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}
    assert len(steps) == len(build["steps"]), "step ids must be unique"
    for step_id, step in steps.items():
        assert "waitFor" in step, f"step {step_id} has no waitFor"
        for dep in step["waitFor"]:
            assert dep == "-" or dep in steps, f"step {step_id} waits for unknown step {dep}"

    def upstream(step_id: str) -> set[str]:
        deps = {d for d in steps[step_id]["waitFor"] if d != "-"}
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    for step_id in ("bundle", "tf-init", "tf-plan", "tf-apply", "smoke-test", "promote"):
        assert {"lint", "test"} <= upstream(step_id), f"{step_id} may run before lint and test passed"
    assert "tf-plan" in upstream("tf-apply") and "tf-apply" in upstream("smoke-test")
    assert "smoke-test" in upstream("promote")
    script = {step_id: " ".join(map(str, step.get("args", []))) for step_id, step in steps.items()}
    assert "make lint" in script["lint"] and "make test" in script["test"]
    assert "infra/scripts/bundle.py" in script["bundle"]
    assert "fmt -check -recursive" in script["tf-fmt"]
    assert "apply" in script["tf-apply"] and "/workspace/tfplan" in script["tf-apply"]
    assert "smoke_webhook.py" in script["smoke-test"]
    for name in ("_REGION", "_ENV", "_TF_STATE_BUCKET"):
        assert name in build["substitutions"], name


SMOKE_SCRIPT = REPO / "infra" / "scripts" / "smoke_webhook.py"


def load_smoke_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_webhook", SMOKE_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_webhooks(verify: bool) -> ThreadingHTTPServer:
    """A stand-in for ingest_webhook: 401 unless the body is signed with "s1" (when verify)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = not verify or verify_webhook_signature(
                body, self.headers.get("X-Shopify-Hmac-Sha256"), ["s1"]
            )
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_smoke_script_signs_like_shopify_and_catches_a_webhook_that_does_not_verify() -> None:
    smoke = load_smoke_script()
    assert smoke.shopify_signature(b'{"id": 1}', "s1") == sign_webhook(b'{"id": 1}', "s1")
    verifying = serve_webhooks(verify=True)
    careless = serve_webhooks(verify=False)
    try:
        url = f"http://127.0.0.1:{verifying.server_port}/"
        assert smoke.run(url, "s1,s2", timeout=5) == []
        assert smoke.run(url, "wrong-secret", timeout=5), (
            "a signature under the wrong secret must fail the smoke test"
        )
        failures = smoke.run(f"http://127.0.0.1:{careless.server_port}/", "s1", timeout=5)
        assert len(failures) == 2 and all("expected 401" in f for f in failures)
        assert smoke.run(url, " , ", timeout=5) == [f"{smoke.SECRETS_ENV} holds no secret"]
    finally:
        verifying.shutdown()
        careless.shutdown()


# --- deploying: only from the deploy branch, only the saved plan ----------------------------------

GATED_STEPS = (
    "tf-bootstrap",
    "trainer-image",
    "feature-server-image",
    "tf-apply",
    "warehouse-views",
    "smoke-test",
    "promote",
)


def cloudbuild() -> dict[str, Any]:
    build: dict[str, Any] = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    return build


def step_script(step: dict[str, Any]) -> str:
    return " ".join(map(str, step.get("args", [])))


def substitute(script: str, values: dict[str, str]) -> str:
    """Cloud Build's substitution: ${_X} / $X replaced by their values, $$ left as a literal $."""
    protected = script.replace("$$", "\0")
    for name in sorted(values, key=len, reverse=True):
        protected = protected.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return protected.replace("\0", "$")


def run_gate(tmp_path: Path, branch: str, commit: str = "", promoted: str = "") -> str:
    build = cloudbuild()
    gate = next(step for step in build["steps"] if step["id"] == "deploy-gate")
    script = gate["args"][-1].replace("/workspace/", f"{tmp_path}/")
    values = {
        **{name: str(value) for name, value in build["substitutions"].items()},
        "_PROMOTED_SHA": promoted,
        "BRANCH_NAME": branch,
        "COMMIT_SHA": commit,
        "SHORT_SHA": commit[:7],
        "BUILD_ID": "build-1",
    }
    result = subprocess.run(
        ["bash", "-c", substitute(script, values)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return (tmp_path / "deploy").read_text().strip()


def test_only_builds_of_main_or_a_promoted_main_commit_deploy(tmp_path: Path) -> None:
    build = cloudbuild()
    assert "_APPLY" not in build["substitutions"], "an apply switch that defaults to on"
    assert build["substitutions"]["_APPLY_BRANCH"] == "main"
    assert build["substitutions"]["_PROMOTED_SHA"] == ""
    assert run_gate(tmp_path, "main", "a" * 40) == "true"
    assert run_gate(tmp_path, "feature/x", "b" * 40) == "false"
    assert run_gate(tmp_path, "", "") == "false"  # gcloud builds submit by hand
    assert run_gate(tmp_path, "", "c" * 40, promoted="c" * 40) == "true"  # the next environment
    assert run_gate(tmp_path, "", "c" * 40, promoted="d" * 40) == "false"
    assert run_gate(tmp_path, "", "", promoted="") == "false"
    assert (tmp_path / "image_tag").read_text().strip() == "build-1"
    # promote hands its own commit to the next environment's gate.
    promote = step_script(next(s for s in build["steps"] if s["id"] == "promote"))
    assert '--substitutions="_PROMOTED_SHA=$COMMIT_SHA"' in promote and '--sha="$COMMIT_SHA"' in promote


def test_every_step_that_pushes_or_applies_reads_the_gate_and_applies_only_the_saved_plan() -> None:
    build = cloudbuild()
    steps = {step["id"]: step for step in build["steps"]}

    def upstream(step_id: str) -> set[str]:
        deps = {d for d in steps[step_id]["waitFor"] if d != "-"}
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    for step_id in GATED_STEPS:
        assert "deploy-gate" in upstream(step_id), step_id
        assert '"$$(cat /workspace/deploy)"' in step_script(steps[step_id]), f"{step_id} ignores the gate"
    # Pushes happen only inside the gate's true branch.
    for step_id in ("trainer-image", "feature-server-image"):
        script = step_script(steps[step_id])
        gate_at = script.index('if [[ "$$(cat /workspace/deploy)" == "true" ]]; then')
        assert script.index("docker push") > gate_at
    # No auto-approved apply anywhere; an apply takes a plan file saved in the same build, after
    # that plan: tf-apply (the full plan) and tf-bootstrap (the image repository alone, the one
    # targeted plan).
    for step_id, step in steps.items():
        script = step_script(step)
        assert "-auto-approve" not in script, step_id
        if step_id not in {"tf-apply", "tf-bootstrap"}:
            assert "terraform apply" not in script and step.get("args", [])[:1] != ["apply"], step_id
            assert "-target" not in script, step_id
    apply = step_script(steps["tf-apply"])
    assert "terraform apply -input=false -lock-timeout=300s /workspace/tfplan" in apply
    assert "-out=/workspace/tfplan" in step_script(steps["tf-plan"])
    assert {"tf-plan", "trainer-image", "feature-server-image"} <= upstream("tf-apply")
    # The plan names the images by the tag the gate fixed (they are pushed before the apply).
    plan = step_script(steps["tf-plan"])
    assert "TF_VAR_trainer_image=" in plan and "TF_VAR_feature_server_image=" in plan
    assert plan.count("/workspace/image_tag") == 2


BOOTSTRAP_TARGET = "module.vertex.google_artifact_registry_repository.trainer"


def run_bootstrap(tmp_path: Path, deploy: str) -> list[list[str]]:
    """Runs the tf-bootstrap step's script under sh with a stand-in `terraform` that records its
    arguments (and writes the -out file like the real one); returns the recorded calls."""
    step = next(s for s in cloudbuild()["steps"] if s["id"] == "tf-bootstrap")
    assert step["entrypoint"] == "sh" and step["args"][0] == "-c"
    workspace = tmp_path / "workspace"
    workspace.mkdir(parents=True)
    (workspace / "deploy").write_text(deploy + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake = bin_dir / "terraform"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{log}"\n'
        'for arg in "$@"; do case "$arg" in -out=*) : > "${arg#-out=}";; esac; done\n'
        'if [ "$1" = apply ]; then for arg in "$@"; do last="$arg"; done; test -f "$last" || exit 9; fi\n'
    )
    fake.chmod(0o755)
    script = substitute(step["args"][1], {"PROJECT_ID": "p-123456"}).replace("/workspace/", f"{workspace}/")
    result = subprocess.run(
        ["sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if not log.exists():
        return []
    return [line.split() for line in log.read_text().splitlines()]


def test_bootstrap_creates_the_image_repository_from_a_saved_plan_only_when_deploying(tmp_path: Path) -> None:
    # Not deploying (pull requests, other branches): terraform is not even called.
    assert run_bootstrap(tmp_path / "pr", "false") == []
    # Deploying: a plan of the repository alone, saved, then the apply of exactly that file.
    plan, apply = run_bootstrap(tmp_path / "main", "true")
    assert plan[0] == "plan" and f"-target={BOOTSTRAP_TARGET}" in plan
    assert [a for a in plan if a.startswith("-target")] == [f"-target={BOOTSTRAP_TARGET}"]
    out = next(a for a in plan if a.startswith("-out=")).removeprefix("-out=")
    assert out.endswith("/bootstrap.tfplan")
    assert apply[0] == "apply" and apply[-1] == out
    assert not [a for a in apply if a.startswith(("-target", "-auto-approve", "-var"))]
    # The target exists: module.vertex declares that repository.
    from tests.infra.hcl import module_dir, resource

    assert resource(module_dir("vertex"), "google_artifact_registry_repository", "trainer")


def test_bootstrap_runs_before_the_pushes_and_before_the_full_plan() -> None:
    steps = {step["id"]: step for step in cloudbuild()["steps"]}

    def upstream(step_id: str) -> set[str]:
        deps = {d for d in steps[step_id]["waitFor"] if d != "-"}
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    # After lint, test, the gate and terraform init (it needs the backend); before any push and
    # before the full plan, which is then computed against the state the bootstrap left (a plan
    # saved before it would be stale at apply).
    assert {"lint", "test", "deploy-gate", "tf-init", "tf-validate"} <= upstream("tf-bootstrap")
    for step_id in ("trainer-image", "feature-server-image", "tf-plan"):
        assert "tf-bootstrap" in upstream(step_id), step_id
    # Its variables are the full plan's required ones (the target needs no image or secret).
    env = {entry.split("=", 1)[0] for entry in steps["tf-bootstrap"]["env"]}
    assert {"TF_VAR_project_id", "TF_VAR_region", "TF_VAR_environment"} <= env
    # The README no longer asks for a manual first apply.
    readme = (REPO / "infra" / "README.md").read_text()
    assert "Create it once by hand" not in readme and "tf-bootstrap" in readme
