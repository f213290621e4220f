"""The dispatcher (`nurture dispatcher`): the periodic loop that turns due work into RQ jobs.

Each tick, the dispatcher that holds the leader lease runs the periodic tasks that are due
(`PERIODIC_TASKS`, a table of name, period and function). A task finds due rows through an
index and enqueues one deterministic job per row (`workers.queues.enqueue`); it never does the
work itself, so a tick stays short.

Safe to run more than one: only the holder of a lease in Redis acts (SET NX PX with a random
token, renewed every tick, released on stop; a crashed leader's lease expires after
`LEASE_TICKS` ticks). The others wait and take over when it lapses. The lease keeps two
dispatchers from enqueueing the same work at once; it is not what makes work happen once.
That is the database's job: tasks that claim rows will lock them with
`SELECT … FOR UPDATE SKIP LOCKED`, and jobs are idempotent, so a stale leader that runs one
more tick after losing its lease changes nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError

from campaigns.dispatch import claim_due
from nurture.clock import utcnow
from nurture.config import load_settings
from nurture.db import Database
from nurture.engagement.handling import unhandled_ranges
from nurture.engagement.webhooks import prune_mailgun_tokens
from nurture.handoffs import timers
from nurture.handoffs.delivery import due_notifications
from nurture.reports import funnel_months
from nurture.scoring.rescoring import unfinished_rescores, unscored_ranges
from workers import digests
from workers.queues import enqueue

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 5.0
"""Default time between two ticks (`nurture dispatcher --interval`)."""

LEASE_KEY = "nurture:dispatcher:leader"
"""Redis key whose value is the token of the dispatcher that acts."""

LEASE_TICKS = 3
"""A lease lasts this many ticks, so one slow tick does not cost a leader its lease."""

MIN_LEASE_S = 2.0
"""Shortest lease, so a short pause on a busy machine does not unseat a leader."""

HEARTBEAT_KEY = "nurture:dispatcher:heartbeat"
"""Redis hash where the acting dispatcher records its last tick: `at` (ISO 8601) and `by`."""

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Tick:
    """What a periodic task is given: the connections, who is acting, and the time."""

    redis: Redis
    database: Database
    token: str
    now: datetime


@dataclass(frozen=True)
class PeriodicTask:
    """A piece of periodic work: `run` is called on the leader's tick once `every` has passed."""

    name: str
    every: timedelta
    run: Callable[[Tick], None]


def record_heartbeat(tick: Tick) -> None:
    """Record when the acting dispatcher last ticked, and which one it is (for operators)."""
    tick.redis.hset(
        HEARTBEAT_KEY, mapping={"at": tick.now.isoformat(timespec="milliseconds"), "by": tick.token}
    )


SEND_BATCH = 500
"""Enrollments per sending job. A job plans its batch in one transaction before its SMTP
lanes start, and ends when its slowest lane does: with 100 a job those steps left the two
cores a fifth idle in `bench/dispatch.py` (about 350 emails/s against 450–510 with 300–500).
Work still spreads over the workers once more than one batch is due."""


def dispatch_due_steps(tick: Tick) -> None:
    """Claim the enrollments that are due and enqueue them in batches of `SEND_BATCH`.

    The claim is committed before anything is enqueued; if Redis loses the jobs, the claims
    lapse and the rows are claimed again, so nothing due is lost and nothing runs twice at once.
    """
    with tick.database.session_scope() as session:
        ids = claim_due(session, now=tick.now)
    stamp = int(tick.now.timestamp() * 1000)
    for start in range(0, len(ids), SEND_BATCH):
        batch = ids[start : start + SEND_BATCH]
        enqueue(tick.redis, "send_due_steps", ",".join(map(str, batch)),
                key=(batch[0], len(batch), stamp))
    if ids:
        log.info("dispatched %d due enrollment(s) in %d job(s)", len(ids),
                 -(-len(ids) // SEND_BATCH))


UNSCORED_GRACE = timedelta(seconds=5)
"""Stored events not scored after this long are enqueued for scoring (tracking's in a tick)."""

UNHANDLED_GRACE = timedelta(minutes=1)
"""Stored events not handed on after this long are taken as lost by Redis and enqueued again."""


def hand_on_unhandled_events(tick: Tick) -> None:
    """Enqueue again the stored engagement events whose job Redis lost (or never took)."""
    with tick.database.session_scope() as session:
        ranges = unhandled_ranges(session, received_before=tick.now - UNHANDLED_GRACE)
    for first, last in ranges:
        enqueue(tick.redis, "handle_engagement", first, last)
    if ranges:
        log.info("re-enqueued %d range(s) of unhandled engagement events", len(ranges))


def score_unscored_events(tick: Tick) -> None:
    """Enqueue scoring of the events handed on but not scored (tracking opens and clicks are
    handed on in their request), and resume a re-score an activation left unfinished."""
    with tick.database.session_scope() as session:
        ranges = unscored_ranges(session, received_before=tick.now - UNSCORED_GRACE)
        rescores = unfinished_rescores(session)
    for first, last in ranges:
        enqueue(tick.redis, "score_events", first, last)
    for model_id in rescores:
        enqueue(tick.redis, "rescore_leads", model_id)


def dispatch_notifications(tick: Tick) -> None:
    """Enqueue the handoff notifications whose next try is due (first tries Redis lost,
    retries after a failure): one job per (notification, attempt); the job claims the row."""
    with tick.database.session_scope() as session:
        due = due_notifications(session, now=tick.now)
    for notification_id, attempts in due:
        enqueue(tick.redis, "deliver_notification", notification_id,
                key=(notification_id, attempts))


def dispatch_sla_timers(tick: Tick) -> None:
    """When any SLA timer is due (an unanswered handoff's window, an accepted lead's stall
    time), enqueue the one job that claims and fires them as of this tick (one at a time:
    its id is fixed; the rows are claimed in the database, not in Redis)."""
    with tick.database.session_scope() as session:
        due = timers.due_any(session, now=tick.now)
    if due:
        enqueue(tick.redis, "fire_sla_timers", tick.now.isoformat(), key=())


def dispatch_digest(tick: Tick) -> None:
    """Once a digest period has ended and nobody claimed its digest, enqueue the job that
    claims and sends it (its id names the period: asked twice, it is one job)."""
    start = digests.digest_due(tick.database, load_settings(), today=tick.now.date())
    if start is not None:
        enqueue(tick.redis, "send_digest", start.isoformat(), key=(start.strftime("%Y%m%d"),))


def dispatch_funnel_months(tick: Tick) -> None:
    """When a closed cohort month's journeys changed since its funnel figures were stored,
    enqueue the one job that stores them again (docs/REPORTS.md, "The funnel's months");
    until then reports compute that month live."""
    with tick.database.session_scope() as session:
        stale = funnel_months.stale_months(session, today=tick.now.date())
    if stale:
        enqueue(tick.redis, "refresh_funnel_months", tick.now.date().isoformat(), key=())


MAILGUN_TOKENS_KEPT = timedelta(days=1)
"""Mailgun tokens are kept this long: far past their signature's 5 minutes, so a replay of
one is still refused by its signature alone once the token is forgotten."""


def prune_tokens(tick: Tick) -> None:
    with tick.database.session_scope() as session:
        prune_mailgun_tokens(session, received_before=tick.now - MAILGUN_TOKENS_KEPT)


PERIODIC_TASKS: tuple[PeriodicTask, ...] = (
    PeriodicTask("heartbeat", timedelta(0), record_heartbeat),
    PeriodicTask("due_steps", timedelta(0), dispatch_due_steps),
    PeriodicTask("unhandled_events", timedelta(minutes=1), hand_on_unhandled_events),
    PeriodicTask("mailgun_tokens", timedelta(hours=1), prune_tokens),
    PeriodicTask("unscored_events", timedelta(seconds=10), score_unscored_events),
    PeriodicTask("notifications", timedelta(0), dispatch_notifications),
    PeriodicTask("sla_timers", timedelta(0), dispatch_sla_timers),
    PeriodicTask("digest", timedelta(minutes=1), dispatch_digest),
    PeriodicTask("funnel_months", timedelta(minutes=1), dispatch_funnel_months),
)
"""The dispatcher's work, as data. Due drip steps, SLA timers and retries get their rows here."""


def new_token() -> str:
    """A token naming this dispatcher: host and pid for people, random bits for uniqueness."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class StopFlag:
    """Set from a signal handler; `wait()` sleeps until a timeout or until it is set.

    A self-pipe rather than `threading.Event`: setting an Event takes a lock, which a signal
    handler interrupting the same thread while it holds that lock would wait for forever.
    """

    def __init__(self) -> None:
        self._set = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def is_set(self) -> bool:
        return self._set

    def set(self, *_signal_args: object) -> None:
        self._set = True
        try:
            os.write(self._write, b"x")
        except BlockingIOError:
            pass  # the pipe is full: it is already set

    def wait(self, timeout: float) -> None:
        if not self._set:
            select.select([self._read], [], [], timeout)


class Lease:
    """The leader lease: held by at most one dispatcher at a time."""

    def __init__(self, redis: Redis, token: str, ttl: timedelta) -> None:
        self.redis = redis
        self.token = token
        self.ttl_ms = int(ttl.total_seconds() * 1000)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def hold(self) -> bool:
        """Renew the lease if this dispatcher holds it, else try to take it; True if held."""
        if self._renew(keys=[LEASE_KEY], args=[self.token, self.ttl_ms]):
            return True
        return bool(self.redis.set(LEASE_KEY, self.token, nx=True, px=self.ttl_ms))

    def holder(self) -> str | None:
        value = self.redis.get(LEASE_KEY)
        return value.decode() if isinstance(value, bytes) else value

    def release(self) -> None:
        self._release(keys=[LEASE_KEY], args=[self.token])


class Dispatcher:
    """Ticks every `interval` seconds; acts only while it holds the lease."""

    def __init__(
        self,
        redis: Redis,
        database: Database,
        *,
        interval: float = TICK_INTERVAL_S,
        tasks: tuple[PeriodicTask, ...] = PERIODIC_TASKS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.redis = redis
        self.database = database
        self.interval = interval
        self.tasks = tasks
        self.clock = clock
        self.token = new_token()
        self.lease = Lease(
            redis, self.token, timedelta(seconds=max(MIN_LEASE_S, LEASE_TICKS * interval))
        )
        self.acting = False
        self._role: str | None = None  # last role logged, so the log shows changes only
        self._last_run: dict[str, datetime] = {}

    def tick(self) -> bool:
        """One tick: hold the lease, then run the tasks that are due. True if it acted."""
        try:
            self.acting = self.lease.hold()
            self._log_role()
        except RedisError as exc:
            log.warning("dispatcher %s: Redis does not answer (%s); not acting", self.token, exc)
            self.acting = False
            return False
        if not self.acting:
            return False
        now = self.clock()
        for task in self.tasks:
            last = self._last_run.get(task.name)
            if last is not None and now - last < task.every:
                continue
            try:
                task.run(Tick(self.redis, self.database, self.token, now))
            except Exception:  # one failing task must not stop the others or the loop
                log.exception("dispatcher %s: periodic task %s failed", self.token, task.name)
            self._last_run[task.name] = now
        return True

    def run(self, stop: StopFlag) -> None:
        """Tick until `stop` is set (by a signal handler); then give up the lease."""
        log.info("dispatcher %s ready: ticking every %gs", self.token, self.interval)
        try:
            while not stop.is_set():
                started = time.monotonic()
                self.tick()
                stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            self._release()

    def _log_role(self) -> None:
        role = "acting" if self.acting else "waiting"
        if role == self._role:
            return
        self._role = role
        if self.acting:
            log.info("dispatcher %s acting: it holds the lease", self.token)
        else:
            log.info("dispatcher %s waiting: %s holds the lease", self.token, self.lease.holder())

    def _release(self) -> None:
        try:
            if self.acting:
                self.lease.release()
                log.info("dispatcher %s stopped; lease released", self.token)
            else:
                log.info("dispatcher %s stopped", self.token)
        except RedisError as exc:
            log.warning("dispatcher %s: could not release the lease (%s)", self.token, exc)
        self.acting = False
