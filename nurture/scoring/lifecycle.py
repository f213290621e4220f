"""A scoring model's life: draft → approved (a marketer AND a sales approver) → active → retired.

Versions are immutable: a changed document is a new version. Either approver may withdraw
before activation (the model is a draft again); every approval and withdrawal stays recorded.
Exactly one model is active: activating one retires the one before in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.accounts.services import Actor
from nurture.clock import iso as _iso
from nurture.errors import Conflict, Forbidden, InvalidInput, NotFound
from nurture.fields import field_errors
from nurture.models import (
    ApprovalRole,
    Role,
    ScoringApproval,
    ScoringModel,
    ScoringModelStatus,
)
from nurture.scoring.document import ScoringDocument, default_document, parse_document

INSTALLATION = "installation"
"""Who is recorded as approving and activating the default model of a fresh installation."""

MAX_ID = 2**63 - 1

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
    if not isinstance(data, dict):
        raise InvalidInput("the scoring model must be an object", {"body": ["must be an object"]})
    try:
        return parse_document(data)
    except ValidationError as exc:
        raise InvalidInput("the scoring model is invalid", field_errors(exc)) from None


def create_model(session: Session, data: Any, *, actor: str, now: datetime) -> ScoringModel:
    """Store the document as the next version, a draft."""
    document = validate_document(data)
    version = (session.execute(select(func.max(ScoringModel.version))).scalar() or 0) + 1
    model = ScoringModel(
        version=version, name=document.name, document=document.as_data(),
        status=ScoringModelStatus.DRAFT, created_by=actor, created_at=now, rescore_done=0,
    )
    session.add(model)
    session.flush()
    return model


def get_model(session: Session, model_id: int) -> ScoringModel:
    model = session.get(ScoringModel, model_id) if 0 < model_id <= MAX_ID else None
    if model is None:
        raise NotFound(f"no scoring model with id {model_id}")
    return model


def list_models(session: Session) -> list[ScoringModel]:
    return list(session.execute(select(ScoringModel).order_by(ScoringModel.version.desc()))
                .scalars())


def active_model(session: Session) -> ScoringModel | None:
    return session.execute(
        select(ScoringModel).where(ScoringModel.status == ScoringModelStatus.ACTIVE)
    ).scalar_one_or_none()


def _approval_role(actor: Actor) -> ApprovalRole:
    if actor.role == Role.MARKETER:
        return ApprovalRole.MARKETER
    if actor.role == Role.SALES_APPROVER:
        return ApprovalRole.SALES_APPROVER
    raise Forbidden("only a marketer or a sales approver approves a scoring model")


def _live_approvals(session: Session, model_id: int) -> dict[ApprovalRole, ScoringApproval]:
    rows = session.execute(
        select(ScoringApproval)
        .where(ScoringApproval.model_id == model_id, ScoringApproval.withdrawn_at.is_(None))
    ).scalars()
    return {row.role: row for row in rows}


def _reviewable(model: ScoringModel, action: str) -> None:
    if model.status not in (ScoringModelStatus.DRAFT, ScoringModelStatus.APPROVED):
        raise Conflict(f"scoring model version {model.version} is {model.status.value}; "
                       f"only a draft or approved model can be {action}",
                       {"status": [model.status.value]})


def approve_model(session: Session, model_id: int, *, actor: Actor, now: datetime) -> ScoringModel:
    """Record the actor's approval for its role; approving again changes nothing."""
    role = _approval_role(actor)
    model = get_model(session, model_id)
    _reviewable(model, "approved")
    roles = set(_live_approvals(session, model.id))
    if role not in roles:
        session.add(ScoringApproval(model_id=model.id, role=role, approved_by=actor.email,
                                    approved_at=now))
        roles.add(role)
    if roles == set(ApprovalRole):
        model.status = ScoringModelStatus.APPROVED
    session.flush()
    return model


def withdraw_approval(
    session: Session, model_id: int, *, actor: Actor, now: datetime
) -> ScoringModel:
    """Withdraw the approval of the actor's role (before activation); the model is a draft."""
    role = _approval_role(actor)
    model = get_model(session, model_id)
    _reviewable(model, "withdrawn from")
    approval = _live_approvals(session, model.id).get(role)
    if approval is None:
        raise Conflict(f"scoring model version {model.version} has no {role.value} approval "
                       "to withdraw", {"approvals": [f"no {role.value} approval"]})
    approval.withdrawn_by = actor.email
    approval.withdrawn_at = now
    model.status = ScoringModelStatus.DRAFT
    session.flush()
    return model


def activate_model(
    session: Session, model_id: int, *, actor: str, now: datetime
) -> tuple[ScoringModel, ScoringModel | None]:
    """Make the approved model the active one, retiring the one before; (model, retired).

    Re-scoring every lead is the caller's to start (`rescoring.rescore_all`, in the background).
    """
    model = get_model(session, model_id)
    if model.status == ScoringModelStatus.ACTIVE:
        return model, None
    live = _live_approvals(session, model.id)
    missing = [role.value for role in ApprovalRole if role not in live]
    if model.status != ScoringModelStatus.APPROVED or missing:
        raise Conflict(
            f"scoring model version {model.version} cannot be activated: it is "
            f"{model.status.value}" + (f" and lacks the {' and '.join(missing)} approval"
                                        if missing else ""),
            {"approvals": [f"{role} approval required" for role in missing]} if missing
            else {"status": [model.status.value]},
        )
    previous = active_model(session)
    if previous is not None:
        previous.status = ScoringModelStatus.RETIRED
        previous.retired_by = actor
        previous.retired_at = now
        session.flush()  # the one-active index sees the old one go first
    model.status = ScoringModelStatus.ACTIVE
    model.activated_by = actor
    model.activated_at = now
    model.rescore_total = None
    model.rescore_done = 0
    model.rescore_after_lead_id = None
    model.rescore_finished_at = None
    session.flush()
    return model, previous


def retire_model(session: Session, model_id: int, *, actor: str, now: datetime) -> ScoringModel:
    """Take the model out of use for good; retiring the active one stops scoring until another
    is activated."""
    model = get_model(session, model_id)
    if model.status == ScoringModelStatus.RETIRED:
        raise Conflict(f"scoring model version {model.version} is already retired",
                       {"status": ["retired"]})
    model.status = ScoringModelStatus.RETIRED
    model.retired_by = actor
    model.retired_at = now
    session.flush()
    return model


def ensure_default_model(session: Session, *, now: datetime) -> ScoringModel | None:
    """On a database with no scoring model at all, install the default one, active (both
    approvals recorded as `installation`). Returns it, or None if models exist."""
    if session.execute(select(ScoringModel.id).limit(1)).first() is not None:
        return None
    model = create_model(session, default_document().as_data(), actor=INSTALLATION, now=now)
    for role in ApprovalRole:
        session.add(ScoringApproval(model_id=model.id, role=role, approved_by=INSTALLATION,
                                    approved_at=now))
    model.status = ScoringModelStatus.APPROVED
    session.flush()
    activated, _ = activate_model(session, model.id, actor=INSTALLATION, now=now)
    return activated


def model_summary(session: Session, model: ScoringModel, *, with_document: bool = False
                  ) -> dict[str, Any]:
    """The model as the API shows it (approvals newest first, withdrawn ones included)."""
    approvals = session.execute(
        select(ScoringApproval).where(ScoringApproval.model_id == model.id)
        .order_by(ScoringApproval.approved_at.desc(), ScoringApproval.id.desc())
    ).scalars()
    summary: dict[str, Any] = {
        "id": model.id,
        "version": model.version,
        "name": model.name,
        "status": model.status.value,
        "created_by": model.created_by,
        "created_at": _iso(model.created_at),
        "activated_at": _iso(model.activated_at),
        "retired_at": _iso(model.retired_at),
        "approvals": [
            {"role": a.role.value, "approved_by": a.approved_by, "approved_at": _iso(a.approved_at),
             "withdrawn_by": a.withdrawn_by, "withdrawn_at": _iso(a.withdrawn_at)}
            for a in approvals
        ],
        "rescore": {
            "total": model.rescore_total,
            "done": model.rescore_done,
            "finished_at": _iso(model.rescore_finished_at),
        },
    }
    if with_document:
        summary["document"] = model.document
    return summary
