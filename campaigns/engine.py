"""The enrollment state machine: take due enrollments as far as they can go right now.

`plan()` loads a batch of claimed enrollments and what their steps depend on in a few
queries (`Batch`), then walks each one's steps (waits, branches, exits) without any network
call, stopping at an email that must be sent: it commits nothing itself, but leaves a
`Message` row in `queued` (certainly not handed over). The caller commits that, then marks
each message `sending` in a commit of its own *before* handing the email to the messenger,
and records the outcome (`campaigns.handover`, `record_refused()`, `record_unknown()`);
`handover.settle_sent()` moves a sent enrollment on to a wait or its end, and the next
`plan()` takes it anywhere else. A message row exists once per (enrollment, step), so a
step is sent at most once, whatever crashes or retries happen.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import isodate
from sqlalchemy import (
    func,
    insert,
    select,
    update,
)
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
from nurture import rollups
from nurture.db import one_of
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
    SuppressionReason,
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
    """An email the caller must send now (its message row is `queued`, flushed)."""

    message: Message
    enrollment: Enrollment
    lead: Lead
    step: EmailStep
    collateral: tuple[CollateralVersion, ...]
    then: Then | None = None
    """Where the enrollment goes once the email is sent, when only the clock decides it."""

    @property
    def message_id(self) -> int:
        return self.message.id


@dataclass(frozen=True)
class Then:
    """The step after an email, when reaching it needs nothing but the clock: a wait (due
    when it ends), an exit, or the sequence's end (`finish`: the status and the reason)."""

    step_id: str | None
    wait: WaitStep | None
    finish: tuple[EnrollmentStatus, str] | None
    zone: ZoneInfo


def _then(document: SequenceDocument, step: EmailStep, zone: ZoneInfo) -> Then | None:
    next_id = document.next_step_id(step.id)
    if next_id is None:
        return Then(None, None, (EnrollmentStatus.COMPLETED, "completed"), zone)
    following = document.step(next_id)
    if isinstance(following, ExitStep):
        status = (EnrollmentStatus.COMPLETED if following.reason == "completed"
                  else EnrollmentStatus.EXITED)
        return Then(next_id, None, (status, following.reason), zone)
    if isinstance(following, WaitStep):
        return Then(next_id, following, None, zone)
    return None  # a branch or an email: the next plan takes it there


@dataclass(frozen=True)
class Policy:
    """The account-wide rules: fallback time zone and the frequency cap."""

    timezone: str = "UTC"
    cap_count: int = 2
    cap_period: timedelta = timedelta(days=7)


@dataclass
class Batch:
    """Claimed enrollments and everything their next steps read, loaded in a few queries.

    The enrollments are locked (`FOR UPDATE`) until the caller commits; the rest is read
    once for the whole batch instead of once per enrollment and step."""

    enrollments: list[Enrollment]
    leads: dict[int, Lead]
    sequences: dict[int, Sequence]
    versions: dict[int, SequenceVersion]
    suppressed: dict[str, SuppressionReason]
    last_reply: dict[int, datetime]
    """Lead id → when it last replied to an email."""
    messages: dict[int, dict[str, Message]]
    """Enrollment id → step id → its message."""
    recent_sends: dict[int, list[datetime]]
    """Lead id → send times inside the frequency cap's period (planned sends included)."""
    sendable: dict[tuple[frozenset[str], date], dict[str, CollateralVersion]] = field(
        default_factory=dict)


def load_batch(
    session: Session, enrollment_ids: Iterable[int], *, now: datetime, policy: Policy
) -> Batch:
    """Lock the enrollments (in id order, so batches never deadlock) and load what they need."""
    ids = sorted(set(enrollment_ids))
    enrollments = list(session.execute(
        select(Enrollment).where(one_of(session, Enrollment.id, ids)).order_by(Enrollment.id)
        .with_for_update()
    ).scalars())
    lead_ids = {e.lead_id for e in enrollments}
    leads = _by_id(session, Lead, lead_ids)
    sequences = _by_id(session, Sequence, {e.sequence_id for e in enrollments})
    versions = _by_id(session, SequenceVersion, {e.version_id for e in enrollments})
    emails = {lead.email for lead in leads.values()}
    suppressed = dict(session.execute(
        select(Suppression.email, Suppression.reason)
        .where(one_of(session, Suppression.email, emails))
    ).tuples().all()) if emails else {}
    last_reply = dict(session.execute(
        select(EngagementEvent.lead_id, func.max(EngagementEvent.occurred_at))
        .where(one_of(session, EngagementEvent.lead_id, lead_ids),
               EngagementEvent.type == EventType.EMAIL_REPLY)
        .group_by(EngagementEvent.lead_id)
    ).tuples().all()) if lead_ids else {}
    messages: dict[int, dict[str, Message]] = {}
    if ids:
        for message in session.execute(
            select(Message).where(one_of(session, Message.enrollment_id, ids))
        ).scalars():
            messages.setdefault(message.enrollment_id, {})[message.step_id] = message
    recent_sends: dict[int, list[datetime]] = {}
    if lead_ids:
        for lead_id, sent_at in session.execute(
            select(Message.lead_id, Message.sent_at).where(
                one_of(session, Message.lead_id, lead_ids), Message.sent_at > now - policy.cap_period,
                Message.status.in_((MessageStatus.SENT, MessageStatus.UNKNOWN)),
            )
        ).tuples():
            recent_sends.setdefault(lead_id, []).append(sent_at)
    return Batch(enrollments, leads, sequences, versions, suppressed, last_reply, messages,
                 recent_sends)


def _by_id(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {row.id: row for row in session.execute(
        select(model).where(one_of(session, model.id, ids))).scalars()}


def plan(
    session: Session, enrollment_ids: Iterable[int], *, now: datetime, policy: Policy
) -> list[Outgoing]:
    """Advance each claimed enrollment; return the emails to send now, their rows `queued`.

    The claims of enrollments with nothing to send are released; the others stay claimed
    until their email's outcome is recorded."""
    batch = load_batch(session, enrollment_ids, now=now, policy=policy)
    outgoing = []
    events: list[dict[str, Any]] = []
    session.info[_EVENTS] = events
    try:
        for enrollment in batch.enrollments:
            email = advance(session, batch, enrollment, now=now, policy=policy)
            if email is None:
                enrollment.claimed_until = None
            else:
                outgoing.append(email)
    finally:
        del session.info[_EVENTS]
    if events:  # Core: the ORM's bulk insert would send them one by one
        session.connection().execute(insert(EnrollmentEvent.__table__), events)
    new = [email for email in outgoing if email.message.id is None]
    _number_messages(session, [email.message for email in new])
    session.flush()  # the new messages' ids, for their links and the featured collateral
    session.add_all(
        MessageCollateral(message_id=email.message.id, collateral_version_id=version.id)
        for email in new for version in email.collateral
    )
    return outgoing


def _number_messages(session: Session, messages: list[Message]) -> None:
    """On PostgreSQL, take the new messages' ids from their sequence in one query, so they
    are inserted by one short statement run for each row: inserting them with `RETURNING`
    makes one statement of every row's values, which the driver parses anew each time."""
    if not messages or session.get_bind().dialect.name != "postgresql":
        return
    ids = session.execute(
        select(func.nextval(func.pg_get_serial_sequence("messages", "id")))
        .select_from(func.generate_series(1, len(messages)))
    ).scalars().all()
    for message, number in zip(messages, ids, strict=True):
        message.id = number


def advance(
    session: Session, batch: Batch, enrollment: Enrollment, *, now: datetime, policy: Policy
) -> Outgoing | None:
    """Run one enrollment's due steps; return the email to send, or None when it waits or ends."""
    if enrollment.status not in (
        EnrollmentStatus.SCHEDULED, EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD,
    ):
        return None
    if enrollment.next_due_at is not None and enrollment.next_due_at > now:
        return None  # a stale claim: someone else moved it on
    lead = batch.leads[enrollment.lead_id]
    sequence = batch.sequences[enrollment.sequence_id]
    version = batch.versions[enrollment.version_id]
    document = version_document(version.id, version.document)

    reason = exit_reason(batch, lead, enrollment)
    if reason is not None:
        _finish(session, batch, enrollment, EnrollmentStatus.EXITED, reason, now)
        return None
    if sequence.status != SequenceStatus.ACTIVE:
        _hold(session, enrollment, f"sequence {sequence.key!r} is {sequence.status.value}", now)
        return None
    if enrollment.status == EnrollmentStatus.SCHEDULED:
        _event(session, enrollment, "started", None, now)
        enrollment.status = EnrollmentStatus.ACTIVE

    for _ in range(MAX_STEPS_PER_RUN):
        if enrollment.step_id is None:
            _finish(session, batch, enrollment, EnrollmentStatus.COMPLETED, "completed", now)
            return None
        step = document.step(enrollment.step_id)
        if isinstance(step, ExitStep):
            status = EnrollmentStatus.COMPLETED if step.reason == "completed" else EnrollmentStatus.EXITED
            _finish(session, batch, enrollment, status, step.reason, now)
            return None
        if isinstance(step, WaitStep):
            ends = wait_ends(step, enrollment.step_started_at or now, lead_zone(lead, document))
            if now < ends:
                enrollment.next_due_at = ends
                return None
            _move(session, enrollment, document.next_step_id(step.id), now, "waited")
            continue
        if isinstance(step, BranchStep):
            decision = _branch(session, batch, enrollment, step, now)
            if decision is None:
                return None  # waiting for engagement or the window's end
            taken, goto = decision
            _move(session, enrollment, goto or document.next_step_id(step.id), now,
                  f"branch {'then' if taken else 'else'}")
            continue
        outgoing = _email(session, batch, enrollment, lead, document, step, now, policy)
        if outgoing is not None or enrollment.step_id == step.id:
            return outgoing  # an email to send, or held/waiting at this step
    return None


EXIT_FOR_SUPPRESSION = {
    SuppressionReason.UNSUBSCRIBED: "unsubscribed",
    SuppressionReason.HARD_BOUNCE: "hard_bounced",
    SuppressionReason.COMPLAINT: "complained",
}


def exit_reason(batch: Batch, lead: Lead, enrollment: Enrollment) -> str | None:
    """Why the enrollment must stop, checked before every step (None: carry on)."""
    if lead.lifecycle_stage in LEFT_NURTURE:
        return f"lead is {lead.lifecycle_stage.value}"
    suppressed = batch.suppressed.get(lead.email)
    if suppressed is not None:
        return EXIT_FOR_SUPPRESSION.get(suppressed, "suppressed")
    replied = batch.last_reply.get(lead.id)
    return "replied" if replied is not None and replied >= enrollment.enrolled_at else None


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
    session: Session, batch: Batch, enrollment: Enrollment, lead: Lead,
    document: SequenceDocument, step: EmailStep, now: datetime, policy: Policy,
) -> Outgoing | None:
    sent = batch.messages.setdefault(enrollment.id, {})
    existing = sent.get(step.id)
    if existing is not None:
        if existing.status in (MessageStatus.SENT, MessageStatus.UNKNOWN, MessageStatus.SKIPPED):
            what = existing.status.value
            if existing.status == MessageStatus.UNKNOWN:
                what = f"delivery unknown: {existing.last_error}"
            _move(session, enrollment, document.next_step_id(step.id), now, what,
                  step_for_event=step.id)
            return None
        if existing.status == MessageStatus.SENDING:
            # a crash between the handover and its record: it may have gone; never send again
            record_unknown(session, existing, "interrupted while sending", now=now)
            _move(session, enrollment, document.next_step_id(step.id), now,
                  "delivery unknown: interrupted while sending", step_for_event=step.id)
            return None
    zone = ZoneInfo(lead.timezone or document.send_window.timezone or policy.timezone)
    opens = next_window_start(document.send_window, zone, now)
    if opens > now:
        enrollment.next_due_at = opens
        return None
    cap_free = _cap_frees_at(batch, lead.id, policy)
    if cap_free is not None:
        enrollment.next_due_at = cap_free
        _event(session, enrollment, "held by frequency cap", step.id, now)
        return None
    today = now.astimezone(zone).date()
    keys = frozenset(step.collateral)
    versions = batch.sendable.get((keys, today))
    if versions is None:
        versions = batch.sendable[keys, today] = sendable_versions(session, keys, today=today)
    if len(versions) < len(keys):  # only then ask why, at the cost of queries
        problems = collateral_problems(session, keys, today=today)
        _hold(session, enrollment, "; ".join(problems.values()), now)
        return None
    if existing is None:
        existing = Message(
            message_id=secrets.token_hex(16), enrollment_id=enrollment.id, step_id=step.id,
            lead_id=lead.id, to_address=lead.email, subject="", status=MessageStatus.QUEUED,
            attempts=0, links={}, created_at=now,
        )
        session.add(existing)
        sent[step.id] = existing
    existing.status = MessageStatus.QUEUED
    existing.to_address = lead.email
    batch.recent_sends.setdefault(lead.id, []).append(now)  # the cap counts it from now on
    if enrollment.next_due_at is None or enrollment.next_due_at > now:
        enrollment.next_due_at = now  # due (it is claimed): after a crash, the lease frees it
    _resume(session, enrollment, now)
    return Outgoing(existing, enrollment, lead, step,
                    tuple(versions[key] for key in step.collateral),
                    _then(document, step, lead_zone(lead, document)))


def _cap_frees_at(batch: Batch, lead_id: int, policy: Policy) -> datetime | None:
    """None if the lead may get an email now, else when the frequency cap lets one through."""
    sent = sorted(batch.recent_sends.get(lead_id, ()), reverse=True)[:policy.cap_count]
    if len(sent) < policy.cap_count:
        return None
    return min(sent) + policy.cap_period


def _branch(
    session: Session, batch: Batch, enrollment: Enrollment, step: BranchStep, now: datetime
) -> tuple[bool, str | None] | None:
    """(taken, where to go), or None while the window is still open without engagement."""
    condition = step.condition
    message = batch.messages.get(enrollment.id, {}).get(condition.step)
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


def record_unknown(session: Session, message: Message, error: str, *, now: datetime) -> None:
    """It may have gone: never send it again (the next plan reports it and moves on)."""
    message.status = MessageStatus.UNKNOWN
    message.last_error = error
    message.sent_at = message.sent_at or now


def record_refused(
    session: Session, message: Message, enrollment: Enrollment, error: str, *,
    permanent: bool, now: datetime,
) -> None:
    """Certainly not sent: retry with backoff, or hold the enrollment after the last attempt."""
    message.status = MessageStatus.FAILED
    message.last_error = error
    enrollment.claimed_until = None
    if permanent or message.attempts >= SEND_ATTEMPTS:
        _hold(session, enrollment, f"could not send {message.step_id!r}: {error}", now)
        return
    enrollment.next_due_at = now + RETRY_BACKOFF[min(message.attempts, len(RETRY_BACKOFF)) - 1]
    _event(session, enrollment, f"send refused, retry {message.attempts}: {error}",
           message.step_id, now)


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


def release_claims(session: Session, enrollment_ids: Iterable[int]) -> None:
    ids = list(enrollment_ids)
    if ids:
        session.execute(update(Enrollment).where(Enrollment.id.in_(ids))
                        .values(claimed_until=None)
                        .execution_options(synchronize_session=False))


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
    session: Session, batch: Batch, enrollment: Enrollment, status: EnrollmentStatus,
    reason: str, now: datetime,
) -> None:
    for message in batch.messages.get(enrollment.id, {}).values():
        if message.status == MessageStatus.QUEUED:
            message.status = MessageStatus.SKIPPED  # planned, never handed over: it won't be
            message.last_error = f"enrollment {status.value}: {reason}"
    _event(session, enrollment, status.value, enrollment.step_id, now, detail=reason)
    rollups.exited(session, enrollment.sequence_id, enrollment.step_id, reason, at=now)
    enrollment.status = status
    enrollment.exit_reason = reason
    enrollment.finished_at = now
    enrollment.next_due_at = None
    enrollment.claimed_until = None


def _event(
    session: Session, enrollment: Enrollment, kind: str, step_id: str | None, now: datetime,
    *, detail: str | None = None,
) -> None:
    row = {"enrollment_id": enrollment.id, "step_id": step_id, "kind": kind[:32],
           "detail": detail or (kind if len(kind) > 32 else None), "at": now}
    buffered = session.info.get(_EVENTS)
    if buffered is not None:
        buffered.append(row)
    else:
        session.add(EnrollmentEvent(**row))


_EVENTS = "nurture.enrollment_events"
"""Key of `Session.info` under which `plan` gathers the batch's events, to insert them in
one statement (the history is only ever appended to)."""
