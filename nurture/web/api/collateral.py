"""Collateral and its sales approval over the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import request
from pydantic import ValidationError
from sqlalchemy import select

from campaigns import collateral as service
from campaigns.schemas import (
    CollateralFileCreateIn,
    CollateralFileIn,
    CollateralIn,
    CollateralVersionIn,
    ReviewIn,
)
from campaigns.uploads import MAX_UPLOAD_BYTES, public_url, store_upload
from nurture.clock import iso, utcnow
from nurture.fields import field_errors
from nurture.models import Collateral, CollateralVersion, Role
from nurture.web import db_session, settings
from nurture.web.api import bp, current_actor, json_body, requires
from nurture.web.problems import ProblemError

ANY_STAFF = (Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER)


def version_document(version: CollateralVersion, key: str) -> dict[str, Any]:
    return {
        "id": version.id,
        "key": key,
        "version": version.version,
        "title": version.title,
        "url": version.url,
        "file_name": version.file_name,
        "content_type": version.content_type,
        "funnel_stage": version.funnel_stage.value,
        "personas": version.personas,
        "industries": version.industries,
        "expires_on": version.expires_on.isoformat() if version.expires_on else None,
        "status": version.status.value,
        "created_at": iso(version.created_at),
    }


def _version_fields(json_model: type, form_model: type) -> dict[str, Any]:
    """A version's fields from JSON (with a `url`) or from a multipart form with a `file`."""
    if request.mimetype != "multipart/form-data":
        return json_body(json_model).fields()
    request.max_content_length = MAX_UPLOAD_BYTES + 64 * 1024  # the file and its form fields
    form = {k: v for k, v in request.form.items() if k != "file"}
    try:
        fields = form_model.from_form(form).model_dump()
    except ValidationError as exc:
        raise ProblemError(422, "the form is invalid", errors=field_errors(exc)) from None
    upload = request.files.get("file")
    if upload is None:
        raise ProblemError(422, "no file", errors={"file": ["send the file as the `file` part"]})
    stored = store_upload(upload.stream, upload.filename, Path(settings().instance_path) / "uploads")
    return fields | {"file_path": stored.path, "file_name": stored.file_name,
                     "content_type": stored.content_type}


def _finish_upload(version: CollateralVersion) -> None:
    """An uploaded file is linked from emails at its public address (once approved)."""
    if version.file_path and not version.url:
        version.url = public_url(settings().base_url, version.id, version.file_name or "")


@bp.post("/collateral")
@requires(Role.ADMIN, Role.MARKETER)
def create_collateral() -> Any:
    fields = _version_fields(CollateralIn, CollateralFileCreateIn)
    session = db_session()
    key = fields.pop("key")
    version = service.create_collateral(session, key, fields, actor=current_actor(), now=utcnow())
    _finish_upload(version)
    document = version_document(version, key)
    session.commit()
    return document, 201


@bp.post("/collateral/<key>/versions")
@requires(Role.ADMIN, Role.MARKETER)
def add_collateral_version(key: str) -> Any:
    fields = _version_fields(CollateralVersionIn, CollateralFileIn)
    session = db_session()
    version = service.add_version(session, key, fields, actor=current_actor(), now=utcnow())
    _finish_upload(version)
    document = version_document(version, key)
    session.commit()
    return document, 201


@bp.get("/collateral/<key>")
@requires(*ANY_STAFF)
def get_collateral(key: str) -> Any:
    session = db_session()
    collateral = service.get_collateral(session, key)
    versions = session.execute(
        select(CollateralVersion)
        .where(CollateralVersion.collateral_id == collateral.id)
        .order_by(CollateralVersion.version.desc())
    ).scalars().all()
    return {
        "key": collateral.key,
        "versions": [
            {
                **version_document(v, key),
                "history": [
                    {"from": t.from_status.value if t.from_status else None,
                     "to": t.to_status.value, "by": t.actor_email, "comment": t.comment,
                     "at": iso(t.at)}
                    for t in service.history(session, v.id)
                ],
            }
            for v in versions
        ],
    }


def _review(version_id: int, action: str) -> Any:
    body = json_body(ReviewIn) if request.content_length else ReviewIn()
    session = db_session()
    version = service.transition(
        session, version_id, action, actor=current_actor(), comment=body.comment,
        now=utcnow(),
    )
    collateral = session.get(Collateral, version.collateral_id)
    assert collateral is not None
    document = version_document(version, collateral.key)
    session.commit()
    return document


# One route per action, so the route table and the OpenAPI document name each one.
# The roles here admit any staff token; the workflow decides who may do what (403 otherwise).


@bp.post("/collateral/versions/<int:version_id>/submit")
@requires(*ANY_STAFF)
def submit_collateral(version_id: int) -> Any:
    return _review(version_id, "submit")


@bp.post("/collateral/versions/<int:version_id>/approve")
@requires(*ANY_STAFF)
def approve_collateral(version_id: int) -> Any:
    return _review(version_id, "approve")


@bp.post("/collateral/versions/<int:version_id>/request-changes")
@requires(*ANY_STAFF)
def request_collateral_changes(version_id: int) -> Any:
    return _review(version_id, "request_changes")


@bp.post("/collateral/versions/<int:version_id>/retire")
@requires(*ANY_STAFF)
def retire_collateral(version_id: int) -> Any:
    return _review(version_id, "retire")
