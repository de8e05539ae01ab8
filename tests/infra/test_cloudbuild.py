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
    # No targeted or auto-approved apply anywhere; the one apply takes the plan file, after the plan.
    for step_id, step in steps.items():
        script = step_script(step)
        assert "-auto-approve" not in script and "-target" not in script, step_id
        if step_id != "tf-apply":
            assert "terraform apply" not in script and step.get("args", [])[:1] != ["apply"], step_id
    apply = step_script(steps["tf-apply"])
    assert "terraform apply -input=false -lock-timeout=300s /workspace/tfplan" in apply
    assert "-out=/workspace/tfplan" in step_script(steps["tf-plan"])
    assert {"tf-plan", "trainer-image", "feature-server-image"} <= upstream("tf-apply")
    # The plan names the images by the tag the gate fixed (they are pushed before the apply).
    plan = step_script(steps["tf-plan"])
    assert "TF_VAR_trainer_image=" in plan and "TF_VAR_feature_server_image=" in plan
    assert plan.count("/workspace/image_tag") == 2
