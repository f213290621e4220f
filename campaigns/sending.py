"""Sending due steps, a batch at a time: plan, compose, commit `sending`, hand over, record.

One round plans the whole batch in one transaction (`engine.plan`: each enrollment advanced
as far as it goes, the emails due now left as `queued` rows) and composes those emails.
Then, for each email, one statement in one round trip commits it `sending` (and the email
before it on the same SMTP connection `sent`), and only then is the messenger called: the
at-most-once guarantee. Several SMTP connections ("lanes") hand a batch over side by side.
A crash leaves at most one row in `sending` per lane, which the next run turns into
`unknown` (reported, never re-sent); the `queued` rows it leaves are certainly unsent and go
out later. Enrollments whose next step needs only the clock (a wait, an exit) are then moved
on in one statement (`engine.settle_sent`); the next round's plan takes the others on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import Message as MimeMessage
from functools import partial
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import engine, handover
from campaigns.composing import Sender, build_message, inline_css, sender_from, track_links
from campaigns.messengers import (
    Messenger,
    SendRefused,
    SendUnknown,
    SmtpMessenger,
    messenger_for,
)
from campaigns.rendering import TemplateProblem, render_email, shared_environment
from campaigns.templates import refresh_stored
from nurture import rollups
from nurture.config import Settings
from nurture.db import Database
from nurture.models import Collateral, Enrollment, Message
from nurture.tracking.tokens import Signer

MAX_EMAILS_PER_ENROLLMENT_RUN = 5
"""Emails one run sends for one enrollment in a row (only steps with no wait between)."""



@dataclass
class Sending:
    """What sending needs besides the database: who sends, how, under which rules.

    `lanes` SMTP connections hand a batch's emails over side by side, each in a thread of
    its own with a connection to the database of its own: a relay's answers take far longer
    than composing an email, and while one lane waits, the others compose and send. The
    first lane's messenger is `messenger`; `another_messenger` makes the others."""

    sender: Sender
    signer: Signer
    messenger: Messenger
    policy: engine.Policy
    env: SandboxedEnvironment = field(default_factory=shared_environment)
    lanes: int = 1
    another_messenger: Callable[[], Messenger] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, messenger: Messenger | None = None) -> Sending:
        """From the settings; a `messenger` given is the only lane (tests hand one in)."""
        count, period = settings.frequency_cap
        smtp_url = settings.smtp_url
        lanes, another = 1, None
        if messenger is None and smtp_url:
            lanes = settings.smtp_connections
            another = partial(SmtpMessenger, smtp_url)
        return cls(
            sender=sender_from(
                settings.mail_from, company=settings.company_name,
                postal_address=settings.postal_address, base_url=settings.base_url,
                provider=settings.mail_provider,
            ),
            signer=Signer(settings.secret_key),
            messenger=messenger or messenger_for(
                smtp_url, Path(settings.instance_path) / "outbox"
            ),
            policy=engine.Policy(timezone=settings.timezone, cap_count=count, cap_period=period),
            lanes=lanes,
            another_messenger=another,
        )


@dataclass
class Counts:
    sent: int = 0
    refused: int = 0
    unknown: int = 0
    held: int = 0

    def add(self, other: Counts) -> None:
        self.sent += other.sent
        self.refused += other.refused
        self.unknown += other.unknown
        self.held += other.held


def run_due(
    db: Database, enrollment_ids: Iterable[int], sending: Sending, *, clock: Callable[[], datetime]
) -> Counts:
    """Take each claimed enrollment as far as it goes now, sending what is due."""
    counts = Counts()
    pending = list(enrollment_ids)
    messengers = [sending.messenger]
    try:
        for _ in range(MAX_EMAILS_PER_ENROLLMENT_RUN):
            if not pending:
                break
            with db.session_scope() as session:
                outgoing = engine.plan(session, pending, now=clock(), policy=sending.policy)
                keys = _collateral_keys(session, outgoing)
                if outgoing:  # the templates marketers saved since the last batch
                    refresh_stored(session, sending.env)
            wanted = min(sending.lanes, len(outgoing)) if sending.another_messenger else 1
            while len(messengers) < wanted:
                messengers.append(sending.another_messenger())  # type: ignore[misc]
            handed = _hand_over_in_lanes(db, Batch(outgoing, keys, sending, clock),
                                         messengers[:max(wanted, 1)], counts)
            pending = handed.go_on
            if handed.sent:  # one transaction: the report rollups, and the common case of
                # an email followed by a wait or the end, settled with no plan again for it
                with db.session_scope() as session:
                    rollups.emails_sent(session, _sent_emails(handed))
                    now = clock()
                    settled = handover.settle_sent(session.connection(), handed.sent, now=now)
                    _count_finished(session, handed.sent, settled, now)
                pending = [enrollment_id for enrollment_id in pending
                           if enrollment_id not in settled]
        if pending:  # sent the most one run may: settled and released by the next claim
            with db.session_scope() as session:
                engine.release_claims(session, pending)
    finally:
        for messenger in messengers:
            messenger.close()
    return counts


def _sent_emails(handed: Handed) -> list[rollups.SentEmail]:
    """What the report rollups count of the emails handed over (a worker killed between the
    handover's commit and this one loses their counts; `nurture reports rebuild` restores them)."""
    return [rollups.SentEmail(
        lead_id=item.lead.id, sequence_id=item.enrollment.sequence_id, step_id=item.step.id,
        collateral_ids=tuple(c.collateral_id for c in item.collateral),
        sent_at=handed.sent_at[item.message_id],
    ) for item in handed.sent]


def _count_finished(session: Session, sent: list[engine.Outgoing], settled: set[int],
                    now: datetime) -> None:
    """The enrollments `settle_sent` ended, counted in one statement."""
    rollups.exits(session, [
        (item.enrollment.sequence_id, item.then.step_id, item.then.finish[1], now)
        for item in sent
        if item.then is not None and item.then.finish is not None
        and item.enrollment.id in settled
    ])


@dataclass(frozen=True)
class Batch:
    """A planned batch's emails (rows `queued`, committed) and what composing them needs."""

    outgoing: list[engine.Outgoing]
    collateral_keys: dict[int, str]
    sending: Sending
    clock: Callable[[], datetime]

    def share(self, lane: int, lanes: int) -> Batch:
        return replace(self, outgoing=self.outgoing[lane::lanes])


@dataclass
class Handed:
    """What handing a batch over came to: the enrollments to go on with, the emails sent."""

    go_on: list[int] = field(default_factory=list)
    sent: list[engine.Outgoing] = field(default_factory=list)
    sent_at: dict[int, datetime] = field(default_factory=dict)
    """Message id → when the messenger took it."""

    def add(self, other: Handed) -> None:
        self.go_on.extend(other.go_on)
        self.sent.extend(other.sent)
        self.sent_at.update(other.sent_at)


def _hand_over_in_lanes(db: Database, batch: Batch, messengers: list[Messenger],
                        counts: Counts) -> Handed:
    """Deal the emails out to the lanes (one per messenger), each composing and handing its
    share over in a thread of its own (while one waits for the relay or the database,
    another composes). An error in one lane is raised once every lane has ended."""
    if len(messengers) == 1:
        return _hand_over(db, batch, messengers[0], counts)
    shares = [(batch.share(lane, len(messengers)), messenger, Counts())
              for lane, messenger in enumerate(messengers)]
    with ThreadPoolExecutor(len(shares), thread_name_prefix="send-lane") as lanes:
        futures = [lanes.submit(_hand_over, db, share, messenger, lane_counts)
                   for share, messenger, lane_counts in shares]
        wait(futures)
    for _, _, lane_counts in shares:
        counts.add(lane_counts)
    handed = Handed()
    for future in futures:
        handed.add(future.result())  # raises a lane's error, after all have ended
    return handed


def _hand_over(db: Database, batch: Batch, messenger: Messenger, counts: Counts) -> Handed:
    """Compose each email and send it after committing it as `sending`.

    The statement that marks an email `sending` also marks the one before it `sent`: one
    statement an email, on one connection held for the batch and in autocommit, so that the
    statement is its own transaction in one round trip (no BEGIN and COMMIT around it).
    Template problems, refusals and unknown outcomes are recorded at once, in a
    transaction each."""
    handed = Handed()
    go_on = handed.go_on
    clock = batch.clock
    delivered: tuple[int, datetime] | None = None  # handed over, not yet recorded `sent`
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for item in batch.outgoing:
            try:
                email, subject, links = compose(item, batch.collateral_keys, batch.sending)
            except TemplateProblem as exc:
                _record_refused(db, item, SendRefused(f"template: {exc}", permanent=True),
                                clock())
                counts.held += 1
                continue
            allowed = handover.mark_sending(connection, item, subject, links, sent=delivered)
            delivered = None
            if not allowed:
                go_on.append(item.enrollment.id)  # stopped since it was planned: settle it
                continue
            try:
                messenger.send(email)
            except SendRefused as exc:
                _record_refused(db, item, exc, clock())
                counts.refused += 1
                continue
            except SendUnknown as exc:
                _record_unknown(db, item, exc, clock())
                counts.unknown += 1
            else:
                delivered = (item.message_id, clock())
                handed.sent.append(item)
                handed.sent_at[item.message_id] = delivered[1]
                counts.sent += 1
            go_on.append(item.enrollment.id)
        if delivered is not None:
            handover.mark_sent(connection, delivered)
    return handed


def _record_refused(
    db: Database, item: engine.Outgoing, exc: SendRefused, now: datetime
) -> None:
    with db.session_scope() as session:
        message = session.get(Message, item.message_id)
        enrollment = session.get(Enrollment, item.enrollment.id)
        assert message is not None and enrollment is not None
        engine.record_refused(session, message, enrollment, str(exc),
                              permanent=exc.permanent, now=now)


def _record_unknown(
    db: Database, item: engine.Outgoing, exc: SendUnknown, now: datetime
) -> None:
    with db.session_scope() as session:
        message = session.get(Message, item.message_id)
        assert message is not None
        engine.record_unknown(session, message, str(exc), now=now)


def _collateral_keys(session: Session, outgoing: list[engine.Outgoing]) -> dict[int, str]:
    """Collateral id → key, for the collateral the batch's emails feature (one query)."""
    ids = {version.collateral_id for item in outgoing for version in item.collateral}
    if not ids:
        return {}
    return dict(session.execute(
        select(Collateral.id, Collateral.key).where(Collateral.id.in_(ids))
    ).tuples().all())


def compose(
    outgoing: engine.Outgoing, collateral_keys: dict[int, str], sending: Sending
) -> tuple[MimeMessage, str, dict[str, Any]]:
    """The MIME email for an outgoing step, its subject, and its tracked links."""
    message, lead, versions = outgoing.message, outgoing.lead, outgoing.collateral
    base = sending.sender.base_url
    signer = sending.signer
    unsubscribe_url = f"{base}/u/{signer.unsubscribe_token(message.id)}"
    context = {
        "lead": {name: getattr(lead, name) for name in (
            "email", "first_name", "last_name", "company", "title", "industry", "company_size",
            "country", "timezone", "source")} | {"attributes": lead.attributes or {}},
        "sender": {"name": sending.sender.name, "company": sending.sender.company,
                   "postal_address": sending.sender.postal_address},
        "collateral": [
            {"key": collateral_keys.get(v.collateral_id, ""), "title": v.title,
             "url": v.url or "", "funnel_stage": v.funnel_stage.value}
            for v in versions
        ],
        "step": {"id": outgoing.step.id},
        "unsubscribe_url": unsubscribe_url,
        "open_pixel_url": f"{base}/t/o/{signer.open_token(message.id)}",
    }
    rendered = render_email(sending.env, outgoing.step.template, context,
                            subject=outgoing.step.subject)
    collateral_urls = {v.url: v.id for v in versions if v.url}
    tracked_html, links = track_links(
        rendered.html,
        lambda n: f"{base}/t/c/{signer.click_token(message.id, n)}",
        collateral_urls,
        untracked_prefixes=(f"{base}/u/",),
    )
    html = inline_css(tracked_html)
    email = build_message(
        sender=sending.sender, to_address=lead.email,
        to_name=" ".join(filter(None, (lead.first_name, lead.last_name))) or None,
        rendered=rendered, html=html, message_id=message.message_id,
        unsubscribe_url=unsubscribe_url,
    )
    return email, rendered.subject, links.destinations
