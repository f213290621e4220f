"""Storing engagement events: a whole batch in the caller's transaction, each event once.

`store_events()` is the one way events get in (provider webhooks, Nurture's tracking links,
the events API). A batch costs a fixed number of statements whatever its size: one query
matches messages by `nurture_message_id`, one matches leads by address, one multi-row
`INSERT … ON CONFLICT DO NOTHING RETURNING` stores the new events (a redelivered event is
skipped by the unique (source, source_event_id)), and only events new in this batch add
suppressions. Nothing here commits: the caller commits, then answers, then hands the stored
range to scoring (`handle_events()`, run by an RQ job).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    Text,
    any_,
    bindparam,
    cast,
    func,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from nurture.db import insert_ignoring_conflicts
from nurture.engagement import machine
from nurture.errors import InvalidInput
from nurture.fields import normalize_email
from nurture.models import (
    LIVE_ENROLLMENT,
    EngagementEvent,
    Enrollment,
    EventType,
    Lead,
    Message,
    Suppression,
    SuppressionReason,
)

MAX_FUTURE = timedelta(days=1)
"""An event may say it happened this far after our clock; further is refused (the provider
adapters refuse the same, `providers.common.MAX_EVENT_LEAD`)."""

MAX_USER_AGENT = 512
"""Longest user agent kept with an event."""

SUPPRESSING = {
    EventType.SPAM_COMPLAINT: SuppressionReason.COMPLAINT,
    EventType.UNSUBSCRIBE: SuppressionReason.UNSUBSCRIBED,
}
"""Event types that put the address on the suppression list (and hard bounces)."""

TABLE = EngagementEvent.__table__

COLUMNS = ("lead_id", "message_id", "type", "occurred_at", "received_at", "source",
           "source_event_id", "url", "collateral_version_id", "bounce_class", "is_machine",
           "machine_reason", "properties", "handled_at")
"""The columns an ingested event fills."""

RECORDSET_INSERT = text(
    "INSERT INTO engagement_events ({columns}) SELECT {columns} "
    "FROM json_populate_recordset(NULL::engagement_events, CAST(:rows AS json)) "
    "ON CONFLICT (source, source_event_id) DO NOTHING RETURNING id, source, source_event_id"
    .format(columns=", ".join(COLUMNS))
)
"""PostgreSQL: a whole batch as one JSON parameter, one short statement whatever its size (a
VALUES list of 14,000 placeholders, or arrays of escaped text, cost more to build and parse
than the insert itself)."""


@dataclass(slots=True)  # not frozen: a frozen dataclass costs twice as much to build
class IncomingEvent:
    """One event to store, from any source. `source_event_id` is the dedupe key in `source`
    (None: never a duplicate, e.g. an open of our pixel); the lead is `lead_id`, else the
    lead of the message (`message_id`, or `nurture_message_id`), else the lead with `email`."""

    source: str
    source_event_id: str | None
    type: EventType
    occurred_at: datetime
    email: str | None = None
    lead_id: int | None = None
    message_id: int | None = None
    nurture_message_id: str | None = None
    url: str | None = None
    collateral_version_id: int | None = None
    bounce_class: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    machine_hint: str | None = None
    """The provider's own verdict that a bot made it (`machine.provider_bot`)."""
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stored:
    """What a batch did: new events and duplicates (already stored, or repeated in the batch)."""

    accepted: int
    duplicates: int
    event_ids: tuple[int, ...] = ()
    lead_ids: frozenset[int] = frozenset()
    suppressed: tuple[str, ...] = ()

    @property
    def id_range(self) -> tuple[int, int] | None:
        """(first, last) id of the new events: what `handle_events()` is given."""
        return (min(self.event_ids), max(self.event_ids)) if self.event_ids else None


@dataclass
class _Message:
    id: int
    lead_id: int
    to_address: str
    sent_at: datetime | None
    links_json: str | None

    @cached_property
    def links(self) -> dict[str, Any]:
        links = json.loads(self.links_json) if self.links_json not in (None, "", "{}") else {}
        return links if isinstance(links, dict) else {}


def store_events(session: Session, events: Sequence[IncomingEvent], *, now: datetime) -> Stored:
    """Store the batch's new events; refuse the whole batch (`InvalidInput`) if any is wrong.

    Refused: a time more than `MAX_FUTURE` ahead, one event id given twice with different
    content, a `lead_id` that does not exist. An event that matches no lead is stored with
    no lead (unmatched), not refused.
    """
    unique, repeated = _deduplicate(events, now)
    messages = _messages(session, unique)
    leads_by_email = _leads_by_email(session, unique, messages)
    _check_lead_ids(session, unique)

    rows: list[dict[str, Any]] = []
    addresses: list[str | None] = []
    for event in unique:
        message = _message_of(event, messages)
        email = _normalized(event.email)
        lead_id = event.lead_id or (message.lead_id if message else None)
        if lead_id is None and email is not None:
            lead_id = leads_by_email.get(email)
        rows.append(_row(event, message, lead_id, now))
        addresses.append(email or (message.to_address if message else None))
    _flag_bursts(session, unique, rows, messages)

    stored = _insert(session, unique, rows)
    new_rows = [(row, address) for row, address, new in zip(rows, addresses, stored, strict=True)
                if new is not None]
    suppressed = _suppress(session, new_rows, now)
    ids = tuple(new for new in stored if new is not None)
    return Stored(
        accepted=len(ids),
        duplicates=repeated + len(unique) - len(ids),
        event_ids=ids,
        lead_ids=frozenset(row["lead_id"] for row, _ in new_rows if row["lead_id"] is not None),
        suppressed=suppressed,
    )


def _deduplicate(
    events: Sequence[IncomingEvent], now: datetime
) -> tuple[list[IncomingEvent], int]:
    """The batch without exact repeats, and how many repeats there were; refuses bad events."""
    errors: dict[str, list[str]] = {}
    seen: dict[tuple[str, str], IncomingEvent] = {}
    unique: list[IncomingEvent] = []
    for index, event in enumerate(events):
        if event.occurred_at > now + MAX_FUTURE:
            errors[f"events[{index}].occurred_at"] = [
                f"more than {MAX_FUTURE} in the future ({event.occurred_at.isoformat()})"]
            continue
        if event.source_event_id is None:
            unique.append(event)
            continue
        key = (event.source, event.source_event_id)
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = event
            unique.append(event)
        elif earlier != event:
            errors[f"events[{index}].id"] = [
                f"{event.source_event_id!r} is given twice in this batch with different content"]
    if errors:
        raise InvalidInput("the batch is refused; nothing was stored", errors)
    return unique, len(events) - len(unique)


def _messages(session: Session, events: list[IncomingEvent]) -> dict[Any, _Message]:
    """Messages the batch names, in one query: keyed by id and by nurture_message_id."""
    ids = {e.message_id for e in events if e.message_id is not None}
    names = {e.nurture_message_id for e in events
             if e.message_id is None and e.nurture_message_id}
    if not ids and not names:
        return {}
    conditions = []
    if ids:
        conditions.append(_one_of(session, Message.id, ids, BigInteger()))
    if names:
        conditions.append(_one_of(session, Message.message_id, names, String()))
    # links (what a click pointed to) as text, parsed only for a click that needs them
    clicks = any(e.type is EventType.CLICK for e in events)
    links = cast(Message.links, Text) if clicks else null()
    found: dict[Any, _Message] = {}
    for id_, name, lead_id, to_address, sent_at, links_json in session.connection().execute(
        select(Message.id, Message.message_id, Message.lead_id, Message.to_address,
               Message.sent_at, links.label("links")).where(or_(*conditions))
    ):
        message = _Message(id_, lead_id, to_address, sent_at, links_json)
        found[("id", id_)] = message
        found[("name", name)] = message
    return found


def _message_of(event: IncomingEvent, messages: dict[Any, _Message]) -> _Message | None:
    if event.message_id is not None:
        return messages.get(("id", event.message_id))
    if event.nurture_message_id:
        return messages.get(("name", event.nurture_message_id))
    return None


def _leads_by_email(
    session: Session, events: list[IncomingEvent], messages: dict[Any, _Message]
) -> dict[str, int]:
    """Leads of the events no message or lead id matched, by address, in one query."""
    wanted = set()
    for event in events:
        if event.lead_id is None and _message_of(event, messages) is None:
            email = _normalized(event.email)
            if email is not None:
                wanted.add(email)
    if not wanted:
        return {}
    return dict(session.execute(
        select(Lead.email, Lead.id).where(_one_of(session, Lead.email, wanted, String()))
    ).tuples().all())


def _check_lead_ids(session: Session, events: list[IncomingEvent]) -> None:
    ids = {e.lead_id for e in events if e.lead_id is not None}
    if not ids:
        return
    known = set(session.execute(select(Lead.id).where(Lead.id.in_(ids))).scalars())
    errors = {f"events[{i}].lead_id": ["no such lead"]
              for i, e in enumerate(events) if e.lead_id is not None and e.lead_id not in known}
    if errors:
        raise InvalidInput("the batch is refused; nothing was stored", errors)


def _normalized(email: str | None) -> str | None:
    if not email:
        return None
    try:
        return normalize_email(email)
    except ValueError:
        return email.strip().lower() or None


def _row(
    event: IncomingEvent, message: _Message | None, lead_id: int | None, now: datetime
) -> dict[str, Any]:
    properties = dict(event.properties)
    if event.user_agent:
        properties["user_agent"] = event.user_agent[:MAX_USER_AGENT]
    if event.ip:
        properties["ip"] = event.ip
    if event.email and lead_id is None:
        properties.setdefault("email", event.email)  # kept to match an unmatched event later
    if event.nurture_message_id and message is None:
        properties.setdefault("nurture_message_id", event.nurture_message_id)
    reason = machine.single_event_reason(event.type, event.user_agent, event.ip,
                                         event.machine_hint)
    return {
        "lead_id": lead_id,
        "message_id": message.id if message else None,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "source": event.source,
        "source_event_id": event.source_event_id,
        "url": event.url,
        "collateral_version_id": event.collateral_version_id or _collateral(event, message),
        "bounce_class": event.bounce_class,
        "is_machine": reason is not None,
        "machine_reason": reason,
        "properties": properties,
        "handled_at": None,
    }


def _collateral(event: IncomingEvent, message: _Message | None) -> int | None:
    """The collateral a provider-tracked click pointed to: the message's link with that URL."""
    if event.type is not EventType.CLICK or message is None or not event.url:
        return None
    for link in message.links.values():
        if isinstance(link, dict) and link.get("url") == event.url:
            return link.get("collateral_version_id")
    return None


def _flag_bursts(
    session: Session, events: list[IncomingEvent], rows: list[dict[str, Any]],
    messages: dict[Any, _Message],
) -> None:
    """Rule 4 of `machine`: flag the batch's clicks in a burst, and stored clicks that join it."""
    clicks = [machine.Click(("new", i), row["message_id"], row["url"], row["occurred_at"])
              for i, row in enumerate(rows)
              if row["type"] is EventType.CLICK and row["message_id"] is not None]
    if not clicks:
        return
    message_ids = {c.message_id for c in clicks}
    earliest = min(c.at for c in clicks) - machine.BURST_WINDOW
    latest = max(c.at for c in clicks) + machine.BURST_WINDOW
    stored = session.execute(
        select(EngagementEvent.id, EngagementEvent.message_id, EngagementEvent.url,
               EngagementEvent.occurred_at, EngagementEvent.is_machine)
        .where(_one_of(session, EngagementEvent.message_id, message_ids, BigInteger()),
               EngagementEvent.type == EventType.CLICK,
               EngagementEvent.occurred_at.between(earliest, latest))
    ).all()
    clicks += [machine.Click(("stored", r.id), r.message_id, r.url, r.occurred_at)
               for r in stored]
    sent_at = {m.id: m.sent_at for m in messages.values()}
    flagged = machine.link_bursts(clicks, sent_at)
    for kind, key in flagged:
        if kind == "new" and not rows[key]["is_machine"]:
            rows[key]["is_machine"] = True
            rows[key]["machine_reason"] = "link_burst"
    earlier = [key for kind, key in flagged if kind == "stored"]
    if earlier:
        session.execute(
            update(EngagementEvent)
            .where(EngagementEvent.id.in_(earlier), EngagementEvent.is_machine.is_(False))
            .values(is_machine=True, machine_reason="link_burst")
        )


def _insert(
    session: Session, events: list[IncomingEvent], rows: list[dict[str, Any]]
) -> list[int | None]:
    """Insert the rows, skipping stored (source, source_event_id); each row's new id or None."""
    if not rows:
        return []
    statement = insert_ignoring_conflicts(
        session, TABLE, index_elements=["source", "source_event_id"]
    ).returning(TABLE.c.id, TABLE.c.source, TABLE.c.source_event_id)
    # in key order, so that concurrent batches sharing events (redeliveries) take the unique
    # index's locks in the same order and never deadlock
    ordered = sorted(rows, key=lambda row: (row["source"], row["source_event_id"] or ""))
    if session.get_bind().dialect.name == "postgresql":
        returned = session.execute(RECORDSET_INSERT, {"rows": _json_rows(ordered)}).all()
    else:  # one multi-row statement per 1,000 rows (SQLAlchemy's insertmanyvalues)
        returned = session.connection().execute(statement, ordered).all()
    by_identity = {(r.source, r.source_event_id): r.id for r in returned
                   if r.source_event_id is not None}
    anonymous = iter(sorted(r.id for r in returned if r.source_event_id is None))
    return [by_identity.get((e.source, e.source_event_id)) if e.source_event_id is not None
            else next(anonymous) for e in events]


def _suppress(
    session: Session, new_rows: list[tuple[dict[str, Any], str | None]], now: datetime
) -> tuple[str, ...]:
    """Hard bounces, complaints and unsubscribes suppress the address and stop its nurture."""
    wanted: dict[str, tuple[SuppressionReason, str]] = {}
    for row, address in new_rows:
        if address is None:
            continue
        reason = SUPPRESSING.get(row["type"])
        if row["type"] is EventType.BOUNCE and row["bounce_class"] == "hard":
            reason = SuppressionReason.HARD_BOUNCE
        if reason is not None and address not in wanted:
            wanted[address] = (reason, f"{row['source']} {row['type'].value}")
    if not wanted:
        return ()
    table = Suppression.__table__
    inserted = session.connection().execute(
        insert_ignoring_conflicts(session, table, index_elements=["email"])
        .returning(table.c.email),
        [{"email": email, "reason": reason, "source": source, "created_at": now}
         for email, (reason, source) in sorted(wanted.items())],  # in key order: no deadlock
    ).scalars().all()
    if inserted:
        # every sequence of those leads exits now, not when its next step comes due
        session.execute(
            update(Enrollment)
            .where(Enrollment.lead_id.in_(select(Lead.id).where(Lead.email.in_(inserted))),
                   Enrollment.status.in_(LIVE_ENROLLMENT))
            .values(next_due_at=now)
        )
    return tuple(inserted)


def _json_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as one JSON array of objects, values as PostgreSQL reads them back."""
    return json.dumps([
        row | {"type": row["type"].value,
               "occurred_at": row["occurred_at"].astimezone(UTC).isoformat(),
               "received_at": row["received_at"].astimezone(UTC).isoformat()}
        for row in rows
    ], separators=(",", ":"))


def _one_of(session: Session, column: Any, values: Any, element_type: Any) -> Any:
    """`column IN values`; on PostgreSQL the values are one JSON parameter, not one each."""
    if session.get_bind().dialect.name == "postgresql":
        elements = func.jsonb_array_elements_text(
            cast(bindparam(None, json.dumps(list(values)), type_=String()), JSONB))
        # = ANY(ARRAY(SELECT …)): the array is computed once and each value found by index
        # (an IN (SELECT …) semi-join was planned as a scan of the whole table)
        return column == any_(func.array(select(cast(elements, element_type)).scalar_subquery()))
    return column.in_(values)
