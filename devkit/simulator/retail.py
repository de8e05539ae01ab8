"""Replay of real retail transactions (UCI "Online Retail" sample) as ``orders/create`` webhooks.

The file (``devkit/data/online_retail_sample.csv``; see ``devkit/data/README.md``) holds
5,000 invoice lines of a UK online gift-ware retailer, 2010-12-01..2011-02-23. The mapping:

* an invoice (``InvoiceNo``) is an order, ``created_at`` its earliest ``InvoiceDate``; every
  row is one line item of exactly one order;
* a stock code is a variant (SKU ``StockCode``); its product is the code's numeric root
  (``"16161P"`` → ``"16161"``); codes without leading digits (``POST``, ``DOT``, ``M``,
  ``C2``, ``BANK CHARGES``, ``DCGS0003``, ``gift_0001_30``) are their own product;
* ``CustomerID`` ``NA`` → ``customer: null`` and ``email: null``; ``Country`` → the
  shipping (and billing) address' country; money in GBP, prices as given (VAT included,
  no tax lines, no shipping lines);
* ``InvoiceDate`` comes in two month-first formats (``MM/DD/YYYY HH:MM`` and
  ``M/D/YY H:MM``), UK local time: read as Europe/London and written with its offset.

Ids (deterministic, documented ranges; collision-free on this file, tested):

==============  ===========================================================================
order           5,100,000,000,000 + invoice number (``C`` cancellations: + 10,000,000)
line item       13,100,000,000,000 + ``X`` (the row's number in the UCI original, unique)
customer        6,100,000,000,000 + CustomerID
variant         41,000,000,000,000 + blake2b-64("variant:" + code) mod 10^12
product         7,100,000,000,000 + blake2b-64("product:" + root) mod 10^11
inventory item  43,000,000,000,000 + blake2b-64("variant:" + code) mod 10^12
transaction     8,100,000,000,000 + invoice number
==============  ===========================================================================

Rows that cannot be an order line (wrong field count, unreadable number or date, zero or
negative quantity, ``C`` cancellation invoices of the full dataset) are kept aside as
``rejected`` with a reason, never raised; this sample has none.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from devkit import DATA_DIR
from devkit.simulator.events import DEFAULT_API_VERSION, EventFactory, WebhookEvent
from devkit.simulator.payloads import (
    AddressSpec,
    CustomerSpec,
    JsonDict,
    LineItemSpec,
    OrderSpec,
    d2,
    order_payload,
)

RETAIL_CSV_ENV = "SHOPML_RETAIL_CSV"
RETAIL_SHOP_DOMAIN = "uci-online-retail.myshopify.com"
LONDON = ZoneInfo("Europe/London")
CURRENCY = "GBP"

ORDER_ID_BASE = 5_100_000_000_000
CANCELLED_INVOICE_OFFSET = 10_000_000
LINE_ITEM_ID_BASE = 13_100_000_000_000
CUSTOMER_ID_BASE = 6_100_000_000_000
VARIANT_ID_BASE = 41_000_000_000_000
PRODUCT_ID_BASE = 7_100_000_000_000
INVENTORY_ITEM_ID_BASE = 43_000_000_000_000
TRANSACTION_ID_BASE = 8_100_000_000_000
VARIANT_ID_SPAN = 10**12
PRODUCT_ID_SPAN = 10**11

COUNTRY_CODES: dict[str, str] = {
    "Australia": "AU", "Austria": "AT", "Bahrain": "BH", "Belgium": "BE", "Brazil": "BR",
    "Canada": "CA", "Channel Islands": "JE", "Cyprus": "CY", "Czech Republic": "CZ", "Denmark": "DK",
    "EIRE": "IE", "Finland": "FI", "France": "FR", "Germany": "DE", "Greece": "GR", "Hong Kong": "HK",
    "Iceland": "IS", "Israel": "IL", "Italy": "IT", "Japan": "JP", "Lebanon": "LB", "Lithuania": "LT",
    "Malta": "MT", "Netherlands": "NL", "Norway": "NO", "Poland": "PL", "Portugal": "PT", "RSA": "ZA",
    "Saudi Arabia": "SA", "Singapore": "SG", "Spain": "ES", "Sweden": "SE", "Switzerland": "CH",
    "USA": "US", "United Arab Emirates": "AE", "United Kingdom": "GB",
}  # fmt: skip

_REQUIRED = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}|\d{2}) (\d{1,2}):(\d{2})(?::(\d{2}))?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$")
_CUSTOMER = re.compile(r"^(\d+)(?:\.0+)?$")


@dataclass(frozen=True)
class RetailRow:
    """One invoice line of the file, parsed."""

    line: int  # 1-based data row number in the file (header excluded)
    source_index: int | None  # column X: the row's number in the UCI original
    invoice_no: str
    stock_code: str
    description: str
    quantity: int
    invoice_date: datetime  # aware, Europe/London
    unit_price: Decimal
    customer_id: int | None
    country: str


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class RetailData:
    rows: tuple[RetailRow, ...]
    rejected: tuple[RejectedRow, ...]


@dataclass(frozen=True)
class RetailSummary:
    rows: int
    rejected: int
    orders: int
    line_items: int
    orders_without_customer: int
    line_items_without_customer: int
    customers: int
    stock_codes: int
    products: int
    countries: int
    first_invoice_at: str
    last_invoice_at: str
    days_with_orders: int
    units: int


def default_retail_csv() -> Path:
    """``$SHOPML_RETAIL_CSV``, else ``devkit/data/online_retail_sample.csv``."""
    override = os.environ.get(RETAIL_CSV_ENV)
    if override:
        return Path(override)
    return DATA_DIR / "online_retail_sample.csv"


@functools.lru_cache(maxsize=4096)
def parse_invoice_date(text: str) -> datetime:
    """Read ``MM/DD/YYYY HH:MM`` or ``M/D/YY H:MM`` (month first; also ISO) as London time.

    Cached: an invoice's lines repeat one date string, so a file has few distinct ones.
    """
    value = text.strip()
    m = _DATE.match(value)
    if m:
        month, day, year, hour, minute = (int(g) for g in m.groups()[:5])
        second = int(m.group(6) or 0)
        if year < 100:
            year += 2000
    else:
        iso = _ISO_DATE.match(value)
        if not iso:
            raise ValueError(f"unreadable InvoiceDate {text!r}")
        year, month, day, hour, minute = (int(g) for g in iso.groups()[:5])
        second = int(iso.group(6) or 0)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=LONDON)
    except ValueError:
        raise ValueError(f"unreadable InvoiceDate {text!r}") from None


def parse_customer_id(text: str) -> int | None:
    """``17850``, ``17850.0`` (the original layout) → 17850; empty, ``NA`` or ``NaN`` → None."""
    raw = text.strip()
    if raw in ("", "NA", "NaN", "nan"):
        return None
    m = _CUSTOMER.match(raw)
    if not m:
        raise ValueError(f"unreadable CustomerID {raw!r}")
    return int(m.group(1))


def read_retail_row(line: int, record: Mapping[str, str]) -> RetailRow:
    """One invoice line of either layout, read as written: any sign of quantity, ``C``
    invoices included. Raises ``ValueError`` naming the unreadable field. The replay
    (``parse_retail_csv``) and the order importer (``devkit.importer``) both read rows here and
    then decide what a row means.
    """
    invoice = record["InvoiceNo"].strip()
    code = record["StockCode"].strip()
    if not invoice or not code:
        raise ValueError("empty InvoiceNo or StockCode")
    try:
        quantity = int(record["Quantity"].strip())
    except ValueError:
        raise ValueError(f"unreadable Quantity {record['Quantity']!r}") from None
    try:
        price = Decimal(record["UnitPrice"].strip())
    except InvalidOperation:
        raise ValueError(f"unreadable UnitPrice {record['UnitPrice']!r}") from None
    if not price.is_finite():
        raise ValueError(f"UnitPrice {record['UnitPrice']!r} is not a price")
    customer = parse_customer_id(record["CustomerID"])
    x = (record.get("X") or "").strip()
    return RetailRow(
        line=line,
        source_index=int(x) if x.isdigit() else None,
        invoice_no=invoice,
        stock_code=code,
        description=record["Description"].strip(),
        quantity=quantity,
        invoice_date=parse_invoice_date(record["InvoiceDate"]),
        unit_price=price,
        customer_id=customer,
        country=record["Country"].strip(),
    )


def is_cancellation(invoice_no: str) -> bool:
    """``C536379``: a cancellation invoice (its lines have negative quantities)."""
    return invoice_no[:1] in ("C", "c")


def _parse_row(line: int, record: dict[str, str]) -> RetailRow:
    """A row of the replay: a sale (the replay sends orders only, no refunds)."""
    if is_cancellation(record["InvoiceNo"].strip()):
        raise ValueError(f"cancellation invoice {record['InvoiceNo'].strip()}: a refund, not an order")
    row = read_retail_row(line, record)
    if row.quantity <= 0:
        raise ValueError(f"Quantity {row.quantity} is not a sale")
    if row.unit_price < 0:
        raise ValueError(f"UnitPrice {record['UnitPrice']!r} is not a price")
    return row


def parse_retail_csv(text: str) -> RetailData:
    """Parse the semicolon-separated file; bad rows go to ``rejected``, nothing raises."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=";", quotechar='"')
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return RetailData((), ())
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ValueError(f"not an Online Retail file: missing column(s) {', '.join(missing)}")
    rows: list[RetailRow] = []
    rejected: list[RejectedRow] = []
    for line, fields in enumerate(reader, start=1):
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            rejected.append(RejectedRow(line, f"{len(fields)} fields, expected {len(header)}", tuple(fields)))
            continue
        try:
            rows.append(_parse_row(line, dict(zip(header, fields, strict=True))))
        except ValueError as exc:
            rejected.append(RejectedRow(line, str(exc), tuple(fields)))
    return RetailData(tuple(rows), tuple(rejected))


def load_retail(path: str | Path | None = None) -> RetailData:
    """Read and parse the CSV at ``path`` (default: ``default_retail_csv()``)."""
    raw = Path(path or default_retail_csv()).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # the UCI original is Windows-1252 in places
        text = raw.decode("cp1252", errors="replace")
    return parse_retail_csv(text)


def _hash(kind: str, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{kind}:{key}".encode(), digest_size=8).digest(), "big")


def stock_code_root(code: str) -> str:
    """The product a stock code belongs to: its leading digits, or the whole code."""
    m = re.match(r"\d+", code)
    return m.group(0) if m else code


def variant_id_for(code: str) -> int:
    return VARIANT_ID_BASE + _hash("variant", code) % VARIANT_ID_SPAN


def product_id_for(code: str) -> int:
    return PRODUCT_ID_BASE + _hash("product", stock_code_root(code)) % PRODUCT_ID_SPAN


def order_id_for(invoice_no: str) -> int:
    digits = invoice_no.lstrip("Cc")
    if digits.isdigit():
        offset = CANCELLED_INVOICE_OFFSET if invoice_no[:1] in "Cc" else 0
        return ORDER_ID_BASE + offset + int(digits)
    return ORDER_ID_BASE + 2 * CANCELLED_INVOICE_OFFSET + _hash("invoice", invoice_no) % 10**9


def line_item_id_for(row: RetailRow) -> int:
    # X is the row's number in the UCI original (unique); without it, the file row number.
    return LINE_ITEM_ID_BASE + (row.source_index if row.source_index is not None else 10**9 + row.line)


def customer_id_for(customer: int) -> int:
    return CUSTOMER_ID_BASE + customer


def _invoices(data: RetailData) -> list[list[RetailRow]]:
    groups: dict[str, list[RetailRow]] = defaultdict(list)
    for row in data.rows:
        groups[row.invoice_no].append(row)
    ordered = sorted(
        groups.values(), key=lambda rows: (min(r.invoice_date for r in rows), rows[0].invoice_no)
    )
    return ordered


def retail_orders(data: RetailData, shop_domain: str = RETAIL_SHOP_DOMAIN) -> list[OrderSpec]:
    """One ``OrderSpec`` per invoice, in time order (then invoice number)."""
    first_seen: dict[int, datetime] = {}
    for row in data.rows:
        if row.customer_id is not None:
            seen = first_seen.get(row.customer_id)
            first_seen[row.customer_id] = row.invoice_date if seen is None else min(seen, row.invoice_date)
    specs: list[OrderSpec] = []
    for rows in _invoices(data):
        head = rows[0]
        created = min(r.invoice_date for r in rows)
        address = AddressSpec(country=head.country or None, country_code=COUNTRY_CODES.get(head.country))
        customer = None
        if head.customer_id is not None:
            cid = customer_id_for(head.customer_id)
            customer = CustomerSpec(
                id=cid,
                email=f"customer-{head.customer_id}@example.com",
                first_name=None,
                last_name=None,
                phone=None,
                created_at=first_seen[head.customer_id],
                address=address,
                address_id=cid,
            )
        lines = tuple(
            LineItemSpec(
                id=line_item_id_for(r),
                variant_id=variant_id_for(r.stock_code),
                product_id=product_id_for(r.stock_code),
                sku=r.stock_code,
                title=r.description,
                variant_title=None,
                vendor=None,
                quantity=r.quantity,
                price=d2(r.unit_price),
            )
            for r in sorted(rows, key=lambda r: r.line)
        )
        number = int(head.invoice_no) if head.invoice_no.isdigit() else order_id_for(head.invoice_no) % 10**9
        order_id = order_id_for(head.invoice_no)
        specs.append(
            OrderSpec(
                id=order_id,
                order_number=number,
                created_at=created,
                tz=LONDON,
                currency=CURRENCY,
                line_items=lines,
                customer=customer,
                email=None if customer is None else customer.email,
                shipping_address=address,
                billing_address=address if customer is not None else None,
                transaction_id=TRANSACTION_ID_BASE + (order_id - ORDER_ID_BASE),
                taxes_included=True,
                source_name="web",
                tags="uci-online-retail",
                shop_domain=shop_domain,
            )
        )
    return specs


def retail_events(
    path: str | Path | None = None,
    shop_domain: str = RETAIL_SHOP_DOMAIN,
    api_version: str = DEFAULT_API_VERSION,
    seed: int = 0,
    data: RetailData | None = None,
) -> Iterator[WebhookEvent]:
    """``orders/create`` events for every invoice of the file, in time order."""
    data = data if data is not None else load_retail(path)
    factory = EventFactory(shop_domain, api_version, seed)
    for spec in retail_orders(data, shop_domain):
        yield factory.make("orders/create", order_payload(spec), spec.created_at)


def retail_order_payloads(data: RetailData, shop_domain: str = RETAIL_SHOP_DOMAIN) -> list[JsonDict]:
    return [order_payload(spec) for spec in retail_orders(data, shop_domain)]


def retail_summary(source: RetailData | str | Path | None = None) -> RetailSummary:
    """Counts of what the replay holds (orders, line items, customers, dates, ...)."""
    data = source if isinstance(source, RetailData) else load_retail(source)
    invoices = _invoices(data)
    no_customer = [rows for rows in invoices if rows[0].customer_id is None]
    dates = [r.invoice_date for r in data.rows]
    return RetailSummary(
        rows=len(data.rows) + len(data.rejected),
        rejected=len(data.rejected),
        orders=len(invoices),
        line_items=len(data.rows),
        orders_without_customer=len(no_customer),
        line_items_without_customer=sum(len(rows) for rows in no_customer),
        customers=len({r.customer_id for r in data.rows if r.customer_id is not None}),
        stock_codes=len({r.stock_code for r in data.rows}),
        products=len({stock_code_root(r.stock_code) for r in data.rows}),
        countries=len({r.country for r in data.rows}),
        first_invoice_at=min(dates).isoformat() if dates else "",
        last_invoice_at=max(dates).isoformat() if dates else "",
        days_with_orders=len({d.date() for d in dates}),
        units=sum(r.quantity for r in data.rows),
    )


def retail_daily_demand(
    path: str | Path | None = None, *, dense: bool = False, data: RetailData | None = None
) -> pd.DataFrame:
    """Units sold per variant and (London) day: date, variant_id, product_id, stock_code, units,
    revenue, orders. Sparse (days with sales) unless ``dense``, which fills every day of the
    file's range for every variant with zeros (the layout of ``DailyDemand.to_frame()``).
    """
    data = data if data is not None else load_retail(path)
    units: Counter[tuple[date, str]] = Counter()
    revenue: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    invoices: dict[tuple[date, str], set[str]] = defaultdict(set)
    for r in data.rows:
        key = (r.invoice_date.date(), r.stock_code)
        units[key] += r.quantity
        revenue[key] += d2(r.unit_price) * r.quantity
        invoices[key].add(r.invoice_no)
    keys = sorted(units)
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime([k[0] for k in keys]),
            "variant_id": np.array([variant_id_for(k[1]) for k in keys], dtype=np.int64),
            "product_id": np.array([product_id_for(k[1]) for k in keys], dtype=np.int64),
            "stock_code": [k[1] for k in keys],
            "units": np.array([units[k] for k in keys], dtype=np.int64),
            "revenue": np.array([float(revenue[k]) for k in keys], dtype=np.float64),
            "orders": np.array([len(invoices[k]) for k in keys], dtype=np.int64),
        }
    )
    if dense and len(frame):
        codes = sorted({k[1] for k in keys})
        days = pd.date_range(frame["date"].min(), frame["date"].max(), freq="D")
        grid = pd.MultiIndex.from_product([days, codes], names=["date", "stock_code"])
        frame = frame.set_index(["date", "stock_code"]).reindex(grid).reset_index()
        frame["variant_id"] = np.array([variant_id_for(c) for c in frame["stock_code"]], dtype=np.int64)
        frame["product_id"] = np.array([product_id_for(c) for c in frame["stock_code"]], dtype=np.int64)
        for col in ("units", "orders"):
            frame[col] = frame[col].fillna(0).astype(np.int64)
        frame["revenue"] = frame["revenue"].fillna(0.0)
        frame = frame[["date", "variant_id", "product_id", "stock_code", "units", "revenue", "orders"]]
    return frame.sort_values(["date", "variant_id"], kind="stable").reset_index(drop=True)


def id_collisions(data: RetailData) -> dict[str, int]:
    """How many distinct keys share an id, per id kind (all 0 for the sample; tested)."""

    def clashes(keys: Sequence[str], to_id: dict[str, int]) -> int:
        ids = Counter(to_id[k] for k in set(keys))
        return sum(n - 1 for n in ids.values() if n > 1)

    codes = [r.stock_code for r in data.rows]
    roots = [stock_code_root(c) for c in codes]
    invoices = [r.invoice_no for r in data.rows]
    lines = Counter(line_item_id_for(r) for r in data.rows)
    return {
        "variant": clashes(codes, {c: variant_id_for(c) for c in codes}),
        "product": clashes(
            roots, {c: PRODUCT_ID_BASE + _hash("product", c) % PRODUCT_ID_SPAN for c in roots}
        ),
        "order": clashes(invoices, {i: order_id_for(i) for i in invoices}),
        "line_item": sum(n - 1 for n in lines.values() if n > 1),
    }
