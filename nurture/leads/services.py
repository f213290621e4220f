"""Lead intake: create or update a lead by email, record a rejection, describe a lead.

Services take a session and plain values, flush but never commit (the caller owns the
transaction), and take `now` so tests control time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import rollups
from nurture.clock import iso as _iso
from nurture.db import insert_ignoring_conflicts
from nurture.errors import NotFound
from nurture.models import (
    Collateral,
    CollateralVersion,
    EngagementEvent,
    Enrollment,
    Lead,
    LifecycleChange,
    LifecycleStage,
    Message,
    MessageCollateral,
    Rejection,
    RejectionReason,
    Sequence,
)

RECENT_REJECTIONS = 50
"""How many of a lead's rejections its document lists, newest first."""

RECENT_ENROLLMENTS = 50
"""How many of a lead's enrollments its document lists, newest first."""

RECENT_MESSAGES = 50
"""How many of the emails a lead received its document lists, newest first."""

RECENT_EVENTS = 50
"""How many of a lead's engagement events its document lists, newest first."""



@dataclass(frozen=True)
class RejectionOutcome:
    rejection: Rejection
    lead: Lead
    created: bool


def upsert_lead(
    session: Session, email: str, fields: Mapping[str, Any], *, now: datetime
) -> tuple[Lead, bool]:
    """Create the lead with this (normalised) email, or update the fields given; (lead, created).

    Safe under concurrency: the insert does nothing on a conflicting email, and the loser of
    a race updates the winner's row instead of failing.
    """
    values = {name: fields[name] for name in Lead.PROFILE_FIELDS if name in fields}
    stmt = (
        insert_ignoring_conflicts(session, Lead, index_elements=["email"])
        .values(
            email=email,
            **{**values, "attributes": values.get("attributes") or {}},
            lifecycle_stage=LifecycleStage.LEAD,
            created_at=now,
            updated_at=now,
        )
        .returning(Lead)  # the new row itself: no second round trip to read it
    )
    lead = session.scalars(stmt).one_or_none()
    if lead is not None:
        session.add(
            LifecycleChange(
                lead_id=lead.id, from_stage=None, to_stage=LifecycleStage.LEAD,
                cause="created", changed_at=now,
            )
        )
        return lead, True

    lead = session.execute(select(Lead).where(Lead.email == email)).scalar_one()
    changed = False
    for name, value in values.items():
        if name == "attributes":
            # attributes merge key by key; a key sent as null is removed
            merged = {**(lead.attributes or {}), **(value or {})}
            value = {k: v for k, v in merged.items() if v is not None}
        if getattr(lead, name) != value:
            setattr(lead, name, value)
            changed = True
    if changed:
        lead.updated_at = now
    session.flush()
    return lead, False


def change_stage(
    session: Session, lead: Lead, stage: LifecycleStage, *, cause: str, now: datetime
) -> bool:
    """Move the lead to `stage`, recording the move; False if it was already there."""
    if lead.lifecycle_stage == stage:
        return False
    session.add(
        LifecycleChange(
            lead_id=lead.id, from_stage=lead.lifecycle_stage, to_stage=stage,
            cause=cause, changed_at=now,
        )
    )
    lead.lifecycle_stage = stage
    lead.updated_at = now
    session.flush()
    return True


def record_rejection(
    session: Session,
    email: str,
    lead_fields: Mapping[str, Any],
    *,
    rep_email: str,
    reason: RejectionReason,
    note: str | None = None,
    revisit_on: date | None = None,
    crm_id: str | None = None,
    rejected_at: datetime | None = None,
    now: datetime,
) -> RejectionOutcome:
    """Sales gave the lead back: upsert it, record why, and put it in nurture.

    A rejection whose `crm_id` was recorded before is the CRM retrying: the stored rejection
    is returned (created=False) and nothing changes.
    """
    if crm_id is not None:
        existing = session.execute(
            select(Rejection).where(Rejection.crm_id == crm_id)
        ).scalar_one_or_none()
        if existing is not None:
            return _outcome(session, existing, created=False)

    lead, _ = upsert_lead(session, email, lead_fields, now=now)
    stmt = (
        insert_ignoring_conflicts(session, Rejection, index_elements=["crm_id"])
        .values(
            lead_id=lead.id, reason=reason, note=note, revisit_on=revisit_on,
            rep_email=rep_email, crm_id=crm_id, rejected_at=rejected_at or now, created_at=now,
        )
        .returning(Rejection.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    if new_id is None:  # a concurrent retry with the same crm_id stored it first
        existing = session.execute(select(Rejection).where(Rejection.crm_id == crm_id)).scalar_one()
        return _outcome(session, existing, created=False)
    change_stage(session, lead, LifecycleStage.NURTURING, cause=f"rejected:{reason}", now=now)
    rejection = session.get(Rejection, new_id)
    assert rejection is not None
    rollups.entered_nurture(session, lead, rejection=rejection, at=rejection.rejected_at)
    return _outcome(session, rejection, created=True)


def _outcome(session: Session, rejection: Rejection, *, created: bool) -> RejectionOutcome:
    lead = session.get(Lead, rejection.lead_id)
    assert lead is not None
    return RejectionOutcome(rejection=rejection, lead=lead, created=created)


MAX_ID = 2**63 - 1
"""Largest key a BIGINT holds; larger ids cannot exist."""


def get_lead(session: Session, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id) if 0 < lead_id <= MAX_ID else None
    if lead is None:
        raise NotFound(f"no lead with id {lead_id}")
    return lead


def find_lead_by_email(session: Session, email: str) -> Lead:
    lead = session.execute(select(Lead).where(Lead.email == email)).scalar_one_or_none()
    if lead is None:
        raise NotFound(f"no lead with email {email}")
    return lead


def rejection_document(rejection: Rejection) -> dict[str, Any]:
    return {
        "id": rejection.id,
        "lead_id": rejection.lead_id,
        "reason": rejection.reason.value,
        "note": rejection.note,
        "revisit_on": rejection.revisit_on.isoformat() if rejection.revisit_on else None,
        "rep_email": rejection.rep_email,
        "crm_id": rejection.crm_id,
        "rejected_at": _iso(rejection.rejected_at),
    }


def lead_document(session: Session, lead: Lead, *, new: bool = False) -> dict[str, Any]:
    """The lead as the API shows it (CONTRACT.md: GET /api/v1/leads/{id}).

    `new`: the lead was created in this transaction, so it has no history to look up.
    """
    rejections = [] if new else session.execute(
        select(Rejection)
        .where(Rejection.lead_id == lead.id)
        .order_by(Rejection.rejected_at.desc(), Rejection.id.desc())
        .limit(RECENT_REJECTIONS)
    ).scalars()
    return {
        "id": lead.id,
        "email": lead.email,
        **{name: getattr(lead, name) for name in Lead.PROFILE_FIELDS if name != "attributes"},
        "attributes": lead.attributes or {},
        "lifecycle_stage": lead.lifecycle_stage.value,
        "created_at": _iso(lead.created_at),
        "updated_at": _iso(lead.updated_at),
        # scoring, handoffs and events are filled in by their own parts
        "score": {
            "total": 0, "fit": 0, "engagement": 0, "model_version": None, "explanation": [],
        },
        "enrollments": [] if new else [
            enrollment_document(e, s)
            for e, s in session.execute(
                select(Enrollment, Sequence)
                .join(Sequence, Sequence.id == Enrollment.sequence_id)
                .where(Enrollment.lead_id == lead.id)
                .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())
                .limit(RECENT_ENROLLMENTS)
            ).all()
        ],
        "messages": [] if new else messages_received(session, lead.id),
        "handoffs": [],
        "rejections": [rejection_document(r) for r in rejections],
        "events": [] if new else recent_events(session, lead.id),
    }


def recent_events(session: Session, lead_id: int) -> list[dict[str, Any]]:
    """The lead's latest engagement, newest first: what happened, when, who told us, and
    whether it looked like a machine's (scoring ignores those unless a rule says otherwise)."""
    rows = session.execute(
        select(EngagementEvent, Message.message_id)
        .outerjoin(Message, Message.id == EngagementEvent.message_id)
        .where(EngagementEvent.lead_id == lead_id)
        .order_by(EngagementEvent.occurred_at.desc(), EngagementEvent.id.desc())
        .limit(RECENT_EVENTS)
    ).all()
    return [
        {
            "id": event.id,
            "type": event.type.value,
            "occurred_at": _iso(event.occurred_at),
            "source": event.source,
            "message_id": message_id,
            "url": event.url,
            "collateral_version_id": event.collateral_version_id,
            "bounce_class": event.bounce_class,
            "is_machine": event.is_machine,
            "machine_reason": event.machine_reason,
            "properties": event.properties or {},
        }
        for event, message_id in rows
    ]


def messages_received(session: Session, lead_id: int) -> list[dict[str, Any]]:
    """The emails the lead was sent, newest first, each with the collateral versions it featured
    (across every nurture cycle: old enrollments keep their messages)."""
    rows = session.execute(
        select(Message, Enrollment.sequence_id)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .where(Message.lead_id == lead_id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(RECENT_MESSAGES)
    ).all()
    featured: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for message_id, key, version in session.execute(
            select(MessageCollateral.message_id, Collateral.key, CollateralVersion)
            .join(CollateralVersion,
                  CollateralVersion.id == MessageCollateral.collateral_version_id)
            .join(Collateral, Collateral.id == CollateralVersion.collateral_id)
            .where(MessageCollateral.message_id.in_([m.id for m, _ in rows]))
        ).all():
            featured.setdefault(message_id, []).append(
                {"key": key, "version": version.version, "title": version.title}
            )
    return [
        {
            "message_id": m.message_id,
            "sequence_id": sequence_id,
            "enrollment_id": m.enrollment_id,
            "step_id": m.step_id,
            "subject": m.subject,
            "status": m.status.value,
            "sent_at": _iso(m.sent_at),
            "collateral": featured.get(m.id, []),
        }
        for m, sequence_id in rows
    ]


def enrollment_document(enrollment: Enrollment, sequence: Sequence) -> dict[str, Any]:
    """An enrollment as the API shows it (in the lead, and in a rejection's answer)."""
    return {
        "id": enrollment.id,
        "sequence_id": sequence.id,
        "sequence_key": sequence.key,
        "sequence_name": sequence.name,
        "version_id": enrollment.version_id,
        "status": enrollment.status.value,
        "step_id": enrollment.step_id,
        "next_due_at": _iso(enrollment.next_due_at),
        "enrolled_at": _iso(enrollment.enrolled_at),
        "finished_at": _iso(enrollment.finished_at),
        "exit_reason": enrollment.exit_reason,
    }


