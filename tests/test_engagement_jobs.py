"""Handing stored events on through RQ: the job is idempotent, and events whose job Redis lost
are found in the database and enqueued again by the dispatcher."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue, SimpleWorker

from nurture.clock import utcnow
from nurture.engagement.ingest import store_events
from nurture.models import EventType
from tests.test_engagement import event, make_lead, make_message
from tests.webhook_app import stored_events
from workers.dispatcher import Tick, hand_on_unhandled_events
from workers.jobs import handle_engagement


@pytest.fixture()
def job_env(monkeypatch, service_env):
    """A job reads its settings from the environment, as in a worker process."""
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)


def stored_range(db, received_at):
    with db.session_scope() as session:
        lead = make_lead(session, "ada@example.com")
        make_message(session, lead)
        stored = store_events(session, [
            event(source_event_id="o", occurred_at=received_at),
            event(source_event_id="c", type=EventType.CLICK, url="https://a.example/",
                  occurred_at=received_at)], now=received_at)
    return stored.id_range


def test_the_job_hands_events_on_once(db, job_env):
    first, last = stored_range(db, utcnow())
    assert handle_engagement(first, last) == {"events": 2, "leads": 1, "woken": 1}
    assert handle_engagement(first, last) == {"events": 0, "leads": 0, "woken": 0}
    assert all(r.handled_at is not None for r in stored_events(db))


def test_events_whose_job_was_lost_are_enqueued_again_and_run(app, db, job_env):
    now = utcnow()
    first, last = stored_range(db, now - timedelta(minutes=5))  # and no job was ever enqueued
    connection = app.extensions["nurture.redis"]
    hand_on_unhandled_events(Tick(connection, db, "test", now))
    queue = Queue("scoring", connection=connection)
    assert [job.args for job in queue.jobs] == [(first, last)]
    hand_on_unhandled_events(Tick(connection, db, "test", now))  # still pending: one job
    assert len(queue.jobs) == 1
    SimpleWorker([queue], connection=connection).work(burst=True)
    assert all(r.handled_at is not None for r in stored_events(db))
    hand_on_unhandled_events(Tick(connection, db, "test", now))
    assert queue.jobs == []


def test_one_waiting_job_stands_for_every_request_and_takes_all_their_events(app, db, job_env):
    """Requests while a job waits add none; the job takes every event waiting; a request
    after the job has started kicks a new one (workers/coalescing.py)."""
    from nurture.web.engagement import hand_on
    from workers.coalescing import gate_key

    now = utcnow()
    with db.session_scope() as session:
        lead = make_lead(session, "ada@example.com")
        make_message(session, lead)
        batches = [store_events(session, [event(source_event_id=f"e{n}", occurred_at=now)],
                                now=now) for n in range(3)]
    connection = app.extensions["nurture.redis"]
    queue = Queue("scoring", connection=connection)
    with app.app_context():
        for stored in batches:
            hand_on(stored)
    first = batches[0].id_range
    assert [job.args for job in queue.jobs] == [first]  # one job for three requests
    SimpleWorker([queue], connection=connection).work(burst=True)
    rows = stored_events(db)
    assert len(rows) == 3
    assert all(r.handled_at is not None and r.scored_at is not None for r in rows)
    assert not connection.exists(gate_key("handle_engagement"))  # the job opened its gate
    with db.session_scope() as session:
        later = store_events(session, [event(source_event_id="late", occurred_at=now)], now=now)
    with app.app_context():
        hand_on(later)
    assert [job.args for job in queue.jobs] == [later.id_range]


def test_recent_events_are_left_to_their_own_job(app, db):
    now = utcnow()
    stored_range(db, now)
    connection = app.extensions["nurture.redis"]
    hand_on_unhandled_events(Tick(connection, db, "test", now))
    assert Queue("scoring", connection=connection).jobs == []


def test_mailgun_tokens_are_forgotten_after_a_day(app, db):
    from nurture.engagement.webhooks import check_mailgun_token
    from nurture.models import MailgunToken
    from workers.dispatcher import prune_tokens

    now = utcnow()
    with db.session_scope() as session:
        check_mailgun_token(session, "old", now, "d", now=now - timedelta(days=2))
        check_mailgun_token(session, "new", now, "d", now=now - timedelta(hours=1))
    prune_tokens(Tick(app.extensions["nurture.redis"], db, "test", now))
    with db.session_scope() as session:
        from sqlalchemy import select

        assert session.execute(select(MailgunToken.token)).scalars().all() == ["new"]
