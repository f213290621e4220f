"""Set-based scoring on PostgreSQL: re-scoring ranges of leads after an activation, and
backtests, in a few statements each, with the rules as SQL (`sql`).

Both give what the lead-by-lead path gives (tests hold them equal); callers use them only
where `supported()` says so.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
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
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable, Select

from nurture.models import (
    EngagementEvent,
    Lead,
    LeadScore,
    LeadScoreRule,
    ScoreLedgerEntry,
)
from nurture.scoring.document import ScoringDocument
from nurture.scoring.rules import FIT
from nurture.scoring.sql import contributions, decay_factor, fit_rows, pick, supported

__all__ = ["backtest_supported", "count_events", "first_crossings",
           "first_crossings_in_parallel", "rescore_range",
           "supported"]


# --- re-scoring a range of leads ------------------------------------------------------------

def rescore_range(session: Session, model_id: int, document: ScoringDocument, first: int,
                  last: int, *, half_life_s: float, now: datetime) -> int:
    """Rebuild, under the model, the scores of the leads with ids in [first, last] not kept
    under it yet; returns how many were rebuilt.

    Their lead rows are locked first (FOR NO KEY UPDATE, in id order: live scoring takes the
    lead rows, then the score rows, in this order, and waits; storing events for them, whose
    foreign key only shares the lead's key, does not). The rules are read once per event and
    once per lead (`sql.contributions`, `sql.fit_rows`) into one table of the rules' shares;
    from it come the score rows (one upsert), the rule rows and the ledger. The ledger gets,
    per lead and rule, one entry for the points from before this ISO week (as worth now),
    one per event of this week (what the caps of this day and week are counted from), and one
    per fit rule met."""
    session.execute(text(f"SET LOCAL work_mem = '{RESCORE_WORK_MEM}'"))
    session.execute(text("DROP TABLE IF EXISTS scoring_targets, scoring_given, scoring_parts"))
    session.execute(text("CREATE TEMP TABLE scoring_targets (lead_id bigint PRIMARY KEY) "
                         "ON COMMIT DROP"))
    targets = session.execute(text(
        "WITH locked AS (SELECT l.id, s.model_id FROM leads l "
        "LEFT JOIN lead_scores s ON s.lead_id = l.id AND s.lead_id BETWEEN :first AND :last "
        "WHERE l.id BETWEEN :first AND :last "
        "ORDER BY l.id FOR NO KEY UPDATE OF l) "
        "INSERT INTO scoring_targets SELECT id FROM locked "
        "WHERE model_id IS DISTINCT FROM :model"),
        {"first": first, "last": last, "model": model_id}).rowcount
    if not targets:
        return 0
    session.execute(text("ANALYZE scoring_targets"))
    # every join to the batch also names the range: the planner then reads only the range
    # of each index instead of merging the batch with a whole table
    in_batch = select(TARGETS.c.lead_id)
    session.execute(delete(LeadScoreRule).where(LeadScoreRule.lead_id.between(first, last),
                                                LeadScoreRule.lead_id.in_(in_batch)))
    events = EngagementEvent.__table__
    given = contributions(
        [document], [events.c.scored_at.is_not(None), events.c.lead_id.between(first, last)],
        events, events.join(TARGETS, TARGETS.c.lead_id == events.c.lead_id))
    week = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=now.weekday())
    at_now = literal(now, LeadScoreRule.last_at.type)
    parts = []
    if given is not None:
        session.execute(CreateTableAs("scoring_given", select(given)))
        worth = case((GIVEN.c.decays,
                      GIVEN.c.points * decay_factor(GIVEN.c.occurred_at, now, half_life_s)),
                     else_=GIVEN.c.points)
        decays = func.bool_or(GIVEN.c.decays)
        parts.append(select(
            GIVEN.c.lead_id, GIVEN.c.rule, func.min(GIVEN.c.kind).label("kind"),
            decays.label("decays"), func.sum(worth).label("value"),
            case((decays, at_now), else_=null()).label("ref_at"),
            func.max(GIVEN.c.occurred_at).label("last_at"),
            func.sum(worth).filter(GIVEN.c.occurred_at < week).label("before"),
        ).group_by(GIVEN.c.lead_id, GIVEN.c.rule))
    fit = fit_rows([document], [Lead.id.between(first, last)],
                   Lead.__table__.join(TARGETS, TARGETS.c.lead_id == Lead.id))
    if fit is not None:
        parts.append(select(fit.c.lead_id, fit.c.rule, literal(FIT).label("kind"),
                            false().label("decays"), fit.c.points.label("value"),
                            cast(null(), LeadScoreRule.ref_at.type).label("ref_at"),
                            at_now.label("last_at"),
                            fit.c.points.label("before")))
    if parts:
        session.execute(CreateTableAs("scoring_parts", union_all(*parts)))
    else:
        session.execute(text("CREATE TEMP TABLE scoring_parts ON COMMIT DROP AS SELECT "
                             "NULL::bigint AS lead_id, NULL::text AS rule, NULL::text AS kind, "
                             "false AS decays, 0.0::float8 AS value, "
                             "NULL::timestamptz AS ref_at, NULL::timestamptz AS last_at, "
                             "0.0::float8 AS before LIMIT 0"))
    kind, value = PARTS.c.kind, PARTS.c.value
    sums = select(
        TARGETS.c.lead_id,
        func.coalesce(func.sum(case((kind == FIT, value))), 0.0).label("fit"),
        func.coalesce(func.sum(case((and_(kind != FIT, PARTS.c.decays), value))), 0.0
                      ).label("decayed"),
        func.coalesce(func.sum(case((and_(kind != FIT, not_(PARTS.c.decays)), value))), 0.0
                      ).label("steady"),
    ).select_from(TARGETS.outerjoin(PARTS, PARTS.c.lead_id == TARGETS.c.lead_id)
                  ).group_by(TARGETS.c.lead_id).order_by(TARGETS.c.lead_id).subquery()
    upsert = insert(LeadScore).from_select(
        ["lead_id", "model_id", "fit", "decayed", "decayed_at", "steady", "fit_checked_at",
         "qualified_at", "updated_at"],
        select(sums.c.lead_id, literal(model_id), sums.c.fit, sums.c.decayed,
               literal(now, LeadScore.decayed_at.type), sums.c.steady,
               literal(now, LeadScore.fit_checked_at.type),
               null(), literal(now, LeadScore.updated_at.type)))
    session.execute(upsert.on_conflict_do_update(
        index_elements=["lead_id"],
        set_={name: upsert.excluded[name] for name in (
            "model_id", "fit", "decayed", "decayed_at", "steady", "fit_checked_at",
            "qualified_at", "updated_at")}))
    session.execute(insert(LeadScoreRule).from_select(
        ["lead_id", "rule", "kind", "decays", "value", "ref_at", "last_at"],
        select(PARTS.c.lead_id, PARTS.c.rule, PARTS.c.kind, PARTS.c.decays, PARTS.c.value,
               PARTS.c.ref_at, PARTS.c.last_at)))
    ledger = [select(PARTS.c.lead_id, literal(model_id).label("model_id"), PARTS.c.rule,
                     PARTS.c.before.label("points"),
                     cast(null(), BigInteger).label("event_id"),
                     at_now.label("occurred_at"), at_now.label("recorded_at"))
              .where(PARTS.c.before.is_not(None))]
    if given is not None:
        ledger.append(select(GIVEN.c.lead_id, literal(model_id), GIVEN.c.rule, GIVEN.c.points,
                             GIVEN.c.event_id, GIVEN.c.occurred_at, at_now)
                      .where(GIVEN.c.occurred_at >= week))
    session.execute(insert(ScoreLedgerEntry).from_select(
        ["lead_id", "model_id", "rule", "points", "event_id", "occurred_at", "recorded_at"],
        union_all(*ledger)))
    session.execute(text("DROP TABLE IF EXISTS scoring_targets, scoring_given, scoring_parts"))
    session.expire_all()
    return targets


RESCORE_WORK_MEM = "256MB"
"""Memory a re-score range's sorts may use (its transaction only): a range's events sort in
memory."""

TARGETS = Table("scoring_targets", MetaData(), Column("lead_id", BigInteger, primary_key=True))
"""The leads of a re-score batch (a temporary table)."""


GIVEN = Table(
    "scoring_given", MetaData(),
    Column("model", Integer), Column("lead_id", BigInteger), Column("event_id", BigInteger),
    Column("occurred_at", EngagementEvent.occurred_at.type), Column("rule", String),
    Column("kind", String), Column("decays", Boolean), Column("points", Float),
)
"""What each event of the batch gave, per rule, after the caps (a temporary table)."""

PARTS = Table(
    "scoring_parts", MetaData(),
    Column("lead_id", BigInteger), Column("rule", String), Column("kind", String),
    Column("decays", Boolean), Column("value", Float),
    Column("ref_at", LeadScoreRule.ref_at.type), Column("last_at", LeadScoreRule.last_at.type),
    Column("before", Float),
)
"""Each rule's share of each lead of the batch: its rule row, and in `before` the ledger's
entry for what came before this week (NULL: none)."""


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


def first_crossings(session: Session, documents: list[ScoringDocument], *, since: datetime,
                    until: datetime, leads: tuple[int, int] | None = None
                    ) -> list[dict[int, datetime]]:
    """For each document and each lead, the first event in [since, until) after which the
    model would have recycled it (it raised the score, and total and fit met the thresholds
    then): one query for all the documents, reading the window's events once.

    The decayed sum at event i is 2^-(t_i-t0)/h · Σ_{j<=i} p_j·2^(t_j-t0)/h: a running sum."""
    session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    found: list[dict[int, datetime]] = [{} for _ in documents]
    window = [EngagementEvent.occurred_at >= since, EngagementEvent.occurred_at < until]
    leads_in: list[Any] = []
    if leads is not None:
        window.append(EngagementEvent.lead_id.between(*leads))
        leads_in.append(Lead.id.between(*leads))
    given = contributions(documents, window)
    if given is None:
        return found

    def per_model(model: Any, value: Any) -> Any:
        return pick(model + 1, Float, [float(value(d)) for d in documents])

    half_life = per_model(given.c.model, lambda d: d.half_life_days * 86_400.0)
    grow = func.exp(math.log(2) * (func.extract("epoch", given.c.occurred_at)
                                   - since.timestamp()) / half_life)
    # a running total per lead and model, in event order: an event's rules are peers in the
    # window (same time and id), so each row sees the total after its whole event
    order = (given.c.occurred_at, given.c.event_id)
    partition = (given.c.model, given.c.lead_id)
    running = select(
        given.c.model, given.c.lead_id, given.c.occurred_at, given.c.points,
        func.sum(case((given.c.decays, given.c.points * grow), else_=0.0))
        .over(partition_by=partition, order_by=order).label("grown"),
        func.sum(case((given.c.decays, 0.0), else_=given.c.points))
        .over(partition_by=partition, order_by=order).label("steady"),
    ).subquery()
    fit = fit_rows(documents, leads_in)
    source: Any = running
    lead_fit: Any = literal(0.0, Float)
    if fit is not None:
        fit_sums = (select(fit.c.model, fit.c.lead_id, func.sum(fit.c.points).label("fit"))
                    .group_by(fit.c.model, fit.c.lead_id).subquery())
        source = source.outerjoin(fit_sums, and_(fit_sums.c.model == running.c.model,
                                                 fit_sums.c.lead_id == running.c.lead_id))
        lead_fit = func.coalesce(fit_sums.c.fit, 0.0)
    shrink = func.exp(-math.log(2) * (func.extract("epoch", running.c.occurred_at)
                                      - since.timestamp())
                      / per_model(running.c.model, lambda d: d.half_life_days * 86_400.0))
    total = lead_fit + running.c.steady + running.c.grown * shrink
    query = (
        select(running.c.model, running.c.lead_id, func.min(running.c.occurred_at))
        .select_from(source)
        .where(running.c.points > 0,  # the event raised the score (a rule gave points)
               lead_fit >= per_model(running.c.model, lambda d: d.thresholds.fit),
               total >= per_model(running.c.model, lambda d: d.thresholds.total))
        .group_by(running.c.model, running.c.lead_id)
    )
    for model, lead_id, at in session.execute(query).tuples():
        found[model][lead_id] = at
    return found


def first_crossings_in_parallel(session: Session, documents: list[ScoringDocument], *,
                                since: datetime, until: datetime, parts: int
                                ) -> list[dict[int, datetime]]:
    """`first_crossings` over `parts` ranges of lead ids at once, each on its own connection
    (the windows are per lead, so ranges are independent), all reading the snapshot of
    `session`: the database's cores work side by side on one backtest."""
    bind = session.get_bind()
    first, last = session.execute(select(func.min(Lead.id), func.max(Lead.id))).one()
    if parts < 2 or not isinstance(bind, Engine) or first is None or first == last:
        return first_crossings(session, documents, since=since, until=until)
    snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    if not re.fullmatch(r"[0-9A-F-]+", snapshot):  # SET takes no parameter: checked, inlined
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    step = (last - first) // parts + 1
    ranges = [(start, min(start + step - 1, last)) for start in range(first, last + 1, step)]

    def part(leads: tuple[int, int]) -> list[dict[int, datetime]]:
        with Session(bind.execution_options(isolation_level="REPEATABLE READ")) as own, \
                own.begin():
            own.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            return first_crossings(own, documents, since=since, until=until, leads=leads)

    found: list[dict[int, datetime]] = [{} for _ in documents]
    with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
        for answer in pool.map(part, ranges):
            for mine, theirs in zip(found, answer, strict=True):
                mine.update(theirs)
    return found


WORK_MEM = "1GB"
"""Memory a backtest's sorts and window functions may use (set for its transaction only)."""


def count_events(session: Session, *, since: datetime, until: datetime) -> int:
    return session.execute(
        select(func.count()).select_from(EngagementEvent)
        .where(EngagementEvent.lead_id.is_not(None), EngagementEvent.occurred_at >= since,
               EngagementEvent.occurred_at < until)
    ).scalar_one()
