"""The sales approvers' queue: everything waiting for their signature, oldest first, and
the history of their decisions.

- a collateral version is waiting once it is `submitted`;
- a scoring model or SLA version is waiting once a marketer has approved it (that approval is
  marketing's submission) and no sales approval is recorded; a sales approver who requests
  changes withdraws both, so it leaves the queue until marketing submits again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.approvals import lifecycle
from nurture.approvals.lifecycle import Approvable
from nurture.handoffs.sla import SLA
from nurture.models import (
    ApprovalRole,
    ChangeRequest,
    Collateral,
    CollateralStatus,
    CollateralTransition,
    CollateralVersion,
    DocumentStatus,
    User,
)
from nurture.scoring.lifecycle import SCORING_MODEL

EXPIRY_WARNING_DAYS = 30
"""Collateral that expires within this many days is flagged when it is approved."""

HISTORY_LIMIT = 200
"""Decisions the history shows (newest first)."""

KINDS: dict[str, Approvable] = {"scoring_model": SCORING_MODEL, "sla": SLA}
"""The approved documents by the name the queue gives them."""

LABELS = {"collateral": "Collateral", "scoring_model": "Scoring model", "sla": "SLA"}


@dataclass(frozen=True)
class Item:
    """One thing waiting for a sales approver."""

    kind: str
    """`collateral`, `scoring_model` or `sla`."""
    id: int
    """The version's id."""
    title: str
    version: int
    asked_by: str
    asked_at: datetime
    expires_on: date | None = None
    expiring: bool = False

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def expiring(expires_on: date | None, *, today: date) -> bool:
    """Whether approving it now is worth a warning: it expires within 30 days (or has)."""
    return expires_on is not None and expires_on <= today + timedelta(days=EXPIRY_WARNING_DAYS)


def waiting(session: Session, *, today: date) -> list[Item]:
    """Everything waiting for a sales approver, the longest-waiting first."""
    items = _collateral_waiting(session, today=today)
    for key, kind in KINDS.items():
        items.extend(_documents_waiting(session, key, kind))
    return sorted(items, key=lambda item: (item.asked_at, item.kind, item.id))


def _collateral_waiting(session: Session, *, today: date) -> list[Item]:
    rows = session.execute(
        select(CollateralVersion, Collateral.key)
        .join(Collateral, Collateral.id == CollateralVersion.collateral_id)
        .where(CollateralVersion.status == CollateralStatus.SUBMITTED)
    ).all()
    submitted = submissions(session, [v.id for v, _ in rows])
    items = []
    for version, _key in rows:
        by, at = submitted.get(version.id, ("?", version.created_at))
        items.append(Item("collateral", version.id, version.title, version.version, by, at,
                          version.expires_on, expiring(version.expires_on, today=today)))
    return items


def submissions(session: Session, version_ids: list[int]) -> dict[int, tuple[str, datetime]]:
    """Who last submitted each collateral version, and when."""
    found: dict[int, tuple[str, datetime]] = {}
    if not version_ids:
        return found
    for version_id, email, at in session.execute(
        select(CollateralTransition.version_id, CollateralTransition.actor_email,
               CollateralTransition.at)
        .where(CollateralTransition.version_id.in_(version_ids),
               CollateralTransition.to_status == CollateralStatus.SUBMITTED)
        .order_by(CollateralTransition.at, CollateralTransition.id)
    ).tuples():
        found[version_id] = (email, at)
    return found


def _documents_waiting(session: Session, key: str, kind: Approvable) -> list[Item]:
    approval = kind.approval
    owner = getattr(approval, kind.owner)
    rows = session.execute(
        select(kind.document, approval)
        .join(approval, owner == kind.document.id)
        .where(kind.document.status == DocumentStatus.DRAFT,
               approval.withdrawn_at.is_(None), approval.role == ApprovalRole.MARKETER)
    ).all()
    return [Item(key, row.id, row.name, row.version, marketer.approved_by, marketer.approved_at)
            for row, marketer in rows]


def submitted_by(session: Session, kind: Approvable, row_id: int) -> tuple[str, datetime] | None:
    """The live marketer approval of a version (marketing's submission), if any."""
    approval = kind.approval
    found = session.execute(
        select(approval.approved_by, approval.approved_at)
        .where(getattr(approval, kind.owner) == row_id, approval.withdrawn_at.is_(None),
               approval.role == ApprovalRole.MARKETER)
    ).first()
    return (found[0], found[1]) if found else None


@dataclass(frozen=True)
class Decision:
    """One decision of a sales approver."""

    kind: str
    id: int
    title: str
    version: int
    decision: str
    """`approved` or `changes_requested`."""
    at: datetime
    comment: str | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def decisions(session: Session, *, user_id: int | None, email: str,
              limit: int = HISTORY_LIMIT) -> list[Decision]:
    """The approver's decisions, newest first: collateral approved or sent back, scoring
    models and SLAs approved or sent back."""
    found: list[Decision] = []
    if user_id is not None:
        for transition, version in session.execute(
            select(CollateralTransition, CollateralVersion)
            .join(CollateralVersion, CollateralVersion.id == CollateralTransition.version_id)
            .where(CollateralTransition.actor_id == user_id,
                   CollateralTransition.to_status.in_((CollateralStatus.APPROVED,
                                                       CollateralStatus.CHANGES_REQUESTED)))
            .order_by(CollateralTransition.at.desc()).limit(limit)
        ).tuples():
            flags = []
            if (transition.to_status == CollateralStatus.APPROVED
                    and expiring(version.expires_on, today=transition.at.date())):
                flags.append(f"expires {version.expires_on.isoformat()}")  # type: ignore[union-attr]
            found.append(Decision("collateral", version.id, version.title, version.version,
                                  transition.to_status.value, transition.at, transition.comment,
                                  flags))
    for key, kind in KINDS.items():
        approval = kind.approval
        for row, given in session.execute(
            select(kind.document, approval)
            .join(approval, getattr(approval, kind.owner) == kind.document.id)
            .where(approval.approved_by == email, approval.role == ApprovalRole.SALES_APPROVER)
            .order_by(approval.approved_at.desc()).limit(limit)
        ).tuples():
            flags = ["withdrawn"] if given.withdrawn_at is not None else []
            found.append(Decision(key, row.id, row.name, row.version, "approved",
                                  given.approved_at, None, flags))
        for request, row in session.execute(
            select(ChangeRequest, kind.document)
            .join(kind.document, kind.document.id == ChangeRequest.document_id)
            .where(ChangeRequest.document_kind == kind.document.__tablename__,
                   ChangeRequest.requested_by == email)
            .order_by(ChangeRequest.requested_at.desc()).limit(limit)
        ).tuples():
            found.append(Decision(key, row.id, row.name, row.version, "changes_requested",
                                  request.requested_at, request.comment))
    found.sort(key=lambda d: d.at, reverse=True)
    return found[:limit]


def recipients(session: Session, emails: list[str | None],
               user_ids: list[int | None] | None = None) -> list[User]:
    """The active users among these addresses and ids (an author recorded as `cli` or
    `installation` gets no email)."""
    wanted_emails = {e.lower() for e in emails if e}
    wanted_ids = {i for i in user_ids or [] if i is not None}
    if not wanted_emails and not wanted_ids:
        return []
    users = session.execute(select(User).where(
        (User.email.in_(wanted_emails)) | (User.id.in_(wanted_ids)))).scalars()
    return [u for u in users if u.is_active]


def collateral_authors(session: Session, version: CollateralVersion) -> list[User]:
    """Who a comment on a collateral version reaches: its author and whoever submitted it."""
    submitters = session.execute(
        select(CollateralTransition.actor_id).where(
            CollateralTransition.version_id == version.id,
            CollateralTransition.to_status == CollateralStatus.SUBMITTED)
    ).scalars().all()
    return recipients(session, [], [version.created_by, *submitters])


def document_authors(session: Session, kind: Approvable, row: Any,
                     submitter: str | None) -> list[User]:
    """Who a comment on a scoring model or SLA version reaches: its author and the marketer
    who submitted it."""
    return recipients(session, [row.created_by, submitter])


def change_requests_of(session: Session, key: str, row_ids: list[int]) -> dict[int, list[Any]]:
    return lifecycle.change_requests(session, KINDS[key], row_ids)
