"""Smoke test of a deployed ingest_webhook: reject the unsigned, accept the signed.

    SHOPML_SMOKE_WEBHOOK_SECRETS="$(gcloud secrets versions access latest \
        --secret=shopify-webhook-secrets)" python3 infra/scripts/smoke_webhook.py URL

Sends three deliveries of one small ``app/uninstalled`` event for the fake shop
``shopml-smoke-test.myshopify.com``: without a signature (expects 401), with the signature of
another body (expects 401), and signed with the first active secret (expects 200, i.e. the
event was published). Standard library only, so it runs in any Cloud Build image with Python.
The secret comes from the environment, never from the command line (process lists, build logs).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

SECRETS_ENV = "SHOPML_SMOKE_WEBHOOK_SECRETS"
SMOKE_SHOP = "shopml-smoke-test.myshopify.com"


def shopify_signature(body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(secret, body)): what Shopify sends in X-Shopify-Hmac-Sha256."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def smoke_body() -> bytes:
    return json.dumps({"id": 0, "domain": SMOKE_SHOP, "name": "shopml smoke test"}).encode("utf-8")


def shopify_headers(webhook_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "app/uninstalled",
        "X-Shopify-Shop-Domain": SMOKE_SHOP,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-API-Version": "2025-07",
        "X-Shopify-Triggered-At": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ValueError(f"refusing to post to {url!r}: https:// only (http only on loopback)")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def run(url: str, secrets: str, timeout: float = 10.0) -> list[str]:
    """Runs the three deliveries; returns the failures (empty when the smoke test passed)."""
    secret = next((s.strip() for s in secrets.split(",") if s.strip()), "")
    if not secret:
        return [f"{SECRETS_ENV} holds no secret"]
    body = smoke_body()
    failures = []
    cases = [
        ("unsigned", None, 401),
        ("signed over another body", shopify_signature(body + b" ", secret), 401),
        ("signed", shopify_signature(body, secret), 200),
    ]
    for label, signature, expected in cases:
        headers = shopify_headers(f"smoke-{uuid.uuid4()}")
        if signature is not None:
            headers["X-Shopify-Hmac-Sha256"] = signature
        status = post(url, body, headers, timeout)
        outcome = "ok" if status == expected else "FAILED"
        print(f"{outcome}: {label} delivery -> {status} (expected {expected})")
        if status != expected:
            failures.append(f"{label} delivery answered {status}, expected {expected}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", help="ingest_webhook URL (terraform output -raw webhook_url)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args(argv)
    failures = run(args.url, os.environ.get(SECRETS_ENV, ""), args.timeout)
    for failure in failures:
        print(f"smoke test failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
