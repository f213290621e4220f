"""An approved document's life: draft → approved (a marketer AND a sales approver) → active →
retired. The scoring model and the SLA both go this way, through this one module.

Versions are immutable: a changed document is a new version. Either approver may withdraw
before activation (the document is a draft again); every approval and withdrawal stays
recorded. Exactly one version is active: activating one retires the one before in the same
transaction. Each kind of document is described once (`Approvable`): its two tables, its
name in messages and how its body is validated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.accounts.services import Actor
from nurture.clock import iso
from nurture.errors import Conflict, Forbidden, InvalidInput, NotFound
from nurture.fields import field_errors
from nurture.models import ApprovalRole, ChangeRequest, DocumentStatus, Role

INSTALLATION = "installation"
"""Who is recorded as approving and activating a default installed on a fresh database."""

MAX_ID = 2**63 - 1


class Parsed(Protocol):
    """A validated document: its name and its body as stored."""

    name: str

    def as_data(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Approvable:
    """One kind of approved document: its tables, its name in messages, its validation."""

    label: str
    """How messages name it: `scoring model`, `SLA`."""
    document: type[Any]
    """The versions' table: id, version, name, document, status, created_*, activated_*,
    retired_*."""
    approval: type[Any]
    """The approvals' table: role, approved_*, withdrawn_* and the column `owner`."""
    owner: str
    """The approval's column holding the version's id."""
    parse: Callable[[Any], Parsed]
    """Validate a decoded body (raises pydantic's ValidationError, paths included)."""


def validate(kind: Approvable, data: Any) -> Parsed:
    """The document validated whole; `InvalidInput` names each path (`engagement[2].points`)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"the {kind.label} must be an object", {"body": ["must be an object"]})
    try:
        return kind.parse(data)
    except ValidationError as exc:
        raise InvalidInput(f"the {kind.label} is invalid", field_errors(exc)) from None


def create(session: Session, kind: Approvable, data: Any, *, actor: str, now: datetime,
           **extra: Any) -> Any:
    """Store the document as the next version, a draft (`extra`: the kind's own columns)."""
    parsed = validate(kind, data)
    version = (session.execute(select(func.max(kind.document.version))).scalar() or 0) + 1
    row = kind.document(version=version, name=parsed.name, document=parsed.as_data(),
                        status=DocumentStatus.DRAFT, created_by=actor, created_at=now, **extra)
    session.add(row)
    session.flush()
    return row


def get(session: Session, kind: Approvable, row_id: int) -> Any:
    row = session.get(kind.document, row_id) if 0 < row_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"no {kind.label} with id {row_id}")
    return row


def list_versions(session: Session, kind: Approvable) -> list[Any]:
    return list(session.execute(select(kind.document).order_by(kind.document.version.desc()))
                .scalars())


def active(session: Session, kind: Approvable) -> Any | None:
    return session.execute(
        select(kind.document).where(kind.document.status == DocumentStatus.ACTIVE)
    ).scalar_one_or_none()


def _approval_role(kind: Approvable, actor: Actor) -> ApprovalRole:
    if actor.role == Role.MARKETER:
        return ApprovalRole.MARKETER
    if actor.role == Role.SALES_APPROVER:
        return ApprovalRole.SALES_APPROVER
    raise Forbidden(f"only a marketer or a sales approver approves a {kind.label}")


def _live_approvals(session: Session, kind: Approvable, row_id: int) -> dict[ApprovalRole, Any]:
    approval = kind.approval
    rows = session.execute(
        select(approval).where(getattr(approval, kind.owner) == row_id,
                               approval.withdrawn_at.is_(None))
    ).scalars()
    return {row.role: row for row in rows}


def _reviewable(kind: Approvable, row: Any, action: str) -> None:
    if row.status not in (DocumentStatus.DRAFT, DocumentStatus.APPROVED):
        raise Conflict(f"{kind.label} version {row.version} is {row.status.value}; "
                       f"only a draft or approved {kind.label} can be {action}",
                       {"status": [row.status.value]})


def approve(session: Session, kind: Approvable, row_id: int, *, actor: Actor,
            now: datetime) -> Any:
    """Record the actor's approval for its role; approving again changes nothing."""
    role = _approval_role(kind, actor)
    row = get(session, kind, row_id)
    _reviewable(kind, row, "approved")
    if role == ApprovalRole.SALES_APPROVER and row.created_by.lower() == actor.email.lower():
        raise Conflict(f"you wrote {kind.label} version {row.version}; sales signs what it did "
                       "not write, so another sales approver must approve it",
                       {"approvals": ["the author cannot give the sales approval"]})
    roles = set(_live_approvals(session, kind, row.id))
    if role not in roles:
        session.add(kind.approval(**{kind.owner: row.id}, role=role, approved_by=actor.email,
                                  approved_at=now))
        roles.add(role)
    if roles == set(ApprovalRole):
        row.status = DocumentStatus.APPROVED
    session.flush()
    return row


def request_changes(session: Session, kind: Approvable, row_id: int, *, actor: Actor,
                    comment: str, now: datetime) -> Any:
    """A sales approver sends the version back to its author with a comment: every live
    approval is withdrawn (the version is a draft that nobody has submitted) and the comment
    is recorded for the author (`ChangeRequest`). The author drafts a new version."""
    if actor.role != Role.SALES_APPROVER:
        raise Forbidden(f"only a sales approver requests changes to a {kind.label}")
    text = (comment or "").strip()
    if not text:
        raise InvalidInput("say what to change", {"comment": ["required when requesting changes"]})
    row = get(session, kind, row_id)
    _reviewable(kind, row, "sent back")
    for approval in _live_approvals(session, kind, row.id).values():
        approval.withdrawn_by = actor.email
        approval.withdrawn_at = now
    row.status = DocumentStatus.DRAFT
    session.add(ChangeRequest(document_kind=kind.document.__tablename__, document_id=row.id,
                              version=row.version, author=row.created_by, requested_by=actor.email, comment=text,
                              requested_at=now))
    session.flush()
    return row


def change_requests(session: Session, kind: Approvable, row_ids: list[int]
                    ) -> dict[int, list[Any]]:
    """The change requests of these versions, newest first, by version id."""
    found: dict[int, list[Any]] = {row_id: [] for row_id in row_ids}
    if not row_ids:
        return found
    for request in session.execute(
        select(ChangeRequest).where(ChangeRequest.document_kind == kind.document.__tablename__,
                                    ChangeRequest.document_id.in_(row_ids))
        .order_by(ChangeRequest.requested_at.desc(), ChangeRequest.id.desc())
    ).scalars():
        found[request.document_id].append(request)
    return found


def withdraw(session: Session, kind: Approvable, row_id: int, *, actor: Actor,
             now: datetime) -> Any:
    """Withdraw the approval of the actor's role (before activation); the version is a draft."""
    role = _approval_role(kind, actor)
    row = get(session, kind, row_id)
    _reviewable(kind, row, "withdrawn from")
    approval = _live_approvals(session, kind, row.id).get(role)
    if approval is None:
        raise Conflict(f"{kind.label} version {row.version} has no {role.value} approval "
                       "to withdraw", {"approvals": [f"no {role.value} approval"]})
    approval.withdrawn_by = actor.email
    approval.withdrawn_at = now
    row.status = DocumentStatus.DRAFT
    session.flush()
    return row


def activate(session: Session, kind: Approvable, row_id: int, *, actor: str,
             now: datetime) -> tuple[Any, Any | None, bool]:
    """Make the approved version the active one, retiring the one before.

    Returns (version, retired, changed): `changed` is False when it was active already."""
    row = get(session, kind, row_id)
    if row.status == DocumentStatus.ACTIVE:
        return row, None, False
    live = _live_approvals(session, kind, row.id)
    missing = [role.value for role in ApprovalRole if role not in live]
    if row.status != DocumentStatus.APPROVED or missing:
        raise Conflict(
            f"{kind.label} version {row.version} cannot be activated: it is "
            f"{row.status.value}" + (f" and lacks the {' and '.join(missing)} approval"
                                     if missing else ""),
            {"approvals": [f"{role} approval required" for role in missing]} if missing
            else {"status": [row.status.value]},
        )
    previous = active(session, kind)
    if previous is not None:
        previous.status = DocumentStatus.RETIRED
        previous.retired_by = actor
        previous.retired_at = now
        session.flush()  # the one-active index sees the old one go first
    row.status = DocumentStatus.ACTIVE
    row.activated_by = actor
    row.activated_at = now
    session.flush()
    return row, previous, True


def retire(session: Session, kind: Approvable, row_id: int, *, actor: str,
           now: datetime) -> Any:
    """Take the version out of use for good (retiring the active one leaves none active)."""
    row = get(session, kind, row_id)
    if row.status == DocumentStatus.RETIRED:
        raise Conflict(f"{kind.label} version {row.version} is already retired",
                       {"status": ["retired"]})
    row.status = DocumentStatus.RETIRED
    row.retired_by = actor
    row.retired_at = now
    session.flush()
    return row


def install(session: Session, kind: Approvable, data: Any, *, now: datetime,
            **extra: Any) -> Any:
    """Store `data` as a version approved by both roles as `installation`, ready to activate."""
    row = create(session, kind, data, actor=INSTALLATION, now=now, **extra)
    for role in ApprovalRole:
        session.add(kind.approval(**{kind.owner: row.id}, role=role, approved_by=INSTALLATION,
                                  approved_at=now))
    row.status = DocumentStatus.APPROVED
    session.flush()
    return row


def summary(session: Session, kind: Approvable, row: Any) -> dict[str, Any]:
    """The version as the API shows it (approvals newest first, withdrawn ones included)."""
    approval = kind.approval
    approvals = session.execute(
        select(approval).where(getattr(approval, kind.owner) == row.id)
        .order_by(approval.approved_at.desc(), approval.id.desc())
    ).scalars()
    return {
        "id": row.id,
        "version": row.version,
        "name": row.name,
        "status": row.status.value,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "activated_at": iso(row.activated_at),
        "retired_at": iso(row.retired_at),
        "approvals": [
            {"role": a.role.value, "approved_by": a.approved_by, "approved_at": iso(a.approved_at),
             "withdrawn_by": a.withdrawn_by, "withdrawn_at": iso(a.withdrawn_at)}
            for a in approvals
        ],
    }
