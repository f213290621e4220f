"""`nurture import-leads FILE.csv`: bulk intake with a per-row error report."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import click
from flask import current_app
from flask.cli import with_appcontext

from nurture.clock import utcnow
from nurture.db import Database
from nurture.errors import InvalidInput
from nurture.leads import importer
from nurture.leads.importer import ImportOutcome, ImportRejected, RowError

REPORT_HEADER = ("line", "field", "message")
"""First row of every error report; also how a report left by an earlier run is recognised."""


class ErrorReport:
    """The per-row error report, a CSV created at the first error.

    A report that an earlier run left at the same path is removed when this run has no error,
    so that the file next to the input always describes the last import of it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Callable[[tuple[object, ...]], object] | None = None

    def write(self, error: RowError) -> None:
        if self._writer is None:
            self._file = self.path.open("w", encoding="utf-8", errors="backslashreplace",
                                        newline="")
            self._writer = csv.writer(self._file).writerow
            self._writer(REPORT_HEADER)
        self._writer((error.line, error.field, error.message))
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        elif self._left_by_earlier_run():
            self.path.unlink()

    def _left_by_earlier_run(self) -> bool:
        try:
            with self.path.open(encoding="utf-8", errors="replace", newline="") as file:
                return next(csv.reader([file.readline()]), None) == list(REPORT_HEADER)
        except (FileNotFoundError, IsADirectoryError):
            return False


@contextmanager
def _progress(total_bytes: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over bytes read, on stderr, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total_bytes, label="importing", file=sys.stderr) as bar:
        def advance(bytes_read: int) -> None:
            bar.update(min(bytes_read, total_bytes) - bar.pos)

        yield advance


@click.command("import-leads")
@click.argument("path", metavar="FILE.csv",
                type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows and report the others. By default any invalid row "
                   "rejects the whole file and nothing is imported.")
@click.option("--errors", "errors_path", metavar="PATH",
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Where to write the error report (CSV: line, field, message). "
                   "Default: FILE.errors.csv next to FILE.csv.")
@click.option("--workers", type=click.IntRange(min=0), metavar="N",
              help="Processes that check rows (0: this one). Default: by file size.")
@with_appcontext
def import_leads(path: Path, skip_invalid: bool, errors_path: Path | None,
                 workers: int | None) -> None:
    """Create or update leads from FILE.csv, matched by email.

    The header names the columns: email (required), first_name, last_name, company, title,
    industry, company_size, country, timezone, source, owner_email, crm_id, and
    attributes.<key> for keys of the lead's attributes. An empty cell leaves the field as it
    is; when an email appears twice, the later row wins.
    """
    report_path = errors_path or path.with_name(f"{path.stem}.errors.csv")
    if report_path.resolve() == path.resolve():
        raise click.UsageError("the error report cannot be the file being imported")
    if not report_path.parent.is_dir():
        raise click.UsageError(f"no folder {report_path.parent} for the error report")
    size = path.stat().st_size
    if workers is None:
        workers = importer.default_workers(size, os.cpu_count())
    database: Database = current_app.extensions["nurture.db"]
    report = ErrorReport(report_path)
    try:
        with (
            path.open("rb") as source,
            _progress(size) as progress,
            database.session_scope() as session,
        ):
            outcome = importer.import_leads(
                session, source, skip_invalid=skip_invalid, report=report.write,
                progress=progress, workers=workers, now=utcnow(),
            )
    except ImportRejected as exc:
        raise click.ClickException(_rejection(path, exc.outcome, report_path)) from None
    except InvalidInput as exc:
        raise click.ClickException(f"{path}: {exc}; nothing imported") from None
    finally:
        report.close()
    click.echo(_summary(path, outcome, report_path))


def _summary(path: Path, outcome: ImportOutcome, report_path: Path) -> str:
    imported = outcome.rows - outcome.invalid
    line = (f"imported {imported} rows from {path}: {outcome.created} leads created, "
            f"{outcome.updated} updated")
    if outcome.invalid:
        return f"{line}; {outcome.invalid} invalid rows skipped, listed in {report_path}"
    return f"{line}; no invalid rows"


def _rejection(path: Path, outcome: ImportOutcome, report_path: Path) -> str:
    if outcome.errors_capped_at_line is not None:
        found = (f"stopped reading at line {outcome.errors_capped_at_line} after "
                 f"{importer.MAX_ERRORS} errors")
    else:
        found = f"{outcome.invalid} invalid rows"
    return (f"rejected {path}: {found}; nothing imported (errors listed in {report_path}; "
            "--skip-invalid imports the valid rows)")


COMMANDS = [import_leads]
