"""What a marketer does to one lead by hand: enroll it in a chosen sequence, take it out of
one, suppress its address. The admin's lead page and its bulk actions call these.

Each raises `Conflict` with a sentence a marketer can act on when the lead cannot take the
action (a bulk action counts them by that sentence).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from campaigns.documents import version_document
from nurture import rollups
from nurture.db import insert_ignoring_conflicts
from nurture.errors import Conflict, NotFound
from nurture.leads import services as leads
from nurture.leads.erasure import is_erased
from nurture.models import (
    LIVE_ENROLLMENT,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    LifecycleStage,
    Message,
    MessageStatus,
    Sequence,
    SequenceStatus,
    SequenceVersion,
    Suppression,
    SuppressionReason,
)

ENROLLABLE_FROM = (LifecycleStage.LEAD, LifecycleStage.MQL, LifecycleStage.NURTURING)
"""Stages a marketer may enroll a lead from (not while sales holds it, nor once it is lost)."""

REMOVED = "removed"
"""The exit reason of an enrollment a marketer ended."""


def get_sequence(session: Session, sequence_id: int) -> Sequence:
    sequence = session.get(Sequence, sequence_id) if 0 < sequence_id < 2**63 else None
    if sequence is None:
        raise NotFound(f"no sequence with id {sequence_id}")
    return sequence


def is_suppressed(session: Session, email: str) -> bool:
    return session.execute(
        select(Suppression.id).where(Suppression.email == email)).first() is not None


def enroll_lead(session: Session, lead_id: int, sequence_id: int, *, actor: str,
                now: datetime) -> Enrollment:
    """Enroll the lead in this active sequence now, whatever its entry criteria say (a
    marketer chose it), at its first step; the lead enters nurture if it was not in it."""
    lead = leads.get_lead(session, lead_id)
    sequence = get_sequence(session, sequence_id)
    if is_erased(lead):
        raise Conflict("the lead's personal data was erased")
    if sequence.status != SequenceStatus.ACTIVE or sequence.active_version_id is None:
        raise Conflict(f"{sequence.name} is not active")
    if lead.lifecycle_stage not in ENROLLABLE_FROM:
        raise Conflict(f"the lead is {lead.lifecycle_stage.value.replace('_', ' ')}: "
                       "sales holds it or it left nurture")
    if is_suppressed(session, lead.email):
        raise Conflict("the lead's address is suppressed")
    if session.execute(select(Enrollment.id).where(
            Enrollment.lead_id == lead.id, Enrollment.sequence_id == sequence.id,
            Enrollment.status.in_(LIVE_ENROLLMENT))).first() is not None:
        raise Conflict(f"already enrolled in {sequence.name}")  # before anything is written
    version = session.get(SequenceVersion, sequence.active_version_id)
    assert version is not None
    document = version_document(version.id, version.document)
    if lead.lifecycle_stage != LifecycleStage.NURTURING:
        leads.change_stage(session, lead, LifecycleStage.NURTURING, cause="enrolled_by_hand",
                           now=now)
        rollups.entered_nurture(session, lead, rejection=None, at=now)
    new_id = session.execute(
        insert_ignoring_conflicts(
            session, Enrollment, index_elements=["lead_id", "sequence_id"],
            index_where=text(f"status IN {LIVE_ENROLLMENT!r}"),
        )
        .values(lead_id=lead.id, sequence_id=sequence.id, version_id=version.id,
                rejection_id=None, status=EnrollmentStatus.ACTIVE,
                step_id=document.step_ids()[0], step_started_at=now, next_due_at=now,
                enrolled_at=now)
        .returning(Enrollment.id)
    ).scalar_one_or_none()
    if new_id is None:
        raise Conflict(f"already enrolled in {sequence.name}")
    session.add(EnrollmentEvent(enrollment_id=new_id, step_id=None, kind="enrolled",
                                detail=f"by hand: {actor}", at=now))
    rollups.enrolled(session, lead.id, sequence.id, at=now)
    session.flush()
    enrollment = session.get(Enrollment, new_id)
    assert enrollment is not None
    return enrollment


def remove_from_sequence(session: Session, lead_id: int, sequence_id: int, *, actor: str,
                         now: datetime) -> Enrollment:
    """End the lead's live enrollment in this sequence now (exit reason `removed`); emails
    planned and not handed over are skipped."""
    lead = leads.get_lead(session, lead_id)
    sequence = get_sequence(session, sequence_id)
    enrollment = session.execute(
        select(Enrollment).where(Enrollment.lead_id == lead.id,
                                 Enrollment.sequence_id == sequence.id,
                                 Enrollment.status.in_(LIVE_ENROLLMENT))
        .with_for_update()
    ).scalar_one_or_none()
    if enrollment is None:
        raise Conflict(f"not enrolled in {sequence.name}")
    session.add(EnrollmentEvent(enrollment_id=enrollment.id, step_id=enrollment.step_id,
                                kind="exited", detail=f"removed by hand: {actor}", at=now))
    rollups.exited(session, enrollment.sequence_id, enrollment.step_id, REMOVED, at=now)
    enrollment.status = EnrollmentStatus.EXITED
    enrollment.exit_reason = REMOVED
    enrollment.finished_at = now
    enrollment.next_due_at = None
    enrollment.claimed_until = None
    session.execute(
        update(Message)
        .where(Message.enrollment_id == enrollment.id, Message.status == MessageStatus.QUEUED)
        .values(status=MessageStatus.SKIPPED, last_error=f"enrollment exited: {REMOVED}")
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return enrollment


def suppress_lead(session: Session, lead_id: int, *, actor: str, now: datetime) -> bool:
    """Never email the lead's address again (a manual suppression); its live enrollments exit
    at once through the engine. False if the address was already suppressed."""
    lead = leads.get_lead(session, lead_id)
    if is_erased(lead):
        raise Conflict("the lead's personal data was erased")
    inserted = session.execute(
        insert_ignoring_conflicts(session, Suppression, index_elements=["email"])
        .values(email=lead.email, reason=SuppressionReason.MANUAL,
                source=f"admin: {actor}"[:255], created_at=now)
        .returning(Suppression.id)
    ).scalar_one_or_none()
    if inserted is None:
        return False
    # the engine exits every live enrollment of a suppressed lead at its next run: now
    session.execute(
        update(Enrollment)
        .where(Enrollment.lead_id == lead.id, Enrollment.status.in_(LIVE_ENROLLMENT))
        .values(next_due_at=now)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return True


def live_sequences(session: Session, lead_id: int) -> list[Sequence]:
    """The sequences the lead is enrolled in now."""
    return list(session.execute(
        select(Sequence).join(Enrollment, Enrollment.sequence_id == Sequence.id)
        .where(Enrollment.lead_id == lead_id, Enrollment.status.in_(LIVE_ENROLLMENT))
        .order_by(Sequence.name)
    ).scalars())


def active_sequences(session: Session) -> list[Sequence]:
    """Sequences a lead can be enrolled in by hand."""
    return list(session.execute(
        select(Sequence).where(Sequence.status == SequenceStatus.ACTIVE,
                               Sequence.active_version_id.is_not(None))
        .order_by(Sequence.name)
    ).scalars())


def all_sequences(session: Session) -> list[Sequence]:
    return list(session.execute(select(Sequence).order_by(Sequence.name)).scalars())
