"""Live scoring: stored events and profile changes update their leads' scores at once.

Each lead's `LeadScore` row is locked while it changes, so two workers never interleave on
one lead (caps and sums stay right under a flood). An event is scored once: its `scored_at`
is set in the same transaction, rows are taken with SKIP LOCKED, and the ledger refuses an
(event, rule, model) twice. A lead whose score was kept under another model is rebuilt from
its scored history first (after activation, the background re-score in
`nurture.scoring.rescoring` does the same for every lead; whichever comes first wins, under the
row lock).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    cast,
    column,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from nurture.clock import iso as _iso
from nurture.db import one_of
from nurture.handoffs.services import recycle
from nurture.models import (
    Collateral,
    CollateralVersion,
    EngagementEvent,
    Lead,
    LeadScore,
    LeadScoreRule,
    ScoreLedgerEntry,
    ScoringModel,
)
from nurture.scoring.document import ScoringDocument
from nurture.scoring.lifecycle import active_model, document_of
from nurture.scoring.rules import EventFacts, fit_points, lead_facts, matching_rules
from nurture.scoring.tally import DAY, CapBook, Part, Tally, UsageLoader, week_start

DAY_S = 86_400.0


@dataclass(frozen=True)
class Scored:
    events: int
    leads: int
    qualified: int
    recycled: int


def half_life_s(document: ScoringDocument) -> float:
    return document.half_life_days * DAY_S


# --- reading events -------------------------------------------------------------------------

EVENT_COLUMNS = (
    EngagementEvent.id, EngagementEvent.lead_id, EngagementEvent.type,
    EngagementEvent.occurred_at, EngagementEvent.is_machine, EngagementEvent.url,
    EngagementEvent.collateral_version_id, EngagementEvent.source,
    EngagementEvent.bounce_class, EngagementEvent.properties, EngagementEvent.received_at,
)


def event_facts(session: Session, rows: Iterable[Any]) -> list[EventFacts]:
    rows = list(rows)
    versions = {r.collateral_version_id for r in rows if r.collateral_version_id is not None}
    keys: dict[int, str] = {}
    if versions:
        keys = dict(session.execute(
            select(CollateralVersion.id, Collateral.key)
            .join(Collateral, Collateral.id == CollateralVersion.collateral_id)
            .where(one_of(session, CollateralVersion.id, versions))
        ).tuples().all())
    return [
        EventFacts(
            id=r.id, lead_id=r.lead_id, type=r.type, occurred_at=r.occurred_at,
            is_machine=bool(r.is_machine), url=r.url,
            collateral=keys.get(r.collateral_version_id) if r.collateral_version_id else None,
            source=r.source, bounce_class=r.bounce_class, properties=r.properties or {},
            received_at=r.received_at,
        )
        for r in rows
    ]


# --- leads under the active model, a batch at a time -----------------------------------------

LEAD_COLUMNS = (
    Lead.id, Lead.email, Lead.title, Lead.industry, Lead.company_size, Lead.country,
    Lead.source, Lead.company, Lead.attributes, Lead.updated_at,
)
"""What fit rules look at (`rules.lead_facts`), and when the profile last changed."""

SCORE_COLUMNS = (
    LeadScore.lead_id, LeadScore.model_id, LeadScore.fit, LeadScore.decayed,
    LeadScore.decayed_at, LeadScore.steady, LeadScore.fit_checked_at, LeadScore.qualified_at,
)

EVENTS: Table = EngagementEvent.__table__  # type: ignore[assignment]
LEADS: Table = Lead.__table__  # type: ignore[assignment]
SCORES: Table = LeadScore.__table__  # type: ignore[assignment]
RULES: Table = LeadScoreRule.__table__  # type: ignore[assignment]
LEDGER: Table = ScoreLedgerEntry.__table__  # type: ignore[assignment]
"""The tables themselves, not the ORM entities: a batch's rows are read and written as plain
values (the ORM's loading and bulk paths cost several times as much per row)."""


def _core(columns: Iterable[Any]) -> list[Any]:
    """The tables' columns for these ORM attributes (a Core SELECT: rows without the ORM)."""
    return [attribute.class_.__table__.c[attribute.key] for attribute in columns]

RULE_COLUMNS = (
    LeadScoreRule.lead_id, LeadScoreRule.rule, LeadScoreRule.kind, LeadScoreRule.decays,
    LeadScoreRule.value, LeadScoreRule.ref_at, LeadScoreRule.last_at,
)


@dataclass
class _Lead:
    """A locked lead score, loaded into a tally, and what to write back. Plain values (no ORM
    objects): a batch of a thousand leads is read and written with a few statements."""

    lead_id: int
    model_id: int
    lead: Any
    """The lead's row (`LEAD_COLUMNS`)."""
    tally: Tally
    caps: CapBook | None = None
    """A rebuilt lead's caps, holding what its history used (None: read from the ledger)."""
    fit_before: float | None = None
    """The stored fit before this transaction, if it was kept under the same model."""
    fit_checked_at: datetime | None = None
    qualified_at: datetime | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)


def lock_lead(session: Session, lead_id: int, model: ScoringModel, document: ScoringDocument,
              *, now: datetime) -> _Lead:
    """Lock (creating it if need be) the lead's score; see `_lock_many`."""
    return _lock_many(session, [lead_id], model, document, now=now)[lead_id]


def _lock_many(session: Session, lead_ids: Iterable[int], model: ScoringModel,
               document: ScoringDocument, *, now: datetime) -> dict[int, _Lead]:
    """Lock (creating them if need be) the leads' scores, each rebuilt if it was kept under
    another model, its fit evaluated again if the profile changed since. Lead rows are locked
    first, then score rows, each in id order (every writer takes them in this order: no
    deadlock); a batch of leads costs the same few statements as one. The locks are FOR NO
    KEY UPDATE: they exclude every other writer of these rows, but not the key-share lock a
    request storing new events for these leads takes (its foreign key check), so ingest never
    waits for a batch to commit. A lead that no longer
    exists is left out."""
    ids = sorted(set(lead_ids))
    leads = {row.id: row for row in session.execute(
        select(*_core(LEAD_COLUMNS)).where(one_of(session, LEADS.c.id, ids))
        .order_by(LEADS.c.id).with_for_update(key_share=True)
    )}
    ids = [lead_id for lead_id in ids if lead_id in leads]
    if not ids:
        return {}
    _insert_rows(session, SCORES, [
        {"lead_id": lead_id, "model_id": None, "fit": 0.0, "decayed": 0.0, "steady": 0.0,
         "updated_at": now} for lead_id in ids], conflict=["lead_id"])
    scores = {row.lead_id: row for row in session.execute(
        select(*_core(SCORE_COLUMNS)).where(one_of(session, SCORES.c.lead_id, ids))
        .order_by(SCORES.c.lead_id).with_for_update(key_share=True)
    )}
    h = half_life_s(document)
    current = [lead_id for lead_id in ids if scores[lead_id].model_id == model.id]
    parts: dict[int, dict[str, Part]] = defaultdict(dict)
    if current:
        for r in session.execute(
            select(*_core(RULE_COLUMNS)).where(one_of(session, RULES.c.lead_id, current))
        ):
            parts[r.lead_id][r.rule] = Part(kind=r.kind, decays=r.decays, value=r.value,
                                            ref_at=r.ref_at, last_at=r.last_at)
    states: dict[int, _Lead] = {}
    for lead_id in current:
        score, lead = scores[lead_id], leads[lead_id]
        state = states[lead_id] = _Lead(
            lead_id=lead_id, model_id=model.id, lead=lead,
            tally=Tally(half_life_s=h, fit=score.fit, decayed=score.decayed,
                        decayed_at=score.decayed_at, steady=score.steady,
                        parts=parts[lead_id]),
            fit_before=score.fit, fit_checked_at=score.fit_checked_at,
            qualified_at=score.qualified_at,
        )
        if score.fit_checked_at is None or lead.updated_at > score.fit_checked_at:
            _refit(state, model, document, now=now)
    stale = [lead_id for lead_id in ids if lead_id not in states]
    if stale:
        states.update(_rebuild_many(session, [leads[lead_id] for lead_id in stale], model,
                                    document, now=now))
    return states


def _refit(state: _Lead, model: ScoringModel, document: ScoringDocument, *,
           now: datetime) -> None:
    changes = state.tally.set_fit(fit_points(document, lead_facts(state.lead)), now)
    for rule, points in changes.items():
        state.ledger.append({"lead_id": state.lead_id, "model_id": model.id, "rule": rule,
                             "points": points, "event_id": None, "occurred_at": now,
                             "recorded_at": now})
    state.fit_checked_at = now


def _rebuild_many(session: Session, leads: list[Any], model: ScoringModel,
                  document: ScoringDocument, *, now: datetime) -> dict[int, _Lead]:
    """The leads' scores under `model` from scratch: fit now, and every event scored so far
    (events not scored yet are left to the job that will score them). Their rule rows are
    deleted and their histories read with one statement each, whatever the number of leads."""
    ids = [lead.id for lead in leads]
    session.execute(delete(RULES).where(one_of(session, RULES.c.lead_id, ids)))
    history: dict[int, list[EventFacts]] = defaultdict(list)
    for event in event_facts(session, session.execute(
        select(*_core(EVENT_COLUMNS))
        .where(one_of(session, EVENTS.c.lead_id, ids), EVENTS.c.scored_at.is_not(None))
        .order_by(EVENTS.c.occurred_at, EVENTS.c.id)
    )):
        history[event.lead_id].append(event)
    states: dict[int, _Lead] = {}
    for lead in leads:
        state = states[lead.id] = _Lead(lead_id=lead.id, model_id=model.id, lead=lead,
                                        tally=Tally(half_life_s=half_life_s(document)),
                                        caps=CapBook())
        _refit(state, model, document, now=now)
        _apply(state, model, document, history[lead.id], state.caps, now=now)
        for part in state.tally.parts.values():
            part.changed = True  # every rule row is written again
    return states


def _apply(state: _Lead, model: ScoringModel, document: ScoringDocument,
           events: Iterable[EventFacts], caps: CapBook, *, now: datetime) -> EventFacts | None:
    """Score the events; returns the last event that raised the score (None: none did)."""
    raised: EventFacts | None = None
    for event in events:
        for rule, kind in matching_rules(document, event):
            points = caps.allow(rule, event.occurred_at)
            if points == 0:
                continue
            state.tally.add(rule.rule, kind, rule.decays, points, event.occurred_at)
            state.ledger.append({"lead_id": state.lead_id, "model_id": model.id,
                                 "rule": rule.rule, "points": points, "event_id": event.id,
                                 "occurred_at": event.occurred_at, "recorded_at": now})
            if points > 0:
                raised = event
    return raised


def _ledger_usage(session: Session, lead_ids: list[int], model_id: int,
                  events: list[EventFacts]) -> dict[int, UsageLoader]:
    """What capped rules already gave each lead in the weeks of these events (one query)."""
    if not events or not lead_ids:
        return {}
    start = week_start(min(e.occurred_at for e in events))
    end = week_start(max(e.occurred_at for e in events)) + 7 * DAY
    given: dict[tuple[int, str], list[tuple[datetime, float]]] = defaultdict(list)
    for lead_id, rule, points, at in session.execute(
        select(ScoreLedgerEntry.lead_id, ScoreLedgerEntry.rule, ScoreLedgerEntry.points,
               ScoreLedgerEntry.occurred_at)
        .where(one_of(session, ScoreLedgerEntry.lead_id, lead_ids),
               ScoreLedgerEntry.model_id == model_id, ScoreLedgerEntry.event_id.is_not(None),
               ScoreLedgerEntry.occurred_at >= start, ScoreLedgerEntry.occurred_at < end)
    ).tuples():
        given[(lead_id, rule)].append((at, abs(points)))

    def loader(lead_id: int) -> UsageLoader:
        def load(rule: str, first: datetime, last: datetime) -> float:
            return sum(p for at, p in given.get((lead_id, rule), ()) if first <= at < last)
        return load

    return {lead_id: loader(lead_id) for lead_id in lead_ids}


def save_lead(session: Session, state: _Lead, *, now: datetime) -> None:
    _save_many(session, [state], now=now)


def _save_many(session: Session, states: list[_Lead], *, now: datetime) -> None:
    """Write the scores, their changed rule rows and the ledger entries back: one statement
    each, whatever the number of leads."""
    if not states:
        return
    _update_rows(session, SCORES, "lead_id", [
        {"lead_id": state.lead_id, "model_id": state.model_id, "fit": state.tally.fit,
         "decayed": state.tally.decayed, "decayed_at": state.tally.decayed_at,
         "steady": state.tally.steady, "fit_checked_at": state.fit_checked_at,
         "qualified_at": state.qualified_at, "updated_at": now} for state in states])
    rules: list[dict[str, Any]] = []
    ledger: list[dict[str, Any]] = []
    for state in states:
        for name, part in state.tally.parts.items():
            if part.changed:
                rules.append({"lead_id": state.lead_id, "rule": name, "kind": part.kind,
                              "decays": part.decays, "value": part.value,
                              "ref_at": part.ref_at, "last_at": part.last_at})
                part.changed = False
        ledger.extend(state.ledger)
        state.ledger = []
    _insert_rows(session, RULES, rules, conflict=["lead_id", "rule"],
                 overwrite=("kind", "decays", "value", "ref_at", "last_at"))
    _insert_rows(session, LEDGER, ledger, conflict=["model_id", "event_id", "rule"])


# --- many rows in one statement -------------------------------------------------------------

def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _columns(table: Table, rows: list[dict[str, Any]]) -> Any:
    """The rows as one JSON parameter read back as a relation (PostgreSQL's
    `json_to_recordset`): one statement to parse, plan and run for the whole batch, and one
    value to send (the driver's array dumping costs microseconds a value; JSON is encoded in
    C)."""
    names = list(rows[0])
    document = json.dumps([
        {name: value.isoformat() if isinstance(value, datetime) else value
         for name, value in row.items()}
        for row in rows
    ])
    return (func.json_to_recordset(cast(bindparam("rows", document, type_=Text), JSON))
            .table_valued(*[column(name, _plain(table.c[name].type)) for name in names])
            .render_derived(name="given", with_types=True))


def _plain(type_: Any) -> Any:
    return type_.impl if isinstance(type_, TypeDecorator) else type_


def _insert_rows(session: Session, table: Table, rows: list[dict[str, Any]], *,
                 conflict: list[str], overwrite: tuple[str, ...] = ()) -> None:
    """INSERT the rows; one that conflicts on `conflict` is skipped, or has its `overwrite`
    columns set. PostgreSQL: one statement of column arrays; SQLite: an executemany."""
    if not rows:
        return
    if _postgresql(session):
        given = _columns(table, rows)
        statement: Any = pg_insert(table).from_select(
            list(rows[0]), select(*[given.c[name] for name in rows[0]]))
    else:
        statement = sqlite_insert(table)
    if overwrite:
        statement = statement.on_conflict_do_update(
            index_elements=conflict, set_={name: statement.excluded[name] for name in overwrite})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=conflict)
    if _postgresql(session):
        session.execute(statement)
    else:
        session.execute(statement, rows)


def _update_rows(session: Session, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """UPDATE each row found by `key` with the other values (as `_insert_rows`)."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    if _postgresql(session):
        given = _columns(table, rows)
        session.execute(update(table).where(table.c[key] == given.c[key])
                        .values({name: given.c[name] for name in names}))
        return
    session.execute(
        update(table).where(table.c[key] == bindparam(f"b_{key}"))
        .values({name: bindparam(f"b_{name}") for name in names}),
        [{f"b_{name}": value for name, value in row.items()} for row in rows],
    )


def _qualifies(state: _Lead, document: ScoringDocument, *, now: datetime) -> bool:
    thresholds = document.thresholds
    return (state.tally.total(now) >= thresholds.total
            and state.tally.fit >= thresholds.fit)


def _qualified_at(event: EventFacts | None, now: datetime) -> datetime:
    """The lead qualified when the event that raised its score was stored (what the
    handoff's latency is measured from)."""
    return min(now, event.received_at) if event and event.received_at else now


def _recycle(session: Session, state: _Lead, model: ScoringModel, *,
             event: EventFacts | None, now: datetime) -> bool:
    """The lead crossed the thresholds (its `qualified_at` is saved): hand it to
    `nurture.handoffs` (which decides whether it may go to sales now). True if a handoff
    was made."""
    handoff = recycle(
        session, state.lead_id, score=score_of(state.tally, model, now=now),
        model_version_id=model.id, qualifying_event_id=event.id if event else None,
        qualified_at=state.qualified_at or now, now=now,
    )
    return handoff is not None


def score_of(tally: Tally, model: ScoringModel | None, *, now: datetime) -> dict[str, Any]:
    """The CONTRACT shape: {total, fit, engagement, model_version, explanation}."""
    return {
        "total": round(tally.total(now), 2),
        "fit": round(tally.fit, 2),
        "engagement": round(tally.engagement(now), 2),
        "model_version": model.version if model is not None else None,
        "explanation": [
            {**item, "at": _iso(item["at"])}  # type: ignore[arg-type]
            for item in tally.explanation(now)
        ],
    }


# --- services -------------------------------------------------------------------------------

def score_events(session: Session, first_id: int, last_id: int, *, now: datetime) -> Scored:
    """Score the stored, not yet scored events with ids in [first_id, last_id]; a lead that
    crosses the thresholds is handed to `nurture.handoffs`."""
    rows = session.execute(
        select(*_core(EVENT_COLUMNS))
        .where(EVENTS.c.id.between(first_id, last_id), EVENTS.c.scored_at.is_(None))
        .order_by(EVENTS.c.id)
        .with_for_update(skip_locked=True)
    ).all()
    return score_rows(session, rows, now=now)


def score_waiting(session: Session, *, now: datetime, limit: int = 500) -> Scored:
    """Score the events handed on but not scored yet, oldest first, up to `limit`: opens and
    clicks of our own links are handed on inside their request, and the job their request
    kicks scores them here (the dispatcher's sweep is the fallback)."""
    rows = session.execute(
        select(*_core(EVENT_COLUMNS))
        .where(EVENTS.c.scored_at.is_(None), EVENTS.c.handled_at.is_not(None))
        .order_by(EVENTS.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return score_rows(session, rows, now=now)


def score_claimed(session: Session, event_ids: Iterable[int], *, now: datetime,
                  mark: bool = True) -> Scored:
    """Score the events of `event_ids` not scored yet, which this transaction has locked
    (`nurture.engagement.handling` claimed them): one batch, however many. `mark=False`
    leaves setting their `scored_at` to the caller (handling marks them handled and scored
    with one statement)."""
    ids = sorted(event_ids)
    if not ids:
        return Scored(0, 0, 0, 0)
    rows = session.execute(
        select(*_core(EVENT_COLUMNS))
        .where(one_of(session, EVENTS.c.id, ids), EVENTS.c.scored_at.is_(None))
        .order_by(EVENTS.c.id)
        .with_for_update()
    ).all()
    return score_rows(session, rows, now=now, mark=mark)


def score_rows(session: Session, rows: list[Any], *, now: datetime, mark: bool = True) -> Scored:
    """Score these locked, unscored events (`EVENT_COLUMNS` rows) as one batch: the leads'
    scores are locked, read, updated and written back with a handful of statements whatever
    the number of events; each lead that crosses the thresholds is handed on."""
    if not rows:
        return Scored(0, 0, 0, 0)
    model = active_model(session)
    lead_ids = sorted({row.lead_id for row in rows if row.lead_id is not None})
    qualified = recycled = 0
    if model is not None and lead_ids:
        document = document_of(model)
        states = _lock_many(session, lead_ids, model, document, now=now)
        facts = event_facts(session, [r for r in rows if r.lead_id in states])
        usage = _ledger_usage(session, [i for i in states if states[i].caps is None],
                              model.id, facts)
        events: dict[int, list[EventFacts]] = defaultdict(list)
        for event in sorted(facts, key=lambda e: (e.occurred_at, e.id)):
            events[event.lead_id].append(event)
        raised: dict[int, EventFacts] = {}
        for lead_id, state in states.items():
            caps = state.caps if state.caps is not None else CapBook(usage.get(lead_id))
            event = _apply(state, model, document, events[lead_id], caps, now=now)
            if event is not None and _qualifies(state, document, now=now):
                raised[lead_id] = event
                state.qualified_at = _qualified_at(event, now)
        _save_many(session, list(states.values()), now=now)
        for lead_id, event in raised.items():
            qualified += 1
            recycled += _recycle(session, states[lead_id], model, event=event, now=now)
    if mark:
        session.execute(
            update(EngagementEvent)
            .where(one_of(session, EngagementEvent.id, [r.id for r in rows]))
            .values(scored_at=now)
            .execution_options(synchronize_session=False)
        )
    return Scored(len(rows), len(lead_ids), qualified, recycled)


def refresh_fit(session: Session, lead_id: int, *, now: datetime) -> bool:
    """Evaluate the lead's fit again after a profile change; True if it now qualifies (and
    was handed on)."""
    model = active_model(session)
    if model is None:
        return False
    document = document_of(model)
    state = _lock_many(session, [lead_id], model, document, now=now).get(lead_id)
    if state is None:
        return False
    rising = state.fit_before is not None and state.tally.fit > state.fit_before
    if rising and _qualifies(state, document, now=now):
        state.qualified_at = now
        save_lead(session, state, now=now)
        return _recycle(session, state, model, event=None, now=now)
    save_lead(session, state, now=now)
    return False


def unscored_ranges(session: Session, *, received_before: datetime, limit: int = 20,
                    size: int = 1000) -> list[tuple[int, int]]:
    """Id ranges of events handed on before `received_before` but not scored (a sweep's):
    tracking opens and clicks are handed on in their request, and a lost job's events. Events
    not handed on yet are left to the engagement sweep, whose job scores them too."""
    ids = session.execute(
        select(EngagementEvent.id)
        .where(EngagementEvent.scored_at.is_(None), EngagementEvent.handled_at.is_not(None),
               EngagementEvent.received_at < received_before)
        .order_by(EngagementEvent.id)
        .limit(limit * size)
    ).scalars().all()
    return [(ids[i], ids[min(i + size, len(ids)) - 1]) for i in range(0, len(ids), size)]
