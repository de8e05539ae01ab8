"""Validation and normalisation of Shopify webhook events (pure: no I/O, no cloud import).

``plan_load(attributes, data, message_id, publish_time, now)`` turns one ``shopify-events``
message into a ``LoadPlan``: the raw landing row, typed rows per table with deterministic row
ids, schema-drift rows, and the quarantine row with its reasons when the event is rejected.
Schemas live in ``shared/schemas/webhooks/``, table layouts in ``shared/schemas/tables/``.
"""

from shared.validation.plan import (
    DRIFT_TABLE,
    RAW_TABLE,
    REJECTED_TABLE,
    LoadPlan,
    Reason,
    plan_load,
    rejection_row,
)
from shared.validation.schema import topic_schemas

TYPED_TABLES: tuple[str, ...] = (
    "orders",
    "order_line_items",
    "refunds",
    "refund_line_items",
    "products",
    "variants",
    "inventory_levels",
    "customers",
)

__all__ = [
    "DRIFT_TABLE",
    "RAW_TABLE",
    "REJECTED_TABLE",
    "TYPED_TABLES",
    "LoadPlan",
    "Reason",
    "plan_load",
    "rejection_row",
    "topic_schemas",
]
