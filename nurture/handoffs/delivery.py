"""Delivering a handoff's notifications: the signed CRM webhook and the rep's email.

One delivery is three steps: claim the row (a committed lease, so two workers never try the
same notification at once), try outside any transaction (a short timeout), and record the
attempt with its status, duration and error. A failed try is retried with backoff for at
least `RETRY_FOR` (the dispatcher's sweep finds due retries); the webhook is delivered at
least once under a stable `id`, which the receiver deduplicates by. An email that may have
gone (the connection broke mid-send) is `unknown` and never sent twice.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import or_, select, update

from campaigns.messengers import Messenger, SendRefused, SendUnknown, messenger_for
from campaigns.rendering import TemplateProblem, shared_environment
from nurture.config import Settings
from nurture.db import Database
from nurture.handoffs.notifications import lead_summary
from nurture.handoffs.services import record_event
from nurture.models import (
    Handoff,
    HandoffNotification,
    Lead,
    NotificationAttempt,
    NotificationChannel,
    NotificationStatus,
    User,
)

WEBHOOK_TIMEOUT_S = 5.0
"""Longest wait for the CRM at any single step (connect, send, each read)."""

SIGNATURE_HEADER = "Nurture-Signature"

RETRY_BACKOFF = (timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2),
                 timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=30),
                 timedelta(hours=1))
"""Wait before each retry; the last one repeats."""

RETRY_FOR = timedelta(hours=25)
"""A notification is retried until this long after it was made (CONTRACT.md: at least 24 h)."""

CLAIM_LEASE = timedelta(minutes=2)
"""A claim outlives any single try (the webhook's timeout, an SMTP conversation)."""

MAX_ERROR = 2000
"""Characters of an error kept with an attempt."""

MAX_EXCERPT = 500
"""Characters of the receiver's answer kept with an attempt (what the admin shows)."""

TEMPLATE = "handoff"
"""The rep's email: `email_templates/handoff/` (subject.txt, body.html, body.txt)."""


@dataclass(frozen=True)
class Channels:
    """Where notifications go: the CRM webhook (None: not configured) and the rep's mail."""

    crm_url: str | None
    crm_secret: str | None
    messenger: Callable[[], Messenger]
    mail_from: str
    base_url: str
    timeout_s: float = WEBHOOK_TIMEOUT_S
    env: SandboxedEnvironment | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Channels:
        outbox = Path(settings.instance_path) / "outbox"
        return cls(crm_url=settings.crm_webhook_url, crm_secret=settings.crm_webhook_secret,
                   messenger=lambda: messenger_for(settings.smtp_url, outbox),
                   mail_from=settings.mail_from, base_url=settings.base_url)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    unknown: bool = False
    permanent: bool = False
    excerpt: str | None = None
    """The start of the receiver's answer body, if it sent one."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` (CONTRACT.md)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def deliver(db: Database, notification_id: int, channels: Channels, *,
            clock: Callable[[], datetime]) -> str:
    """Try to deliver one notification if it is due; returns its status afterwards."""
    with db.session_scope() as session:
        prepared = _claim(session, notification_id, channels, clock())
    if isinstance(prepared, str):
        return prepared
    notification, send = prepared
    started = time.monotonic()
    outcome = send()
    duration_ms = int((time.monotonic() - started) * 1000)
    with db.session_scope() as session:
        return _record(session, notification, outcome, duration_ms, clock()).value


def _claim(session: Any, notification_id: int, channels: Channels,
           now: datetime) -> str | tuple[HandoffNotification, Callable[[], Outcome]]:
    claimed = session.execute(
        update(HandoffNotification)
        .where(HandoffNotification.id == notification_id,
               HandoffNotification.status == NotificationStatus.PENDING,
               or_(HandoffNotification.next_attempt_at.is_(None),
                   HandoffNotification.next_attempt_at <= now),
               or_(HandoffNotification.claimed_until.is_(None),
                   HandoffNotification.claimed_until < now))
        .values(claimed_until=now + CLAIM_LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount
    notification = session.get(HandoffNotification, notification_id)
    if notification is None:
        return "missing"
    if not claimed:
        return notification.status.value if notification.status != "pending" else "not due"
    if notification.channel == NotificationChannel.CRM_WEBHOOK:
        if not channels.crm_url or not channels.crm_secret:
            notification.status = NotificationStatus.SKIPPED
            notification.last_error = "CRM_WEBHOOK_URL is not set"
            notification.claimed_until = None
            return notification.status.value
        body = (notification.body or "").encode()
        url, secret, timeout = channels.crm_url, channels.crm_secret, channels.timeout_s
        notification.recipient = url
        return notification, lambda: post_webhook(url, secret, body, timeout,
                                                  delivery_id=notification.public_id)
    try:
        email = _rep_email(session, notification, channels)
    except TemplateProblem as exc:
        error = f"template: {exc}"
        return notification, lambda: Outcome(ok=False, error=error, permanent=True)
    return notification, lambda: send_email(channels.messenger, email)


def post_webhook(url: str, secret: str, body: bytes, timeout: float, *,
                 delivery_id: str) -> Outcome:
    """POST the body signed now; 2xx is delivered, anything else (or no answer) a failure."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": "Nurture-Webhook/1",
        "Nurture-Delivery": delivery_id,
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
    })
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            excerpt = _excerpt(response.read(65536))
            status = response.status
    except urllib.error.HTTPError as exc:
        try:
            excerpt = _excerpt(exc.read(MAX_EXCERPT * 4))
        except (OSError, ValueError):
            excerpt = None
        return Outcome(ok=False, status_code=exc.code, error=f"HTTP {exc.code} {exc.reason}",
                       excerpt=excerpt)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(ok=False, error=f"{type(reason).__name__}: {reason}"[:MAX_ERROR])
    if 200 <= status < 300:
        return Outcome(ok=True, status_code=status, excerpt=excerpt)
    return Outcome(ok=False, status_code=status, error=f"HTTP {status}", excerpt=excerpt)


def _excerpt(body: bytes) -> str | None:
    """The start of an answer as text (None when empty), for the operators' page."""
    text = body[:MAX_EXCERPT * 4].decode("utf-8", "replace").strip()
    return text[:MAX_EXCERPT] or None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery (the signed body is not re-sent elsewhere)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def send_email(messenger_factory: Callable[[], Messenger], email: EmailMessage) -> Outcome:
    messenger = messenger_factory()
    try:
        messenger.send(email)
    except SendRefused as exc:
        return Outcome(ok=False, error=str(exc)[:MAX_ERROR], permanent=exc.permanent)
    except SendUnknown as exc:
        return Outcome(ok=False, error=str(exc)[:MAX_ERROR], unknown=True)
    finally:
        messenger.close()
    return Outcome(ok=True)


def _rep_email(session: Any, notification: HandoffNotification,
               channels: Channels) -> EmailMessage:
    handoff = session.get(Handoff, notification.handoff_id)
    lead = session.get(Lead, handoff.lead_id)
    rep = session.execute(
        select(User).where(User.email == notification.recipient)
    ).scalar_one_or_none()
    zone = ZoneInfo((rep.timezone if rep else None) or "UTC")
    explanation = sorted(handoff.score.get("explanation") or [],
                         key=lambda item: -abs(float(item.get("points") or 0)))
    context = {
        "purpose": notification.purpose,
        "rep": {"email": notification.recipient, "name": (rep.name if rep else None) or ""},
        "lead": lead_summary(lead),
        "score": {k: handoff.score.get(k) for k in ("total", "fit", "engagement")},
        "explanation": explanation[:10],
        "sla_due": handoff.sla_due_at.astimezone(zone).strftime("%a %d %b %Y %H:%M %Z"),
        "inbox_url": f"{channels.base_url}/reps/",
        "card_url": f"{channels.base_url}/reps/handoffs/{handoff.id}",
        "handoff_id": handoff.id,
    }
    env = channels.env or shared_environment()
    message = EmailMessage()
    message["From"] = channels.mail_from
    message["To"] = notification.recipient or ""
    message["Subject"] = " ".join(_render(env, "subject.txt", context).split())
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=notification.public_id)
    message["X-Nurture-Message-Id"] = notification.public_id
    message.set_content(_render(env, "body.txt", context))
    message.add_alternative(_render(env, "body.html", context), subtype="html")
    return message


def _render(env: SandboxedEnvironment, part: str, context: dict[str, Any]) -> str:
    """One part of the rep's email, in the sandbox (no layout: no unsubscribe in a work email)."""
    try:
        return env.get_template(f"{TEMPLATE}/{part}").render(context)
    except TemplateError as exc:
        raise TemplateProblem(f"{TEMPLATE}/{part}: {exc}") from None


def _record(session: Any, claimed: HandoffNotification, outcome: Outcome, duration_ms: int,
            now: datetime) -> NotificationStatus:
    notification = session.get(HandoffNotification, claimed.id)
    assert notification is not None
    session.add(NotificationAttempt(
        notification_id=notification.id, attempted_at=now, duration_ms=duration_ms,
        status_code=outcome.status_code, ok=outcome.ok,
        error=outcome.error[:MAX_ERROR] if outcome.error else None,
        response_excerpt=outcome.excerpt,
    ))
    notification.attempts += 1
    notification.claimed_until = None
    notification.last_error = outcome.error
    what = "CRM webhook" if notification.channel == NotificationChannel.CRM_WEBHOOK else "email"
    if outcome.ok:
        notification.status = NotificationStatus.DELIVERED
        notification.delivered_at = now
        notification.next_attempt_at = None
        record_event(session, notification.handoff_id, f"{notification.channel.value}_sent",
                     now=now, detail=f"{notification.purpose} {what} to {notification.recipient}",
                     rep=notification.recipient if what == "email" else None)
    elif outcome.unknown:
        notification.status = NotificationStatus.UNKNOWN
        notification.next_attempt_at = None
    elif outcome.permanent or now - notification.created_at >= RETRY_FOR:
        notification.status = NotificationStatus.FAILED
        notification.next_attempt_at = None
        record_event(session, notification.handoff_id, f"{notification.channel.value}_failed",
                     now=now, detail=f"gave up after {notification.attempts} attempt(s): "
                                     f"{outcome.error}")
    else:
        wait = RETRY_BACKOFF[min(notification.attempts, len(RETRY_BACKOFF)) - 1]
        notification.next_attempt_at = now + wait
    return notification.status


def due_notifications(session: Any, *, now: datetime, limit: int = 500) -> list[tuple[int, int]]:
    """(id, attempts) of pending notifications whose next try is due and unclaimed."""
    return [(row.id, row.attempts) for row in session.execute(
        select(HandoffNotification.id, HandoffNotification.attempts)
        .where(HandoffNotification.status == NotificationStatus.PENDING,
               HandoffNotification.next_attempt_at <= now,
               or_(HandoffNotification.claimed_until.is_(None),
                   HandoffNotification.claimed_until < now))
        .order_by(HandoffNotification.next_attempt_at).limit(limit)
    ).all()]
