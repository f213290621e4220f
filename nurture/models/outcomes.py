"""What the CRM reports happened to a lead after nurture: an opportunity, a win, a loss.

Each outcome is stored once under the CRM's own id (its idempotency key); a loss also
records the rejection that returned the lead to nurture.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, BigId, id_pk, str_enum


class OutcomeKind(enum.StrEnum):
    OPPORTUNITY_CREATED = "opportunity_created"
    WON = "won"
    LOST = "lost"


class LossReason(enum.StrEnum):
    """Why the CRM says an opportunity was lost (CONTRACT: `POST /api/v1/outcomes`)."""

    PRICE = "price"
    COMPETITOR = "competitor"
    NO_DECISION = "no_decision"
    TIMING = "timing"
    OTHER = "other"


class Outcome(Base):
    """One outcome reported by the CRM, stored once per CRM outcome id."""

    __tablename__ = "outcomes"
    __table_args__ = (
        Index("ix_outcomes_lead_id_occurred_at", "lead_id", "occurred_at"),
        Index("ix_outcomes_kind_occurred_at", "kind", "occurred_at"),
    )

    id: Mapped[id_pk]
    crm_outcome_id: Mapped[str] = mapped_column(String(255), unique=True)
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"))
    handoff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("handoffs.id", ondelete="SET NULL"), index=True
    )
    """The lead's latest handoff when the outcome was recorded (None: it never had one)."""
    kind: Mapped[OutcomeKind] = mapped_column(str_enum(OutcomeKind, "outcome_kind"))
    loss_reason: Mapped[LossReason | None] = mapped_column(str_enum(LossReason, "loss_reason"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    rejection_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("rejections.id", ondelete="SET NULL")
    )
    """A loss: the rejection that returned the lead to nurture (routed by its reason)."""
