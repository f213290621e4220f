"""Re-scoring after a model's activation, and reading scores.

Activating a model re-scores every lead in the background (`rescore_batch`, set-based where
`nurture.scoring.bulk` supports the document, else lead by lead under the live path's row
locks). Live scoring of stored events and profile changes is `nurture.scoring.live`; its names
are re-exported here for the modules that import them from this one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from nurture.clock import iso as _iso
from nurture.models import (
    Lead,
    LeadScore,
    LeadScoreRule,
    RescoreRange,
    ScoreLedgerEntry,
    ScoringModel,
    ScoringModelStatus,
)
from nurture.scoring import bulk
from nurture.scoring.lifecycle import active_model, document_of
from nurture.scoring.live import (
    DAY_S,
    EVENT_COLUMNS,
    Scored,
    event_facts,
    half_life_s,
    lock_lead,
    refresh_fit,
    save_lead,
    score_events,
    score_of,
    unscored_ranges,
)
from nurture.scoring.rules import fit_points, lead_facts
from nurture.scoring.tally import Part, Tally

__all__ = [
    "DAY_S",
    "EVENT_COLUMNS",
    "Scored",
    "event_facts",
    "half_life_s",
    "lead_score",
    "ledger_of",
    "refresh_fit",
    "rescore_batch",
    "score_events",
    "score_of",
    "unfinished_rescores",
    "unscored_ranges",
]

RESCORE_BATCH = 500
"""Leads per range of a re-score after an activation, lead by lead (short transactions:
ingest goes on)."""

BULK_RESCORE_BATCH = 20_000
"""Leads per range of the set-based re-score (PostgreSQL)."""

LAST_LEAD_ID = 2**63 - 1
"""The last range runs to here: leads created during the re-score are in it."""


def rescore_batch(session: Session, model_id: int, *, now: datetime) -> bool:
    """Re-score the next range of leads under the model after its activation, recording the
    progress on the model; False when no range is left to take (every lead is done, or the
    others are being done by other jobs), or the model is no longer active.

    The first call plans the ranges (under the model's row lock); then each call takes one
    not done and not taken by another job (SKIP LOCKED), so several jobs share the work, and
    marks it done in the same transaction: a job that dies leaves its range to the next."""
    model = session.get(ScoringModel, model_id)
    if (model is None or model.status != ScoringModelStatus.ACTIVE
            or model.rescore_finished_at is not None):
        return False
    document = document_of(model)
    set_based = bulk.supported(session, document)
    if model.rescore_total is None or not _planned(session, model.id):
        _plan(session, model, BULK_RESCORE_BATCH if set_based else RESCORE_BATCH)
    taken = session.execute(
        select(RescoreRange)
        .where(RescoreRange.model_id == model.id, RescoreRange.done_at.is_(None))
        .order_by(RescoreRange.first_lead_id).limit(1)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if taken is None:
        _finish(session, model.id, now=now)
        return False
    first, last = taken.first_lead_id, taken.last_lead_id
    leads = session.execute(
        select(func.count()).select_from(Lead).where(Lead.id.between(first, last))
    ).scalar_one()
    if set_based:
        bulk.rescore_range(session, model.id, document, first, last,
                           half_life_s=half_life_s(document), now=now)
    else:
        for lead_id in session.execute(
            select(Lead.id).where(Lead.id.between(first, last)).order_by(Lead.id)
        ).scalars().all():
            state = lock_lead(session, lead_id, model, document, now=now)
            save_lead(session, state, now=now)
    session.execute(update(RescoreRange)
                    .where(RescoreRange.model_id == model.id,
                           RescoreRange.first_lead_id == first)
                    .values(done_at=now))
    session.execute(update(ScoringModel).where(ScoringModel.id == model.id)
                    .values(rescore_done=ScoringModel.rescore_done + leads))
    session.expire_all()
    return True


def _planned(session: Session, model_id: int) -> bool:
    return session.execute(
        select(RescoreRange.first_lead_id).where(RescoreRange.model_id == model_id).limit(1)
    ).first() is not None


def _plan(session: Session, model: ScoringModel, size: int) -> None:
    """Split the leads into ranges of `size` (the model row locked: one job plans). A model
    with a total but no ranges was being re-scored before ranges existed: planned afresh
    (its leads done already are skipped quickly)."""
    session.refresh(model, with_for_update=True)
    if model.rescore_total is not None and _planned(session, model.id):
        return  # another job planned them meanwhile
    session.execute(delete(RescoreRange).where(RescoreRange.model_id == model.id))
    numbered = select(Lead.id, func.row_number().over(order_by=Lead.id).label("n")).subquery()
    firsts = session.execute(
        select(numbered.c.id).where((numbered.c.n - 1) % size == 0).order_by(numbered.c.id)
    ).scalars().all() or [1]
    lasts = [after - 1 for after in firsts[1:]] + [LAST_LEAD_ID]
    session.execute(insert(RescoreRange), [
        {"model_id": model.id, "first_lead_id": first, "last_lead_id": last, "done_at": None}
        for first, last in zip(firsts, lasts, strict=True)])
    model.rescore_total = session.execute(select(func.count()).select_from(Lead)).scalar_one()
    model.rescore_done = 0
    session.flush()


def _finish(session: Session, model_id: int, *, now: datetime) -> None:
    """Mark the re-score finished if no range is left, taken or not."""
    left = session.execute(
        select(func.count()).select_from(RescoreRange)
        .where(RescoreRange.model_id == model_id, RescoreRange.done_at.is_(None))
    ).scalar_one()
    if left:
        return
    model = session.execute(
        select(ScoringModel).where(ScoringModel.id == model_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if model.rescore_finished_at is None:
        model.rescore_finished_at = now
        model.rescore_total = max(model.rescore_total or 0, model.rescore_done)
        session.flush()


def unfinished_rescores(session: Session) -> list[int]:
    """The active model, if its re-score of every lead has not finished (for a sweep)."""
    return list(session.execute(
        select(ScoringModel.id).where(ScoringModel.status == ScoringModelStatus.ACTIVE,
                                      ScoringModel.rescore_finished_at.is_(None))
    ).scalars())


def lead_score(session: Session, lead: Lead, *, now: datetime) -> dict[str, Any]:
    """The lead's score as the API shows it, decayed to `now` (read only)."""
    row = session.get(LeadScore, lead.id)
    model = (session.get(ScoringModel, row.model_id) if row is not None and row.model_id
             else active_model(session))
    if model is None:
        return {"total": 0, "fit": 0, "engagement": 0, "model_version": None, "explanation": []}
    document = document_of(model)
    tally = Tally(half_life_s=half_life_s(document))
    if row is not None and row.model_id == model.id:
        tally.fit, tally.decayed, tally.decayed_at, tally.steady = (
            row.fit, row.decayed, row.decayed_at, row.steady)
        for r in session.execute(
            select(LeadScoreRule).where(LeadScoreRule.lead_id == lead.id)
        ).scalars():
            tally.parts[r.rule] = Part(kind=r.kind, decays=r.decays, value=r.value,
                                       ref_at=r.ref_at, last_at=r.last_at)
    else:  # never scored: its fit as the active model sees it
        tally.set_fit(fit_points(document, lead_facts(lead)), lead.updated_at)
    return score_of(tally, model, now=now)


def ledger_of(session: Session, lead_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    """The lead's newest ledger entries (for operators and tests)."""
    rows = session.execute(
        select(ScoreLedgerEntry, ScoringModel.version)
        .join(ScoringModel, ScoringModel.id == ScoreLedgerEntry.model_id)
        .where(ScoreLedgerEntry.lead_id == lead_id)
        .order_by(ScoreLedgerEntry.id.desc()).limit(limit)
    ).all()
    return [{"rule": e.rule, "points": e.points, "event_id": e.event_id,
             "model_version": version, "occurred_at": _iso(e.occurred_at),
             "recorded_at": _iso(e.recorded_at)} for e, version in rows]
