"""Recycle to sales and the SLA loop.

`recycle` is what scoring calls when a lead's score crosses the thresholds: it decides
whether the lead may go back to sales now and, if so, opens a handoff to the right rep, takes
the lead out of nurture and queues the notifications (rows; the caller enqueues them after
its commit, see `notifications.new_notifications`). `accept` and `reject` are the rep's two
answers; `escalate` is the SLA timer firing.

Services take a session and plain values, flush but never commit, and take `now`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from campaigns.intake import Intake, reject_lead
from nurture import rollups
from nurture.accounts.services import Actor
from nurture.db import insert_ignoring_conflicts
from nurture.errors import Conflict, Forbidden, NotFound
from nurture.handoffs.notifications import jsonable, notify_crm, notify_rep
from nurture.handoffs.policy import (
    DEFAULT_POLICY,
    RecyclePolicy,
    add_business_time,
    may_recycle_from,
)
from nurture.handoffs.sla import Terms, terms_in_force, terms_of
from nurture.handoffs.sla_document import LastLapse
from nurture.leads.services import change_stage
from nurture.models import (
    LIVE_ENROLLMENT,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Handoff,
    HandoffEvent,
    HandoffStatus,
    Lead,
    LifecycleStage,
    LongTermNurture,
    Message,
    MessageStatus,
    Rejection,
    RejectionReason,
    Role,
    User,
)

RECYCLABLE_FROM = (LifecycleStage.NURTURING,)
"""Stages a lead may be recycled from: only a lead that nurture holds."""

MAX_ID = 2**63 - 1


def recycle(
    session: Session,
    lead_id: int,
    *,
    score: dict[str, Any],
    model_version_id: int | None,
    qualifying_event_id: int | None,
    qualified_at: datetime,
    now: datetime,
    policy: RecyclePolicy | None = None,
) -> Handoff | None:
    """Hand the qualified lead to a rep now, or None when it may not be recycled now.

    None when the lead is not in nurture, already has an open handoff, is still inside the
    minimum time after its last rejection, or has reached the recycle cap (then it is marked
    for long-term nurture). Safe under concurrency: the lead's row is locked first, and a
    partial unique index allows one open handoff per lead whatever happens. The rules are the
    active SLA version's; with none active, `policy`: the one given, else the session's
    (`use_policy`), else the defaults. The handoff records the SLA version.
    """
    terms = terms_in_force(session, policy or session.info.get(_POLICY) or DEFAULT_POLICY)
    policy = terms.policy
    lead = _lock_lead(session, lead_id)
    if lead is None or lead.lifecycle_stage not in RECYCLABLE_FROM:
        return None
    if session.get(LongTermNurture, lead.id) is not None:
        return None
    if session.execute(select(Handoff.id).where(Handoff.lead_id == lead.id,
                                                Handoff.status == HandoffStatus.OPEN)).first():
        return None
    prior = session.execute(
        select(Rejection).where(Rejection.lead_id == lead.id)
        .order_by(Rejection.rejected_at.desc(), Rejection.id.desc()).limit(1)
    ).scalar_one_or_none()
    if prior is not None and now < may_recycle_from(prior, lead.timezone, policy):
        return None
    recycles = session.execute(
        select(func.count()).select_from(Handoff).where(Handoff.lead_id == lead.id)
    ).scalar_one()
    if recycles >= policy.max_recycles:
        session.add(LongTermNurture(lead_id=lead.id, recycles=recycles, marked_at=now))
        session.flush()
        return None

    rep, how = _choose_rep(session, prior)
    sla_due = _first_action_due(terms, score, lead, rep.timezone if rep else None, now)
    handoff_id = session.execute(
        insert_ignoring_conflicts(session, Handoff, index_elements=["lead_id"],
                                  index_where=text("status = 'open'"))
        .values(
            lead_id=lead.id, status=HandoffStatus.OPEN, rep_email=rep.email if rep else None,
            score=jsonable(score), model_version_id=model_version_id,
            qualifying_event_id=qualifying_event_id, qualified_at=qualified_at,
            prior_rejection_id=prior.id if prior else None, sla_due_at=sla_due,
            next_sla_at=sla_due, sla_id=terms.sla_id, escalations=0, reassignments=0,
            handoff_ms=max(0, _ms(now - qualified_at)), created_at=now,
        )
        .returning(Handoff.id)
    ).scalar_one_or_none()
    if handoff_id is None:  # another transaction opened one first
        return None
    handoff = session.get(Handoff, handoff_id)
    assert handoff is not None
    change_stage(session, lead, LifecycleStage.RECYCLED_TO_SALES,
                 cause=f"recycled:handoff {handoff.id}", now=now)
    rollups.recycled(session, handoff, at=now)
    exit_enrollments(session, lead.id, "recycled to sales", now=now)
    _event(session, handoff, "created", now,
           f"score {score.get('total')} (fit {score.get('fit')}, engagement "
           f"{score.get('engagement')}); rep: {how}")
    notify_crm(session, handoff, lead, prior, now=now)
    notify_rep(session, handoff, "handoff", now=now)
    return handoff


def _first_action_due(terms: Terms, score: dict[str, Any], lead: Lead, zone: str | None,
                      now: datetime) -> datetime:
    """When the rep's first action is due: the window for the score band and the lead's
    source, in business time of the rep's zone (else the agreement's)."""
    total = score.get("total")
    window = terms.document.first_action_window(
        float(total) if isinstance(total, int | float) else None, lead.source)
    return business_time(terms, now, window, zone)


def business_time(terms: Terms, start: datetime, duration: Any, zone: str | None) -> datetime:
    """`start` plus `duration` of business time under the terms' calendar."""
    hours = terms.document.business_hours
    return add_business_time(start, duration, zone or hours.timezone, hours.calendar())


_POLICY = "nurture.handoffs.policy"
"""Key of `Session.info` holding the policy recycles made through the session go by."""


def use_policy(session: Session, policy: RecyclePolicy) -> None:
    """Recycles made through this session (e.g. by scoring, which knows nothing of the
    settings) go by `policy`: how an entry point passes NURTURE_SLA down."""
    session.info[_POLICY] = policy


def _lock_lead(session: Session, lead_id: int) -> Lead | None:
    """The lead, locked for this transaction (FOR NO KEY UPDATE on PostgreSQL: every other
    writer of the lead waits, a request storing events for it does not; on SQLite a write
    first, which takes the database's one writer lock before anything is read)."""
    if not 0 < lead_id <= MAX_ID:
        return None
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Lead).where(Lead.id == lead_id)
                        .values(updated_at=Lead.updated_at)
                        .execution_options(synchronize_session=False))
    return session.execute(
        select(Lead).where(Lead.id == lead_id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _choose_rep(session: Session, prior: Rejection | None,
                exclude: str | None = None) -> tuple[User | None, str]:
    """The rep who rejected the lead if still an active rep, else round-robin."""
    if prior is not None and prior.rep_email != exclude:
        user = session.execute(select(User).where(User.email == prior.rep_email)).scalar_one_or_none()
        if user is not None and user.is_active and user.role == Role.REP:
            return user, "the rep who rejected it"
    return next_rep(session, exclude=exclude), "round-robin"


def next_rep(session: Session, *, exclude: str | None = None) -> User | None:
    """Round-robin: the active rep whose last handoff is oldest (never handed one: first)."""
    last = (
        select(Handoff.rep_email, func.max(Handoff.created_at).label("last_at"))
        .group_by(Handoff.rep_email).subquery()
    )
    query = (
        select(User).outerjoin(last, last.c.rep_email == User.email)
        .where(User.role == Role.REP, User.is_active.is_(True))
        .order_by(last.c.last_at.asc().nulls_first(), User.id)
        .limit(1)
    )
    if exclude is not None:
        query = query.where(User.email != exclude)
    return session.execute(query).scalar_one_or_none()


def exit_enrollments(session: Session, lead_id: int, reason: str, *, now: datetime) -> int:
    """Exit every live enrollment of the lead now (the engine would at its next step) and
    skip the emails planned but not handed over. Returns how many exited."""
    live = session.execute(
        select(Enrollment).where(Enrollment.lead_id == lead_id,
                                 Enrollment.status.in_(LIVE_ENROLLMENT))
    ).scalars().all()
    for enrollment in live:
        session.add(EnrollmentEvent(enrollment_id=enrollment.id, step_id=enrollment.step_id,
                                    kind="exited", detail=reason, at=now))
        rollups.exited(session, enrollment.sequence_id, enrollment.step_id, reason, at=now)
        enrollment.status = EnrollmentStatus.EXITED
        enrollment.exit_reason = reason
        enrollment.finished_at = now
        enrollment.next_due_at = None
        enrollment.claimed_until = None
    if live:
        session.execute(
            update(Message)
            .where(Message.enrollment_id.in_([e.id for e in live]),
                   Message.status == MessageStatus.QUEUED)
            .values(status=MessageStatus.SKIPPED, last_error=f"enrollment exited: {reason}")
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return len(live)


def get_handoff(session: Session, handoff_id: int) -> Handoff:
    handoff = session.get(Handoff, handoff_id) if 0 < handoff_id <= MAX_ID else None
    if handoff is None:
        raise NotFound(f"no handoff with id {handoff_id}")
    return handoff


def get_lead_of(session: Session, handoff: Handoff) -> Lead:
    lead = session.get(Lead, handoff.lead_id)
    assert lead is not None  # the foreign key cascades
    return lead


def _may_act(handoff: Handoff, actor: Actor) -> None:
    """A rep acts on its own handoffs only; an admin on any."""
    if actor.role == Role.ADMIN:
        return
    if actor.role != Role.REP or handoff.rep_email != actor.email:
        raise Forbidden(f"handoff {handoff.id} is not assigned to {actor.email}")


def _close(session: Session, handoff: Handoff, status: HandoffStatus, actor: Actor,
           now: datetime) -> None:
    """Open → accepted or rejected, once: a conditional update, so of two concurrent
    answers exactly one wins and the other is a conflict."""
    _may_act(handoff, actor)
    closed = session.execute(
        update(Handoff).where(Handoff.id == handoff.id, Handoff.status == HandoffStatus.OPEN)
        .values(status=status, closed_at=now, closed_by=actor.email[:255], first_action_at=now,
                response_ms=max(0, _ms(now - handoff.created_at)), next_sla_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not closed:
        session.refresh(handoff)
        raise Conflict(f"handoff {handoff.id} is {handoff.status.value} already")
    session.refresh(handoff)


def accept(session: Session, handoff_id: int, *, actor: Actor, now: datetime) -> Handoff:
    """The rep takes the lead: it leaves nurture. If the handoff's SLA version says how long
    an accepted lead may go without an opportunity, its stall timer starts now."""
    handoff = get_handoff(session, handoff_id)
    _close(session, handoff, HandoffStatus.ACCEPTED, actor, now)
    lead = session.get(Lead, handoff.lead_id)
    assert lead is not None
    terms = terms_of(session, handoff.sla_id)
    days = terms.document.stalled_in_sales_days
    if days is not None:
        handoff.stalls_at = business_time(
            terms, now, days * terms.document.business_hours.calendar().day_length,
            _rep_zone(session, handoff.rep_email))
    change_stage(session, lead, LifecycleStage.ACCEPTED_BY_SALES,
                 cause=f"accepted:handoff {handoff.id}", now=now)
    exit_enrollments(session, lead.id, "accepted by sales", now=now)
    _event(session, handoff, "accepted", now, None, rep=actor.email)
    rollups.answered(session, handoff, accepted=True, reason=None, at=now)
    return handoff


def reject(
    session: Session,
    handoff_id: int,
    *,
    actor: Actor,
    reason: RejectionReason,
    note: str | None,
    revisit_on: Any = None,
    now: datetime,
) -> tuple[Handoff, Intake]:
    """The rep gives the lead back with a reason: a new rejection (it feeds the funnel), and
    the lead returns to nurture, routed by that reason like any CRM rejection."""
    handoff = get_handoff(session, handoff_id)
    _close(session, handoff, HandoffStatus.REJECTED, actor, now)
    lead = session.get(Lead, handoff.lead_id)
    assert lead is not None
    rep_email = actor.email if actor.role == Role.REP else (handoff.rep_email or actor.email)
    intake = reject_lead(session, lead.email, {}, rep_email=rep_email, reason=reason, note=note,
                         revisit_on=revisit_on, now=now)
    assert intake.rejection is not None
    handoff.rejection_id = intake.rejection.id
    rollups.answered(session, handoff, accepted=False, reason=reason.value, at=now)
    _event(session, handoff, "rejected", now, f"{reason.value}: {note or ''}".strip(": "),
           rep=actor.email)
    session.flush()
    return handoff, intake


def due_timers(session: Session, *, now: datetime, limit: int = 500) -> list[int]:
    """Open handoffs whose SLA timer is due (through the partial index), oldest first."""
    return list(session.execute(
        select(Handoff.id).where(Handoff.status == HandoffStatus.OPEN, Handoff.next_sla_at <= now)
        .order_by(Handoff.next_sla_at).limit(limit)
    ).scalars())


def escalate(session: Session, handoff_id: int, *, now: datetime,
             policy: RecyclePolicy = DEFAULT_POLICY) -> str | None:
    """The SLA timer fired on an open handoff: the next step of its SLA version's escalation
    chain (remind the people it names, give the rep more time), and after the last step's
    window what the SLA says: reassign to another active rep with a fresh first-action
    window, or return the lead to nurture (`sla_expired`). `policy`: the settings' default,
    for handoffs made under no SLA version. Every step is a handoff event. Returns what was
    done (None: not due any more, e.g. the rep acted meanwhile)."""
    handoff = session.execute(
        select(Handoff).where(Handoff.id == handoff_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if (handoff is None or handoff.status != HandoffStatus.OPEN or handoff.next_sla_at is None
            or handoff.next_sla_at > now):
        return None
    return fire_sla_timer(session, handoff, now=now, policy=policy)


def fire_sla_timer(session: Session, handoff: Handoff, *, now: datetime,
                   policy: RecyclePolicy = DEFAULT_POLICY) -> str:
    """`escalate` on a handoff the caller has locked and found due."""
    terms = terms_of(session, handoff.sla_id, policy)
    chain = terms.document.escalation
    current = handoff.rep_email
    rollups.escalated(session, handoff, at=now)
    if current is not None and handoff.escalations < len(chain):
        step = chain[handoff.escalations]
        handoff.escalations += 1
        handoff.next_sla_at = business_time(terms, now, step.within, _rep_zone(session, current))
        told = [current if who == "rep" else who for who in step.notify]
        _event(session, handoff, "sla_missed" if handoff.escalations == 1 else "escalated", now,
               f"not acted on by {handoff.sla_due_at.isoformat()}; reminded "
               f"{', '.join(told)}", rep=current)
        for who in dict.fromkeys(told):
            notify_rep(session, handoff, "reminder", now=now,
                       to=None if who == current else who)
        return "reminded"
    if terms.document.on_last_lapse == LastLapse.RETURN_TO_NURTURE and current is not None:
        return_to_nurture(session, handoff, HandoffStatus.EXPIRED, RejectionReason.SLA_EXPIRED,
                          f"no answer from {current} within the SLA", now=now)
        return "expired"
    rep = next_rep(session, exclude=current)
    if rep is None:
        handoff.escalations += 1
        window = chain[-1].within if chain else terms.document.first_action.within
        handoff.next_sla_at = business_time(terms, now, window, _rep_zone(session, current))
        _event(session, handoff, "reassign_failed", now, "no other active rep; reminded again",
               rep=current)
        notify_rep(session, handoff, "reminder", now=now)
        return "reminded"
    handoff.rep_email = rep.email
    handoff.reassignments += 1
    handoff.escalations = 0
    lead = get_lead_of(session, handoff)
    handoff.sla_due_at = handoff.next_sla_at = _first_action_due(
        terms, handoff.score, lead, rep.timezone, now)
    _event(session, handoff, "reassigned", now, f"from {current or 'nobody'} to {rep.email}",
           rep=rep.email)
    notify_rep(session, handoff, "reassigned", now=now)
    session.flush()
    return "reassigned"


def return_to_nurture(session: Session, handoff: Handoff, status: HandoffStatus,
                      reason: RejectionReason, note: str, *, now: datetime) -> Intake:
    """Sales let the lead go without a rep's word (the SLA lapsed, the lead stalled): the
    handoff is closed as `status`, and the lead returns to nurture with a rejection of this
    reason (recorded for the rep it was with), routed like any rejection."""
    handoff.status = status
    handoff.closed_at = now
    handoff.closed_by = "sla"
    handoff.next_sla_at = None
    handoff.stalls_at = None
    lead = get_lead_of(session, handoff)
    intake = reject_lead(session, lead.email, {}, rep_email=handoff.rep_email or "unassigned",
                         reason=reason, note=note, now=now)
    assert intake.rejection is not None
    handoff.rejection_id = intake.rejection.id
    _event(session, handoff, reason.value, now, note)
    rollups.sla_closed(session, handoff.rep_email, reason.value, at=now)
    session.flush()
    return intake


def _rep_zone(session: Session, email: str | None) -> str | None:
    if email is None:
        return None
    return session.execute(select(User.timezone).where(User.email == email)).scalar_one_or_none()


def list_handoffs(session: Session, *, status: HandoffStatus | None, rep_email: str | None,
                  limit: int = 100) -> list[tuple[Handoff, Lead]]:
    """Handoffs, newest first, each with its lead (the rep's inbox)."""
    query = select(Handoff, Lead).join(Lead, Lead.id == Handoff.lead_id)
    if status is not None:
        query = query.where(Handoff.status == status)
    if rep_email is not None:
        query = query.where(Handoff.rep_email == rep_email)
    return [(h, lead) for h, lead in session.execute(
        query.order_by(Handoff.created_at.desc(), Handoff.id.desc()).limit(limit)
    ).all()]


def lead_handoffs(session: Session, lead_id: int, *, limit: int = 50) -> list[Handoff]:
    return list(session.execute(
        select(Handoff).where(Handoff.lead_id == lead_id)
        .order_by(Handoff.created_at.desc(), Handoff.id.desc()).limit(limit)
    ).scalars())


def _event(session: Session, handoff: Handoff, kind: str, now: datetime, detail: str | None,
           *, rep: str | None = None) -> None:
    session.add(HandoffEvent(handoff_id=handoff.id, kind=kind, rep_email=rep or handoff.rep_email,
                             detail=detail, at=now))
    session.flush()


def record_event(session: Session, handoff_id: int, kind: str, *, now: datetime,
                 detail: str | None = None, rep: str | None = None) -> None:
    """A step of the handoff's life recorded from outside (a notification delivered)."""
    session.add(HandoffEvent(handoff_id=handoff_id, kind=kind, rep_email=rep, detail=detail,
                             at=now))


def _ms(delta: Any) -> int:
    return int(delta.total_seconds() * 1000)
