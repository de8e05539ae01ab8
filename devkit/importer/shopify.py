"""Shopify admin's order export (Orders → Export, CSV) → ``orders/*`` deliveries.

The export has one row per line item; the order's fields are on its first row and the rows
of one order share its ``Name`` (Shopify Help Center, "Exporting orders", section "Order
export CSV structure": https://help.shopify.com/en/manual/fulfillment/managing-orders/exporting-orders).
What the export lacks, and what the importer does about it:

* **No line item, variant or product ids.** Line item ids are derived from the order id and
  the line's position; the **variant is keyed by ``Lineitem sku``** (a stable hash of the SKU,
  so the same SKU is the same variant in every order and every import). A line **without a
  SKU** is keyed by its ``Lineitem name`` instead (``Product - Variant``), counted in the
  report as ``lines_without_sku``: renaming a product in the store splits such a variant's
  history. The product is keyed by the part of the name before `` - ``.
* **Order id**: the ``Id`` column (first row); without it, a hash of ``Name``.
* **Refunds appear only as ``Refunded Amount``** (no dates, no lines). A ``refunded`` order
  gets one embedded refund of all its lines (the whole order came back); a
  ``partially_refunded`` one a refund of the amount with no lines (which units is unknown, so
  demand is not reduced). The refund is dated at the order's latest known time (``Cancelled
  at``, ``Fulfilled at``, ``Paid at``, ``Created at``), and the order goes in as
  ``orders/updated``. ``Cancelled at`` becomes the order's ``cancelled_at`` (the features net
  a cancelled order out on that day).
* Personal data (``Email``, ``Phone``, billing and shipping names and addresses) goes into the
  body as Shopify sends it in a webhook; the load hashes or drops it by the same settings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

from devkit.importer.bodies import Delivery, Line, RefundLine, encode, order_payload, refund_payload
from devkit.importer.grouping import Group, Grouper
from devkit.importer.report import ImportReport
from devkit.simulator.payloads import money

ORDER_ID_BASE = 900_000_000_000_000_000  # orders without an Id (hash of Name)
LINE_ID_BASE = 910_000_000_000_000_000
VARIANT_ID_BASE = 920_000_000_000_000_000
PRODUCT_ID_BASE = 930_000_000_000_000_000
REFUND_ID_BASE = 940_000_000_000_000_000
REFUND_LINE_ID_BASE = 950_000_000_000_000_000
ID_SPAN = 10**16
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z")


def _hash(kind: str, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{kind}:{key}".encode(), digest_size=8).digest(), "big") % ID_SPAN


def variant_key(sku: str, name: str) -> str:
    return f"sku:{sku}" if sku else f"name:{name}"


def variant_id_for(sku: str, name: str) -> int:
    """The variant of a line: by SKU, else by the line's name (see the module docstring)."""
    return VARIANT_ID_BASE + _hash("variant", variant_key(sku, name))


def product_id_for(name: str) -> int:
    return PRODUCT_ID_BASE + _hash("product", name.split(" - ", 1)[0].strip())


def parse_time(text: str) -> datetime:
    """``2024-03-01 10:15:00 -0500`` (the export's form) or ISO 8601 with an offset."""
    value = text.strip()
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"unreadable time {text!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"time without a UTC offset {text!r}")
    return parsed


def _money(record: Mapping[str, str], column: str, default: str = "0") -> Decimal:
    text = (record.get(column) or "").strip() or default
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"unreadable {column} {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"unreadable {column} {text!r}")
    return value


def _flag(record: Mapping[str, str], column: str, default: bool = True) -> bool:
    text = (record.get(column) or "").strip().lower()
    return default if not text else text in ("true", "yes", "1")


def _address(record: Mapping[str, str], prefix: str) -> dict[str, str | None] | None:
    def get(column: str) -> str | None:
        return (record.get(f"{prefix} {column}") or "").strip() or None

    address = {
        "name": get("Name"),
        "address1": get("Address1") or get("Street"),
        "address2": get("Address2"),
        "company": get("Company"),
        "city": get("City"),
        "zip": get("Zip"),
        "province_code": get("Province"),
        "province": get("Province Name"),
        "country_code": get("Country"),
        "phone": get("Phone"),
    }
    return address if any(address.values()) else None


class ShopifyConverter:
    """Turns the rows of an order export into deliveries, batch by batch."""

    def __init__(self, report: ImportReport, batch_lines: int) -> None:
        self.report = report
        self.grouper: Grouper[dict[str, str]] = Grouper(batch_lines)
        self.lines_without_sku = 0

    def batches(
        self, header: tuple[str, ...], records: Iterable[tuple[int, list[str]]]
    ) -> Iterator[list[Delivery]]:
        report, width = self.report, len(header)
        for line, fields in records:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            report.file_lines += 1
            if len(fields) != width:
                report.reject(line, "wrong number of fields", f"{len(fields)}, expected {width}")
                continue
            record = dict(zip(header, fields, strict=True))
            name = record["Name"].strip()
            if not name:
                report.reject(line, "empty Name")
                continue
            first = self.grouper.already_written(name)
            if first is not None:
                report.reject(
                    line, "order's rows too far apart in the file", f"{name} was written at line {first}"
                )
                continue
            full = self.grouper.add(name, line, record)
            if full:
                yield self.convert(full)
        rest = self.grouper.finish()
        if rest:
            yield self.convert(rest)

    def convert(self, groups: list[Group[dict[str, str]]]) -> list[Delivery]:
        out = []
        for group in groups:
            delivery = self._order(group)
            if delivery is not None:
                out.append(delivery)
        return out

    def _order(self, group: Group[dict[str, str]]) -> Delivery | None:
        report = self.report
        first_line, head = group.rows[0]
        name = str(group.key)
        try:
            created = parse_time(head.get("Created at") or "")
            paid = parse_time(head["Paid at"]) if (head.get("Paid at") or "").strip() else None
            fulfilled = parse_time(head["Fulfilled at"]) if (head.get("Fulfilled at") or "").strip() else None
            cancelled = parse_time(head["Cancelled at"]) if (head.get("Cancelled at") or "").strip() else None
            shipping = _money(head, "Shipping")
            taxes = _money(head, "Taxes")
            discount = _money(head, "Discount Amount")
            subtotal = _money(head, "Subtotal", "")
            total = _money(head, "Total", "")
            refunded_amount = _money(head, "Refunded Amount")
        except ValueError as exc:
            report.reject(first_line, "unreadable order fields", f"{name}: {exc}", count=len(group.rows))
            return None
        except KeyError as exc:
            report.reject(
                first_line, "unreadable order fields", f"{name}: missing {exc}", count=len(group.rows)
            )
            return None
        raw_id = (head.get("Id") or "").strip()
        order_id = (
            int(raw_id) if raw_id.isdigit() and int(raw_id) > 0 else ORDER_ID_BASE + _hash("order", name)
        )
        currency = (head.get("Currency") or "").strip() or "USD"
        lines: list[Line] = []
        for position, (line, record) in enumerate(group.rows):
            try:
                quantity = int((record.get("Lineitem quantity") or "").strip())
                price = _money(record, "Lineitem price", "")
                line_discount = _money(record, "Lineitem discount")
            except ValueError as exc:
                reason = str(exc) if "unreadable" in str(exc) else "unreadable Lineitem quantity"
                report.reject(line, "unreadable line item", f"{name}: {reason}")
                continue
            if quantity <= 0:
                report.reject(line, "Lineitem quantity not positive", f"{name}: {quantity}")
                continue
            sku = (record.get("Lineitem sku") or "").strip()
            title = (record.get("Lineitem name") or "").strip()
            if not sku:
                self.lines_without_sku += 1
            product, _, variant = title.partition(" - ")
            lines.append(
                Line(
                    id=LINE_ID_BASE + _hash("line", f"{order_id}:{position}"),
                    variant_id=variant_id_for(sku, title),
                    product_id=product_id_for(title),
                    sku=sku or None,
                    title=product or title,
                    variant_title=variant or None,
                    vendor=(record.get("Vendor") or "").strip() or None,
                    quantity=quantity,
                    price=price,
                    taxable=_flag(record, "Lineitem taxable"),
                    requires_shipping=_flag(record, "Lineitem requires shipping"),
                    discount=line_discount,
                    fulfillment_status=(record.get("Lineitem fulfillment status") or "").strip() or None,
                )
            )
        if not lines:
            return None
        updated = max(t for t in (created, paid, fulfilled, cancelled) if t is not None)
        status = (head.get("Financial Status") or "").strip() or "paid"
        refunds = []
        refund_lines = 0
        if refunded_amount > 0 or status in ("refunded", "partially_refunded"):
            whole = status == "refunded"
            refunded = (
                [
                    RefundLine(REFUND_LINE_ID_BASE + _hash("refund_line", f"{order_id}:{i}"), li, li.quantity)
                    for i, li in enumerate(lines)
                ]
                if whole
                else []
            )
            refunds.append(
                refund_payload(
                    refund_id=REFUND_ID_BASE + _hash("refund", str(order_id)),
                    order_id=order_id,
                    created_at=updated,
                    currency=currency,
                    lines=refunded,
                    amount=refunded_amount if refunded_amount > 0 else None,
                    note="Refunded Amount of the order export",
                )
            )
            refund_lines = len(refunded)
        taxes_included = total != subtotal + shipping + taxes if subtotal and total else False
        email = (head.get("Email") or "").strip() or None
        phone = (head.get("Phone") or "").strip() or None
        code = (head.get("Discount Code") or "").strip()
        body = order_payload(
            order_id=order_id,
            name=name,
            order_number=int(name.lstrip("#")) if name.lstrip("#").isdigit() else None,
            created_at=created,
            updated_at=updated,
            currency=currency,
            lines=lines,
            customer={"email": email} if email else None,
            email=email,
            phone=phone,
            shipping_address=_address(head, "Shipping"),
            billing_address=_address(head, "Billing"),
            financial_status=status,
            fulfillment_status=(head.get("Fulfillment Status") or "").strip() or None,
            cancelled_at=cancelled,
            taxes_included=taxes_included,
            total_tax=taxes,
            shipping=shipping,
            total_discounts=discount,
            total_price=total if (head.get("Total") or "").strip() else None,
            discount_codes=[{"code": code, "amount": money(discount), "type": "fixed_amount"}]
            if code
            else [],
            tags=(head.get("Tags") or "").strip(),
            source_name=(head.get("Source") or "").strip() or "web",
            refunds=refunds,
            note=(head.get("Notes") or "").strip() or None,
        )
        return Delivery(
            topic="orders/updated" if refunds or cancelled is not None else "orders/create",
            body=encode(body),
            resource_id=order_id,
            version_at=updated,
            first_line=first_line,
            rows=len(lines),
            kind="order",
            line_count=len(lines),
            embedded_refunds=len(refunds),
            embedded_refund_lines=refund_lines,
        )
