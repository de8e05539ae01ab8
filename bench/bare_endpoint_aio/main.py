"""The ceiling on the ASGI path: an async functions-framework endpoint (``@functions_framework.aio.http``,
served as predict is, with ``FUNCTION_USE_ASGI=true``) that reads the body and answers 200."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response


@functions_framework.aio.http
async def bare(request: Request) -> Response:
    await request.body()
    return Response(b'{"status": "ok"}', status_code=200, media_type="application/json")
