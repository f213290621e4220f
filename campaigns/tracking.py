"""Opens, clicks and unsubscribes from the links in sent emails.

Each is stored as an engagement event on the message (and the collateral a click pointed
to); an open or click wakes the lead's branches that wait for engagement. An unsubscribe
suppresses the address at once, which exits every sequence before its next step.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from campaigns.engine import wake_for_lead
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

MAX_USER_AGENT = 512
"""Longest user agent kept with an event."""


def _message(session: Session, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound("unknown message")
    return message


def record_open(
    session: Session, message_id: int, *, user_agent: str | None, now: datetime
) -> None:
    message = _message(session, message_id)
    session.add(EngagementEvent(
        lead_id=message.lead_id, message_id=message.id, type=EventType.OPEN, occurred_at=now,
        received_at=now, source="tracking", properties=_client(user_agent),
    ))
    session.flush()
    wake_for_lead(session, message.lead_id, now=now)


def record_click(
    session: Session, message_id: int, link: int, *, user_agent: str | None, now: datetime
) -> str:
    """Record the click and return the URL recorded for that link at send time."""
    message = _message(session, message_id)
    destination = (message.links or {}).get(str(link))
    if not destination:
        raise NotFound("unknown link")
    session.add(EngagementEvent(
        lead_id=message.lead_id, message_id=message.id, type=EventType.CLICK, occurred_at=now,
        received_at=now, source="tracking", url=destination["url"],
        collateral_version_id=destination.get("collateral_version_id"),
        properties=_client(user_agent),
    ))
    session.flush()
    wake_for_lead(session, message.lead_id, now=now)
    return str(destination["url"])


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


def _client(user_agent: str | None) -> dict[str, str]:
    return {"user_agent": user_agent[:MAX_USER_AGENT]} if user_agent else {}
