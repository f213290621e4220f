"""Reports: every revenue-loop number as a chart, a table beside it and a CSV download.

The pages read the same report functions as `GET /api/v1/reports/{name}` (`nurture.reports`),
with the same query (`from`, `to`, `group_by`, checked by `parse_query`); `cohort` (a month,
`YYYY-MM`) is a shortcut for that month's first and last days. Filters are a GET form, so
every view is a link. The CSV download of a panel is the API's CSV, byte for byte.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import Response, abort, render_template, request, url_for

from nurture.clock import utcnow
from nurture.errors import InvalidInput
from nurture.reports.distribution import speed_distribution
from nurture.reports.export import to_csv
from nurture.reports.figures import ALL_GROUPS, REPORTS, build_report
from nurture.reports.params import ReportQuery, parse_query
from nurture.web import db_session
from nurture.web.access import allow
from nurture.web.admin import report_panels as panels
from nurture.web.admin.blueprint import bp
from nurture.web.layout import STAFF

COHORT_MONTHS = 24
"""The cohort filter offers this many months, the current one first."""


@dataclass(frozen=True)
class ReportPage:
    slug: str
    title: str
    summary: str
    panels: tuple[Callable[[panels.Reading], panels.Panel], ...]
    groupings: tuple[str, ...]
    cohorts: bool = False
    default_days: int | None = None
    """The period when none is asked for (None: the API's 90 days)."""


PAGES = {p.slug: p for p in (
    ReportPage("funnel", "Funnel",
               "Rejected or not ready → nurtured → engaged → recycled → accepted → opportunity "
               "→ won, by the month leads entered nurture (the cohort).",
               (panels.funnel,), ALL_GROUPS, cohorts=True),
    ReportPage("trends", "Trends",
               "Cohort months through the funnel, and why leads were rejected, month by month.",
               (panels.cohort_trend, panels.rejection_reasons), ALL_GROUPS, cohorts=True,
               default_days=365),
    ReportPage("recycling", "Recycling and revenue",
               "How sales answers recycled leads, why it rejects them again, what it took to "
               "qualify them, and the revenue they brought.",
               (panels.acceptance, panels.rerejection_reasons, panels.qualifying,
                panels.revenue), ALL_GROUPS),
    ReportPage("speed", "Speed to lead",
               "From the qualifying event to the rep's first action, against the 5-minute line.",
               (panels.speed_distribution_panel, panels.speed_legs), ("rep", "team")),
    ReportPage("sla", "SLA compliance",
               "Per rep or team: handoffs worked within the SLA, escalated, expired, and "
               "returned stalled from sales.", (panels.sla,), ("rep", "team")),
    ReportPage("sequences", "Sequences and steps",
               "Per sequence and step: enrolled, delivered, human opens and clicks, "
               "unsubscribes, exits by reason, requalified within 90 days.",
               (panels.sequences, panels.steps, panels.exits), ()),
    ReportPage("collateral", "Collateral",
               "Which assets are sent, engaged with, and owe points in the score explanation "
               "of a lead at its handoff.", (panels.collateral,), ()),
)}
"""The report pages, in the order of their tabs."""

GROUP_LABELS = {"reason": "Rejection reason", "sequence": "Sequence", "rep": "Rep",
                "team": "Team", "source": "Lead source"}


@dataclass(frozen=True)
class Filters:
    """What the form shows: the values as typed, and each one's error."""

    start: str
    end: str
    cohort: str
    group_by: str
    errors: dict[str, list[str]]


@bp.get("/reports")
@allow(*STAFF)
def reports() -> Any:
    return render_template("admin/reports/index.html", pages=list(PAGES.values()))


@bp.get("/reports/<slug>")
@allow(*STAFF)
def report_page(slug: str) -> Any:
    page = PAGES.get(slug) or abort(404)
    today = utcnow().date()
    filters, query = read_filters(request.args, page, today)
    shown: list[panels.Panel] = []
    if query is not None:
        reading = panels.Reading(db_session(), query)
        shown = [build(reading) for build in page.panels]
    status = 422 if filters.errors else 200
    return render_template(
        "admin/reports/page.html", page=page, pages=list(PAGES.values()), filters=filters,
        query=query, panels=shown, cohorts=cohort_choices(today) if page.cohorts else [],
        groupings=[(g, GROUP_LABELS[g]) for g in page.groupings],
        presets=presets(page, today, filters), csv_args=csv_args(query),
    ), status


@bp.get("/reports/<name>.csv")
@allow(*STAFF)
def report_csv(name: str) -> Any:
    """A report as CSV: the API's CSV for the same query (speed_distribution is the admin's
    histogram of speed to lead)."""
    groupings = REPORTS[name].groupings if name in REPORTS else ()
    if name not in REPORTS and name != "speed_distribution":
        abort(404)
    try:
        query = parse_query({k: v for k, v in request.args.items() if k != "format"},
                            today=utcnow().date(), groupings=groupings)
    except InvalidInput as exc:
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items())
        return Response(f"invalid report query: {problems}\n", 422, mimetype="text/plain")
    session = db_session()
    report = (speed_distribution(session, query) if name == "speed_distribution"
              else build_report(session, name, query))
    filename = f"{name}_{query.period.start}_{query.period.end}.csv"
    return Response(to_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def read_filters(args: Any, page: ReportPage, today: date
                 ) -> tuple[Filters, ReportQuery | None]:
    """The page's filters from the query string, and the report query (None when a filter is
    wrong: each error is shown beside its field)."""
    start, end = args.get("from", ""), args.get("to", "")
    cohort, group_by = args.get("cohort", "") if page.cohorts else "", args.get("group_by", "")
    wanted = {"from": start, "to": end, "group_by": group_by}
    errors: dict[str, list[str]] = {}
    if cohort:
        month = parse_cohort(cohort)
        if month is None:
            errors["cohort"] = ["a month, YYYY-MM"]
        else:
            last = month.replace(day=calendar.monthrange(month.year, month.month)[1])
            wanted |= {"from": month.isoformat(), "to": last.isoformat()}
    if not start and not end and not cohort and page.default_days:
        wanted["from"] = (today - timedelta(days=page.default_days - 1)).isoformat()
    query = None
    try:
        query = parse_query(wanted, today=today, groupings=page.groupings)
    except InvalidInput as exc:
        errors |= exc.errors
    if errors:
        query = None
    elif query is not None and not cohort:
        start, end = query.period.start.isoformat(), query.period.end.isoformat()
    return Filters(start, end, cohort, group_by, errors), query


def parse_cohort(value: str) -> date | None:
    try:
        if len(value) != 7:
            raise ValueError(value)
        return date.fromisoformat(f"{value}-01")
    except ValueError:
        return None


def cohort_choices(today: date) -> list[tuple[str, str]]:
    month, out = today.replace(day=1), []
    for _ in range(COHORT_MONTHS):
        out.append((f"{month:%Y-%m}", f"{month:%B %Y}"))
        month = (month - timedelta(days=1)).replace(day=1)
    return out


def presets(page: ReportPage, today: date, filters: Filters) -> list[dict[str, Any]]:
    """Quick periods, as links keeping the grouping."""
    choices = (("Last 30 days", today - timedelta(days=29)),
               ("Last 90 days", today - timedelta(days=89)),
               ("Last 12 months", today - timedelta(days=364)),
               ("This year", today.replace(month=1, day=1)))
    out = []
    for label, start in choices:
        args = {"from": start.isoformat(), "to": today.isoformat()}
        if filters.group_by and not filters.errors.get("group_by"):
            args["group_by"] = filters.group_by
        out.append({"label": label, "url": url_for("admin.report_page", slug=page.slug, **args),
                    "current": (not filters.cohort and filters.start == args["from"]
                                and filters.end == args["to"])})
    return out


def csv_args(query: ReportQuery | None) -> dict[str, str]:
    if query is None:
        return {}
    return {"from": query.period.start.isoformat(), "to": query.period.end.isoformat()}
