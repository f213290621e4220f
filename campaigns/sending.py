"""Sending due steps: advance each enrollment, compose, commit `sending`, hand over, record.

The order is the at-most-once guarantee: the message row is committed as `sending` before
the messenger is called; only then is the outcome written. A crash in between leaves the
row in `sending`, which the next run turns into `unknown` (reported, never re-sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import engine
from campaigns.composing import Sender, build_message, inline_css, sender_from, track_links
from campaigns.messengers import Messenger, SendRefused, SendUnknown, messenger_for
from campaigns.rendering import TemplateProblem, make_environment, render_email
from nurture.config import Settings
from nurture.db import Database
from nurture.models import Collateral, CollateralVersion, Lead, Message
from nurture.tracking.tokens import Signer

MAX_EMAILS_PER_ENROLLMENT_RUN = 5
"""Emails one run sends for one enrollment in a row (only steps with no wait between)."""


@dataclass
class Sending:
    """What sending needs besides the database: who sends, how, under which rules."""

    sender: Sender
    signer: Signer
    messenger: Messenger
    policy: engine.Policy
    env: SandboxedEnvironment = field(default_factory=make_environment)

    @classmethod
    def from_settings(cls, settings: Settings, *, messenger: Messenger | None = None) -> Sending:
        count, period = settings.frequency_cap
        return cls(
            sender=sender_from(
                settings.mail_from, company=settings.company_name,
                postal_address=settings.postal_address, base_url=settings.base_url,
                provider=settings.mail_provider,
            ),
            signer=Signer(settings.secret_key),
            messenger=messenger or messenger_for(
                settings.smtp_url, Path(settings.instance_path) / "outbox"
            ),
            policy=engine.Policy(timezone=settings.timezone, cap_count=count, cap_period=period),
        )


@dataclass
class Counts:
    sent: int = 0
    refused: int = 0
    unknown: int = 0
    held: int = 0


def run_due(
    db: Database, enrollment_ids: Iterable[int], sending: Sending, *, clock: Callable[[], datetime]
) -> Counts:
    """Take each claimed enrollment as far as it goes now, sending what is due."""
    counts = Counts()
    try:
        for enrollment_id in enrollment_ids:
            _run_one(db, enrollment_id, sending, clock, counts)
    finally:
        sending.messenger.close()
    return counts


def _run_one(
    db: Database, enrollment_id: int, sending: Sending, clock: Callable[[], datetime],
    counts: Counts,
) -> None:
    for _ in range(MAX_EMAILS_PER_ENROLLMENT_RUN):
        with db.session_scope() as session:
            outgoing = engine.advance(session, enrollment_id, now=clock(), policy=sending.policy)
            if outgoing is None:
                engine.release_claim(session, enrollment_id)
                return
            try:
                email, subject, links = compose(session, outgoing, sending)
            except TemplateProblem as exc:
                engine.record_refused(session, outgoing.message_id, f"template: {exc}",
                                      permanent=True, now=clock())
                engine.release_claim(session, enrollment_id)
                counts.held += 1
                return
            message = session.get(Message, outgoing.message_id)
            assert message is not None
            message.subject, message.links = subject, links  # a click works even if unknown
        # committed as `sending`: only now may the email leave
        try:
            sending.messenger.send(email)
        except SendRefused as exc:
            with db.session_scope() as session:
                engine.record_refused(session, outgoing.message_id, str(exc),
                                      permanent=exc.permanent, now=clock())
                engine.release_claim(session, enrollment_id)
            counts.refused += 1
            return
        except SendUnknown as exc:
            with db.session_scope() as session:
                engine.record_unknown(session, outgoing.message_id, str(exc), now=clock())
            counts.unknown += 1
            continue
        with db.session_scope() as session:
            engine.record_sent(session, outgoing.message_id, subject, links, now=clock())
        counts.sent += 1
    with db.session_scope() as session:
        engine.release_claim(session, enrollment_id)


def compose(session: Session, outgoing: engine.Outgoing, sending: Sending) -> tuple[Any, str, dict]:
    """The MIME email for an outgoing step, its subject, and its tracked links."""
    message = session.get(Message, outgoing.message_id)
    assert message is not None
    lead = session.get(Lead, message.lead_id)
    assert lead is not None
    versions = [session.get(CollateralVersion, vid) for vid in outgoing.collateral_version_ids]
    keys = dict(session.execute(
        select(Collateral.id, Collateral.key).where(
            Collateral.id.in_([v.collateral_id for v in versions if v is not None])
        )
    ).all()) if versions else {}
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
            {"key": keys.get(v.collateral_id, ""), "title": v.title, "url": v.url or "",
             "funnel_stage": v.funnel_stage.value}
            for v in versions if v is not None
        ],
        "step": {"id": outgoing.step.id},
        "unsubscribe_url": unsubscribe_url,
        "open_pixel_url": f"{base}/t/o/{signer.open_token(message.id)}",
    }
    rendered = render_email(sending.env, outgoing.step.template, context,
                            subject=outgoing.step.subject)
    collateral_urls = {v.url: v.id for v in versions if v is not None and v.url}
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
