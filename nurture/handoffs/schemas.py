"""What the handoffs API and the outcomes API accept."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from nurture.fields import forbid_nul
from nurture.handoffs.outcomes import MAX_AMOUNT_DIGITS, ReportedOutcome
from nurture.leads.schemas import MAX_NOTE_LENGTH, Email, SalesReason
from nurture.models import LossReason, OutcomeKind

MAX_OUTCOMES = 1000
"""Outcomes in one request; a larger batch is refused whole (422)."""


class HandoffRejectIn(BaseModel):
    """The rep gives a recycled lead back (POST /api/v1/handoffs/{id}/reject)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: SalesReason
    note: Annotated[
        str, StringConstraints(max_length=MAX_NOTE_LENGTH), AfterValidator(forbid_nul)
    ] | None = None
    revisit_on: date | None = None


Text255 = Annotated[str, StringConstraints(min_length=1, max_length=255),
                    AfterValidator(forbid_nul)]
Amount = Annotated[Decimal, Field(ge=0, lt=Decimal(10) ** (MAX_AMOUNT_DIGITS - 4),
                                  decimal_places=4, allow_inf_nan=False)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


def _in_utc(value: datetime) -> datetime:
    """The time in UTC (PostgreSQL keeps offsets within ±15:59; the offset is not kept)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once in UTC") from None


class OutcomeIn(BaseModel):
    """One outcome: `id` is the CRM's own (the idempotency key); the lead by `crm_id` or
    `email` (crm_id is tried first when both are given)."""

    model_config = ConfigDict(extra="forbid")

    id: Text255
    type: OutcomeKind
    loss_reason: LossReason | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    occurred_at: Annotated[AwareDatetime, AfterValidator(_in_utc)]
    crm_id: Text255 | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OutcomeIn:
        if self.crm_id is None and self.email is None:
            raise ValueError("give the lead's crm_id or email")
        if self.type == OutcomeKind.WON and self.amount is None:
            raise ValueError("a won outcome needs its amount")
        if (self.type == OutcomeKind.LOST) != (self.loss_reason is not None):
            raise ValueError("a lost outcome needs its loss_reason, and only a lost one has one")
        if (self.amount is None) != (self.currency is None):
            raise ValueError("give amount and currency together")
        return self

    def reported(self) -> ReportedOutcome:
        return ReportedOutcome(
            outcome_id=self.id, kind=self.type, occurred_at=self.occurred_at,
            crm_id=self.crm_id, email=self.email, loss_reason=self.loss_reason,
            amount=self.amount, currency=self.currency,
        )


class OutcomesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=MAX_OUTCOMES)
