"""The sequence list of the admin: each sequence's state, who it takes and how many leads it
has held, in one grouped query over the enrollments (the truth, not the report rollups)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.documents import Entry, SequenceDocument, version_document
from campaigns.sequences import latest_version, sequence_summary
from nurture.models import Enrollment, EnrollmentStatus, Sequence, SequenceVersion

LIVE = (EnrollmentStatus.SCHEDULED, EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD)


@dataclass(frozen=True)
class SequenceRow:
    id: int
    key: str
    name: str
    status: str
    priority: int
    live_version: int | None
    latest_version: int | None
    entry: list[str]
    """Who it takes, one plain phrase per condition."""
    enrolled: int = 0
    live: int = 0
    completed: int = 0
    exited: int = 0
    paused_steps: dict[str, list[str]] = field(default_factory=dict)


def list_sequences(session: Session, *, today: date) -> list[SequenceRow]:
    counts: dict[int, dict[str, int]] = {}
    for sequence_id, status, n in session.execute(
        select(Enrollment.sequence_id, Enrollment.status, func.count())
        .group_by(Enrollment.sequence_id, Enrollment.status)
    ):
        counts.setdefault(sequence_id, {})[EnrollmentStatus(status).value] = n
    rows = []
    for sequence in session.execute(
        select(Sequence).order_by(Sequence.priority, Sequence.id)
    ).scalars():
        summary = sequence_summary(session, sequence, today=today)
        version = (session.get(SequenceVersion, sequence.active_version_id)
                   if sequence.active_version_id else latest_version(session, sequence.id))
        document = version_document(version.id, version.document) if version else None
        by_status = counts.get(sequence.id, {})
        rows.append(SequenceRow(
            id=sequence.id, key=sequence.key, name=sequence.name, status=summary["status"],
            priority=sequence.priority, live_version=summary["active_version"],
            latest_version=summary["latest_version"],
            entry=describe_entry(document) if document else [],
            enrolled=sum(by_status.values()),
            live=sum(by_status.get(s.value, 0) for s in LIVE),
            completed=by_status.get(EnrollmentStatus.COMPLETED.value, 0),
            exited=by_status.get(EnrollmentStatus.EXITED.value, 0),
            paused_steps=summary["paused_steps"],
        ))
    return rows


def describe_entry(document: SequenceDocument) -> list[str]:
    entry: Entry = document.entry
    phrases = []
    if entry.reasons:
        phrases.append("rejected for " + ", ".join(r.value.replace("_", " ")
                                                  for r in entry.reasons))
    if entry.not_ready:
        phrases.append("not ready for sales")
    lead = entry.lead
    if lead.country:
        phrases.append("in " + ", ".join(lead.country))
    if lead.industry:
        phrases.append("industry " + ", ".join(lead.industry))
    if lead.source:
        phrases.append("from " + ", ".join(lead.source))
    if lead.company_size:
        low, high = lead.company_size.min, lead.company_size.max
        phrases.append(f"{low if low is not None else 0}–{high if high is not None else '∞'} "
                       "employees")
    if lead.title_contains:
        phrases.append("title with " + " or ".join(lead.title_contains))
    return phrases
