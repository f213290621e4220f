"""The funnel's closed cohort months, stored: figures computed once, read until a change.

The funnel's rows are cohort months (the month a lead entered nurture), and a period asks
for whole months (every cohort from the month of its first day to that of its last), so a
month's figures, medians and 90th percentiles included, are the same whatever period asks
for them: they can be stored exactly, with no merging of percentiles.

A month is not closed for good when it ends: its leads go on to engage, qualify, be
accepted and win for months. Every change the funnel sees (a journey started, nurtured,
engaged, recycled, accepted, an outcome) inserts a `report_funnel_touched` row for its
cohort (`nurture.rollups.journeys.funnel_touched`); a month's stored figures are used only
while no such row names it, read in the same statement, so a report never answers stale
figures: a touched month is computed live from its journeys, as the current month always
is. The dispatcher's `funnel_months` task has the `refresh_funnel_months` job store
touched closed months again: one month per transaction, from one snapshot (REPEATABLE READ
on PostgreSQL) that also lists the touched rows it then deletes, so a change committed after
that snapshot keeps its row and its month stays live; two refreshes of one month at once:
the later fails to serialize and leaves it to the next run.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from nurture.db import Database
from nurture.models import ReportFunnelMonth, ReportFunnelTouched, ReportJourney
from nurture.reports.params import GROUPINGS, ReportQuery
from nurture.reports.percentiles import Spread, live_funnel

FUNNEL_GROUPINGS = ("", *GROUPINGS)
"""Every grouping the funnel answers ('' for none): each has its stored row per month."""


def months(first: date, last: date) -> list[date]:
    """The first day of every month from `first`'s to `last`'s, both included."""
    out, at = [], first.replace(day=1)
    while at <= last:
        out.append(at)
        at = date(at.year + (at.month == 12), at.month % 12 + 1, 1)
    return out


def funnel_stats(session: Session, query: ReportQuery) -> dict[tuple[Any, ...], list[Spread]]:
    """(cohort[, group]) → per stage (count, median, p90): stored figures for the months
    untouched since they were stored, computed live for the others."""
    wanted = months(query.period.first_cohort, query.period.end)
    grouping = query.group_by or ""
    stored = session.execute(
        select(ReportFunnelMonth.cohort, ReportFunnelMonth.figures)
        .where(ReportFunnelMonth.cohort.in_(wanted), ReportFunnelMonth.grouping == grouping,
               ~exists().where(ReportFunnelTouched.cohort == ReportFunnelMonth.cohort))
    ).all()
    done = {cohort for cohort, _ in stored}
    stats = live_funnel(session, query.group_by, [m for m in wanted if m not in done])
    for cohort, figures in stored:
        for group, spreads in figures["rows"]:
            stats[(cohort, group) if query.group_by else (cohort,)] = [
                tuple(s) for s in spreads]
    return stats


def stale_months(session: Session, *, today: date) -> list[date]:
    """Closed cohort months touched since their figures were stored (the current month is
    always computed live: it changes all the time)."""
    return list(session.execute(
        select(ReportFunnelTouched.cohort).distinct()
        .where(ReportFunnelTouched.cohort < today.replace(day=1))
        .order_by(ReportFunnelTouched.cohort)
    ).scalars())


def store_month(session: Session, cohort: date) -> None:
    """Compute and store one month's figures for every grouping, and forget the touches
    seen, in the caller's transaction (on PostgreSQL it must be REPEATABLE READ, so the
    figures and the touches deleted come from one snapshot: `refresh_isolation`)."""
    seen = list(session.execute(
        select(ReportFunnelTouched.id).where(ReportFunnelTouched.cohort == cohort)).scalars())
    session.execute(delete(ReportFunnelMonth).where(ReportFunnelMonth.cohort == cohort))
    for grouping in FUNNEL_GROUPINGS:
        stats = live_funnel(session, grouping or None, [cohort])
        rows = [[key[1] if grouping else None, [list(s) for s in spreads]]
                for key, spreads in sorted(stats.items(), key=lambda i: str(i[0]))]
        session.add(ReportFunnelMonth(cohort=cohort, grouping=grouping,
                                      figures={"rows": rows}))
    if seen:
        session.execute(delete(ReportFunnelTouched).where(ReportFunnelTouched.id.in_(seen)))
    session.flush()


def touch_every_month(session: Session) -> None:
    """Forget every stored month and mark each cohort with journeys as touched (after the
    rollups are rebuilt): until refreshed, each month is computed live."""
    session.execute(delete(ReportFunnelMonth))
    session.execute(delete(ReportFunnelTouched))
    session.add_all(ReportFunnelTouched(cohort=c) for c in session.execute(
        select(ReportJourney.cohort).distinct().order_by(ReportJourney.cohort)).scalars())
    session.flush()


def refresh_isolation(session: Session) -> None:
    """Start the caller's transaction as REPEATABLE READ on PostgreSQL (one snapshot for
    the figures and the touches; a concurrent refresh of the month fails to serialize).
    SQLite has one writer at a time and a snapshot per transaction already."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def refresh(database: Database, *, today: date) -> int:
    """Store every stale closed month again, one transaction each; how many were stored (a
    month another refresh holds, or one a writer changed meanwhile, is left to the next)."""
    stored = 0
    with database.session_scope() as session:
        stale = stale_months(session, today=today)
    for cohort in stale:
        try:
            with database.session_scope() as session:
                refresh_isolation(session)
                store_month(session, cohort)
            stored += 1
        except (OperationalError, IntegrityError):
            continue  # serialization failure or a concurrent insert: the other refresh won
    return stored
