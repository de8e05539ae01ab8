"""A simulated Shopify store as a time-ordered stream of webhook events.

``StoreSimulator`` turns the daily demand (``demand.py``) into the deliveries Shopify would
make to an app subscribed to the store topics:

* ``orders/create`` for every order (the day's units split into orders of 1+ lines);
  ``orders/paid`` right after it when ``StoreConfig.paid_events``;
* ``orders/updated`` when an order is fulfilled (0.3 to 3 days later), and after a refund;
* ``refunds/create`` for returns (some fulfilled orders, 3 to 21 days after fulfilment);
* a few extra orders that are cancelled within hours (``orders/cancelled`` +
  ``orders/updated``); they never count as sales and do not move inventory;
* ``products/update`` when a list price changes (and a catalogue snapshot at the start),
  ``products/create`` when a product launches inside the range;
* ``inventory_levels/update`` when a restock arrives and at the end of each day with sales.

Invariant (tested): the line-item quantities of orders that are not cancelled, summed per
variant and shop-local day, equal ``demand.units``. Returns are refunded without restocking
(``restock_type: no_restock``), so the inventory events always equal the demand model's stock.
No I/O here: ``sender.py`` delivers the events.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import numpy as np

from devkit.simulator.catalogue import Catalogue, Product, build_catalogue
from devkit.simulator.demand import DailyDemand, DemandConfig, Promotion, generate_demand
from devkit.simulator.payloads import (
    AddressSpec,
    CustomerSpec,
    JsonDict,
    LineItemSpec,
    OrderSpec,
    OrderStatus,
    RefundLineSpec,
    RefundSpec,
    d2,
    encode_body,
    inventory_level_payload,
    order_payload,
    order_totals,
    product_payload,
    refund_amount,
    refund_payload,
)
from shared.webhooks import sign_webhook

DEFAULT_API_VERSION = "2025-07"
DEFAULT_SHOP_DOMAIN = "shopml-demo.myshopify.com"

# Relative order volume per local hour (evening peak, quiet night).
_HOURLY = (0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.1, 1.2, 1.3,
           1.4, 1.3, 1.2, 1.2, 1.3, 1.4, 1.6, 1.8, 1.9, 1.7, 1.2, 0.6)  # fmt: skip
_FIRST_NAMES = ("Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jordan", "Kai", "Logan",
                "Morgan", "Parker", "Quinn", "Riley", "Rowan", "Sage", "Skyler", "Taylor")  # fmt: skip
_CITIES = (
    ("Springfield", "Illinois", "IL", "62701"),
    ("Riverton", "Wyoming", "WY", "82501"),
    ("Fairview", "Oregon", "OR", "97024"),
    ("Madison", "Wisconsin", "WI", "53703"),
    ("Georgetown", "Texas", "TX", "78626"),
    ("Salem", "Massachusetts", "MA", "01970"),
    ("Franklin", "Tennessee", "TN", "37064"),
    ("Clinton", "Iowa", "IA", "52732"),
)
_CANCEL_REASONS = ("customer", "customer", "fraud", "inventory", "declined", "other")


@dataclass(frozen=True)
class WebhookEvent:
    """One webhook as Shopify would deliver it: topic, identity headers and the exact body bytes."""

    topic: str
    shop_domain: str
    api_version: str
    webhook_id: str
    event_id: str
    triggered_at: str  # ISO 8601 UTC with ``Z`` (X-Shopify-Triggered-At)
    body: bytes
    occurred_at: datetime  # aware UTC; ordering key of the stream

    def payload(self) -> JsonDict:
        result: JsonDict = json.loads(self.body)
        return result


def headers(event: WebhookEvent, secret: str) -> dict[str, str]:
    """The HTTP headers of a delivery of ``event``, signed with the app's client ``secret``."""
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": event.topic,
        "X-Shopify-Hmac-Sha256": sign_webhook(event.body, secret),
        "X-Shopify-Shop-Domain": event.shop_domain,
        "X-Shopify-Webhook-Id": event.webhook_id,
        "X-Shopify-API-Version": event.api_version,
        "X-Shopify-Triggered-At": event.triggered_at,
        "X-Shopify-Event-Id": event.event_id,
    }


def utc_stamp(moment: datetime) -> str:
    """``2024-03-01T15:15:00.000Z``: the form of ``X-Shopify-Triggered-At``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventFactory:
    """Wraps bodies into ``WebhookEvent``s with deterministic (seeded) webhook and event ids."""

    def __init__(self, shop_domain: str, api_version: str, seed: int) -> None:
        if not shop_domain.endswith(".myshopify.com"):
            raise ValueError(f"shop_domain {shop_domain!r} must be a *.myshopify.com domain")
        self.shop_domain = shop_domain
        self.api_version = api_version
        self._rnd = random.Random(seed * 131 + 3)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self._rnd.getrandbits(128), version=4))

    def make(self, topic: str, payload: JsonDict, occurred_at: datetime) -> WebhookEvent:
        return WebhookEvent(
            topic=topic,
            shop_domain=self.shop_domain,
            api_version=self.api_version,
            webhook_id=self.uuid(),
            event_id=self.uuid(),
            triggered_at=utc_stamp(occurred_at),
            body=encode_body(payload),
            occurred_at=occurred_at.astimezone(UTC),
        )


@dataclass(frozen=True)
class StoreConfig:
    """How demand becomes orders and follow-up events."""

    timezone: str = "America/New_York"
    currency: str = "USD"
    tax_rate: Decimal = Decimal("0.08")
    shipping_price: Decimal = Decimal("6.95")
    free_shipping_over: Decimal = Decimal("75.00")
    multi_unit_rate: float = 0.2  # a line holds 2-4 units with this probability
    mean_extra_lines: float = 0.6  # lines per order = 1 + geometric with this mean
    customer_null_rate: float = 0.04  # orders without customer (and without email)
    returning_customer_rate: float = 0.35
    paid_events: bool = False  # also send orders/paid after orders/create
    fulfil_rate: float = 0.6  # orders that get an orders/updated when fulfilled
    fulfil_delay_days: tuple[float, float] = (0.3, 3.0)
    return_rate: float = 0.05  # fulfilled orders that are (partly) refunded later
    return_delay_days: tuple[float, float] = (3.0, 21.0)
    cancel_rate: float = 0.01  # extra orders cancelled within hours
    location_id: int = 71_234_567_890
    catalogue_snapshot: bool = True  # products/update for every product at the start
    product_events: bool = True
    inventory_events: bool = True


class _Ids:
    """Monotone Shopify-like ids per resource (they grow with creation time, with gaps)."""

    BASES: ClassVar[dict[str, int]] = {
        "order": 5_000_000_000_000,
        "line_item": 13_000_000_000_000,
        "customer": 6_000_000_000_000,
        "address": 8_500_000_000_000,
        "refund": 900_000_000_000,
        "refund_line": 500_000_000_000,
        "transaction": 8_000_000_000_000,
        "fulfillment": 4_000_000_000_000,
        "shipping_line": 4_500_000_000_000,
    }

    def __init__(self, rnd: random.Random) -> None:
        self._rnd = rnd
        self._last = {k: v + rnd.randrange(1_000_000, 9_000_000) for k, v in self.BASES.items()}

    def next(self, kind: str) -> int:
        self._last[kind] += self._rnd.randrange(1, 2_000)
        return self._last[kind]


@dataclass
class _OrderState:
    spec: OrderSpec
    financial_status: str
    fulfillment_status: str | None = None
    fulfilled_at: datetime | None = None
    fulfillment_id: int | None = None
    refunds: list[RefundSpec] = field(default_factory=list)
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None

    def status(self, at: datetime) -> OrderStatus:
        return OrderStatus(
            updated_at=at,
            financial_status=self.financial_status,
            fulfillment_status=self.fulfillment_status,
            fulfilled_at=self.fulfilled_at,
            fulfillment_id=self.fulfillment_id,
            refunds=tuple(self.refunds),
            cancelled_at=self.cancelled_at,
            cancel_reason=self.cancel_reason,
            closed_at=self.cancelled_at,
        )


_Build = Callable[[], JsonDict]


class StoreSimulator:
    """A seeded store that yields a time-ordered stream of ``WebhookEvent``s over ``[start, end)``.

    ``end`` defaults to ``start + days`` (28 days). Same arguments, same events, byte for byte.
    """

    def __init__(
        self,
        seed: int = 0,
        n_variants: int = 50,
        start: date = date(2024, 1, 1),
        end: date | None = None,
        shop_domain: str = DEFAULT_SHOP_DOMAIN,
        api_version: str = DEFAULT_API_VERSION,
        *,
        days: int = 28,
        demand_config: DemandConfig | None = None,
        store_config: StoreConfig | None = None,
    ) -> None:
        self.seed = seed
        self.start = start
        self.end = end or start + timedelta(days=days)
        self.shop_domain = shop_domain
        self.api_version = api_version
        self.config = store_config or StoreConfig()
        self.tz = ZoneInfo(self.config.timezone)
        self.catalogue: Catalogue = build_catalogue(n_variants, seed=seed, start=start, end=self.end)
        self.demand: DailyDemand = generate_demand(
            self.catalogue, start, self.end, seed=seed, config=demand_config
        )

    @property
    def promotions(self) -> tuple[Promotion, ...]:
        return self.demand.promotions

    def __iter__(self) -> Iterator[WebhookEvent]:
        return self.events()

    def events(self) -> Iterator[WebhookEvent]:
        """Every event of the range, in ``occurred_at`` order (ties broken deterministically)."""
        return _Run(self).events()


class _Run:
    """One pass over the range; holds the mutable state (ids, customers, scheduled events)."""

    def __init__(self, sim: StoreSimulator) -> None:
        self.sim = sim
        self.cfg = sim.config
        self.tz = sim.tz
        self.rnd = random.Random(sim.seed * 31 + 7)
        self.ids = _Ids(random.Random(sim.seed * 37 + 11))
        self.factory = EventFactory(sim.shop_domain, sim.api_version, sim.seed)
        self.heap: list[tuple[datetime, int, str, _Build]] = []
        self.seq = 0
        self.order_number = 1000
        self.customers: list[CustomerSpec] = []
        self.end_utc = self._local(sim.end, time(0, 0))
        cat = sim.catalogue
        self.variants = cat.variants
        self.products = cat.products
        self.product_of = [cat.product_by_id[v.product_id] for v in cat.variants]
        self.variant_cols = {p.id: [cat.variant_index[v.id] for v in p.variants] for p in cat.products}
        self.launch_day = (cat.created_dates() - sim.demand.dates[0]).astype(np.int64)

    # -- scheduling -------------------------------------------------------------------------
    def _local(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.tz).astimezone(UTC)

    def _push(self, when: datetime, topic: str, build: _Build) -> None:
        if when >= self.end_utc:
            return  # beyond the simulated range: it has not happened yet
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, topic, build))

    def events(self) -> Iterator[WebhookEvent]:
        demand = self.sim.demand
        for t in range(demand.n_days):
            day = demand.day(t)
            self._schedule_day(t, day)
            horizon = self._local(day + timedelta(days=1), time(0, 0))
            while self.heap and self.heap[0][0] < horizon:
                when, _, topic, build = heapq.heappop(self.heap)
                yield self.factory.make(topic, build(), when)
        while self.heap:  # only events before the end were scheduled
            when, _, topic, build = heapq.heappop(self.heap)
            yield self.factory.make(topic, build(), when)

    # -- one day ----------------------------------------------------------------------------
    def _prices(self, t: int, cols: list[int]) -> dict[int, Decimal]:
        row = self.sim.demand.price[t]
        return {self.variants[c].id: Decimal(f"{row[c]:.2f}") for c in cols}

    def _stock(self, t: int, cols: list[int]) -> dict[int, int]:
        row = self.sim.demand.inventory_on_hand[t]
        return {self.variants[c].id: int(row[c]) for c in cols}

    def _product_build(self, product: Product, t: int, when: datetime) -> _Build:
        cols = self.variant_cols[product.id]
        prices, stock = self._prices(t, cols), self._stock(t, cols)
        return lambda: product_payload(product, self.tz, when, prices, stock)

    def _schedule_day(self, t: int, day: date) -> None:
        demand, cfg, launch_day = self.sim.demand, self.cfg, self.launch_day
        if cfg.product_events:
            if t == 0 and cfg.catalogue_snapshot:
                for i, product in enumerate(self.products):
                    if launch_day[self.variant_cols[product.id][0]] <= 0:
                        when = self._local(day, time(0, 0, 1)) + timedelta(milliseconds=250 * i)
                        self._push(when, "products/update", self._product_build(product, t, when))
            for product in self.products:
                cols = self.variant_cols[product.id]
                if t > 0 and launch_day[cols[0]] == t:
                    when = max(product.created_at, self._local(day, time(0, 0, 2)))
                    self._push(when, "products/create", self._product_build(product, t, when))
                elif t > 0 and np.any(demand.price[t, cols] != demand.price[t - 1, cols]):
                    when = self._local(day, time(6, self.rnd.randrange(60), self.rnd.randrange(60)))
                    self._push(when, "products/update", self._product_build(product, t, when))
        if cfg.inventory_events:
            for c in np.nonzero(demand.restock[t])[0]:
                when = self._local(day, time(0, 0, self.rnd.randrange(5, 55)))
                self._push_inventory(int(c), int(demand.inventory_on_hand[t, c]), when)
            for c in np.nonzero(demand.units[t])[0]:
                when = self._local(day, time(23, 59, self.rnd.randrange(5, 55)))
                self._push_inventory(int(c), int(demand.inventory_on_hand[t, c] - demand.units[t, c]), when)
        self._schedule_orders(t, day)

    def _push_inventory(self, col: int, available: int, when: datetime) -> None:
        item = self.variants[col].inventory_item_id
        loc = self.cfg.location_id
        self._push(
            when,
            "inventory_levels/update",
            lambda: inventory_level_payload(item, loc, available, when, self.tz),
        )

    def _order_time(self, day: date) -> datetime:
        hour = self.rnd.choices(range(24), weights=_HOURLY)[0]
        low = 1 if hour == 0 else 0
        high = 57 if hour == 23 else 59
        return self._local(day, time(hour, self.rnd.randint(low, high), self.rnd.randrange(60)))

    def _baskets(self, units: np.ndarray) -> list[list[tuple[int, int]]]:
        """Split the day's units into orders: lists of (variant column, quantity)."""
        chunks: list[tuple[int, int]] = []
        for col in np.nonzero(units)[0]:
            c, left = int(col), int(units[col])
            while left > 0:
                q = (
                    min(left, self.rnd.choice((2, 2, 3, 4)))
                    if self.rnd.random() < self.cfg.multi_unit_rate
                    else 1
                )
                chunks.append((int(c), q))
                left -= q
        self.rnd.shuffle(chunks)
        p_more = self.cfg.mean_extra_lines / (1.0 + self.cfg.mean_extra_lines)
        baskets: list[list[tuple[int, int]]] = []
        i = 0
        while i < len(chunks):
            k = 1
            while self.rnd.random() < p_more:
                k += 1
            merged: dict[int, int] = {}
            for c, q in chunks[i : i + k]:
                merged[c] = merged.get(c, 0) + q
            baskets.append(sorted(merged.items()))
            i += k
        return baskets

    def _customer(self, at: datetime) -> CustomerSpec | None:
        if self.rnd.random() < self.cfg.customer_null_rate:
            return None
        if self.customers and self.rnd.random() < self.cfg.returning_customer_rate:
            return self.rnd.choice(self.customers)
        n = len(self.customers) + 1
        first = self.rnd.choice(_FIRST_NAMES)
        last = f"Sample-{n:05d}"
        city, province, code, zip_code = self.rnd.choice(_CITIES)
        address = AddressSpec(
            first_name=first,
            last_name=last,
            address1=f"{100 + n % 900} Example Street",
            city=city,
            province=province,
            province_code=code,
            country="United States",
            country_code="US",
            zip=zip_code,
            phone=f"+1-555-01{n % 100:02d}",
        )
        customer = CustomerSpec(
            id=self.ids.next("customer"),
            email=f"{first.lower()}.sample-{n:05d}@example.com",
            first_name=first,
            last_name=last,
            phone=None,
            created_at=at,
            address=address,
            address_id=self.ids.next("address"),
        )
        self.customers.append(customer)
        return customer

    def _schedule_orders(self, t: int, day: date) -> None:
        demand, cfg = self.sim.demand, self.cfg
        promo = next((p for p in demand.promotions if p.covers(day)), None)
        discount = Decimal(str(round(float(demand.discount[t]), 4)))
        baskets = [(b, False) for b in self._baskets(demand.units[t])]
        extra = [(b, True) for b, _ in baskets if self.rnd.random() < cfg.cancel_rate]
        timed = sorted(
            ((self._order_time(day), i, b, cancel) for i, (b, cancel) in enumerate(baskets + extra))
        )
        for when, _, basket, cancel in timed:
            cancel_after = timedelta(seconds=self.rnd.randint(600, 14_400)) if cancel else None
            if cancel_after is not None and when + cancel_after >= self.end_utc:
                continue  # its cancellation would fall after the range: leave the order out
            spec = self._order_spec(t, when, basket, promo, discount)
            state = _OrderState(spec, financial_status="authorized" if cancel else "paid")
            self._push(when, "orders/create", self._snapshot(state, when))
            if cfg.paid_events and not cancel:
                paid_at = when + timedelta(seconds=1)
                self._push(paid_at, "orders/paid", self._snapshot(state, paid_at))
            if cancel_after is not None:
                self._schedule_cancel(state, when + cancel_after)
            elif self.rnd.random() < cfg.fulfil_rate:
                self._schedule_fulfilment(state, when)

    def _order_spec(
        self,
        t: int,
        when: datetime,
        basket: list[tuple[int, int]],
        promo: Promotion | None,
        discount: Decimal,
    ) -> OrderSpec:
        cfg = self.cfg
        self.order_number += 1
        customer = self._customer(when)
        lines = []
        row = self.sim.demand.price[t]
        for c, q in basket:
            v, p = self.variants[c], self.product_of[c]
            price = Decimal(f"{row[c]:.2f}")
            lines.append(
                LineItemSpec(
                    id=self.ids.next("line_item"),
                    variant_id=v.id,
                    product_id=p.id,
                    sku=v.sku,
                    title=p.title,
                    variant_title=v.title,
                    vendor=p.vendor,
                    quantity=q,
                    price=price,
                    discount=d2(price * q * discount) if promo else Decimal("0.00"),
                    grams=v.grams,
                )
            )
        subtotal = sum((li.net for li in lines), Decimal("0.00"))
        shipping = Decimal("0.00") if subtotal >= cfg.free_shipping_over else cfg.shipping_price
        return OrderSpec(
            id=self.ids.next("order"),
            order_number=self.order_number,
            created_at=when,
            tz=self.tz,
            currency=cfg.currency,
            line_items=tuple(lines),
            customer=customer,
            email=None if customer is None else customer.email,
            shipping_address=None if customer is None else customer.address,
            billing_address=None if customer is None else customer.address,
            transaction_id=self.ids.next("transaction"),
            shipping_price=shipping,
            tax_rate=cfg.tax_rate,
            discount_code=promo.code if promo else None,
            discount_percent=promo.discount * 100 if promo else None,
            shop_domain=self.sim.shop_domain,
            shipping_line_id=self.ids.next("shipping_line"),
            source_name="web" if customer is not None else "pos",
        )

    def _snapshot(self, state: _OrderState, at: datetime) -> _Build:
        return lambda: order_payload(state.spec, state.status(at))

    def _schedule_cancel(self, state: _OrderState, at: datetime) -> None:
        reason = self.rnd.choice(_CANCEL_REASONS)

        def cancel() -> JsonDict:
            state.cancelled_at, state.cancel_reason, state.financial_status = at, reason, "voided"
            return order_payload(state.spec, state.status(at))

        self._push(at, "orders/cancelled", cancel)
        self._push(
            at + timedelta(seconds=1), "orders/updated", self._snapshot(state, at + timedelta(seconds=1))
        )

    def _schedule_fulfilment(self, state: _OrderState, created: datetime) -> None:
        at = created + timedelta(seconds=round(86_400 * self.rnd.uniform(*self.cfg.fulfil_delay_days)))
        fulfillment_id = self.ids.next("fulfillment")

        def fulfil() -> JsonDict:
            state.fulfillment_status, state.fulfilled_at, state.fulfillment_id = (
                "fulfilled",
                at,
                fulfillment_id,
            )
            return order_payload(state.spec, state.status(at))

        self._push(at, "orders/updated", fulfil)
        if self.rnd.random() < self.cfg.return_rate:
            self._schedule_refund(state, at)

    def _schedule_refund(self, state: _OrderState, fulfilled: datetime) -> None:
        at = fulfilled + timedelta(seconds=round(86_400 * self.rnd.uniform(*self.cfg.return_delay_days)))
        lines = state.spec.line_items
        chosen = list(lines) if self.rnd.random() < 0.3 else [self.rnd.choice(lines)]
        refund_lines = tuple(
            RefundLineSpec(
                id=self.ids.next("refund_line"), line_item=li, quantity=self.rnd.randint(1, li.quantity)
            )
            for li in chosen
        )
        refund = RefundSpec(
            id=self.ids.next("refund"),
            order_id=state.spec.id,
            created_at=at,
            lines=refund_lines,
            transaction_id=self.ids.next("transaction"),
            note=self.rnd.choice((None, "Customer return", "Wrong size", "Damaged in transit")),
            restock=False,
        )

        def create_refund() -> JsonDict:
            state.refunds.append(refund)
            refunded = sum((refund_amount(r, state.spec) for r in state.refunds), Decimal("0.00"))
            total = order_totals(state.spec).total
            state.financial_status = "refunded" if refunded >= total else "partially_refunded"
            return refund_payload(refund, state.spec)

        self._push(at, "refunds/create", create_refund)
        later = at + timedelta(seconds=self.rnd.randint(2, 20))
        self._push(later, "orders/updated", self._snapshot(state, later))


def summarize_events(events: Iterable[WebhookEvent]) -> dict[str, Any]:
    """Counts per topic, time range and body bytes of a stream (for ``--dry-run``)."""
    topics: Counter[str] = Counter()
    first: str | None = None
    last: str | None = None
    size = 0
    largest = 0
    for event in events:
        topics[event.topic] += 1
        first = first or event.triggered_at
        last = event.triggered_at
        size += len(event.body)
        largest = max(largest, len(event.body))
    return {
        "events": sum(topics.values()),
        "topics": dict(sorted(topics.items())),
        "first_triggered_at": first,
        "last_triggered_at": last,
        "body_bytes": size,
        "largest_body_bytes": largest,
    }
