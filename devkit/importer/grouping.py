"""Streaming groups: the rows of one order (an invoice, an export's ``Name``) gathered in
batches of about ``batch_lines`` rows, with memory bounded by a batch.

A file lists an order's rows together (UCI: one invoice's lines; Shopify: the line items under
the order's first row), but not always strictly: the UCI original interleaves a few invoices
of the same minute. So rows are gathered per key until the batch holds ``batch_lines`` rows;
then every group except the one the last row belongs to (which may go on) is handed out.
A row whose group was already handed out cannot be added to it any more (the order is
written): it is rejected with the line of the group's first row, never merged into a second
version that would replace the first. The keys handed out are remembered (one per order of the
file: the only state that grows with the file besides the refund index, a few MB per
100,000 orders).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Group(Generic[T]):
    key: Hashable
    first_line: int
    rows: list[tuple[int, T]] = field(default_factory=list)


class Grouper(Generic[T]):
    def __init__(self, batch_lines: int) -> None:
        if batch_lines < 1:
            raise ValueError("batch_lines must be at least 1")
        self.batch_lines = batch_lines
        self._open: dict[Hashable, Group[T]] = {}
        self._rows = 0
        self._last: Hashable = None
        self._done: dict[Hashable, int] = {}  # key -> first line, for the rejection's detail

    def already_written(self, key: Hashable) -> int | None:
        """The first line of ``key``'s group if it was handed out already, else None."""
        return self._done.get(key)

    def add(self, key: Hashable, line: int, row: T) -> list[Group[T]]:
        """Add a row; returns the groups of a full batch (else an empty list)."""
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = Group(key, line)
        group.rows.append((line, row))
        self._rows += 1
        self._last = key
        if self._rows < self.batch_lines:
            return []
        keep = self._open.pop(key)
        out = list(self._open.values())
        self._open = {key: keep}
        self._rows = len(keep.rows)
        for g in out:
            self._done[g.key] = g.first_line
        return out

    def finish(self) -> list[Group[T]]:
        out = list(self._open.values())
        for g in out:
            self._done[g.key] = g.first_line
        self._open = {}
        self._rows = 0
        return out
