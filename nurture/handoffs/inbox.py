"""The rep's inbox: whose handoffs a signed-in rep sees, in what order, and what the lead card
shows (the rejection it came back from, the collateral it saw, its timeline). A team lead (a
rep with `users.team_lead` and a team) also sees the team's handoffs and may reassign the open
ones within the team.

A handoff the viewer may not see is `NotFound`, never `Forbidden`: a rep cannot even learn that
another rep's lead exists. Accepting and rejecting stay `services.accept` / `services.reject`,
the API's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.errors import Conflict, Forbidden, InvalidInput, NotFound
from nurture.handoffs.notifications import notify_rep
from nurture.handoffs.services import MAX_ID, _event, _first_action_due
from nurture.handoffs.sla import terms_of
from nurture.models import (
    CollateralVersion,
    EngagementEvent,
    EventType,
    Handoff,
    HandoffEvent,
    HandoffStatus,
    Lead,
    LifecycleChange,
    LifecycleStage,
    Message,
    MessageCollateral,
    Rejection,
    Role,
    User,
)
from nurture.models.collateral import Collateral, CollateralFeedback

FILTERS = (HandoffStatus.OPEN, HandoffStatus.ACCEPTED, HandoffStatus.REJECTED,
           HandoffStatus.EXPIRED)
"""The inbox's filters (besides everything)."""

PAGE = 50
"""Handoffs an inbox page lists."""

TIMELINE = 40
"""Most steps the lead card's timeline shows."""

QUIET_EVENTS = (EventType.PROCESSED, EventType.DEFERRED, EventType.DELIVERED)
"""Events the timeline leaves out (the provider's bookkeeping, not the lead's doing)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in rep as the inbox sees them."""

    id: int
    email: str
    name: str | None
    timezone: str
    team: str | None
    team_lead: bool

    @property
    def leads_team(self) -> bool:
        return self.team_lead and bool(self.team)

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.timezone)


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def viewer(session: Session, user_id: int) -> Viewer:
    user = session.get(User, user_id)
    if user is None or user.role != Role.REP:
        raise NotFound("no such rep")
    return Viewer(user.id, user.email, user.name, user.timezone or "UTC", user.team,
                  bool(user.team_lead))


def team_members(session: Session, team: str) -> list[User]:
    """The team's active reps, by name."""
    return list(session.execute(
        select(User).where(User.team == team, User.role == Role.REP, User.is_active.is_(True))
        .order_by(func.coalesce(User.name, User.email), User.email)
    ).scalars())


def visible_reps(session: Session, who: Viewer, *, team: bool = False) -> list[str]:
    """The reps whose handoffs `who` sees: their own; with `team`, a team lead's whole team
    (inactive members too: their open handoffs are the ones to reassign)."""
    if not (team and who.leads_team):
        return [who.email]
    emails = set(session.execute(
        select(User.email).where(User.team == who.team, User.role == Role.REP)
    ).scalars())
    return sorted(emails | {who.email})


@dataclass
class Row:
    handoff: Handoff
    lead: Lead


def inbox(session: Session, reps: list[str], *, status: HandoffStatus | None,
          limit: int = PAGE) -> list[Row]:
    """The handoffs of these reps: open ones first, the soonest due at the top; then the
    closed ones, the latest first. Two bounded queries on (rep_email, status), so a rep with
    years of closed handoffs costs the same as a new one."""
    rows: list[Row] = []
    if status in (None, HandoffStatus.OPEN):
        rows += _rows(session, select(Handoff, Lead).join(Lead, Lead.id == Handoff.lead_id)
                      .where(Handoff.rep_email.in_(reps), Handoff.status == HandoffStatus.OPEN)
                      .order_by(Handoff.sla_due_at, Handoff.id).limit(limit))
    if status != HandoffStatus.OPEN and len(rows) < limit:
        closed = [status] if status is not None else [
            s for s in HandoffStatus if s != HandoffStatus.OPEN]
        rows += _rows(session, select(Handoff, Lead).join(Lead, Lead.id == Handoff.lead_id)
                      .where(Handoff.rep_email.in_(reps), Handoff.status.in_(closed))
                      .order_by(Handoff.created_at.desc(), Handoff.id.desc())
                      .limit(limit - len(rows)))
    return rows


def _rows(session: Session, query: Any) -> list[Row]:
    return [Row(h, lead) for h, lead in session.execute(query).all()]


def counts(session: Session, reps: list[str]) -> dict[str, int]:
    """How many handoffs of these reps are in each status (the filters' numbers)."""
    rows = session.execute(
        select(Handoff.status, func.count()).where(Handoff.rep_email.in_(reps))
        .group_by(Handoff.status)
    ).all()
    found = {status.value: n for status, n in rows}
    return {"all": sum(found.values()), **{s.value: found.get(s.value, 0) for s in FILTERS}}


def visible_handoff(session: Session, handoff_id: int, reps: list[str]) -> Handoff:
    """The handoff if one of `reps` has it; else NotFound (whether or not it exists)."""
    handoff = session.get(Handoff, handoff_id) if 0 < handoff_id <= MAX_ID else None
    if handoff is None or handoff.rep_email not in reps:
        raise NotFound(f"no handoff with id {handoff_id}")
    return handoff


def visible_lead_handoff(session: Session, lead_id: int, reps: list[str]) -> Handoff:
    """The latest handoff of the lead that one of `reps` has; else NotFound."""
    if not 0 < lead_id <= MAX_ID:
        raise NotFound(f"no lead with id {lead_id}")
    handoff = session.execute(
        select(Handoff).where(Handoff.lead_id == lead_id, Handoff.rep_email.in_(reps))
        .order_by(Handoff.created_at.desc(), Handoff.id.desc()).limit(1)
    ).scalar_one_or_none()
    if handoff is None:
        raise NotFound(f"no lead with id {lead_id}")
    return handoff


@dataclass(frozen=True)
class Countdown:
    """The SLA as the rep reads it: the due time in the rep's zone and what is left."""

    due_local: datetime
    seconds_left: int
    text: str
    overdue: bool
    urgent: bool


def countdown(due: datetime, now: datetime, zone: ZoneInfo) -> Countdown:
    left = int((due - now).total_seconds())
    overdue = left < 0
    words = duration_words(abs(left))
    return Countdown(due.astimezone(zone), left,
                     f"overdue by {words}" if overdue else f"{words} left", overdue,
                     not overdue and left < 15 * 60)


def duration_words(seconds: int) -> str:
    minutes = max(1, seconds // 60) if seconds >= 30 else 0
    if minutes == 0:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


@dataclass
class SeenCollateral:
    """A collateral version the lead was sent or engaged with, and the rep's feedback."""

    version_id: int
    key: str
    title: str
    url: str | None
    sent: int = 0
    last_sent_at: datetime | None = None
    engaged: list[str] = field(default_factory=list)
    last_engaged_at: datetime | None = None
    feedback: CollateralFeedback | None = None


def collateral_seen(session: Session, handoff: Handoff, rep_email: str | None,
                    *, limit: int = 20) -> list[SeenCollateral]:
    """What collateral the lead saw (featured in emails sent to it) and engaged with (clicks,
    downloads), engaged first, with this rep's feedback on each for this handoff."""
    until = handoff.created_at
    seen: dict[int, SeenCollateral] = {}
    sent = session.execute(
        select(MessageCollateral.collateral_version_id, func.count(), func.max(Message.sent_at))
        .join(Message, Message.id == MessageCollateral.message_id)
        .where(Message.lead_id == handoff.lead_id, Message.sent_at.is_not(None),
               Message.sent_at <= until)
        .group_by(MessageCollateral.collateral_version_id)
    ).all()
    engaged = session.execute(
        select(EngagementEvent.collateral_version_id, EngagementEvent.type,
               EngagementEvent.occurred_at)
        .where(EngagementEvent.lead_id == handoff.lead_id,
               EngagementEvent.collateral_version_id.is_not(None),
               EngagementEvent.is_machine.is_(False), EngagementEvent.occurred_at <= until)
        .order_by(EngagementEvent.occurred_at.desc()).limit(200)
    ).all()
    ids = {v for v, _, _ in sent} | {v for v, _, _ in engaged}
    if not ids:
        return []
    versions = session.execute(
        select(CollateralVersion, Collateral.key)
        .join(Collateral, Collateral.id == CollateralVersion.collateral_id)
        .where(CollateralVersion.id.in_(ids))
    ).all()
    for version, key in versions:
        seen[version.id] = SeenCollateral(version.id, key, version.title, version.url)
    for version_id, n, last in sent:
        if version_id in seen:
            seen[version_id].sent, seen[version_id].last_sent_at = n, last
    for version_id, kind, at in engaged:
        item = seen.get(version_id)
        if item is None:
            continue
        word = {"click": "clicked", "content_download": "downloaded",
                "open": "opened"}.get(kind.value, kind.value.replace("_", " "))
        if word not in item.engaged:
            item.engaged.append(word)
        if item.last_engaged_at is None or at > item.last_engaged_at:
            item.last_engaged_at = at
    if rep_email is not None:
        for fb in session.execute(
            select(CollateralFeedback).where(CollateralFeedback.handoff_id == handoff.id,
                                             CollateralFeedback.rep_email == rep_email)
        ).scalars():
            if fb.version_id in seen:
                seen[fb.version_id].feedback = fb
    ordered = sorted(seen.values(), key=lambda s: (
        not s.engaged, -(s.last_engaged_at or s.last_sent_at or until).timestamp(), s.title))
    return ordered[:limit]


@dataclass(frozen=True)
class Step:
    at: datetime
    kind: str
    text: str


EVENT_WORDS = {
    EventType.OPEN: "Opened an email", EventType.CLICK: "Clicked a link",
    EventType.BOUNCE: "An email bounced", EventType.SPAM_COMPLAINT: "Marked an email as spam",
    EventType.UNSUBSCRIBE: "Unsubscribed", EventType.RESUBSCRIBE: "Subscribed again",
    EventType.PAGE_VIEW: "Viewed a page", EventType.FORM_SUBMIT: "Filled in a form",
    EventType.CONTENT_DOWNLOAD: "Downloaded content",
    EventType.WEBINAR_REGISTERED: "Registered for a webinar",
    EventType.WEBINAR_ATTENDED: "Attended a webinar", EventType.EMAIL_REPLY: "Replied to an email",
    EventType.MEETING_BOOKED: "Booked a meeting", EventType.DROPPED: "An email was not delivered",
}

HANDOFF_WORDS = {
    "created": "Came back to sales", "accepted": "Accepted", "rejected": "Rejected",
    "sla_missed": "SLA missed: reminder sent", "escalated": "Escalated",
    "reassigned": "Reassigned", "reassign_failed": "No one to reassign to",
    "sla_expired": "SLA expired: back to nurture", "stalled_in_sales": "Stalled in sales",
    "rep_email_sent": "Email to the rep sent", "crm_webhook_sent": "CRM told",
}


STAGE_WORDS = {
    "lead": "Became a lead", "mql": "Became an MQL", "nurturing": "Entered nurture",
    "opportunity": "Became an opportunity", "customer": "Became a customer",
    "disqualified": "Disqualified",
}

HANDOFF_STAGES = (LifecycleStage.RECYCLED_TO_SALES, LifecycleStage.ACCEPTED_BY_SALES)
"""Stage changes a handoff's own steps already tell (came back to sales, accepted)."""


def timeline(session: Session, handoff: Handoff, *, limit: int = TIMELINE) -> list[Step]:
    """The lead's story, newest first: what it did, what sales said, where it moved, and this
    handoff's steps."""
    lead_id = handoff.lead_id
    steps: list[Step] = []
    events = list(session.execute(
        select(EngagementEvent).where(EngagementEvent.lead_id == lead_id,
                                      EngagementEvent.is_machine.is_(False),
                                      EngagementEvent.type.not_in(QUIET_EVENTS))
        .order_by(EngagementEvent.occurred_at.desc()).limit(limit)
    ).scalars())
    versions = {e.collateral_version_id for e in events if e.collateral_version_id}
    titles = dict(session.execute(
        select(CollateralVersion.id, CollateralVersion.title)
        .where(CollateralVersion.id.in_(versions))
    ).tuples().all()) if versions else {}
    for event in events:
        title = titles.get(event.collateral_version_id or 0)
        detail = f": {title}" if title else _event_detail(event)
        steps.append(Step(event.occurred_at, "event",
                          EVENT_WORDS.get(event.type, event.type.value) + detail))
    for rejection in session.execute(
        select(Rejection).where(Rejection.lead_id == lead_id)
        .order_by(Rejection.rejected_at.desc()).limit(limit)
    ).scalars():
        steps.append(Step(rejection.rejected_at, "rejection",
                          f"Rejected by {rejection.rep_email}: "
                          f"{rejection.reason.value.replace('_', ' ')}"))
    for change in session.execute(
        select(LifecycleChange).where(LifecycleChange.lead_id == lead_id,
                                      LifecycleChange.to_stage.not_in(HANDOFF_STAGES))
        .order_by(LifecycleChange.changed_at.desc()).limit(limit)
    ).scalars():
        steps.append(Step(change.changed_at, "stage", STAGE_WORDS.get(
            change.to_stage.value, change.to_stage.value.replace("_", " ").capitalize())))
    for event in session.execute(
        select(HandoffEvent).where(HandoffEvent.handoff_id == handoff.id)
        .order_by(HandoffEvent.at.desc()).limit(limit)
    ).scalars():
        if event.kind in ("rejected",):
            continue  # the rejection row says it, with its reason
        words = HANDOFF_WORDS.get(event.kind, event.kind.replace("_", " ").capitalize())
        if event.kind == "reassigned" and event.detail:
            words += f" {event.detail}"
        steps.append(Step(event.at, "handoff", words))
    steps.sort(key=lambda s: s.at, reverse=True)
    return steps[:limit]


def _event_detail(event: EngagementEvent) -> str:
    props = event.properties or {}
    for key in ("title", "webinar", "form", "name", "page"):
        value = props.get(key)
        if isinstance(value, str) and value.strip():
            return f": {value.strip()[:100]}"
    if event.url:
        return f": {event.url[:100]}"
    return ""


def rejection_of(session: Session, rejection_id: int | None) -> Rejection | None:
    return session.get(Rejection, rejection_id) if rejection_id else None


def reassign(session: Session, handoff_id: int, *, lead_by: Viewer, to_email: str,
             now: datetime) -> Handoff:
    """A team lead gives an open handoff of the team to another active rep of the team: a
    fresh first-action window in the new rep's zone, a `reassigned` step, an email to them."""
    if not lead_by.leads_team:
        raise Forbidden("only a team lead may reassign")
    handoff = session.execute(
        select(Handoff).where(Handoff.id == handoff_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none() if 0 < handoff_id <= MAX_ID else None
    team = visible_reps(session, lead_by, team=True)
    if handoff is None or handoff.rep_email not in team:
        raise NotFound(f"no handoff with id {handoff_id}")
    if handoff.status != HandoffStatus.OPEN:
        raise Conflict(f"handoff {handoff.id} is {handoff.status.value} already")
    target = session.execute(
        select(User).where(User.email == to_email, User.team == lead_by.team,
                           User.role == Role.REP, User.is_active.is_(True))
    ).scalar_one_or_none()
    if target is None:
        raise InvalidInput("not an active rep of the team", {"rep": ["choose a rep of your team"]})
    if target.email == handoff.rep_email:
        raise InvalidInput("already theirs", {"rep": [f"{target.email} has it already"]})
    before = handoff.rep_email
    lead = session.get(Lead, handoff.lead_id)
    assert lead is not None
    terms = terms_of(session, handoff.sla_id)
    handoff.rep_email = target.email
    handoff.reassignments += 1
    handoff.escalations = 0
    handoff.sla_due_at = handoff.next_sla_at = _first_action_due(
        terms, handoff.score, lead, target.timezone, now)
    _event(session, handoff, "reassigned", now,
           f"from {before or 'nobody'} to {target.email} by {lead_by.email}", rep=target.email)
    notify_rep(session, handoff, "reassigned", now=now)
    session.flush()
    return handoff


def lead_local_time(lead: Lead, now: datetime) -> datetime | None:
    """The lead's own time now, when its zone is known (is it a good time to call?)."""
    if not lead.timezone:
        return None
    return now.astimezone(zone_of(lead.timezone))


def contact_of(lead: Lead) -> dict[str, Any]:
    """The contact details the card shows: the profile and a phone if the CRM gave one."""
    attributes = lead.attributes or {}
    phone = next((str(attributes[k]) for k in ("phone", "phone_number", "mobile")
                  if isinstance(attributes.get(k), str | int) and str(attributes[k]).strip()),
                 None)
    return {"email": lead.email, "phone": phone, "company": lead.company, "title": lead.title,
            "industry": lead.industry, "company_size": lead.company_size,
            "country": lead.country, "timezone": lead.timezone, "source": lead.source,
            "crm_id": lead.crm_id}
