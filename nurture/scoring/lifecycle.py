"""A scoring model's life: draft → approved (a marketer AND a sales approver) → active → retired.

The states and the approval rules are every approved document's (`nurture.approvals`); what
is the scoring model's own: its document, and that activation starts a re-score of every lead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.accounts.services import Actor
from nurture.approvals import lifecycle
from nurture.approvals.lifecycle import INSTALLATION, Approvable
from nurture.clock import iso as _iso
from nurture.models import ScoringApproval, ScoringModel
from nurture.scoring.document import ScoringDocument, default_document, parse_document

SCORING_MODEL = Approvable(label="scoring model", document=ScoringModel,
                           approval=ScoringApproval, owner="model_id", parse=parse_document)
"""The scoring model as an approved document."""

_documents: dict[int, tuple[dict[str, Any], ScoringDocument]] = {}


def document_of(model: ScoringModel) -> ScoringDocument:
    """The model's document, parsed once per process (a stored version never changes; the
    stored document is compared, as ids are reused after a database is emptied)."""
    cached = _documents.get(model.id)
    if cached is None or cached[0] != model.document:
        cached = _documents[model.id] = (model.document, parse_document(model.document))
    return cached[1]


def validate_document(data: Any) -> ScoringDocument:
    """The document validated whole; `InvalidInput` names each path (`engagement[2].points`)."""
    document = lifecycle.validate(SCORING_MODEL, data)
    assert isinstance(document, ScoringDocument)
    return document


def create_model(session: Session, data: Any, *, actor: str, now: datetime) -> ScoringModel:
    """Store the document as the next version, a draft."""
    model: ScoringModel = lifecycle.create(session, SCORING_MODEL, data, actor=actor, now=now,
                                           rescore_done=0)
    return model


def get_model(session: Session, model_id: int) -> ScoringModel:
    model: ScoringModel = lifecycle.get(session, SCORING_MODEL, model_id)
    return model


def list_models(session: Session) -> list[ScoringModel]:
    return lifecycle.list_versions(session, SCORING_MODEL)


def active_model(session: Session) -> ScoringModel | None:
    model: ScoringModel | None = lifecycle.active(session, SCORING_MODEL)
    return model


def approve_model(session: Session, model_id: int, *, actor: Actor, now: datetime) -> ScoringModel:
    """Record the actor's approval for its role; approving again changes nothing."""
    model: ScoringModel = lifecycle.approve(session, SCORING_MODEL, model_id, actor=actor, now=now)
    return model


def withdraw_approval(
    session: Session, model_id: int, *, actor: Actor, now: datetime
) -> ScoringModel:
    """Withdraw the approval of the actor's role (before activation); the model is a draft."""
    model: ScoringModel = lifecycle.withdraw(session, SCORING_MODEL, model_id, actor=actor,
                                             now=now)
    return model


def activate_model(
    session: Session, model_id: int, *, actor: str, now: datetime
) -> tuple[ScoringModel, ScoringModel | None]:
    """Make the approved model the active one, retiring the one before; (model, retired).

    Re-scoring every lead is the caller's to start (`rescoring.rescore_all`, in the background).
    """
    model, previous, changed = lifecycle.activate(session, SCORING_MODEL, model_id, actor=actor,
                                                  now=now)
    if changed:
        model.rescore_total = None
        model.rescore_done = 0
        model.rescore_after_lead_id = None
        model.rescore_finished_at = None
        session.flush()
    return model, previous


def retire_model(session: Session, model_id: int, *, actor: str, now: datetime) -> ScoringModel:
    """Take the model out of use for good; retiring the active one stops scoring until another
    is activated."""
    model: ScoringModel = lifecycle.retire(session, SCORING_MODEL, model_id, actor=actor, now=now)
    return model


def ensure_default_model(session: Session, *, now: datetime) -> ScoringModel | None:
    """On a database with no scoring model at all, install the default one, active (both
    approvals recorded as `installation`). Returns it, or None if models exist."""
    if session.execute(select(ScoringModel.id).limit(1)).first() is not None:
        return None
    model = lifecycle.install(session, SCORING_MODEL, default_document().as_data(), now=now,
                              rescore_done=0)
    activated, _ = activate_model(session, model.id, actor=INSTALLATION, now=now)
    return activated


def model_summary(session: Session, model: ScoringModel, *, with_document: bool = False
                  ) -> dict[str, Any]:
    """The model as the API shows it (approvals newest first, withdrawn ones included)."""
    summary = lifecycle.summary(session, SCORING_MODEL, model)
    summary["rescore"] = {
        "total": model.rescore_total,
        "done": model.rescore_done,
        "finished_at": _iso(model.rescore_finished_at),
    }
    if with_document:
        summary["document"] = model.document
    return summary
