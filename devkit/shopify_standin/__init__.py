"""A local stand-in for the parts of Shopify's Admin GraphQL API that shopml uses.

Shopify cannot run here. ``StandIn`` is an HTTP server that answers
``POST /admin/api/<version>/graphql.json`` the way Shopify documents it (access tokens,
calculated query cost and the leaky bucket, cursor pagination, webhook subscriptions, bulk
operations, deletion events, the ``read_all_orders`` window), over a store built from the
simulator's webhook events. See README.md for what it models and what it does not.

    from devkit.shopify_standin import serve_events
    standin = serve_events(StoreSimulator(0, 20, date(2024, 11, 1), days=30).events(),
                           shop="shopml-demo.myshopify.com", token="shpat_local")
    print(standin.url)   # SHOPML_SHOPIFY_ADMIN_URL; SHOPML_SHOPIFY_ACCESS_TOKENS=shop=shpat_local
    standin.stop()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devkit.shopify_standin.server import DEFAULT_SCOPES, SUPPORTED_VERSIONS, StandIn, Token
from devkit.shopify_standin.store import StoreState

__all__ = ["DEFAULT_SCOPES", "SUPPORTED_VERSIONS", "StandIn", "StoreState", "Token", "serve_events"]


def serve_events(
    events: Iterable[Any],
    *,
    shop: str,
    token: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> StandIn:
    """A started stand-in whose store holds ``events`` (the simulator's ``WebhookEvent``s), with
    one access token for ``shop``. ``options`` go to ``StandIn`` (bucket size, restore rate)."""
    standin = StandIn(**options)
    standin.add_token(token, shop, scopes)
    standin.state.apply_all(events)
    return standin.start(host, port)
