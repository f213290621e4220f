"""A scoring model's rules as SQL (PostgreSQL), for scoring many leads at once (`bulk`).

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
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    values,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session

from nurture.models import (
    Collateral,
    CollateralVersion,
    EngagementEvent,
    Lead,
)
from nurture.scoring.document import Condition, EventRule, ScoringDocument
from nurture.scoring.rules import ENGAGEMENT, NEGATIVE

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


# --- fit ---------------------------------------------------------------------------------

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


def _matched(tests: list[ColumnElement[bool]]) -> Any:
    """The 1-based positions of the tests that hold, one row each (a set-returning function
    for a lateral join): each row is read once for all the rules, and yields only the rules
    it meets."""
    positions = array([case((test, literal(i, Integer))) for i, test in enumerate(tests, 1)])
    return func.unnest(func.array_remove(positions, null())).table_valued("idx").render_derived()


def fit_rows(documents: list[ScoringDocument], where: list[ColumnElement[bool]],
             source: Any = None) -> Any:
    """(model, lead_id, rule, points) for every fit rule of each document (`model`: its index
    in `documents`) that each lead meeting `where` meets, in one scan of the leads; a
    subquery, None if no document has a fit rule."""
    rules = [(m, rule) for m, document in enumerate(documents) for rule in document.fit]
    if not rules:
        return None
    hit = _matched([and_(*(_condition(_lead_column(c.field), c) for c in rule.when))
                    for _, rule in rules])
    constants = values(column("idx", Integer), column("model", Integer),
                       column("rule", String), column("points", Float), name="fit_rules",
                       ).data([(i, m, rule.rule, float(rule.points))
                               for i, (m, rule) in enumerate(rules, 1)])
    return (
        select(constants.c.model, Lead.id.label("lead_id"), constants.c.rule,
               cast(constants.c.points, Float).label("points"))
        .select_from(
            (Lead.__table__ if source is None else source).join(hit, true())
            .join(constants, constants.c.idx == hit.c.idx))
        .where(*where)
        .subquery("fit")
    )


# --- engagement -----------------------------------------------------------------------------

def _event_column(table: Any, name: str) -> ColumnElement[Any]:
    if name.startswith("properties."):
        return table.c.properties[name.removeprefix("properties.")].as_string()
    if name == "collateral":
        return table.c.collateral if "collateral" in table.c else Collateral.key
    return table.c[name]


def _event_hits(rules: list[EventRule], table: Any) -> Any:
    """`_matched` for events: an event's type picks the few rules that may apply, whose other
    conditions alone are then evaluated."""
    by_type: dict[str, list[tuple[int, EventRule]]] = {}
    for i, rule in enumerate(rules, 1):
        for event_type in rule.event_types:
            by_type.setdefault(event_type, []).append((i, rule))
    branches = []
    for event_type, candidates in sorted(by_type.items()):
        positions = [
            case((and_(true() if rule.include_machine else table.c.is_machine.is_(False),
                       *(_condition(_event_column(table, c.field), c) for c in rule.where)),
                  literal(i, Integer)))
            for i, rule in candidates]
        branches.append((table.c.type == event_type, array(positions)))
    return func.unnest(func.array_remove(case(*branches), null())
                       ).table_valued("idx").render_derived()


def pick(idx: ColumnElement[int], type_: Any, items: list[Any]) -> ColumnElement[Any]:
    """items[idx - 1] in SQL (an array, not a join: rows stay narrow and in their order)."""
    return array([cast(literal(item, type_), type_) for item in items])[idx]


def _utc(column: ColumnElement[datetime], unit: str) -> ColumnElement[Any]:
    return func.date_trunc(unit, func.timezone("UTC", column))


def contributions(documents: list[ScoringDocument], where: list[ColumnElement[bool]],
                  table: Any = None, source: Any = None) -> Any:
    """(model, lead_id, event_id, occurred_at, rule, kind, decays, points) for every event of
    `table` (default: engagement_events; `source`: it joined to what `where` needs) matching
    `where` and a rule of a document (`model`: its index in `documents`), after the rule's
    caps; a subquery, None if no document has an event rule.

    The events are read once for all the rules of all the documents: each yields a row per
    rule it meets, and the caps of every rule are the same two window functions over them."""
    table = EngagementEvent.__table__ if table is None else table
    rules = [(m, kind, rule) for m, document in enumerate(documents)
             for kind, kind_rules in ((ENGAGEMENT, document.engagement),
                                      (NEGATIVE, document.negative))
             for rule in kind_rules]
    if not rules:
        return None
    source = table if source is None else source
    if any(c.field == "collateral" for _, _, rule in rules for c in rule.where) and (
            "collateral" not in table.c):
        source = source.outerjoin(
            CollateralVersion.__table__, CollateralVersion.id == table.c.collateral_version_id,
        ).outerjoin(Collateral.__table__, Collateral.id == CollateralVersion.collateral_id)
    hit = _event_hits([rule for _, _, rule in rules], table)
    types = sorted({t for _, _, rule in rules for t in rule.event_types})
    machine = [] if any(rule.include_machine for _, _, rule in rules) else [
        table.c.is_machine.is_(False)]

    caps = [rule.cap for _, _, rule in rules]
    magnitude = pick(hit.c.idx, Float, [float(abs(rule.points)) for _, _, rule in rules])
    per_day = pick(hit.c.idx, Float, [c.per_day if c is not None else None for c in caps])
    model = pick(hit.c.idx, Integer, [m for m, _, _ in rules])
    # partitions led by (model, lead): one sort of the rows, in the order the later steps
    # (a lead's running total per model) read them too
    week, day = _utc(table.c.occurred_at, "week"), _utc(table.c.occurred_at, "day")
    day_rank = func.row_number().over(
        partition_by=(model, table.c.lead_id, hit.c.idx, week, day),
        order_by=(table.c.occurred_at, table.c.id))
    daily = (
        select(model.label("model"), table.c.lead_id, hit.c.idx, week.label("week"),
               day.label("day"), table.c.id.label("event_id"), table.c.occurred_at,
               case((per_day.is_(None), magnitude),
                    else_=func.least(magnitude, func.greatest(
                        0.0, per_day - magnitude * (day_rank - 1)))).label("points"))
        .select_from(source.join(hit, true()))
        .where(table.c.lead_id.is_not(None), table.c.type.in_(types), *machine, *where)
        .subquery("daily")
    )
    per_week = pick(daily.c.idx, Float, [c.per_week if c is not None else None for c in caps])
    # ordered by day too (as it is, within a week): the same sort as the day's window
    before = func.coalesce(func.sum(daily.c.points).over(
        partition_by=(daily.c.model, daily.c.lead_id, daily.c.idx, daily.c.week),
        order_by=(daily.c.day, daily.c.occurred_at, daily.c.event_id), rows=(None, -1)), 0.0)
    allowed = select(
        daily.c.model, daily.c.lead_id, daily.c.idx, daily.c.event_id, daily.c.occurred_at,
        case((per_week.is_(None), daily.c.points),
             else_=func.least(daily.c.points, func.greatest(0.0, per_week - before))
             ).label("points"),
    ).subquery("allowed")
    idx = allowed.c.idx
    sign = pick(idx, Float, [math.copysign(1.0, rule.points) for _, _, rule in rules])
    return (
        select(allowed.c.model, allowed.c.lead_id, allowed.c.event_id, allowed.c.occurred_at,
               pick(idx, String, [rule.rule for _, _, rule in rules]).label("rule"),
               pick(idx, String, [kind for _, kind, _ in rules]).label("kind"),
               pick(idx, Boolean, [rule.decays for _, _, rule in rules]).label("decays"),
               (allowed.c.points * sign).label("points"))
        .where(allowed.c.points > 0)
        .subquery("given")
    )


def decay_factor(column: ColumnElement[datetime], ref: datetime, half_life_s: float
                 ) -> ColumnElement[float]:
    """2^-(ref - t)/h as SQL."""
    return func.exp(math.log(2) * (func.extract("epoch", column)
                                   - ref.timestamp()) / half_life_s)
