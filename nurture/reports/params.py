"""What a report is asked for: a period, an optional grouping, checked before anything runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from nurture.errors import InvalidInput

GROUPINGS = ("reason", "sequence", "rep", "team", "source")
"""Every dimension a report may be grouped by (each report accepts some of them)."""

DEFAULT_DAYS = 90
"""A period not given is the 90 days up to today."""

MAX_YEARS = 5
"""The longest period a report covers: five calendar years (the last day before the same
date five years on)."""

QUERY = ("from", "to", "group_by", "format")


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    start: date
    end: date

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=UTC)

    @property
    def until(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=UTC)

    @property
    def first_cohort(self) -> date:
        return self.start.replace(day=1)

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        length = (self.end - self.start).days + 1
        return Period(self.start - timedelta(days=length), self.start - timedelta(days=1))


@dataclass(frozen=True)
class ReportQuery:
    period: Period
    group_by: str | None


def parse_query(args: Mapping[str, str], *, today: date, groupings: Sequence[str]) -> ReportQuery:
    """The report's query from request arguments, or InvalidInput naming each bad one."""
    errors: dict[str, list[str]] = {}
    for name in sorted(set(args) - set(QUERY)):
        errors[name] = ["unknown parameter"]
    start = _date(args, "from", errors)
    end = _date(args, "to", errors)
    group_by = args.get("group_by") or None
    if group_by is not None and group_by not in groupings:
        allowed = ", ".join(groupings) or "nothing"
        errors["group_by"] = [f"this report groups by {allowed}"]
    if errors:
        raise InvalidInput("invalid report query", errors)
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if end < start:
        raise InvalidInput("invalid report query", {"to": ["before from"]})
    if end >= _years_after(start, MAX_YEARS):
        raise InvalidInput("invalid report query", {"to": ["the period is longer than five years"]})
    return ReportQuery(Period(start, end), group_by)


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _date(args: Mapping[str, str], name: str, errors: dict[str, list[str]]) -> date | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = ["a date, YYYY-MM-DD"]
        return None


def ratio(part: float, whole: float) -> float | None:
    """part / whole to four places, None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None
