"""Claiming due enrollments: bounded, leased, and never the same row to two claimers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from campaigns.dispatch import claim_due, due_count
from nurture.models import Enrollment, EnrollmentStatus, Lead, Sequence, SequenceVersion

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def seed(db, count: int) -> None:
    with db.session_scope() as session:
        sequence = Sequence(key="s", name="s", status="active", priority=1, created_at=NOW,
                            updated_at=NOW)
        session.add(sequence)
        session.flush()
        version = SequenceVersion(sequence_id=sequence.id, version=1, document={}, created_at=NOW)
        session.add(version)
        session.flush()
        session.execute(insert(Lead), [
            {"email": f"l{i}@example.com", "attributes": {}, "lifecycle_stage": "nurturing",
             "created_at": NOW, "updated_at": NOW} for i in range(count)
        ])
        session.flush()
        session.execute(insert(Enrollment), [
            {"lead_id": i + 1, "sequence_id": sequence.id, "version_id": version.id,
             "status": EnrollmentStatus.ACTIVE, "step_id": "a", "enrolled_at": NOW,
             # half due now (oldest first), half due tomorrow
             "next_due_at": NOW - timedelta(seconds=i) if i % 2 == 0 else NOW + timedelta(days=1)}
            for i in range(count)
        ])


def test_claims_take_due_rows_oldest_first_and_hold_them_for_the_lease(db):
    seed(db, 40)  # due: ids 1, 3, …, 39; the larger the id, the earlier it was due
    with db.session_scope() as session:
        first = claim_due(session, now=NOW, limit=5, lease=timedelta(minutes=10))
    assert first == [39, 37, 35, 33, 31]
    with db.session_scope() as session:
        rest = claim_due(session, now=NOW + timedelta(minutes=1), limit=100)
        assert due_count(session, now=NOW + timedelta(minutes=1)) == 0
    assert rest == list(range(29, 0, -2))  # the other 15, never one of the first claim's
    with db.session_scope() as session:  # nothing more while the leases hold
        assert claim_due(session, now=NOW + timedelta(minutes=9)) == []
    with db.session_scope() as session:  # the first lease has lapsed, the second not yet
        assert claim_due(session, now=NOW + timedelta(minutes=10, seconds=30)) == first
    with db.session_scope() as session:
        assert claim_due(session, now=NOW + timedelta(minutes=11, seconds=1)) == rest


def test_concurrent_claimers_never_take_the_same_row(db):
    seed(db, 400)
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        taken: list[int] = []
        while True:
            with db.session_scope() as session:
                batch = claim_due(session, now=NOW, limit=15)
            if not batch:
                break
            taken += batch
        results.append(taken)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = [i for taken in results for i in taken]
    assert len(everything) == 200  # every due row once
    assert len(set(everything)) == 200  # and no row twice
