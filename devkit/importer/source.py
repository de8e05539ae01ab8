"""Reading an order file: gzip or plain, UTF-8 (BOM tolerated), its layout told from the header.

``open_rows`` streams ``(line_number, fields)`` pairs; ``line_number`` is the physical line
of the file where the record ends (the header is line 1), which is what a reader of the file
finds in an editor. Nothing is read ahead beyond the csv module's buffer.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from shared.errors import PermanentError

Format = Literal["uci", "shopify"]
FORMATS: tuple[str, ...] = ("auto", "uci", "shopify")
UCI_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
               "Country")  # fmt: skip
SHOPIFY_COLUMNS = ("Name", "Created at", "Lineitem quantity", "Lineitem price")
GZIP_MAGIC = b"\x1f\x8b"


class UnreadableFile(PermanentError):
    """The file is not one of the supported layouts (or not text at all)."""


@dataclass(frozen=True)
class Layout:
    fmt: Format
    delimiter: str
    header: tuple[str, ...]


def open_text(path: str | Path) -> IO[str]:
    """The file as text; ``.gz`` (or any gzip content) is decompressed on the fly.

    Bytes that are not UTF-8 (the UCI original has a few Windows-1252 ones) become U+FFFD
    instead of stopping the import.
    """
    raw: IO[bytes] = Path(path).open("rb")  # noqa: SIM115 - closed with the returned wrapper
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    else:
        raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def detect_layout(header_line: str, fmt: str = "auto") -> Layout:
    """Which layout a header line belongs to: UCI (``,`` original or ``;`` sample) or a Shopify
    order export. ``fmt`` forces one; a header without its columns is an ``UnreadableFile``."""
    if fmt not in FORMATS:
        raise UnreadableFile(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = tuple(h.strip() for h in next(csv.reader([header_line], delimiter=delimiter), []))
    names = set(header)
    found: Format | None = None
    if all(c in names for c in SHOPIFY_COLUMNS):
        found = "shopify"
    elif all(c in names for c in UCI_COLUMNS):
        found = "uci"
    wanted = None if fmt == "auto" else fmt
    if found is None or (wanted is not None and wanted != found):
        expected = {"uci": UCI_COLUMNS, "shopify": SHOPIFY_COLUMNS}.get(wanted or "", UCI_COLUMNS)
        missing = [c for c in expected if c not in names]
        what = wanted or "UCI Online Retail or Shopify order export"
        raise UnreadableFile(
            f"not a {what} file: header lacks {', '.join(missing) or 'the expected columns'}"
        )
    return Layout(found, delimiter, header)


def open_rows(path: str | Path, fmt: str = "auto") -> tuple[Layout, Iterator[tuple[int, list[str]]]]:
    """The file's layout and an iterator over its data records ``(line_number, fields)``."""
    text = open_text(path)
    try:
        header_line = text.readline()
    except (OSError, EOFError) as exc:
        text.close()
        raise UnreadableFile(f"cannot read {path}: {exc}") from exc
    if not header_line.strip():
        text.close()
        raise UnreadableFile(f"{path} is empty")
    try:
        layout = detect_layout(header_line.rstrip("\r\n"), fmt)
    except UnreadableFile:
        text.close()
        raise

    def records() -> Iterator[tuple[int, list[str]]]:
        with text:
            reader = csv.reader(text, delimiter=layout.delimiter, quotechar='"')
            for fields in reader:
                yield reader.line_num + 1, fields  # +1: the header was read before the reader

    return layout, records()
