"""The queues and workers as operators see them: counts per queue, the workers alive, the
failed jobs with their error, and requeueing one.

Redis is a transport (DESIGN.md): a failed job whose work is still due in the database is
found again by the dispatcher's sweep anyway; requeueing runs it now instead of later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from rq import Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from workers.queues import QUEUES_BY_PRIORITY, QueueName, queue

FAILED_SHOWN = 50
"""Failed jobs listed per queue (newest first)."""

MAX_ERROR_LINES = 12
"""Lines of a failed job's traceback shown (its end, where the error is)."""


class JobNotFound(LookupError):
    """No failed job with that id (requeued already, or expired)."""


@dataclass(frozen=True)
class QueueCounts:
    name: str
    queued: int
    started: int
    scheduled: int
    deferred: int
    failed: int
    finished: int


@dataclass(frozen=True)
class WorkerState:
    name: str
    state: str
    queues: tuple[str, ...]
    current_job: str | None
    last_heartbeat: datetime | None
    successful: int
    failed: int


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    description: str
    ended_at: datetime | None
    error: str
    """The last line of the traceback: the exception and its message."""
    traceback: str
    """The end of the traceback."""


def queue_counts(connection: Redis) -> list[QueueCounts]:
    """Each of the project's queues with its jobs by state, in the workers' priority order."""
    counts = []
    for name in QUEUES_BY_PRIORITY:
        q = queue(connection, name)
        counts.append(QueueCounts(
            name=name.value, queued=q.count,
            started=StartedJobRegistry(queue=q).count,
            scheduled=ScheduledJobRegistry(queue=q).count,
            deferred=DeferredJobRegistry(queue=q).count,
            failed=FailedJobRegistry(queue=q).count,
            finished=FinishedJobRegistry(queue=q).count))
    return counts


def workers(connection: Redis) -> list[WorkerState]:
    """The workers registered in Redis (alive: a worker that stops heart-beating expires)."""
    found = []
    for w in sorted(Worker.all(connection=connection), key=lambda w: w.name):
        found.append(WorkerState(
            name=w.name, state=str(w.get_state()), queues=tuple(w.queue_names()),
            current_job=w.get_current_job_id(), last_heartbeat=_aware(w.last_heartbeat),
            successful=w.successful_job_count, failed=w.failed_job_count))
    return found


def failed_jobs(connection: Redis, *, limit: int = FAILED_SHOWN) -> list[FailedJob]:
    """The failed jobs of every queue, newest first, with the end of their traceback."""
    found: list[FailedJob] = []
    for name in QUEUES_BY_PRIORITY:
        registry = FailedJobRegistry(queue=queue(connection, name))
        ids = registry.get_job_ids(0, limit - 1, desc=True)
        for job in Job.fetch_many(ids, connection=connection):
            if job is None:
                continue
            found.append(_failed(job, name))
    found.sort(key=lambda j: j.ended_at.timestamp() if j.ended_at else 0.0, reverse=True)
    return found[:limit]


def requeue_failed(connection: Redis, job_id: str) -> str:
    """Put a failed job back on its queue; returns the queue's name. JobNotFound otherwise."""
    for name in QUEUES_BY_PRIORITY:
        registry = FailedJobRegistry(queue=queue(connection, name))
        if job_id in registry:
            try:
                registry.requeue(job_id)
            except (InvalidJobOperation, NoSuchJobError):
                raise JobNotFound(job_id) from None
            return name.value
    raise JobNotFound(job_id)


def _failed(job: Job, name: QueueName) -> FailedJob:
    result = job.latest_result()
    traceback = (result.exc_string if result is not None and result.exc_string else "") or ""
    lines = [line for line in traceback.strip().splitlines() if line.strip()]
    return FailedJob(
        id=job.id, queue=name.value, description=job.description or job.func_name,
        ended_at=_aware(job.ended_at), error=lines[-1] if lines else "no error recorded",
        traceback="\n".join(lines[-MAX_ERROR_LINES:]))


def _aware(at: datetime | None) -> datetime | None:
    """RQ keeps UTC times without a zone."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at
