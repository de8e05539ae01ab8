"""The simulated store: catalogue, demand model, Shopify payloads, event stream and sender."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devkit.simulator import __main__ as cli
from devkit.simulator.catalogue import PRODUCT_ID_BASE, VARIANT_ID_BASE, build_catalogue
from devkit.simulator.demand import (
    DailyDemand,
    DemandConfig,
    generate_demand,
    promo_distance,
    promotion_calendar,
    simulate_demand,
)
from devkit.simulator.events import StoreConfig, StoreSimulator, WebhookEvent, headers
from devkit.simulator.payloads import money, money_fields
from devkit.simulator.sender import NO_ANSWER, check_loopback, send_webhooks
from shared.settings import STORE_TOPICS
from shared.times import parse_timestamp
from shared.webhooks import parse_webhook_headers, verify_webhook_signature

MONEY = re.compile(r"^\d+\.\d{2}$")
SECRET = "shpss_test_secret"
FLAT = DemandConfig(
    weekly=(1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 1.5),
    store_yearly_amplitude=0.0,
    type_seasonality=False,
    growth_per_year=0.0,
    trend_sd_per_year=0.0,
    promotions=False,
    price_changes_per_year=0.0,
    stockouts=False,
)


def _weekday(d: DailyDemand) -> np.ndarray:
    return np.array([d.day(t).weekday() for t in range(d.n_days)])


# -- catalogue ----------------------------------------------------------------------------------


def test_catalogue_is_deterministic_by_seed_and_has_exactly_n_variants() -> None:
    a, b = build_catalogue(300, seed=4), build_catalogue(300, seed=4)
    assert a.products == b.products
    assert len(a.variants) == 300
    assert build_catalogue(300, seed=5).products != a.products


def test_catalogue_ids_prices_and_skus_look_like_shopify() -> None:
    cat = build_catalogue(500, seed=1)
    variant_ids = [v.id for v in cat.variants]
    assert len(set(variant_ids)) == 500
    assert len({v.sku for v in cat.variants}) == 500
    assert len({v.inventory_item_id for v in cat.variants}) == 500
    assert len({p.handle for p in cat.products}) == len(cat.products)
    for p in cat.products:
        assert PRODUCT_ID_BASE <= p.id < PRODUCT_ID_BASE + 10**12
        for v in p.variants:
            assert VARIANT_ID_BASE <= v.id < VARIANT_ID_BASE + 10**12
            assert v.product_id == p.id
            assert v.price == v.price.quantize(Decimal("0.01")) and v.price > 0
            assert v.compare_at_price is None or v.compare_at_price > v.price
    # Shopify ids grow with creation time.
    created = [p.created_at for p in cat.products]
    assert created == sorted(created)
    assert [p.id for p in cat.products] == sorted(p.id for p in cat.products)


# -- demand -------------------------------------------------------------------------------------


def test_demand_is_deterministic_by_seed() -> None:
    cat = build_catalogue(80, seed=2)
    a = generate_demand(cat, date(2024, 1, 1), date(2024, 4, 1), seed=2)
    b = generate_demand(cat, date(2024, 1, 1), date(2024, 4, 1), seed=2)
    for name in ("units", "demand", "price", "inventory_on_hand", "restock", "discount"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = generate_demand(cat, date(2024, 1, 1), date(2024, 4, 1), seed=3)
    assert not np.array_equal(a.units, c.units)


def test_weekly_seasonality_matches_the_configured_profile() -> None:
    _, d = simulate_demand(600, date(2024, 1, 1), date(2024, 12, 30), seed=7, config=FLAT)
    per_day = d.units.sum(axis=1)
    weekday = _weekday(d)
    ratio = per_day[weekday >= 5].mean() / per_day[weekday < 5].mean()
    assert ratio == pytest.approx(1.5, rel=0.05)
    # Expected demand follows the profile exactly.
    exp = d.expected.sum(axis=1)
    assert exp[weekday == 5].mean() / exp[weekday == 2].mean() == pytest.approx(1.5, rel=1e-3)


def test_default_store_sells_more_at_weekends() -> None:
    _, d = simulate_demand(400, date(2024, 1, 1), date(2024, 7, 1), seed=1)
    per_day, weekday = d.units.sum(axis=1), _weekday(d)
    assert per_day[weekday >= 5].mean() > 1.1 * per_day[weekday < 5].mean()


def test_promotions_raise_demand_against_the_fortnight_before() -> None:
    config = replace(FLAT, promotions=True, weekly=(1.0,) * 7)
    _, d = simulate_demand(500, date(2024, 1, 1), date(2025, 1, 1), seed=3, config=config)
    assert d.promotions, "the calendar has promotions in a full year"
    per_day = d.units.sum(axis=1)
    for p in d.promotions:
        t0 = max(0, (p.start - date(2024, 1, 1)).days)
        t1 = (p.end - date(2024, 1, 1)).days + 1
        before = per_day[max(0, t0 - 14) : t0]
        if len(before) < 7 or t1 > d.n_days:
            continue
        assert per_day[t0:t1].mean() > 1.15 * before.mean(), p
        assert np.all(d.discount[t0:t1] == np.float32(p.discount)) and d.promo[t0:t1].all()


def test_promotion_calendar_is_known_in_advance() -> None:
    promos = promotion_calendar(date(2024, 1, 1), date(2025, 1, 1), seed=0)
    bfcm = next(p for p in promos if p.code == "BFCM24")
    assert (bfcm.start, bfcm.end, bfcm.discount) == (date(2024, 11, 29), date(2024, 12, 2), 0.25)
    # A longer range keeps the same promotions (a year's dates depend on seed and year only).
    longer = promotion_calendar(date(2023, 6, 1), date(2025, 6, 1), seed=0)
    assert set(promos) <= set(longer)
    dates = np.array([np.datetime64("2024-11-25"), np.datetime64("2024-11-30"), np.datetime64("2024-12-05")])
    to_next, since_last = promo_distance(dates, promos)
    assert to_next[0] == 4 and to_next[1] == 0 and since_last[1] == 0 and since_last[2] == 3


def test_stockouts_give_zero_sales_while_inventory_is_zero() -> None:
    _, d = simulate_demand(400, date(2024, 1, 1), date(2024, 9, 1), seed=11)
    empty = d.inventory_on_hand == 0
    assert np.all(d.units[empty] == 0)
    assert np.all(d.units <= d.inventory_on_hand)
    assert np.all(d.units <= d.demand)
    lost = empty & (d.demand > 0)
    assert lost.sum() > 100, "stock-outs happen and lose sales"
    # Stock flows: tomorrow's stock = today's stock - today's sales + tomorrow's delivery.
    np.testing.assert_array_equal(
        d.inventory_on_hand[1:], d.inventory_on_hand[:-1] - d.units[:-1] + d.restock[1:]
    )
    # A stock-out ends with a restock: zero stock never turns positive without a delivery.
    recovered = empty[:-1] & (d.inventory_on_hand[1:] > 0)
    assert np.all(d.restock[1:][recovered] > 0)


def test_perfect_replenishment_sells_all_demand() -> None:
    _, d = simulate_demand(
        100, date(2024, 1, 1), date(2024, 3, 1), seed=2, config=replace(FLAT, promotions=True)
    )
    np.testing.assert_array_equal(d.units, d.demand)


def test_price_changes_move_list_prices_and_demand_responds() -> None:
    config = replace(FLAT, price_changes_per_year=4.0, weekly=(1.0,) * 7)
    cat, d = simulate_demand(300, date(2024, 1, 1), date(2024, 12, 1), seed=5, config=config)
    base = cat.base_prices
    changed = np.abs(d.price - base) > 0.005
    assert changed.any()
    np.testing.assert_allclose(np.round(d.price * 100), d.price * 100, atol=1e-6)  # two decimals
    changed &= d.expected[0] > 0  # launched on the first day: a baseline exists
    rel = d.expected[changed] / d.expected[0][np.nonzero(changed)[1]]
    up = (d.price > base)[changed]
    assert np.median(rel[up]) < 1 < np.median(rel[~up])


def test_two_thousand_variants_for_eighteen_months_is_fast() -> None:
    started = time.perf_counter()
    _, d = simulate_demand(2000, date(2023, 1, 1), date(2023, 1, 1) + timedelta(days=548), seed=0)
    elapsed = time.perf_counter() - started
    assert d.units.shape == (548, 2000)
    assert elapsed < 10.0, f"{elapsed:.1f} s"
    frame = d.to_frame()
    assert len(frame) == 548 * 2000
    assert {
        "date",
        "variant_id",
        "product_id",
        "units",
        "price",
        "discount",
        "inventory_on_hand",
        "promo",
    } <= set(frame.columns)
    assert int(frame["units"].sum()) == int(d.units.sum())


# -- event stream -------------------------------------------------------------------------------

TEST_STORE = StoreConfig(
    fulfil_rate=1.0,
    return_rate=0.4,
    return_delay_days=(0.5, 3.0),
    cancel_rate=0.08,
    paid_events=True,
)


@pytest.fixture(scope="module")
def bfcm() -> tuple[StoreSimulator, list[WebhookEvent]]:
    sim = StoreSimulator(seed=5, n_variants=40, start=date(2024, 11, 22), days=14, store_config=TEST_STORE)
    return sim, list(sim.events())


def check_order_payload(p: dict[str, Any]) -> None:
    """Shopify's money and id conventions, and totals that add up."""
    for path, value in money_fields(p):
        assert MONEY.match(value), (path, value)
    assert p["admin_graphql_api_id"] == f"gid://shopify/Order/{p['id']}"
    assert p["name"] == f"#{p['order_number']}"
    for key in ("created_at", "updated_at", "processed_at"):
        assert datetime.fromisoformat(p[key]).utcoffset() is not None, key
    lines = p["line_items"]
    assert lines
    gross = sum((Decimal(li["price"]) * li["quantity"] for li in lines), Decimal(0))
    discounts = sum((Decimal(a["amount"]) for li in lines for a in li["discount_allocations"]), Decimal(0))
    tax = sum((Decimal(t["price"]) for li in lines for t in li["tax_lines"]), Decimal(0))
    shipping = Decimal(p["total_shipping_price_set"]["shop_money"]["amount"])
    assert Decimal(p["total_line_items_price"]) == gross
    assert Decimal(p["total_discounts"]) == discounts
    assert Decimal(p["subtotal_price"]) == gross - discounts
    assert Decimal(p["total_tax"]) == tax
    assert Decimal(p["total_price"]) == gross - discounts + shipping + (0 if p["taxes_included"] else tax)
    for key in ("total_price", "subtotal_price", "total_tax", "total_discounts", "total_line_items_price"):
        bag = p[f"{key}_set"]
        assert bag["shop_money"]["amount"] == bag["presentment_money"]["amount"] == p[key]
        assert bag["shop_money"]["currency_code"] == p["currency"]
    for li in lines:
        assert li["admin_graphql_api_id"] == f"gid://shopify/LineItem/{li['id']}"
        assert isinstance(li["id"], int) and isinstance(li["quantity"], int) and li["quantity"] > 0
        assert Decimal(li["total_discount"]) <= Decimal(li["price"]) * li["quantity"]
    if p["customer"] is None:
        assert p["email"] is None
    else:
        assert p["customer"]["admin_graphql_api_id"] == f"gid://shopify/Customer/{p['customer']['id']}"
        assert p["customer"]["email"].endswith("@example.com")
    if p["discount_codes"]:
        assert Decimal(p["discount_codes"][0]["amount"]) == discounts
    assert p["test"] is False


def test_stream_is_time_ordered_and_uses_store_topics(
    bfcm: tuple[StoreSimulator, list[WebhookEvent]],
) -> None:
    _, events = bfcm
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    topics = Counter(e.topic for e in events)
    assert set(topics) <= set(STORE_TOPICS)
    for topic in ("orders/create", "orders/updated", "orders/paid", "orders/cancelled", "refunds/create",
                  "products/update", "inventory_levels/update"):  # fmt: skip
        assert topics[topic] > 0, topic
    assert len({e.webhook_id for e in events}) == len(events)
    assert len({e.event_id for e in events}) == len(events)


def test_every_order_payload_is_consistent(bfcm: tuple[StoreSimulator, list[WebhookEvent]]) -> None:
    _, events = bfcm
    orders = [e for e in events if e.topic.startswith("orders/")]
    discounted = 0
    for e in orders:
        p = e.payload()
        check_order_payload(p)
        discounted += bool(p["discount_codes"])
        assert e.triggered_at.endswith("Z")
        assert parse_timestamp(e.triggered_at) == parse_timestamp(p["updated_at"])
    assert discounted > 10, "Black Friday orders carry the promotion's code"


def test_refunds_reference_existing_line_items_within_ordered_quantity(
    bfcm: tuple[StoreSimulator, list[WebhookEvent]],
) -> None:
    _, events = bfcm
    ordered: dict[int, dict[int, int]] = {}
    refunded: dict[int, int] = defaultdict(int)
    n = 0
    for e in events:
        p = e.payload()
        if e.topic == "orders/create":
            ordered[p["id"]] = {li["id"]: li["quantity"] for li in p["line_items"]}
        elif e.topic == "refunds/create":
            n += 1
            assert p["admin_graphql_api_id"] == f"gid://shopify/Refund/{p['id']}"
            lines = ordered[p["order_id"]]  # the order was created before its refund
            amount = Decimal(0)
            for rl in p["refund_line_items"]:
                assert rl["line_item_id"] in lines and rl["line_item"]["id"] == rl["line_item_id"]
                refunded[rl["line_item_id"]] += rl["quantity"]
                assert 0 < refunded[rl["line_item_id"]] <= lines[rl["line_item_id"]]
                assert MONEY.match(rl["subtotal_set"]["shop_money"]["amount"])
                assert Decimal(str(rl["subtotal"])) == Decimal(rl["subtotal_set"]["shop_money"]["amount"])
                amount += Decimal(rl["subtotal_set"]["shop_money"]["amount"])
                amount += Decimal(rl["total_tax_set"]["shop_money"]["amount"])
            assert Decimal(p["transactions"][0]["amount"]) == amount
            assert p["transactions"][0]["kind"] == "refund"
    assert n > 5


def test_orders_updated_after_a_refund_shows_it(bfcm: tuple[StoreSimulator, list[WebhookEvent]]) -> None:
    _, events = bfcm
    last: dict[int, dict[str, Any]] = {}
    for e in events:
        if e.topic in ("orders/updated", "orders/cancelled"):
            last[e.payload()["id"]] = e.payload()
    refunded = [p for p in last.values() if p["refunds"]]
    assert refunded
    for p in refunded:
        assert p["financial_status"] in ("partially_refunded", "refunded")
        back = sum(Decimal(t["amount"]) for r in p["refunds"] for t in r["transactions"])
        assert Decimal(p["current_total_price"]) == Decimal(p["total_price"]) - back
        for li in p["line_items"]:
            gone = sum(
                rl["quantity"]
                for r in p["refunds"]
                for rl in r["refund_line_items"]
                if rl["line_item_id"] == li["id"]
            )
            assert li["current_quantity"] == li["quantity"] - gone
    cancelled = [p for p in last.values() if p["cancelled_at"]]
    assert cancelled
    for p in cancelled:
        assert p["financial_status"] == "voided" and p["cancel_reason"] and p["current_total_price"] == "0.00"


def _assert_sales_match_demand(sim: StoreSimulator, events: list[WebhookEvent]) -> None:
    cancelled = {e.payload()["id"] for e in events if e.topic == "orders/cancelled"}
    authorized = {
        e.payload()["id"]
        for e in events
        if e.topic == "orders/create" and e.payload()["financial_status"] == "authorized"
    }
    assert authorized == cancelled  # every extra order is cancelled inside the range
    sold: Counter[tuple[date, int]] = Counter()
    for e in events:
        if e.topic != "orders/create":
            continue
        p = e.payload()
        if p["id"] in cancelled:
            continue
        day = datetime.fromisoformat(p["created_at"]).date()
        for li in p["line_items"]:
            sold[(day, li["variant_id"])] += li["quantity"]
    d = sim.demand
    expected = Counter(
        {
            (d.day(t), int(d.variant_ids[c])): int(d.units[t, c])
            for t, c in zip(*np.nonzero(d.units), strict=True)
        }
    )
    assert sold == expected


def test_sales_in_orders_equal_the_demand_model(bfcm: tuple[StoreSimulator, list[WebhookEvent]]) -> None:
    _assert_sales_match_demand(*bfcm)


@pytest.mark.parametrize("start", [date(2024, 3, 8), date(2024, 11, 1)])
def test_sales_match_demand_across_daylight_saving_changes(start: date) -> None:
    sim = StoreSimulator(seed=8, n_variants=30, start=start, days=5, store_config=TEST_STORE)
    events = list(sim.events())
    _assert_sales_match_demand(sim, events)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    offsets = {e.payload()["created_at"][-6:] for e in events if e.topic == "orders/create"}
    assert offsets == {"-05:00", "-04:00"}


def test_inventory_events_report_the_demand_models_stock(
    bfcm: tuple[StoreSimulator, list[WebhookEvent]],
) -> None:
    sim, events = bfcm
    d, cat = sim.demand, sim.catalogue
    col = {v.inventory_item_id: i for i, v in enumerate(cat.variants)}
    n = 0
    for e in events:
        if e.topic != "inventory_levels/update":
            continue
        p = e.payload()
        assert p["admin_graphql_api_id"] == (
            f"gid://shopify/InventoryLevel/{p['location_id']}?inventory_item_id={p['inventory_item_id']}"
        )
        local = datetime.fromisoformat(p["updated_at"])
        t = (local.date() - sim.start).days
        c = col[p["inventory_item_id"]]
        if local.hour == 23:  # end of day, after the day's sales
            assert p["available"] == d.inventory_on_hand[t, c] - d.units[t, c]
        else:  # a delivery arrived this morning
            assert p["available"] == d.inventory_on_hand[t, c] and d.restock[t, c] > 0
        n += 1
    assert n > 50


def test_product_events_carry_ids_and_current_prices(bfcm: tuple[StoreSimulator, list[WebhookEvent]]) -> None:
    sim, events = bfcm
    d = sim.demand
    col = sim.catalogue.variant_index
    for e in events:
        if not e.topic.startswith("products/"):
            continue
        p = e.payload()
        assert p["admin_graphql_api_id"] == f"gid://shopify/Product/{p['id']}"
        t = (datetime.fromisoformat(p["updated_at"]).date() - sim.start).days
        for v in p["variants"]:
            assert v["admin_graphql_api_id"] == f"gid://shopify/ProductVariant/{v['id']}"
            assert v["product_id"] == p["id"] and MONEY.match(v["price"])
            assert Decimal(v["price"]) == Decimal(f"{d.price[t, col[v['id']]]:.2f}")


def test_same_seed_same_bytes_and_ids() -> None:
    def run(seed: int) -> list[tuple[str, str, bytes]]:
        sim = StoreSimulator(seed=seed, n_variants=15, start=date(2024, 3, 1), days=5)
        return [(e.topic, e.webhook_id, e.body) for e in sim.events()]

    first = run(9)
    assert first == run(9)
    assert first != run(10)


def test_headers_are_shopifys_and_signatures_verify(bfcm: tuple[StoreSimulator, list[WebhookEvent]]) -> None:
    _, events = bfcm
    for e in events[:300]:
        h = headers(e, SECRET)
        parsed = parse_webhook_headers(h)
        assert (parsed.topic, parsed.webhook_id, parsed.event_id) == (e.topic, e.webhook_id, e.event_id)
        assert parsed.shop_domain == e.shop_domain and parsed.api_version == "2025-07"
        assert h["Content-Type"] == "application/json"
        assert verify_webhook_signature(e.body, h["X-Shopify-Hmac-Sha256"], [SECRET])
        assert not verify_webhook_signature(e.body, h["X-Shopify-Hmac-Sha256"], ["another-secret"])
        assert not verify_webhook_signature(e.body + b" ", h["X-Shopify-Hmac-Sha256"], [SECRET])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), offset=st.integers(0, 365))
def test_any_seed_gives_valid_payloads(seed: int, offset: int) -> None:
    start = date(2024, 1, 1) + timedelta(days=offset)
    sim = StoreSimulator(seed=seed, n_variants=8, start=start, days=4, store_config=TEST_STORE)
    for e in sim.events():
        p = e.payload()
        assert isinstance(p["id"] if "id" in p else p["inventory_item_id"], int)
        for _, value in money_fields(p):
            assert MONEY.match(value)
        if e.topic.startswith("orders/"):
            check_order_payload(p)
        assert parse_webhook_headers(headers(e, SECRET)).topic == e.topic


def test_money_strings_have_two_decimals() -> None:
    assert money(Decimal("3")) == "3.00"
    assert money(Decimal("2.005")) == "2.01"
    assert money(Decimal("-0.001")) == "0.00"
    assert money(Decimal("1E+2")) == "100.00"


# -- sender -------------------------------------------------------------------------------------


class _Endpoint:
    """A loopback webhook receiver whose answers depend on the path and the delivery count."""

    def __init__(self, answer: Callable[[str, int], int]) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        self.deliveries: list[tuple[str, str, bytes]] = []  # (path, webhook id, body)
        self.count: Counter[str] = Counter()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the sender expects

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook_id = self.headers["X-Shopify-Webhook-Id"]
                signed = verify_webhook_signature(body, self.headers["X-Shopify-Hmac-Sha256"], [SECRET])
                with endpoint.lock:
                    endpoint.count[webhook_id] += 1
                    endpoint.deliveries.append((self.path, webhook_id, body))
                    n = endpoint.count[webhook_id]
                status = endpoint.answer(self.path, n) if signed else 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _answer(path: str, n: int) -> int:
    if path == "/flaky":
        return 503 if n == 1 else 200
    if path == "/bad":
        return 400
    if path == "/down":
        return 503
    return 200


@pytest.fixture()
def endpoint() -> Iterator[_Endpoint]:
    ep = _Endpoint(_answer)
    yield ep
    ep.close()


@pytest.fixture(scope="module")
def few_events() -> list[WebhookEvent]:
    events = list(StoreSimulator(seed=1, n_variants=20, start=date(2024, 5, 1), days=4).events())[:30]
    assert len(events) == 30
    return events


def test_sender_delivers_signed_events_once_each(endpoint: _Endpoint, few_events: list[WebhookEvent]) -> None:
    report = send_webhooks(few_events, endpoint.url + "/ok", SECRET, duplicate_rate=0.0, concurrency=3)
    assert (report.sent, report.accepted, report.deliveries, report.retries) == (30, 30, 30, 0)
    assert report.status_counts == {200: 30} and not report.failures
    assert len(report.latencies) == 30 and all(ms > 0 for ms in report.latencies)
    assert {w for _, w, _ in endpoint.deliveries} == {e.webhook_id for e in few_events}


def test_sender_retries_503_then_accepts(endpoint: _Endpoint, few_events: list[WebhookEvent]) -> None:
    report = send_webhooks(
        few_events, endpoint.url + "/flaky", SECRET, duplicate_rate=0.0, retry_backoff_s=0.001
    )
    assert report.accepted == report.sent == 30
    assert report.retries == 30 and report.deliveries == 60
    assert report.status_counts == {200: 30, 503: 30}
    assert not report.failures
    # A retry is the same delivery: same webhook id, same bytes.
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for _, webhook_id, body in endpoint.deliveries:
        bodies[webhook_id].add(body)
    assert all(len(b) == 1 for b in bodies.values()) and all(endpoint.count[w] == 2 for w in bodies)


def test_sender_never_retries_400(endpoint: _Endpoint, few_events: list[WebhookEvent]) -> None:
    report = send_webhooks(
        few_events, endpoint.url + "/bad", SECRET, duplicate_rate=0.0, retry_backoff_s=0.001
    )
    assert report.accepted == 0 and report.retries == 0
    assert report.deliveries == 30 and report.status_counts == {400: 30}
    assert len(report.failures) == 30 and {f[1] for f in report.failures} == {400}


def test_sender_gives_up_after_max_retries(endpoint: _Endpoint, few_events: list[WebhookEvent]) -> None:
    report = send_webhooks(few_events[:5], endpoint.url + "/down", SECRET, duplicate_rate=0.0, max_retries=2,
                           retry_backoff_s=0.001)  # fmt: skip
    assert report.deliveries == 15 and report.retries == 10 and report.accepted == 0
    assert [f[1] for f in report.failures] == [503] * 5


def test_sender_duplicates_carry_the_same_webhook_id(
    endpoint: _Endpoint, few_events: list[WebhookEvent]
) -> None:
    report = send_webhooks(few_events, endpoint.url + "/ok", SECRET, duplicate_rate=1.0)
    assert report.sent == 30 and report.duplicates_sent == 30 and report.deliveries == 60
    assert report.accepted == 30
    by_id: dict[str, list[bytes]] = defaultdict(list)
    for _, webhook_id, body in endpoint.deliveries:
        by_id[webhook_id].append(body)
    assert len(by_id) == 30
    assert all(len(b) == 2 and b[0] == b[1] for b in by_id.values())


def test_sender_some_duplicates_at_a_low_rate(endpoint: _Endpoint) -> None:
    events = list(StoreSimulator(seed=2, n_variants=80, start=date(2024, 5, 1), days=10).events())[:400]
    assert len(events) == 400
    report = send_webhooks(events, endpoint.url + "/ok", SECRET, duplicate_rate=0.05, concurrency=4, seed=3)
    assert 5 <= report.duplicates_sent <= 40
    assert report.deliveries == report.sent + report.duplicates_sent
    assert sum(1 for n in endpoint.count.values() if n == 2) == report.duplicates_sent


def test_sender_keeps_an_open_loop_rate(endpoint: _Endpoint, few_events: list[WebhookEvent]) -> None:
    report = send_webhooks(few_events[:20], endpoint.url + "/ok", SECRET, rate_per_s=200, duplicate_rate=0.0)
    assert report.accepted == 20
    assert report.elapsed_s >= 19 / 200


def test_sender_counts_connection_errors_and_retries_them(few_events: list[WebhookEvent]) -> None:
    ep = _Endpoint(_answer)
    url = ep.url
    ep.close()  # nothing listens there any more
    report = send_webhooks(
        few_events[:3], url, SECRET, duplicate_rate=0.0, max_retries=1, retry_backoff_s=0.001, timeout=1.0
    )
    assert report.status_counts == {NO_ANSWER: 6} and report.retries == 3 and report.accepted == 0
    assert all(f[1] is None and f[2] for f in report.failures)


def test_sender_is_bounded(endpoint: _Endpoint, few_events: list[WebhookEvent]) -> None:
    report = send_webhooks(few_events, endpoint.url + "/ok", SECRET, duplicate_rate=0.0, max_events=7)
    assert report.sent == 7 and report.truncated
    slow = send_webhooks(
        few_events, endpoint.url + "/ok", SECRET, rate_per_s=10, duplicate_rate=0.0, max_seconds=0.25
    )
    assert slow.truncated and slow.sent <= 4


@pytest.mark.parametrize(
    "url", ["http://example.com/", "http://10.0.0.1:8080/", "https://8.8.8.8/", "ftp://127.0.0.1/"]
)
def test_sender_refuses_non_loopback_targets(url: str) -> None:
    with pytest.raises(ValueError):
        check_loopback(url)
    with pytest.raises(ValueError):
        send_webhooks([], url, SECRET)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/", "http://localhost:8080/x", "http://[::1]:9/", "http://127.3.2.1/"]
)
def test_sender_accepts_loopback_targets(url: str) -> None:
    check_loopback(url)


# -- command line -------------------------------------------------------------------------------


def test_cli_dry_run_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["store", "--dry-run", "--days", "2", "--variants", "5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == sum(summary["topics"].values()) > 0


def test_cli_sends_to_a_local_endpoint(endpoint: _Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--url",
        endpoint.url + "/ok",
        "--secret",
        SECRET,
        "--days",
        "1",
        "--variants",
        "5",
        "--duplicates",
        "0",
    ]
    code = cli.main(["store", *args])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["accepted"] == report["sent"] > 0


def test_cli_requires_url_and_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOPIFY_WEBHOOK_SECRETS", raising=False)
    assert cli.main(["store", "--days", "1"]) == 2
    assert cli.main(["store", "--days", "1", "--url", "http://example.com/", "--secret", "s"]) == 2
