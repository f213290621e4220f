"""When a lead may be recycled, and the SLA clock: defaults, each a named constant.

A lead does not bounce straight back to sales: after each rejection it stays in nurture for
a minimum time that depends on the reason (`bad_timing` waits for the rejection's
`revisit_on` when one was given), and after `MAX_RECYCLES` handoffs it is marked for
long-term nurture and not recycled again. The SLA is business time (Mon–Fri, 09:00–17:00 in
the rep's time zone): a rep who gets a lead at 16:30 on a Friday has until 09:30 on Monday.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from nurture.models import Rejection, RejectionReason

DAY = timedelta(days=1)

MIN_NURTURE_AFTER_REJECTION: Mapping[RejectionReason, timedelta] = {
    RejectionReason.NO_BUDGET: 30 * DAY,  # budgets move with quarters
    RejectionReason.NO_AUTHORITY: 14 * DAY,
    RejectionReason.NO_NEED: 30 * DAY,
    RejectionReason.BAD_TIMING: 30 * DAY,  # unless the rejection names `revisit_on`
    RejectionReason.NOT_ICP: 90 * DAY,
    RejectionReason.UNRESPONSIVE: 14 * DAY,
    RejectionReason.CHOSE_COMPETITOR: 90 * DAY,  # contracts renew yearly; look again later
    RejectionReason.OTHER: 14 * DAY,
}
"""Least time a rejected lead stays in nurture before it may be recycled, by reason."""

MAX_RECYCLES = 3
"""Handoffs a lead may have; at the cap it is marked for long-term nurture."""

DEFAULT_SLA = timedelta(hours=1)
"""Business time a rep has to act on a handoff (NURTURE_SLA)."""

BUSINESS_DAYS = frozenset({0, 1, 2, 3, 4})
"""Monday to Friday."""

BUSINESS_OPENS = time(9, 0)
"""Start of the business day in the rep's time zone."""

BUSINESS_CLOSES = time(17, 0)
"""End of the business day in the rep's time zone."""

DEFAULT_TIMEZONE = "UTC"
"""Time zone of a rep that has none, and of a lead without one (for `revisit_on`)."""


@dataclass(frozen=True)
class RecyclePolicy:
    """What `recycle` and the SLA loop go by; the defaults above unless configured."""

    min_nurture: Mapping[RejectionReason, timedelta] = field(
        default_factory=lambda: dict(MIN_NURTURE_AFTER_REJECTION)
    )
    max_recycles: int = MAX_RECYCLES
    sla: timedelta = DEFAULT_SLA


DEFAULT_POLICY = RecyclePolicy()


def may_recycle_from(rejection: Rejection, lead_timezone: str | None,
                     policy: RecyclePolicy) -> datetime:
    """The earliest moment a lead rejected this way may go back to sales."""
    if rejection.reason == RejectionReason.BAD_TIMING and rejection.revisit_on is not None:
        return start_of(rejection.revisit_on, lead_timezone)
    wait = policy.min_nurture.get(rejection.reason, 14 * DAY)
    return rejection.rejected_at + wait


def start_of(day: date, zone_name: str | None) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(zone_name or DEFAULT_TIMEZONE))


@dataclass(frozen=True)
class BusinessCalendar:
    """When the business is open, in each rep's own time zone: weekdays, hours, holidays."""

    days: frozenset[int] = BUSINESS_DAYS
    opens: time = BUSINESS_OPENS
    closes: time = BUSINESS_CLOSES
    holidays: frozenset[date] = frozenset()

    def is_open_on(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.holidays

    @property
    def day_length(self) -> timedelta:
        """Business time in one open day (on a day without a clock change)."""
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)


DEFAULT_CALENDAR = BusinessCalendar()
"""Monday to Friday, 09:00–17:00, no holidays: the calendar with no SLA document active."""


def add_business_time(start: datetime, duration: timedelta, zone_name: str | None,
                      calendar: BusinessCalendar = DEFAULT_CALENDAR) -> datetime:
    """`start` plus `duration` counted only in the calendar's open hours in the zone (a UTC
    answer). Hours are wall-clock hours of the zone: a day with a clock change has as many
    business hours as its opening and closing times hold."""
    zone = ZoneInfo(zone_name or DEFAULT_TIMEZONE)
    remaining = duration
    local = start.astimezone(zone)
    for _ in range(10_000):  # a bound, not a limit anyone meets: ~27 years of business days
        opens = datetime.combine(local.date(), calendar.opens, tzinfo=zone)
        closes = datetime.combine(local.date(), calendar.closes, tzinfo=zone)
        if not calendar.is_open_on(local.date()) or local >= closes:
            local = _next_opening(local.date(), zone, calendar)
            continue
        local = max(local, opens)
        available = closes.astimezone(UTC) - local.astimezone(UTC)
        if remaining <= available:
            return (local.astimezone(UTC) + remaining).astimezone(UTC)
        remaining -= available
        local = _next_opening(local.date(), zone, calendar)
    raise ValueError(f"business time {duration} is too long")


def _next_opening(day: date, zone: ZoneInfo, calendar: BusinessCalendar) -> datetime:
    for _ in range(10_000):
        day += DAY
        if calendar.is_open_on(day):
            return datetime.combine(day, calendar.opens, tzinfo=zone)
    raise ValueError("the business calendar is never open")
