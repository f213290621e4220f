"""Speed to lead as a distribution: how many handoffs of a period got the rep's first action
within each band of time after the lead qualified (the admin's histogram against the
5-minute line).

The same handoffs and the same leg as the `speed_to_lead` report's `qualified_to_first_action`
(handoffs made in the period and answered, qualifying event → the rep's first action), so
the bands up to 5 minutes add up to that report's share within 5 minutes.
"""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from nurture.models import Handoff
from nurture.reports.figures import Report
from nurture.reports.params import ReportQuery, ratio
from nurture.reports.percentiles import FIVE_MINUTES_MS

MINUTE_MS = 60_000

BANDS: tuple[tuple[str, int | None], ...] = (
    ("up to 1 min", MINUTE_MS),
    ("1–2 min", 2 * MINUTE_MS),
    ("2–5 min", FIVE_MINUTES_MS),
    ("5–10 min", 10 * MINUTE_MS),
    ("10–30 min", 30 * MINUTE_MS),
    ("30–60 min", 60 * MINUTE_MS),
    ("1–4 h", 240 * MINUTE_MS),
    ("4–24 h", 1440 * MINUTE_MS),
    ("over a day", None),
)
"""Each band's label and its upper bound in milliseconds (included), the last unbounded."""

WITHIN_FIVE_MINUTES = 3
"""The first this many bands are within 5 minutes."""


def speed_distribution(session: Session, query: ReportQuery) -> Report:
    """Per band: answered handoffs whose qualifying → first action took that long, and their
    share of all answered handoffs of the period; and one row of those not answered yet."""
    took = Handoff.handoff_ms + Handoff.response_ms
    band = case(*[(took <= upper, index) for index, (_, upper) in enumerate(BANDS)
                  if upper is not None], else_=len(BANDS) - 1)
    answered = Handoff.response_ms.is_not(None)
    in_period = (Handoff.created_at >= query.period.since,
                 Handoff.created_at < query.period.until)
    counts = dict(session.execute(
        select(band, func.count()).where(answered, *in_period).group_by(band)).tuples().all())
    waiting = session.execute(
        select(func.count()).select_from(Handoff)
        .where(Handoff.response_ms.is_(None), *in_period)).scalar_one()
    total = sum(counts.values())
    rows = [{"band": label, "up_to_ms": upper, "handoffs": counts.get(index, 0),
             "share": ratio(counts.get(index, 0), total)}
            for index, (label, upper) in enumerate(BANDS)]
    rows.append({"band": "not answered yet", "up_to_ms": None, "handoffs": waiting,
                 "share": None})
    return Report("speed_distribution", ["band", "up_to_ms", "handoffs", "share"], rows)
