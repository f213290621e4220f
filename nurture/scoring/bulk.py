"""Set-based scoring on PostgreSQL: re-scoring ranges of leads after an activation, and
backtests, in a few statements each, with the rules as SQL (`sql`).

Both give what the lead-by-lead path gives (tests hold them equal); callers use them only
where `supported()` says so.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    false,
    func,
    literal,
    not_,
    null,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable, Select

from nurture.models import (
    Collateral,
    CollateralVersion,
    EngagementEvent,
    Lead,
    LeadScore,
    LeadScoreRule,
    ScoreLedgerEntry,
)
from nurture.scoring.document import ScoringDocument
from nurture.scoring.rules import FIT
from nurture.scoring.sql import contributions, decay_factor, fit_rows, supported

__all__ = ["backtest_supported", "count_events", "first_crossings", "rescore_leads",
           "supported"]


# --- re-scoring a range of leads ------------------------------------------------------------

def rescore_leads(session: Session, model_id: int, document: ScoringDocument,
                  lead_ids: list[int], *, half_life_s: float, now: datetime) -> int:
    """Rebuild the scores of these leads (those not kept under the model yet) under it, in a
    few statements; returns how many were rebuilt. Locks their score rows in id order (the
    order live scoring takes them in). The ledger gets, per lead and rule, one entry for the
    points from before this ISO week (as worth now) and one per event of this week (what
    the caps of this day and week are counted from)."""
    session.execute(
        insert(LeadScore).from_select(
            ["lead_id", "fit", "decayed", "steady", "updated_at"],
            select(Lead.id, literal(0.0, Float), literal(0.0, Float), literal(0.0, Float),
                   literal(now, LeadScore.updated_at.type))
            .where(Lead.id.between(lead_ids[0], lead_ids[-1])),
        ).on_conflict_do_nothing(index_elements=["lead_id"])
    )
    targets = session.execute(
        select(LeadScore.lead_id)
        .where(LeadScore.lead_id.between(lead_ids[0], lead_ids[-1]),
               LeadScore.model_id.is_distinct_from(model_id))
        .order_by(LeadScore.lead_id).with_for_update()
    ).scalars().all()
    if not targets:
        return 0
    # the batch as temporary tables: joins, where `= ANY(array)` of 20,000 ids would be
    # checked row by row, and the batch's events read once for all the rules
    session.execute(text("DROP TABLE IF EXISTS scoring_targets, scoring_events, scoring_given"))
    session.execute(text(
        "CREATE TEMP TABLE scoring_targets ON COMMIT DROP AS "
        "SELECT unnest(CAST(:ids AS bigint[])) AS lead_id"), {"ids": list(targets)})
    session.execute(text("ALTER TABLE scoring_targets ADD PRIMARY KEY (lead_id)"))
    session.execute(text("ANALYZE scoring_targets"))
    in_batch = select(TARGETS.c.lead_id)
    session.execute(CreateTableAs("scoring_events", select(
        EngagementEvent.lead_id, EngagementEvent.id, EngagementEvent.occurred_at,
        EngagementEvent.type, EngagementEvent.is_machine, EngagementEvent.url,
        EngagementEvent.source, EngagementEvent.bounce_class, EngagementEvent.properties,
        Collateral.key.label("collateral"),
    ).select_from(
        EngagementEvent.__table__.join(TARGETS, TARGETS.c.lead_id == EngagementEvent.lead_id)
        .outerjoin(CollateralVersion.__table__,
                   CollateralVersion.id == EngagementEvent.collateral_version_id)
        .outerjoin(Collateral.__table__, Collateral.id == CollateralVersion.collateral_id)
    ).where(EngagementEvent.scored_at.is_not(None))))
    session.execute(delete(LeadScoreRule).where(LeadScoreRule.lead_id.in_(in_batch)))
    week = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=now.weekday())
    rule_columns = ["lead_id", "rule", "kind", "decays", "value", "ref_at", "last_at"]
    fit = fit_rows(document, Lead.id.in_(in_batch))
    if fit is not None:
        session.execute(insert(LeadScoreRule).from_select(rule_columns, select(
            fit.c.lead_id, fit.c.rule, literal(FIT), false(), fit.c.points,
            null(), literal(now, LeadScoreRule.last_at.type))))
    given = contributions(document, [], _events_table(document))
    ledger_columns = ["lead_id", "model_id", "rule", "points", "event_id", "occurred_at",
                      "recorded_at"]
    at_now = literal(now, ScoreLedgerEntry.recorded_at.type)
    if given is not None:
        session.execute(CreateTableAs("scoring_given", select(given)))
        table = Table("scoring_given", MetaData(), *(
            Column(c.name, c.type) for c in given.c))
        worth = case((table.c.decays, table.c.points
                      * decay_factor(table.c.occurred_at, now, half_life_s)),
                     else_=table.c.points)
        session.execute(insert(LeadScoreRule).from_select(rule_columns, select(
            table.c.lead_id, table.c.rule, func.min(table.c.kind), func.bool_or(table.c.decays),
            func.sum(worth),
            case((func.bool_or(table.c.decays), literal(now, LeadScoreRule.ref_at.type)),
                 else_=null()),
            func.max(table.c.occurred_at),
        ).group_by(table.c.lead_id, table.c.rule)))
        session.execute(insert(ScoreLedgerEntry).from_select(ledger_columns, select(
            table.c.lead_id, literal(model_id), table.c.rule, func.sum(worth), null(),
            at_now, at_now,
        ).where(table.c.occurred_at < week).group_by(table.c.lead_id, table.c.rule)))
        session.execute(insert(ScoreLedgerEntry).from_select(ledger_columns, select(
            table.c.lead_id, literal(model_id), table.c.rule, table.c.points,
            table.c.event_id, table.c.occurred_at, at_now,
        ).where(table.c.occurred_at >= week)))
    if fit is not None:
        session.execute(insert(ScoreLedgerEntry).from_select(ledger_columns, select(
            LeadScoreRule.lead_id, literal(model_id), LeadScoreRule.rule, LeadScoreRule.value,
            null(), at_now, at_now,
        ).where(LeadScoreRule.lead_id.in_(in_batch), LeadScoreRule.kind == FIT)))
    session.execute(
        update(LeadScore).where(LeadScore.lead_id.in_(in_batch))
        .values(model_id=model_id, fit=0.0, decayed=0.0, steady=0.0, decayed_at=now,
                fit_checked_at=now, qualified_at=None, updated_at=now)
    )
    kind, decays, value = LeadScoreRule.kind, LeadScoreRule.decays, LeadScoreRule.value
    sums = select(
        LeadScoreRule.lead_id,
        func.sum(case((kind == FIT, value), else_=0.0)).label("fit"),
        func.sum(case((and_(kind != FIT, decays), value), else_=0.0)).label("decayed"),
        func.sum(case((and_(kind != FIT, not_(decays)), value), else_=0.0)).label("steady"),
    ).where(LeadScoreRule.lead_id.in_(in_batch)).group_by(
        LeadScoreRule.lead_id).subquery()
    session.execute(
        update(LeadScore).where(LeadScore.lead_id == sums.c.lead_id)
        .values(fit=sums.c.fit, decayed=sums.c.decayed, steady=sums.c.steady)
    )
    session.execute(text("DROP TABLE IF EXISTS scoring_targets, scoring_events, scoring_given"))
    session.expire_all()
    return len(targets)


TARGETS = Table("scoring_targets", MetaData(), Column("lead_id", BigInteger, primary_key=True))
"""The leads of a re-score batch (a temporary table)."""


def _events_table(document: ScoringDocument) -> Table:
    """The batch's events (a temporary table), with the key of their collateral."""
    return Table(
        "scoring_events", MetaData(),
        Column("lead_id", BigInteger), Column("id", BigInteger),
        Column("occurred_at", EngagementEvent.occurred_at.type),
        Column("type", EngagementEvent.type.type), Column("is_machine", Boolean),
        Column("url", String), Column("source", String), Column("bounce_class", String),
        Column("properties", EngagementEvent.properties.type), Column("collateral", String),
    )


class CreateTableAs(Executable, ClauseElement):
    """CREATE TEMP TABLE … ON COMMIT DROP AS <select>."""

    inherit_cache = False

    def __init__(self, name: str, query: Select[Any]) -> None:
        self.name = name
        self.query = query


@compiles(CreateTableAs, "postgresql")
def _create_table_as(element: CreateTableAs, compiler: Any, **kw: Any) -> str:
    return (f"CREATE TEMP TABLE {element.name} ON COMMIT DROP AS "
            f"{compiler.process(element.query, **kw)}")


# --- backtests ------------------------------------------------------------------------------

MAX_DECAY_SPAN = 500.0
"""Half-lives a set-based backtest window may span (2^500 is still a float)."""


def backtest_supported(session: Session, document: ScoringDocument, *, days: int) -> bool:
    return (supported(session, document)
            and days / document.half_life_days <= MAX_DECAY_SPAN)


def first_crossings(session: Session, document: ScoringDocument, *, since: datetime,
                    until: datetime, half_life_s: float) -> dict[int, datetime]:
    """For each lead, the first event in [since, until) after which the model would have
    recycled it (it raised the score, and total and fit met the thresholds then).

    The decayed sum at event i is 2^-(t_i-t0)/h · Σ_{j<=i} p_j·2^(t_j-t0)/h: a running sum."""
    window = [EngagementEvent.lead_id.is_not(None), EngagementEvent.occurred_at >= since,
              EngagementEvent.occurred_at < until]
    given = contributions(document, window)
    if given is None:
        return {}
    grow = func.exp(math.log(2) * (func.extract("epoch", given.c.occurred_at)
                                   - since.timestamp()) / half_life_s)
    per_event = select(
        given.c.lead_id, given.c.event_id, given.c.occurred_at,
        func.sum(case((given.c.decays, given.c.points * grow), else_=0.0)).label("grown"),
        func.sum(case((given.c.decays, 0.0), else_=given.c.points)).label("steady"),
        func.bool_or(given.c.points > 0).label("raised"),
    ).group_by(given.c.lead_id, given.c.event_id, given.c.occurred_at).subquery()
    order = (per_event.c.occurred_at, per_event.c.event_id)
    running = select(
        per_event.c.lead_id, per_event.c.occurred_at, per_event.c.raised,
        func.sum(per_event.c.grown).over(partition_by=per_event.c.lead_id, order_by=order)
        .label("grown"),
        func.sum(per_event.c.steady).over(partition_by=per_event.c.lead_id, order_by=order)
        .label("steady"),
    ).subquery()
    fit = fit_rows(document, Lead.id.in_(
        select(EngagementEvent.lead_id).where(*window).distinct().scalar_subquery()))
    fit_sums = (select(fit.c.lead_id, func.sum(fit.c.points).label("fit"))
                .group_by(fit.c.lead_id).subquery() if fit is not None else None)
    lead_fit = (func.coalesce(fit_sums.c.fit, 0.0) if fit_sums is not None
                else literal(0.0, Float))
    shrink = func.exp(-math.log(2) * (func.extract("epoch", running.c.occurred_at)
                                      - since.timestamp()) / half_life_s)
    total = lead_fit + running.c.steady + running.c.grown * shrink
    thresholds = document.thresholds
    query = select(running.c.lead_id, func.min(running.c.occurred_at))
    if fit_sums is not None:
        query = query.select_from(
            running.outerjoin(fit_sums, fit_sums.c.lead_id == running.c.lead_id))
    query = query.where(running.c.raised, lead_fit >= thresholds.fit,
                        total >= thresholds.total).group_by(running.c.lead_id)
    return dict(session.execute(query).tuples().all())


def count_events(session: Session, *, since: datetime, until: datetime) -> int:
    return session.execute(
        select(func.count()).select_from(EngagementEvent)
        .where(EngagementEvent.lead_id.is_not(None), EngagementEvent.occurred_at >= since,
               EngagementEvent.occurred_at < until)
    ).scalar_one()
