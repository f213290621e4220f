"""Leads held by Nurture, the rejections that sent them here, and their lifecycle history."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nurture.models.base import Base, BigId, email_str, id_pk, json_object, short_str, str_enum


class LifecycleStage(enum.StrEnum):
    """Where a lead stands between marketing and sales."""

    LEAD = "lead"
    MQL = "mql"
    NURTURING = "nurturing"
    RECYCLED_TO_SALES = "recycled_to_sales"
    ACCEPTED_BY_SALES = "accepted_by_sales"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    DISQUALIFIED = "disqualified"


class RejectionReason(enum.StrEnum):
    """Why sales gave a lead back (CONTRACT.md)."""

    NO_BUDGET = "no_budget"
    NO_AUTHORITY = "no_authority"
    NO_NEED = "no_need"
    BAD_TIMING = "bad_timing"
    NOT_ICP = "not_icp"
    UNRESPONSIVE = "unresponsive"
    CHOSE_COMPETITOR = "chose_competitor"
    OTHER = "other"
    SLA_EXPIRED = "sla_expired"
    """Recorded by Nurture: no rep acted on the handoff within the SLA."""
    STALLED_IN_SALES = "stalled_in_sales"
    """Recorded by Nurture: accepted, but no opportunity within the SLA's window."""


SYSTEM_REASONS = frozenset({RejectionReason.SLA_EXPIRED, RejectionReason.STALLED_IN_SALES})
"""Reasons only Nurture records (the CRM and reps give the others)."""


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (CheckConstraint("company_size >= 0", name="company_size_not_negative"),)

    id: Mapped[id_pk]
    email: Mapped[email_str] = mapped_column(unique=True)
    first_name: Mapped[short_str | None]
    last_name: Mapped[short_str | None]
    company: Mapped[short_str | None]
    title: Mapped[short_str | None]
    industry: Mapped[short_str | None]
    company_size: Mapped[int | None]
    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[short_str | None]
    owner_email: Mapped[email_str | None] = mapped_column(index=True)
    crm_id: Mapped[short_str | None] = mapped_column(index=True)
    attributes: Mapped[json_object] = mapped_column(default=dict)
    lifecycle_stage: Mapped[LifecycleStage] = mapped_column(
        str_enum(LifecycleStage, "lifecycle_stage"), default=LifecycleStage.LEAD, index=True
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    rejections: Mapped[list[Rejection]] = relationship(
        back_populates="lead", order_by="Rejection.rejected_at.desc(), Rejection.id.desc()"
    )

    PROFILE_FIELDS = (
        "first_name",
        "last_name",
        "company",
        "title",
        "industry",
        "company_size",
        "country",
        "timezone",
        "source",
        "owner_email",
        "crm_id",
        "attributes",
    )

    def profile(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.PROFILE_FIELDS}


class Rejection(Base):
    """Sales gave the lead back, with a reason that steers what nurture sends."""

    __tablename__ = "rejections"
    __table_args__ = (Index("ix_rejections_lead_id_rejected_at", "lead_id", "rejected_at"),)

    id: Mapped[id_pk]
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    reason: Mapped[RejectionReason] = mapped_column(str_enum(RejectionReason, "rejection_reason"))
    note: Mapped[str | None] = mapped_column(Text)
    revisit_on: Mapped[date | None] = mapped_column(Date)
    rep_email: Mapped[email_str] = mapped_column(index=True)
    crm_id: Mapped[short_str | None] = mapped_column(unique=True)
    rejected_at: Mapped[datetime]
    created_at: Mapped[datetime]

    lead: Mapped[Lead] = relationship(back_populates="rejections")


class LifecycleChange(Base):
    """One move of a lead between lifecycle stages, with why (the lead's lifecycle history)."""

    __tablename__ = "lifecycle_changes"
    __table_args__ = (Index("ix_lifecycle_changes_lead_id_changed_at", "lead_id", "changed_at"),)

    id: Mapped[id_pk]
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    from_stage: Mapped[LifecycleStage | None] = mapped_column(
        str_enum(LifecycleStage, "from_stage")
    )
    to_stage: Mapped[LifecycleStage] = mapped_column(str_enum(LifecycleStage, "to_stage"))
    cause: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime]
