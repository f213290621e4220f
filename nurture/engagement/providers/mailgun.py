"""Mailgun webhooks: one JSON object per request, `signature` beside `event-data`.

Authenticity: hex HMAC-SHA256 (key `MAILGUN_WEBHOOK_SIGNING_KEY`) of the signature's
`timestamp` followed by its `token`. The signature does not cover `event-data`, so a token seen
before with other event-data is a forgery: `authenticate_mailgun` returns what the storage
needs to tell (the token, when it was signed, a digest of the event-data) since it keeps no
state itself. Nurture's id comes back in `event-data.user-variables` (set by
`X-Mailgun-Variables`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from nurture.config import Settings
from nurture.engagement.providers import ProviderEvent, WebhookRefused
from nurture.engagement.providers.common import (
    canonical_json,
    check_event_time,
    check_signed_at,
    from_unix,
    load_json,
    message_id_value,
    recipient_address,
    validate,
)
from nurture.models.engagement import EventType

PROVIDER = "mailgun"

SIGNATURE_MAX_AGE = timedelta(minutes=5)
"""Mailgun signs each request afresh (new timestamp and token, retries included), so the window
can be short; it also bounds how long the storage must remember tokens (`expires_at`)."""

EVENT_TYPES: dict[str, EventType] = {
    "accepted": EventType.PROCESSED,
    "rejected": EventType.DROPPED,
    "delivered": EventType.DELIVERED,
    "opened": EventType.OPEN,
    "clicked": EventType.CLICK,
    "complained": EventType.SPAM_COMPLAINT,
    "unsubscribed": EventType.UNSUBSCRIBE,
}
"""Mailgun's `event` → Nurture's type; `failed` depends on its severity (`_failed_type`).
Other events (stored, list events…) are left out, not refused."""


class _Signature(BaseModel):
    timestamp: StrictStr | StrictInt
    token: StrictStr = Field(min_length=1, max_length=255)
    signature: StrictStr = Field(min_length=1, max_length=128)


class _ClientInfo(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    user_agent: StrictStr | None = Field(default=None, alias="user-agent")


class _EventData(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    event: StrictStr
    id: StrictStr = Field(min_length=1, max_length=200)
    timestamp: StrictFloat | StrictInt
    recipient: StrictStr | None = None
    severity: StrictStr | None = None
    reason: StrictStr | None = None
    url: StrictStr | None = None
    ip: StrictStr | None = None
    client_info: _ClientInfo | None = Field(default=None, alias="client-info")
    user_variables: dict[str, Any] = Field(default_factory=dict, alias="user-variables")


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    signature: dict[str, Any] = Field(default_factory=dict)
    event_data: dict[str, Any] = Field(alias="event-data")


@dataclass(frozen=True)
class MailgunSignedToken:
    """What the storage keeps to refuse a replayed token: a token seen before with another
    `event_digest` is a forgery (refuse, 403); with the same one, a redelivery (2xx, no
    change). It may forget the token after `expires_at`, when the signature no longer passes."""

    token: str
    signed_at: datetime
    event_digest: str
    """SHA-256 hex of the event-data in canonical JSON (key order and spacing ignored)."""
    expires_at: datetime


def authenticate_mailgun(
    headers: Mapping[str, str], body: bytes, settings: Settings, *, now: datetime
) -> MailgunSignedToken:
    """Check the request's signature and timestamp; return its token for the replay check.

    Raises `WebhookRefused`: 503 when no signing key is configured, 400 when the body is not a
    JSON object with an `event-data` object, 401 when the `signature` object or its
    timestamp, token or signature is missing, 403 when the signature is wrong or was made
    outside SIGNATURE_MAX_AGE (or more than the clock skew ahead of `now`)."""
    if settings.mailgun_webhook_signing_key is None:
        raise WebhookRefused(503, "MAILGUN_WEBHOOK_SIGNING_KEY is not set")
    request = validate(_Request, load_json(body), "Mailgun request")
    fields = request.signature
    if not all(fields.get(name) for name in ("timestamp", "token", "signature")):
        raise WebhookRefused(401, "signature.timestamp, .token and .signature are required")
    signed = validate(_Signature, fields, "signature")
    timestamp = str(signed.timestamp)
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookRefused(403, "signature.timestamp is not Unix seconds")
    signed_at = from_unix(int(timestamp), "signature.timestamp")
    check_signed_at(signed_at, now, SIGNATURE_MAX_AGE, 403)
    try:
        expected = bytes.fromhex(signed.signature)
    except ValueError:
        raise WebhookRefused(403, "signature.signature is not hex") from None
    mac = hmac.HMAC(settings.mailgun_webhook_signing_key.encode("utf-8"), hashes.SHA256())
    mac.update(timestamp.encode("ascii") + signed.token.encode("utf-8"))
    try:
        mac.verify(expected)  # constant time
    except InvalidSignature:
        raise WebhookRefused(403, "the signature does not match") from None
    return MailgunSignedToken(
        token=signed.token,
        signed_at=signed_at,
        event_digest=event_digest(request.event_data),
        expires_at=signed_at + SIGNATURE_MAX_AGE,
    )


def event_digest(event_data: dict[str, Any]) -> str:
    """SHA-256 hex of event-data in canonical JSON: equal for a redelivery of the same event."""
    return hashlib.sha256(canonical_json(event_data).encode("utf-8")).hexdigest()


def parse_mailgun(body: bytes, *, now: datetime) -> list[ProviderEvent]:
    """The request's event: one `ProviderEvent`, or none for an event Nurture does not track.

    The identity is `event-data.id` with the event's whole second (Mailgun's ids are unique
    within a day). Raises `WebhookRefused(400)` for a body without an `event-data` object, one
    missing `event`, `id` or `timestamp`, or an event more than a day ahead of `now`."""
    request = validate(_Request, load_json(body), "Mailgun request")
    raw = request.event_data
    data = validate(_EventData, raw, "event-data")
    type_, bounce_class = _type(data)
    if type_ is None:
        return []
    occurred_at = check_event_time(
        from_unix(data.timestamp, "event-data.timestamp"), now, "event-data.timestamp"
    )
    return [
        ProviderEvent(
            provider=PROVIDER,
            event_id=f"{data.id}:{int(data.timestamp)}",
            type=type_,
            provider_type=data.event if data.severity is None else f"{data.event}/{data.severity}",
            occurred_at=occurred_at,
            recipient=recipient_address(data.recipient),
            nurture_message_id=message_id_value(data.user_variables.get("nurture_message_id")),
            url=data.url if type_ is EventType.CLICK else None,
            bounce_class=bounce_class,
            user_agent=data.client_info.user_agent if data.client_info else None,
            ip=data.ip,
            raw=raw,
        )
    ]


def _type(data: _EventData) -> tuple[EventType | None, str | None]:
    if data.event != "failed":
        return EVENT_TYPES.get(data.event), None
    if data.severity == "temporary":
        return EventType.DEFERRED, None
    # Permanent (or, in old payloads, unstated). `suppress-*`: Mailgun did not even try, as
    # the address is on its bounce/unsubscribe/complaint list, so nothing bounced.
    if (data.reason or "").startswith("suppress-"):
        return EventType.DROPPED, None
    return EventType.BOUNCE, "hard"
