"""Unsubscribes from the links in sent emails (opens and clicks: `nurture.engagement.tracking`).

An unsubscribe suppresses the address at once, which exits every sequence before its next step.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from nurture.db import insert_ignoring_conflicts
from nurture.errors import NotFound
from nurture.models import (
    LIVE_ENROLLMENT,
    EngagementEvent,
    Enrollment,
    EventType,
    Message,
    Suppression,
    SuppressionReason,
)


def _message(session: Session, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound("unknown message")
    return message


def unsubscribe(session: Session, message_id: int, *, now: datetime) -> str:
    """Suppress the message's recipient (idempotent); returns the address."""
    message = _message(session, message_id)
    inserted = session.execute(
        insert_ignoring_conflicts(session, Suppression, index_elements=["email"])
        .values(email=message.to_address, reason=SuppressionReason.UNSUBSCRIBED,
                source=f"unsubscribe link of message {message.message_id}", created_at=now)
        .returning(Suppression.id)
    ).scalar_one_or_none()
    if inserted is not None:
        # every sequence of the lead exits now, not when its next step comes due
        session.execute(
            update(Enrollment)
            .where(Enrollment.lead_id == message.lead_id, Enrollment.status.in_(LIVE_ENROLLMENT))
            .values(next_due_at=now)
        )
        session.add(EngagementEvent(
            lead_id=message.lead_id, message_id=message.id, type=EventType.UNSUBSCRIBE,
            occurred_at=now, received_at=now, source="tracking",
            source_event_id=f"unsubscribe:{message.message_id}", properties={},
        ))
    session.flush()
    return message.to_address

