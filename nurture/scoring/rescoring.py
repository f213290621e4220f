"""Re-scoring after a model's activation, and reading scores.

Activating a model re-scores every lead in the background (`rescore_batch`, set-based where
`nurture.scoring.bulk` supports the document, else lead by lead under the live path's row
locks). Live scoring of stored events and profile changes is `nurture.scoring.live`; its names
are re-exported here for the modules that import them from this one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.clock import iso as _iso
from nurture.models import (
    Lead,
    LeadScore,
    LeadScoreRule,
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
"""Leads re-scored per transaction after an activation, lead by lead (short transactions:
ingest goes on)."""

BULK_RESCORE_BATCH = 20_000
"""Leads re-scored per transaction by the set-based path (PostgreSQL)."""


def rescore_batch(session: Session, model_id: int, *, now: datetime) -> bool:
    """Re-score the next leads (by id) under the model after its activation, recording the
    progress on the model; False when every lead is done (or the model is no longer active)."""
    model = session.execute(
        select(ScoringModel).where(ScoringModel.id == model_id).with_for_update()
    ).scalar_one_or_none()
    if (model is None or model.status != ScoringModelStatus.ACTIVE
            or model.rescore_finished_at is not None):
        return False
    if model.rescore_total is None:
        model.rescore_total = session.execute(select(func.count()).select_from(Lead)).scalar_one()
    document = document_of(model)
    set_based = bulk.supported(session, document)
    lead_ids = session.execute(
        select(Lead.id).where(Lead.id > (model.rescore_after_lead_id or 0))
        .order_by(Lead.id).limit(BULK_RESCORE_BATCH if set_based else RESCORE_BATCH)
    ).scalars().all()
    if not lead_ids:
        model.rescore_finished_at = now
        model.rescore_total = max(model.rescore_total, model.rescore_done)
        session.flush()
        return False
    if set_based:
        bulk.rescore_leads(session, model.id, document, list(lead_ids),
                           half_life_s=half_life_s(document), now=now)
    else:
        for lead_id in lead_ids:
            state = lock_lead(session, lead_id, model, document, now=now)
            save_lead(session, state, now=now)
    model.rescore_done += len(lead_ids)
    model.rescore_after_lead_id = lead_ids[-1]
    session.flush()
    return True


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
