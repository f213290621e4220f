"""The service-level agreement between marketing and sales: versioned, approved documents.

One version is active at a time; every handoff records the version it runs under. With none
active, the settings' default applies (`nurture.handoffs.sla`), recorded as no version.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.approvals import ApprovalRole, DocumentStatus
from nurture.models.base import Base, BigId, email_str, id_pk, json_object, short_str, str_enum


class Sla(Base):
    """One version of the SLA document; versions are immutable once stored."""

    __tablename__ = "slas"
    __table_args__ = (
        Index("ix_slas_one_active", "status", unique=True,
              postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'")),
    )

    id: Mapped[id_pk]
    version: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[short_str]
    document: Mapped[json_object]
    status: Mapped[DocumentStatus] = mapped_column(
        str_enum(DocumentStatus, "sla_status"), default=DocumentStatus.DRAFT
    )
    created_by: Mapped[email_str]
    created_at: Mapped[datetime]
    activated_by: Mapped[email_str | None]
    activated_at: Mapped[datetime | None]
    retired_by: Mapped[email_str | None]
    retired_at: Mapped[datetime | None]


class SlaApproval(Base):
    """A marketer's or a sales approver's approval of an SLA version; withdrawn, it stays."""

    __tablename__ = "sla_approvals"
    __table_args__ = (
        Index("ix_sla_approvals_live", "sla_id", "role", unique=True,
              postgresql_where=text("withdrawn_at IS NULL"),
              sqlite_where=text("withdrawn_at IS NULL")),
    )

    id: Mapped[id_pk]
    sla_id: Mapped[int] = mapped_column(BigId, ForeignKey("slas.id", ondelete="CASCADE"),
                                        index=True)
    role: Mapped[ApprovalRole] = mapped_column(str_enum(ApprovalRole, "approval_role"))
    approved_by: Mapped[email_str]
    approved_at: Mapped[datetime]
    withdrawn_by: Mapped[email_str | None]
    withdrawn_at: Mapped[datetime | None]
