"""The enrollment state machine: take a due enrollment as far as it can go right now.

`advance()` walks steps (waits, branches, exits) without any network call and stops at an
email that must be sent: it commits nothing itself, but leaves a `Message` row in `sending`
that the caller commits *before* handing the email to the messenger; `record_sent()`,
`record_refused()` or `record_unknown()` then settle it. A message row exists once per
(enrollment, step), so a step is sent at most once, whatever crashes or retries happen.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import isodate
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.collateral import collateral_problems, get_collateral, sendable_versions
from campaigns.documents import (
    WEEKDAYS,
    BranchStep,
    EmailStep,
    ExitStep,
    SendWindow,
    SequenceDocument,
    WaitStep,
    parse_duration,
    version_document,
)
from campaigns.routing import lead_zone
from nurture.models import (
    CollateralVersion,
    EngagementEvent,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    EventType,
    Lead,
    LifecycleStage,
    Message,
    MessageCollateral,
    MessageStatus,
    Sequence,
    SequenceStatus,
    SequenceVersion,
    Suppression,
)

MAX_STEPS_PER_RUN = 50
"""Steps one run may take for one enrollment (waits and emails stop it far sooner)."""

HOLD_RECHECK = timedelta(hours=1)
"""A held enrollment (collateral not sendable, sequence paused) is looked at again this often."""

SEND_ATTEMPTS = 5
"""Tries for an email the server refused for now; then the enrollment is held and reported."""

RETRY_BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
                 timedelta(hours=2))
"""Wait before each retry of a refused email."""

LEFT_NURTURE = (LifecycleStage.RECYCLED_TO_SALES, LifecycleStage.ACCEPTED_BY_SALES,
                LifecycleStage.CUSTOMER, LifecycleStage.DISQUALIFIED)
"""A lead in one of these stages has left nurture: its sequences exit."""


@dataclass(frozen=True)
class Outgoing:
    """An email the caller must send now (its message row is in `sending`)."""

    message_id: int
    enrollment_id: int
    step: EmailStep
    collateral_version_ids: tuple[int, ...]


@dataclass(frozen=True)
class Policy:
    """The account-wide rules: fallback time zone and the frequency cap."""

    timezone: str = "UTC"
    cap_count: int = 2
    cap_period: timedelta = timedelta(days=7)


def advance(
    session: Session, enrollment_id: int, *, now: datetime, policy: Policy
) -> Outgoing | None:
    """Run the enrollment's due steps; return the email to send, or None when it waits or ends."""
    enrollment = session.get(Enrollment, enrollment_id, with_for_update=True)
    if enrollment is None or enrollment.status not in (
        EnrollmentStatus.SCHEDULED, EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD,
    ):
        return None
    if enrollment.next_due_at is not None and enrollment.next_due_at > now:
        return None  # a stale claim: someone else moved it on
    lead = session.get(Lead, enrollment.lead_id)
    sequence = session.get(Sequence, enrollment.sequence_id)
    version = session.get(SequenceVersion, enrollment.version_id)
    assert lead is not None and sequence is not None and version is not None
    document = version_document(version.id, version.document)

    reason = exit_reason(session, lead, enrollment)
    if reason is not None:
        _finish(session, enrollment, EnrollmentStatus.EXITED, reason, now)
        return None
    if sequence.status != SequenceStatus.ACTIVE:
        _hold(session, enrollment, f"sequence {sequence.key!r} is {sequence.status.value}", now)
        return None
    if enrollment.status == EnrollmentStatus.SCHEDULED:
        _event(session, enrollment, "started", None, now)
        enrollment.status = EnrollmentStatus.ACTIVE

    for _ in range(MAX_STEPS_PER_RUN):
        if enrollment.step_id is None:
            _finish(session, enrollment, EnrollmentStatus.COMPLETED, "completed", now)
            return None
        step = document.step(enrollment.step_id)
        if isinstance(step, ExitStep):
            status = EnrollmentStatus.COMPLETED if step.reason == "completed" else EnrollmentStatus.EXITED
            _finish(session, enrollment, status, step.reason, now)
            return None
        if isinstance(step, WaitStep):
            ends = wait_ends(step, enrollment.step_started_at or now, lead_zone(lead, document))
            if now < ends:
                enrollment.next_due_at = ends
                return None
            _move(session, enrollment, document.next_step_id(step.id), now, "waited")
            continue
        if isinstance(step, BranchStep):
            decision = _branch(session, enrollment, step, now)
            if decision is None:
                return None  # waiting for engagement or the window's end
            taken, goto = decision
            _move(session, enrollment, goto or document.next_step_id(step.id), now,
                  f"branch {'then' if taken else 'else'}")
            continue
        outgoing = _email(session, enrollment, lead, document, step, now, policy)
        if outgoing is not None or enrollment.step_id == step.id:
            return outgoing  # an email to send, or held/waiting at this step
    return None


def exit_reason(session: Session, lead: Lead, enrollment: Enrollment) -> str | None:
    """Why the enrollment must stop, checked before every step (None: carry on)."""
    if lead.lifecycle_stage in LEFT_NURTURE:
        return f"lead is {lead.lifecycle_stage.value}"
    suppressed = session.execute(
        select(Suppression.reason).where(Suppression.email == lead.email)
    ).scalar_one_or_none()
    if suppressed is not None:
        return {"unsubscribed": "unsubscribed", "hard_bounce": "hard_bounced",
                "complaint": "complained"}.get(suppressed.value, "suppressed")
    replied = session.execute(
        select(EngagementEvent.id).where(
            EngagementEvent.lead_id == lead.id,
            EngagementEvent.type == EventType.EMAIL_REPLY,
            EngagementEvent.occurred_at >= enrollment.enrolled_at,
        ).limit(1)
    ).first()
    return "replied" if replied else None


def wait_ends(step: WaitStep, started: datetime, zone: ZoneInfo) -> datetime:
    """When a wait that started at `started` is over (`until` counts in the lead's zone)."""
    if step.duration is not None:
        duration = parse_duration(step.duration)
        if isinstance(duration, isodate.Duration):
            return (started.astimezone(zone) + duration).astimezone(started.tzinfo)
        return started + duration
    assert step.until is not None
    local = started.astimezone(zone)
    hour, minute = map(int, step.until.time.split(":"))
    days_ahead = (WEEKDAYS.index(step.until.weekday) - local.weekday()) % 7
    target = datetime.combine(local.date() + timedelta(days=days_ahead), time(hour, minute),
                              tzinfo=zone)
    if target <= local:
        target += timedelta(days=7)
    return target.astimezone(started.tzinfo)


def next_window_start(window: SendWindow, zone: ZoneInfo, now: datetime) -> datetime:
    """`now` if it is inside the send window, else when the window next opens."""
    local = now.astimezone(zone)
    start = time(*map(int, window.start.split(":")))
    end_hour, end_minute = map(int, window.end.split(":"))
    for days in range(8):
        day = local.date() + timedelta(days=days)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        opens = datetime.combine(day, start, tzinfo=zone)
        closes = datetime.combine(day, time(0), tzinfo=zone) + timedelta(
            hours=end_hour, minutes=end_minute)  # 24:00 is the next midnight
        if local < closes:
            return now if local >= opens else opens.astimezone(now.tzinfo)
    raise AssertionError("a window with at least one day opens within a week")


def _email(
    session: Session, enrollment: Enrollment, lead: Lead, document: SequenceDocument,
    step: EmailStep, now: datetime, policy: Policy,
) -> Outgoing | None:
    existing = session.execute(
        select(Message).where(Message.enrollment_id == enrollment.id, Message.step_id == step.id)
    ).scalar_one_or_none()
    if existing is not None:
        if existing.status in (MessageStatus.SENT, MessageStatus.UNKNOWN, MessageStatus.SKIPPED):
            _move(session, enrollment, document.next_step_id(step.id), now, "sent before")
            return None
        if existing.status == MessageStatus.SENDING:
            # a crash between the handover and its record: it may have gone; never send again
            record_unknown(session, existing.id, "interrupted while sending", now=now)
            return None
    zone = ZoneInfo(lead.timezone or document.send_window.timezone or policy.timezone)
    opens = next_window_start(document.send_window, zone, now)
    if opens > now:
        enrollment.next_due_at = opens
        return None
    cap_free = _cap_frees_at(session, lead.id, now, policy)
    if cap_free is not None:
        enrollment.next_due_at = cap_free
        _event(session, enrollment, "held by frequency cap", step.id, now)
        return None
    today = now.astimezone(zone).date()
    versions = sendable_versions(session, step.collateral, today=today)
    if len(versions) < len(set(step.collateral)):  # only then ask why, at the cost of queries
        problems = collateral_problems(session, step.collateral, today=today)
        _hold(session, enrollment, "; ".join(problems.values()), now)
        return None
    if existing is None:
        existing = Message(
            message_id=secrets.token_hex(16), enrollment_id=enrollment.id, step_id=step.id,
            lead_id=lead.id, to_address=lead.email, subject="", status=MessageStatus.SENDING,
            attempts=0, links={}, created_at=now,
        )
        session.add(existing)
        session.flush()
        for key in step.collateral:
            session.add(MessageCollateral(message_id=existing.id,
                                          collateral_version_id=versions[key].id))
    existing.status = MessageStatus.SENDING
    existing.attempts += 1
    enrollment.next_due_at = now
    _resume(session, enrollment, now)
    session.flush()
    return Outgoing(existing.id, enrollment.id, step,
                    tuple(versions[key].id for key in step.collateral))


def _cap_frees_at(session: Session, lead_id: int, now: datetime, policy: Policy) -> datetime | None:
    """None if the lead may get an email now, else when the frequency cap lets one through."""
    since = now - policy.cap_period
    sent = session.execute(
        select(Message.sent_at)
        .where(Message.lead_id == lead_id, Message.sent_at > since,
               Message.status.in_((MessageStatus.SENT, MessageStatus.UNKNOWN)))
        .order_by(Message.sent_at.desc())
        .limit(policy.cap_count)
    ).scalars().all()
    if len(sent) < policy.cap_count:
        return None
    return min(sent) + policy.cap_period


def _branch(
    session: Session, enrollment: Enrollment, step: BranchStep, now: datetime
) -> tuple[bool, str | None] | None:
    """(taken, where to go), or None while the window is still open without engagement."""
    condition = step.condition
    message = session.execute(
        select(Message).where(Message.enrollment_id == enrollment.id,
                              Message.step_id == condition.step)
    ).scalar_one_or_none()
    if message is None or message.sent_at is None:
        return False, step.otherwise
    deadline = message.sent_at + parse_duration(condition.within)
    types = {"open": (EventType.OPEN,), "click": (EventType.CLICK,),
             "any": (EventType.OPEN, EventType.CLICK)}[condition.engaged]
    query = select(func.count()).select_from(EngagementEvent).where(
        EngagementEvent.message_id == message.id,
        EngagementEvent.type.in_(types),
        EngagementEvent.is_machine.is_(False),
        EngagementEvent.occurred_at <= deadline,
    )
    if condition.collateral:
        collateral = get_collateral(session, condition.collateral)
        query = query.where(EngagementEvent.collateral_version_id.in_(
            select(CollateralVersion.id).where(CollateralVersion.collateral_id == collateral.id)
        ))
    if session.execute(query).scalar_one() > 0:
        return True, step.then
    if now < deadline:
        enrollment.next_due_at = deadline  # engagement arriving earlier wakes it (wake_for_lead)
        return None
    return False, step.otherwise


def record_sent(session: Session, message_id: int, subject: str, links: dict, *, now: datetime) -> None:
    """The messenger took the email: mark it sent and move the enrollment on."""
    message = session.get(Message, message_id)
    assert message is not None
    message.status = MessageStatus.SENT
    message.subject = subject
    message.links = links
    message.sent_at = now
    message.last_error = None
    _after_message(session, message, "sent", now)


def record_unknown(session: Session, message_id: int, error: str, *, now: datetime) -> None:
    """It may have gone: never send it again; report it and move on."""
    message = session.get(Message, message_id)
    assert message is not None
    message.status = MessageStatus.UNKNOWN
    message.last_error = error
    message.sent_at = message.sent_at or now
    _after_message(session, message, f"delivery unknown: {error}", now)


def record_refused(
    session: Session, message_id: int, error: str, *, permanent: bool, now: datetime
) -> None:
    """Certainly not sent: retry with backoff, or hold the enrollment after the last attempt."""
    message = session.get(Message, message_id)
    assert message is not None
    enrollment = session.get(Enrollment, message.enrollment_id)
    assert enrollment is not None
    message.status = MessageStatus.FAILED
    message.last_error = error
    if permanent or message.attempts >= SEND_ATTEMPTS:
        _hold(session, enrollment, f"could not send {message.step_id!r}: {error}", now)
        return
    enrollment.next_due_at = now + RETRY_BACKOFF[min(message.attempts, len(RETRY_BACKOFF)) - 1]
    _event(session, enrollment, f"send refused, retry {message.attempts}: {error}",
           message.step_id, now)


def _after_message(session: Session, message: Message, what: str, now: datetime) -> None:
    enrollment = session.get(Enrollment, message.enrollment_id)
    version = session.get(SequenceVersion, enrollment.version_id) if enrollment else None
    assert enrollment is not None and version is not None
    if enrollment.step_id == message.step_id:
        document = version_document(version.id, version.document)
        _move(session, enrollment, document.next_step_id(message.step_id), now, what,
              step_for_event=message.step_id)
    session.flush()


def wake_for_lead(session: Session, lead_id: int, *, now: datetime) -> int:
    """Engagement arrived: branches of this lead waiting on it are due now. Returns how many."""
    enrollments = session.execute(
        select(Enrollment).where(Enrollment.lead_id == lead_id,
                                 Enrollment.status == EnrollmentStatus.ACTIVE,
                                 Enrollment.next_due_at > now)
    ).scalars().all()
    woken = 0
    for enrollment in enrollments:
        version = session.get(SequenceVersion, enrollment.version_id)
        assert version is not None
        step = version_document(version.id, version.document).step(enrollment.step_id or "")
        if isinstance(step, BranchStep):
            enrollment.next_due_at = now
            woken += 1
    session.flush()
    return woken


def release_claim(session: Session, enrollment_id: int) -> None:
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is not None:
        enrollment.claimed_until = None


def _move(
    session: Session, enrollment: Enrollment, step_id: str | None, now: datetime, what: str,
    *, step_for_event: str | None = None,
) -> None:
    _resume(session, enrollment, now)
    _event(session, enrollment, what, step_for_event or enrollment.step_id, now)
    enrollment.step_id = step_id
    enrollment.step_started_at = now
    enrollment.next_due_at = now


def _resume(session: Session, enrollment: Enrollment, now: datetime) -> None:
    if enrollment.status == EnrollmentStatus.HELD:
        _event(session, enrollment, "resumed", enrollment.step_id, now)
        enrollment.status = EnrollmentStatus.ACTIVE
        enrollment.hold_reason = None


def _hold(session: Session, enrollment: Enrollment, reason: str, now: datetime) -> None:
    if enrollment.hold_reason != reason:  # log a change of reason, not every recheck
        _event(session, enrollment, "held", enrollment.step_id, now, detail=reason)
    enrollment.status = EnrollmentStatus.HELD
    enrollment.hold_reason = reason
    enrollment.next_due_at = now + HOLD_RECHECK


def _finish(
    session: Session, enrollment: Enrollment, status: EnrollmentStatus, reason: str, now: datetime
) -> None:
    _event(session, enrollment, status.value, enrollment.step_id, now, detail=reason)
    enrollment.status = status
    enrollment.exit_reason = reason
    enrollment.finished_at = now
    enrollment.next_due_at = None
    enrollment.claimed_until = None


def _event(
    session: Session, enrollment: Enrollment, kind: str, step_id: str | None, now: datetime,
    *, detail: str | None = None,
) -> None:
    session.add(EnrollmentEvent(enrollment_id=enrollment.id, step_id=step_id, kind=kind[:32],
                                detail=detail or (kind if len(kind) > 32 else None), at=now))
