"""What each provider webhook last did, for the operators: when it last had events accepted,
and the requests it refused with their reasons (only the last few per provider are kept)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from nurture.db import insert_ignoring_conflicts
from nurture.models import WebhookReceipt, WebhookRefusal

PROVIDERS = ("sendgrid", "mailgun", "postmark", "ses")
"""The provider webhooks of CONTRACT.md, in the order the operators' page lists them."""

KEPT_REFUSALS = 100
"""Refusals kept per provider; older ones are deleted as new ones come."""

RECEIPT_RESOLUTION = timedelta(minutes=1)
"""The last accepted time is written at most this often (no write, no row lock, on every
request of a busy provider)."""

MAX_REASON = 1000
"""Characters of a refusal's reason kept."""


@dataclass(frozen=True)
class Refusal:
    at: datetime
    status: int
    reason: str
    remote_addr: str | None


@dataclass(frozen=True)
class ProviderActivity:
    provider: str
    last_accepted_at: datetime | None
    last_events: int | None
    refusals: tuple[Refusal, ...]


def record_refusal(session: Session, provider: str, *, status: int, reason: str,
                   remote_addr: str | None, now: datetime) -> None:
    """Keep a refused request (in its own transaction: the refused one stored nothing), and
    forget that provider's refusals beyond the last KEPT_REFUSALS."""
    session.add(WebhookRefusal(provider=provider[:32], status=status,
                               reason=reason[:MAX_REASON], remote_addr=(remote_addr or "")[:64]
                               or None, received_at=now))
    session.flush()
    oldest_kept = session.execute(
        select(WebhookRefusal.id).where(WebhookRefusal.provider == provider)
        .order_by(WebhookRefusal.id.desc()).offset(KEPT_REFUSALS - 1).limit(1)
    ).scalar_one_or_none()
    if oldest_kept is not None:
        session.execute(delete(WebhookRefusal).where(WebhookRefusal.provider == provider,
                                                     WebhookRefusal.id < oldest_kept))


def note_accepted(session: Session, provider: str, events: int, *, now: datetime) -> None:
    """Remember that the provider's request was accepted now (at most once a minute)."""
    moved = session.execute(
        update(WebhookReceipt)
        .where(WebhookReceipt.provider == provider,
               WebhookReceipt.last_accepted_at < now - RECEIPT_RESOLUTION)
        .values(last_accepted_at=now, last_events=events)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        session.execute(insert_ignoring_conflicts(session, WebhookReceipt.__table__,
                                                  index_elements=["provider"])
                        .values(provider=provider, last_accepted_at=now, last_events=events))


def provider_activity(session: Session, *, refusals: int = 5) -> list[ProviderActivity]:
    """Each provider's last accepted request and its last `refusals` refusals, newest first."""
    receipts = {r.provider: r for r in session.execute(select(WebhookReceipt)).scalars()}
    found = []
    for provider in PROVIDERS:
        receipt = receipts.get(provider)
        last = session.execute(
            select(WebhookRefusal).where(WebhookRefusal.provider == provider)
            .order_by(WebhookRefusal.id.desc()).limit(refusals)
        ).scalars()
        found.append(ProviderActivity(
            provider=provider,
            last_accepted_at=receipt.last_accepted_at if receipt else None,
            last_events=receipt.last_events if receipt else None,
            refusals=tuple(Refusal(r.received_at, r.status, r.reason, r.remote_addr)
                           for r in last)))
    return found
