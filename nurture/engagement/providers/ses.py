"""Amazon SES event publishing records, as carried in an SNS Notification's `Message`.

Records of a configuration set's event destination name their kind in `eventType` (Send,
Delivery, Open, Click, Bounce, Complaint, Reject, Rendering Failure, DeliveryDelay,
Subscription); the older identity notifications name it in `notificationType` (Bounce,
Complaint, Delivery) and carry no tags. Nurture's id comes back as the message tag
`nurture_message_id` in `mail.tags` (set by `X-SES-MESSAGE-TAGS`), or as a link tag of a click.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from nurture.engagement.providers import ProviderEvent, WebhookRefused
from nurture.engagement.providers.common import (
    check_event_time,
    from_iso,
    message_id_value,
    recipient_address,
    validate,
)
from nurture.engagement.providers.sns import SnsMessage
from nurture.models.engagement import EventType

PROVIDER = "ses"

EVENT_TYPES: dict[str, tuple[EventType, str | None]] = {
    "Send": (EventType.PROCESSED, None),
    "Delivery": (EventType.DELIVERED, "delivery"),
    "Open": (EventType.OPEN, "open"),
    "Click": (EventType.CLICK, "click"),
    "Bounce": (EventType.BOUNCE, "bounce"),
    "Complaint": (EventType.SPAM_COMPLAINT, "complaint"),
    "Reject": (EventType.DROPPED, None),
    "Rendering Failure": (EventType.DROPPED, None),
    "DeliveryDelay": (EventType.DEFERRED, "deliveryDelay"),
    "Subscription": (EventType.UNSUBSCRIBE, "subscription"),
}
"""SES's event type → Nurture's type and the record's object that holds the event's own time
(None: the time is the mail's). A Subscription becomes unsubscribe or resubscribe by its new
preferences; a Permanent bounce of a suppressed address becomes dropped."""

RECIPIENT_LISTS = {
    "Delivery": ("delivery", "recipients"),
    "Bounce": ("bounce", "bouncedRecipients"),
    "Complaint": ("complaint", "complainedRecipients"),
    "DeliveryDelay": ("deliveryDelay", "delayedRecipients"),
}
"""Events about some of the mail's recipients list them here: one event per recipient."""

BOUNCE_CLASSES = {"Permanent": "hard", "Transient": "soft", "Undetermined": "soft"}

SUPPRESSED_SUBTYPES = ("Suppressed", "OnAccountSuppressionList")
"""Permanent bounces SES reports without trying: the address is on a suppression list."""

IGNORED_NOTIFICATIONS = ("AmazonSnsSubscriptionSucceeded",)
"""What SES says when a topic is set up, not about any mail."""


class _Mail(BaseModel):
    model_config = ConfigDict(extra="allow")

    timestamp: StrictStr
    messageId: StrictStr
    destination: list[StrictStr] = Field(default_factory=list)
    tags: dict[str, list[StrictStr]] = Field(default_factory=dict)


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    eventType: StrictStr | None = None
    notificationType: StrictStr | None = None
    mail: _Mail


def parse_ses(message: SnsMessage, *, now: datetime) -> list[ProviderEvent]:
    """The SES events of an authenticated SNS message (none for the two confirmation types).

    Identity: the SNS `MessageId` (stable across SNS retries), with `:<n>` when the record
    names several recipients (one event each). A `Message` that is not JSON (SES's "Successfully
    validated SNS topic…" when a destination is set up) and records of kinds Nurture does not
    track give no events. Raises `WebhookRefused(400)` for a record of a tracked kind without
    its `mail`, its times or recipients, or dated more than a day ahead of `now`."""
    if message.type != "Notification":
        return []
    try:
        raw = json.loads(message.message)
    except ValueError:
        return []
    if not isinstance(raw, dict):
        raise WebhookRefused(400, "the SNS Message is JSON but not an SES event record")
    kind = raw.get("eventType") or raw.get("notificationType")
    if not isinstance(kind, str):
        raise WebhookRefused(400, "the SES record has no eventType")
    if kind in IGNORED_NOTIFICATIONS or kind not in EVENT_TYPES:
        return []
    record = validate(_Record, raw, "SES record")
    type_, detail_name = EVENT_TYPES[kind]
    detail = raw.get(detail_name) if detail_name else None
    if detail_name and not isinstance(detail, dict):
        raise WebhookRefused(400, f"SES record: a {kind} needs its {detail_name!r} object")
    detail = detail or {}
    when = detail.get("timestamp", record.mail.timestamp) if detail_name else record.mail.timestamp
    if not isinstance(when, str):
        raise WebhookRefused(400, f"SES record: {detail_name}.timestamp is not a string")
    occurred_at = check_event_time(from_iso(when, "SES event time"), now, "SES event time")
    type_, bounce_class = _refine(kind, type_, detail)
    recipients = _recipients(kind, raw, record.mail)
    nurture_id = _nurture_message_id(record.mail, detail if kind == "Click" else {})
    events = []
    for index, recipient in enumerate(recipients):
        events.append(
            ProviderEvent(
                provider=PROVIDER,
                event_id=message.message_id if len(recipients) == 1
                else f"{message.message_id}:{index}",
                type=type_,
                provider_type=kind,
                occurred_at=occurred_at,
                recipient=recipient_address(recipient),
                nurture_message_id=nurture_id,
                url=detail.get("link") if kind == "Click" else None,
                bounce_class=bounce_class,
                user_agent=detail.get("userAgent") if kind in ("Open", "Click") else None,
                ip=detail.get("ipAddress") if kind in ("Open", "Click") else None,
                raw=raw,
            )
        )
    return events


def _refine(
    kind: str, type_: EventType, detail: dict[str, Any]
) -> tuple[EventType, str | None]:
    if kind == "Bounce":
        bounce_type = detail.get("bounceType")
        if bounce_type == "Permanent" and detail.get("bounceSubType") in SUPPRESSED_SUBTYPES:
            return EventType.DROPPED, None
        return EventType.BOUNCE, BOUNCE_CLASSES.get(str(bounce_type), "soft")
    if kind == "Subscription":
        new = detail.get("newTopicPreferences")
        if not isinstance(new, dict):
            raise WebhookRefused(400, "SES record: subscription.newTopicPreferences is required")
        statuses = new.get("topicSubscriptionStatus") or []
        opted_out = any(
            isinstance(s, dict) and s.get("subscriptionStatus") == "OptOut" for s in statuses
        )
        if new.get("unsubscribeAll") is True or opted_out:
            return EventType.UNSUBSCRIBE, None
        return EventType.RESUBSCRIBE, None
    return type_, None


def _recipients(kind: str, raw: dict[str, Any], mail: _Mail) -> list[str | None]:
    """One entry per event: the recipients the record is about, else the mail's one address
    (None when the mail had several, as an open or a click does not say whose it is)."""
    if kind in RECIPIENT_LISTS:
        detail_name, list_name = RECIPIENT_LISTS[kind]
        listed = raw[detail_name].get(list_name)
        if not isinstance(listed, list) or not listed:
            raise WebhookRefused(400, f"SES record: {detail_name}.{list_name} is required")
        addresses: list[str | None] = []
        for entry in listed:
            address = entry.get("emailAddress") if isinstance(entry, dict) else entry
            if not isinstance(address, str):
                raise WebhookRefused(400, f"SES record: {detail_name}.{list_name} has no address")
            addresses.append(address)
        return addresses
    return [mail.destination[0] if len(mail.destination) == 1 else None]


def _nurture_message_id(mail: _Mail, click: dict[str, Any]) -> str | None:
    found = message_id_value(mail.tags.get("nurture_message_id"))
    if found is None and isinstance(click.get("linkTags"), dict):
        found = message_id_value(click["linkTags"].get("nurture_message_id"))
    return found
