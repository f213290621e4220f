"""The provider webhooks' storage: their events, Mailgun's tokens, SNS subscriptions.

The adapters in `providers/` authenticate and parse; what needs the database is here, in the
request's transaction, so that a refused request stores nothing and an accepted one is
committed before it is answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nurture.clock import iso
from nurture.db import insert_ignoring_conflicts
from nurture.engagement import machine
from nurture.engagement.ingest import IncomingEvent, Stored, store_events
from nurture.engagement.providers import ProviderEvent, WebhookRefused
from nurture.models import MailgunToken, SnsSubscription, SnsSubscriptionStatus

MAX_ERROR = 2000
"""Longest error text kept on a subscription that could not be confirmed."""


def incoming(event: ProviderEvent) -> IncomingEvent:
    """A provider's event as the storage takes it; the provider's own type kept as a property."""
    return IncomingEvent(
        source=event.provider,
        source_event_id=event.event_id,
        type=event.type,
        occurred_at=event.occurred_at,
        email=event.recipient,
        nurture_message_id=event.nurture_message_id,
        url=event.url,
        bounce_class=event.bounce_class,
        user_agent=event.user_agent,
        ip=event.ip,
        machine_hint=machine.provider_bot(event.provider, event.raw),
        properties={"provider_type": event.provider_type, "raw": event.raw},
    )


def store_provider_events(
    session: Session, events: Sequence[ProviderEvent], *, now: datetime
) -> Stored:
    """Store a provider's batch (each event identity once); see `ingest.store_events`."""
    return store_events(session, [incoming(e) for e in events], now=now)


def check_mailgun_token(
    session: Session, token: str, signed_at: datetime, event_digest: str, *, now: datetime
) -> bool:
    """Record a Mailgun token; True if new, False for an exact redelivery (same event-data).

    Raises `WebhookRefused(403)` for a token seen before with other event-data: Mailgun's
    signature does not cover the event, so that is someone replaying a captured signature.
    Two requests with one token are serialised by the unique index: the second waits for the
    first to commit, then sees its row.
    """
    table = MailgunToken.__table__
    inserted = session.connection().execute(
        insert_ignoring_conflicts(session, table, index_elements=["token"])
        .values(token=token, signed_at=signed_at, event_digest=event_digest, received_at=now)
        .returning(table.c.id)
    ).scalar_one_or_none()
    if inserted is not None:
        return True
    stored = session.execute(
        select(MailgunToken.event_digest).where(MailgunToken.token == token)
    ).scalar_one()
    if stored != event_digest:
        raise WebhookRefused(403, "this signature's token was used before for another event")
    return False


def prune_mailgun_tokens(session: Session, *, received_before: datetime) -> int:
    """Forget tokens received before then (their signatures expired long ago); how many."""
    table = MailgunToken.__table__
    return session.connection().execute(
        delete(table).where(table.c.received_at < received_before)
    ).rowcount


def record_sns_subscription(
    session: Session, *, kind: str, message_id: str, topic_arn: str,
    subscribe_url: str | None, token: str | None, now: datetime,
) -> SnsSubscription:
    """Record an SNS (un)subscription confirmation message once (by its MessageId)."""
    found = session.execute(
        select(SnsSubscription).where(SnsSubscription.message_id == message_id)
    ).scalar_one_or_none()
    if found is not None:
        return found
    subscription = SnsSubscription(
        message_id=message_id, topic_arn=topic_arn, kind=kind, subscribe_url=subscribe_url,
        token=token, received_at=now,
        status=(SnsSubscriptionStatus.UNSUBSCRIBED if kind == "UnsubscribeConfirmation"
                else SnsSubscriptionStatus.PENDING),
    )
    session.add(subscription)
    session.flush()
    return subscription


def settle_sns_subscription(
    session: Session, subscription_id: int, *, error: str | None, now: datetime
) -> None:
    """The outcome of calling the SubscribeURL: confirmed, or still pending with the error."""
    subscription = session.get(SnsSubscription, subscription_id)
    if subscription is None or subscription.status is not SnsSubscriptionStatus.PENDING:
        return
    if error is None:
        subscription.status = SnsSubscriptionStatus.CONFIRMED
        subscription.confirmed_at = now
        subscription.last_error = None
    else:
        subscription.last_error = error[:MAX_ERROR]
    session.flush()


RECENT_SNS_SUBSCRIPTIONS = 100
"""How many SNS (un)subscription messages the admin's list shows, newest first."""


def sns_subscriptions(session: Session) -> list[dict[str, object]]:
    """The SNS (un)subscription messages received, newest first: what the admin checks when a
    subscription could not be confirmed (its SubscribeURL, to open by hand, and the error)."""
    rows = session.execute(
        select(SnsSubscription)
        .order_by(SnsSubscription.received_at.desc(), SnsSubscription.id.desc())
        .limit(RECENT_SNS_SUBSCRIPTIONS)
    ).scalars()
    return [
        {
            "id": row.id, "topic_arn": row.topic_arn, "kind": row.kind,
            "status": row.status.value, "subscribe_url": row.subscribe_url,
            "last_error": row.last_error,
            "received_at": iso(row.received_at), "confirmed_at": iso(row.confirmed_at),
        }
        for row in rows
    ]

