"""Claiming due enrollments for the workers: bounded batches, leased, never two takers.

One statement claims a batch: on PostgreSQL the rows are picked with `FOR UPDATE SKIP
LOCKED`, so several dispatchers never take the same row; on SQLite the single writer lock
does the same. A claim is a lease (`claimed_until`): a worker that dies mid-batch leaves
its rows to be claimed again once the lease has passed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from nurture.models import Enrollment, EnrollmentStatus

CLAIM_LEASE = timedelta(minutes=10)
"""How long a claim holds (longer than a sending job may run; see workers.queues)."""

CLAIM_BATCH = 5_000
"""Most rows one claim takes; the dispatcher claims again next tick if more are due."""

DUE = (EnrollmentStatus.SCHEDULED, EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD)


def claim_due(
    session: Session, *, now: datetime, limit: int = CLAIM_BATCH, lease: timedelta = CLAIM_LEASE
) -> list[int]:
    """Claim up to `limit` due enrollments, oldest due first; their ids, in that order."""
    due = (
        select(Enrollment.id)
        .where(
            Enrollment.status.in_(DUE),
            Enrollment.next_due_at <= now,
            or_(Enrollment.claimed_until.is_(None), Enrollment.claimed_until < now),
        )
        .order_by(Enrollment.next_due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # A materialized CTE joined by id: as `id IN (subquery)`, PostgreSQL plans a semi-join
    # that scans every enrollment (bench/dispatch.py); this way only the chosen rows are read.
    chosen = due.cte("due").prefix_with("MATERIALIZED")
    claimed = session.execute(
        update(Enrollment)
        .where(Enrollment.id == chosen.c.id)
        .values(claimed_until=now + lease)
        .returning(Enrollment.id, Enrollment.next_due_at)
        .execution_options(synchronize_session=False)
    ).all()
    return [row.id for row in sorted(claimed, key=lambda r: (r.next_due_at, r.id))]


def due_count(session: Session, *, now: datetime) -> int:
    """How many enrollments are due and unclaimed (for operators and tests)."""
    return session.execute(
        select(func.count()).select_from(Enrollment).where(
            Enrollment.status.in_(DUE), Enrollment.next_due_at <= now,
            or_(Enrollment.claimed_until.is_(None), Enrollment.claimed_until < now),
        )
    ).scalar_one()
