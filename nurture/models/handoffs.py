"""Handoffs: a qualified lead recycled to a rep, the SLA loop's history, and the notifications
(the signed CRM webhook, the rep's emails) with every delivery attempt.

At most one handoff per lead is open at a time (a partial unique index), so a flood of events
or two concurrent re-scores cannot hand the same lead over twice.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, BigId, email_str, id_pk, short_str, str_enum


class HandoffStatus(enum.StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    """No rep acted within the SLA's last window; the lead went back to nurture (`sla_expired`)."""
    STALLED = "stalled"
    """Accepted, but no opportunity within the SLA's window; back to nurture (`stalled_in_sales`)."""


class Handoff(Base):
    """A lead recycled to sales: the evidence it qualified on, its rep and its SLA timer."""

    __tablename__ = "handoffs"
    __table_args__ = (
        # one open handoff per lead, whoever races to create it
        Index(
            "uq_handoffs_open_lead", "lead_id", unique=True,
            postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'"),
        ),
        Index("ix_handoffs_lead_id_created_at", "lead_id", "created_at"),
        Index("ix_handoffs_rep_email_status", "rep_email", "status"),
        # the rep's inbox: open ones soonest due first, closed ones latest first
        Index(
            "ix_handoffs_rep_open_due", "rep_email", "sla_due_at",
            postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'"),
        ),
        Index("ix_handoffs_rep_email_created_at", "rep_email", "created_at"),
        # the dispatcher's query: open handoffs whose SLA timer is due
        Index(
            "ix_handoffs_sla_due", "next_sla_at",
            postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'"),
        ),
        # the dispatcher's query: accepted handoffs with no opportunity by their stall time
        Index(
            "ix_handoffs_stalls_at", "stalls_at",
            postgresql_where=text("status = 'accepted'"),
            sqlite_where=text("status = 'accepted'"),
        ),
    )

    id: Mapped[id_pk]
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    status: Mapped[HandoffStatus] = mapped_column(
        str_enum(HandoffStatus, "handoff_status"), default=HandoffStatus.OPEN
    )
    rep_email: Mapped[email_str | None]
    """None while no active rep exists (admins can act; escalation keeps trying to assign)."""
    score: Mapped[dict[str, Any]] = mapped_column()
    """The score as it was when the lead qualified, with its explanation."""
    model_version_id: Mapped[int | None] = mapped_column(BigId)
    qualifying_event_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("engagement_events.id", ondelete="SET NULL")
    )
    qualified_at: Mapped[datetime]
    prior_rejection_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("rejections.id", ondelete="SET NULL")
    )
    """The rejection the lead was nurtured after (the CRM webhook's `rejection`)."""
    rejection_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("rejections.id", ondelete="SET NULL")
    )
    """The rep's new rejection, when the handoff was rejected."""
    sla_due_at: Mapped[datetime]
    next_sla_at: Mapped[datetime | None]
    """When the SLA timer fires next (None once the handoff is closed)."""
    sla_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("slas.id", ondelete="SET NULL"), index=True
    )
    """The SLA version the handoff runs under (None: the settings' default SLA)."""
    stalls_at: Mapped[datetime | None]
    """Accepted with no opportunity yet: when the lead returns to nurture (`stalled_in_sales`)."""
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    """Escalation steps taken for the current rep since assignment."""
    reassignments: Mapped[int] = mapped_column(Integer, default=0)
    handoff_ms: Mapped[int] = mapped_column(Integer)
    """Measured: from the qualifying moment to the handoff being stored."""
    response_ms: Mapped[int | None] = mapped_column(Integer)
    """Measured: from the handoff to the rep's first action (accept or reject)."""
    first_action_at: Mapped[datetime | None]
    closed_by: Mapped[short_str | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class HandoffEvent(Base):
    """One step of a handoff's life: created, notified, escalated, reassigned, accepted…"""

    __tablename__ = "handoff_events"
    __table_args__ = (Index("ix_handoff_events_handoff_id_at", "handoff_id", "at"),)

    id: Mapped[id_pk]
    handoff_id: Mapped[int] = mapped_column(BigId, ForeignKey("handoffs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    rep_email: Mapped[email_str | None]
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class NotificationChannel(enum.StrEnum):
    CRM_WEBHOOK = "crm_webhook"
    REP_EMAIL = "rep_email"


class NotificationStatus(enum.StrEnum):
    """`pending` until delivered or given up (`failed`); an email that may have gone is
    `unknown` (never sent again); `skipped` when its channel is not configured."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


class HandoffNotification(Base):
    """One outbound notification of a handoff, delivered at least once under a stable id."""

    __tablename__ = "handoff_notifications"
    __table_args__ = (
        Index(
            "ix_handoff_notifications_due", "next_attempt_at",
            postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[id_pk]
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    """The stable id the receiver deduplicates by (the webhook's `id`)."""
    handoff_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("handoffs.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[NotificationChannel] = mapped_column(
        str_enum(NotificationChannel, "notification_channel")
    )
    purpose: Mapped[str] = mapped_column(String(32))
    """`handoff`, `reminder` or `reassigned`."""
    recipient: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    """The webhook's exact JSON body, fixed at creation so every retry sends the same bytes."""
    status: Mapped[NotificationStatus] = mapped_column(
        str_enum(NotificationStatus, "notification_status"), default=NotificationStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class NotificationAttempt(Base):
    """One try at delivering a notification (what the admin shows)."""

    __tablename__ = "notification_attempts"
    __table_args__ = (
        Index("ix_notification_attempts_notification_id_at", "notification_id", "attempted_at"),
    )

    id: Mapped[id_pk]
    notification_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("handoff_notifications.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    """The start of the receiver's answer (what a CRM said when it refused), for the admin."""


class LongTermNurture(Base):
    """A lead recycled as often as the cap allows: it stays in nurture and is not recycled."""

    __tablename__ = "long_term_nurture"

    lead_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    recycles: Mapped[int] = mapped_column(Integer)
    marked_at: Mapped[datetime]
