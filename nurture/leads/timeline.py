"""A lead's timeline: one list, newest first, of everything that happened to it.

Rejections with their reasons, lifecycle moves, enrollments and their steps, the emails sent
with the collateral they featured, engagement (machine-flagged events marked, each with the
score points it gave), score changes that came from no event (fit), handoffs and their SLA
history, and the CRM's outcomes. Each source is read through its (lead, time) index, at most
`limit` rows each before `before`, and merged; the page asks for older entries with `before`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.models import (
    Collateral,
    CollateralVersion,
    EngagementEvent,
    Enrollment,
    EnrollmentEvent,
    Handoff,
    HandoffEvent,
    LifecycleChange,
    Message,
    MessageCollateral,
    Outcome,
    Rejection,
    ScoreLedgerEntry,
    Sequence,
)

TIMELINE_LIMIT = 100
"""Entries on one page of the timeline."""

EVENT_LABELS = {
    "open": "Opened an email", "click": "Clicked a link", "delivered": "Email delivered",
    "processed": "Accepted by the provider", "deferred": "Delivery deferred",
    "dropped": "Dropped by the provider", "bounce": "Bounced",
    "spam_complaint": "Marked as spam", "unsubscribe": "Unsubscribed",
    "resubscribe": "Resubscribed", "page_view": "Viewed a page", "form_submit": "Submitted a form",
    "content_download": "Downloaded content", "webinar_registered": "Registered for a webinar",
    "webinar_attended": "Attended a webinar", "email_reply": "Replied to an email",
    "meeting_booked": "Booked a meeting",
}


@dataclass
class Entry:
    """One line of the timeline; `kind` picks its icon and colour."""

    at: datetime
    kind: str
    title: str
    detail: str | None = None
    machine: str | None = None
    """Why the event looks like a machine's (scanner, prefetch…): None for a person."""
    points: float | None = None
    collateral: list[str] = field(default_factory=list)
    order: int = 0


@dataclass
class Timeline:
    entries: list[Entry]
    older: datetime | None
    """Pass as `before` for the next page (None: nothing older)."""


def lead_timeline(session: Session, lead_id: int, *, before: datetime | None = None,
                  limit: int = TIMELINE_LIMIT) -> Timeline:
    entries: list[Entry] = []
    for source in (_rejections, _lifecycle, _enrollment_events, _messages, _engagement,
                   _fit_changes, _handoffs, _outcomes):
        entries.extend(source(session, lead_id, before, limit))
    entries.sort(key=lambda e: (e.at, e.order), reverse=True)
    more = len(entries) > limit
    entries = entries[:limit]
    return Timeline(entries, entries[-1].at if more and entries else None)


def lifecycle_history(session: Session, lead_id: int, *, limit: int = 50
                      ) -> list[LifecycleChange]:
    """The lead's moves between lifecycle stages, newest first."""
    return list(session.execute(
        select(LifecycleChange).where(LifecycleChange.lead_id == lead_id)
        .order_by(LifecycleChange.changed_at.desc(), LifecycleChange.id.desc()).limit(limit)
    ).scalars())


def _window(query: Any, column: Any, before: datetime | None, limit: int) -> Any:
    if before is not None:
        query = query.where(column < before)
    return query.order_by(column.desc()).limit(limit + 1)


def _label(value: str) -> str:
    return value.replace("_", " ")


def _rejections(session: Session, lead_id: int, before: datetime | None, limit: int
                ) -> list[Entry]:
    rows = session.execute(_window(select(Rejection).where(Rejection.lead_id == lead_id),
                                   Rejection.rejected_at, before, limit)).scalars()
    entries = []
    for r in rows:
        detail = [f"by {r.rep_email}"]
        if r.revisit_on:
            detail.append(f"revisit on {r.revisit_on.isoformat()}")
        if r.note:
            detail.append(f"“{r.note}”")
        entries.append(Entry(r.rejected_at, "rejection", f"Rejected by sales: {_label(r.reason)}",
                             " · ".join(detail), order=1))
    return entries


def _lifecycle(session: Session, lead_id: int, before: datetime | None, limit: int
               ) -> list[Entry]:
    rows = session.execute(_window(
        select(LifecycleChange).where(LifecycleChange.lead_id == lead_id),
        LifecycleChange.changed_at, before, limit)).scalars()
    return [Entry(c.changed_at, "lifecycle",
                  (f"Stage: {_label(c.from_stage)} → {_label(c.to_stage)}" if c.from_stage
                   else f"Created as {_label(c.to_stage)}"),
                  f"cause: {_label(c.cause)}", order=0) for c in rows]


def _enrollment_events(session: Session, lead_id: int, before: datetime | None, limit: int
                       ) -> list[Entry]:
    rows = session.execute(_window(
        select(EnrollmentEvent, Sequence.name)
        .join(Enrollment, Enrollment.id == EnrollmentEvent.enrollment_id)
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .where(Enrollment.lead_id == lead_id),
        EnrollmentEvent.at, before, limit)).all()
    entries = []
    for event, sequence in rows:
        if event.kind == "enrolled":
            title, kind = f"Enrolled in {sequence}", "enrolled"
        elif event.kind in ("exited", "completed"):
            title, kind = f"{event.kind.capitalize()} {sequence}", "exited"
        else:
            step = f" at step {event.step_id}" if event.step_id else ""
            title, kind = f"{sequence}: {event.kind}{step}", "step"
        entries.append(Entry(event.at, kind, title, event.detail, order=2))
    return entries


def _messages(session: Session, lead_id: int, before: datetime | None, limit: int
              ) -> list[Entry]:
    at = Message.created_at
    rows = session.execute(_window(
        select(Message, Sequence.name)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .where(Message.lead_id == lead_id), at, before, limit)).all()
    featured: dict[int, list[str]] = defaultdict(list)
    ids = [m.id for m, _ in rows]
    if ids:
        for message_id, title, version in session.execute(
                select(MessageCollateral.message_id, CollateralVersion.title,
                       CollateralVersion.version)
                .join(CollateralVersion,
                      CollateralVersion.id == MessageCollateral.collateral_version_id)
                .join(Collateral, Collateral.id == CollateralVersion.collateral_id)
                .where(MessageCollateral.message_id.in_(ids))).all():
            featured[message_id].append(f"{title} (v{version})")
    entries = []
    for m, sequence in rows:
        verb = "Email sent" if m.status.value == "sent" else f"Email {m.status.value}"
        entries.append(Entry(m.sent_at or m.created_at, "email", f"{verb}: {m.subject}",
                             f"{sequence}, step {m.step_id}", collateral=featured[m.id],
                             order=3))
    return entries


def _engagement(session: Session, lead_id: int, before: datetime | None, limit: int
                ) -> list[Entry]:
    events = session.execute(_window(
        select(EngagementEvent).where(EngagementEvent.lead_id == lead_id),
        EngagementEvent.occurred_at, before, limit)).scalars().all()
    points: dict[int, float] = defaultdict(float)
    rules: dict[int, list[str]] = defaultdict(list)
    if events:
        for event_id, rule, given in session.execute(
                select(ScoreLedgerEntry.event_id, ScoreLedgerEntry.rule, ScoreLedgerEntry.points)
                .where(ScoreLedgerEntry.lead_id == lead_id,
                       ScoreLedgerEntry.event_id.in_([e.id for e in events]))).all():
            points[event_id] += given
            rules[event_id].append(rule)
    entries = []
    for e in events:
        detail = [f"via {e.source}"]
        if e.url:
            detail.append(e.url)
        if e.bounce_class:
            detail.append(f"{e.bounce_class} bounce")
        if rules[e.id]:
            detail.append("rules: " + ", ".join(sorted(set(rules[e.id]))))
        machine = (e.machine_reason or "flagged as a machine") if e.is_machine else None
        entries.append(Entry(e.occurred_at, "engagement", EVENT_LABELS.get(e.type.value,
                                                                          _label(e.type.value)),
                             " · ".join(detail), machine=machine,
                             points=round(points[e.id], 2) if e.id in points else None,
                             order=4))
    return entries


def _fit_changes(session: Session, lead_id: int, before: datetime | None, limit: int
                 ) -> list[Entry]:
    rows = session.execute(_window(
        select(ScoreLedgerEntry).where(ScoreLedgerEntry.lead_id == lead_id,
                                       ScoreLedgerEntry.event_id.is_(None)),
        ScoreLedgerEntry.occurred_at, before, limit)).scalars()
    return [Entry(r.occurred_at, "score", f"Score: {r.rule}", "profile fit",
                  points=round(r.points, 2), order=5) for r in rows]


def _handoffs(session: Session, lead_id: int, before: datetime | None, limit: int
              ) -> list[Entry]:
    rows = session.execute(_window(
        select(HandoffEvent, Handoff)
        .join(Handoff, Handoff.id == HandoffEvent.handoff_id)
        .where(Handoff.lead_id == lead_id), HandoffEvent.at, before, limit)).all()
    entries = []
    for event, handoff in rows:
        if event.kind == "created":
            total = (handoff.score or {}).get("total")
            title = "Recycled to sales" + (f" with a score of {total:g}"
                                           if isinstance(total, int | float) else "")
        else:
            title = f"Handoff {_label(event.kind)}"
        who = f"rep {event.rep_email}" if event.rep_email else None
        detail = " · ".join(p for p in (who, event.detail) if p)
        entries.append(Entry(event.at, "handoff", title, detail or None, order=6))
    return entries


def _outcomes(session: Session, lead_id: int, before: datetime | None, limit: int
              ) -> list[Entry]:
    rows = session.execute(_window(select(Outcome).where(Outcome.lead_id == lead_id),
                                   Outcome.occurred_at, before, limit)).scalars()
    entries = []
    for o in rows:
        title = {"opportunity_created": "Opportunity created", "won": "Won",
                 "lost": "Lost"}.get(o.kind.value, _label(o.kind.value))
        detail = []
        if o.amount is not None:
            detail.append(f"{o.amount:,.2f} {o.currency or ''}".strip())
        if o.loss_reason is not None:
            detail.append(f"reason: {_label(o.loss_reason)}")
        entries.append(Entry(o.occurred_at, "outcome", title, " · ".join(detail) or None,
                             order=7))
    return entries
