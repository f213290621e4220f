"""The report pages' panels: one report's figures as a chart (server-rendered SVG,
`nurture.web.charts`) and as a table of the same rows the CSV holds.

Each panel builder takes a `Reading` (the page's period and grouping, and the reports already
read for this request) and answers a `Panel`; the figures come from `nurture.reports`, the
same functions as the API, so the chart, the table, the CSV and the API agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from nurture.reports.distribution import BANDS, WITHIN_FIVE_MINUTES, speed_distribution
from nurture.reports.figures import REPORTS, STAGES, Report, build_report
from nurture.reports.params import ReportQuery
from nurture.web import charts
from nurture.web.admin.report_tables import (
    LABELS,
    LEG_LABELS,
    STAGE_LABELS,
    Column,
    Table,
    human,
    table,
)
from nurture.web.charts import Reference, Series

TOP_GROUPS = 6
"""A grouped chart draws this many groups, the largest; the table beside has every one."""

MOST_STEPS = 16
"""The step chart draws this many steps, those that delivered most; its table has them all."""

STACK_COLUMNS = 3
"""A table of more columns goes under its chart (full width), a narrower one beside it."""

WIDE, NARROW = 940, 600
"""Chart widths (units) under a table's full width and beside a table: about the pixels they
are shown at, so their text reads at its size."""

@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    report: str
    chart: Markup | None
    table: Table
    note: str | None = None
    empty: str | None = None
    """What to do when the period holds nothing for this panel (shown instead of the chart)."""
    group_by: str | None = None
    """The grouping the panel's report was read with (its CSV link asks the same)."""
    wide: bool = False
    """The chart takes the full width and its table goes under it, whatever its columns."""

    @property
    def stacked(self) -> bool:
        return self.wide or (self.table is not None and len(self.table.columns) > STACK_COLUMNS)


@dataclass
class Reading:
    """A page's filters and the reports read for this request (each read once)."""

    session: Session
    query: ReportQuery
    read: dict[tuple[str, str | None], Report] = field(default_factory=dict)
    width: int | None = None
    """Every chart's width, when the page sets one (the dashboard)."""

    def width_for(self, name: str) -> int:
        if self.width:
            return self.width
        return WIDE if len(self.report(name).columns) > STACK_COLUMNS else NARROW

    def grouping(self, name: str) -> str | None:
        groupings = REPORTS[name].groupings if name in REPORTS else ()
        return self.query.group_by if self.query.group_by in groupings else None

    def report(self, name: str) -> Report:
        key = (name, self.grouping(name))
        if key not in self.read:
            query = ReportQuery(self.query.period, key[1])
            self.read[key] = (speed_distribution(self.session, query)
                              if name == "speed_distribution"
                              else build_report(self.session, name, query))
        return self.read[key]

    def note(self, name: str) -> str | None:
        """Why a panel is not grouped as the page asks, if it is not."""
        if not self.query.group_by or self.grouping(name):
            return None
        allowed = REPORTS[name].groupings if name in REPORTS else ()
        what = (f"it groups by {' or '.join(allowed)} only" if allowed
                else "it is not grouped")
        return f"Not by {self.query.group_by} here: {what}."


def _largest(rows: Sequence[dict[str, Any]], key: str, size: Callable[[dict[str, Any]], float]
             ) -> list[Any]:
    totals: dict[Any, float] = defaultdict(float)
    for row in rows:
        totals[row.get(key)] += size(row)
    return sorted(totals, key=lambda k: (-totals[k], str(k)))[:TOP_GROUPS]


def _name(value: Any) -> str:
    return "(none)" if value in (None, "") else str(value)


def _panel(reading: Reading, key: str, title: str, name: str, chart: Markup | None,
           empty: str, *, strong: Callable[[dict[str, Any]], bool] | None = None) -> Panel:
    report = reading.report(name)
    return Panel(key, title, name, chart if report.rows else None, table(report, strong=strong),
                 reading.note(name), None if report.rows else empty, reading.grouping(name))


NOTHING = ("No lead entered nurture in this period. Pick a longer period above, or record "
           "rejections through the API (POST /api/v1/rejections).")


def funnel(reading: Reading) -> Panel:
    report = reading.report("funnel")
    group = reading.grouping("funnel")
    period = f"cohorts {reading.query.period.start:%B %Y} to {reading.query.period.end:%B %Y}"
    if group:
        groups = _largest([r for r in report.rows if r["stage"] == "entered"], group,
                          lambda r: r["count"])
        series = [Series(_name(g), [sum(r["count"] for r in report.rows
                                        if r["stage"] == s and r[group] == g) for s in STAGES])
                  for g in groups]
        chart = charts.hbars("chart-funnel", f"The funnel by {group}, {period}",
                             f"Leads that reached each stage, for the {len(groups)} largest "
                             f"groups by {group}; every group is in the table.",
                             [STAGE_LABELS[s] for s in STAGES], series,
                             width=reading.width_for("funnel"))
    else:
        counts = [sum(r["count"] for r in report.rows if r["stage"] == s) for s in STAGES]
        notes = ["" if i == 0 or not counts[i - 1] else
                 f"{charts.percent(counts[i] / counts[i - 1])} of {STAGES[i - 1]}"
                 for i in range(len(STAGES))]
        chart = charts.hbars("chart-funnel", f"The funnel, {period}",
                             "Leads that reached each stage: " + ", ".join(
                                 f"{STAGE_LABELS[s]} {c:,}" for s, c in zip(STAGES, counts,
                                                                          strict=True)) + ".",
                             [STAGE_LABELS[s] for s in STAGES], [Series("Leads", counts)],
                             notes=notes, width=reading.width_for("funnel"))
    return _panel(reading, "funnel", "Funnel", "funnel", chart, NOTHING)


def cohort_trend(reading: Reading) -> Panel:
    report = reading.report("funnel")
    group = reading.grouping("funnel")
    cohorts = sorted({r["cohort"] for r in report.rows})
    months = [c[:7] for c in cohorts]
    if group:
        groups = _largest([r for r in report.rows if r["stage"] == "recycled"], group,
                          lambda r: r["count"])
        series = [Series(_name(g), [sum(r["count"] for r in report.rows if r["cohort"] == c
                                        and r["stage"] == "recycled" and r[group] == g)
                                    for c in cohorts]) for g in groups]
        title = f"Leads recycled to sales per cohort month, by {group}"
    else:
        series = [Series(STAGE_LABELS[s], [sum(r["count"] for r in report.rows
                                               if r["cohort"] == c and r["stage"] == s)
                                           for c in cohorts])
                  for s in ("entered", "engaged", "recycled", "accepted", "won")]
        title = "Each cohort month through the funnel"
    chart = charts.lines("chart-cohorts", title,
                         "Per month in which leads entered nurture (the cohort), how many "
                         "reached each stage so far. The funnel table has every figure.",
                         months, series, width=reading.width_for("funnel"))
    return _panel(reading, "cohorts", "Cohorts over time", "funnel", chart, NOTHING)


def rejection_reasons(reading: Reading) -> Panel:
    report = reading.report("rejection_reasons")
    group = reading.grouping("rejection_reasons") or "reason"
    months = sorted({r["month"] for r in report.rows})
    keys = _largest(report.rows, group, lambda r: r["count"])
    series = [Series(human(k) if group == "reason" else _name(k),
                     [sum(r["count"] for r in report.rows if r["month"] == m and r[group] == k)
                      for m in months]) for k in keys]
    rest = [sum(r["count"] for r in report.rows if r["month"] == m and r[group] not in keys)
            for m in months]
    if any(rest):
        series.append(Series("the rest", rest))
    chart = charts.columns("chart-rejections", f"Rejections per month, by {group}",
                           "Rejections recorded each month (by the CRM, by reps rejecting a "
                           f"recycled lead, and by the SLA), stacked by {group}.", months,
                           series, width=reading.width_for("rejection_reasons"))
    return _panel(reading, "rejections", "Rejection reasons over time", "rejection_reasons",
                  chart, "No rejection was recorded in this period.")


def acceptance(reading: Reading) -> Panel:
    report = reading.report("acceptance")
    group = reading.grouping("acceptance")
    labels = [_name(r[group]) for r in report.rows] if group else ["All reps"]
    chart = charts.hbars(
        "chart-acceptance", "Recycled leads answered by sales",
        "Answers the reps gave in the period: accepted and rejected again, per "
        + (group or "period") + "; the acceptance rate is in the table.", labels,
        [Series("Accepted", [r["accepted"] for r in report.rows]),
         Series("Rejected again", [r["rejected_again"] for r in report.rows])],
        stacked=True, notes=[f"{charts.percent(r['acceptance_rate'])} accepted"
                             if r["acceptance_rate"] is not None else ""
                             for r in report.rows], width=reading.width_for("acceptance"))
    return _panel(reading, "acceptance", "Recycled-lead acceptance", "acceptance", chart,
                  "No recycled lead was answered in this period.")


def rerejection_reasons(reading: Reading) -> Panel:
    report = reading.report("rerejection_reasons")
    reasons = _largest(report.rows, "reason", lambda r: r["count"])
    totals = [sum(r["count"] for r in report.rows if r["reason"] == k) for k in reasons]
    chart = charts.hbars("chart-rerejections", "Why reps rejected recycled leads again",
                         "Re-rejections in the period by reason.", [human(k) for k in reasons],
                         [Series("Rejected again", totals)],
                         width=reading.width_for("rerejection_reasons"))
    return _panel(reading, "rerejections", "Reasons for re-rejection", "rerejection_reasons",
                  chart, "No recycled lead was rejected again in this period.")


def qualifying(reading: Reading) -> Panel:
    report = reading.report("qualifying")
    group = reading.grouping("qualifying")
    rows = report.rows[: TOP_GROUPS * 2]
    labels = [_name(r[group]) for r in rows] if group else ["All qualified leads"]
    chart = charts.hbars(
        "chart-qualifying", "Time in nurture before qualifying",
        "Median and 90th percentile of the time from entering nurture to qualifying, for the "
        "leads that qualified in the period (log scale).", labels,
        [Series("Median", [_ms(r["nurture_median_seconds"]) for r in rows]),
         Series("90th percentile", [_ms(r["nurture_p90_seconds"]) for r in rows])],
        fmt=charts.duration_ms, durations=True, width=reading.width_for("qualifying"))
    return _panel(reading, "qualifying", "Touches and time before qualifying", "qualifying",
                  chart, "No lead qualified in this period.")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def revenue(reading: Reading) -> Panel:
    report = reading.report("revenue")
    group = reading.grouping("revenue")
    if group:
        rows = sorted(report.rows, key=lambda r: -Decimal(r["revenue_from_recycled"]))
        rows = rows[: TOP_GROUPS * 2]
        chart = charts.hbars("chart-revenue", f"Revenue won from recycled leads, by {group}",
                             "Revenue of the deals won in the period from leads nurture "
                             "recycled.", [_name(r[group]) for r in rows],
                             [Series("Revenue", [float(r["revenue_from_recycled"])
                                                 for r in rows])],
                                                 width=reading.width_for("revenue"))
    else:
        row = report.rows[0] if report.rows else {"qualified": 0, "won": 0,
                                                  "won_from_recycled": 0}
        chart = charts.hbars("chart-revenue", "Qualified leads and deals won",
                             "Leads recycled to sales in the period, deals won in it, and those "
                             "won from recycled leads.",
                             ["Qualified (recycled)", "Deals won", "Won from recycled"],
                             [Series("Leads", [row["qualified"], row["won"],
                                               row["won_from_recycled"]])],
                                               width=reading.width_for("revenue"))
    return _panel(reading, "revenue", "Qualified per won deal, revenue", "revenue", chart,
                  "No lead was recycled and no deal was won in this period.")


FIVE_MINUTES = Reference(300_000, "5 minutes")

BAND_SHORT = ("≤1m", "1–2m", "2–5m", "5–10m", "10–30m", "30–60m", "1–4h", "4–24h", ">1d")
"""The distribution's bands as the chart's axis names them (the table says them in full)."""


def speed_distribution_panel(reading: Reading) -> Panel:
    report = reading.report("speed_distribution")
    bands = report.rows[: len(BANDS)]
    answered = sum(r["handoffs"] for r in bands)
    quick = sum(r["handoffs"] for r in bands[:WITHIN_FIVE_MINUTES])
    share = charts.percent(quick / answered) if answered else "none"
    chart = charts.columns(
        "chart-speed", "Time from qualifying to the rep's first action",
        f"Answered handoffs of the period by how long the rep took after the lead qualified; "
        f"{quick:,} of {answered:,} ({share}) within 5 minutes, left of the line.",
        list(BAND_SHORT), [Series("Handoffs", [r["handoffs"] for r in bands])],
        boundary=Reference(WITHIN_FIVE_MINUTES, f"5 minutes · {share} within"),
        width=reading.width_for("speed_distribution"))
    panel = _panel(reading, "distribution", "Speed to lead, distribution", "speed_distribution",
                   chart, "No handoff was answered in this period.")
    return panel if answered else replace(panel, chart=None,
                                          empty="No handoff was answered in this period.")


def speed_legs(reading: Reading) -> Panel:
    report = reading.report("speed_to_lead")
    group = reading.grouping("speed_to_lead")
    if group:
        rows = [r for r in report.rows if r["leg"] == "qualified_to_first_action"]
        chart = charts.hbars(
            "chart-speed-legs", f"First action within 5 minutes of qualifying, by {group}",
            "Share of the answered handoffs whose first action came within 5 minutes of the "
            "lead qualifying.", [_name(r[group]) for r in rows],
            [Series("Within 5 minutes", [r["within_5_minutes"] for r in rows])],
            fmt=charts.percent, notes=[f"{r['count']:,} answered" for r in rows],
            width=reading.width_for("speed_to_lead"))
    else:
        rows = report.rows
        chart = charts.hbars(
            "chart-speed-legs", "Each leg of speed to lead against the 5-minute line",
            "Median and 90th percentile of each leg, qualifying event to the rep's first "
            "action, on a log scale; the dashed line is 5 minutes.",
            [LEG_LABELS[r["leg"]] for r in rows],
            [Series("Median", [r["median_ms"] for r in rows]),
             Series("90th percentile", [r["p90_ms"] for r in rows])],
            fmt=charts.duration_ms, durations=True, reference=FIVE_MINUTES,
            width=reading.width_for("speed_to_lead"))
    return _panel(reading, "legs", "Speed to lead, each leg", "speed_to_lead", chart,
                  "No handoff was made in this period.")


def sla(reading: Reading) -> Panel:
    report = reading.report("sla")
    group = reading.grouping("sla") or "rep"
    rows = sorted(report.rows, key=lambda r: -r["handoffs"])[: TOP_GROUPS * 2]
    chart = charts.hbars(
        "chart-sla", f"SLA compliance by {group}",
        "Handoffs met within the SLA, escalated, expired and returned stalled from sales, "
        f"per {group}.", [_name(r[group]) for r in rows],
        [Series(label, [r[key] for r in rows]) for key, label in
         (("met", "Met"), ("escalated", "Escalated"), ("expired", "Expired"),
          ("stalled_returns", "Stalled returns"))],
        notes=[f"{r['handoffs']:,} handoffs" for r in rows], width=reading.width_for("sla"))
    return _panel(reading, "sla", "SLA compliance", "sla", chart,
                  "No handoff in this period. SLA figures appear once leads are recycled.")


def _sequence_total(row: dict[str, Any]) -> bool:
    return row.get("step") == ""


def sequences(reading: Reading) -> Panel:
    report = reading.report("sequences")
    rows = [r for r in report.rows if _sequence_total(r)][: TOP_GROUPS * 2]
    chart = charts.hbars(
        "chart-sequences", "Sequence performance",
        "Per sequence: leads enrolled, emails delivered, human opens, human clicks and leads "
        "requalified within 90 days.", [r["sequence"] for r in rows],
        [Series(LABELS[m], [r[m] for r in rows]) for m in
         ("enrolled", "delivered", "human_open", "human_click", "requalified")],
         width=reading.width_for("sequences"))
    return _panel(reading, "sequences", "Sequences", "sequences", chart,
                  "No sequence enrolled or sent anything in this period.",
                  strong=_sequence_total)


def steps(reading: Reading) -> Panel:
    report = reading.report("sequences")
    rows = [r for r in report.rows if not _sequence_total(r) and r["delivered"]]
    drawn = sorted(rows, key=lambda r: -r["delivered"])[:MOST_STEPS]
    drawn.sort(key=lambda r: (r["sequence"], r["step"]))
    chart = charts.hbars(
        "chart-steps", "Step performance: human opens and clicks per email delivered",
        "For each email step that delivered in the period"
        + (f" (the {MOST_STEPS} that delivered most)" if len(rows) > MOST_STEPS else "")
        + ", the human opens and clicks per email delivered.",
        [f"{r['sequence']} · {r['step']}" for r in drawn],
        [Series("Opens per delivered", [r["human_open"] / r["delivered"] for r in drawn]),
         Series("Clicks per delivered", [r["human_click"] / r["delivered"] for r in drawn])],
        fmt=charts.percent, width=reading.width or WIDE)
    figures = Table([Column("step", "Step", False), Column("delivered", "Delivered", True),
                     Column("opens", "Opens per delivered", True),
                     Column("clicks", "Clicks per delivered", True)],
                    [[f"{r['sequence']} · {r['step']}", charts.number(r["delivered"]),
                      charts.percent(r["human_open"] / r["delivered"]),
                      charts.percent(r["human_click"] / r["delivered"])] for r in rows])
    return Panel("steps", "Steps", "sequences", chart if rows else None, figures,
                 empty=None if rows else "No step delivered an email in this period.", wide=True)


def exits(reading: Reading) -> Panel:
    report = reading.report("exits")
    names = sorted({r["sequence"] for r in report.rows})
    reasons = _largest(report.rows, "reason", lambda r: r["count"])
    chart = charts.hbars(
        "chart-exits", "Why enrollments ended",
        "Enrollments that finished in the period, per sequence, by reason.", names,
        [Series(human(k), [sum(r["count"] for r in report.rows
                               if r["sequence"] == s and r["reason"] == k) for s in names])
         for k in reasons], stacked=True, width=reading.width or WIDE)
    return replace(_panel(reading, "exits", "Exits by reason", "exits", chart,
                          "No enrollment finished in this period."), wide=True)


def collateral(reading: Reading) -> Panel:
    report = reading.report("collateral")
    rows = sorted(report.rows, key=lambda r: -r["recipients"])[: TOP_GROUPS * 2]
    chart = charts.hbars(
        "chart-collateral", "Collateral performance",
        "Per piece of collateral: emails featuring it handed over, human engagements with it, "
        "and handoffs whose score explanation owes points to it.",
        [r["collateral"] for r in rows],
        [Series("Recipients", [r["recipients"] for r in rows]),
         Series("Engagements", [r["engagements"] for r in rows]),
         Series("In score explanations", [r["in_explanations"] for r in rows])],
         width=reading.width_for("collateral"))
    return _panel(reading, "collateral", "Collateral", "collateral", chart,
                  "No email featuring collateral was sent in this period.")
