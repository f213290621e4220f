"""The reports: each reads the rollups (or the small handoff tables) for one period.

Every report answers a `Report`: its columns and its rows of plain values, the one shape
the JSON answer and the CSV export are both written from. Times are whole seconds (or
milliseconds for speed to lead); medians and 90th percentiles are nearest-rank, computed
exactly over the journeys or handoffs of the period (docs/REPORTS.md says why).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import String, func, select
from sqlalchemy.orm import Session

from nurture.errors import NotFound
from nurture.models import (
    Collateral,
    ReportCount,
    ReportJourney,
    Sequence,
)
from nurture.reports.funnel_months import funnel_stats
from nurture.reports.params import ReportQuery, ratio
from nurture.reports.percentiles import SPEED_LEGS, qualifying_stats, speed_stats


@dataclass(frozen=True)
class Report:
    name: str
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class Definition:
    build: Callable[[Session, ReportQuery], Report]
    groupings: tuple[str, ...]
    description: str


_JOURNEY_GROUP = {"reason": ReportJourney.reason, "sequence": ReportJourney.sequence_id,
                  "rep": ReportJourney.rep_email, "team": ReportJourney.team,
                  "source": ReportJourney.source}
_COUNT_GROUP = {"reason": ReportCount.reason, "sequence": ReportCount.sequence_id,
                "rep": ReportCount.rep_email, "team": ReportCount.team,
                "source": ReportCount.source}

STAGES = ("entered", "nurtured", "engaged", "recycled", "accepted", "opportunity", "won")
"""The funnel, in order: rejected or not ready → … → won."""



def _group_columns(query: ReportQuery) -> list[str]:
    return [query.group_by] if query.group_by else []


def funnel(session: Session, query: ReportQuery) -> Report:
    """By cohort (the month a lead entered nurture): how many reached each stage, the share
    of the stage before that did, and the median and p90 time spent in the stage before."""
    stats = funnel_stats(session, query)
    out = []
    for bucket_key in sorted(stats, key=lambda k: tuple(str(x) for x in k)):
        previous_count = None
        for stage, (count, median, p90) in zip(STAGES, stats[bucket_key], strict=True):
            row = {"cohort": _iso_day(bucket_key[0])}
            if query.group_by:
                row[query.group_by] = bucket_key[1]
            row |= {"stage": stage, "count": count,
                    "conversion": None if previous_count is None else ratio(count,
                                                                            previous_count),
                    "median_seconds": median, "p90_seconds": p90}
            out.append(row)
            previous_count = count
    return Report("funnel", ["cohort", *_group_columns(query), "stage", "count", "conversion",
                             "median_seconds", "p90_seconds"], out)


def _iso_day(value: Any) -> str:
    return value if isinstance(value, str) else value.isoformat()


def _counts(session: Session, query: ReportQuery, metrics: tuple[str, ...],
            by: list[Any]) -> list[Any]:
    return session.execute(
        select(ReportCount.metric, *by, func.sum(ReportCount.n), func.sum(ReportCount.amount))
        .where(ReportCount.metric.in_(metrics), ReportCount.day >= query.period.start,
               ReportCount.day <= query.period.end)
        .group_by(ReportCount.metric, *by)
    ).all()


def _month(day: Any) -> Any:
    """YYYY-MM of a date column (its text is YYYY-MM-DD on both databases)."""
    return func.substr(func.cast(day, String()), 1, 7)


def rejection_reasons(session: Session, query: ReportQuery) -> Report:
    """Rejections recorded per month and reason (re-rejections by reps included)."""
    group = _COUNT_GROUP.get(query.group_by or "")
    by = [_month(ReportCount.day), ReportCount.reason] + ([group] if group is not None else [])
    rows = _counts(session, query, ("rejection",), by)
    out = [{"month": r[1], "reason": r[2], **({query.group_by: r[3]} if query.group_by else {}),
            "count": int(r[-2])} for r in rows]
    out.sort(key=lambda r: tuple(str(v) for v in r.values()))
    return Report("rejection_reasons", ["month", "reason", *_group_columns(query), "count"], out)


def _grouped(session: Session, query: ReportQuery, metrics: tuple[str, ...],
             extra: list[Any] | None = None) -> dict[tuple[Any, ...], dict[str, int]]:
    group = _COUNT_GROUP.get(query.group_by or "")
    by = (extra or []) + ([group] if group is not None else [])
    table: dict[tuple[Any, ...], dict[str, int]] = defaultdict(dict)
    for row in _counts(session, query, metrics, by):
        table[tuple(row[1:-2])][row[0]] = int(row[-2])
    return table


def acceptance(session: Session, query: ReportQuery) -> Report:
    """Recycled leads the reps answered in the period: accepted, rejected again, and the
    share accepted; with the handoffs made in the period."""
    table = _grouped(session, query, ("recycled", "accepted", "rerejected"))
    out = []
    for group_key in sorted(table, key=lambda k: tuple(str(x) for x in k)):
        counts = table[group_key]
        accepted, rerejected = counts.get("accepted", 0), counts.get("rerejected", 0)
        out.append({**({query.group_by: group_key[0]} if query.group_by else {}),
                    "recycled": counts.get("recycled", 0), "accepted": accepted,
                    "rejected_again": rerejected,
                    "acceptance_rate": ratio(accepted, accepted + rerejected)})
    return Report("acceptance", [*_group_columns(query), "recycled", "accepted",
                                 "rejected_again", "acceptance_rate"], out)


def rerejection_reasons(session: Session, query: ReportQuery) -> Report:
    """Why reps rejected recycled leads again, by reason."""
    table = _grouped(session, query, ("rerejected",), [ReportCount.reason])
    out = [{"reason": k[0], **({query.group_by: k[1]} if query.group_by else {}),
            "count": v["rerejected"]}
           for k, v in sorted(table.items(), key=lambda kv: tuple(str(x) for x in kv[0]))]
    return Report("rerejection_reasons", ["reason", *_group_columns(query), "count"], out)


def qualifying(session: Session, query: ReportQuery) -> Report:
    """Leads that qualified (were recycled) in the period: touches before qualifying (emails
    delivered, human engagements) and time in nurture before qualifying."""
    stats = qualifying_stats(session, query)
    out = []
    for group_key in sorted(stats, key=str):
        item = stats[group_key]
        out.append({**({query.group_by: group_key} if query.group_by else {}),
                    "qualified": item["qualified"],
                    "emails_delivered": item["delivered"],
                    "emails_delivered_median": item["delivered_median"],
                    "human_engagements": item["engagements"],
                    "human_engagements_median": item["engagements_median"],
                    "nurture_median_seconds": item["nurture"][0],
                    "nurture_p90_seconds": item["nurture"][1]})
    return Report("qualifying", [*_group_columns(query), "qualified", "emails_delivered",
                                 "emails_delivered_median", "human_engagements",
                                 "human_engagements_median", "nurture_median_seconds",
                                 "nurture_p90_seconds"], out)


def revenue(session: Session, query: ReportQuery) -> Report:
    """Qualified leads per won deal, and revenue won from recycled leads, in the period."""
    group = _JOURNEY_GROUP.get(query.group_by or "")
    extra = [group] if group is not None else []
    period = query.period
    qualified_rows = session.execute(
        select(*extra, func.count()).select_from(ReportJourney)
        .where(ReportJourney.recycled_at >= period.since, ReportJourney.recycled_at < period.until)
        .group_by(*extra)
    ).all()
    qualified = {(r[0] if extra else None): r[-1] for r in qualified_rows}
    won_rows = session.execute(
        select(*extra, func.count(),
               func.count(ReportJourney.recycled_at),
               func.sum(ReportJourney.revenue).filter(ReportJourney.recycled_at.is_not(None)))
        .where(ReportJourney.won_at >= period.since, ReportJourney.won_at < period.until)
        .group_by(*extra)
    ).all()
    won = {(r[0] if extra else None): r[-3:] for r in won_rows}
    out = []
    for group_key in sorted(set(qualified) | set(won), key=str):
        q = qualified.get(group_key, 0)
        w, w_recycled, amount = won.get(group_key, (0, 0, None))
        out.append({**({query.group_by: group_key} if query.group_by else {}),
                    "qualified": q, "won": w, "qualified_per_won": ratio(q, w),
                    "won_from_recycled": w_recycled,
                    "revenue_from_recycled": str(Decimal(amount or 0).quantize(Decimal("0.01")))})
    return Report("revenue", [*_group_columns(query), "qualified", "won", "qualified_per_won",
                              "won_from_recycled", "revenue_from_recycled"], out)


def speed_to_lead(session: Session, query: ReportQuery) -> Report:
    """Handoffs made in the period: qualifying event → handoff stored → rep notified → rep's
    first action, each leg's median and p90 in milliseconds and the share within 5 minutes."""
    stats = speed_stats(session, query)
    out = []
    for group_key in sorted(stats, key=str):
        for leg in SPEED_LEGS:
            count, median, p90, quick = stats[group_key][leg]
            out.append({**({query.group_by: group_key} if query.group_by else {}),
                        "leg": leg, "count": count, "median_ms": median, "p90_ms": p90,
                        "within_5_minutes": ratio(quick, count)})
    return Report("speed_to_lead", [*_group_columns(query), "leg", "count", "median_ms",
                                    "p90_ms", "within_5_minutes"], out)


SLA_METRICS = ("recycled", "sla_met", "sla_escalated", "sla_expired", "stalled_in_sales")


def sla(session: Session, query: ReportQuery) -> Report:
    """SLA compliance per rep (or team): handoffs, met, escalated, expired, stalled returns."""
    group_by = query.group_by or "rep"
    table = _grouped(session, ReportQuery(query.period, group_by), SLA_METRICS)
    out = [{group_by: k[0], "handoffs": v.get("recycled", 0), "met": v.get("sla_met", 0),
            "escalated": v.get("sla_escalated", 0), "expired": v.get("sla_expired", 0),
            "stalled_returns": v.get("stalled_in_sales", 0)}
           for k, v in sorted(table.items(), key=lambda kv: str(kv[0]))]
    return Report("sla", [group_by, "handoffs", "met", "escalated", "expired",
                          "stalled_returns"], out)


SEQUENCE_METRICS = ("enrolled", "delivered", "human_open", "human_click", "unsubscribe",
                    "exit", "requalified")


def sequences(session: Session, query: ReportQuery) -> Report:
    """Per sequence (step '') and per step: enrolled, delivered, human opens and clicks,
    unsubscribes, exits, and leads requalified within 90 days of enrolling."""
    table = _grouped(session, query, SEQUENCE_METRICS,
                     [ReportCount.sequence_id, ReportCount.step_id])
    keys = _sequence_keys(session, {k[0] for k in table})
    totals: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (sequence_id, step_id), counts in table.items():
        for metric, n in counts.items():
            totals[(sequence_id, "")][metric] += n
            if step_id:
                totals[(sequence_id, step_id)][metric] += n
    out = [{"sequence": keys.get(s, str(s)), "step": step,
            **{m: totals[(s, step)].get(m, 0) for m in SEQUENCE_METRICS}}
           for s, step in sorted(totals, key=lambda k: (keys.get(k[0], ""), k[1])) if s]
    return Report("sequences", ["sequence", "step", *SEQUENCE_METRICS], out)


def exits(session: Session, query: ReportQuery) -> Report:
    """Enrollments that finished in the period, per sequence, step and reason."""
    table = _grouped(session, query, ("exit",),
                     [ReportCount.sequence_id, ReportCount.step_id, ReportCount.reason])
    keys = _sequence_keys(session, {k[0] for k in table})
    out = [{"sequence": keys.get(k[0], str(k[0])), "step": k[1], "reason": k[2],
            "count": v["exit"]} for k, v in table.items()]
    out.sort(key=lambda r: (r["sequence"], r["step"], r["reason"]))
    return Report("exits", ["sequence", "step", "reason", "count"], out)


def collateral(session: Session, query: ReportQuery) -> Report:
    """Per collateral: emails featuring it delivered, human engagements with it, and handoffs
    whose score explanation owes points to it."""
    table = _grouped(session, query, ("collateral_sent", "collateral_engaged",
                                      "collateral_explained"), [ReportCount.collateral_id])
    keys = dict(session.execute(select(Collateral.id, Collateral.key)
                                .where(Collateral.id.in_([k[0] for k in table]))).tuples().all())
    out = [{"collateral": keys.get(k[0], str(k[0])), "recipients": v.get("collateral_sent", 0),
            "engagements": v.get("collateral_engaged", 0),
            "in_explanations": v.get("collateral_explained", 0)}
           for k, v in table.items() if k[0]]
    out.sort(key=lambda r: r["collateral"])
    return Report("collateral", ["collateral", "recipients", "engagements", "in_explanations"],
                  out)


def _sequence_keys(session: Session, ids: set[Any]) -> dict[Any, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Sequence.id, Sequence.key)
                                .where(Sequence.id.in_(ids))).tuples().all())


ALL_GROUPS = ("reason", "sequence", "rep", "team", "source")

REPORTS: dict[str, Definition] = {
    "funnel": Definition(funnel, ALL_GROUPS, "the funnel by cohort"),
    "rejection_reasons": Definition(rejection_reasons, ("rep", "team", "source"),
                                    "rejections per month and reason"),
    "acceptance": Definition(acceptance, ("rep", "team", "source"),
                             "recycled-lead acceptance rate"),
    "rerejection_reasons": Definition(rerejection_reasons, ("rep", "team", "source"),
                                      "reasons for re-rejection"),
    "qualifying": Definition(qualifying, ALL_GROUPS, "touches and time before qualifying"),
    "revenue": Definition(revenue, ALL_GROUPS,
                          "qualified leads per won deal, revenue from recycled leads"),
    "speed_to_lead": Definition(speed_to_lead, ("rep", "team"), "speed to lead"),
    "sla": Definition(sla, ("rep", "team"), "SLA compliance per rep and team"),
    "sequences": Definition(sequences, (), "per sequence and step"),
    "exits": Definition(exits, (), "sequence exits by reason"),
    "collateral": Definition(collateral, (), "per collateral"),
}


def definition(name: str) -> Definition:
    try:
        return REPORTS[name]
    except KeyError:
        raise NotFound(f"no report named {name!r}; reports: {', '.join(REPORTS)}") from None


def build_report(session: Session, name: str, query: ReportQuery) -> Report:
    return definition(name).build(session, query)

