"""After a request's engagement events are committed: hand them on (scoring, branches) via RQ."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from nurture.engagement.ingest import Stored
from nurture.web import redis
from workers.queues import enqueue

log = logging.getLogger(__name__)


def hand_on(stored: Stored) -> None:
    """Enqueue the job that hands the new events on. Never fails the request: the events are
    stored and answered for; if Redis does not take the job, the dispatcher's sweep of
    unhandled events does (the database is the truth)."""
    if stored.id_range is None:
        return
    connection = redis()
    if connection is None:
        return
    try:
        enqueue(connection, "handle_engagement", *stored.id_range)
    except RedisError:
        log.warning("events %d..%d stored but not enqueued; the sweep will hand them on",
                    *stored.id_range, exc_info=True)
