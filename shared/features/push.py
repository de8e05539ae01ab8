"""Real-time state features: ``validate_load`` pushes price, discount and stock to the feature
server (``POST /push``, push source ``variant_state_push``, ``to: "online"``). No Feast import.

Two facts of feast 0.67 shape this module (both checked against a running server):

* With the SQLite online store a push overwrites whatever is stored, even with an *older*
  event time (last write wins). So ``push_state`` first reads the current event time of each
  variant (one ``/get-online-features`` call) and skips an update older than it. (Feast's
  Redis store, the cloud one, compares event times itself unless ``skip_dedup`` is set; the
  check here is then redundant but harmless, and keeps both backends alike.)
* A push must carry every feature of the view (a missing column is a 500), and a null
  overwrites. So an update of the price carries the stock it read, and the other way round;
  a carried value that is already stale by the view's TTL is sent as null rather than
  re-stamped fresh with the update's event time.

What remains racy: the read and the push are two calls. Two loaders pushing the same variant
at the same moment can interleave (read, read, push newer, push older), so an older update
can still win, or a price push can carry the stock it read just before a concurrent stock
push and undo it. Feast offers no compare-and-set on pushes. The window is one round trip
(milliseconds), the nightly materialization rewrites every variant's state from the
warehouse (which orders by ``updated_at`` and is always right), and ``predict`` never serves a
value older than the TTL. Also, the server keeps whole seconds: two updates within the same
second compare equal and both are pushed (Shopify's ``updated_at`` has whole seconds too).

Where the values come from (``state_updates``): ``products/create|update`` → each variant's
price and discount (the same rule as the feature SQL); ``inventory_levels/update`` → the
stock of the variant whose ``inventory_item_id`` it is, summed over all locations, read from
the warehouse right after the load (``inventory_levels_latest`` joined with
``variants_latest``). That is one small warehouse query per stock webhook; the event itself
knows one location's level and not the variant, and pushing anything else would not be
``inventory_on_hand`` as the model learned it. A stock update for a variant the warehouse
does not know yet (its product not loaded) is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.features.online import FeatureValue, OnlineFeatures, fresh_value, online_features
from shared.features.views import CREATED_TIMESTAMP, EVENT_TIMESTAMP, JOIN_KEY, PUSH_SOURCE, VARIANT_STATE
from shared.times import as_utc

if TYPE_CHECKING:
    from shared.logs import StructuredLogger
    from shared.ports import Warehouse
    from shared.settings import Settings
    from shared.validation import LoadPlan

# validate_load is not on a shopper's request path: a slower server delays one ack, no page.
PUSH_TIMEOUT_S = 2.0
PUSHED_TOPICS = frozenset({"products/create", "products/update", "inventory_levels/update"})


@dataclass(frozen=True)
class StateUpdate:
    """New values of some ``variant_state`` features of one variant, as of ``event_time``
    (Shopify's ``updated_at`` of what changed)."""

    variant_id: int
    event_time: datetime
    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        unknown = set(self.values) - set(VARIANT_STATE.features)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not {VARIANT_STATE.name} features")


@dataclass
class PushReport:
    pushed: list[int] = field(default_factory=list)
    skipped_older: list[int] = field(default_factory=list)  # the online store holds a newer event
    skipped_stale: list[int] = field(default_factory=list)  # older than the view's TTL already

    def as_fields(self) -> dict[str, int]:
        return {
            "pushed": len(self.pushed),
            "skipped_older": len(self.skipped_older),
            "skipped_stale": len(self.skipped_stale),
        }


def merge_updates(updates: Iterable[StateUpdate]) -> dict[int, StateUpdate]:
    """One update per variant: the newest event time, each feature's newest value."""
    merged: dict[int, StateUpdate] = {}
    for update in sorted(updates, key=lambda u: as_utc(u.event_time)):
        before = merged.get(update.variant_id)
        values = {**before.values, **update.values} if before else dict(update.values)
        merged[update.variant_id] = StateUpdate(update.variant_id, as_utc(update.event_time), values)
    return merged


def current_event_time(row: Mapping[str, FeatureValue]) -> datetime | None:
    """When the online store's row of this variant was written (None: no row)."""
    times = [fv.event_time for fv in row.values() if fv.status != "NOT_FOUND" and fv.event_time]
    return max(times) if times else None


def plan_pushes(
    updates: Iterable[StateUpdate], current: Mapping[int, Mapping[str, FeatureValue]], now: datetime
) -> tuple[list[dict[str, Any]], PushReport]:
    """Pure: the rows to push (complete ``variant_state`` rows) and what was skipped, given
    what the online store holds now (``OnlineFeatures.read``)."""
    report = PushReport()
    rows: list[dict[str, Any]] = []
    for vid, update in merge_updates(updates).items():
        if now - update.event_time > VARIANT_STATE.ttl:
            report.skipped_stale.append(vid)
            continue
        held = current.get(vid, {})
        held_time = current_event_time(held)
        if held_time is not None and update.event_time.replace(microsecond=0) < held_time:
            report.skipped_older.append(vid)
            continue
        row: dict[str, Any] = {
            JOIN_KEY: vid,
            EVENT_TIMESTAMP: update.event_time.isoformat(),
            CREATED_TIMESTAMP: now.isoformat(),
        }
        for feature in VARIANT_STATE.features:
            if feature in update.values:
                row[feature] = _json_number(update.values[feature])
            else:
                row[feature] = fresh_value(held.get(feature), VARIANT_STATE.ttl, now)
        rows.append(row)
        report.pushed.append(vid)
    return rows, report


def _json_number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def push_body(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``/push`` request: a column-oriented frame (``pandas.DataFrame(df)`` on the server)."""
    columns = [JOIN_KEY, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *VARIANT_STATE.features]
    return {
        "push_source_name": PUSH_SOURCE,
        "df": {column: [row[column] for row in rows] for column in columns},
        "to": "online",  # the offline table is rebuilt from the warehouse, never from pushes
    }


def push_state(
    updates: Iterable[StateUpdate], client: OnlineFeatures, now: datetime | None = None
) -> PushReport:
    """Push the updates that are newer than what the online store holds (see module doc for the
    race that remains). Raises ``FeatureServerUnavailable`` when the server fails."""
    now = as_utc(now or datetime.now(UTC))
    updates = list(updates)
    # Only what could be pushed is read (a backfill replaying old events costs no round trip).
    ids = sorted({u.variant_id for u in updates if now - as_utc(u.event_time) <= VARIANT_STATE.ttl})
    if not ids:
        return plan_pushes(updates, {}, now)[1]
    current = client.read(ids, VARIANT_STATE.features, timeout_s=PUSH_TIMEOUT_S)
    rows, report = plan_pushes(updates, current, now)
    if rows:
        client.post("/push", push_body(rows), timeout_s=PUSH_TIMEOUT_S)
    return report


# -- from a loaded event to updates --------------------------------------------------------

InventoryLookup = Callable[[str, int], list[tuple[int, int | None]]]

INVENTORY_ON_HAND_SQL = """
SELECT v.id AS variant_id, SUM(l.available) AS inventory_on_hand
FROM variants_latest AS v
LEFT JOIN inventory_levels_latest AS l
  ON l.shop_domain = v.shop_domain AND l.inventory_item_id = v.inventory_item_id
WHERE v.shop_domain = @shop AND v.inventory_item_id = @item
GROUP BY v.id
"""


def warehouse_inventory_lookup(warehouse: Warehouse) -> InventoryLookup:
    """``(shop, inventory_item_id) → [(variant_id, on hand over all locations)]`` from the
    latest-state views (the event just loaded is already in them)."""

    def lookup(shop: str, item: int) -> list[tuple[int, int | None]]:
        rows = warehouse.query(INVENTORY_ON_HAND_SQL, {"shop": shop, "item": item})
        return [
            (int(r["variant_id"]), None if r["inventory_on_hand"] is None else int(r["inventory_on_hand"]))
            for r in rows
        ]

    return lookup


def discount_of(price: Any, compare_at_price: Any) -> float:
    """Markdown as the feature SQL defines it: 1 − price / compare_at when compare_at > price."""
    if price is None or compare_at_price is None:
        return 0.0
    p, c = Decimal(str(price)), Decimal(str(compare_at_price))
    return float(1 - p / c) if c > p and c > 0 else 0.0


def state_updates(plan: LoadPlan, inventory: InventoryLookup) -> list[StateUpdate]:
    """The state updates one loaded event implies (none for other topics)."""
    if plan.rejected or plan.raw_row.get("shopify_topic") not in PUSHED_TOPICS:
        return []
    updates: list[StateUpdate] = []
    for v in plan.rows_by_table.get("variants", ()):
        if v.get("id") is None or v.get("price") is None:
            continue
        when = v.get("updated_at") or v.get("product_updated_at") or v.get("received_at")
        if when is None:
            continue
        values = {"price": float(v["price"]), "discount": discount_of(v["price"], v.get("compare_at_price"))}
        updates.append(StateUpdate(int(v["id"]), when, values))
    for level in plan.rows_by_table.get("inventory_levels", ()):
        item, when = level.get("inventory_item_id"), level.get("updated_at") or level.get("received_at")
        if item is None or when is None:
            continue
        for variant_id, on_hand in inventory(level["shop_domain"], int(item)):
            updates.append(StateUpdate(variant_id, when, {"inventory_on_hand": on_hand}))
    return updates


class StatePushHook:
    """``on_loaded`` for ``shared.loading.load``: push the event's state features.

    Never raises. A failed push (server down, timeout, a warehouse lookup that failed) is
    logged as a warning and the load still succeeds: the event is already in the warehouse,
    failing now would make Pub/Sub redeliver an event that loaded fine (and retry a push that
    may fail the same way), and the online store is repaired by the nightly materialization
    from the warehouse. Until then ``predict`` serves the older value or, past the TTL, none.
    """

    def __init__(
        self,
        client: OnlineFeatures,
        inventory: InventoryLookup,
        logger: StructuredLogger,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.inventory = inventory
        self.logger = logger
        self.now = now

    def __call__(self, plan: LoadPlan) -> None:
        if plan.raw_row.get("shopify_topic") not in PUSHED_TOPICS:
            return
        labels = {"shop": plan.raw_row.get("shop_domain"), "topic": plan.raw_row.get("shopify_topic")}
        try:
            updates = state_updates(plan, self.inventory)
            report = push_state(updates, self.client, self.now())
        except Exception as exc:  # the load has succeeded; see the class doc
            self.logger.warning(
                "feature push failed; the nightly materialization repairs the online store",
                labels=labels,
                webhook_id=plan.raw_row.get("webhook_id"),
                error_type=type(exc).__name__,
                error=str(exc)[:300],
            )
            return
        if report.pushed or report.skipped_older or report.skipped_stale:
            self.logger.info(
                "state features pushed",
                labels=labels,
                webhook_id=plan.raw_row.get("webhook_id"),
                **report.as_fields(),
            )


def state_push_hook(
    settings: Settings, warehouse: Warehouse, logger: StructuredLogger
) -> StatePushHook | None:
    """The post-load push of a loader (``validate_load``, the pull loader) when a feature
    server is configured; None otherwise. The HTTP client is cached per URL: one keep-alive
    pool per process."""
    if not settings.feature_server_url:
        return None
    return StatePushHook(
        online_features(settings.feature_server_url, settings.feature_timeout_ms),
        warehouse_inventory_lookup(warehouse),
        logger,
    )
