"""The SLA between marketing and sales: versions (JSON or YAML documents), their approval,
activation and retirement; the same endpoints as the scoring model's."""

from __future__ import annotations

from typing import Any

from flask import request

from nurture.clock import utcnow
from nurture.handoffs import sla as slas
from nurture.scoring.document import load_text
from nurture.web import db_session, read_body
from nurture.web.api import bp, current_actor, requires
from nurture.web.api.scoring import APPROVERS, DECIDERS, EDITORS, READERS, YAML_TYPES
from nurture.web.problems import ProblemError


@bp.post("/slas")
@requires(*EDITORS)
def create_sla() -> Any:
    is_yaml = request.mimetype in YAML_TYPES
    if not is_yaml and request.mimetype != "application/json":
        raise ProblemError(415, "send the SLA as application/json or application/yaml, "
                                f"not {request.mimetype or 'none'}")
    try:
        data = load_text(read_body(), yaml_format=is_yaml)
    except ValueError as exc:
        raise ProblemError(400, str(exc)) from None
    session = db_session()
    sla = slas.create_sla(session, data, actor=current_actor().email, now=utcnow())
    document = slas.sla_summary(session, sla, with_document=True)
    session.commit()
    return document, 201


@bp.get("/slas")
@requires(*READERS)
def list_slas() -> Any:
    session = db_session()
    active = slas.active_sla(session)
    return {"slas": [slas.sla_summary(session, s) for s in slas.list_slas(session)],
            "active_id": active.id if active else None}


@bp.get("/slas/<int:sla_id>")
@requires(*READERS)
def get_sla(sla_id: int) -> Any:
    session = db_session()
    return slas.sla_summary(session, slas.get_sla(session, sla_id), with_document=True)


@bp.post("/slas/<int:sla_id>/approve")
@requires(*APPROVERS)
def approve_sla(sla_id: int) -> Any:
    session = db_session()
    sla = slas.approve_sla(session, sla_id, actor=current_actor(), now=utcnow())
    summary = slas.sla_summary(session, sla)
    session.commit()
    return summary


@bp.post("/slas/<int:sla_id>/withdraw")
@requires(*APPROVERS)
def withdraw_sla_approval(sla_id: int) -> Any:
    session = db_session()
    sla = slas.withdraw_sla_approval(session, sla_id, actor=current_actor(), now=utcnow())
    summary = slas.sla_summary(session, sla)
    session.commit()
    return summary


@bp.post("/slas/<int:sla_id>/activate")
@requires(*DECIDERS)
def activate_sla(sla_id: int) -> Any:
    """409 without both approvals; new handoffs run under it, open ones keep their version."""
    session = db_session()
    sla, _ = slas.activate_sla(session, sla_id, actor=current_actor().email, now=utcnow())
    summary = slas.sla_summary(session, sla)
    session.commit()
    return summary


@bp.post("/slas/<int:sla_id>/retire")
@requires(*DECIDERS)
def retire_sla(sla_id: int) -> Any:
    session = db_session()
    sla = slas.retire_sla(session, sla_id, actor=current_actor().email, now=utcnow())
    summary = slas.sla_summary(session, sla)
    session.commit()
    return summary
