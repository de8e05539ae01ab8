"""A local stand-in for the parts of Shopify's Admin GraphQL API that shopml uses.

Shopify cannot run here. ``StandIn`` is an HTTP server that answers
``POST /admin/api/<version>/graphql.json`` the way Shopify documents it (access tokens,
calculated query cost and the leaky bucket, cursor pagination, webhook subscriptions, bulk
operations, deletion events, the ``read_all_orders`` window), over a store built from the
simulator's webhook events. See README.md for what it models and what it does not.

    from devkit.shopify_standin import StandIn, simulated_stand_in
    with simulated_stand_in(seed=0, n_variants=20, days=30) as (standin, events):
        print(standin.url)
"""

from __future__ import annotations

from devkit.shopify_standin.server import DEFAULT_SCOPES, SUPPORTED_VERSIONS, StandIn, Token
from devkit.shopify_standin.store import StoreState

__all__ = ["DEFAULT_SCOPES", "SUPPORTED_VERSIONS", "StandIn", "StoreState", "Token"]
