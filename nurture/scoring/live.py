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

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from nurture.clock import iso as _iso
from nurture.db import insert_ignoring_conflicts, one_of
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


# --- one lead under the active model ----------------------------------------------------------

@dataclass
class _Lead:
    """A locked lead score, loaded into a tally, and what to write back."""

    row: LeadScore
    lead: Lead
    tally: Tally
    rows: dict[str, LeadScoreRule]
    ledger: list[dict[str, Any]]


def lock_lead(session: Session, lead_id: int, model: ScoringModel, document: ScoringDocument,
          *, now: datetime) -> _Lead:
    """Lock (creating it if need be) the lead's score; see `_lock_many`."""
    return _lock_many(session, [lead_id], model, document, now=now)[lead_id]


def _lock_many(session: Session, lead_ids: list[int], model: ScoringModel,
               document: ScoringDocument, *, now: datetime) -> dict[int, _Lead]:
    """Lock (creating them if need be) the leads' scores, each rebuilt if it was kept under
    another model, its fit evaluated again if the profile changed since. Lead rows are locked
    first, then score rows, each in id order (every writer takes them in this order: no
    deadlock); a batch of leads costs the same few statements as one."""
    ids = sorted(lead_ids)
    leads = {lead.id: lead for lead in session.execute(
        select(Lead).where(one_of(session, Lead.id, ids)).order_by(Lead.id).with_for_update()
    ).scalars()}
    session.execute(
        insert_ignoring_conflicts(session, LeadScore, index_elements=["lead_id"]),
        [{"lead_id": lead_id, "model_id": None, "fit": 0.0, "decayed": 0.0, "steady": 0.0,
          "updated_at": now} for lead_id in ids],
    )
    rows = {row.lead_id: row for row in session.execute(
        select(LeadScore).where(one_of(session, LeadScore.lead_id, ids))
        .order_by(LeadScore.lead_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()}
    current = [lead_id for lead_id in ids if rows[lead_id].model_id == model.id]
    rules: dict[int, dict[str, LeadScoreRule]] = defaultdict(dict)
    if current:
        for r in session.execute(
            select(LeadScoreRule).where(one_of(session, LeadScoreRule.lead_id, current))
        ).scalars():
            rules[r.lead_id][r.rule] = r
    states: dict[int, _Lead] = {}
    for lead_id in ids:
        row, lead = rows[lead_id], leads[lead_id]
        if row.model_id != model.id:
            states[lead_id] = _rebuild(session, row, lead, model, document, now=now)
            continue
        tally = Tally(
            half_life_s=half_life_s(document), fit=row.fit, decayed=row.decayed,
            decayed_at=row.decayed_at, steady=row.steady,
            parts={name: Part(kind=r.kind, decays=r.decays, value=r.value, ref_at=r.ref_at,
                              last_at=r.last_at) for name, r in rules[lead_id].items()},
        )
        state = states[lead_id] = _Lead(row=row, lead=lead, tally=tally,
                                        rows=rules[lead_id], ledger=[])
        if row.fit_checked_at is None or lead.updated_at > row.fit_checked_at:
            _refit(state, model, document, now=now)
    return states


def _refit(state: _Lead, model: ScoringModel, document: ScoringDocument, *,
           now: datetime) -> None:
    changes = state.tally.set_fit(fit_points(document, lead_facts(state.lead)), now)
    for rule, points in changes.items():
        state.ledger.append({"lead_id": state.lead.id, "model_id": model.id, "rule": rule,
                             "points": points, "event_id": None, "occurred_at": now,
                             "recorded_at": now})
    state.row.fit_checked_at = now


def _rebuild(session: Session, row: LeadScore, lead: Lead, model: ScoringModel,
             document: ScoringDocument, *, now: datetime) -> _Lead:
    """The lead's score under `model` from scratch: fit now, and every event scored so far
    (events not scored yet are left to the job that will score them)."""
    session.execute(delete(LeadScoreRule).where(LeadScoreRule.lead_id == lead.id))
    row.model_id = model.id
    row.fit = row.decayed = row.steady = 0.0
    row.decayed_at = row.qualified_at = None
    state = _Lead(row=row, lead=lead, tally=Tally(half_life_s=half_life_s(document)), rows={},
                  ledger=[])
    _refit(state, model, document, now=now)
    history = session.execute(
        select(*EVENT_COLUMNS)
        .where(EngagementEvent.lead_id == lead.id, EngagementEvent.scored_at.is_not(None))
        .order_by(EngagementEvent.occurred_at, EngagementEvent.id)
    ).all()
    _apply(state, model, document, event_facts(session, history), CapBook(), now=now)
    return state


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
            state.ledger.append({"lead_id": state.lead.id, "model_id": model.id,
                                 "rule": rule.rule, "points": points, "event_id": event.id,
                                 "occurred_at": event.occurred_at, "recorded_at": now})
            if points > 0:
                raised = event
    return raised


def _ledger_usage(session: Session, lead_ids: list[int], model_id: int,
                  events: list[EventFacts]) -> dict[int, UsageLoader]:
    """What capped rules already gave each lead in the weeks of these events (one query)."""
    if not events:
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
    """Write the scores, their rule rows and the ledger entries back (statements batched)."""
    ledger: list[dict[str, Any]] = []
    for state in states:
        tally, row = state.tally, state.row
        row.fit, row.decayed, row.decayed_at, row.steady = (
            tally.fit, tally.decayed, tally.decayed_at, tally.steady)
        row.updated_at = now
        for name, part in tally.parts.items():
            if not part.changed:
                continue
            existing = state.rows.get(name)
            if existing is None:
                existing = state.rows[name] = LeadScoreRule(lead_id=row.lead_id, rule=name)
                session.add(existing)
            existing.kind, existing.decays, existing.value = part.kind, part.decays, part.value
            existing.ref_at, existing.last_at = part.ref_at, part.last_at
            part.changed = False
        ledger.extend(state.ledger)
        state.ledger = []
    if ledger:
        session.execute(
            insert_ignoring_conflicts(session, ScoreLedgerEntry,
                                      index_elements=["model_id", "event_id", "rule"]),
            ledger,
        )
    session.flush()


def _qualifies(state: _Lead, document: ScoringDocument, *, now: datetime) -> bool:
    thresholds = document.thresholds
    return (state.tally.total(now) >= thresholds.total
            and state.tally.fit >= thresholds.fit)


def _recycle(session: Session, state: _Lead, model: ScoringModel, document: ScoringDocument,
             *, event: EventFacts | None, now: datetime) -> bool:
    """The lead crossed the thresholds: hand it to `nurture.handoffs` (which decides whether it
    may go to sales now). True if a handoff was made. The lead qualified when the event that
    raised its score was stored (what the handoff's latency is measured from)."""
    qualified_at = min(now, event.received_at) if event and event.received_at else now
    state.row.qualified_at = qualified_at
    handoff = recycle(
        session, state.lead.id, score=score_of(state.tally, model, now=now),
        model_version_id=model.id, qualifying_event_id=event.id if event else None,
        qualified_at=qualified_at, now=now,
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
    """Score the stored, not yet scored events with ids in [first_id, last_id], a lead at a
    time; a lead that crosses the thresholds is handed to `nurture.handoffs`."""
    rows = session.execute(
        select(*EVENT_COLUMNS)
        .where(EngagementEvent.id.between(first_id, last_id),
               EngagementEvent.scored_at.is_(None))
        .order_by(EngagementEvent.id)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return Scored(0, 0, 0, 0)
    model = active_model(session)
    by_lead: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        if row.lead_id is not None:
            by_lead[row.lead_id].append(row)
    qualified = recycled = 0
    if model is not None:
        document = document_of(model)
        lead_ids = sorted(by_lead)
        states = _lock_many(session, lead_ids, model, document, now=now)
        facts = event_facts(session, [r for lead_id in lead_ids for r in by_lead[lead_id]])
        usage = _ledger_usage(session, lead_ids, model.id, facts)
        events: dict[int, list[EventFacts]] = defaultdict(list)
        for event in sorted(facts, key=lambda e: (e.occurred_at, e.id)):
            events[event.lead_id].append(event)
        raised = {lead_id: _apply(states[lead_id], model, document, events[lead_id],
                                  CapBook(usage[lead_id]), now=now) for lead_id in lead_ids}
        _save_many(session, list(states.values()), now=now)
        for lead_id in lead_ids:
            state = states[lead_id]
            if raised[lead_id] is not None and _qualifies(state, document, now=now):
                qualified += 1
                recycled += _recycle(session, state, model, document, event=raised[lead_id],
                                     now=now)
    session.execute(
        update(EngagementEvent)
        .where(one_of(session, EngagementEvent.id, [r.id for r in rows]))
        .values(scored_at=now)
    )
    return Scored(len(rows), len(by_lead), qualified, recycled)


def refresh_fit(session: Session, lead_id: int, *, now: datetime) -> bool:
    """Evaluate the lead's fit again after a profile change; True if it now qualifies (and
    was handed on)."""
    model = active_model(session)
    if model is None:
        return False
    document = document_of(model)
    before = session.get(LeadScore, lead_id)
    before_fit = before.fit if before is not None and before.model_id == model.id else None
    state = lock_lead(session, lead_id, model, document, now=now)
    save_lead(session, state, now=now)
    if (before_fit is not None and state.tally.fit > before_fit
            and _qualifies(state, document, now=now)):
        return _recycle(session, state, model, document, event=None, now=now)
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
