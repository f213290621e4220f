"""Bulk actions on many leads (enroll in a sequence, remove from one), run by a worker a chunk
per transaction, with their progress on the `LeadTask` row (`nurture.leads.tasks`).

A lead that cannot take the action is skipped and counted under the reason it gives (`already
enrolled in …`, `the lead's address is suppressed`…); the others go ahead. A job that dies
resumes after the last chunk committed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from campaigns.lead_actions import enroll_lead, remove_from_sequence
from nurture.errors import Conflict, NotFound
from nurture.leads.tasks import finish_task, start_task
from nurture.models.lead_tasks import LeadTaskKind

CHUNK = 50
"""Leads acted on per transaction: each commit shows progress on the page."""


def run_bulk_chunk(session: Session, task_id: int, *, now: datetime, chunk: int = CHUNK) -> bool:
    """Act on the next chunk of the task's leads; True while some are left."""
    task = start_task(session, task_id, now=now)
    if task is None:
        return False
    lead_ids: list[int] = list(task.params.get("lead_ids", []))
    sequence_id = int(task.params["sequence_id"])
    result = dict(task.result or {})
    skipped: dict[str, int] = dict(result.get("skipped", {}))
    acted = int(result.get("acted", 0))
    for lead_id in lead_ids[task.done: task.done + chunk]:
        try:
            if task.kind == LeadTaskKind.ENROLL:
                enroll_lead(session, lead_id, sequence_id, actor=task.created_by, now=now)
            else:
                remove_from_sequence(session, lead_id, sequence_id, actor=task.created_by,
                                     now=now)
            acted += 1
        except (Conflict, NotFound) as exc:  # raised before anything of this lead is written
            skipped[str(exc)] = skipped.get(str(exc), 0) + 1
    task.done = min(task.total, task.done + chunk)
    task.result = {"acted": acted, "skipped": skipped}
    if task.done >= task.total:
        finish_task(session, task, now=now)
        return False
    session.flush()
    return True
