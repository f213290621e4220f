"""The lead task job: a CSV import from the browser or a bulk action, its progress written to
its `LeadTask` row as it goes (nurture.leads.tasks, campaigns.bulk_actions)."""

from __future__ import annotations

from campaigns.bulk_actions import run_bulk_chunk
from nurture.clock import utcnow
from nurture.config import load_settings
from nurture.db import Database
from nurture.errors import InvalidInput
from nurture.leads import tasks
from nurture.models.lead_tasks import LeadTaskKind
from workers.jobs import process_database


def run_lead_task(task_id: int) -> str:
    """Run the task to its end (a repeated job finds it finished and does nothing)."""
    database = process_database(load_settings().database_url)
    with database.session_scope() as session:
        task = tasks.start_task(session, task_id, now=utcnow())
        kind = task.kind if task is not None else None
    if kind is None:
        return "finished already"
    if kind == LeadTaskKind.IMPORT:
        return _run_import(database, task_id)
    while True:
        with database.session_scope() as session:
            if not run_bulk_chunk(session, task_id, now=utcnow()):
                return "done"


def _run_import(database: Database, task_id: int) -> str:
    run = tasks.ImportRun(task_id)

    def progress(done: int) -> None:  # its own transaction, so the page sees it at once
        with database.session_scope() as session:
            tasks.record_progress(session, task_id, done)

    # SQLite has one writer: the import's transaction holds it until the end
    report_progress = progress if database.dialect != "sqlite" else None
    try:
        with database.session_scope() as session:
            run.execute(session, progress=report_progress, now=utcnow())
    except Exception as exc:
        with database.session_scope() as session:
            run.fail(session, exc, now=utcnow())
        if isinstance(exc, InvalidInput):
            return "rejected"
        raise
    return "done"
