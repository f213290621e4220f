"""Engagement reported by clients: website visits, forms, downloads, webinars, replies, meetings."""

from __future__ import annotations

from typing import Any

from nurture.clock import utcnow
from nurture.engagement.events import record_client_events
from nurture.engagement.schemas import EventsIn
from nurture.engagement.webhooks import sns_subscriptions
from nurture.models import Role
from nurture.web import db_session
from nurture.web.api import bp, json_body, requires
from nurture.web.engagement import hand_on


@bp.post("/events")
@requires(Role.ADMIN, Role.MARKETER)
def record_events() -> Any:
    """202 once every new event is committed; `id`s stored before count as duplicates."""
    body = json_body(EventsIn)
    session = db_session()
    stored = record_client_events(session, body.events, now=utcnow())
    session.commit()
    hand_on(stored)
    return {"accepted": stored.accepted, "duplicates": stored.duplicates}, 202


@bp.get("/sns-subscriptions")
@requires(Role.ADMIN)
def list_sns_subscriptions() -> Any:
    """Amazon SNS (un)subscription messages, newest first, confirmed or still pending."""
    return {"subscriptions": sns_subscriptions(db_session())}

