"""Cloud Build: lint and test before anything is built or deployed, and the post-deploy smoke test."""

from __future__ import annotations

import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

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
    assert "bundle_functions.sh" in script["bundle"]
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
