"""What the handoffs API accepts."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from nurture.fields import forbid_nul
from nurture.leads.schemas import MAX_NOTE_LENGTH
from nurture.models import RejectionReason


class HandoffRejectIn(BaseModel):
    """The rep gives a recycled lead back (POST /api/v1/handoffs/{id}/reject)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: RejectionReason
    note: Annotated[
        str, StringConstraints(max_length=MAX_NOTE_LENGTH), AfterValidator(forbid_nul)
    ] | None = None
    revisit_on: date | None = None
