"""Email providers' webhook formats: authenticate a request, parse it into `ProviderEvent`s.

Pure functions over the raw request (headers and body bytes) and the settings: no database,
no Flask. Refusals raise `WebhookRefused` with the status the provider should be answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nurture.models.engagement import EventType


class WebhookRefused(Exception):
    """The request is not accepted; answer `status` (401/403 auth, 400 shape, 413 size…).

    Nothing may be stored for a refused request."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ProviderEvent:
    """One provider event, normalised. `event_id` is the provider's event identity (the
    dedupe key within `provider`); `raw` is the event's own JSON, kept for audit."""

    provider: str
    event_id: str
    type: EventType
    provider_type: str
    occurred_at: datetime
    recipient: str | None
    nurture_message_id: str | None
    url: str | None = None
    bounce_class: str | None = None
    """`hard` or `soft` for bounces (and `complaint` is its own type)."""
    user_agent: str | None = None
    ip: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
