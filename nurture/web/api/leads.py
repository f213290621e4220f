"""Leads and rejections from the CRM."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy.orm import Session

from campaigns.intake import nurture_not_ready, reject_lead
from nurture.clock import utcnow
from nurture.fields import normalize_email
from nurture.handoffs.documents import handoff_document
from nurture.handoffs.services import lead_handoffs
from nurture.leads import services
from nurture.leads.schemas import LeadIn, RejectionIn
from nurture.models import Lead, Role
from nurture.scoring.live import refresh_fit
from nurture.scoring.rescoring import lead_score
from nurture.web import db_session
from nurture.web.api import bp, json_body, requires
from nurture.web.problems import ProblemError

READERS = (Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER)


def lead_document(session: Session, lead: Lead, *, new: bool = False) -> dict[str, Any]:
    """The lead with the parts services above `nurture.leads` own (its score, its handoffs)."""
    document = services.lead_document(session, lead, new=new)
    document["score"] = lead_score(session, lead, now=utcnow())
    document["handoffs"] = [] if new else [
        handoff_document(h) for h in lead_handoffs(session, lead.id)]
    return document


@bp.post("/leads")
@requires(Role.ADMIN, Role.MARKETER)
def create_lead() -> Any:
    body = json_body(LeadIn)
    session = db_session()
    now = utcnow()
    lead, created = services.upsert_lead(session, body.email, body.fields(), now=now)
    refresh_fit(session, lead.id, now=now)  # a profile change re-evaluates fit
    document = lead_document(session, lead, new=created)
    session.commit()
    return document, 201 if created else 200


@bp.post("/rejections")
@requires(Role.ADMIN, Role.MARKETER, Role.REP)
def create_rejection() -> Any:
    body = json_body(RejectionIn)
    session = db_session()
    intake = reject_lead(
        session, body.lead.email, body.lead.fields(),
        rep_email=body.rep_email, reason=body.reason, note=body.note,
        revisit_on=body.revisit_on, crm_id=body.crm_id, rejected_at=body.rejected_at,
        now=utcnow(),
    )
    refresh_fit(session, intake.lead_id, now=utcnow())  # the CRM may have sent a new profile
    document = {
        "rejection": services.rejection_document(intake.rejection),
        "lead": lead_document(session, services.get_lead(session, intake.lead_id)),
        "enrollment": intake.enrollment,
        "routing": {"enrolled": intake.enrollment is not None, "reason": intake.routing_reason},
    }
    session.commit()
    return document, 201 if intake.created else 200


@bp.post("/leads/<int:lead_id>/nurture")
@requires(Role.ADMIN, Role.MARKETER)
def nurture_lead(lead_id: int) -> Any:
    """A lead that is not ready for sales goes into nurture (sequences with `not_ready`)."""
    session = db_session()
    intake = nurture_not_ready(session, lead_id, now=utcnow())
    document = {
        "lead": lead_document(session, services.get_lead(session, intake.lead_id)),
        "enrollment": intake.enrollment,
        "routing": {"enrolled": intake.enrollment is not None, "reason": intake.routing_reason},
    }
    session.commit()
    return document


@bp.get("/leads/<int:lead_id>")
@requires(*READERS)
def get_lead(lead_id: int) -> Any:
    session = db_session()
    return lead_document(session, services.get_lead(session, lead_id))


@bp.get("/leads")
@requires(*READERS)
def find_lead() -> Any:
    unknown = sorted(set(request.args) - {"email"})
    if unknown:
        raise ProblemError(422, "unknown query parameter", errors={k: ["unknown parameter"] for k in unknown})
    raw = request.args.get("email")
    if not raw:
        raise ProblemError(422, "give the lead's email", errors={"email": ["required"]})
    try:
        email = normalize_email(raw)
    except ValueError as exc:
        raise ProblemError(422, "invalid email", errors={"email": [str(exc)]}) from None
    session = db_session()
    return lead_document(session, services.find_lead_by_email(session, email))
