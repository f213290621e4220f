"""Lead tasks: a CSV import from the browser and bulk actions, run by a worker in the
background, their progress and result stored on their `LeadTask` row (the page reads it).

An import is checked before it is accepted (size, UTF-8, header) and then run exactly as
`nurture import-leads` runs it (`importer.import_leads`), in one transaction: rejected whole
(any invalid row, unless the marketer chose to skip them) it changes nothing. Its per-row
error report is kept on the row for download.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.errors import InvalidInput, NotFound
from nurture.leads import importer
from nurture.leads.import_rows import read_header
from nurture.leads.importer import ImportOutcome, RowError
from nurture.models.lead_tasks import LeadTask, LeadTaskKind, LeadTaskStatus

IMPORT_MAX_BYTES = 20 * 1024 * 1024
"""Largest CSV file imported from the browser (larger files: `nurture import-leads`)."""

BULK_MAX_LEADS = 1_000
"""Leads one bulk action may name."""

REPORT_HEADER = ("line", "field", "message")
"""The error report's columns (the same as the CLI's report)."""

REPORT_MAX_ROWS = 10_000
"""Errors kept in a report; the report says when more were found."""


def get_task(session: Session, task_id: int) -> LeadTask:
    task = session.get(LeadTask, task_id) if 0 < task_id < 2**63 else None
    if task is None:
        raise NotFound(f"no lead task with id {task_id}")
    return task


def recent_tasks(session: Session, *, limit: int = 10) -> list[LeadTask]:
    return list(session.execute(
        select(LeadTask).order_by(LeadTask.created_at.desc(), LeadTask.id.desc()).limit(limit)
    ).scalars())


def check_import_file(data: bytes, file_name: str | None) -> None:
    """Refuse, with `InvalidInput` on `file`, what cannot be a leads file: empty, too large,
    not a .csv, or a first line that is not UTF-8 or names wrong columns."""
    if not file_name or not data:
        raise InvalidInput("choose a CSV file", {"file": ["choose a CSV file of leads"]})
    if len(data) > IMPORT_MAX_BYTES:
        raise InvalidInput("the file is too large", {"file": [
            f"the file is {len(data) / 1_048_576:.1f} MB; the browser takes up to "
            f"{IMPORT_MAX_BYTES // 1_048_576} MB (use `nurture import-leads` for larger files)"]})
    if not file_name.lower().endswith((".csv", ".txt")):
        raise InvalidInput("not a CSV file", {"file": ["the file must be a .csv file"]})
    try:
        read_header(io.BytesIO(data))  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise InvalidInput(str(exc), {"file": [str(exc)]}) from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput("not UTF-8", {"file": [
            f"the file is not UTF-8 text (line {line}); save it as CSV UTF-8 and try again"]},
        ) from None


def create_import(session: Session, data: bytes, file_name: str, *, skip_invalid: bool,
                  actor: str, now: datetime) -> LeadTask:
    """Accept a leads file for import in the background (checked first: `check_import_file`)."""
    check_import_file(data, file_name)
    task = LeadTask(kind=LeadTaskKind.IMPORT, status=LeadTaskStatus.QUEUED,
                    params={"skip_invalid": skip_invalid}, total=len(data), done=0, result={},
                    upload=data, file_name=file_name[-255:], created_by=actor, created_at=now)
    session.add(task)
    session.flush()
    return task


def create_bulk(session: Session, kind: LeadTaskKind, lead_ids: list[int], sequence_id: int,
                *, actor: str, now: datetime) -> LeadTask:
    """A bulk enroll or removal of these leads, in the order given (duplicates dropped)."""
    if kind not in (LeadTaskKind.ENROLL, LeadTaskKind.REMOVE):
        raise InvalidInput("unknown bulk action", {"action": ["choose enroll or remove"]})
    ids = list(dict.fromkeys(i for i in lead_ids if 0 < i < 2**63))
    if not ids:
        raise InvalidInput("no leads selected", {"lead_ids": ["select at least one lead"]})
    if len(ids) > BULK_MAX_LEADS:
        raise InvalidInput("too many leads", {"lead_ids": [
            f"{len(ids)} leads selected; a bulk action takes up to {BULK_MAX_LEADS}"]})
    task = LeadTask(kind=kind, status=LeadTaskStatus.QUEUED,
                    params={"lead_ids": ids, "sequence_id": sequence_id}, total=len(ids),
                    done=0, result={}, created_by=actor, created_at=now)
    session.add(task)
    session.flush()
    return task


def start_task(session: Session, task_id: int, *, now: datetime) -> LeadTask | None:
    """Mark the task running (locked); None when it is finished (a repeated job does nothing)."""
    task = session.execute(
        select(LeadTask).where(LeadTask.id == task_id).with_for_update()).scalar_one_or_none()
    if task is None or task.finished:
        return None
    task.status = LeadTaskStatus.RUNNING
    task.started_at = task.started_at or now
    session.flush()
    return task


def record_progress(session: Session, task_id: int, done: int) -> None:
    task = session.get(LeadTask, task_id)
    if task is not None and not task.finished:
        task.done = max(task.done, done)
        session.flush()


def finish_task(session: Session, task: LeadTask, *, now: datetime) -> None:
    task.status = LeadTaskStatus.DONE
    task.done = task.total
    task.finished_at = now
    session.flush()


def fail_task(session: Session, task_id: int, error: str, *, report: str | None = None,
              now: datetime) -> None:
    """The task stopped: say why (its work was rolled back, or kept up to `done`)."""
    task = session.get(LeadTask, task_id)
    if task is None:
        return
    task.status = LeadTaskStatus.FAILED
    task.error = error[:2000]
    task.upload = None
    if report is not None:
        task.report = report
    task.finished_at = now
    session.flush()


class ImportRun:
    """One run of an import task: the import in the caller's transaction, its errors gathered
    for the report (kept whether the import is accepted or rejected)."""

    def __init__(self, task_id: int) -> None:
        self.task_id = task_id
        self.errors: list[RowError] = []
        self.more_errors = 0

    def _report_error(self, error: RowError) -> None:
        if len(self.errors) < REPORT_MAX_ROWS:
            self.errors.append(error)
        else:
            self.more_errors += 1

    def report(self) -> str | None:
        if not self.errors:
            return None
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(REPORT_HEADER)
        for e in self.errors:
            writer.writerow((e.line, e.field, e.message))
        if self.more_errors:
            writer.writerow(("", "", f"{self.more_errors} more errors not listed"))
        return out.getvalue()

    def execute(self, session: Session, *, progress: Callable[[int], None] | None,
                now: datetime) -> ImportOutcome:
        """Import the task's file in `session` and mark it done there (atomic with the rows).
        Raises `importer.ImportRejected` (roll back; then `fail`) when rejected whole."""
        task = get_task(session, self.task_id)
        data = task.upload or b""
        outcome = importer.import_leads(
            session, io.BytesIO(data), skip_invalid=bool(task.params.get("skip_invalid")),
            report=self._report_error, progress=progress, workers=0, now=now)
        task.result = {"rows": outcome.rows, "invalid": outcome.invalid,
                       "created": outcome.created, "updated": outcome.updated}
        task.report = self.report()
        task.upload = None
        finish_task(session, task, now=now)
        return outcome

    def fail(self, session: Session, exc: Exception, *, now: datetime) -> None:
        if isinstance(exc, importer.ImportRejected):
            outcome = exc.outcome
            found = (f"stopped at line {outcome.errors_capped_at_line} after "
                     f"{importer.MAX_ERRORS} errors" if outcome.errors_capped_at_line
                     else f"{outcome.invalid} of {outcome.rows} rows invalid")
            message = (f"Nothing imported: {found}. Download the error report, fix the rows "
                       "and import the file again, or choose to skip invalid rows.")
        elif isinstance(exc, InvalidInput):
            message = f"Nothing imported: {exc}"
        else:
            message = f"Nothing imported: the import failed ({type(exc).__name__})."
        fail_task(session, self.task_id, message, report=self.report(), now=now)
