"""A simulated Shopify store that sends signed webhooks, and a replay of real retail orders.

Layers (each reusable on its own): ``catalogue`` (products and variants) → ``demand``
(vectorised daily demand, promotions, stock-outs) → ``payloads`` (Shopify-shaped bodies) →
``events`` (a time-ordered stream of ``WebhookEvent``s) → ``sender`` (signed HTTP deliveries
to a loopback URL). ``retail`` replays the UCI Online Retail sample as ``orders/create``.
See README.md in this folder.
"""

from devkit.simulator.catalogue import Catalogue, Product, Variant, build_catalogue
from devkit.simulator.demand import (
    DailyDemand,
    DemandConfig,
    Promotion,
    generate_demand,
    promo_distance,
    promotion_calendar,
    simulate_demand,
)
from devkit.simulator.events import StoreConfig, StoreSimulator, WebhookEvent, headers, summarize_events

__all__ = [
    "Catalogue",
    "DailyDemand",
    "DemandConfig",
    "Product",
    "Promotion",
    "StoreConfig",
    "StoreSimulator",
    "Variant",
    "WebhookEvent",
    "build_catalogue",
    "generate_demand",
    "headers",
    "promo_distance",
    "promotion_calendar",
    "simulate_demand",
    "summarize_events",
]
