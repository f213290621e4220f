"""Exact medians and 90th percentiles over the journeys and handoffs of a period.

Nearest rank (PostgreSQL's `percentile_disc`): the smallest value that at least that share
of the values does not exceed. On PostgreSQL each report's figures are one grouped query;
on SQLite (small installs) the rows are read and ranked here. Both give the same figures:
durations are whole seconds or milliseconds truncated toward zero, in integer arithmetic.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from nurture.models import Handoff, HandoffNotification, NotificationChannel, ReportJourney, User
from nurture.reports.params import ReportQuery

STAGE_COLUMNS = ("entered_at", "nurtured_at", "engaged_at", "recycled_at", "accepted_at",
                 "opportunity_at", "won_at")
"""The moment a journey reached each stage of the funnel, in order."""

JOURNEY_GROUP = {"reason": "reason", "sequence": "sequence_id", "rep": "rep_email",
                 "team": "team", "source": "source"}

FIVE_MINUTES_MS = 5 * 60 * 1000

Spread = tuple[int, int | None, int | None]
"""(how many values, median, p90)."""


def percentile(values: Sequence[float], p: float) -> Any:
    """Nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def spread(values: Sequence[int]) -> Spread:
    return len(values), percentile(values, 0.5), percentile(values, 0.9)


def whole(delta: timedelta, unit: timedelta) -> int:
    """`delta` in whole `unit`s, truncated toward zero, exactly."""
    micro = delta // timedelta(microseconds=1)
    step = unit // timedelta(microseconds=1)
    return micro // step if micro >= 0 else -(-micro // step)


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _pg_whole(later: str, earlier: str, unit_ms: int) -> str:
    return f"trunc(extract(epoch FROM {later} - {earlier}) * 1000 / {unit_ms})::bigint"


def _pg_spread(expression: str) -> list[str]:
    return [f"COUNT({expression})",
            f"percentile_disc(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {expression})"]


def _group_by(expression: str | None) -> str:
    """GROUP BY the expression, or one row for all; never a row for no rows (as in Python)."""
    return f"GROUP BY {expression}" if expression else "HAVING COUNT(*) > 0"


def _unpack(values: Sequence[Any]) -> list[Spread]:
    """(count, [median, p90]) pairs of a PostgreSQL row → spreads."""
    out = []
    for count, pair in zip(values[::2], values[1::2], strict=True):
        out.append((int(count), pair[0] if pair else None, pair[1] if pair else None))
    return out


def _sort_in_memory(session: Session) -> None:
    """For this transaction: room to sort a period's journeys in memory (the default 4 MB
    spills them to disk), and no JIT compilation (it costs more than it saves here)."""
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    session.execute(text("SET LOCAL jit = off"))


def live_funnel(session: Session, group_by: str | None,
                cohorts: Sequence[date]) -> dict[tuple[Any, ...], list[Spread]]:
    """(cohort[, group]) → per stage: leads that reached it, and the median and p90 seconds
    from the stage before (for leads that reached both), computed from the journeys of
    these cohort months (`nurture.reports.funnel_months` keeps closed months' figures)."""
    if not cohorts:
        return {}
    group = JOURNEY_GROUP.get(group_by or "")
    width = 2 if group else 1
    if _postgresql(session):
        _sort_in_memory(session)
        keys = "cohort" + (f", {group}" if group else "")
        parts = [f"COUNT({STAGE_COLUMNS[0]})", "NULL"]
        for earlier, later in pairwise(STAGE_COLUMNS):
            parts += [f"COUNT({later})",
                      f"percentile_disc(ARRAY[0.5, 0.9]) WITHIN GROUP "
                      f"(ORDER BY {_pg_whole(later, earlier, 1000)})"]
        rows = session.execute(text(
            f"SELECT {keys}, {', '.join(parts)} FROM report_journeys "
            f"WHERE cohort = ANY(:cohorts) GROUP BY {keys}"),
            {"cohorts": sorted(cohorts)}).all()
        return {tuple(row[:width]): _unpack(row[width:]) for row in rows}
    columns = [getattr(ReportJourney, c) for c in STAGE_COLUMNS]
    extra = [getattr(ReportJourney, group)] if group else []
    buckets: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for row in session.execute(
        select(ReportJourney.cohort, *extra, *columns)
        .where(ReportJourney.cohort.in_(sorted(cohorts)))
    ).all():
        buckets[tuple(row[:width])].append(row[width:])
    second = timedelta(seconds=1)
    stats = {}
    for bucket_key, journeys in buckets.items():
        stages = []
        for index in range(len(STAGE_COLUMNS)):
            reached = [j for j in journeys if j[index] is not None]
            times = ([] if index == 0 else
                     [whole(j[index] - j[index - 1], second) for j in reached
                      if j[index - 1] is not None])
            stages.append((len(reached), percentile(times, 0.5), percentile(times, 0.9)))
        stats[bucket_key] = stages
    return stats


def qualifying_stats(session: Session, query: ReportQuery) -> dict[Any, dict[str, Any]]:
    """Group → leads that qualified in the period, emails delivered and human engagements
    before qualifying (total, median), and seconds in nurture before it (median, p90)."""
    group = JOURNEY_GROUP.get(query.group_by or "")
    bounds = {"since": query.period.since, "until": query.period.until}
    if _postgresql(session):
        _sort_in_memory(session)
        rows = session.execute(text(
            f"SELECT {group or 'NULL'}, COUNT(*), SUM(delivered), "
            "percentile_disc(0.5) WITHIN GROUP (ORDER BY delivered), SUM(engagements), "
            "percentile_disc(0.5) WITHIN GROUP (ORDER BY engagements), "
            "percentile_disc(ARRAY[0.5, 0.9]) WITHIN GROUP "
            f"(ORDER BY {_pg_whole('qualified_at', 'entered_at', 1000)}) "
            "FROM report_journeys WHERE recycled_at >= :since AND recycled_at < :until "
            f"{_group_by(group)}"), bounds).all()
        return {row[0]: {"qualified": row[1], "delivered": int(row[2]), "delivered_median": row[3],
                         "engagements": int(row[4]), "engagements_median": row[5],
                         "nurture": (row[6] or [None, None])} for row in rows}
    extra = [getattr(ReportJourney, group)] if group else []
    buckets: dict[Any, list[Any]] = defaultdict(list)
    for row in session.execute(
        select(ReportJourney.delivered, ReportJourney.engagements, ReportJourney.entered_at,
               ReportJourney.qualified_at, *extra)
        .where(ReportJourney.recycled_at >= bounds["since"],
               ReportJourney.recycled_at < bounds["until"])
    ).all():
        buckets[row[4] if group else None].append(row)
    out = {}
    for key, items in buckets.items():
        delivered = [r[0] for r in items]
        engaged = [r[1] for r in items]
        times = [whole(r[3] - r[2], timedelta(seconds=1)) for r in items if r[3] is not None]
        out[key] = {"qualified": len(items), "delivered": sum(delivered),
                    "delivered_median": percentile(delivered, 0.5),
                    "engagements": sum(engaged), "engagements_median": percentile(engaged, 0.5),
                    "nurture": [percentile(times, 0.5), percentile(times, 0.9)]}
    return out


SPEED_LEGS = ("qualified_to_stored", "stored_to_notified", "stored_to_first_action",
              "qualified_to_first_action")


def speed_stats(session: Session, query: ReportQuery
                ) -> dict[Any, dict[str, tuple[int, Any, Any, int]]]:
    """Group → leg → (count, median ms, p90 ms, how many within 5 minutes), over the
    handoffs made in the period."""
    bounds = {"since": query.period.since, "until": query.period.until}
    if _postgresql(session):
        _sort_in_memory(session)
        group = {"rep": "COALESCE(h.rep_email, '')", "team": "COALESCE(u.team, '')"}.get(
            query.group_by or "", "NULL")
        legs = ["h.handoff_ms", "n.ms", "h.response_ms", "h.handoff_ms + h.response_ms"]
        parts = []
        for leg in legs:
            parts += [*_pg_spread(leg), f"COUNT(*) FILTER (WHERE {leg} <= {FIVE_MINUTES_MS})"]
        rows = session.execute(text(
            f"SELECT {group}, {', '.join(parts)} FROM handoffs h "
            "LEFT JOIN LATERAL (SELECT CASE WHEN MIN(x.delivered_at) IS NOT NULL THEN "
            f"GREATEST(0, {_pg_whole('MIN(x.delivered_at)', 'h.created_at', 1)}) END AS ms "
            "FROM handoff_notifications x WHERE x.handoff_id = h.id AND x.channel = 'rep_email' "
            "AND x.purpose = 'handoff' AND x.delivered_at IS NOT NULL) n ON TRUE "
            + ("LEFT JOIN users u ON u.email = h.rep_email " if query.group_by == "team" else "")
            + f"WHERE h.created_at >= :since AND h.created_at < :until "
            f"{_group_by(None if group == 'NULL' else group)}"),
            bounds).all()
        out: dict[Any, dict[str, tuple[int, Any, Any, int]]] = {}
        for row in rows:
            values = row[1:]
            out[row[0]] = {
                leg: (int(values[i * 3]), *(values[i * 3 + 1] or [None, None]),
                      int(values[i * 3 + 2]))
                for i, leg in enumerate(SPEED_LEGS)}
        return out
    notified = (
        select(HandoffNotification.handoff_id,
               func.min(HandoffNotification.delivered_at).label("at"))
        .where(HandoffNotification.channel == NotificationChannel.REP_EMAIL,
               HandoffNotification.purpose == "handoff",
               HandoffNotification.delivered_at.is_not(None))
        .group_by(HandoffNotification.handoff_id).subquery()
    )
    column = {"rep": Handoff.rep_email, "team": User.team}.get(query.group_by or "")
    statement = (
        select(Handoff.handoff_ms, Handoff.response_ms, Handoff.created_at, notified.c.at,
               *([column] if column is not None else []))
        .outerjoin(notified, notified.c.handoff_id == Handoff.id)
        .where(Handoff.created_at >= bounds["since"], Handoff.created_at < bounds["until"])
    )
    if query.group_by == "team":
        statement = statement.outerjoin(User, User.email == Handoff.rep_email)
    buckets: dict[Any, dict[str, list[int]]] = defaultdict(lambda: {leg: [] for leg in SPEED_LEGS})
    for row in session.execute(statement).all():
        legs = buckets[(row[4] or "") if column is not None else None]
        legs["qualified_to_stored"].append(row[0])
        if row[3] is not None:
            legs["stored_to_notified"].append(max(0, whole(row[3] - row[2],
                                                           timedelta(milliseconds=1))))
        if row[1] is not None:
            legs["stored_to_first_action"].append(row[1])
            legs["qualified_to_first_action"].append(row[0] + row[1])
    return {key: {leg: (*spread(values), sum(1 for v in values if v <= FIVE_MINUTES_MS))
                  for leg, values in legs.items()} for key, legs in buckets.items()}

