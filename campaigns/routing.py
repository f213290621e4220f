"""Routing: a rejected (or not-ready) lead goes to the first active sequence that takes it.

Active sequences are tried by priority (then age); the first whose entry criteria match the
rejection reason and the lead's fields wins. A lead is never enrolled twice in the same
sequence at once (a partial unique index guards it, so concurrent retries cannot either).
`revisit_on` delays the start to that day in the lead's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from campaigns.documents import LeadCriteria, SequenceDocument, version_document
from nurture import rollups
from nurture.db import insert_ignoring_conflicts
from nurture.models import (
    LIVE_ENROLLMENT,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Lead,
    Rejection,
    RejectionReason,
    Sequence,
    SequenceStatus,
    SequenceVersion,
)

DEFAULT_TIMEZONE = "UTC"
"""Time zone for a lead that has none and a sequence window that names none."""


@dataclass(frozen=True)
class Routed:
    enrollment: Enrollment | None
    reason: str | None
    """Why there is no new enrollment (None when one was made)."""


def lead_matches(criteria: LeadCriteria, lead: Lead) -> bool:
    """Every condition given must hold; a list means any of its values."""
    if criteria.country is not None and (lead.country or "") not in criteria.country:
        return False
    if criteria.industry is not None and not _one_of(lead.industry, criteria.industry):
        return False
    if criteria.source is not None and not _one_of(lead.source, criteria.source):
        return False
    if criteria.company_size is not None:
        size = lead.company_size
        if size is None:
            return False
        if criteria.company_size.min is not None and size < criteria.company_size.min:
            return False
        if criteria.company_size.max is not None and size > criteria.company_size.max:
            return False
    if criteria.title_contains is not None:
        title = (lead.title or "").casefold()
        if not any(word.casefold() in title for word in criteria.title_contains):
            return False
    return True


def _one_of(value: str | None, allowed: list[str]) -> bool:
    return value is not None and value.casefold() in {a.casefold() for a in allowed}


def takes(document: SequenceDocument, lead: Lead, reason: RejectionReason | None) -> bool:
    """Whether the sequence's entry criteria admit this lead with this reason (None: not ready)."""
    entry = document.entry
    admitted = entry.not_ready if reason is None else reason in entry.reasons
    return admitted and lead_matches(entry.lead, lead)


def active_sequences(session: Session) -> list[tuple[Sequence, SequenceVersion, SequenceDocument]]:
    rows = session.execute(
        select(Sequence, SequenceVersion)
        .join(SequenceVersion, SequenceVersion.id == Sequence.active_version_id)
        .where(Sequence.status == SequenceStatus.ACTIVE)
        .order_by(Sequence.priority, Sequence.id)
    ).all()
    return [(s, v, version_document(v.id, v.document)) for s, v in rows]


def route_lead(
    session: Session,
    lead: Lead,
    *,
    rejection: Rejection | None,
    now: datetime,
) -> Routed:
    """Enroll the lead in the first active sequence that takes it, or say why none does."""
    reason = rejection.reason if rejection is not None else None
    for sequence, version, document in active_sequences(session):
        if not takes(document, lead, reason):
            continue
        start = _start_at(rejection.revisit_on if rejection else None, lead, document, now)
        status = EnrollmentStatus.SCHEDULED if start > now else EnrollmentStatus.ACTIVE
        stmt = (
            insert_ignoring_conflicts(
                session, Enrollment, index_elements=["lead_id", "sequence_id"],
                index_where=text(f"status IN {LIVE_ENROLLMENT!r}"),
            )
            .values(
                lead_id=lead.id, sequence_id=sequence.id, version_id=version.id,
                rejection_id=rejection.id if rejection else None, status=status,
                step_id=document.step_ids()[0], step_started_at=now, next_due_at=start,
                enrolled_at=now,
            )
            .returning(Enrollment.id)
        )
        new_id = session.execute(stmt).scalar_one_or_none()
        if new_id is None:
            return Routed(None, f"already enrolled in {sequence.key!r}")
        detail = f"rejected: {reason.value}" if reason else "not ready"
        if status == EnrollmentStatus.SCHEDULED:
            detail += f"; starts {start.isoformat()}"
        session.add(EnrollmentEvent(enrollment_id=new_id, step_id=None, kind="enrolled",
                                    detail=detail, at=now))
        rollups.enrolled(session, lead.id, sequence.id, at=now)
        session.flush()
        return Routed(session.get(Enrollment, new_id), None)
    what = f"rejection reason {reason.value}" if reason else "a not-ready lead"
    return Routed(None, f"no active sequence takes {what}")


def lead_zone(lead: Lead, document: SequenceDocument) -> ZoneInfo:
    """The lead's time zone, else the sequence window's, else UTC."""
    return ZoneInfo(lead.timezone or document.send_window.timezone or DEFAULT_TIMEZONE)


def _start_at(
    revisit_on: date | None, lead: Lead, document: SequenceDocument, now: datetime
) -> datetime:
    if revisit_on is None:
        return now
    start = datetime.combine(revisit_on, time(0, 0), tzinfo=lead_zone(lead, document))
    return max(start, now)
