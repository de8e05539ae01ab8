"""A bulk operation's JSONL result, streamed and re-assembled into whole objects (pure).

Shopify writes one line per object; objects of a nested connection get their own lines with
``__parentId`` (the parent's ``id``) instead of being nested, after their parent. Read in order,
a top-level object and the lines that follow it up to the next top-level object make one whole
resource: ``reassemble`` yields each with its children grouped by type (``LineItem``,
``ProductVariant``, ``InventoryLevel``, from their GIDs) and the byte offset just past its last
line, which is where a resumed download starts. A child whose parent is not the object being
assembled means the file is not grouped that way: that is reported, never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.errors import PermanentError


@dataclass
class Assembled:
    root: dict[str, Any]
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    end_offset: int = 0

    def of(self, type_name: str) -> list[dict[str, Any]]:
        return self.children.get(type_name, [])


def gid_type(gid: str) -> str:
    return gid.split("/")[3] if gid.startswith("gid://shopify/") else ""


def reassemble(lines: Iterable[tuple[int, bytes]], start_offset: int = 0) -> Iterator[Assembled]:
    """Whole objects from (offset after line, line) pairs, in file order."""
    current: Assembled | None = None
    members: set[str] = set()
    previous_end = start_offset
    for end, raw in lines:
        if not raw.strip():
            previous_end = end
            continue
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise PermanentError(f"bulk result line ending at byte {end} is not JSON") from exc
        parent = line.pop("__parentId", None)
        if parent is None:
            if current is not None:
                current.end_offset = previous_end
                yield current
            current = Assembled(line)
            members = {line.get("id", "")}
        else:
            if current is None or parent not in members:
                raise PermanentError(
                    f"bulk result line ending at byte {end}: parent {parent} is not the object being "
                    "assembled (the file is not grouped by parent)"
                )
            current.children.setdefault(gid_type(line.get("id", "")), []).append(line)
            if "id" in line:
                members.add(line["id"])
        previous_end = end
    if current is not None:
        current.end_offset = previous_end
        yield current
