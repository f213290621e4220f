"""The SLA's timers, enforced from the database: no job waits in Redis for a lead.

Two kinds of timer live on the handoff row, each with a partial index: `next_sla_at` of an
open handoff (the rep's first-action window and each escalation step) and `stalls_at` of an
accepted one (how long sales may hold a lead with no opportunity). `fire_due_timers` claims
due rows with `FOR UPDATE SKIP LOCKED` (on SQLite the one writer lock serialises callers),
fires each in the claiming transaction and moves or clears its due time, so however many
dispatchers and workers run at once, each timer fires once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from nurture.handoffs.policy import DEFAULT_POLICY, RecyclePolicy
from nurture.handoffs.services import fire_sla_timer, return_to_nurture
from nurture.models import Handoff, HandoffStatus, RejectionReason

BATCH = 100
"""Timers fired in one transaction (a job loops until none is due)."""


@dataclass(frozen=True)
class Fired:
    escalations: int = 0
    """Open handoffs whose window lapsed: reminded, reassigned or expired."""
    stalls: int = 0
    """Accepted leads returned to nurture as `stalled_in_sales`."""

    def __bool__(self) -> bool:
        return bool(self.escalations or self.stalls)


def due_any(session: Session, *, now: datetime) -> bool:
    """Whether any timer is due (two index lookups): the dispatcher's cheap question."""
    open_due = select(Handoff.id).where(Handoff.status == HandoffStatus.OPEN,
                                        Handoff.next_sla_at <= now).limit(1)
    stalled = select(Handoff.id).where(Handoff.status == HandoffStatus.ACCEPTED,
                                       Handoff.stalls_at <= now).limit(1)
    return (session.execute(open_due).first() is not None
            or session.execute(stalled).first() is not None)


def _claim(session: Session, where: Sequence[ColumnElement[bool]], order: Any,
           limit: int) -> list[Handoff]:
    if session.get_bind().dialect.name == "sqlite":  # a write first takes the writer lock
        session.execute(update(Handoff).where(*where).values(escalations=Handoff.escalations)
                        .execution_options(synchronize_session=False))
    return list(session.execute(
        select(Handoff).where(*where).order_by(order).limit(limit)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)
    ).scalars())


def fire_due_timers(session: Session, *, now: datetime, limit: int = BATCH,
                    policy: RecyclePolicy = DEFAULT_POLICY) -> Fired:
    """Claim and fire up to `limit` due timers of each kind; the caller commits."""
    escalations = 0
    for handoff in _claim(session, [Handoff.status == HandoffStatus.OPEN,
                                    Handoff.next_sla_at <= now], Handoff.next_sla_at, limit):
        fire_sla_timer(session, handoff, now=now, policy=policy)
        escalations += 1
    stalls = 0
    for handoff in _claim(session, [Handoff.status == HandoffStatus.ACCEPTED,
                                    Handoff.stalls_at <= now], Handoff.stalls_at, limit):
        stall(session, handoff, now=now)
        stalls += 1
    return Fired(escalations, stalls)


def stall(session: Session, handoff: Handoff, *, now: datetime) -> None:
    """An accepted lead with no opportunity by its stall time goes back to nurture."""
    return_to_nurture(
        session, handoff, HandoffStatus.STALLED, RejectionReason.STALLED_IN_SALES,
        f"accepted {handoff.closed_at.isoformat() if handoff.closed_at else ''} with no "
        "opportunity within the SLA", now=now)
