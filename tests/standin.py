"""Helpers for tests that talk to the Shopify Admin API stand-in (``devkit/shopify_standin``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date
from typing import Any

from devkit.shopify_standin import StandIn
from devkit.simulator import StoreSimulator

SHOP = "shopml-demo.myshopify.com"
TOKEN = "shpat_test_token"


def simulated_stand_in(
    n_variants: int = 6, start: date = date(2024, 11, 1), days: int = 30, seed: int = 0, **kwargs: Any
) -> tuple[StandIn, StoreSimulator]:
    """A started stand-in holding a simulated store's state at the end of its range."""
    standin = StandIn(**kwargs)
    standin.add_token(TOKEN, SHOP)
    sim = StoreSimulator(seed, n_variants, start, shop_domain=SHOP, days=days)
    standin.state.apply_all(sim.events())
    return standin.start(), sim


def post(
    standin: StandIn,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str = TOKEN,
    version: str = "2025-10",
) -> tuple[int, dict[str, Any]]:
    """POST one GraphQL request; (HTTP status, JSON answer)."""
    request = urllib.request.Request(
        f"{standin.url}/admin/api/{version}/graphql.json",
        json.dumps({"query": query, "variables": variables}).encode(),
        {"Content-Type": "application/json", "X-Shopify-Access-Token": token},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
