"""UCI Online Retail rows → ``orders/create`` and ``refunds/create`` deliveries.

Rows are read by ``devkit.simulator.retail.read_retail_row`` (the replay's parser: both
layouts, both date styles, ``17850.0`` customer ids, London time) and get the replay's ids
(order = invoice, customer, product = numeric root of the code; line item = the ``X`` column
when the file has it, else the invoice and the line's position in it). What the importer adds:

* **Cancellations** (``C`` invoices, negative quantities) become ``refunds/create`` of the lines
  they cancel: each line is matched to the same customer's most recent earlier invoice line
  with the same (normalised) stock code, and refunds at most the units that line has left;
  the lines matched in one order form one refund dated at the cancellation. Units with no
  match (no such line in the file, no customer, or more units than were left) form one
  **refund without an order** per cancellation invoice (see the README).
* **Non-product codes** (``POST``, ``DOT``, ``M``, ``C2``, ``S``, ``D``, ``B``, ``AMAZONFEE``,
  ``BANK CHARGES``, ``PADS``, ``CRUK``, ``gift_0001_*``) load as custom line items:
  ``variant_id`` and ``product_id`` NULL, ``sku`` the code, title the description, so
  features leave them out.
* **Case twins** (``85035B``/``85035b``) are one variant: ids come from the upper-cased code;
  ``sku`` keeps the code as written.
* **Stock adjustments** (price 0, negative quantity, not a ``C`` invoice) are not demand:
  counted in the report, not loaded.

The index behind the matching keeps, per (customer, normalised code), the most recent line
and the units it has left: it grows with distinct keys, not lines, and is capped at
``max_index_keys`` (least recently used key dropped; a cancellation of a dropped key becomes a
refund without an order, counted as such).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from devkit.importer.bodies import Delivery, Line, RefundLine, encode, order_payload, refund_payload
from devkit.importer.grouping import Group, Grouper
from devkit.importer.report import ImportReport
from devkit.simulator.retail import (
    COUNTRY_CODES,
    CURRENCY,
    ORDER_ID_BASE,
    RetailRow,
    customer_id_for,
    is_cancellation,
    line_item_id_for,
    order_id_for,
    product_id_for,
    read_retail_row,
    variant_id_for,
)

NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "M", "C2", "S", "D", "B", "AMAZONFEE", "BANK CHARGES", "PADS", "CRUK"}
)
NON_PRODUCT_PREFIXES = ("GIFT_",)
LINE_POSITION_SPAN = 10_000  # lines per invoice the position-based ids allow
POSITION_LINE_ID_BASE = 13_100_000_000_000 + 2 * 10**10  # after the replay's X-based line ids
# Each position-based range spans up to ~1.02e13 (hashed invoice numbers), so the bases are 1.5e13 apart.
REFUND_LINE_ID_BASE = 30_000_000_000_000
UNMATCHED_REFUND_LINE_ID_BASE = 45_000_000_000_000  # refund lines of units with no sold line
UNKNOWN_LINE_ID_BASE = 60_000_000_000_000  # stand-in line item of a refund without an order
REFUND_ID_BASE = 9_100_000_000_000
REFUNDS_PER_CANCELLATION = 1_000  # index 0: the refund without an order
DEFAULT_MAX_INDEX_KEYS = 2_000_000
TAGS = "uci-online-retail"


def normalise_code(code: str) -> str:
    """One variant per stock code whatever its case (``85035b`` is ``85035B``)."""
    return code.upper()


def is_non_product(code: str) -> bool:
    normal = normalise_code(code)
    return normal in NON_PRODUCT_CODES or normal.startswith(NON_PRODUCT_PREFIXES)


def _invoice_key(invoice_no: str) -> int:
    return order_id_for(invoice_no) - ORDER_ID_BASE


def position_line_id(base: int, invoice_no: str, position: int) -> int:
    return base + _invoice_key(invoice_no) * LINE_POSITION_SPAN + position


def refund_id_for(cancellation_invoice: str, index: int) -> int:
    return REFUND_ID_BASE + _invoice_key(cancellation_invoice) * REFUNDS_PER_CANCELLATION + index


@dataclass(slots=True)
class _Sold:
    """What the index remembers of a sold line: enough to refund it."""

    order_id: int
    line: Line
    left: int


class CancellationIndex:
    """(customer, normalised code) → the most recent sold line and its units left (LRU-capped)."""

    def __init__(self, max_keys: int = DEFAULT_MAX_INDEX_KEYS) -> None:
        self.max_keys = max_keys
        self._lines: dict[tuple[int, str], _Sold] = {}
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._lines)

    def remember(self, customer: int, code: str, order_id: int, line: Line) -> None:
        key = (customer, code)
        self._lines.pop(key, None)
        self._lines[key] = _Sold(order_id, line, line.quantity)
        if len(self._lines) > self.max_keys:
            del self._lines[next(iter(self._lines))]
            self.dropped += 1

    def take(self, customer: int, code: str, units: int) -> tuple[_Sold | None, int]:
        """The line to refund and how many of ``units`` it takes (at most what it has left)."""
        sold = self._lines.get((customer, code))
        if sold is None or sold.left <= 0:
            return None, 0
        taken = min(units, sold.left)
        sold.left -= taken
        return sold, taken


class UciConverter:
    """Turns the UCI rows of a file into deliveries, batch by batch."""

    def __init__(self, report: ImportReport, batch_lines: int, max_index_keys: int = DEFAULT_MAX_INDEX_KEYS):
        self.report = report
        self.grouper: Grouper[RetailRow] = Grouper(batch_lines)
        self.index = CancellationIndex(max_index_keys)
        self._code_ids: dict[str, tuple[int | None, int | None]] = {}

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
            try:
                row = read_retail_row(line, dict(zip(header, fields, strict=True)))
            except ValueError as exc:
                reason = str(exc)
                report.reject(
                    line, reason.split(" ", 2)[1] if reason.startswith("unreadable ") else reason, reason
                )
                continue
            first = self.grouper.already_written(row.invoice_no)
            if first is not None:
                report.reject(
                    line,
                    "invoice's lines too far apart in the file",
                    f"{row.invoice_no} was written at line {first}",
                )
                continue
            full = self.grouper.add(row.invoice_no, line, row)
            if full:
                yield self.convert(full)
        rest = self.grouper.finish()
        if rest:
            yield self.convert(rest)

    def convert(self, groups: list[Group[RetailRow]]) -> list[Delivery]:
        """Every invoice of a batch in time order (then file order): sales before the
        cancellations that follow them."""
        groups.sort(key=lambda g: (min(r.invoice_date for _, r in g.rows), g.first_line))
        out: list[Delivery] = []
        for group in groups:
            rows = [r for _, r in group.rows]
            if is_cancellation(rows[0].invoice_no):
                out.extend(self._refunds(rows))
            else:
                order = self._order(rows)
                if order is not None:
                    out.append(order)
        return out

    # -- sales -------------------------------------------------------------------------------

    def _ids(self, code: str) -> tuple[int | None, int | None]:
        """(variant id, product id) of a stock code as written; (None, None) for non-product
        codes. Cached per code (a few thousand in a year)."""
        ids = self._code_ids.get(code)
        if ids is None:
            normal = normalise_code(code)
            ids = (None, None) if is_non_product(normal) else (variant_id_for(normal), product_id_for(normal))
            self._code_ids[code] = ids
        return ids

    def _line(self, row: RetailRow, position: int, base: int, quantity: int) -> Line:
        variant_id, product_id = self._ids(row.stock_code)
        if base == POSITION_LINE_ID_BASE and row.source_index is not None:
            line_id = line_item_id_for(row)  # the replay's id: the same line either way
        else:
            line_id = position_line_id(base, row.invoice_no, position)
        return Line(
            id=line_id,
            variant_id=variant_id,
            product_id=product_id,
            sku=row.stock_code,
            title=row.description,
            quantity=quantity,
            price=row.unit_price,
        )

    def _order(self, rows: list[RetailRow]) -> Delivery | None:
        report = self.report
        lines: list[Line] = []
        kept: list[RetailRow] = []
        for position, row in enumerate(rows):
            if row.quantity < 0 and row.unit_price == 0:
                report.stock_adjustments += 1
            elif row.quantity <= 0:
                report.reject(
                    row.line,
                    "Quantity not positive outside a cancellation invoice",
                    f"{row.invoice_no} {row.stock_code} {row.quantity}",
                )
            elif row.unit_price < 0:
                report.reject(row.line, "negative UnitPrice", f"{row.invoice_no} {row.unit_price}")
            elif position >= LINE_POSITION_SPAN:
                report.reject(
                    row.line, f"more than {LINE_POSITION_SPAN} lines in one invoice", row.invoice_no
                )
            else:
                lines.append(self._line(row, position, POSITION_LINE_ID_BASE, row.quantity))
                kept.append(row)
        if not lines:
            return None
        head = kept[0]
        created = min(r.invoice_date for r in kept)
        order_id = order_id_for(head.invoice_no)
        address = {"country": head.country or None, "country_code": COUNTRY_CODES.get(head.country)}
        customer = None
        email = None
        if head.customer_id is not None:
            email = f"customer-{head.customer_id}@example.com"
            customer = {
                "id": customer_id_for(head.customer_id),
                "email": email,
            }
            for row, line in zip(kept, lines, strict=True):
                self.index.remember(head.customer_id, normalise_code(row.stock_code), order_id, line)
        body = order_payload(
            order_id=order_id,
            name=f"#{head.invoice_no}",
            order_number=int(head.invoice_no) if head.invoice_no.isdigit() else None,
            created_at=created,
            updated_at=created,
            currency=CURRENCY,
            lines=lines,
            customer=customer,
            email=email,
            shipping_address=address,
            billing_address=address if customer is not None else None,
            tags=TAGS,
        )
        return Delivery(
            topic="orders/create",
            body=encode(body),
            resource_id=order_id,
            version_at=created,
            first_line=head.line,
            rows=len(kept),
            kind="order",
            line_count=len(lines),
            non_product_lines=sum(1 for line in lines if line.variant_id is None),
        )

    # -- cancellations -------------------------------------------------------------------------

    def _refunds(self, rows: list[RetailRow]) -> list[Delivery]:
        report = self.report
        invoice = rows[0].invoice_no
        created = min(r.invoice_date for r in rows)
        matched: dict[int, list[RefundLine]] = {}
        unmatched: list[RefundLine] = []
        first_line: dict[int, int] = {}
        for position, row in enumerate(rows):
            if row.quantity >= 0:
                report.reject(
                    row.line,
                    "cancellation line without a negative Quantity",
                    f"{invoice} {row.stock_code} {row.quantity}",
                )
                continue
            if row.unit_price < 0:
                report.reject(row.line, "negative UnitPrice", f"{invoice} {row.unit_price}")
                continue
            if position >= LINE_POSITION_SPAN:
                report.reject(row.line, f"more than {LINE_POSITION_SPAN} lines in one invoice", invoice)
                continue
            units = -row.quantity
            refund_line_id = position_line_id(REFUND_LINE_ID_BASE, invoice, position)
            sold, taken = (None, 0)
            if row.customer_id is not None:
                sold, taken = self.index.take(row.customer_id, normalise_code(row.stock_code), units)
            if sold is not None and taken:
                matched.setdefault(sold.order_id, []).append(RefundLine(refund_line_id, sold.line, taken))
                first_line.setdefault(sold.order_id, row.line)
            if units - taken:
                stand_in = self._line(row, position, UNKNOWN_LINE_ID_BASE, units - taken)
                rid = position_line_id(UNMATCHED_REFUND_LINE_ID_BASE, invoice, position)
                unmatched.append(RefundLine(rid, stand_in, units - taken))
                first_line.setdefault(0, row.line)
        out: list[Delivery] = []
        for k, order_id in enumerate(sorted(matched), start=1):
            refund_lines = matched[order_id]
            out.append(
                self._refund(invoice, k, order_id, created, refund_lines, "refund", first_line[order_id])
            )
        if unmatched:
            # Its order is not in the file: the cancellation invoice's own id stands in.
            out.append(
                self._refund(
                    invoice,
                    0,
                    order_id_for(invoice),
                    created,
                    unmatched,
                    "refund_without_order",
                    first_line[0],
                )
            )
        return out

    def _refund(
        self,
        invoice: str,
        index: int,
        order_id: int,
        created: datetime,
        lines: list[RefundLine],
        kind: str,
        first_line: int,
    ) -> Delivery:
        refund_id = refund_id_for(invoice, index)
        body = refund_payload(
            refund_id=refund_id,
            order_id=order_id,
            created_at=created,
            currency=CURRENCY,
            lines=lines,
            note=f"cancellation invoice {invoice}",
        )
        return Delivery(
            topic="refunds/create",
            body=encode(body),
            resource_id=refund_id,
            version_at=created,
            first_line=first_line,
            rows=len(lines),
            kind=kind,
            line_count=len(lines),
        )
