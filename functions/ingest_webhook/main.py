"""ingest_webhook: Shopify webhooks in, Pub/Sub messages out (HTTP, public, async).

Runs on functions-framework's ASGI path (``@functions_framework.aio.http``: Starlette under
uvicorn; Terraform and the local stack set ``FUNCTION_USE_ASGI=true``, the ``--asgi`` switch).
Async end to end: the body is read from the stream with the size limit enforced as it arrives,
the HMAC is verified over the raw bytes (constant time) before anything is parsed, and the body
is published unchanged with Shopify's headers as attributes through the grpc.aio group-commit
publisher; the answer is 200 only after Pub/Sub acknowledged. The rules are
``shared.ingest.accept_webhook_async``. Imports nothing heavy: this is the cold-start-critical path.
"""

from __future__ import annotations

import json

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import bootstrap
from shared.adapters.pubsub_aio import LAST_RPC_SECONDS
from shared.ingest import accept_webhook_async, declared_length, read_limited_body_async
from shared.logs import get_logger


@functions_framework.aio.http
async def ingest_webhook(request: Request) -> Response:
    settings = bootstrap.settings()
    logger = get_logger("ingest_webhook", settings.log_level)
    LAST_RPC_SECONDS.set(None)  # this request's publish only
    try:
        result = await accept_webhook_async(
            request.method,
            request.headers,
            lambda: read_limited_body_async(
                request.stream(),
                declared_length(request.headers.get("content-length")),
                settings.max_body_bytes,
            ),
            settings,
            bootstrap.async_publisher(),
            logger,
        )
        status, body = result.status, result.body
    except Exception:  # never a stack trace to the caller; 503 so Shopify retries
        logger.exception("unexpected error while ingesting a webhook")
        status, body = 503, {"error": "internal", "message": "temporary failure; retry later"}
    headers = None
    if settings.server_timing:
        rpc = LAST_RPC_SECONDS.get()
        if rpc is not None:  # the Publish RPC's round trip, for the benchmark (off by default)
            headers = {"Server-Timing": f"pubsub;dur={rpc * 1000:.3f}"}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)
