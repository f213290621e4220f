"""Erasing a lead for GDPR (Art. 17): its personal data gone, the numbers it counted in kept.

The lead row stays, stripped, so every aggregate it is part of (report rollups, journeys,
scores, sequence and step counts, outcomes) stays as it was. What is removed or replaced:

- the lead's email (replaced by `erased-<id>@erased.invalid`: unique, never deliverable),
  names, company, title, time zone, CRM id and attributes;
- the free-text notes of its rejections and their CRM ids;
- the address and subject of every email it was sent (a subject may carry its name);
- the URL and raw properties (IP address, user agent, provider payload) of its engagement;
- the details of its handoffs' history, and the bodies of their notifications (the CRM
  webhook carried the lead); notifications not yet delivered are never sent;
- a suppression of its address (the address itself is personal data).

Its live enrollments exit (`erased`); an open handoff is closed (expired, closed by
`erased`; an accepted one loses its stall timer). The lead moves to `disqualified` with the cause `erased`. Kept: industry, company
size, country and source (the report groupings, not a person), the owner (a rep), every
timestamp, count, score and amount.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture import rollups
from nurture.errors import Conflict
from nurture.leads.services import change_stage, get_lead
from nurture.models import (
    LIVE_ENROLLMENT,
    EngagementEvent,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Handoff,
    HandoffEvent,
    HandoffNotification,
    HandoffStatus,
    Lead,
    LifecycleStage,
    Message,
    MessageStatus,
    NotificationStatus,
    Rejection,
    Suppression,
)

ERASED_DOMAIN = "erased.invalid"
"""The domain of an erased lead's placeholder address (.invalid never resolves: RFC 2606)."""

ERASED = "erased"
"""Exit reason, lifecycle cause and handoff closer of an erasure."""

ERASED_SUBJECT = "(erased)"

PERSONAL_FIELDS = ("first_name", "last_name", "company", "title", "timezone", "crm_id")
"""Profile fields cleared (industry, company size, country, source and owner are kept)."""


def erased_address(lead_id: int) -> str:
    return f"erased-{lead_id}@{ERASED_DOMAIN}"


def is_erased(lead: Lead) -> bool:
    return lead.email.endswith("@" + ERASED_DOMAIN)


def erase_lead(session: Session, lead_id: int, *, now: datetime) -> Lead:
    """Remove the lead's personal data everywhere it is kept, leaving its numbers; `Conflict`
    if it was erased already."""
    lead = get_lead(session, lead_id)
    if is_erased(lead):
        raise Conflict("this lead was erased already")
    session.execute(select(Lead.id).where(Lead.id == lead.id).with_for_update())
    address = lead.email
    _end_enrollments(session, lead.id, now)
    _close_handoffs(session, lead.id, now)
    session.execute(update(Rejection).where(Rejection.lead_id == lead.id)
                    .values(note=None, crm_id=None).execution_options(synchronize_session=False))
    session.execute(update(Message).where(Message.lead_id == lead.id)
                    .values(to_address=erased_address(lead.id), subject=ERASED_SUBJECT,
                            last_error=None)
                    .execution_options(synchronize_session=False))
    session.execute(update(EngagementEvent).where(EngagementEvent.lead_id == lead.id)
                    .values(url=None, properties={}, machine_reason=None)
                    .execution_options(synchronize_session=False))
    session.execute(Suppression.__table__.delete().where(Suppression.email == address))
    for name in PERSONAL_FIELDS:
        setattr(lead, name, None)
    lead.attributes = {}
    lead.email = erased_address(lead.id)
    lead.updated_at = now
    change_stage(session, lead, LifecycleStage.DISQUALIFIED, cause=ERASED, now=now)
    session.flush()
    return lead


def _end_enrollments(session: Session, lead_id: int, now: datetime) -> None:
    live = session.execute(
        select(Enrollment).where(Enrollment.lead_id == lead_id,
                                 Enrollment.status.in_(LIVE_ENROLLMENT)).with_for_update()
    ).scalars().all()
    for enrollment in live:
        session.add(EnrollmentEvent(enrollment_id=enrollment.id, step_id=enrollment.step_id,
                                    kind="exited", detail=ERASED, at=now))
        rollups.exited(session, enrollment.sequence_id, enrollment.step_id, ERASED, at=now)
        enrollment.status = EnrollmentStatus.EXITED
        enrollment.exit_reason = ERASED
        enrollment.finished_at = now
        enrollment.next_due_at = None
        enrollment.claimed_until = None
    session.execute(
        update(Message)
        .where(Message.lead_id == lead_id, Message.status == MessageStatus.QUEUED)
        .values(status=MessageStatus.SKIPPED)
        .execution_options(synchronize_session=False)
    )


def _close_handoffs(session: Session, lead_id: int, now: datetime) -> None:
    handoff_ids = select(Handoff.id).where(Handoff.lead_id == lead_id).scalar_subquery()
    session.execute(
        update(Handoff)
        .where(Handoff.lead_id == lead_id, Handoff.status == HandoffStatus.OPEN)
        .values(status=HandoffStatus.EXPIRED, next_sla_at=None, closed_by=ERASED,
                closed_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(  # accepted: no stall timer returns an erased lead to nurture
        update(Handoff)
        .where(Handoff.lead_id == lead_id, Handoff.status == HandoffStatus.ACCEPTED)
        .values(stalls_at=None).execution_options(synchronize_session=False)
    )
    session.execute(update(HandoffEvent).where(HandoffEvent.handoff_id.in_(handoff_ids))
                    .values(detail=None).execution_options(synchronize_session=False))
    session.execute(
        update(HandoffNotification)
        .where(HandoffNotification.handoff_id.in_(handoff_ids),
               HandoffNotification.status == NotificationStatus.PENDING)
        .values(status=NotificationStatus.FAILED, next_attempt_at=None,
                last_error="the lead was erased")
        .execution_options(synchronize_session=False)
    )
    session.execute(update(HandoffNotification)
                    .where(HandoffNotification.handoff_id.in_(handoff_ids))
                    .values(body=None).execution_options(synchronize_session=False))
