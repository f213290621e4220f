"""The outbound CRM webhook deliveries as operators see them: each with every attempt, and
a redelivery asked for by hand (the same row, the same stable id, tried again now)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.errors import Conflict, NotFound
from nurture.handoffs.services import record_event
from nurture.models import (
    Handoff,
    HandoffNotification,
    Lead,
    NotificationAttempt,
    NotificationChannel,
    NotificationStatus,
)

PAGE_SIZE = 25
"""Deliveries on one page of the operators' list, newest first."""

REDELIVERABLE = frozenset({NotificationStatus.PENDING, NotificationStatus.FAILED,
                           NotificationStatus.SKIPPED, NotificationStatus.DELIVERED})
"""A CRM webhook may be sent again in any of these states: the receiver deduplicates by its
stable id, so sending a delivered one again is harmless (the CRM may have lost it)."""


@dataclass(frozen=True)
class Attempt:
    at: datetime
    ok: bool
    status_code: int | None
    duration_ms: int
    error: str | None
    excerpt: str | None


@dataclass(frozen=True)
class Delivery:
    id: int
    public_id: str
    handoff_id: int
    lead_email: str | None
    purpose: str
    status: str
    recipient: str | None
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    history: tuple[Attempt, ...] = ()


def list_deliveries(session: Session, *, status: str | None = None, before: int | None = None,
                    limit: int = PAGE_SIZE) -> tuple[list[Delivery], int | None]:
    """The CRM webhook deliveries, newest first, each with its attempts (oldest first); and
    the id to pass as `before` for the next page (None: no more). Keyset paging by id."""
    query = (select(HandoffNotification, Lead.email)
             .join(Handoff, Handoff.id == HandoffNotification.handoff_id)
             .join(Lead, Lead.id == Handoff.lead_id, isouter=True)
             .where(HandoffNotification.channel == NotificationChannel.CRM_WEBHOOK)
             .order_by(HandoffNotification.id.desc()).limit(limit + 1))
    if status:
        query = query.where(HandoffNotification.status == NotificationStatus(status))
    if before is not None:
        query = query.where(HandoffNotification.id < before)
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    history = _attempts(session, [n.id for n, _ in rows])
    deliveries = [_delivery(n, email, history.get(n.id, ())) for n, email in rows]
    return deliveries, (deliveries[-1].id if more and deliveries else None)


def delivery_counts(session: Session) -> dict[str, int]:
    """CRM webhook deliveries by status."""
    return {status.value: count for status, count in session.execute(
        select(HandoffNotification.status, func.count())
        .where(HandoffNotification.channel == NotificationChannel.CRM_WEBHOOK)
        .group_by(HandoffNotification.status))}


def get_delivery(session: Session, notification_id: int) -> Delivery:
    row = session.execute(
        select(HandoffNotification, Lead.email)
        .join(Handoff, Handoff.id == HandoffNotification.handoff_id)
        .join(Lead, Lead.id == Handoff.lead_id, isouter=True)
        .where(HandoffNotification.id == notification_id,
               HandoffNotification.channel == NotificationChannel.CRM_WEBHOOK)
    ).first()
    if row is None:
        raise NotFound(f"no CRM webhook delivery {notification_id}")
    notification, email = row
    return _delivery(notification, email, _attempts(session, [notification.id]).get(
        notification.id, ()))


def redeliver(session: Session, notification_id: int, *, actor: str, now: datetime) -> None:
    """Make the delivery due now (the next try is the caller's, a worker's or the dispatcher's
    sweep's: the row's claim keeps two from trying at once). Conflict while a try is running."""
    notification = session.get(HandoffNotification, notification_id, with_for_update=True)
    if notification is None or notification.channel != NotificationChannel.CRM_WEBHOOK:
        raise NotFound(f"no CRM webhook delivery {notification_id}")
    if notification.status not in REDELIVERABLE:
        raise Conflict(f"a delivery that is {notification.status.value} is not sent again")
    if notification.claimed_until is not None and notification.claimed_until > now:
        raise Conflict("this delivery is being tried right now; look again in a moment")
    notification.status = NotificationStatus.PENDING
    notification.next_attempt_at = now
    record_event(session, notification.handoff_id, "crm_webhook_redelivery", now=now,
                 detail=f"redelivery asked by {actor}")
    session.flush()


def _attempts(session: Session, ids: list[int]) -> dict[int, tuple[Attempt, ...]]:
    if not ids:
        return {}
    found: dict[int, list[Attempt]] = {}
    for a in session.execute(
        select(NotificationAttempt).where(NotificationAttempt.notification_id.in_(ids))
        .order_by(NotificationAttempt.attempted_at, NotificationAttempt.id)
    ).scalars():
        found.setdefault(a.notification_id, []).append(Attempt(
            at=a.attempted_at, ok=a.ok, status_code=a.status_code, duration_ms=a.duration_ms,
            error=a.error, excerpt=a.response_excerpt))
    return {key: tuple(value) for key, value in found.items()}


def _delivery(n: HandoffNotification, email: str | None,
              history: tuple[Attempt, ...]) -> Delivery:
    return Delivery(
        id=n.id, public_id=n.public_id, handoff_id=n.handoff_id, lead_email=email,
        purpose=n.purpose, status=n.status.value, recipient=n.recipient, attempts=n.attempts,
        created_at=n.created_at, next_attempt_at=n.next_attempt_at,
        delivered_at=n.delivered_at, last_error=n.last_error, history=history)
