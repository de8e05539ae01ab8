"""What an import did: counts, rejected rows by reason (first examples with line numbers), time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

EXAMPLES_PER_REASON = 5


@dataclass
class ImportReport:
    """Counts of one import. ``rejected`` counts file rows left out, by reason; ``examples``
    keeps the first ``EXAMPLES_PER_REASON`` line numbers (with a short detail) per reason.

    * ``orders``: orders loaded (``orders/create`` or ``orders/updated`` bodies that passed
      validation); ``lines``: their line items; ``non_product_lines``: those of them that are
      custom line items (postage, fees, manual adjustments: ``variant_id`` NULL);
    * ``refunds``: refunds of a known order; ``refund_lines``: their lines;
      ``refunds_without_order`` / ``refund_lines_without_order``: refunds whose order is not in
      the file (see ``devkit/importer/README.md``);
    * ``stock_adjustments``: UCI rows at price 0 with a negative quantity outside a
      cancellation invoice (stock corrections, not demand): counted, not loaded;
    * ``quarantined``: bodies that failed validation or the warehouse (in ``rejected_events``,
      their rows counted under ``rejected`` too).
    """

    path: str = ""
    fmt: str = ""
    shop_domain: str = ""
    file_lines: int = 0
    orders: int = 0
    lines: int = 0
    non_product_lines: int = 0
    refunds: int = 0
    refund_lines: int = 0
    refunds_without_order: int = 0
    refund_lines_without_order: int = 0
    stock_adjustments: int = 0
    quarantined: int = 0
    lines_without_sku: int = 0  # Shopify export: variants keyed by the line's name
    index_keys_dropped: int = 0  # UCI: cancellation index entries dropped at its cap
    batches: int = 0
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def reject(self, line: int, reason: str, detail: str = "", count: int = 1) -> None:
        self.rejected[reason] += count
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append((line, detail))

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())

    @property
    def lines_per_second(self) -> float:
        return self.file_lines / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.fmt,
            "shop_domain": self.shop_domain,
            "file_lines": self.file_lines,
            "orders": self.orders,
            "lines": self.lines,
            "non_product_lines": self.non_product_lines,
            "refunds": self.refunds,
            "refund_lines": self.refund_lines,
            "refunds_without_order": self.refunds_without_order,
            "refund_lines_without_order": self.refund_lines_without_order,
            "stock_adjustments": self.stock_adjustments,
            "quarantined": self.quarantined,
            "lines_without_sku": self.lines_without_sku,
            "index_keys_dropped": self.index_keys_dropped,
            "rejected_rows": self.rejected_rows,
            "rejected": dict(self.rejected.most_common()),
            "examples": {reason: [list(e) for e in shown] for reason, shown in self.examples.items()},
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "lines_per_second": round(self.lines_per_second),
            "peak_rss_mb": self.peak_rss_mb,
        }

    def summary(self) -> str:
        """The text the command prints at the end."""
        out = [
            f"imported {self.path} ({self.fmt}) into shop {self.shop_domain}",
            f"  file lines       {self.file_lines:>10,}",
            f"  orders           {self.orders:>10,}   lines {self.lines:,} "
            f"(non-product {self.non_product_lines:,})",
            f"  refunds          {self.refunds:>10,}   lines {self.refund_lines:,}",
            f"  refunds w/o order{self.refunds_without_order:>10,}   "
            f"lines {self.refund_lines_without_order:,}",
            f"  stock adjustments{self.stock_adjustments:>10,}   (price 0, negative quantity: not loaded)",
            f"  rejected rows    {self.rejected_rows:>10,}",
        ]
        for reason, n in self.rejected.most_common():
            shown = ", ".join(
                f"line {line}" + (f" ({detail})" if detail else "")
                for line, detail in self.examples.get(reason, [])
            )
            out.append(f"    {n:>8,}  {reason}: {shown}")
        if self.lines_without_sku:
            out.append(
                f"  lines without SKU{self.lines_without_sku:>10,}   (variant keyed by the line's name)"
            )
        if self.index_keys_dropped:
            out.append(
                f"  refund index cap {self.index_keys_dropped:>10,}   keys dropped (older lines unmatched)"
            )
        if self.quarantined:
            out.append(f"  quarantined      {self.quarantined:>10,}   bodies in rejected_events")
        rate = f"{self.lines_per_second:,.0f} lines/s"
        memory = f", peak RSS {self.peak_rss_mb:,.0f} MB" if self.peak_rss_mb is not None else ""
        out.append(f"  took {self.seconds:,.1f} s ({rate}{memory}, {self.batches} batches)")
        return "\n".join(out)
