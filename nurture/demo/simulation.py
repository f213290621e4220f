"""Six months of history, made by driving the real services with a simulated clock.

Nothing here writes a table itself. Time moves forward an hour at a time; in between, the
agenda's actions happen at their own moments, each in a transaction of its own, through the
service an entry point would call: the CRM rejects a lead (`reject_lead`), marketing puts one
into nurture as not ready, a person clicks a tracked link (`record_click`), unsubscribes,
visits the website (`record_client_events`), a rep accepts or gives back a recycled lead,
the CRM reports an opportunity, a win or a loss (`record_outcomes`). Every hour the SLA
timers fire when due; every `WORK_HOURS` hours the workers' round runs the way it does in
production, in one transaction up to the sending: the provider's webhook batch is stored
(deliveries, opens human and machine, a gateway's link scans, bounces, complaints), the
engagement job hands on and scores every event waiting (`handle_events`, live scoring:
recycles happen when scoring says), due enrollments are claimed
(`claim_due`) and sent by `run_due` to a messenger that keeps nothing, and notifications are
delivered by `deliver` with no CRM URL (the webhook is recorded as skipped, never posted) and
the rep's email to the same sink. An hour with nothing due is skipped. Every random choice
comes from one `random.Random(seed)`, in a fixed order.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message as MimeMessage
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.dispatch import DUE, claim_due
from campaigns.intake import nurture_not_ready, reject_lead
from campaigns.sending import Sending, run_due
from campaigns.tracking import unsubscribe
from nurture.accounts.services import Actor
from nurture.db import Database
from nurture.demo import behaviour
from nurture.demo.cast import NOTES, Person
from nurture.engagement.events import record_client_events
from nurture.engagement.handling import handle_events
from nurture.engagement.providers import ProviderEvent
from nurture.engagement.schemas import EventIn
from nurture.engagement.tracking import record_click
from nurture.engagement.webhooks import store_provider_events
from nurture.handoffs import services as handoffs
from nurture.handoffs.delivery import Channels, deliver, due_notifications
from nurture.handoffs.notifications import new_notifications
from nurture.handoffs.outcomes import ReportedOutcome, record_outcomes
from nurture.handoffs.policy import RecyclePolicy
from nurture.handoffs.timers import fire_due_timers
from nurture.leads.services import upsert_lead
from nurture.models import (
    EngagementEvent,
    Enrollment,
    EventType,
    Handoff,
    HandoffEvent,
    HandoffNotification,
    HandoffStatus,
    Message,
    MessageStatus,
    NotificationStatus,
    Role,
)
from nurture.scoring import live

TICK = timedelta(hours=1)
"""How far the clock moves between two looks at the SLA timers (reminders, expiries, stalls)."""

WORK_HOURS = 3
"""The workers' round (the provider's webhook batch stored, the engagement job, the claim of
due enrollments and their sending) runs at every hour of the day divisible by this: each
round's statements are shared by three hours' events and emails rather than one's (a
round's cost barely grows with its batch; docs/BENCHMARKS.md)."""

SCORING_DELAY = timedelta(seconds=20)
"""How long after the round starts the engagement job scores the events waiting
(one job stands for every request stored meanwhile, as `workers.coalescing` makes it)."""

DELIVERY_DELAY = timedelta(seconds=40)
"""How long after a handoff the rep's notification goes out."""

CRM_DELAY = timedelta(minutes=3)
"""How long the CRM takes to report an outcome to Nurture."""


class Interrupted(Exception):
    """The run was asked to stop before the history was complete."""


class Sink:
    """A messenger that keeps nothing: the demo's emails reach no one, and are only counted."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, message: MimeMessage) -> None:
        self.count += 1

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class SentEmail:
    id: int
    message_id: str
    lead_id: int
    links: dict[str, Any]
    sent_at: datetime


@dataclass
class Simulation:
    """The agenda of what happens when, and the loop that lets it happen."""

    db: Database
    sending: Sending
    channels: Channels
    policy: RecyclePolicy
    rng: random.Random
    people: list[Person]
    end: datetime
    progress: Callable[[datetime], None] = lambda _: None
    stop: Callable[[], bool] = lambda: False
    """Asked every simulated hour; True stops the run (`Interrupted`), leaving what is built."""
    agenda: list[tuple[datetime, int, str, Any]] = field(default_factory=list)
    order: itertools.count[int] = field(default_factory=itertools.count)
    leads: dict[int, Person] = field(default_factory=dict)
    emailed: set[int] = field(default_factory=set)
    """Leads that got at least one email (the first one may bounce)."""
    provider_batch: list[ProviderEvent] = field(default_factory=list)
    event_mark: int = 0
    message_mark: int = 0
    handoff_mark: int = 0
    reps: dict[str, int] = field(default_factory=dict)
    made: list[int] = field(default_factory=list)
    """Notifications made in the current transaction, to deliver once it is committed."""
    moments: Moments = (None, None, None)
    """When the dispatcher next has work (due step, SLA timer, notification retry), as of
    the last look; an action since (`due_checked` False) makes it look again."""
    due_checked: bool = False
    reassign_mark: int = 0
    engaged_at: datetime | None = None
    """When the last event not yet scored was stored (None: all are scored)."""

    def at(self, when: datetime, kind: str, payload: Any) -> None:
        heapq.heappush(self.agenda, (when, next(self.order), kind, payload))

    def run(self, start: datetime) -> None:
        for person in self.people:
            self.at(person.arrives_at, "arrive", person)
        tick = start.replace(minute=0, second=0, microsecond=0) + TICK
        month = tick.month
        while tick <= self.end:
            if self.stop():
                raise Interrupted(f"stopped at {tick:%Y-%m-%d %H:%M}; the history is partial")
            while self.agenda and self.agenda[0][0] <= tick:
                when, _, kind, payload = heapq.heappop(self.agenda)
                getattr(self, f"_{kind}")(when, payload)
            self._tick(tick)
            if tick.month != month:
                month = tick.month
                self.progress(tick)
            tick += TICK

    # --- the actions -------------------------------------------------------------------------

    def _arrive(self, at: datetime, person: Person) -> None:
        with self.db.session_scope() as session:
            if person.reason is None:  # marketing found it, sales should not call yet
                lead, _ = upsert_lead(session, person.email, person.fields, now=at)
                nurture_not_ready(session, lead.id, now=at)
                lead_id = lead.id
            else:
                intake = reject_lead(
                    session, person.email, person.fields, rep_email=person.rep_email,
                    reason=person.reason, note=NOTES[person.reason],
                    revisit_on=person.revisit_on, crm_id=f"demo-crm-{person.number}",
                    rejected_at=at - timedelta(minutes=self.rng.randint(1, 240)), now=at,
                )
                lead_id = intake.lead_id
        self.leads[lead_id] = person
        for visit in behaviour.website_visits(self.rng, person, until=self.end):
            self.at(visit.at, "visit", (person, visit))

    def _visit(self, at: datetime, payload: tuple[Person, behaviour.Visit]) -> None:
        person, visit = payload
        events = [
            EventIn(id=f"demo-visit-{person.number}-{at.timestamp():.0f}-{index}",
                    email=person.email, type=kind,
                    occurred_at=at + timedelta(minutes=2 * index),
                    properties={"page": page} if page else {})
            for index, (kind, page) in enumerate(visit.events)
        ]
        with self.db.session_scope() as session:
            record_client_events(session, events, now=events[-1].occurred_at)
        self._engaged(events[-1].occurred_at)

    def _reaction(self, at: datetime, payload: tuple[SentEmail, Person, str]) -> None:
        email, person, kind = payload
        if kind in ("delivered", "open", "machine_open", "scanner_click", "bounce", "complaint"):
            self.provider_batch.extend(self._provider_events(at, email, person, kind))
            return
        with self.db.session_scope() as session:
            if kind == "click":
                link = _collateral_link(email.links)
                if link is None:
                    return
                record_click(session, email.id, int(link), user_agent=behaviour.BROWSER,
                             ip=f"203.0.113.{person.number % 250 + 1}", now=at)
            elif kind == "unsubscribe":
                unsubscribe(session, email.id, now=at)
            elif kind == "reply":
                record_client_events(session, [EventIn(
                    id=f"demo-reply-{email.message_id}", email=person.email,
                    type="email_reply", occurred_at=at,
                    properties={"in_reply_to": email.message_id},
                )], now=at)
        self._engaged(at)

    def _answer(self, at: datetime, payload: tuple[int, str, behaviour.Answer]) -> None:
        handoff_id, rep_email, answer = payload
        actor = Actor(rep_email, Role.REP, self.reps.get(rep_email))
        with self.db.session_scope() as session:
            handoff = session.get(Handoff, handoff_id)
            if (handoff is None or handoff.status != HandoffStatus.OPEN
                    or handoff.rep_email != rep_email):
                return  # reassigned meanwhile, or answered
            if answer.action == "accept":
                handoffs.accept(session, handoff_id, actor=actor, now=at)
                person = self.leads[handoff.lead_id]
                for kind, after, amount, loss in behaviour.deal_after_acceptance(self.rng).steps:
                    self.at(at + after, "outcome", ReportedOutcome(
                        outcome_id=f"demo-{kind.value}-{handoff_id}", kind=kind,
                        occurred_at=at + after, email=person.email, loss_reason=loss,
                        amount=amount, currency="EUR" if amount is not None else None))
            else:
                assert answer.reason is not None
                handoffs.reject(session, handoff_id, actor=actor, reason=answer.reason,
                                note=NOTES.get(answer.reason), now=at)
        self.due_checked = False

    def _outcome(self, at: datetime, outcome: ReportedOutcome) -> None:
        """The CRM reports what became of an accepted lead (`POST /api/v1/outcomes`)."""
        with self.db.session_scope() as session:
            record_outcomes(session, [outcome], now=at + CRM_DELAY)
            self.made.extend(new_notifications(session))
        self._after(at)

    # --- the dispatcher's hour ---------------------------------------------------------------

    def _tick(self, now: datetime) -> None:
        """One hour of the dispatcher: SLA timers and notification retries when due and, at
        every `WORK_HOURS`-th hour, the workers' round (`_work`)."""
        if now.hour % WORK_HOURS == 0:
            self._work(now)
        elif not self.due_checked:
            with self.db.session_scope() as session:
                self.moments = next_work(session)
            self.due_checked = True
        _, timers, retries = self.moments
        if timers is not None and timers <= now:
            self._fire_timers(now)
        if retries is not None and retries <= now:
            with self.db.session_scope() as session:
                due = [n for n, _ in due_notifications(session, now=now)]
            self._deliver(due, now)
        if any(m is not None and m <= now for m in (timers, retries)):
            self.due_checked = False

    def _work(self, now: datetime) -> None:
        """The workers' round, in one transaction up to the sending: the provider's webhook
        batch of the past hours is stored, the engagement job hands on and scores every event
        waiting (recycles happen when scoring says), and the due enrollments are claimed;
        after the commit the notifications made go out, the claimed enrollments are sent by
        `run_due` and the people's reactions to what was sent are planned."""
        batch, self.provider_batch = self.provider_batch, []
        with self.db.session_scope() as session:
            if batch:
                store_provider_events(session, batch, now=now)
            if batch or self.engaged_at is not None:
                self._score(session, now)
            self.engaged_at = None
            claimed = claim_due(session, now=now)
        self._after(now)
        if claimed:
            run_due(self.db, claimed, self.sending, clock=lambda: now)
        with self.db.session_scope() as session:
            if claimed:
                self._react_to_sent(session)
            self.moments = next_work(session)
        self.due_checked = True

    def _fire_timers(self, now: datetime) -> None:
        """The SLA timers job: reminders, expiries and stalls, a batch per transaction."""
        while True:
            with self.db.session_scope() as session:
                fired = fire_due_timers(session, now=now, policy=self.policy)
                self.made.extend(new_notifications(session))
                reassigned = session.execute(
                    select(HandoffEvent.id, HandoffEvent.handoff_id, HandoffEvent.rep_email)
                    .where(HandoffEvent.id > self.reassign_mark,
                           HandoffEvent.kind == "reassigned").order_by(HandoffEvent.id)
                ).all()
            self._after(now)
            for event_id, handoff_id, rep in reassigned:
                self.reassign_mark = event_id
                if rep is not None:
                    self._plan_answer(handoff_id, rep, now, reassigned=True)
            if not fired:
                return

    # --- what every action is followed by ----------------------------------------------------

    def _engaged(self, at: datetime) -> None:
        """Events were stored at `at`: the next workers' round scores them."""
        self.engaged_at = at

    def _score(self, session: Session, at: datetime) -> None:
        """What the worker's engagement job does with the events stored since it last ran."""
        handoffs.use_policy(session, self.policy)
        last = session.execute(select(func.max(EngagementEvent.id))).scalar_one() or 0
        if last > self.event_mark:
            handle_events(session, self.event_mark + 1, last, now=at + SCORING_DELAY)
            live.score_events(session, self.event_mark + 1, last, now=at + SCORING_DELAY)
            self.event_mark = last
        self.made.extend(new_notifications(session))

    def _after(self, at: datetime) -> None:
        """Deliver the notifications just made (after the commit, as a job does); plan the
        answers to new handoffs."""
        self.due_checked = False
        if not self.made:
            return
        made, self.made = self.made, []
        self._deliver(made, at + DELIVERY_DELAY)
        with self.db.session_scope() as session:
            new = session.execute(
                select(Handoff.id, Handoff.rep_email, Handoff.created_at)
                .where(Handoff.id > self.handoff_mark).order_by(Handoff.id)
            ).all()
        for handoff_id, rep_email, created_at in new:
            self.handoff_mark = handoff_id
            if rep_email is not None:
                self._plan_answer(handoff_id, rep_email, created_at, reassigned=False)

    def _plan_answer(self, handoff_id: int, rep_email: str, since: datetime, *,
                     reassigned: bool) -> None:
        answer = behaviour.answer_handoff(self.rng, reassigned=reassigned)
        if answer.action is not None:
            self.at(since + answer.after, "answer", (handoff_id, rep_email, answer))

    def _deliver(self, notification_ids: list[int], at: datetime) -> None:
        for notification_id in notification_ids:
            deliver(self.db, notification_id, self.channels, clock=lambda: at)

    def _react_to_sent(self, session: Session) -> None:
        rows = session.execute(
            select(Message.id, Message.message_id, Message.lead_id, Message.links,
                   Message.sent_at, Message.status)
            .where(Message.id > self.message_mark).order_by(Message.id)
        ).all()
        for row in rows:
            self.message_mark = max(self.message_mark, row.id)
            if row.status != MessageStatus.SENT or row.sent_at is None:
                continue
            person = self.leads[row.lead_id]
            email = SentEmail(row.id, row.message_id, row.lead_id, row.links or {}, row.sent_at)
            first = row.lead_id not in self.emailed
            self.emailed.add(row.lead_id)
            for reaction in behaviour.react_to_email(self.rng, person, first=first):
                when = row.sent_at + reaction.after
                if when < self.end:
                    self.at(when, "reaction", (email, person, reaction.kind))

    def _provider_events(self, at: datetime, email: SentEmail, person: Person,
                         kind: str) -> list[ProviderEvent]:
        """SendGrid's events for this reaction, as its webhook would bring them."""
        common = {"provider": "sendgrid", "occurred_at": at, "recipient": person.email,
                  "nurture_message_id": email.message_id}
        key = f"demo-{email.message_id}-{kind}"
        if kind == "delivered":
            return [ProviderEvent(event_id=key, type=EventType.DELIVERED,
                                  provider_type="delivered", **common)]
        if kind == "bounce":
            return [ProviderEvent(event_id=key, type=EventType.BOUNCE, provider_type="bounce",
                                  bounce_class="hard", raw={"type": "bounce",
                                                            "reason": "550 5.1.1 no such user"},
                                  **common)]
        if kind == "complaint":
            return [ProviderEvent(event_id=key, type=EventType.SPAM_COMPLAINT,
                                  provider_type="spamreport", **common)]
        if kind == "open":  # a person's open, as the provider's own pixel saw it
            return [ProviderEvent(event_id=key, type=EventType.OPEN, provider_type="open",
                                  user_agent=behaviour.BROWSER,
                                  ip=f"203.0.113.{person.number % 250 + 1}", **common)]
        if kind == "machine_open":
            return [ProviderEvent(event_id=key, type=EventType.OPEN, provider_type="open",
                                  user_agent=behaviour.PRIVACY_PROXY,
                                  raw={"sg_machine_open": True}, **common)]
        urls = [link["url"] for _, link in sorted(email.links.items())
                if isinstance(link, dict) and link.get("url")]
        return [ProviderEvent(event_id=f"{key}-{index}", type=EventType.CLICK,
                              provider_type="click", url=url, user_agent=behaviour.SCANNER,
                              **{**common, "occurred_at": at + timedelta(seconds=index)})
                for index, url in enumerate(urls)]


Moments = tuple[datetime | None, datetime | None, datetime | None]


def next_work(session: Session) -> Moments:
    """When the dispatcher next has something to do, in one query: a step due, an SLA timer
    (an open handoff's window, an accepted one's stall time), a notification's next try
    (None: nothing of that kind is waiting)."""
    row = session.execute(select(
        select(func.min(Enrollment.next_due_at)).where(Enrollment.status.in_(DUE))
        .scalar_subquery(),
        select(func.min(Handoff.next_sla_at)).where(Handoff.status == HandoffStatus.OPEN)
        .scalar_subquery(),
        select(func.min(Handoff.stalls_at)).where(Handoff.status == HandoffStatus.ACCEPTED)
        .scalar_subquery(),
        select(func.min(HandoffNotification.next_attempt_at))
        .where(HandoffNotification.status == NotificationStatus.PENDING).scalar_subquery(),
    )).one()
    steps, window, stall, retry = (_aware(m) for m in row)
    timers = min((m for m in (window, stall) if m is not None), default=None)
    return steps, timers, retry


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC times from `min()`: make them comparable."""
    if moment is None or moment.tzinfo is not None:
        return moment
    if isinstance(moment, str):  # SQLite's min() of a DATETIME column may come back as text
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _collateral_link(links: dict[str, Any]) -> str | None:
    """The number of the email's link to its collateral (else its first link)."""
    numbered = sorted(links.items(), key=lambda item: int(item[0]))
    for number, link in numbered:
        if isinstance(link, dict) and link.get("collateral_version_id"):
            return number
    return numbered[0][0] if numbered else None
