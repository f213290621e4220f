"""What every provider adapter does the same way: headers, JSON, shapes, times, identities."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nurture.engagement.providers import ProviderEvent, WebhookRefused
from nurture.fields import normalize_email

SIGNATURE_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of our clock a signature's timestamp may be (the sender's clock may run fast)."""

MAX_EVENT_LEAD = timedelta(days=1)
"""An event said to happen further ahead of `now` than this is malformed (refused with 400)."""

MAX_EVENT_ID_LENGTH = 255
"""The storage keeps a provider event identity in 255 characters."""

Model = TypeVar("Model", bound=BaseModel)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by name, case-insensitively (Flask's headers are; a plain dict is not)."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value


def load_json(body: bytes) -> Any:
    """The body as JSON; 400 if it is not UTF-8 JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRefused(400, f"the body is not JSON: {exc}") from None


def validate(model: type[Model], data: Any, what: str) -> Model:
    """`data` as `model`; 400 naming the first problem and where it is."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise WebhookRefused(400, f"{what}: {where}: {first['msg']}") from None


def from_unix(seconds: float, what: str) -> datetime:
    """Unix seconds as an aware UTC datetime; 400 when out of any calendar's range."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookRefused(400, f"{what}: {seconds!r} is not a time") from None


def from_iso(value: str, what: str) -> datetime:
    """An ISO 8601 time with an offset (Postmark's 7 fractional digits too) as aware UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise WebhookRefused(400, f"{what}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise WebhookRefused(400, f"{what}: {value!r} has no time zone")
    return parsed.astimezone(UTC)


def check_event_time(occurred_at: datetime, now: datetime, what: str) -> datetime:
    """Refuse (400) an event time further ahead of `now` than MAX_EVENT_LEAD."""
    if occurred_at > now + MAX_EVENT_LEAD:
        raise WebhookRefused(
            400, f"{what}: {occurred_at.isoformat()} is too far in the future (now {now.isoformat()})"
        )
    return occurred_at


def check_signed_at(signed_at: datetime, now: datetime, max_age: timedelta, status: int) -> None:
    """Refuse a signature older than `max_age` or ahead of `now` by more than the clock skew."""
    if signed_at < now - max_age:
        raise WebhookRefused(status, f"the signature has expired (signed {signed_at.isoformat()})")
    if signed_at > now + SIGNATURE_CLOCK_SKEW:
        raise WebhookRefused(
            status, f"the signature's timestamp is in the future ({signed_at.isoformat()})"
        )


def recipient_address(value: str | None) -> str | None:
    """The address as leads are matched (normalised); kept as given if it is not valid."""
    if value is None or not value.strip():
        return None
    try:
        return normalize_email(value.strip())
    except ValueError:
        return value.strip()


def message_id_value(value: Any) -> str | None:
    """`nurture_message_id` as a string, whatever JSON scalar the provider turned it into."""
    if isinstance(value, list):  # SES tags: a list of values
        value = value[0] if value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text or None
    return None


def canonical_json(value: Any) -> str:
    """One text per JSON value, whatever the key order or spacing it arrived with."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(parts: Iterable[str]) -> str:
    """A stable hex digest of some strings (for composite identities)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def first_of_each(events: Iterable[ProviderEvent]) -> list[ProviderEvent]:
    """The events in order, a repeated `event_id` dropped after its first occurrence.

    A batch is signed whole, so a repeat inside it is the provider's own duplicate; the
    storage would drop it anyway on (provider, event_id)."""
    seen: set[str] = set()
    kept = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            kept.append(event)
    return kept
