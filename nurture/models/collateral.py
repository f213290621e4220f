"""Collateral: the assets nurture emails feature, each version signed off by sales.

A `Collateral` is the stable asset (`key`); each `CollateralVersion` goes draft → submitted →
approved or changes requested → retired, and every move is a `CollateralTransition` with who,
when and the approver's comment.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, BigId, email_str, id_pk, short_str, str_enum


class CollateralStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    RETIRED = "retired"


class FunnelStage(enum.StrEnum):
    AWARENESS = "awareness"
    CONSIDERATION = "consideration"
    DECISION = "decision"


class Collateral(Base):
    __tablename__ = "collateral"

    id: Mapped[id_pk]
    key: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime]


class CollateralVersion(Base):
    __tablename__ = "collateral_versions"
    __table_args__ = (
        UniqueConstraint("collateral_id", "version", name="uq_collateral_versions_number"),
        Index("ix_collateral_versions_collateral_id_status", "collateral_id", "status"),
    )

    id: Mapped[id_pk]
    collateral_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("collateral.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[short_str]
    url: Mapped[str | None] = mapped_column(String(2048))
    file_path: Mapped[str | None] = mapped_column(String(1024))
    """Path of an uploaded file, relative to the instance's upload folder."""
    file_name: Mapped[short_str | None]
    content_type: Mapped[str | None] = mapped_column(String(127))
    funnel_stage: Mapped[FunnelStage] = mapped_column(str_enum(FunnelStage, "funnel_stage"))
    personas: Mapped[list[Any]] = mapped_column(default=list)
    industries: Mapped[list[Any]] = mapped_column(default=list)
    expires_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[CollateralStatus] = mapped_column(
        str_enum(CollateralStatus, "collateral_status"), default=CollateralStatus.DRAFT
    )
    created_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]


class CollateralTransition(Base):
    """One move of a collateral version through its approval workflow."""

    __tablename__ = "collateral_transitions"
    __table_args__ = (Index("ix_collateral_transitions_version_id_at", "version_id", "at"),)

    id: Mapped[id_pk]
    version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("collateral_versions.id", ondelete="CASCADE")
    )
    from_status: Mapped[CollateralStatus | None] = mapped_column(
        str_enum(CollateralStatus, "from_status")
    )
    to_status: Mapped[CollateralStatus] = mapped_column(str_enum(CollateralStatus, "to_status"))
    actor_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    actor_email: Mapped[str] = mapped_column(String(320))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class CollateralFeedback(Base):
    """A rep's word on a collateral version a recycled lead saw: useful or not, and why.

    One per (version, handoff, rep): giving it again changes it. The collateral's numbers
    count it and its author is told."""

    __tablename__ = "collateral_feedback"
    __table_args__ = (
        UniqueConstraint("version_id", "handoff_id", "rep_email",
                         name="uq_collateral_feedback_version_handoff_rep"),
        Index("ix_collateral_feedback_version_id_at", "version_id", "at"),
    )

    id: Mapped[id_pk]
    version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("collateral_versions.id", ondelete="CASCADE")
    )
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    handoff_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("handoffs.id", ondelete="CASCADE"), index=True
    )
    rep_email: Mapped[email_str]
    useful: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]
