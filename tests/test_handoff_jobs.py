"""The handoff jobs through RQ: the dispatcher finds due notifications and SLA timers, a worker
delivers and escalates (the database says what is due; Redis only carries the work)."""

from __future__ import annotations

from datetime import timedelta

from rq import SimpleWorker
from sqlalchemy import select

from nurture.clock import utcnow
from nurture.models import Handoff, HandoffEvent, HandoffNotification, NotificationStatus
from tests.test_handoffs import make_rep, recycle, rejected_lead
from workers.dispatcher import Tick, dispatch_notifications, dispatch_sla_timers
from workers.notifying import enqueue_notifications
from workers.queues import all_queues


def work(redis):
    SimpleWorker(all_queues(redis), connection=redis).work(burst=True, logging_level="WARNING")


def statuses(db):
    with db.session_scope() as session:
        return sorted((n.channel.value, n.status.value) for n in
                      session.execute(select(HandoffNotification)).scalars())


def test_notifications_enqueued_after_the_commit_are_delivered_by_a_worker(app, db, crm_env,
                                                                           receiver):
    redis = app.extensions["nurture.redis"]
    make_rep(db, "rita@example.com")
    handoff_id, made = recycle(db, rejected_lead(db), now=utcnow())
    assert enqueue_notifications(redis, made) == 2
    assert enqueue_notifications(redis, made) == 2  # the same jobs: still one each
    assert sum(q.count for q in all_queues(redis)) == 2
    work(redis)
    assert statuses(db) == [("crm_webhook", "delivered"), ("rep_email", "delivered")]
    assert len(receiver.requests) == 1
    assert receiver.verified()["handoff_id"] == handoff_id


def test_the_dispatcher_finds_what_redis_lost_and_due_retries(app, db, crm_env, receiver):
    redis = app.extensions["nurture.redis"]
    make_rep(db, "rita@example.com")
    recycle(db, rejected_lead(db), now=utcnow())  # never enqueued: as if Redis lost the jobs
    receiver.mode = "500"
    dispatch_notifications(Tick(redis, db, "test", utcnow()))
    work(redis)
    assert statuses(db) == [("crm_webhook", "pending"), ("rep_email", "delivered")]
    dispatch_notifications(Tick(redis, db, "test", utcnow()))  # the retry is not due yet
    assert sum(q.count for q in all_queues(redis)) == 0
    receiver.mode = "ok"
    dispatch_notifications(Tick(redis, db, "test", utcnow() + timedelta(seconds=31)))
    with db.session_scope() as session:  # the worker's clock is real: make the retry due now
        for row in session.execute(select(HandoffNotification).where(
                HandoffNotification.status == NotificationStatus.PENDING)).scalars():
            row.next_attempt_at = utcnow() - timedelta(seconds=1)
    work(redis)
    assert statuses(db) == [("crm_webhook", "delivered"), ("rep_email", "delivered")]
    assert len(receiver.requests) == 2
    assert receiver.verified(0)["id"] == receiver.verified(1)["id"]


def test_the_dispatcher_fires_due_sla_timers(app, db, crm_env):
    redis = app.extensions["nurture.redis"]
    make_rep(db, "rita@example.com")
    handoff_id, _ = recycle(db, rejected_lead(db), now=utcnow() - timedelta(days=7))
    dispatch_sla_timers(Tick(redis, db, "test", utcnow()))
    work(redis)
    with db.session_scope() as session:
        handoff = session.get(Handoff, handoff_id)
        assert handoff.escalations == 1
        assert "sla_missed" in session.execute(select(HandoffEvent.kind)).scalars().all()
    assert ("rep_email", "delivered") in statuses(db)  # the reminder went out (outbox)


def test_a_job_that_recycles_a_lead_delivers_its_notifications_at_once(app, db, crm_env,
                                                                       receiver):
    """`announce` (what a scoring job calls after its commit) enqueues the deliveries and
    tries them at once from its own process: the CRM hears of the recycled lead while no
    worker has taken a job yet; the job, when a worker runs it, finds it delivered and
    sends nothing twice."""
    from tests.test_processes import wait_until
    from workers.notifying import announce

    redis = app.extensions["nurture.redis"]
    make_rep(db, "rita@example.com")
    handoff_id, made = recycle(db, rejected_lead(db), now=utcnow())
    assert announce(made) == 2
    wait_until(lambda: statuses(db) == [("crm_webhook", "delivered"), ("rep_email", "delivered")],
               20, "both notifications delivered at once")
    assert sum(q.count for q in all_queues(redis)) == 2  # the jobs are still waiting
    assert receiver.verified()["handoff_id"] == handoff_id
    work(redis)
    assert len(receiver.requests) == 1
    with db.session_scope() as session:
        assert [n.attempts for n in session.execute(select(HandoffNotification)).scalars()] \
            == [1, 1]
