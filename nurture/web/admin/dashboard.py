"""The dashboard: the home page of marketers and approvers, the few numbers both teams watch.

The digest's key numbers for the last 30 days against the 30 before (the same figures the
fortnightly email sends), and two charts from the report pages: the funnel of the latest
cohort months and speed to lead against the 5-minute line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template

from nurture.clock import utcnow
from nurture.reports.digest import KeyNumber, key_numbers
from nurture.reports.params import Period, ReportQuery
from nurture.web import db_session
from nurture.web.access import allow
from nurture.web.admin import report_panels as panels
from nurture.web.admin.blueprint import bp
from nurture.web.layout import STAFF

DASHBOARD_DAYS = 30
"""The dashboard's period: the last this many whole days, today included."""

FUNNEL_MONTHS = 3
"""The dashboard's funnel: the cohorts of the current month and the two before."""

CHART_WIDTH = 460
"""The dashboard's two charts sit side by side: drawn about as wide as they are shown."""

NOTHING = ("0", "0.00", "n/a")
"""How the digest's numbers read when nothing happened."""

LOWER_IS_BETTER = {"Rejected again", "Median time to the rep's first action",
                   "Handoffs escalated", "Handoffs expired or stalled in sales"}
"""Numbers whose rise is bad news (shown in red when they grow)."""


@bp.get("/")
@allow(*STAFF)
def dashboard() -> Any:
    session, today = db_session(), utcnow().date()
    period = Period(today - timedelta(days=DASHBOARD_DAYS - 1), today)
    numbers = key_numbers(session, period)
    empty = all(n.value in NOTHING and n.previous in NOTHING for n in numbers)
    first_cohort = today.replace(day=1)
    for _ in range(FUNNEL_MONTHS - 1):
        first_cohort = (first_cohort - timedelta(days=1)).replace(day=1)
    cohorts = Period(first_cohort, today)
    charts = [] if empty else [
        (panels.funnel(panels.Reading(session, ReportQuery(cohorts, None), width=CHART_WIDTH)),
         "funnel", cohorts),
        (panels.speed_distribution_panel(
            panels.Reading(session, ReportQuery(period, None), width=CHART_WIDTH)),
         "speed", period)]
    return render_template("admin/dashboard.html", numbers=numbers, period=period,
                           previous=period.previous(), empty=empty, trend=trend,
                           charts=charts)


def trend(number: KeyNumber) -> str:
    """`kpi-up` for good news, `kpi-down` for bad, '' when unchanged or not comparable."""
    if not number.change.startswith(("+", "-")):
        return ""
    rose = number.change.startswith("+")
    return "kpi-up" if rose != (number.label in LOWER_IS_BETTER) else "kpi-down"
