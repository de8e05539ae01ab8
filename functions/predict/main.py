"""predict: demand forecasts for the storefront, from the live model (HTTP, public, async).

Runs on functions-framework's ASGI path (``@functions_framework.aio.http``, Starlette; start it
with ``--asgi`` or ``FUNCTION_USE_ASGI=true``). Contract: docs/openapi/predict.yaml.

The checks (405, 413, 401, 400; never a stack trace: 503), CORS, ``GET /metrics`` and the
sampled answers are ``shared.serving.predict_app``; ``shared.serving.http_app`` translates
Starlette's request and response. Never imports lightgbm, pandas, feast, scipy or aiplatform
(tests/functions/test_predict.py imports it in a fresh interpreter and checks ``sys.modules``).
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared.serving import http_app


@functions_framework.aio.http
async def predict(request: Request) -> Response:
    return await http_app.serve(request)
