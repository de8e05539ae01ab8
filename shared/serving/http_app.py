"""The Starlette side of ``predict`` (functions-framework's ASGI path): a request in, a response out.

All the rules live in ``shared.serving.predict_app``; this module only translates. It reads
the body in chunks up to the limit (so an oversized body is refused without being held), and
runs ``predict_app.after_answer`` once the response has been sent (Starlette's background task).
"""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from shared.serving import predict_app
from shared.serving.predict_app import Answer, BodyReader, BodyTooLarge, Incoming


def incoming(request: Request) -> Incoming:
    return Incoming(
        method=request.method,
        path=request.url.path,
        query=list(request.query_params.multi_items()),
        headers={key.lower(): value for key, value in request.headers.items()},
    )


def body_reader(request: Request) -> BodyReader:
    async def read(limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    return read


def response(answer: Answer, background: BackgroundTask | None = None) -> Response:
    return Response(
        answer.body or None,
        status_code=answer.status,
        headers=dict(answer.headers),
        media_type=answer.media_type,
        background=background,
    )


async def serve(request: Request) -> Response:
    """``predict``'s answer to ``request`` with this process's runtime."""
    rt = predict_app.runtime()
    answer = await predict_app.respond(rt, incoming(request), body_reader(request))
    later = predict_app.after_answer(rt)
    return response(answer, BackgroundTask(later) if later is not None else None)
