"""Postmark webhooks: one JSON record per request, its kind in `RecordType`.

Postmark does not sign its requests: the webhook URL is configured with HTTP basic auth
(`POSTMARK_WEBHOOK_USERNAME`/`_PASSWORD`). Bad or missing credentials are answered 401, never
403: a 403 stops Postmark's retries for good, and a misconfiguration on our side must not
lose events. Nurture's id comes back in `Metadata` (set by `X-PM-Metadata-nurture_message_id`).
Records carry no event id; the identity is built from the record (`_event_id`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from nurture.config import Settings
from nurture.engagement.providers import ProviderEvent, WebhookRefused
from nurture.engagement.providers.common import (
    check_event_time,
    digest,
    from_iso,
    header,
    load_json,
    message_id_value,
    recipient_address,
    validate,
)
from nurture.models.engagement import EventType

PROVIDER = "postmark"

RECORD_TYPES: dict[str, EventType] = {
    "Delivery": EventType.DELIVERED,
    "Open": EventType.OPEN,
    "Click": EventType.CLICK,
    "SpamComplaint": EventType.SPAM_COMPLAINT,
}
"""Postmark's `RecordType` → Nurture's type; `Bounce` depends on its `Type` (BOUNCE_TYPES) and
`SubscriptionChange` on `SuppressSending`. Other records (inbound…) are left out."""

BOUNCE_TYPES: dict[str, tuple[EventType, str | None] | None] = {
    "HardBounce": (EventType.BOUNCE, "hard"),
    "BadEmailAddress": (EventType.BOUNCE, "hard"),
    "SoftBounce": (EventType.BOUNCE, "soft"),
    "DnsError": (EventType.BOUNCE, "soft"),
    "Blocked": (EventType.BOUNCE, "soft"),
    "SpamNotification": (EventType.BOUNCE, "soft"),
    "DMARCPolicy": (EventType.BOUNCE, "soft"),
    "Unknown": (EventType.BOUNCE, "soft"),
    "Transient": (EventType.DEFERRED, None),
    "SpamComplaint": (EventType.SPAM_COMPLAINT, None),
    "Unsubscribe": (EventType.UNSUBSCRIBE, None),
    "ManuallyDeactivated": (EventType.DROPPED, None),
    "Unconfirmed": (EventType.DROPPED, None),
    "SMTPApiError": (EventType.DROPPED, None),
    "TemplateRenderingFailed": (EventType.DROPPED, None),
    "Subscribe": None,
    "AutoResponder": None,
    "AddressChange": None,
    "OpenRelayTest": None,
    "VirusNotification": None,
    "ChallengeVerification": None,
    "InboundError": None,
}
"""A Bounce record's `Type` (Postmark's bounce types) → Nurture's type and bounce class.
`Transient` is a delay Postmark still retries; `SoftBounce`, `DnsError`, `Blocked`… ended the
attempt without condemning the address (soft); `None`: not a delivery outcome (an
autoresponder, a subscribe request…), left out. A type Postmark adds later counts as soft."""

TIME_FIELDS = {
    "Delivery": "DeliveredAt",
    "Open": "ReceivedAt",
    "Click": "ReceivedAt",
    "Bounce": "BouncedAt",
    "SpamComplaint": "BouncedAt",
    "SubscriptionChange": "ChangedAt",
}
"""Where each record says when it happened."""

RECIPIENT_FIELDS = {"Bounce": "Email", "SpamComplaint": "Email"}
"""Bounce-like records name the address `Email`; the others `Recipient`."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    record_type: StrictStr = Field(alias="RecordType")
    message_id: StrictStr = Field(alias="MessageID", min_length=1, max_length=100)
    id: StrictInt | None = Field(default=None, alias="ID")
    type: StrictStr | None = Field(default=None, alias="Type")
    recipient: StrictStr | None = Field(default=None, alias="Recipient")
    email: StrictStr | None = Field(default=None, alias="Email")
    original_link: StrictStr | None = Field(default=None, alias="OriginalLink")
    user_agent: StrictStr | None = Field(default=None, alias="UserAgent")
    suppress_sending: StrictBool | None = Field(default=None, alias="SuppressSending")
    metadata: dict[str, Any] | None = Field(default=None, alias="Metadata")


def authenticate_postmark(
    headers: Mapping[str, str], body: bytes, settings: Settings, *, now: datetime
) -> None:
    """Check the request's basic-auth credentials (constant time); return None if they match.

    Raises `WebhookRefused`: 503 when no credentials are configured, 401 when they are missing,
    malformed or wrong (never 403, see the module's docstring)."""
    user, password = settings.postmark_webhook_username, settings.postmark_webhook_password
    if user is None or password is None:
        raise WebhookRefused(503, "POSTMARK_WEBHOOK_USERNAME and _PASSWORD are not set")
    authorization = header(headers, "Authorization") or ""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise WebhookRefused(401, "basic authentication is required")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused(401, "the basic credentials are not base64") from None
    given_user, colon, given_password = given.partition(b":")
    # Both compared whatever the first gives, so the time taken tells nothing.
    user_ok = hmac.compare_digest(given_user, user.encode("utf-8"))
    password_ok = hmac.compare_digest(given_password, password.encode("utf-8"))
    if not (colon and user_ok and password_ok):
        raise WebhookRefused(401, "wrong credentials")


def parse_postmark(body: bytes, *, now: datetime) -> list[ProviderEvent]:
    """The request's record: one `ProviderEvent`, or none for a record Nurture does not track.

    Raises `WebhookRefused(400)` for a body that is not one JSON object with `RecordType` and
    `MessageID`, a tracked record without its time or recipient, or a time more than a day
    ahead of `now`."""
    raw = load_json(body)
    if not isinstance(raw, dict):
        raise WebhookRefused(400, "a Postmark webhook body is one JSON object")
    record = validate(_Record, raw, "Postmark record")
    type_, bounce_class = _type(record)
    if type_ is None:
        return []
    time_field = TIME_FIELDS[record.record_type]
    when = raw.get(time_field)
    if not isinstance(when, str):
        raise WebhookRefused(400, f"Postmark record: {time_field} is required")
    occurred_at = check_event_time(from_iso(when, time_field), now, time_field)
    address = record.email if record.record_type in RECIPIENT_FIELDS else record.recipient
    if not address:
        field = RECIPIENT_FIELDS.get(record.record_type, "Recipient")
        raise WebhookRefused(400, f"Postmark record: {field} is required")
    metadata = record.metadata or {}
    return [
        ProviderEvent(
            provider=PROVIDER,
            event_id=_event_id(record, when),
            type=type_,
            provider_type=record.record_type
            if record.record_type != "Bounce"
            else f"Bounce/{record.type}",
            occurred_at=occurred_at,
            recipient=recipient_address(address),
            nurture_message_id=message_id_value(metadata.get("nurture_message_id")),
            url=record.original_link if type_ is EventType.CLICK else None,
            bounce_class=bounce_class,
            user_agent=record.user_agent,
            ip=_ip(raw),
            raw=raw,
        )
    ]


def _type(record: _Record) -> tuple[EventType | None, str | None]:
    kind = record.record_type
    if kind in RECORD_TYPES:
        return RECORD_TYPES[kind], None
    if kind == "SubscriptionChange":
        if record.suppress_sending is None:
            raise WebhookRefused(400, "Postmark record: SuppressSending is required")
        return (EventType.UNSUBSCRIBE if record.suppress_sending else EventType.RESUBSCRIBE), None
    if kind == "Bounce":
        if not record.type:
            raise WebhookRefused(400, "Postmark record: a Bounce needs its Type")
        mapped = BOUNCE_TYPES.get(record.type, (EventType.BOUNCE, "soft"))
        return mapped if mapped is not None else (None, None)
    return None, None


def _event_id(record: _Record, when: str) -> str:
    """Bounce and spam-complaint records have Postmark's own bounce `ID`; others are named by
    kind, message and a digest of recipient, time as sent (7 fractional digits) and link."""
    if record.record_type in ("Bounce", "SpamComplaint") and record.id is not None:
        return f"{record.record_type}:{record.id}"
    parts = [record.recipient or record.email or "", when, record.original_link or ""]
    return f"{record.record_type}:{record.message_id}:{digest(parts)[:32]}"


def _ip(raw: dict[str, Any]) -> str | None:
    geo = raw.get("Geo")
    if isinstance(geo, dict) and isinstance(geo.get("IP"), str):
        return geo["IP"]
    return None
