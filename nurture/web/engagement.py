"""After a request's engagement events are committed: hand them on (scoring, branches) via RQ.

The job is kicked, not enqueued per request: while one waits, it will take these events too
(`workers.coalescing`, `handle_waiting`)."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from nurture.engagement.ingest import Stored
from nurture.web import redis
from workers.coalescing import kick

log = logging.getLogger(__name__)


def hand_on(stored: Stored) -> None:
    """Kick the job that hands the new events on. Never fails the request: the events are
    stored and answered for; if Redis does not take the job, the dispatcher's sweep of
    unhandled events does (the database is the truth)."""
    if stored.id_range is None:
        return
    connection = redis()
    if connection is None:
        return
    try:
        kick(connection, "handle_engagement", *stored.id_range)
    except RedisError:
        log.warning("events %d..%d stored but not enqueued; the sweep will hand them on",
                    *stored.id_range, exc_info=True)
