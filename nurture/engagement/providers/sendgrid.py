"""SendGrid (Twilio) Event Webhook: signed JSON array batches.

Authenticity: ECDSA P-256 with SHA-256 over the bytes of the timestamp header followed by the
raw body, signature in base64 DER; the key is the base64 DER (SPKI) key SendGrid shows, parsed
into `Settings.sendgrid_webhook_public_key`. Custom arguments (`unique_args`/`custom_args`,
where Nurture puts `nurture_message_id`) come back as top-level keys of each event.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from nurture.config import Settings
from nurture.engagement.providers import ProviderEvent, WebhookRefused
from nurture.engagement.providers.common import (
    MAX_EVENT_ID_LENGTH,
    canonical_json,
    check_event_time,
    check_signed_at,
    digest,
    first_of_each,
    from_unix,
    header,
    load_json,
    message_id_value,
    recipient_address,
    validate,
)
from nurture.models.engagement import EventType

PROVIDER = "sendgrid"

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

SIGNATURE_MAX_AGE = timedelta(hours=25)
"""SendGrid retries for 24 hours and does not say whether a retry is signed afresh: a shorter
window could refuse genuine retries. The signature covers the body and `sg_event_id` dedupes,
so a replay inside the window changes nothing."""

EVENT_TYPES: dict[str, EventType] = {
    "processed": EventType.PROCESSED,
    "deferred": EventType.DEFERRED,
    "delivered": EventType.DELIVERED,
    "open": EventType.OPEN,
    "click": EventType.CLICK,
    "bounce": EventType.BOUNCE,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.SPAM_COMPLAINT,
    "unsubscribe": EventType.UNSUBSCRIBE,
    "group_unsubscribe": EventType.UNSUBSCRIBE,
    "group_resubscribe": EventType.RESUBSCRIBE,
}
"""SendGrid's `event` → Nurture's type. Other events (account status changes, types added
later) are left out rather than refused: refusing would have SendGrid retry the whole batch."""

BOUNCE_CLASSES = {"bounce": "hard", "blocked": "soft", "expired": "soft"}
"""A bounce's `type`: `bounce` is a permanent refusal, `blocked` a temporary one, `expired`
the end of deferrals; another or none counts as hard."""


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")

    event: StrictStr
    email: StrictStr
    timestamp: StrictInt | StrictFloat
    sg_event_id: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_EVENT_ID_LENGTH)
    sg_message_id: StrictStr | None = None
    url: StrictStr | None = None
    useragent: StrictStr | None = None
    ip: StrictStr | None = None
    type: StrictStr | None = None


@lru_cache(maxsize=4)
def _public_key(der: bytes) -> ec.EllipticCurvePublicKey:
    key = load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey):  # config.py checked it; keep mypy honest
        raise TypeError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an EC key")
    return key


def authenticate_sendgrid(
    headers: Mapping[str, str], body: bytes, settings: Settings, *, now: datetime
) -> None:
    """Check the request's signature and its timestamp; return None if it is SendGrid's.

    Raises `WebhookRefused`: 503 when no key is configured, 401 when a signature header is
    missing, 403 when the signature is malformed, wrong (another key, another body, another
    timestamp) or signed outside SIGNATURE_MAX_AGE (or more than the clock skew ahead)."""
    if settings.sendgrid_webhook_public_key is None:
        raise WebhookRefused(503, "SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
    signature_b64 = header(headers, SIGNATURE_HEADER)
    timestamp = header(headers, TIMESTAMP_HEADER)
    if not signature_b64 or not timestamp:
        raise WebhookRefused(401, f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookRefused(403, f"{TIMESTAMP_HEADER} is not Unix seconds")
    check_signed_at(from_unix(int(timestamp), TIMESTAMP_HEADER), now, SIGNATURE_MAX_AGE, 403)
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused(403, f"{SIGNATURE_HEADER} is not base64") from None
    key = _public_key(settings.sendgrid_webhook_public_key)
    try:
        key.verify(signature, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise WebhookRefused(403, "the signature does not match the body") from None


def parse_sendgrid(body: bytes, *, now: datetime) -> list[ProviderEvent]:
    """The batch's events, in order, each `sg_event_id` once (a repeat in the batch dropped).

    Events of types Nurture does not track are left out. An event without `sg_event_id`
    (older payloads) gets a digest of its own JSON as identity, stable across retries.
    Raises `WebhookRefused(400)` for a body that is not a JSON array of event objects, an event
    missing `event`, `email` or `timestamp`, or one dated more than a day ahead of `now`."""
    data = load_json(body)
    if not isinstance(data, list):
        raise WebhookRefused(400, "a SendGrid batch is a JSON array of events")
    events = []
    for index, item in enumerate(data):
        event = validate(_Event, item, f"event {index}")
        type_ = EVENT_TYPES.get(event.event)
        if type_ is None:
            continue
        assert isinstance(item, dict)
        events.append(_provider_event(event, type_, item, index, now))
    return first_of_each(events)


def _provider_event(
    event: _Event, type_: EventType, raw: dict[str, Any], index: int, now: datetime
) -> ProviderEvent:
    what = f"event {index}"
    occurred_at = check_event_time(from_unix(event.timestamp, f"{what}.timestamp"), now, what)
    event_id = event.sg_event_id or "digest:" + digest([canonical_json(raw)])
    bounce_class = None
    if type_ is EventType.BOUNCE:
        bounce_class = BOUNCE_CLASSES.get(event.type or "bounce", "hard")
    return ProviderEvent(
        provider=PROVIDER,
        event_id=event_id,
        type=type_,
        provider_type=event.event if event.type is None else f"{event.event}/{event.type}",
        occurred_at=occurred_at,
        recipient=recipient_address(event.email),
        nurture_message_id=_nurture_message_id(raw),
        url=event.url if type_ is EventType.CLICK else None,
        bounce_class=bounce_class,
        user_agent=event.useragent,
        ip=event.ip,
        raw=raw,
    )


def _nurture_message_id(raw: dict[str, Any]) -> str | None:
    """Custom args are top-level keys; some integrations nest them, so look there too."""
    found = message_id_value(raw.get("nurture_message_id"))
    if found:
        return found
    for nest in ("unique_args", "custom_args"):
        inner = raw.get(nest)
        if isinstance(inner, dict):
            found = message_id_value(inner.get("nurture_message_id"))
            if found:
                return found
    return None
