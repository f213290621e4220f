"""The rep's inbox of recycled leads and the two answers: accept, or reject with a reason.

A `rep` token sees and acts on its own handoffs only (its user's email); an admin on any.
"""

from __future__ import annotations

from typing import Any

from flask import request

from nurture.clock import utcnow
from nurture.fields import normalize_email
from nurture.handoffs import services
from nurture.handoffs.documents import handoff_document, handoff_history
from nurture.handoffs.schemas import HandoffRejectIn
from nurture.leads.services import rejection_document
from nurture.models import HandoffStatus, Role
from nurture.web import db_session
from nurture.web.api import bp, current_actor, json_body, requires
from nurture.web.problems import ProblemError

MAX_LIMIT = 500
"""Most handoffs one inbox page lists."""

QUERY = ("status", "rep_email", "limit")


@bp.get("/handoffs")
@requires(Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER, Role.REP)
def list_handoffs() -> Any:
    unknown = sorted(set(request.args) - set(QUERY))
    if unknown:
        raise ProblemError(422, "unknown query parameter",
                           errors={k: ["unknown parameter"] for k in unknown})
    errors: dict[str, list[str]] = {}
    status = None
    if request.args.get("status"):
        try:
            status = HandoffStatus(request.args["status"])
        except ValueError:
            errors["status"] = [f"one of {', '.join(s.value for s in HandoffStatus)}"]
    rep_email = None
    if request.args.get("rep_email"):
        try:
            rep_email = normalize_email(request.args["rep_email"])
        except ValueError as exc:
            errors["rep_email"] = [str(exc)]
    limit = 100
    if "limit" in request.args:
        raw = request.args["limit"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            errors["limit"] = [f"an integer from 1 to {MAX_LIMIT}"]
        else:
            limit = int(raw)
    if errors:
        raise ProblemError(422, "invalid query", errors=errors)
    actor = current_actor()
    if actor.role == Role.REP:
        if rep_email is not None and rep_email != actor.email:
            raise ProblemError(403, "a rep sees its own handoffs only")
        rep_email = actor.email
    rows = services.list_handoffs(db_session(), status=status, rep_email=rep_email, limit=limit)
    return {"handoffs": [handoff_document(h, lead) for h, lead in rows]}


@bp.get("/handoffs/<int:handoff_id>")
@requires(Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER, Role.REP)
def get_handoff(handoff_id: int) -> Any:
    """One handoff with its history: every step, every notification and each delivery try."""
    session = db_session()
    handoff = services.get_handoff(session, handoff_id)
    actor = current_actor()
    if actor.role == Role.REP and handoff.rep_email != actor.email:
        raise ProblemError(403, "a rep sees its own handoffs only")
    lead = services.get_lead_of(session, handoff)
    return {**handoff_document(handoff, lead), **handoff_history(session, handoff)}


@bp.post("/handoffs/<int:handoff_id>/accept")
@requires(Role.ADMIN, Role.REP)
def accept_handoff(handoff_id: int) -> Any:
    session = db_session()
    handoff = services.accept(session, handoff_id, actor=current_actor(), now=utcnow())
    document = handoff_document(handoff)
    session.commit()
    return {"handoff": document}


@bp.post("/handoffs/<int:handoff_id>/reject")
@requires(Role.ADMIN, Role.REP)
def reject_handoff(handoff_id: int) -> Any:
    body = json_body(HandoffRejectIn)
    session = db_session()
    handoff, intake = services.reject(
        session, handoff_id, actor=current_actor(), reason=body.reason, note=body.note,
        revisit_on=body.revisit_on, now=utcnow(),
    )
    assert intake.rejection is not None
    document = {
        "handoff": handoff_document(handoff),
        "rejection": rejection_document(intake.rejection),
        "enrollment": intake.enrollment,
        "routing": {"enrolled": intake.enrollment is not None, "reason": intake.routing_reason},
    }
    session.commit()
    return document
