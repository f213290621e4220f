"""What the events API accepts (CONTRACT.md: `POST /api/v1/events`), validated whole."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from nurture.fields import forbid_nul, forbid_nul_in_json
from nurture.leads.schemas import Email

MAX_EVENTS = 1000
"""Events in one request; a larger batch is refused whole (422)."""


class ClientEventType(enum.StrEnum):
    """What a client may report (the email types come from the providers and our links)."""

    PAGE_VIEW = "page_view"
    FORM_SUBMIT = "form_submit"
    CONTENT_DOWNLOAD = "content_download"
    WEBINAR_REGISTERED = "webinar_registered"
    WEBINAR_ATTENDED = "webinar_attended"
    EMAIL_REPLY = "email_reply"
    MEETING_BOOKED = "meeting_booked"


EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(forbid_nul)
]


def _in_utc(value: datetime) -> datetime:
    """The time in UTC (PostgreSQL keeps offsets within ±15:59; the offset is not kept)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once in UTC") from None


def _check_properties(value: dict[str, Any]) -> dict[str, Any]:
    forbid_nul_in_json(value)
    return value


class EventIn(BaseModel):
    """One event: `id` is the client's idempotency key; the lead by `email` or `lead_id`."""

    model_config = ConfigDict(extra="forbid")

    id: EventId
    email: Email | None = None
    lead_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    type: ClientEventType
    occurred_at: Annotated[AwareDatetime, AfterValidator(_in_utc)]
    properties: Annotated[dict[str, Any], AfterValidator(_check_properties)] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _one_lead(self) -> EventIn:
        if (self.email is None) == (self.lead_id is None):
            raise ValueError("give exactly one of email and lead_id")
        return self


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)
