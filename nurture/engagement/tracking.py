"""Opens and clicks of the links in sent emails (`/t/o`, `/t/c`), stored like any event.

Each is an `EngagementEvent` of the message (and, for a click, the collateral version the link
pointed to), with the machine rules applied to the request's user agent and address. One event
for one lead is handed on at once, in the same transaction (branches wake without a job); the
caller still enqueues the hand-on job after the commit, for what runs only there (scoring).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from nurture.engagement.handling import handle_events
from nurture.engagement.ingest import IncomingEvent, Stored, store_events
from nurture.errors import NotFound
from nurture.models import EventType, Message

SOURCE = "tracking"


def record_open(
    session: Session, message_id: int, *, user_agent: str | None, ip: str | None, now: datetime
) -> Stored:
    message = _message(session, message_id)
    return _store(session, IncomingEvent(
        source=SOURCE, source_event_id=None, type=EventType.OPEN, occurred_at=now,
        message_id=message.id, user_agent=user_agent, ip=ip,
    ), now)


def record_click(
    session: Session, message_id: int, link: int, *, user_agent: str | None, ip: str | None,
    now: datetime,
) -> tuple[str, Stored]:
    """Record the click; the URL recorded for that link at send time, and what was stored."""
    message = _message(session, message_id)
    destination = (message.links or {}).get(str(link))
    if not isinstance(destination, dict) or not destination.get("url"):
        raise NotFound("unknown link")
    stored = _store(session, IncomingEvent(
        source=SOURCE, source_event_id=None, type=EventType.CLICK, occurred_at=now,
        message_id=message.id, url=str(destination["url"]),
        collateral_version_id=destination.get("collateral_version_id"),
        user_agent=user_agent, ip=ip, properties={"link": link},
    ), now)
    return str(destination["url"]), stored


def _message(session: Session, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound("unknown message")
    return message


def _store(session: Session, event: IncomingEvent, now: datetime) -> Stored:
    stored = store_events(session, [event], now=now)
    if stored.id_range is not None:
        handle_events(session, *stored.id_range, now=now)
    return stored
