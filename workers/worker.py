"""The RQ worker entry (`nurture worker`): one worker, or a pool of them, on the project's queues.

Workers are RQ `SimpleWorker`s: each runs its jobs in its own long-lived process instead of
forking a work horse per job, so a job finds the database pool, compiled statements and
email templates of the jobs before it (a fork per job paid for all of them again, for each
batch of 100 emails). The jobs are the project's own code; a job that runs
past its timeout is stopped by RQ's alarm in the same process, and one that kills the
process is recovered from like any crash (claims expire, `sending` turns `unknown`).

Stopping is RQ's warm shutdown: on SIGTERM or SIGINT an idle worker exits at once and a busy
one finishes its job first (a second signal kills the job).
"""

from __future__ import annotations

import gc
import importlib
import logging

from redis import Redis
from rq import SimpleWorker
from rq.worker_pool import WorkerPool

from campaigns.rendering import shared_environment, warm_templates
from workers.queues import JOB_KINDS, QUEUES_BY_PRIORITY, all_queues

log = logging.getLogger(__name__)

YOUNG_GENERATION_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700).
A sending job allocates thousands of short-lived objects an email (rows, templates' output,
MIME parts), nearly all freed by their reference counts; at 700 the collector walked the
survivors every few emails, at 10,000 a fraction as often (bench/dispatch.py)."""


def ping(token: str) -> str:
    """A job that proves a worker runs jobs end to end: it answers `pong <token>`."""
    return f"pong {token}"


def run_worker(connection: Redis, *, processes: int = 1, burst: bool = False) -> None:
    """Work the project's queues, in priority order, until stopped (or, with `burst`, emptied).

    With `processes` > 1, an RQ `WorkerPool` forks that many workers and replaces any that die.
    """
    names = [name.value for name in QUEUES_BY_PRIORITY]
    # compiled here, before RQ forks a work horse per job: each job finds them compiled
    compiled = warm_templates(shared_environment())
    # imported here too, before the pool forks: a job finds its code (the models, the
    # services) loaded instead of each process importing it under its first job's clock
    for module in sorted({kind.function.rpartition(".")[0] for kind in JOB_KINDS.values()}):
        importlib.import_module(module)
    gc.freeze()  # what is loaded now lives as long as the process: the collector skips it
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    log.info("%d email templates compiled", compiled)
    log.info("worker ready: %d process(es) on queues %s", processes, ", ".join(names))
    if processes == 1:
        # with_scheduler: retries with a wait between them are RQ scheduled jobs.
        SimpleWorker(all_queues(connection), connection=connection).work(
            burst=burst, with_scheduler=True, logging_level=None
        )
    else:
        WorkerPool(names, connection=connection, num_workers=processes,
                   worker_class=SimpleWorker).start(burst=burst)
