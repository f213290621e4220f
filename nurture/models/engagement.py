"""Engagement: every open, click, bounce, reply, visit… normalised to one event model.

Provider webhooks, Nurture's own tracking and the events API all write `EngagementEvent`
rows; `(source, source_event_id)` is unique, so a redelivered event is stored once.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, BigId, id_pk, str_enum


class EventType(enum.StrEnum):
    """What happened, provider-neutral; the provider's own name is kept in `properties`."""

    PROCESSED = "processed"
    """Accepted by the provider for delivery (SendGrid processed, SES Send)."""
    DEFERRED = "deferred"
    """Delivery delayed, still being tried (deferred, temporary failure, DeliveryDelay)."""
    DROPPED = "dropped"
    """The provider will not deliver it (dropped, Reject, Rendering Failure)."""
    DELIVERED = "delivered"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"
    SPAM_COMPLAINT = "spam_complaint"
    UNSUBSCRIBE = "unsubscribe"
    RESUBSCRIBE = "resubscribe"
    PAGE_VIEW = "page_view"
    FORM_SUBMIT = "form_submit"
    CONTENT_DOWNLOAD = "content_download"
    WEBINAR_REGISTERED = "webinar_registered"
    WEBINAR_ATTENDED = "webinar_attended"
    EMAIL_REPLY = "email_reply"
    MEETING_BOOKED = "meeting_booked"


class EngagementEvent(Base):
    __tablename__ = "engagement_events"
    __table_args__ = (
        UniqueConstraint("source", "source_event_id", name="uq_engagement_events_source_event"),
        Index("ix_engagement_events_lead_id_occurred_at", "lead_id", "occurred_at"),
        Index("ix_engagement_events_message_id", "message_id"),
        # the events not yet handed to scoring (a sweep finds what Redis lost)
        Index(
            "ix_engagement_events_unhandled", "id",
            postgresql_where=text("handled_at IS NULL"), sqlite_where=text("handled_at IS NULL"),
        ),
        # the events not yet scored (nurture.scoring; a sweep finds what Redis lost)
        Index(
            "ix_engagement_events_unscored", "id",
            postgresql_where=text("scored_at IS NULL"), sqlite_where=text("scored_at IS NULL"),
        ),
    )

    id: Mapped[id_pk]
    lead_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    """None while the event matches no lead (stored as unmatched, not refused)."""
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL")
    )
    type: Mapped[EventType] = mapped_column(str_enum(EventType, "event_type"))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))
    """Who told us: `tracking`, `api`, `sendgrid`, `mailgun`, `postmark`, `ses`."""
    source_event_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    collateral_version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("collateral_versions.id", ondelete="SET NULL")
    )
    bounce_class: Mapped[str | None] = mapped_column(String(16))
    is_machine: Mapped[bool] = mapped_column(Boolean, default=False)
    machine_reason: Mapped[str | None] = mapped_column(String(255))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    handled_at: Mapped[datetime | None]
    """When the event was handed to scoring and woke the lead's branches (None: not yet)."""
    scored_at: Mapped[datetime | None]
    """When the event updated its lead's score (`nurture.scoring`; None: not yet)."""


class MailgunToken(Base):
    """A Mailgun webhook token seen, with a digest of the event-data it came with.

    Mailgun's signature covers the timestamp and token but not the event: a token seen before
    with other event-data is a forgery; with the same event-data, a redelivery."""

    __tablename__ = "mailgun_tokens"

    id: Mapped[id_pk]
    token: Mapped[str] = mapped_column(String(255), unique=True)
    signed_at: Mapped[datetime]
    event_digest: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(index=True)


class SnsSubscriptionStatus(enum.StrEnum):
    PENDING = "pending"
    """Recorded; not confirmed (the SubscribeURL was not reachable, or not tried yet)."""
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class SnsSubscription(Base):
    """An Amazon SNS subscription (un)confirmation message, for the admin to see and act on."""

    __tablename__ = "sns_subscriptions"

    id: Mapped[id_pk]
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    """SNS `MessageId`: a redelivered confirmation is the same row."""
    topic_arn: Mapped[str] = mapped_column(String(512), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    """`SubscriptionConfirmation` or `UnsubscribeConfirmation`."""
    subscribe_url: Mapped[str | None] = mapped_column(Text)
    token: Mapped[str | None] = mapped_column(Text)
    status: Mapped[SnsSubscriptionStatus] = mapped_column(
        str_enum(SnsSubscriptionStatus, "sns_subscription_status")
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]


class WebhookRefusal(Base):
    """A provider webhook request refused (bad signature, malformed body, not configured…):
    what the operators' integrations page shows. Only the last few per provider are kept."""

    __tablename__ = "webhook_refusals"
    __table_args__ = (Index("ix_webhook_refusals_provider_id", "provider", "id"),)

    id: Mapped[id_pk]
    provider: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    """The HTTP status answered (400, 401, 403, 503…)."""
    reason: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime]


class WebhookReceipt(Base):
    """When a provider's webhook last had events accepted (written at most once a minute)."""

    __tablename__ = "webhook_receipts"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_accepted_at: Mapped[datetime]
    last_events: Mapped[int] = mapped_column(Integer)
    """Events in that request (accepted and duplicates)."""
