"""Set-based scoring on PostgreSQL: a model's rules as SQL, for re-scoring many leads at once.

The same rules as `rules.py`, the same caps and decay as `tally.py`, computed by the database
over whole ranges of leads instead of one lead at a time in Python. Caps become window
functions: a rule's points p are the same for every event, so the n-th event of a day (in
time order) may give min(p, day cap − (n−1)·p), and what the days allow is then taken in
time order until the week's cap is reached, which is what giving each event "what is left of
both caps" in time order amounts to.

Used only where it is exact: on PostgreSQL, for documents whose regular expressions are
simple enough to mean the same there (`supported()`); otherwise callers score lead by lead.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Float,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    text,
    true,
    union_all,
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
from nurture.scoring.document import Condition, EventRule, ScoringDocument
from nurture.scoring.rules import ENGAGEMENT, FIT, NEGATIVE

_UNSAFE_PATTERN = re.compile(r"\(\?|\\[AZzGdDsSwW]|\\[0-9]")
"""Regex syntax that PostgreSQL reads otherwise than Python (flags, \\A, \\Z, classes…)."""


def supported(session: Session, document: ScoringDocument) -> bool:
    """Whether the set-based path computes exactly what the lead-by-lead path does."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    conditions = [c for rule in document.fit for c in rule.when] + [
        c for rule in (*document.engagement, *document.negative) for c in rule.where]
    return not any(c.op == "matches" and _UNSAFE_PATTERN.search(str(c.value))
                   for c in conditions)


def _pg_pattern(pattern: str) -> str:
    """Python's word boundary \\b is \\y in PostgreSQL's regular expressions."""
    return re.sub(r"(?<!\\)\\b", r"\\y", pattern)


def _text(value: Any) -> str:
    return str(value).strip().lower()


def _condition(column: ColumnElement[Any], condition: Condition) -> ColumnElement[bool]:
    """`rules.holds` as SQL over a text column."""
    op, expected = condition.op, condition.value
    missing = or_(column.is_(None), column == "")
    if op == "absent":
        return missing
    if op == "present":
        return not_(missing)
    text = func.lower(func.btrim(column))
    if op in ("gte", "lte", "between"):
        number = case((column.regexp_match(r"^\s*[-+]?[0-9]+(\.[0-9]+)?\s*$"),
                       cast(column, Float)), else_=null())
        if op == "gte":
            test = number >= expected
        elif op == "lte":
            test = number <= expected
        else:
            test = number.between(expected[0], expected[1])
        return and_(not_(missing), test.is_(True))
    if op == "not_in":
        return or_(missing, text.not_in([_text(v) for v in expected]))
    if op == "equals":
        test = text == _text(expected)
    elif op == "in":
        test = text.in_([_text(v) for v in expected])
    elif op == "contains":
        test = func.strpos(text, _text(expected)) > 0
    elif op == "contains_any":
        test = or_(*(func.strpos(text, _text(v)) > 0 for v in expected))
    elif op == "starts_with":
        test = func.strpos(text, _text(expected)) == 1
    else:  # matches
        test = column.op("~*")(_pg_pattern(str(expected)))
    return and_(not_(missing), test)


# --- fit ------------------------------------------------------------------------------------

def _lead_column(name: str) -> ColumnElement[Any]:
    if name.startswith("attributes."):
        return Lead.attributes[name.removeprefix("attributes.")].as_string()
    if name == "seniority":
        return Lead.attributes["seniority"].as_string()
    if name == "email_domain":
        return func.split_part(Lead.email, "@", 2)
    if name == "company_size":
        return cast(Lead.company_size, String)
    return getattr(Lead, name)


def fit_rows(document: ScoringDocument, leads: ColumnElement[bool]) -> Any:
    """(lead_id, rule, points) for every fit rule each lead meeting `leads` meets; a subquery."""
    parts = [
        select(Lead.id.label("lead_id"), literal(rule.rule).label("rule"),
               literal(float(rule.points), Float).label("points"))
        .where(leads, *(_condition(_lead_column(c.field), c) for c in rule.when))
        for rule in document.fit
    ]
    if not parts:
        return None
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("fit")


# --- engagement -----------------------------------------------------------------------------

def _event_column(table: Any, name: str) -> ColumnElement[Any]:
    if name.startswith("properties."):
        return table.c.properties[name.removeprefix("properties.")].as_string()
    if name == "collateral":
        return table.c.collateral if "collateral" in table.c else Collateral.key
    return table.c[name]


def _rule_events(rule: EventRule, where: list[ColumnElement[bool]], table: Any) -> Select[Any]:
    source = table
    if any(c.field == "collateral" for c in rule.where) and "collateral" not in table.c:
        source = source.outerjoin(
            CollateralVersion.__table__, CollateralVersion.id == table.c.collateral_version_id,
        ).outerjoin(Collateral.__table__, Collateral.id == CollateralVersion.collateral_id)
    return (
        select(table.c.lead_id, table.c.id, table.c.occurred_at)
        .select_from(source)
        .where(table.c.type.in_(sorted(rule.event_types)),
               true() if rule.include_machine else table.c.is_machine.is_(False),
               *(_condition(_event_column(table, c.field), c) for c in rule.where),
               *where)
    )


def _utc(column: ColumnElement[datetime], unit: str) -> ColumnElement[Any]:
    return func.date_trunc(unit, func.timezone("UTC", column))


def contributions(document: ScoringDocument, where: list[ColumnElement[bool]],
                  table: Any = None) -> Any:
    """(lead_id, event_id, occurred_at, rule, kind, decays, points) for every event of `table`
    (default: engagement_events) matching `where` and a rule, after the rule's caps."""
    table = EngagementEvent.__table__ if table is None else table
    parts = []
    for kind, rules in ((ENGAGEMENT, document.engagement), (NEGATIVE, document.negative)):
        for rule in rules:
            magnitude = abs(rule.points)
            sign = math.copysign(1.0, rule.points)
            events = _rule_events(rule, where, table).subquery()
            cap = rule.cap
            if cap is None or (cap.per_day is None and cap.per_week is None):
                allowed = select(events.c.lead_id, events.c.id, events.c.occurred_at,
                                 literal(magnitude, Float).label("points"))
            else:
                day_rank = func.row_number().over(
                    partition_by=(events.c.lead_id, _utc(events.c.occurred_at, "day")),
                    order_by=(events.c.occurred_at, events.c.id))
                by_day = (
                    func.least(magnitude, func.greatest(0.0, cap.per_day - magnitude
                                                        * (day_rank - 1)))
                    if cap.per_day is not None else literal(magnitude, Float)
                )
                daily = select(events.c.lead_id, events.c.id, events.c.occurred_at,
                               by_day.label("points")).subquery()
                if cap.per_week is None:
                    allowed = select(daily)
                else:
                    before = func.coalesce(func.sum(daily.c.points).over(
                        partition_by=(daily.c.lead_id, _utc(daily.c.occurred_at, "week")),
                        order_by=(daily.c.occurred_at, daily.c.id), rows=(None, -1)), 0.0)
                    allowed = select(
                        daily.c.lead_id, daily.c.id, daily.c.occurred_at,
                        func.least(daily.c.points,
                                   func.greatest(0.0, cap.per_week - before)).label("points"))
            given = allowed.subquery()
            parts.append(
                select(given.c.lead_id, given.c.id.label("event_id"), given.c.occurred_at,
                       literal(rule.rule).label("rule"), literal(kind).label("kind"),
                       literal(rule.decays, Boolean).label("decays"),
                       (given.c.points * sign).label("points"))
                .where(given.c.points > 0)
            )
    if not parts:
        return None
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("given")


def decay_factor(column: ColumnElement[datetime], ref: datetime, half_life_s: float
                 ) -> ColumnElement[float]:
    """2^-(ref - t)/h as SQL."""
    return func.exp(math.log(2) * (func.extract("epoch", column)
                                   - ref.timestamp()) / half_life_s)



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
    session.execute(text("DROP TABLE scoring_targets, scoring_events, scoring_given"))
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
