"""The report tables: a report's rows as the admin shows them beside a chart, headings in
words and figures formatted (shares as percentages, durations in their unit); the CSV and
the API keep the raw values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nurture.reports.figures import Report
from nurture.web import charts

LABELS = {
    "cohort": "Cohort", "stage": "Stage", "count": "Leads", "conversion": "Of stage before",
    "median_seconds": "Median time", "p90_seconds": "90th percentile",
    "month": "Month", "reason": "Reason", "recycled": "Recycled", "accepted": "Accepted",
    "rejected_again": "Rejected again", "acceptance_rate": "Acceptance rate",
    "qualified": "Qualified", "emails_delivered": "Emails delivered",
    "emails_delivered_median": "Emails (median)", "human_engagements": "Human engagements",
    "human_engagements_median": "Engagements (median)",
    "nurture_median_seconds": "Time in nurture (median)",
    "nurture_p90_seconds": "Time in nurture (p90)", "won": "Won",
    "qualified_per_won": "Qualified per won", "won_from_recycled": "Won from recycled",
    "revenue_from_recycled": "Revenue from recycled", "leg": "Leg", "median_ms": "Median",
    "p90_ms": "90th percentile", "within_5_minutes": "Within 5 min", "handoffs": "Handoffs",
    "met": "Met", "escalated": "Escalated", "expired": "Expired",
    "stalled_returns": "Stalled returns", "sequence": "Sequence", "step": "Step",
    "enrolled": "Enrolled", "delivered": "Delivered", "human_open": "Human opens",
    "human_click": "Human clicks", "unsubscribe": "Unsubscribes", "exit": "Exits",
    "requalified": "Requalified", "collateral": "Collateral", "recipients": "Recipients",
    "engagements": "Engagements", "in_explanations": "In score explanations",
    "band": "Time to first action", "up_to_ms": "Up to", "share": "Share",
    "rep": "Rep", "team": "Team", "source": "Source",
}
"""Column headings (the CSV keeps the API's column names)."""

REPORT_LABELS = {("rejection_reasons", "count"): "Rejections",
                 ("rerejection_reasons", "count"): "Rejections",
                 ("speed_to_lead", "count"): "Handoffs", ("exits", "count"): "Enrollments",
                 ("revenue", "qualified"): "Recycled"}
"""Headings that depend on the report."""

STAGE_LABELS = {"entered": "Entered nurture", "nurtured": "Nurtured", "engaged": "Engaged",
                "recycled": "Recycled to sales", "accepted": "Accepted", "opportunity":
                "Opportunity", "won": "Won"}
LEG_LABELS = {"qualified_to_stored": "Qualified → handoff stored",
              "stored_to_notified": "Stored → rep notified",
              "stored_to_first_action": "Stored → rep's first action",
              "qualified_to_first_action": "Qualified → rep's first action"}
WORDS = {"stage": STAGE_LABELS, "leg": LEG_LABELS}
SHARES = {"conversion", "acceptance_rate", "within_5_minutes", "share"}
DURATIONS_S = {"median_seconds", "p90_seconds", "nurture_median_seconds", "nurture_p90_seconds"}
DURATIONS_MS = {"median_ms", "p90_ms", "up_to_ms"}
TEXT = {"cohort", "stage", "month", "reason", "leg", "sequence", "step", "collateral", "band",
        "rep", "team", "source"}


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    numeric: bool


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    rows: list[list[str]]
    strong: list[bool] = field(default_factory=list)
    """Rows to set in bold (a sequence's total above its steps)."""

    def lines(self) -> list[tuple[bool, list[tuple[str, bool]]]]:
        """Each row as (bold?, [(text, numeric?) per cell]): what the template walks, with no
        lookup per cell (a year's funnel is a few hundred cells)."""
        numeric = [c.numeric for c in self.columns]
        bold = self.strong or [False] * len(self.rows)
        return [(b, list(zip(row, numeric, strict=True)))
                for b, row in zip(bold, self.rows, strict=True)]


def human(value: Any) -> str:
    return "" if value is None else str(value).replace("_", " ")


def cell(column: str, value: Any) -> str:
    """A figure as the table shows it (the CSV has the raw value)."""
    if value is None or value == "":
        return "—" if column not in ("step", "rep", "team", "source", "reason") else (
            "(all steps)" if column == "step" else "(none)")
    if column in WORDS:
        return WORDS[column].get(value, human(value))
    if column in ("reason",):
        return human(value)
    if column in SHARES:
        return charts.percent(value)
    if column in DURATIONS_S:
        return charts.duration_ms(value * 1000)
    if column in DURATIONS_MS:
        return charts.duration_ms(value)
    if column == "revenue_from_recycled":
        return f"{Decimal(value):,.2f}"
    if column == "qualified_per_won":
        return f"{value:,.1f}"
    if column in TEXT:
        return str(value)
    return charts.number(value)


def table(report: Report, *, strong: Callable[[dict[str, Any]], bool] | None = None) -> Table:
    columns = [Column(c, REPORT_LABELS.get((report.name, c))
                      or LABELS.get(c, human(c).capitalize()), c not in TEXT)
               for c in report.columns]
    return Table(columns, [[cell(c, row.get(c)) for c in report.columns] for row in report.rows],
                 [bool(strong and strong(row)) for row in report.rows])
