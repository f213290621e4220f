"""Job functions: each opens what it needs and calls one service. Ids in, never ORM objects.

Workers run their jobs in their own process (RQ's `SimpleWorker`, see `workers/worker.py`),
so a job reads the settings afresh but takes the process's `Database` (its pool of
connections and its compiled statements), made on first use and kept for the next jobs;
one made in another process (before a fork) is never used.
"""

from __future__ import annotations

import os
from dataclasses import asdict

from redis import Redis
from rq import get_current_job

from campaigns.sending import Sending, run_due
from nurture.clock import utcnow
from nurture.config import load_settings, with_secret_key
from nurture.db import Database
from nurture.engagement.handling import WAITING_LIMIT, handle_waiting
from nurture.handoffs.notifications import new_notifications
from nurture.handoffs.policy import RecyclePolicy
from nurture.handoffs.services import use_policy
from nurture.scoring import backtest, live, rescoring
from workers import notifying
from workers.coalescing import kick, open_gate

_DATABASES: dict[tuple[int, str], Database] = {}


def process_database(url: str) -> Database:
    """This process's `Database` for `url`, made on first use."""
    key = (os.getpid(), url)
    database = _DATABASES.get(key)
    if database is None:
        for other in [k for k in _DATABASES if k[0] != key[0]]:
            del _DATABASES[other]  # a parent's: its connections are not ours to use or close
        database = _DATABASES[key] = Database(url)
    return database


def send_due_steps(enrollment_ids: str) -> dict[str, int]:
    """Run the due steps of these claimed enrollments (comma-separated ids), sending emails."""
    settings = with_secret_key(load_settings())
    database = process_database(settings.database_url)
    ids = [int(part) for part in enrollment_ids.split(",") if part]
    counts = run_due(database, ids, Sending.from_settings(settings), clock=utcnow)
    return asdict(counts)


def handle_engagement(first_id: int, last_id: int) -> dict[str, int]:
    """Hand the stored, still unhandled engagement events on and score them: those with ids
    in [first_id, last_id] and any others waiting, oldest first, as one batch (up to
    `handling.WAITING_LIMIT`, of one part of the leads on PostgreSQL). The job is kicked
    through `workers.coalescing`: one waiting job stands for every request stored meanwhile;
    a job that found work kicks the next, until one finds nothing."""
    settings = load_settings()
    database = process_database(settings.database_url)
    connection = _job_connection()
    open_gate(connection, "handle_engagement")
    with database.session_scope() as session:
        now = utcnow()
        use_policy(session, RecyclePolicy(sla=settings.sla))
        handled = handle_waiting(session, now=now, score=lambda ids: live.score_claimed(
            session, ids, now=now, mark=False))  # the scoring hook
        made = new_notifications(session)
    notifying.announce(made)  # recycled leads: the CRM and the rep hear of it after the commit
    with database.session_scope() as session:  # its own transaction: leads locked in order
        use_policy(session, RecyclePolicy(sla=settings.sla))
        live.score_waiting(session, now=utcnow())  # handed on in their request (tracking)
        made = new_notifications(session)
    notifying.announce(made)
    if handled.events and connection is not None:  # more may wait (a full batch, another part)
        last = max(handled.event_ids)
        kick(connection, "handle_engagement", last + 1, last + WAITING_LIMIT)
    return handled.counts()


def _job_connection() -> Redis | None:
    job = get_current_job()
    return job.connection if job is not None else None


def score_events(first_id: int, last_id: int) -> dict[str, int]:
    """Score the stored events with ids in [first_id, last_id] not scored yet (a sweep's job)."""
    settings = load_settings()
    database = process_database(settings.database_url)
    with database.session_scope() as session:
        use_policy(session, RecyclePolicy(sla=settings.sla))
        scored = live.score_events(session, first_id, last_id, now=utcnow())
        made = new_notifications(session)
    notifying.announce(made)
    return asdict(scored)


def rescore_leads(model_id: int) -> dict[str, int]:
    """Re-score every lead under the newly active model, a batch per transaction."""
    database = process_database(load_settings().database_url)
    batches = 0
    while True:
        with database.session_scope() as session:
            if not rescoring.rescore_batch(session, model_id, now=utcnow()):
                return {"batches": batches}
        batches += 1


def run_backtest(backtest_id: int) -> dict[str, int]:
    """Run a requested backtest of a scoring model over stored history."""
    database = process_database(load_settings().database_url)
    try:
        with database.session_scope() as session:
            done = backtest.run_backtest(session, backtest_id, now=utcnow())
            return {"events": int((done.result or {}).get("events", 0))}
    except Exception as exc:
        with database.session_scope() as session:
            backtest.fail_backtest(session, backtest_id, f"{type(exc).__name__}: {exc}",
                                   now=utcnow())
        raise
