"""The drip engine's state: sequences and their versions, enrollments, messages, suppressions.

A sequence is a stable identity (`key`); each edit is a new immutable `SequenceVersion`
holding the whole document. Leads are enrolled on one version and finish on it. An
enrollment's position and next due time live here (the dispatcher finds due work through
the `next_due_at` index); a message row per (enrollment, step) makes sending at most once.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, BigId, email_str, id_pk, short_str, str_enum


class SequenceStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"


class EnrollmentStatus(enum.StrEnum):
    """`scheduled` waits for its start (revisit_on); `active` runs; `held` waits for a fix."""

    SCHEDULED = "scheduled"
    ACTIVE = "active"
    HELD = "held"
    COMPLETED = "completed"
    EXITED = "exited"


LIVE_ENROLLMENT = ("scheduled", "active", "held")
"""Statuses of an enrollment that still holds its lead (at most one per lead and sequence)."""


class MessageStatus(enum.StrEnum):
    """`sending` is committed before the SMTP/provider call; a crash leaves it `unknown`.

    `queued`: planned and composed in a batch, certainly not handed over yet (safe to send).
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


class Sequence(Base):
    __tablename__ = "sequences"

    id: Mapped[id_pk]
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[short_str]
    status: Mapped[SequenceStatus] = mapped_column(
        str_enum(SequenceStatus, "sequence_status"), default=SequenceStatus.DRAFT
    )
    priority: Mapped[int] = mapped_column(Integer, default=100)
    active_version_id: Mapped[int | None] = mapped_column(BigId)
    """The version new enrollments get (no foreign key: the two tables refer to each other)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SequenceVersion(Base):
    """One immutable version of a sequence document."""

    __tablename__ = "sequence_versions"
    __table_args__ = (UniqueConstraint("sequence_id", "version", name="uq_sequence_versions_number"),)

    id: Mapped[id_pk]
    sequence_id: Mapped[int] = mapped_column(BigId, ForeignKey("sequences.id", ondelete="CASCADE"))
    version: Mapped[int]
    document: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[short_str | None]
    created_at: Mapped[datetime]


class Enrollment(Base):
    """A lead in a sequence version: where it stands and when its next step is due."""

    __tablename__ = "enrollments"
    __table_args__ = (
        # the dispatcher's query: due rows of live enrollments (held ones are rechecked), oldest first
        Index(
            "ix_enrollments_due", "next_due_at",
            postgresql_where=text("status IN ('scheduled', 'active', 'held')"),
            sqlite_where=text("status IN ('scheduled', 'active', 'held')"),
        ),
        # a lead is never enrolled twice in the same sequence at once
        Index(
            "uq_enrollments_live_lead_sequence", "lead_id", "sequence_id", unique=True,
            postgresql_where=text("status IN ('scheduled', 'active', 'held')"),
            sqlite_where=text("status IN ('scheduled', 'active', 'held')"),
        ),
        Index("ix_enrollments_lead_id", "lead_id"),
    )

    id: Mapped[id_pk]
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    sequence_id: Mapped[int] = mapped_column(BigId, ForeignKey("sequences.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sequence_versions.id", ondelete="CASCADE"), index=True
    )
    rejection_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("rejections.id", ondelete="SET NULL")
    )
    status: Mapped[EnrollmentStatus] = mapped_column(
        str_enum(EnrollmentStatus, "enrollment_status"), default=EnrollmentStatus.ACTIVE
    )
    step_id: Mapped[str | None] = mapped_column(String(100))
    """The step to run next (None once finished)."""
    step_started_at: Mapped[datetime | None]
    """When the enrollment arrived at its current step (waits and branches count from here)."""
    next_due_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    """Lease of the dispatcher claim: past it, the claim is void and the step is due again."""
    hold_reason: Mapped[str | None] = mapped_column(Text)
    exit_reason: Mapped[str | None] = mapped_column(String(64))
    enrolled_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class EnrollmentEvent(Base):
    """The enrollment's history: every step taken, held, branched or exited, and why."""

    __tablename__ = "enrollment_events"
    __table_args__ = (Index("ix_enrollment_events_enrollment_id_at", "enrollment_id", "at"),)

    id: Mapped[id_pk]
    enrollment_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    step_id: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class Message(Base):
    """One email of one step of one enrollment: at most one, ever (unique)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", name="uq_messages_enrollment_step"),
        Index("ix_messages_lead_id", "lead_id"),  # not sent_at: sending updates in place (0016)
    )

    id: Mapped[id_pk]
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    """Nurture's own id, sent to the provider as `nurture_message_id`."""
    enrollment_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    step_id: Mapped[str] = mapped_column(String(100))
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    to_address: Mapped[email_str]
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[MessageStatus] = mapped_column(str_enum(MessageStatus, "message_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    links: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Link number → {url, collateral_version_id}: what a click token may redirect to."""
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class MessageCollateral(Base):
    """Which collateral version a message featured (the lead's history across cycles)."""

    __tablename__ = "message_collateral"

    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    collateral_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("collateral_versions.id", ondelete="CASCADE"), primary_key=True,
        index=True,
    )


class SuppressionReason(enum.StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


class Suppression(Base):
    """An address Nurture must not email, and why."""

    __tablename__ = "suppressions"

    id: Mapped[id_pk]
    email: Mapped[email_str] = mapped_column(unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(
        str_enum(SuppressionReason, "suppression_reason")
    )
    source: Mapped[short_str | None]
    created_at: Mapped[datetime]


class SuppressionRemoval(Base):
    """An address taken off the suppression list by an operator, with why (kept for audit:
    the suppression itself is deleted, so Nurture may email the address again)."""

    __tablename__ = "suppression_removals"

    id: Mapped[id_pk]
    email: Mapped[email_str] = mapped_column(index=True)
    suppressed_reason: Mapped[str] = mapped_column(String(32))
    suppressed_source: Mapped[short_str | None]
    suppressed_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    """The operator's reason for removing it."""
    removed_by: Mapped[email_str]
    removed_at: Mapped[datetime]
