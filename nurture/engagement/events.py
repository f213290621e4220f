"""Events reported by clients through the API: website visits, forms, downloads, webinars,
replies, meetings. The client's `id` makes a report idempotent (source `api`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nurture.engagement.ingest import IncomingEvent, Stored, store_events
from nurture.engagement.schemas import EventIn
from nurture.models import EventType

SOURCE = "api"


def record_client_events(
    session: Session, events: Sequence[EventIn], *, now: datetime
) -> Stored:
    """Store the events not stored before (by `id`); refuses the whole batch on a bad one.

    An event whose email matches no lead is stored unmatched (its address kept), not refused;
    a `lead_id` that does not exist is refused (`InvalidInput`)."""
    return store_events(session, [
        IncomingEvent(
            source=SOURCE, source_event_id=event.id, type=EventType(event.type.value),
            occurred_at=event.occurred_at, email=event.email, lead_id=event.lead_id,
            properties=event.properties, url=page_url(event.properties),
        )
        for event in events
    ], now=now)


def page_url(properties: dict[str, Any]) -> str | None:
    """The page an event names in its properties (`url`, as a website's tracker sends it):
    stored as the event's `url`, which scoring rules match (`field: url`), as they match a
    tracked link's."""
    url = properties.get("url")
    return url if isinstance(url, str) and url else None
