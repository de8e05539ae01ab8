"""Who may call ``predict``: a Shopify app proxy's signature, or a per-shop bearer key.

Pure (hmac, hashlib): the caller passes the query pairs, the ``Authorization`` header, the
secrets and the time.

**App proxy** (storefront pages through ``https://{shop}/apps/...``). Shopify forwards the
request with ``shop``, ``logged_in_customer_id`` (empty when nobody is logged in),
``path_prefix``, ``timestamp`` and ``signature`` added to the query. Shopify's documented
scheme (shopify.dev, "Authenticate app proxies"): drop ``signature``; for every other
parameter ``key=value``, several values of one key joined by ``,``; sort those strings;
concatenate them without a separator; HMAC-SHA256 with the app's client secret, hex. The
secrets are the ones webhooks are signed with (``SHOPIFY_WEBHOOK_SECRETS``; any one may match,
for rotation). Compared in constant time. ``timestamp`` must be within
``max_age_seconds`` of now (Shopify's own libraries allow 90 s), so a copied URL cannot be
replayed for long. The shop is the query's ``shop``, never the body's.

**Bearer key** (headless storefronts, the edge): ``Authorization: Bearer <key>`` with the key
configured for one shop (``SHOPML_PREDICT_KEYS``, ``shop_domain=key,...``). Every configured
key is compared in constant time (no early exit), so the timing says nothing about which
shop or how much of a key matched.

A request with a ``signature`` parameter is judged as an app-proxy request only: a bad
signature is a 401 even if a bearer key is present too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the shop it speaks for and how it proved it."""

    shop_domain: str
    method: str  # "app_proxy" or "key"
    logged_in_customer_id: str | None = None  # app proxy only; never logged or published


@dataclass(frozen=True)
class Unauthorized(Exception):
    """A 401; ``message`` says what is missing or wrong without revealing any secret."""

    message: str
    code: str = "unauthorized"

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def app_proxy_message(query: Iterable[tuple[str, str]]) -> str:
    """The string Shopify signs: every parameter but ``signature``, ``key=v1,v2``, sorted, joined."""
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        if key != "signature":
            grouped.setdefault(key, []).append(value)
    return "".join(sorted(f"{key}={','.join(values)}" for key, values in grouped.items()))


def app_proxy_signature(query: Iterable[tuple[str, str]], secret: str) -> str:
    """What ``signature`` must be for ``query`` under ``secret`` (hex HMAC-SHA256)."""
    return hmac.new(secret.encode(), app_proxy_message(query).encode(), hashlib.sha256).hexdigest()


def verify_app_proxy(
    query: Sequence[tuple[str, str]], secrets: Sequence[str], now: float, max_age_seconds: float
) -> Caller:
    """The caller named by a correctly signed app-proxy query, else ``Unauthorized``."""
    signatures = [value for key, value in query if key == "signature"]
    if len(signatures) != 1 or not signatures[0]:
        raise Unauthorized("app proxy request without exactly one signature parameter")
    if not secrets:
        raise Unauthorized("app proxy requests are not accepted: no app secret is configured")
    given = signatures[0].strip().lower().encode()
    matched = False
    for secret in secrets:  # every secret is tried: no early exit
        expected = app_proxy_signature(query, secret).encode()
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise Unauthorized("app proxy signature does not match")
    params = dict(query)
    shop = params.get("shop", "").strip().lower()
    if not shop:
        raise Unauthorized("app proxy request without a shop parameter")
    try:
        stamp = float(params.get("timestamp", ""))
    except ValueError:
        raise Unauthorized("app proxy request without a numeric timestamp") from None
    if abs(now - stamp) > max_age_seconds:
        raise Unauthorized(f"app proxy signature is older than {max_age_seconds:g} s (or from the future)")
    customer = params.get("logged_in_customer_id") or None
    return Caller(shop_domain=shop, method="app_proxy", logged_in_customer_id=customer)


def verify_bearer(authorization: str | None, keys: Sequence[tuple[str, str]]) -> Caller:
    """The shop whose configured key is in ``Authorization: Bearer <key>``, else ``Unauthorized``."""
    if not authorization:
        raise Unauthorized("credentials required: an app proxy signature or Authorization: Bearer <key>")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    given = token.encode()
    found: str | None = None
    for shop, key in keys:  # every key is compared: no early exit
        if hmac.compare_digest(key.encode(), given) and found is None:
            found = shop
    if found is None:
        raise Unauthorized("unknown key")
    return Caller(shop_domain=found, method="key")


def authenticate(
    query: Sequence[tuple[str, str]],
    authorization: str | None,
    *,
    app_secrets: Sequence[str],
    keys: Sequence[tuple[str, str]],
    now: float,
    max_age_seconds: float,
) -> Caller:
    """App proxy when the query carries ``signature``, else a bearer key; ``Unauthorized`` otherwise."""
    if any(key == "signature" for key, _ in query):
        return verify_app_proxy(query, app_secrets, now, max_age_seconds)
    return verify_bearer(authorization, keys)


def check_shop(caller: Caller, shop_domain: str) -> None:
    """The body may only ask for the shop the credentials belong to."""
    if shop_domain.strip().lower() != caller.shop_domain:
        raise Unauthorized("these credentials are not for the shop_domain in the body", code="wrong_shop")
