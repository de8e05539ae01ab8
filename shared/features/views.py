"""The online feature views as plain data: names, features, time-to-live. No Feast import.

Defined once here and read by both sides: the Feast definitions (``feast_repo/definitions.py``,
batch work, SDK) and the HTTP clients on the request path (``online.py``, ``push.py``), which
must not import Feast (5–6 s, DESIGN.md "Features"). A test checks that the Feast objects
match this module and the column contract in ``shared.features``.

Why these TTLs: rows of day D carry the event time D 00:00 UTC and are materialized nightly.
``variant_history`` (lags, rolling statistics) is two days old at most when one nightly run
failed; older than that it describes another week and must not be served. ``variant_state``
(price, discount, stock) is refreshed by pushes from webhooks as well; a variant nobody touched
keeps its state, but three days without a materialization or a push means the pipeline is
broken, and a stale stock level is worse than the fallback. Feast stores these TTLs but does
not enforce them on online reads (feast-dev/feast#1802): ``online.fresh_value`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.features import HISTORY, SHOP

PROJECT = "shopml"
ENTITY = "variant"
JOIN_KEY = "variant_id"  # INT64; Shopify variant ids are unique across shops
EVENT_TIMESTAMP = "event_timestamp"  # the day's 00:00 UTC in the offline table
CREATED_TIMESTAMP = "created"  # when the row was exported (ties between equal event times)
PUSH_SOURCE = "variant_state_push"


@dataclass(frozen=True)
class View:
    name: str
    features: tuple[str, ...]
    ttl: timedelta

    def refs(self) -> list[str]:
        """Feature references as the feature server takes them (``view:feature``)."""
        return [f"{self.name}:{feature}" for feature in self.features]


VARIANT_HISTORY = View(
    "variant_history", (*HISTORY, *SHOP, "product_type", "product_age_days"), timedelta(days=2)
)
VARIANT_STATE = View("variant_state", ("price", "discount", "inventory_on_hand"), timedelta(days=3))
VIEWS: tuple[View, ...] = (VARIANT_HISTORY, VARIANT_STATE)
VIEWS_BY_NAME: dict[str, View] = {view.name: view for view in VIEWS}

# Feast value types of the features (everything else in the two views is FLOAT64).
INT64_FEATURES: frozenset[str] = frozenset({"inventory_on_hand", "product_age_days"})
STRING_FEATURES: frozenset[str] = frozenset({"product_type"})


def view_of(feature: str) -> View:
    """The view that serves ``feature`` (each feature is in exactly one view)."""
    for view in VIEWS:
        if feature in view.features:
            return view
    raise KeyError(f"{feature!r} is not an online feature; online: {[f for v in VIEWS for f in v.features]}")
