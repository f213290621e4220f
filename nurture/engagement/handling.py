"""Handing stored events on: what runs after the request that stored them has been answered.

A stored event has `handled_at` NULL until `handle_events()` has taken it: it wakes the lead's
branches that wait on engagement and is where scoring (issue #5) plugs in. It only ever takes
unhandled rows (locked, skipping rows another worker holds), so running it twice, or for a
range that holds other requests' events, changes nothing the second time. If Redis loses the
job, `unhandled_ranges()` finds the events again from the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from campaigns.engine import wake_for_lead
from nurture import rollups
from nurture.db import one_of
from nurture.models import EngagementEvent, EventType

WAKING_TYPES = (EventType.OPEN, EventType.CLICK)
"""Engagement that branches wait for (`campaigns.engine._branch`)."""

MAX_RANGE = 1000
"""Most events one sweep range (one job) covers."""

WAITING_LIMIT = 2000
"""Most events `handle_waiting` takes in one transaction."""

WAITING_PARTS = 2
"""Parts of the leads (by id) whose waiting events are handed on side by side (PostgreSQL)."""

WAITING_LOCK = 0x4E555254
"""PostgreSQL advisory lock class of `handle_waiting`'s parts (the second key is the part)."""


@dataclass(frozen=True)
class Handled:
    events: int
    leads: int
    woken: int
    event_ids: tuple[int, ...] = field(default=(), repr=False)
    """The events handed on (still locked by the transaction): what scoring takes next."""

    def counts(self) -> dict[str, int]:
        return {"events": self.events, "leads": self.leads, "woken": self.woken}


_CLAIMED = (EngagementEvent.id, EngagementEvent.lead_id, EngagementEvent.type,
            EngagementEvent.is_machine, EngagementEvent.message_id,
            EngagementEvent.occurred_at, EngagementEvent.collateral_version_id)


def handle_events(session: Session, first_id: int, last_id: int, *, now: datetime) -> Handled:
    """Hand the unhandled events with ids in [first_id, last_id] on; mark them handled."""
    rows = session.execute(
        select(*_CLAIMED)
        .where(EngagementEvent.id.between(first_id, last_id),
               EngagementEvent.handled_at.is_(None))
        .order_by(EngagementEvent.id)
        .with_for_update(skip_locked=True)
    ).all()
    return _hand_on(session, rows, now=now)


Scorer = Callable[[tuple[int, ...]], object]
"""Scores the events of these ids in the caller's transaction, without marking them scored."""


def handle_waiting(session: Session, *, now: datetime, limit: int = WAITING_LIMIT,
                   score: Scorer | None = None) -> Handled:
    """Hand on the oldest unhandled events, up to `limit`, whichever request stored them: a
    job takes everything that waits, so under load the batches grow and what each event costs
    (statements, round trips, a job) is shared by more events. Rows another transaction
    holds are skipped, as in `handle_events`. With `score` (live scoring, given by the job),
    the events are scored in the same transaction and marked handled and scored by one
    statement (each UPDATE writes a new version of every row and of its index entries).

    On PostgreSQL the leads are split into `WAITING_PARTS` parts by id, each taken by one
    transaction at a time (an advisory lock): two workers then score disjoint leads side by
    side, where two batches of all leads would share some and the second would wait for the
    first to commit. A part with nothing waiting passes on to the next free one."""
    if session.get_bind().dialect.name != "postgresql":
        return _hand_on(session, _claim_waiting(session, limit), now=now, score=score)
    for part in range(WAITING_PARTS):
        if not session.execute(select(func.pg_try_advisory_xact_lock(WAITING_LOCK, part))
                               ).scalar_one():
            continue
        rows = _claim_waiting(session, limit, part=part)
        if rows:
            return _hand_on(session, rows, now=now, score=score)
    return Handled(0, 0, 0)


def _claim_waiting(session: Session, limit: int, *, part: int | None = None) -> list[Any]:
    query = (select(*_CLAIMED).where(EngagementEvent.handled_at.is_(None))
             .order_by(EngagementEvent.id).limit(limit).with_for_update(skip_locked=True))
    if part is not None:
        lead_part = func.coalesce(EngagementEvent.lead_id, 0) % WAITING_PARTS
        query = query.where(lead_part == part)
    return list(session.execute(query).all())


def _hand_on(session: Session, rows: list[Any], *, now: datetime,
             score: Scorer | None = None) -> Handled:
    if not rows:
        return Handled(0, 0, 0)
    # scoring (issue #5) takes the same rows here: human engagement only, by lead
    waking = sorted({r.lead_id for r in rows
                     if r.lead_id is not None and r.type in WAKING_TYPES and not r.is_machine})
    woken = sum(wake_for_lead(session, lead_id, now=now) for lead_id in waking)
    rollups.engaged(session, rows)
    ids = tuple(r.id for r in rows)
    marks: dict[str, Any] = {"handled_at": now}
    if score is not None:
        score(ids)
        marks["scored_at"] = func.coalesce(EngagementEvent.scored_at, now)
    session.execute(
        update(EngagementEvent)
        .where(one_of(session, EngagementEvent.id, ids))
        .values(marks)
        .execution_options(synchronize_session=False)
    )
    return Handled(len(rows), len({r.lead_id for r in rows if r.lead_id is not None}), woken,
                   event_ids=ids)


def unhandled_ranges(
    session: Session, *, received_before: datetime, limit: int = 20
) -> list[tuple[int, int]]:
    """Id ranges of events stored before `received_before` and still unhandled (for a sweep)."""
    ids = session.execute(
        select(EngagementEvent.id)
        .where(EngagementEvent.handled_at.is_(None),
               EngagementEvent.received_at < received_before)
        .order_by(EngagementEvent.id)
        .limit(limit * MAX_RANGE)
    ).scalars().all()
    return [(ids[i], ids[min(i + MAX_RANGE, len(ids)) - 1]) for i in range(0, len(ids), MAX_RANGE)]


def count_unhandled(session: Session) -> int:
    return session.execute(
        select(func.count()).select_from(EngagementEvent)
        .where(EngagementEvent.handled_at.is_(None))
    ).scalar_one()
