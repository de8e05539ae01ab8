"""Time helpers every module shares: one way to make a moment UTC, one timestamp parser.

Naive datetimes are taken to be UTC (the warehouse, Pub/Sub and Feast all speak UTC).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive one is read as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def day_start_utc(day: date | datetime) -> datetime:
    """00:00 UTC of ``day``; a datetime is only made UTC, not truncated."""
    if isinstance(day, datetime):
        return as_utc(day)
    return datetime.combine(day, time(0), tzinfo=UTC)


def parse_timestamp(text: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 time (``Z`` or an offset; none means UTC) as aware UTC, or None
    when ``text`` is not one. Never raises on bad input: callers decide what absent means."""
    if not isinstance(text, str):
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None
