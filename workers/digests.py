"""The alignment digest's job, and the dispatcher's task that enqueues it once a period ends."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from campaigns.messengers import messenger_for
from nurture.clock import utcnow
from nurture.config import Settings, load_settings
from nurture.db import Database
from nurture.reports.digest import DigestSettings, due_period, is_sent_or_claimed, send_due_digest
from nurture.reports.params import Period
from workers import jobs


def digest_settings(settings: Settings) -> DigestSettings:
    return DigestSettings(recipients=settings.digest_recipients, days=settings.digest_days,
                          mail_from=settings.mail_from, base_url=settings.base_url)


def send_digest(period_start: str) -> str:
    """Send the digest of the period that starts on `period_start` (ISO date); the
    `digests` row makes a second run, or a second job, send nothing."""
    settings = load_settings()
    database = jobs.process_database(settings.database_url)
    outbox = Path(settings.instance_path) / "outbox"
    start = date.fromisoformat(period_start)
    period = Period(start, start + timedelta(days=settings.digest_days - 1))
    return send_due_digest(database, digest_settings(settings),
                           lambda: messenger_for(settings.smtp_url, outbox), now=utcnow(),
                           period=period)


def digest_due(database: Database, settings: Settings, *, today: date) -> date | None:
    """The start of the period whose digest is due and not yet claimed, or None."""
    if not settings.digest_recipients:
        return None
    period = due_period(today, settings.digest_days)
    with database.session_scope() as session:
        if is_sent_or_claimed(session, period):
            return None
    return period.start
