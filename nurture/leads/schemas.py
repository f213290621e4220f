"""What intake accepts: the lead and rejection documents of CONTRACT.md, validated whole."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from nurture.fields import (
    field_errors,  # noqa: F401  (re-exported for callers of the schemas)
    forbid_nul,
    forbid_nul_in_json,
    normalize_country,
    normalize_email,
    normalize_timezone,
)
from nurture.models import SYSTEM_REASONS, RejectionReason

MAX_ATTRIBUTES_BYTES = 16_384
"""Free `attributes` of one lead, as compact JSON."""

MAX_NOTE_LENGTH = 10_000
"""A rejection note: a paragraph or two from the rep, not a document."""

Text255 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(forbid_nul),
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=320),
    AfterValidator(normalize_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 320}),
]
Country = Annotated[
    str,
    AfterValidator(normalize_country),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z]{2}$",
                    "description": "ISO 3166-1 alpha-2 code"}),
]
TimeZone = Annotated[
    str,
    AfterValidator(normalize_timezone),
    WithJsonSchema({"type": "string", "description": "IANA time zone, e.g. Europe/Berlin"}),
]


_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def attributes_json(value: dict[str, Any]) -> str:
    """The attributes as compact JSON, checked: no NUL anywhere, MAX_ATTRIBUTES_BYTES at most."""
    text = _compact_json(value)
    if "\\u0000" in text:  # JSON escapes every NUL so; the walk finds where (or that it was not)
        forbid_nul_in_json(value)
    size = len(text) if text.isascii() else len(text.encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes are {size} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES}")
    return text


def _check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    attributes_json(value)
    return value


class LeadIn(BaseModel):
    """A lead as a CRM sends it; matched to an existing lead by normalised email."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email
    first_name: Text255 | None = None
    last_name: Text255 | None = None
    company: Text255 | None = None
    title: Text255 | None = None
    industry: Text255 | None = None
    company_size: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    country: Country | None = None
    timezone: TimeZone | None = None
    source: Text255 | None = None
    owner_email: Email | None = None
    crm_id: Text255 | None = None
    attributes: Annotated[dict[str, Any], AfterValidator(_check_attributes)] | None = None

    def fields(self) -> dict[str, Any]:
        """The profile fields the caller sent (absent ones are left as they are)."""
        return self.model_dump(exclude_unset=True, exclude={"email"})


def _given_by_sales(reason: RejectionReason) -> RejectionReason:
    if reason in SYSTEM_REASONS:
        raise ValueError(f"{reason.value} is recorded by Nurture itself, not given")
    return reason


SalesReason = Annotated[
    RejectionReason,
    AfterValidator(_given_by_sales),
    WithJsonSchema({"type": "string", "title": "SalesReason",
                    "enum": [r.value for r in RejectionReason if r not in SYSTEM_REASONS]}),
]
"""A rejection reason the CRM or a rep may give (not one Nurture records itself)."""


class RejectionIn(BaseModel):
    """Sales gave a lead back (POST /api/v1/rejections)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lead: LeadIn
    rep_email: Email
    reason: SalesReason
    note: Annotated[
        str, StringConstraints(max_length=MAX_NOTE_LENGTH), AfterValidator(forbid_nul)
    ] | None = None
    revisit_on: date | None = None
    crm_id: Text255 | None = None
    rejected_at: AwareDatetime | None = None
