"""Job functions: each opens what it needs and calls one service. Ids in, never ORM objects.

RQ forks a work horse per job, so connections are made inside the job, never inherited.
"""

from __future__ import annotations

from dataclasses import asdict

from campaigns.sending import Sending, run_due
from nurture.clock import utcnow
from nurture.config import load_settings, with_secret_key
from nurture.db import Database
from nurture.engagement.handling import handle_events


def send_due_steps(enrollment_ids: str) -> dict[str, int]:
    """Run the due steps of these claimed enrollments (comma-separated ids), sending emails."""
    settings = with_secret_key(load_settings())
    database = Database.from_settings(settings)
    try:
        ids = [int(part) for part in enrollment_ids.split(",") if part]
        counts = run_due(database, ids, Sending.from_settings(settings), clock=utcnow)
        return asdict(counts)
    finally:
        database.dispose()


def handle_engagement(first_id: int, last_id: int) -> dict[str, int]:
    """Hand the stored, still unhandled engagement events with ids in [first_id, last_id] on."""
    database = Database.from_settings(load_settings())
    try:
        with database.session_scope() as session:
            return asdict(handle_events(session, first_id, last_id, now=utcnow()))
    finally:
        database.dispose()
