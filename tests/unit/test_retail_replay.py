"""Replay of the UCI Online Retail sample as orders/create webhooks."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devkit.simulator.events import headers
from devkit.simulator.payloads import money_fields
from devkit.simulator.retail import (
    LONDON,
    RETAIL_CSV_ENV,
    RetailData,
    default_retail_csv,
    id_collisions,
    load_retail,
    parse_invoice_date,
    parse_retail_csv,
    product_id_for,
    retail_daily_demand,
    retail_events,
    retail_order_payloads,
    retail_summary,
    stock_code_root,
    variant_id_for,
)
from shared.webhooks import parse_webhook_headers, verify_webhook_signature

MONEY = re.compile(r"^\d+\.\d{2}$")
HEADER = "X.1;X;InvoiceNo;StockCode;Description;Quantity;InvoiceDate;UnitPrice;CustomerID;Country\r\n"


@pytest.fixture(scope="module")
def csv_path() -> Path:
    path = default_retail_csv()
    if not path.exists():
        pytest.skip(f"retail sample not found at {path} (set {RETAIL_CSV_ENV})")
    return path


@pytest.fixture(scope="module")
def data(csv_path: Path) -> RetailData:
    return load_retail(csv_path)


@pytest.fixture(scope="module")
def payloads(data: RetailData) -> list[dict[str, Any]]:
    return retail_order_payloads(data)


@pytest.fixture(scope="module")
def raw_rows(csv_path: Path) -> list[dict[str, str]]:
    """The file read independently with the csv module (the reference for the checks)."""
    with csv_path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=";"))


def test_every_row_becomes_one_line_item_of_exactly_one_order(
    data: RetailData, payloads: list[dict[str, Any]], raw_rows: list[dict[str, str]]
) -> None:
    assert len(raw_rows) == 5000 and not data.rejected
    assert len(payloads) == 1807
    line_ids = [li["id"] for p in payloads for li in p["line_items"]]
    assert len(line_ids) == 5000 and len(set(line_ids)) == 5000
    assert len({p["id"] for p in payloads}) == 1807
    assert {p["order_number"] for p in payloads} == {int(r["InvoiceNo"]) for r in raw_rows}
    per_invoice = Counter(r["InvoiceNo"] for r in raw_rows)
    for p in payloads:
        assert len(p["line_items"]) == per_invoice[str(p["order_number"])]


def test_orders_without_customer(
    data: RetailData, payloads: list[dict[str, Any]], raw_rows: list[dict[str, str]]
) -> None:
    anonymous = [p for p in payloads if p["customer"] is None]
    assert len(anonymous) == len({r["InvoiceNo"] for r in raw_rows if r["CustomerID"] == "NA"}) == 219
    assert sum(len(p["line_items"]) for p in anonymous) == 1792
    assert all(p["email"] is None for p in anonymous)
    known = [p for p in payloads if p["customer"] is not None]
    assert len({p["customer"]["id"] for p in known}) == 1039
    assert all(p["customer"]["email"] == p["email"] and p["email"].endswith("@example.com") for p in known)
    summary = retail_summary(data)
    assert (summary.orders, summary.line_items, summary.orders_without_customer) == (1807, 5000, 219)
    assert (summary.line_items_without_customer, summary.customers, summary.stock_codes) == (1792, 1039, 1682)
    assert summary.first_invoice_at == "2010-12-01T08:45:00+00:00"
    assert summary.last_invoice_at == "2011-02-23T13:21:00+00:00"
    assert summary.days_with_orders == 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12/06/2010 10:08", "2010-12-06T10:08:00+00:00"),  # MM/DD/YYYY: 6 December, not 12 June
        ("2/20/11 11:39", "2011-02-20T11:39:00+00:00"),  # M/D/YY
        ("02/08/2011 11:07", "2011-02-08T11:07:00+00:00"),
        ("1/19/11 16:18", "2011-01-19T16:18:00+00:00"),
        ("6/15/11 9:05", "2011-06-15T09:05:00+01:00"),  # British Summer Time
    ],
)
def test_both_date_formats_parse_month_first_in_london_time(text: str, expected: str) -> None:
    assert parse_invoice_date(text).isoformat() == expected


def test_known_rows_keep_their_dates(payloads: list[dict[str, Any]]) -> None:
    by_invoice = {p["order_number"]: p for p in payloads}
    # Rows 1-4 of the file: 537240 "12/06/2010 10:08", 544447 "2/20/11 11:39",
    # 544299 "2/17/11 12:55", 543399 "02/08/2011 11:07".
    assert by_invoice[537240]["created_at"] == "2010-12-06T10:08:00+00:00"
    assert by_invoice[544447]["created_at"] == "2011-02-20T11:39:00+00:00"
    assert by_invoice[544299]["created_at"] == "2011-02-17T12:55:00+00:00"
    assert by_invoice[543399]["created_at"] == "2011-02-08T11:07:00+00:00"
    wrap = next(li for li in by_invoice[544299]["line_items"] if li["sku"] == "16161P")
    assert (wrap["title"], wrap["quantity"], wrap["price"]) == ("WRAP ENGLISH ROSE", 25, "0.42")
    assert by_invoice[544299]["customer"]["id"] == 6_100_000_000_000 + 13178


def test_order_dates_are_monotone_in_invoice_number(payloads: list[dict[str, Any]]) -> None:
    ordered = sorted(payloads, key=lambda p: p["order_number"])
    created = [datetime.fromisoformat(p["created_at"]) for p in ordered]
    assert created == sorted(created)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_both_formats_round_trip(moment: datetime) -> None:
    moment = moment.replace(second=0, microsecond=0)
    long_form = moment.strftime("%m/%d/%Y %H:%M")
    short_form = f"{moment.month}/{moment.day}/{moment.year % 100:02d} {moment.hour}:{moment.minute:02d}"
    for text in (long_form, short_form):
        parsed = parse_invoice_date(text)
        assert parsed.replace(tzinfo=None) == moment and parsed.tzinfo == LONDON


def test_no_id_collisions(data: RetailData, payloads: list[dict[str, Any]]) -> None:
    assert id_collisions(data) == {"variant": 0, "product": 0, "order": 0, "line_item": 0}
    codes = {r.stock_code for r in data.rows}
    assert len({variant_id_for(c) for c in codes}) == len(codes) == 1682
    roots = {stock_code_root(c) for c in codes}
    assert len({product_id_for(c) for c in codes}) == len(roots)
    sku_of_variant: dict[int, str] = {}
    for p in payloads:
        for li in p["line_items"]:
            assert sku_of_variant.setdefault(li["variant_id"], li["sku"]) == li["sku"]
            assert 41_000_000_000_000 <= li["variant_id"] < 42_000_000_000_000
            assert 7_100_000_000_000 <= li["product_id"] < 7_200_000_000_000


def test_product_is_the_numeric_root_and_odd_codes_map_deterministically() -> None:
    assert stock_code_root("16161P") == "16161"
    assert product_id_for("16161P") == product_id_for("16161") == product_id_for("16161p")
    assert variant_id_for("16161P") != variant_id_for("16161p")  # codes are case-sensitive SKUs
    for code in ("POST", "DOT", "M", "C2", "BANK CHARGES", "DCGS0003", "gift_0001_30"):
        assert stock_code_root(code) == code
        assert variant_id_for(code) == variant_id_for(code) and product_id_for(code) == product_id_for(code)
    assert len({variant_id_for(c) for c in ("POST", "DOT", "M", "C2", "BANK CHARGES")}) == 5


def test_quantity_per_stock_code_equals_the_csv(
    payloads: list[dict[str, Any]], raw_rows: list[dict[str, str]]
) -> None:
    from_csv: Counter[str] = Counter()
    for r in raw_rows:
        from_csv[r["StockCode"]] += int(r["Quantity"])
    from_orders: Counter[str] = Counter()
    for p in payloads:
        for li in p["line_items"]:
            from_orders[li["sku"]] += li["quantity"]
    assert from_orders == from_csv
    assert sum(from_csv.values()) == 31508


def test_money_is_gbp_with_two_decimals_and_totals_add_up(payloads: list[dict[str, Any]]) -> None:
    for p in payloads:
        assert p["currency"] == p["presentment_currency"] == "GBP"
        assert p["admin_graphql_api_id"] == f"gid://shopify/Order/{p['id']}"
        for path, value in money_fields(p):
            assert MONEY.match(value), (p["name"], path, value)
        gross = sum((Decimal(li["price"]) * li["quantity"] for li in p["line_items"]), Decimal(0))
        assert (
            Decimal(p["total_line_items_price"])
            == Decimal(p["subtotal_price"])
            == Decimal(p["total_price"])
            == gross
        )
        assert p["total_tax"] == "0.00" and p["taxes_included"] is True
        assert datetime.fromisoformat(p["created_at"]).utcoffset() == timedelta(0)
        for li in p["line_items"]:
            assert li["admin_graphql_api_id"] == f"gid://shopify/LineItem/{li['id']}"


def test_messy_values_survive(payloads: list[dict[str, Any]]) -> None:
    lines = [li for p in payloads for li in p["line_items"]]
    assert any(li["title"] == 'LETTER "E" BLING KEY RING' for li in lines)
    assert sum(1 for li in lines if li["title"] == "") == 4
    assert sum(1 for li in lines if li["price"] == "0.00") == 10
    countries = Counter(p["shipping_address"]["country"] for p in payloads)
    assert len(countries) == 28 and all(p["shipping_address"]["country_code"] for p in payloads)
    eire = next(p for p in payloads if p["shipping_address"]["country"] == "EIRE")
    assert eire["shipping_address"]["country_code"] == "IE"


def test_events_are_signed_time_ordered_and_deterministic(csv_path: Path, data: RetailData) -> None:
    events = list(retail_events(data=data))
    assert len(events) == 1807 and {e.topic for e in events} == {"orders/create"}
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    for e in events[:50]:
        h = headers(e, "secret")
        assert verify_webhook_signature(e.body, h["X-Shopify-Hmac-Sha256"], ["secret"])
        assert parse_webhook_headers(h).shop_domain == "uci-online-retail.myshopify.com"
        assert e.triggered_at.replace("Z", "+00:00").startswith(e.payload()["created_at"][:19])
    again = list(retail_events(csv_path))
    assert [(e.webhook_id, e.body) for e in again] == [(e.webhook_id, e.body) for e in events]


def test_daily_demand_matches_the_rows(data: RetailData, raw_rows: list[dict[str, str]]) -> None:
    daily = retail_daily_demand(data=data)
    assert int(daily["units"].sum()) == 31508
    assert not daily.duplicated(["date", "variant_id"]).any()
    per_code = daily.groupby("stock_code")["units"].sum().to_dict()
    from_csv: Counter[str] = Counter()
    for r in raw_rows:
        from_csv[r["StockCode"]] += int(r["Quantity"])
    assert per_code == dict(from_csv)
    dense = retail_daily_demand(data=data, dense=True)
    assert len(dense) == 85 * 1682  # 2010-12-01 .. 2011-02-23, every variant every day
    assert int(dense["units"].sum()) == 31508
    assert str(dense["date"].min().date()) == "2010-12-01" and str(dense["date"].max().date()) == "2011-02-23"
    row = daily[(daily["stock_code"] == "16161P") & (daily["date"] == "2011-02-17")]
    assert int(row["units"].iloc[0]) >= 25


def test_env_variable_overrides_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "tiny.csv"
    small.write_text(
        HEADER + '1;2;536999;85123A;"WHITE ""HEART"" HOLDER";6;12/01/2010 08:26;2.55;NA;France\r\n'
    )
    monkeypatch.setenv(RETAIL_CSV_ENV, str(small))
    assert default_retail_csv() == small
    data = load_retail()
    assert len(data.rows) == 1 and data.rows[0].description == 'WHITE "HEART" HOLDER'
    assert data.rows[0].customer_id is None


def test_bad_rows_are_rejected_with_reasons_not_raised() -> None:
    text = HEADER + "".join(
        [
            "1;2;536370;22728;ALARM CLOCK;24;12/01/2010 08:45;3.75;12583;France\r\n",
            "2;3;536371;22729;TOO;FEW\r\n",
            "3;4;C536372;22730;RETURNED;-2;12/01/2010 09:00;1.00;12583;France\r\n",
            "4;5;536373;22731;NO DATE;1;yesterday;1.00;NA;France\r\n",
            "5;6;536374;22732;FREE;0;12/01/2010 09:00;1.00;NA;France\r\n",
            "6;7;536375;22733;PRICE;1;12/01/2010 09:00;abc;NA;France\r\n",
            "7;8;536376;22734;CUSTOMER;1;12/01/2010 09:00;1.00;x12;France\r\n",
            "\r\n",
        ]
    )
    data = parse_retail_csv(text)
    assert [r.invoice_no for r in data.rows] == ["536370"]
    reasons = [r.reason for r in data.rejected]
    assert len(reasons) == 6
    assert "fields" in reasons[0] and "cancellation" in reasons[1] and "InvoiceDate" in reasons[2]
    assert "Quantity" in reasons[3] and "UnitPrice" in reasons[4] and "CustomerID" in reasons[5]
    assert len(retail_order_payloads(data)) == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80), max_size=8))
def test_parser_never_crashes_on_garbage(lines: list[str]) -> None:
    data = parse_retail_csv(HEADER + "\r\n".join(lines))
    assert all(r.quantity > 0 and r.unit_price >= 0 for r in data.rows)
    assert all(r.reason for r in data.rejected)
    retail_order_payloads(data)  # whatever parsed becomes orders
