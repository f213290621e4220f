"""What every approved document shares: its status and the two roles that approve it.

A scoring model and the SLA are both documents that marketing and sales sign together;
they go through the same states and are approved by the same two roles
(`nurture.approvals` holds the one lifecycle both use).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, BigId, email_str, id_pk


class DocumentStatus(enum.StrEnum):
    DRAFT = "draft"
    """Being reviewed; needs a marketer's and a sales approver's approval."""
    APPROVED = "approved"
    """Both approvals recorded; either may still be withdrawn until activation."""
    ACTIVE = "active"
    """The one version in force now."""
    RETIRED = "retired"
    """Replaced or withdrawn from use for good."""


class ApprovalRole(enum.StrEnum):
    MARKETER = "marketer"
    SALES_APPROVER = "sales_approver"


class ChangeRequest(Base):
    """A sales approver's "request changes" on a version of a scoring model or the SLA: the
    comment that goes back to its author (collateral keeps its own in its transitions)."""

    __tablename__ = "change_requests"
    __table_args__ = (Index("ix_change_requests_document", "document_kind", "document_id"),)

    id: Mapped[id_pk]
    document_kind: Mapped[str] = mapped_column(String(20))
    """The versions' table: `scoring_models` or `slas`."""
    document_id: Mapped[int] = mapped_column(BigId)
    version: Mapped[int] = mapped_column(Integer)
    author: Mapped[email_str]
    """Who the comment goes to: the version's author."""
    requested_by: Mapped[email_str]
    comment: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime]
