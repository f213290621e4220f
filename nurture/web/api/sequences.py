"""Sequence documents (JSON or YAML), activation and pause."""

from __future__ import annotations

from typing import Annotated, Any

from flask import Response, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from campaigns import sequences as service
from campaigns.documents import dump_document, parse_document_text
from nurture.clock import utcnow
from nurture.models import Role, Sequence
from nurture.web import db_session, read_body
from nurture.web.api import bp, current_actor, json_body, requires
from nurture.web.problems import ProblemError

EDITORS = (Role.ADMIN, Role.MARKETER)
READERS = (Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER)
class MigrateIn(BaseModel):
    """Move the live enrollments of `from_version` onto the sequence's live version."""

    model_config = ConfigDict(extra="forbid", strict=True)

    from_version: Annotated[int, Field(ge=1, le=1_000_000)]


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


@bp.post("/sequences")
@requires(*EDITORS)
def import_sequence() -> Any:
    is_yaml = request.mimetype in YAML_TYPES
    if not is_yaml and request.mimetype != "application/json":
        raise ProblemError(
            415, "send the document as application/json or application/yaml, "
            f"not {request.mimetype or 'none'}",
        )
    try:
        data = parse_document_text(read_body(), yaml_format=is_yaml)
    except ValueError as exc:
        raise ProblemError(400, str(exc)) from None
    session = db_session()
    imported = service.import_sequence(session, data, actor=current_actor().email, now=utcnow())
    summary = service.sequence_summary(session, imported.sequence)
    session.commit()
    return {**summary, "version": imported.version.version}, 201 if imported.created_version else 200


@bp.get("/sequences")
@requires(*READERS)
def list_sequences() -> Any:
    session = db_session()
    rows = session.execute(select(Sequence).order_by(Sequence.priority, Sequence.id)).scalars()
    today = utcnow().date()
    return {"sequences": [service.sequence_summary(session, s, today=today) for s in rows]}


@bp.get("/sequences/<int:sequence_id>")
@requires(*READERS)
def export_sequence(sequence_id: int) -> Any:
    number = request.args.get("version", type=int)
    session = db_session()
    sequence = service.get_sequence(session, sequence_id)
    version = service.get_version(session, sequence.id, number)
    wants_yaml = request.args.get("format") == "yaml" or (
        request.accept_mimetypes.best_match(["application/json", "application/yaml"])
        == "application/yaml"
    )
    body = dump_document(version.document, yaml_format=wants_yaml)
    return Response(
        body,
        mimetype="application/yaml" if wants_yaml else "application/json",
        headers={"Nurture-Sequence-Version": str(version.version),
                 "Nurture-Sequence-Status": sequence.status.value},
    )


@bp.post("/sequences/<int:sequence_id>/activate")
@requires(*EDITORS)
def activate_sequence(sequence_id: int) -> Any:
    session = db_session()
    now = utcnow()
    sequence = service.activate_sequence(session, sequence_id, now=now, today=now.date())
    summary = service.sequence_summary(session, sequence)
    session.commit()
    return summary


@bp.post("/sequences/<int:sequence_id>/pause")
@requires(*EDITORS)
def pause_sequence(sequence_id: int) -> Any:
    session = db_session()
    sequence = service.pause_sequence(session, sequence_id, now=utcnow())
    summary = service.sequence_summary(session, sequence)
    session.commit()
    return summary


@bp.post("/sequences/<int:sequence_id>/migrate")
@requires(*EDITORS)
def migrate_enrollments(sequence_id: int) -> Any:
    body = json_body(MigrateIn)
    session = db_session()
    result = service.migrate_enrollments(session, sequence_id, body.from_version, now=utcnow())
    session.commit()
    return result
