"""Bulk intake: a CSV file of leads, read as a stream, each row checked as the API checks it.

`import_leads` upserts the valid rows batch by batch inside the caller's transaction:
PostgreSQL through COPY into a temporary staging table and one merge statement per batch,
SQLite through plain executemany. The caller commits; `ImportRejected` (an invalid row without
`skip_invalid`) means roll back, so a file is never half-written. Checking a row (mostly the
email syntax) costs more than writing it, so large files are checked in worker processes
while this one reads and writes. Reading and checking rows live in `import_rows`, writing them
in `import_writer`; this module runs the import and keeps its public names.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from sqlalchemy.orm import Session

from nurture.errors import InvalidInput
from nurture.leads.import_rows import (
    COLUMNS,
    HEADER_LIMIT_BYTES,
    LINE_LIMIT_CHARS,
    CheckedBatch,
    CheckedLead,
    CountingReader,
    Record,
    batches,
    check_batch,
    domain_checks_remembered,
    read_header,
    read_records,
)
from nurture.leads.import_writer import IMPORT_CAUSE, lead_writer

__all__ = [
    "BATCH_ROWS", "COLUMNS", "HEADER_LIMIT_BYTES", "IMPORT_CAUSE", "LINE_LIMIT_CHARS",
    "MAX_ERRORS", "ImportOutcome", "ImportRejected", "RowError", "default_workers",
    "import_leads",
]

BATCH_ROWS = 5_000
"""Rows checked and written together: enough that per-statement costs vanish."""

MAX_ERRORS = 1_000
"""Errors collected before giving up on a file that is going to be rejected anyway."""

POOL_MIN_BYTES = 4 * 1024 * 1024
"""Files smaller than this are checked in this process: starting workers costs more."""

MAX_WORKERS = 4
"""Checking processes at most: past that, the database and this process are the bottleneck."""

GC_YOUNG_OBJECTS = 100_000
"""Allocations between two collections of the young generation during an import."""


@dataclass(frozen=True)
class RowError:
    """Why a row was not imported; `line` is where its record starts (the header is line 1)."""

    line: int
    field: str
    message: str


@dataclass
class ImportOutcome:
    """What an import did; `created` and `updated` count leads, the rest count rows."""

    rows: int = 0
    invalid: int = 0
    created: int = 0
    updated: int = 0
    errors_capped_at_line: int | None = None


class ImportRejected(InvalidInput):
    """The file has invalid rows and `skip_invalid` was not asked: nothing may be kept."""

    def __init__(self, outcome: ImportOutcome) -> None:
        super().__init__(f"{outcome.invalid} invalid rows; nothing imported")
        self.outcome = outcome


def default_workers(size_bytes: int, cpus: int | None) -> int:
    """How many processes should check the rows of a file of this size (0: this one)."""
    if size_bytes < POOL_MIN_BYTES or not cpus or cpus < 2:
        return 0
    return min(cpus, MAX_WORKERS)


def import_leads(
    session: Session,
    source: BinaryIO,
    *,
    skip_invalid: bool,
    report: Callable[[RowError], None],
    progress: Callable[[int], None] | None = None,
    workers: int = 0,
    now: datetime,
) -> ImportOutcome:
    """Create or update a lead for each valid row of the CSV in `source`, matched by email.

    The header must name `email` and only lead fields or `attributes.<key>` columns, else
    `InvalidInput` before any row is read. Rows are checked with the API's rules (`LeadIn`);
    an empty cell leaves the field as it is. Rows with the same email apply in file order, so
    the last one wins for each field it gives. Each problem goes to `report`, in file order.
    Without `skip_invalid`, any invalid row raises `ImportRejected` once the file is read (or
    after MAX_ERRORS errors) and the caller must roll back. `progress` gets the bytes read.
    """
    counted = CountingReader(source)
    buffered = io.BufferedReader(counted, buffer_size=64 * 1024)
    columns = read_header(buffered)
    text = io.TextIOWrapper(buffered, encoding="utf-8", errors="surrogateescape", newline="")
    writer = lead_writer(session, now)
    outcome = ImportOutcome()
    reported = 0
    checked_batches = _checked_batches(columns, read_records(text), writer.encode, workers)
    # closing() stops the worker processes at once when reading stops early
    with _collector_spared(), domain_checks_remembered(), closing(checked_batches):
        for checked in checked_batches:
            outcome.rows += checked.rows
            outcome.invalid += checked.invalid
            for line, name, message in checked.errors:
                if not skip_invalid and reported >= MAX_ERRORS:
                    outcome.errors_capped_at_line = line
                    break
                report(RowError(line, name, message))
                reported += 1
            if outcome.errors_capped_at_line is not None:
                break
            if checked.leads and (skip_invalid or not outcome.invalid):
                created, updated = writer.write(checked.leads)
                outcome.created += created
                outcome.updated += updated
            if progress is not None:
                progress(counted.bytes)
    if outcome.invalid and not skip_invalid:
        raise ImportRejected(outcome)
    return outcome


@contextmanager
def _collector_spared() -> Iterator[None]:
    """Garbage collection as an import needs it, until the block ends.

    An import allocates millions of short-lived objects, and by default the collector runs
    every 700 of them and now and then walks every object of the process (the app and its
    libraries): about a fifth of the import's CPU. The objects that exist before the import are
    left out of collection (forked workers then do not copy the pages they are on either), and
    the young generation is collected every GC_YOUNG_OBJECTS allocations, which still keeps
    memory bounded (invalid rows leave some reference cycles behind). A freeze made before by
    someone else (a preforking server) is left as it was.
    """
    thresholds = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen_before:
            gc.unfreeze()


def _checked_batches(
    columns: tuple[str, ...],
    records: Iterator[Record],
    encode: Callable[[list[CheckedLead]], object],
    workers: int,
) -> Iterator[CheckedBatch]:
    """Batches in file order, checked here or by `workers` processes a few batches ahead."""
    if workers <= 0:
        for batch in batches(records, BATCH_ROWS):
            yield check_batch(columns, batch, encode)
        return
    # fork: workers start at once with the schemas loaded and the domain memo in place; they
    # never touch the database connection they inherit. An executor, not a Pool: when reading
    # stops early, shutdown cancels what has not started instead of killing workers that a
    # feeder thread may be blocked on, and a worker that dies raises instead of hanging.
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    pending: deque[Future[CheckedBatch]] = deque()
    try:
        for batch in batches(records, BATCH_ROWS):
            pending.append(executor.submit(check_batch, columns, batch, encode))
            if len(pending) > 2 * workers:  # bounded read-ahead keeps memory flat
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
