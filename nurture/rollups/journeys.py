"""What each fact adds to the rollups: a lead's journey through nurture and the counters.

A journey starts each time a lead enters nurture (`entered_nurture`); the later facts of
that lead land on its latest journey that started before them. Touches (emails handed over,
human engagement) count only up to the moment the lead qualified.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.orm import Session

from nurture.models import (
    CollateralVersion,
    EngagementEvent,
    Enrollment,
    EventType,
    Handoff,
    Lead,
    Message,
    Rejection,
    ReportFunnelTouched,
    ReportJourney,
    ScoreLedgerEntry,
    User,
)
from nurture.rollups.counts import add_counts, count, key

HUMAN_ENGAGEMENT = frozenset({
    EventType.OPEN, EventType.CLICK, EventType.PAGE_VIEW, EventType.FORM_SUBMIT,
    EventType.CONTENT_DOWNLOAD, EventType.WEBINAR_REGISTERED, EventType.WEBINAR_ATTENDED,
    EventType.EMAIL_REPLY, EventType.MEETING_BOOKED,
})
"""Event types that are a person engaging (when not flagged as a machine's)."""

REQUALIFIED_WITHIN = timedelta(days=90)
"""A sequence 'requalified' a lead when it was enrolled in it at most this long before."""

NOT_READY = "not_ready"
"""The journey reason of a lead nurtured without a rejection."""

_J = ReportJourney.__table__.c


def cohort_of(at: datetime) -> date:
    """The month (its first day, UTC) a lead entered nurture."""
    at = at.astimezone(UTC)
    return date(at.year, at.month, 1)


def funnel_touched(session: Session, cohorts: Iterable[date]) -> None:
    """Journeys of these cohorts changed a stage or a grouping: their stored funnel figures
    no longer hold (one plain insert per cohort; nothing waits on anyone)."""
    session.add_all(ReportFunnelTouched(cohort=c) for c in sorted(set(cohorts)))


def team_of(session: Session, email: str | None) -> str:
    if not email:
        return ""
    return session.execute(select(User.team).where(User.email == email)).scalar_one_or_none() or ""


def current_journey(lead_id: Any, at: Any) -> Any:
    """The id of the lead's latest journey that started by `at` (a scalar subquery; the
    rebuild uses it too, so both attribute a fact to the same journey)."""
    return (select(_J.id).where(_J.lead_id == lead_id, _J.entered_at <= at)
            .order_by(_J.entered_at.desc(), _J.id.desc()).limit(1).scalar_subquery())


def _journey(session: Session, lead_id: int, at: datetime) -> ReportJourney | None:
    session.flush()
    return session.execute(
        select(ReportJourney).where(ReportJourney.id == current_journey(lead_id, at))
    ).scalar_one_or_none()


def entered_nurture(session: Session, lead: Lead, *, rejection: Rejection | None,
                    at: datetime) -> None:
    """A rejection (or a not-ready lead) starts a journey and counts on its day."""
    reason = rejection.reason.value if rejection is not None else NOT_READY
    rep = rejection.rep_email if rejection is not None else ""
    team = team_of(session, rep)
    source = (lead.source or "")[:255]
    session.add(ReportJourney(
        lead_id=lead.id, rejection_id=rejection.id if rejection is not None else None,
        entered_at=at, cohort=cohort_of(at), reason=reason, rep_email=rep, team=team,
        source=source, sequence_id=0, delivered=0, engagements=0, handoff_rep="",
    ))
    funnel_touched(session, [cohort_of(at)])
    count(session, "rejection" if rejection is not None else NOT_READY, at, reason=reason,
          rep_email=rep, team=team, source=source)


def enrolled(session: Session, lead_id: int, sequence_id: int, *, at: datetime) -> None:
    """The lead is nurtured: the first enrollment of its journey sets when and where."""
    journey = _journey(session, lead_id, at)
    if journey is not None:
        if journey.nurtured_at is None or not journey.sequence_id:
            funnel_touched(session, [journey.cohort])
        if journey.nurtured_at is None:
            journey.nurtured_at = at
        if not journey.sequence_id:
            journey.sequence_id = sequence_id
    count(session, "enrolled", at, sequence_id=sequence_id,
          reason=journey.reason if journey else None, source=journey.source if journey else None)


@dataclass(frozen=True)
class SentEmail:
    lead_id: int
    sequence_id: int
    step_id: str
    collateral_ids: tuple[int, ...]
    sent_at: datetime


_COUNT_TOUCH = (_J.qualified_at.is_(None)) | (_J.qualified_at >= bindparam("at_"))


def emails_sent(session: Session, emails: Sequence[SentEmail]) -> None:
    """Emails handed over: delivered per sequence step and per collateral featured, and a
    touch on each lead's journey if it has not qualified yet."""
    if not emails:
        return
    rows: list[tuple[Any, int, Decimal]] = []
    for email in emails:
        rows.append((key("delivered", email.sent_at, sequence_id=email.sequence_id,
                         step_id=email.step_id), 1, Decimal(0)))
        rows.extend((key("collateral_sent", email.sent_at, collateral_id=c), 1, Decimal(0))
                    for c in email.collateral_ids)
    add_counts(session, rows)
    _touch(session, "delivered", [(e.lead_id, e.sent_at) for e in emails])


def _touch(session: Session, column: str, touches: list[tuple[int, datetime]]) -> None:
    if not touches:
        return
    table = ReportJourney.__table__
    session.execute(
        update(table)
        .where(_J.id == current_journey(bindparam("lead"), bindparam("at_")), _COUNT_TOUCH)
        .values({column: table.c[column] + 1})
        .execution_options(synchronize_session=False),
        [{"lead": lead_id, "at_": at} for lead_id, at in sorted(touches)],
    )


def engaged(session: Session, events: Iterable[Any]) -> None:
    """Handled engagement events (rows with lead_id, message_id, type, is_machine,
    occurred_at, collateral_version_id): human opens and clicks, and unsubscribes, per
    sequence step; human engagement per collateral; touches and the first engagement on
    each lead's journey."""
    events = [e for e in events if e.lead_id is not None]
    if not events:
        return
    steps = _steps_of(session, {e.message_id for e in events if e.message_id is not None})
    assets = _collateral_of(session, {e.collateral_version_id for e in events
                                      if e.collateral_version_id is not None})
    rows: list[tuple[Any, int, Decimal]] = []
    touches = []
    for event in events:
        human = event.type in HUMAN_ENGAGEMENT and not event.is_machine
        sequence_id, step_id = steps.get(event.message_id, (0, ""))
        if human and event.type in (EventType.OPEN, EventType.CLICK):
            rows.append((key(f"human_{event.type.value}", event.occurred_at,
                             sequence_id=sequence_id, step_id=step_id), 1, Decimal(0)))
        if event.type == EventType.UNSUBSCRIBE:
            rows.append((key("unsubscribe", event.occurred_at, sequence_id=sequence_id,
                             step_id=step_id), 1, Decimal(0)))
        if human and event.collateral_version_id in assets:
            rows.append((key("collateral_engaged", event.occurred_at,
                             collateral_id=assets[event.collateral_version_id]), 1, Decimal(0)))
        if human:
            touches.append((event.lead_id, event.occurred_at))
    add_counts(session, rows)
    if touches:
        at = bindparam("at_")
        before_qualifying = (_J.qualified_at.is_(None)) | (_J.qualified_at >= at)
        first = (_J.engaged_at.is_(None)) | (_J.engaged_at > at)
        session.execute(
            update(ReportJourney.__table__)
            .where(_J.id == current_journey(bindparam("lead"), at))
            .values(engagements=_J.engagements + case((before_qualifying, 1), else_=0),
                    engaged_at=case((first, at), else_=_J.engaged_at))
            .execution_options(synchronize_session=False),
            [{"lead": lead_id, "at_": at} for lead_id, at in sorted(touches)],
        )
        # Only a first engagement moves the funnel: mark the cohorts of those leads' journeys
        # not engaged before the earliest of these events (a superset of those changed above;
        # a repeat engagement, the common case, marks nothing).
        earliest = min(at for _, at in touches)
        funnel_touched(session, session.execute(
            select(_J.cohort).distinct()
            .where(_J.lead_id.in_(sorted({lead_id for lead_id, _ in touches})),
                   _J.engaged_at.is_(None) | (_J.engaged_at >= earliest))).scalars())


def _steps_of(session: Session, message_ids: set[int]) -> dict[int, tuple[int, str]]:
    if not message_ids:
        return {}
    return {m: (s, step) for m, s, step in session.execute(
        select(Message.id, Enrollment.sequence_id, Message.step_id)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .where(Message.id.in_(message_ids))
    ).tuples()}


def _collateral_of(session: Session, version_ids: set[int]) -> dict[int, int]:
    if not version_ids:
        return {}
    return dict(session.execute(
        select(CollateralVersion.id, CollateralVersion.collateral_id)
        .where(CollateralVersion.id.in_(version_ids))
    ).tuples().all())


def exited(session: Session, sequence_id: int, step_id: str | None, reason: str | None, *,
           at: datetime) -> None:
    """An enrollment finished (completed or exited), counted by its last step and reason."""
    exits(session, [(sequence_id, step_id, reason, at)])


def exits(session: Session,
          finished: Iterable[tuple[int, str | None, str | None, datetime]]) -> None:
    """Enrollments finished, each (sequence id, last step, reason, when), counted in one
    upsert (sending ends a batch's enrollments together)."""
    add_counts(session, [
        (key("exit", at, sequence_id=sequence_id, step_id=step_id, reason=reason or "unknown"),
         1, Decimal(0))
        for sequence_id, step_id, reason, at in finished
    ])


def recycled(session: Session, handoff: Handoff, *, at: datetime) -> None:
    """The lead qualified and went back to sales: its journey, the handoff counters, the
    sequences that requalified it (enrolled within 90 days) and the collateral its score's
    explanation owes points to."""
    journey = _journey(session, handoff.lead_id, at)
    rep = handoff.rep_email or ""
    team = team_of(session, rep)
    if journey is not None:
        journey.recycled_at = at
        journey.qualified_at = handoff.qualified_at
        journey.handoff_id = handoff.id
        journey.handoff_rep = rep
        funnel_touched(session, [journey.cohort])
    count(session, "recycled", at, rep_email=rep, team=team,
          reason=journey.reason if journey else None, source=journey.source if journey else None)
    sequences = session.execute(
        select(Enrollment.sequence_id).distinct()
        .where(Enrollment.lead_id == handoff.lead_id,
               Enrollment.enrolled_at >= at - REQUALIFIED_WITHIN)
    ).scalars().all()
    add_counts(session, [(key("requalified", at, sequence_id=s), 1, Decimal(0))
                         for s in sequences])
    add_counts(session, [(key("collateral_explained", at, collateral_id=c), 1, Decimal(0))
                         for c in explained_collateral(session, handoff)])


def explained_collateral(session: Session, handoff: Handoff) -> list[int]:
    """Collateral whose engagement gave points to a rule of the handoff's score explanation."""
    rules = {item.get("rule") for item in (handoff.score or {}).get("explanation") or []
             if isinstance(item, dict)}
    if not rules or handoff.model_version_id is None:
        return []
    return list(session.execute(
        select(CollateralVersion.collateral_id).distinct()
        .join(EngagementEvent, EngagementEvent.collateral_version_id == CollateralVersion.id)
        .join(ScoreLedgerEntry, ScoreLedgerEntry.event_id == EngagementEvent.id)
        .where(ScoreLedgerEntry.lead_id == handoff.lead_id,
               ScoreLedgerEntry.model_id == handoff.model_version_id,
               ScoreLedgerEntry.rule.in_(rules), ScoreLedgerEntry.points > 0,
               ScoreLedgerEntry.occurred_at <= handoff.qualified_at)
    ).scalars())


def answered(session: Session, handoff: Handoff, *, accepted: bool, reason: str | None,
             at: datetime) -> None:
    """The rep accepted or rejected the lead again; the SLA was met if before any
    escalation and by the due time."""
    rep = handoff.rep_email or ""
    team = team_of(session, rep)
    journey = session.execute(
        select(ReportJourney).where(ReportJourney.handoff_id == handoff.id)
    ).scalar_one_or_none()
    if journey is not None:
        if accepted:
            journey.accepted_at = at
            funnel_touched(session, [journey.cohort])
        else:
            journey.rerejected_at = at
            journey.rereject_reason = reason
    count(session, "accepted" if accepted else "rerejected", at, rep_email=rep, team=team,
          reason=reason if not accepted else (journey.reason if journey else None),
          source=journey.source if journey else None)
    if handoff.escalations == 0 and handoff.reassignments == 0 and at <= handoff.sla_due_at:
        count(session, "sla_met", at, rep_email=rep, team=team)


def escalated(session: Session, handoff: Handoff, *, at: datetime) -> None:
    """The SLA timer fired on an open handoff for the first time (counted once, against
    the rep it was with)."""
    if handoff.escalations or handoff.reassignments:
        return
    rep = handoff.rep_email or ""
    count(session, "sla_escalated", at, rep_email=rep, team=team_of(session, rep))


def sla_closed(session: Session, rep_email: str | None, kind: str, *, at: datetime) -> None:
    """An SLA window lapsed for good: `sla_expired` (a handoff nobody worked) or
    `stalled_in_sales` (an accepted lead with no opportunity in time)."""
    rep = rep_email or ""
    count(session, kind, at, rep_email=rep, team=team_of(session, rep))


def outcome(session: Session, lead_id: int, kind: str, *, amount: Decimal | None,
            at: datetime) -> None:
    """A CRM outcome (`opportunity_created`, `won`) on the lead's latest journey (a loss
    returns the lead to nurture through a rejection, which starts a new journey)."""
    journey = _journey(session, lead_id, at)
    if journey is not None:
        if kind == "opportunity_created" and journey.opportunity_at is None:
            journey.opportunity_at = at
        elif kind == "won" and journey.won_at is None:
            journey.won_at = at
            journey.revenue = amount
        funnel_touched(session, [journey.cohort])
