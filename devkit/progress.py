"""Progress for long work: a live bar on a terminal, plain lines in logs and CI.

A ``Progress`` counts items towards an optional total and shows count, rate and (with a
total) percentage and time left. On a terminal it redraws one line (at most 10 times a
second); when the stream is not a terminal it writes a plain line every ``plain_every``
seconds and one at the end, so logs stay readable. Standard library only: the CLI must
answer ``--help`` in well under a second.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


def _count(value: float) -> str:
    return f"{value:,.0f}"


class Progress:
    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "items",
        stream: TextIO | None = None,
        plain_every: float = 5.0,
        interactive: bool | None = None,
        clock: object = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.plain_every = plain_every
        self._clock = clock
        self.count = 0
        self.started = self._now()
        self._last_draw = float("-inf")
        self._closed = False

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def line(self) -> str:
        """The status text: ``label: 12,345 / 50,000 lines (24.7%) 10,203 lines/s, 4 s left``."""
        elapsed = max(self._now() - self.started, 1e-9)
        rate = self.count / elapsed
        text = f"{self.label}: {_count(self.count)}"
        if self.total:
            share = min(self.count / self.total, 1.0)
            text += f" / {_count(self.total)} {self.unit} ({share:.1%})"
        else:
            text += f" {self.unit}"
        text += f" {_count(rate)} {self.unit}/s"
        if self.total and rate > 0 and self.count < self.total:
            text += f", {(self.total - self.count) / rate:.0f} s left"
        return text

    def update(self, count: int | None = None, advance: int = 0) -> None:
        """Set the count (``count``) or add to it (``advance``), and redraw when it is time."""
        self.count = count if count is not None else self.count + advance
        now = self._now()
        if self.interactive:
            if now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r\x1b[2K" + self.line())
                self.stream.flush()
        elif now - self._last_draw >= self.plain_every:
            if self._last_draw != float("-inf"):
                self.stream.write(self.line() + "\n")
                self.stream.flush()
            self._last_draw = now

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        prefix = "\r\x1b[2K" if self.interactive else ""
        elapsed = self._now() - self.started
        self.stream.write(f"{prefix}{self.line()}, done in {elapsed:.1f} s\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
