"""Retraining on request from a Shopify Flow workflow: ``POST <predict URL>/retrain``.

A merchant's Flow workflow (e.g. "when a product's inventory changes by more than X", or a
scheduled one) ends with Flow's **Send HTTP request** action:

* Method ``POST``, URL ``https://<predict's URL>/retrain``;
* Headers ``Authorization: Bearer <the shop's predict key>`` and
  ``Content-Type: application/json``;
* Body (optional) ``{"reason": "inventory moved on {{product.title}}"}``.

It reuses ``predict``'s endpoint and its bearer keys (``SHOPML_PREDICT_KEYS``, one per shop,
compared in constant time: ``shared.serving.auth``), and only them: an app-proxy signature is
refused here (401 ``key_required``), because any shopper's page view is signed that way.
The request becomes one message on ``training-requests`` for today's night (UTC), with
``requested_by`` ``shopify-flow:<shop>`` and the idempotency key
``flow:<shop>:<model>:<night>``; ``trigger_training`` runs a model and night once, so a
workflow that fires a hundred times a day trains at most once that day. The answer (202) comes
only after Pub/Sub acknowledged; a failed publish is a 503 so Flow's retry sends it again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.serving.request import BadRequest

TOPIC = "training-requests"
MAX_REASON = 500


def parse_retrain_body(body: bytes) -> str:
    """The optional ``reason`` of a retrain request (empty body: none)."""
    if not body.strip():
        return ""
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("invalid_json", 'the body must be a JSON object, e.g. {"reason": "..."}') from None
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", 'the body must be a JSON object, e.g. {"reason": "..."}')
    unknown = sorted(set(data) - {"reason"})
    if unknown:
        raise BadRequest("unknown_field", f"unknown fields {unknown}; a retrain request takes only reason")
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise BadRequest("invalid_reason", f"reason must be a string of at most {MAX_REASON} characters")
    return reason.strip()


def retrain_message(
    shop_domain: str, model: str, reason: str, now: datetime
) -> tuple[bytes, dict[str, str], str]:
    """The ``training-requests`` message (data, attributes) and its idempotency key."""
    night = now.date().isoformat()
    key = f"flow:{shop_domain}:{model}:{night}"
    body = {
        "model": model,
        "night": night,
        "reason": reason or "asked for by a Shopify Flow workflow",
        "requested_by": f"shopify-flow:{shop_domain}",
        "idempotency_key": key,
    }
    return json.dumps(body).encode(), {"source": "shopify-flow", "shop_domain": shop_domain}, key
