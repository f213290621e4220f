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
    String,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

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
