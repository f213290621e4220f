"""Handoff jobs: deliver a notification, fire an SLA timer; and enqueueing after a commit.

Jobs are thin: open what they need, call one service. `enqueue_notifications` is what a
transaction that made notifications (a recycle, an escalation) calls once it has committed;
if Redis does not take the jobs, the dispatcher's sweep finds the rows (the database is the
truth).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from rq import get_current_job

from nurture.clock import utcnow
from nurture.config import load_settings
from nurture.handoffs import timers
from nurture.handoffs.delivery import Channels, deliver
from nurture.handoffs.notifications import new_notifications
from nurture.handoffs.policy import RecyclePolicy
from nurture.handoffs.services import escalate
from workers import jobs
from workers.connection import redis_connection
from workers.queues import enqueue

log = logging.getLogger(__name__)


def enqueue_notifications(connection: Redis | None, notification_ids: Iterable[int]) -> int:
    """Enqueue the first delivery of each notification (after the commit that made them).
    Never raises for Redis: the dispatcher's sweep delivers what is not enqueued here."""
    ids = list(notification_ids)
    if connection is None or not ids:
        return 0
    try:
        for notification_id in ids:
            enqueue(connection, "deliver_notification", notification_id, key=(notification_id, 0))
    except RedisError:
        log.warning("notifications %s stored but not enqueued; the sweep will deliver them",
                    ids, exc_info=True)
        return 0
    return len(ids)


def deliver_notification(notification_id: int) -> str:
    """Try the notification once if it is due: the CRM webhook or the rep's email."""
    settings = load_settings()
    database = jobs.process_database(settings.database_url)
    return deliver(database, notification_id, Channels.from_settings(settings), clock=utcnow)


def escalate_handoff(handoff_id: int) -> str | None:
    """The handoff's SLA timer is due: remind the rep, or reassign after a second window."""
    settings = load_settings()
    with jobs.process_database(settings.database_url).session_scope() as session:
        done = escalate(session, handoff_id, now=utcnow(), policy=RecyclePolicy(sla=settings.sla))
        made = new_notifications(session)
    announce(made)
    return done


def fire_sla_timers(due_by: str) -> dict[str, int]:
    """Fire every SLA timer due by the dispatcher's tick (ISO 8601), a batch per transaction."""
    settings = load_settings()
    database = jobs.process_database(settings.database_url)
    tick = datetime.fromisoformat(due_by)
    policy = RecyclePolicy(sla=settings.sla)
    totals = {"escalations": 0, "stalls": 0}
    while True:
        with database.session_scope() as session:
            fired = timers.fire_due_timers(session, now=max(tick, utcnow()), policy=policy)
            made = new_notifications(session)
        announce(made)
        if not fired:
            return totals
        totals["escalations"] += fired.escalations
        totals["stalls"] += fired.stalls


def announce(notification_ids: list[int]) -> int:
    """From inside a job, after its commit: enqueue the notifications it made, and try them
    at once from this process (`deliver_at_once`). Whichever comes first claims the row; the
    other finds it delivered (or not due again after a failure) and does nothing."""
    if not notification_ids:
        return 0
    enqueued = enqueue_notifications(_connection(load_settings().redis_url), notification_ids)
    deliver_at_once(notification_ids)
    return enqueued


AT_ONCE_THREADS = 2
"""Threads of a worker process that deliver the notifications its jobs just made."""

_AT_ONCE: dict[int, ThreadPoolExecutor] = {}


def deliver_at_once(notification_ids: Iterable[int]) -> None:
    """Deliver these notifications now, beside the job that made them: a recycled lead's CRM
    webhook leaves as soon as its transaction commits, instead of waiting for a worker to
    be free for its job (the workers are busy scoring when leads qualify). The job
    enqueued for each stays the durable way; a process that dies mid-delivery leaves a
    claim that lapses, and the dispatcher's sweep tries the row again."""
    pool = _AT_ONCE.get(os.getpid())
    if pool is None:
        _AT_ONCE.clear()  # a parent's pool: its threads are not in this process
        pool = _AT_ONCE[os.getpid()] = ThreadPoolExecutor(
            AT_ONCE_THREADS, thread_name_prefix="deliver-at-once")
    for notification_id in notification_ids:
        pool.submit(_deliver_quietly, notification_id)


def _deliver_quietly(notification_id: int) -> None:
    try:
        deliver_notification(notification_id)
    except Exception:  # the job or the sweep tries again; a thread has nobody to tell
        log.exception("notification %s: delivery at once failed", notification_id)


def _connection(url: str | None) -> Redis | None:
    job = get_current_job()
    if job is not None:
        return job.connection
    return redis_connection(url) if url else None
