"""The one place that reads the wall clock; services take `now` as an argument instead."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """An instant as the API writes it: ISO 8601 in UTC with `Z` (None stays None)."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
