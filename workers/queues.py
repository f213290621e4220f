"""The RQ queues, named by workload, and the one table of what each kind of job may cost.

Every job kind has a row in `JOB_KINDS`: the function a worker runs, its queue, how long it may
run, how long its result or failure is kept, and how RQ retries it. Nothing else in the project
passes a timeout, a TTL or a retry to RQ; `enqueue()` reads them from here.

Job ids are deterministic (`job_id()`): the same work asked for twice while it is still waiting
is one job. Redis is a transport (DESIGN.md), so whether work is still *due* is the database's
call: `enqueue()` replaces a finished or failed record of the same id instead of refusing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

MINUTE = 60
"""Seconds in a minute, for the table below."""

HOUR = 60 * MINUTE
"""Seconds in an hour."""

DAY = 24 * HOUR
"""Seconds in a day."""


class QueueName(enum.StrEnum):
    """The queues, one per workload, so an operator can see and scale each on its own."""

    NOTIFY = "notify"  # a lead qualified: the rep and the CRM hear it within minutes
    SCORING = "scoring"  # re-scoring after engagement decides *when* a lead qualifies
    ENGAGEMENT = "engagement"  # normalising provider and client events into the lead's history
    SENDING = "sending"  # drip emails: due at a minute's grain, never urgent to the second
    INTAKE = "intake"  # bulk imports: large and patient, must not delay the rest
    DEFAULT = "default"  # housekeeping and health checks


QUEUES_BY_PRIORITY: tuple[QueueName, ...] = tuple(QueueName)
"""A worker takes from the first non-empty queue in this order (most time-critical first)."""

_JOB_ID_PART = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class JobKind:
    """One kind of job and what it may cost."""

    name: str
    function: str  # dotted path; the worker imports it, so this module imports no job code
    queue: QueueName
    timeout_s: int  # the work horse is killed after this long
    result_ttl_s: int  # a finished job's record (and return value) is kept this long
    failure_ttl_s: int  # a failed job's record stays in the failed registry this long
    retry_intervals_s: tuple[int, ...] = ()  # one wait per retry; empty: RQ never retries it
    copies: int = 1  # jobs enqueued together for one key, sharing the work the database splits

    def retry(self) -> Retry | None:
        if not self.retry_intervals_s:
            return None
        return Retry(max=len(self.retry_intervals_s), interval=list(self.retry_intervals_s))


JOB_KINDS: Mapping[str, JobKind] = {
    kind.name: kind
    for kind in (
        # Proves a worker runs jobs end to end (tests, operators); costs nothing, kept briefly.
        JobKind(
            name="ping", function="workers.worker.ping", queue=QueueName.DEFAULT,
            timeout_s=10, result_ttl_s=10 * MINUTE, failure_ttl_s=DAY,
        ),
        # A batch of claimed enrollments: their due steps, emails sent through the messenger.
        # No RQ retry: a failed batch's claims lapse (campaigns.dispatch.CLAIM_LEASE, longer
        # than this timeout) and the dispatcher claims the rows again from the database.
        JobKind(
            name="send_due_steps", function="workers.jobs.send_due_steps",
            queue=QueueName.SENDING, timeout_s=5 * MINUTE, result_ttl_s=HOUR,
            failure_ttl_s=7 * DAY,
        ),
        # Stored engagement events (an id range) handed to scoring and waking branches. Safe to
        # retry: only rows still unhandled are taken (nurture.engagement.handling).
        JobKind(
            name="handle_engagement", function="workers.jobs.handle_engagement",
            queue=QueueName.SCORING, timeout_s=5 * MINUTE, result_ttl_s=HOUR,
            failure_ttl_s=7 * DAY, retry_intervals_s=(10, MINUTE, 10 * MINUTE),
        ),
        # Stored events (an id range) not scored yet, found by the dispatcher's sweep (tracking
        # opens and clicks are handled in their request, and scored here). Safe to retry.
        JobKind(
            name="score_events", function="workers.jobs.score_events",
            queue=QueueName.SCORING, timeout_s=5 * MINUTE, result_ttl_s=HOUR,
            failure_ttl_s=7 * DAY, retry_intervals_s=(10, MINUTE, 10 * MINUTE),
        ),
        # Every lead re-scored after a model's activation, a range of leads per transaction,
        # resumable (the ranges are rows); long, and on the default queue so scoring goes on.
        # Two copies take ranges side by side (two workers, and the database's two cores).
        JobKind(
            name="rescore_leads", function="workers.jobs.rescore_leads",
            queue=QueueName.DEFAULT, timeout_s=2 * HOUR, result_ttl_s=DAY,
            failure_ttl_s=7 * DAY, retry_intervals_s=(MINUTE, 10 * MINUTE), copies=2,
        ),
        # A scoring model run over stored history; touches no live score.
        JobKind(
            name="run_backtest", function="workers.jobs.run_backtest",
            queue=QueueName.DEFAULT, timeout_s=HOUR, result_ttl_s=DAY, failure_ttl_s=7 * DAY,
        ),
        # One try at a handoff's notification (CRM webhook, rep email). No RQ retry: the
        # retry schedule is the row's `next_attempt_at`, found by the dispatcher's sweep.
        JobKind(
            name="deliver_notification", function="workers.notifying.deliver_notification",
            queue=QueueName.NOTIFY, timeout_s=MINUTE, result_ttl_s=HOUR, failure_ttl_s=7 * DAY,
        ),
        # The SLA timers due at the dispatcher's tick, claimed with FOR UPDATE SKIP LOCKED and
        # fired in batches (escalate, reassign, expire, stalled). Safe to repeat or run twice.
        JobKind(
            name="fire_sla_timers", function="workers.notifying.fire_sla_timers",
            queue=QueueName.NOTIFY, timeout_s=5 * MINUTE, result_ttl_s=HOUR,
            failure_ttl_s=7 * DAY,
        ),
        # The alignment digest of a period that has ended: claimed by its `digests` row,
        # so a second job or a retry sends nothing.
        JobKind(
            name="send_digest", function="workers.digests.send_digest",
            queue=QueueName.DEFAULT, timeout_s=5 * MINUTE, result_ttl_s=DAY,
            failure_ttl_s=7 * DAY,
        ),
        # The funnel's closed cohort months touched since they were stored, stored again
        # (about a second a month at a million leads); one at a time, safe to repeat.
        JobKind(
            name="refresh_funnel_months", function="workers.funnel.refresh_funnel_months",
            queue=QueueName.DEFAULT, timeout_s=30 * MINUTE, result_ttl_s=HOUR,
            failure_ttl_s=7 * DAY,
        ),
        # A handoff's SLA timer fired: remind or reassign. Safe to repeat (checks it is due).
        JobKind(
            name="escalate_handoff", function="workers.notifying.escalate_handoff",
            queue=QueueName.NOTIFY, timeout_s=MINUTE, result_ttl_s=HOUR, failure_ttl_s=7 * DAY,
        ),
        # A marketer's CSV import or bulk action from the admin (a `lead_tasks` row, which
        # holds its progress). No RQ retry: a bulk action resumes after its last chunk when
        # asked again; an import rolled back whole is marked failed, its report kept.
        JobKind(
            name="run_lead_task", function="workers.lead_tasks.run_lead_task",
            queue=QueueName.INTAKE, timeout_s=HOUR, result_ttl_s=DAY, failure_ttl_s=7 * DAY,
        ),
    )
}
"""Every job kind the project enqueues. A new job gets its row here, not arguments elsewhere."""

PENDING_STATUSES = frozenset(
    {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
)
"""A job in one of these states is still going to run: asking for it again changes nothing."""


def job_id(kind: str, *key: str | int) -> str:
    """The deterministic id of the job of `kind` for `key` (ids of the rows it works on)."""
    parts = [kind, *(str(part) for part in key)]
    for part in parts:
        if not _JOB_ID_PART.match(part):
            raise ValueError(f"job id parts are ids (letters, digits, _), not {part!r}")
    return "-".join(parts)


def queue(connection: Redis, name: QueueName) -> Queue:
    return Queue(name.value, connection=connection)


def all_queues(connection: Redis) -> list[Queue]:
    """The project's queues in priority order, as a worker listens to them."""
    return [queue(connection, name) for name in QUEUES_BY_PRIORITY]


def enqueue(
    connection: Redis, kind: str, *args: str | int, key: Sequence[str | int] | None = None
) -> tuple[Job, bool]:
    """Enqueue the job of `kind` with `args` (ids, never ORM objects), once.

    The job id is `job_id(kind, *key)`, `key` defaulting to `args`. Returns the job and whether
    it was enqueued now (False: the same job is still pending and is returned as it is). A kind
    with `copies` > 1 gets its other copies too, with ids ending in `-copy1`, `-copy2`…
    """
    spec = JOB_KINDS[kind]
    key = args if key is None else key
    first = _enqueue_one(connection, spec, args, job_id(kind, *key))
    for copy in range(1, spec.copies):
        _enqueue_one(connection, spec, args, job_id(kind, *key, f"copy{copy}"))
    return first


def _enqueue_one(connection: Redis, spec: JobKind, args: Sequence[str | int], identity: str
                 ) -> tuple[Job, bool]:
    for _attempt in range(3):
        try:
            job = queue(connection, spec.queue).enqueue_call(
                spec.function, args=args, job_id=identity, unique=True,
                timeout=spec.timeout_s, result_ttl=spec.result_ttl_s,
                failure_ttl=spec.failure_ttl_s, retry=spec.retry(),
                description=f"{spec.name}{tuple(args)!r}",
            )
            return job, True
        except DuplicateJobError:
            try:
                existing = Job.fetch(identity, connection=connection)
            except NoSuchJobError:
                continue  # it expired between the two calls; enqueue again
            if existing.get_status() in PENDING_STATUSES:
                return existing, False
            existing.delete()  # a finished or failed record: the caller says it is due again
    raise RuntimeError(f"job {identity} keeps being re-created by someone else")
