"""Backtests: a model run over stored history, beside the active one, touching no live score.

The window's events are read once, in lead and time order; each lead gets a tally per model
(fit from its profile as it is now: profiles keep no history) and the first moment each
model's thresholds were met is the moment it would have recycled the lead. Leads that sales
had accepted, or that became customers, before that moment are counted: a model that
recycles them is calling back people sales already has.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.clock import iso as _iso
from nurture.errors import NotFound
from nurture.models import (
    Backtest,
    BacktestStatus,
    EngagementEvent,
    Lead,
    LifecycleChange,
    LifecycleStage,
    ScoringModel,
)
from nurture.scoring import bulk
from nurture.scoring.document import ScoringDocument
from nurture.scoring.lifecycle import active_model, document_of, get_model
from nurture.scoring.rescoring import EVENT_COLUMNS, event_facts, half_life_s
from nurture.scoring.rules import EventFacts, fit_points, lead_facts, matching_rules
from nurture.scoring.tally import CapBook, Tally

MAX_DAYS = 730
"""Longest window a backtest looks at."""

CHUNK = 5000
"""Events read per round trip."""

LISTED = 100
"""Recycled leads listed by id in a result (the counts cover all)."""

MAX_ID = 2**63 - 1

PARALLEL_PARTS = 2
"""Ranges of leads a set-based backtest runs at once, a connection each (PostgreSQL)."""


def request_backtest(session: Session, model_id: int, *, days: int, actor: str,
                     now: datetime) -> Backtest:
    """Record a backtest of the model over the last `days`, compared with the active model."""
    model = get_model(session, model_id)
    compared = active_model(session)
    backtest = Backtest(
        model_id=model.id,
        compared_model_id=compared.id if compared is not None and compared.id != model.id
        else None,
        days=days, status=BacktestStatus.QUEUED, requested_by=actor, requested_at=now,
    )
    session.add(backtest)
    session.flush()
    return backtest


def get_backtest(session: Session, backtest_id: int) -> Backtest:
    backtest = session.get(Backtest, backtest_id) if 0 < backtest_id <= MAX_ID else None
    if backtest is None:
        raise NotFound(f"no backtest with id {backtest_id}")
    return backtest


def run_backtest(session: Session, backtest_id: int, *, now: datetime) -> Backtest:
    """Run a queued backtest (the caller commits; a finished one is left as it is)."""
    backtest = get_backtest(session, backtest_id)
    if backtest.status == BacktestStatus.DONE:
        return backtest
    backtest.status = BacktestStatus.RUNNING
    backtest.started_at = now
    models = [session.get(ScoringModel, backtest.model_id)]
    if backtest.compared_model_id is not None:
        models.append(session.get(ScoringModel, backtest.compared_model_id))
    until = now
    since = until - timedelta(days=backtest.days)
    runs = [_Run(m, document_of(m)) for m in models if m is not None]
    if all(bulk.backtest_supported(session, run.document, days=backtest.days) for run in runs):
        # set-based on PostgreSQL: the same answer without Python per event, every model in
        # one reading of the window's events
        found = bulk.first_crossings_in_parallel(
            session, [run.document for run in runs], since=since, until=until,
            parts=PARALLEL_PARTS)
        for run, recycled in zip(runs, found, strict=True):
            run.recycled = recycled
        events = bulk.count_events(session, since=since, until=until)
    else:
        events = _simulate(session, runs, since=since, until=until)
    _sales_before(session, runs)
    result: dict[str, Any] = {
        "window": {"from": _iso(since), "to": _iso(until), "days": backtest.days},
        "events": events,
        "model": runs[0].summary(),
        "compared": runs[1].summary() if len(runs) > 1 else None,
    }
    if len(runs) > 1:
        mine, theirs = set(runs[0].recycled), set(runs[1].recycled)
        result["overlap"] = {"both": len(mine & theirs), "only_model": len(mine - theirs),
                             "only_compared": len(theirs - mine)}
    backtest.result = result
    backtest.status = BacktestStatus.DONE
    backtest.finished_at = now
    session.flush()
    return backtest


def fail_backtest(session: Session, backtest_id: int, error: str, *, now: datetime) -> None:
    """Record why a backtest could not finish (its job failed)."""
    backtest = get_backtest(session, backtest_id)
    backtest.status = BacktestStatus.FAILED
    backtest.error = error[:1000]
    backtest.finished_at = now
    session.flush()


class _Run:
    """One model's pass over the history."""

    def __init__(self, model: ScoringModel, document: ScoringDocument) -> None:
        self.model = model
        self.document = document
        self.recycled: dict[int, datetime] = {}
        self.accepted_before = 0
        self.won_before = 0

    def lead(self, lead: Lead, events: list[EventFacts]) -> None:
        document = self.document
        tally = Tally(half_life_s=half_life_s(document))
        tally.set_fit(fit_points(document, lead_facts(lead)), events[0].occurred_at)
        caps = CapBook()
        thresholds = document.thresholds
        for event in events:
            raised = False
            for rule, kind in matching_rules(document, event):
                points = caps.allow(rule, event.occurred_at)
                if points:
                    tally.add(rule.rule, kind, rule.decays, points, event.occurred_at)
                    raised = raised or points > 0
            if (raised and tally.fit >= thresholds.fit
                    and tally.total(event.occurred_at) >= thresholds.total):
                self.recycled[lead.id] = event.occurred_at
                return

    def summary(self) -> dict[str, Any]:
        by_day = Counter(at.date().isoformat() for at in self.recycled.values())
        first = sorted(self.recycled.items(), key=lambda item: (item[1], item[0]))[:LISTED]
        return {
            "model_id": self.model.id,
            "version": self.model.version,
            "recycled": len(self.recycled),
            "recycled_by_day": dict(sorted(by_day.items())),
            "leads": [{"lead_id": lead_id, "at": _iso(at)} for lead_id, at in first],
            "accepted_by_sales_before": self.accepted_before,
            "won_before": self.won_before,
        }


def _simulate(session: Session, runs: list[_Run], *, since: datetime, until: datetime) -> int:
    """Feed the window's events to every run, a lead at a time; returns how many were read."""
    seen = 0
    after: tuple[int, datetime, int] | None = None
    pending: list[Any] = []
    while True:
        query = (
            select(*EVENT_COLUMNS)
            .where(EngagementEvent.lead_id.is_not(None),
                   EngagementEvent.occurred_at >= since, EngagementEvent.occurred_at < until)
            .order_by(EngagementEvent.lead_id, EngagementEvent.occurred_at, EngagementEvent.id)
            .limit(CHUNK)
        )
        if after is not None:
            lead_id, at, event_id = after
            query = query.where(
                (EngagementEvent.lead_id > lead_id)
                | ((EngagementEvent.lead_id == lead_id)
                   & ((EngagementEvent.occurred_at > at)
                      | ((EngagementEvent.occurred_at == at) & (EngagementEvent.id > event_id))))
            )
        rows = session.execute(query).all()
        seen += len(rows)
        if rows:
            last = rows[-1]
            after = (last.lead_id, last.occurred_at, last.id)
        pending.extend(rows)
        # every lead but the last one of the chunk is complete
        cut = len(pending) if len(rows) < CHUNK else _last_lead_start(pending)
        if cut:
            _feed(session, runs, pending[:cut])
            pending = pending[cut:]
        if len(rows) < CHUNK:
            return seen


def _last_lead_start(rows: list[Any]) -> int:
    last = rows[-1].lead_id
    index = len(rows)
    while index > 0 and rows[index - 1].lead_id == last:
        index -= 1
    return index


def _feed(session: Session, runs: list[_Run], rows: list[Any]) -> None:
    facts = event_facts(session, rows)
    by_lead: dict[int, list[EventFacts]] = {}
    for event in facts:
        by_lead.setdefault(event.lead_id, []).append(event)
    leads = {lead.id: lead for lead in session.execute(
        select(Lead).where(Lead.id.in_(list(by_lead)))).scalars()}
    for lead_id, events in by_lead.items():
        lead = leads.get(lead_id)
        if lead is None:
            continue
        for run in runs:
            run.lead(lead, events)
    for lead in leads.values():  # a long history must not pile up in the identity map
        session.expunge(lead)


def _sales_before(session: Session, runs: list[_Run]) -> None:
    """Count, per run, the recycled leads sales had accepted or won before that moment."""
    lead_ids = sorted({lead_id for run in runs for lead_id in run.recycled})
    stages = (LifecycleStage.ACCEPTED_BY_SALES, LifecycleStage.CUSTOMER)
    first: dict[tuple[int, LifecycleStage], datetime] = {}
    for start in range(0, len(lead_ids), 1000):
        for lead_id, stage, at in session.execute(
            select(LifecycleChange.lead_id, LifecycleChange.to_stage, LifecycleChange.changed_at)
            .where(LifecycleChange.lead_id.in_(lead_ids[start:start + 1000]),
                   LifecycleChange.to_stage.in_(stages))
        ).tuples():
            key = (lead_id, stage)
            first[key] = min(first.get(key, at), at)
    for run in runs:
        for lead_id, at in run.recycled.items():
            accepted = first.get((lead_id, LifecycleStage.ACCEPTED_BY_SALES))
            won = first.get((lead_id, LifecycleStage.CUSTOMER))
            run.accepted_before += accepted is not None and accepted < at
            run.won_before += won is not None and won < at


def backtest_document(backtest: Backtest) -> dict[str, Any]:
    return {
        "id": backtest.id,
        "model_id": backtest.model_id,
        "compared_model_id": backtest.compared_model_id,
        "days": backtest.days,
        "status": backtest.status.value,
        "requested_by": backtest.requested_by,
        "requested_at": _iso(backtest.requested_at),
        "started_at": _iso(backtest.started_at),
        "finished_at": _iso(backtest.finished_at),
        "result": backtest.result,
        "error": backtest.error,
    }
