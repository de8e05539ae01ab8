"""The reference on the default path: ingest_webhook as it was before step 6b, a blocking Flask
function (functions-framework → gunicorn gthread) over the same use case
(``shared.ingest.accept_webhook``) and the thread-based group-commit publisher. Benchmarked
next to the async function in the same run (bench/ingest_bench.py); never deployed."""

from __future__ import annotations

import json

import flask
import functions_framework

from shared import bootstrap
from shared.ingest import accept_webhook, read_limited_body
from shared.logs import get_logger


@functions_framework.http
def ingest_webhook(request: flask.Request) -> flask.Response:
    settings = bootstrap.settings()
    logger = get_logger("ingest_webhook", settings.log_level)
    try:
        result = accept_webhook(
            request.method,
            request.headers,
            lambda: read_limited_body(request.stream, request.content_length, settings.max_body_bytes),
            settings,
            bootstrap.publisher(),
            logger,
        )
        status, body = result.status, result.body
    except Exception:  # never a stack trace to the caller; 503 so Shopify retries
        logger.exception("unexpected error while ingesting a webhook")
        status, body = 503, {"error": "internal", "message": "temporary failure; retry later"}
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")
