"""Coalesced kicks: one waiting job stands for every request that asked for it meanwhile.

`POST /api/v1/events` answers 40 requests a second under load, each with events to hand on.
A job per request would be 40 jobs a second that mostly find their events already taken by
the job before (`handle_waiting` takes everything waiting), each costing a worker RQ's
bookkeeping. Instead a request enqueues a job only if none is waiting: a gate key, set with
NX, marks "a job is queued"; the job opens the gate (deletes the key) before it claims rows,
so events stored after that get a new job, and events stored before are in its claim.

The gate expires by itself (`GATE_TTL_MS`): a job Redis lost, or a worker that died before
opening it, holds back new kicks for at most that long (and the dispatcher's sweep of
unhandled events is there behind it; the database is the truth).
"""

from __future__ import annotations

from redis import Redis

from workers.queues import enqueue

GATE_TTL_MS = 2000
"""Longest a kick is held back by a gate nobody opened."""


def gate_key(kind: str) -> str:
    return f"nurture:kick:{kind}"


def kick(connection: Redis, kind: str, *args: str | int) -> bool:
    """Enqueue the job of `kind` unless one is already waiting; True if enqueued now."""
    if not connection.set(gate_key(kind), "1", nx=True, px=GATE_TTL_MS):
        return False
    enqueue(connection, kind, *args)
    return True


def open_gate(connection: Redis | None, kind: str) -> None:
    """Called by the job as it starts, before it claims: later work needs a new job."""
    if connection is not None:
        connection.delete(gate_key(kind))
