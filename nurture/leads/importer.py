"""Bulk intake: a CSV file of leads, read as a stream, each row checked as the API checks it.

`import_leads` upserts the valid rows batch by batch inside the caller's transaction:
PostgreSQL through COPY into a temporary staging table and one merge statement per batch,
SQLite through plain executemany. The caller commits; `ImportRejected` (an invalid row without
`skip_invalid`) means roll back, so a file is never half-written. Checking a row (mostly the
email syntax) costs more than writing it, so large files are checked in worker processes
while this one reads and writes.
"""

from __future__ import annotations

import codecs
import csv
import importlib
import io
import json
import multiprocessing
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, BinaryIO

from pydantic import ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from nurture.errors import InvalidInput
from nurture.fields import field_errors
from nurture.leads.schemas import Email, LeadIn
from nurture.models import Lead, LifecycleChange, LifecycleStage

ATTRIBUTE_PREFIX = "attributes."
"""A column named `attributes.<key>` sets that key of the lead's attributes object."""

COLUMNS = ("email", *(name for name in Lead.PROFILE_FIELDS if name != "attributes"))
"""The lead fields a file may carry as columns of their own (CONTRACT.md, POST /leads)."""

HEADER_LIMIT_BYTES = 64 * 1024
"""A first line longer than this is not a header: the file is refused without reading on."""

LINE_LIMIT_CHARS = 1024 * 1024
"""A longer physical line is a row error; keeps memory bounded whatever the file holds."""

BATCH_ROWS = 5_000
"""Rows checked and written together: enough that per-statement costs vanish."""

MAX_ERRORS = 1_000
"""Errors collected before giving up on a file that is going to be rejected anyway."""

OWNER_CACHE_SIZE = 10_000
"""Distinct owner addresses remembered per process: a file names few owners for many leads."""

DOMAIN_CACHE_SIZE = 20_000
"""Distinct email domains whose syntax check is remembered during an import."""

POOL_MIN_BYTES = 4 * 1024 * 1024
"""Files smaller than this are checked in this process: starting workers costs more."""

MAX_WORKERS = 4
"""Checking processes at most: past that, the database and this process are the bottleneck."""

IMPORT_CAUSE = "imported"
"""The cause recorded in the lifecycle history of each lead a file creates."""

_STAGING = "lead_import_staging"


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
    counted = _CountingReader(source)
    buffered = io.BufferedReader(counted, buffer_size=64 * 1024)
    columns = _read_header(buffered)
    text = io.TextIOWrapper(buffered, encoding="utf-8", errors="surrogateescape", newline="")
    writer = _postgres_writer if session.get_bind().dialect.name == "postgresql" else _sqlite_writer
    write = writer(session, now)
    outcome = ImportOutcome()
    reported = 0
    batches = _checked_batches(columns, _records(_Lines(text)), workers)
    # closing() stops the worker processes at once when reading stops early
    with _domain_checks_remembered(), closing(batches):
        for checked in batches:
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
                created, updated = write(checked.leads)
                outcome.created += created
                outcome.updated += updated
            if progress is not None:
                progress(counted.bytes)
    if outcome.invalid and not skip_invalid:
        raise ImportRejected(outcome)
    return outcome


# Reading: header first, then records with their line numbers, never a whole line unbounded.


def _header_error(problem: str) -> InvalidInput:
    allowed = ", ".join(COLUMNS) + f", {ATTRIBUTE_PREFIX}<key>"
    return InvalidInput(
        f"wrong header: {problem} (columns allowed: {allowed}; email is required)",
        {"header": [problem]},
    )


def _read_header(source: io.BufferedReader) -> tuple[str, ...]:
    line = source.readline(HEADER_LIMIT_BYTES + 1)
    if not line:
        raise _header_error("the file is empty; its first line must name the columns")
    if len(line) > HEADER_LIMIT_BYTES:
        raise _header_error(f"the first line is longer than {HEADER_LIMIT_BYTES} bytes")
    try:
        text = line.removeprefix(codecs.BOM_UTF8).decode("utf-8")
        names = next(csv.reader([text], strict=True))
    except UnicodeDecodeError:
        raise _header_error("the first line is not UTF-8 text; is this a CSV file?") from None
    except (csv.Error, StopIteration) as exc:
        raise _header_error(f"the first line is not a CSV header ({exc or 'empty'})") from None
    columns, problems = [], []
    for position, raw in enumerate(names, start=1):
        name = raw.strip()
        key = name[len(ATTRIBUTE_PREFIX):].strip()
        if name.lower() in COLUMNS:
            name = name.lower()
        elif name[: len(ATTRIBUTE_PREFIX)].lower() == ATTRIBUTE_PREFIX and key:
            name = ATTRIBUTE_PREFIX + key
        elif not name:
            problems.append(f"column {position} has no name")
        else:
            problems.append(f"unknown column {raw[:60]!r}")
        columns.append(name)
    repeated = [name for name, n in Counter(columns).items() if n > 1 and name]
    problems += [f"column {name!r} appears more than once" for name in repeated]
    if "email" not in columns:
        problems.insert(0, "no email column")
    if problems:
        more = f" and {len(problems) - 3} more problems" if len(problems) > 3 else ""
        raise _header_error("; ".join(problems[:3]) + more)
    return tuple(columns)


class _CountingReader(io.RawIOBase):
    """The source as a raw stream that counts the bytes read from it (for progress)."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.source.readinto(buffer)  # type: ignore[attr-defined]
        self.bytes += n or 0
        return n or 0


class _LineTooLong(Exception):
    """A physical line passed LINE_LIMIT_CHARS; the rest of it has been skipped."""


class _Lines:
    """Physical lines for the csv reader, each at most LINE_LIMIT_CHARS, counted."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self.text = text
        self.count = 1  # the header

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(LINE_LIMIT_CHARS)
        if not line:
            raise StopIteration
        self.count += 1
        if len(line) == LINE_LIMIT_CHARS and not line.endswith(("\n", "\r")):
            while (rest := self.text.readline(LINE_LIMIT_CHARS)) and not rest.endswith(
                ("\n", "\r")
            ):
                pass
            raise _LineTooLong
        return line


Record = tuple[int, list[str] | str]
"""(line, cells), or (line, why the record cannot be read as CSV)."""


def _records(lines: _Lines) -> Iterator[Record]:
    # an exception from the csv reader spoils one record; the reader reads on after it
    reader = csv.reader(lines, strict=True)
    while True:
        start = lines.count + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"cannot be read as CSV: {exc}"
            continue
        except _LineTooLong:
            yield start, f"the line is longer than {LINE_LIMIT_CHARS} characters"
            continue
        if cells:
            yield start, cells


def _batches(records: Iterator[Record]) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


# Checking: pure functions of the batch, so that they can run in worker processes.


@contextmanager
def _domain_checks_remembered() -> Iterator[None]:
    """email-validator's domain check, remembered per domain until the block ends.

    The check is most of the cost of an address (Unicode tables for each character) and a
    file repeats a few thousand domains over many leads. It is a pure function of the domain
    and its options, so remembering it changes no outcome; email-validator has no hook for
    it, hence the swap of its module's name for the duration (worker processes forked inside
    the block inherit it).
    """
    module = importlib.import_module("email_validator.validate_email")
    check = getattr(module, "validate_email_domain_name", None)
    if check is None:  # a future email-validator: no shortcut, same rules
        yield
        return
    module.validate_email_domain_name = lru_cache(maxsize=DOMAIN_CACHE_SIZE)(check)
    try:
        yield
    finally:
        module.validate_email_domain_name = check


_owner_emails: dict[str, str] = {}


def _memoised_email(value: Any, check: ValidatorFunctionWrapHandler) -> Any:
    known = _owner_emails.get(value) if isinstance(value, str) else None
    if known is None:
        known = check(value)
        if isinstance(value, str) and len(_owner_emails) < OWNER_CACHE_SIZE:
            _owner_emails[value] = known
    return known


class _CsvLead(LeadIn):
    """`LeadIn` as it is, except that each distinct owner address is checked once."""

    owner_email: Annotated[Email, WrapValidator(_memoised_email)] | None = None


@dataclass
class _Checked:
    """A checked batch: its valid rows merged by email (as COLUMNS + attributes as JSON)."""

    leads: list[tuple[Any, ...]] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    rows: int = 0
    invalid: int = 0


def _check_batch(columns: tuple[str, ...], records: list[Record]) -> _Checked:
    checked = _Checked()
    merged: dict[str, list[Any]] = {}
    width = len(columns)
    for line, cells in records:
        if isinstance(cells, str):
            checked.rows += 1
            checked.invalid += 1
            checked.errors.append((line, "", cells))
            continue
        data: dict[str, Any] = {}
        attributes: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for name, cell in zip(columns, cells, strict=False):  # a count mismatch is reported below
            value = cell.strip()
            if not value:
                continue  # an empty cell means "not given"
            if not value.isascii() and _has_undecodable_bytes(value):
                problems.append((name, "not valid UTF-8"))
            elif name.startswith(ATTRIBUTE_PREFIX):
                attributes[name[len(ATTRIBUTE_PREFIX):]] = value
            else:
                data[name] = value
        extra = any(cell.strip() for cell in cells[width:])
        if not (data or attributes or problems or extra):
            continue  # a blank row, as spreadsheets leave at the end
        checked.rows += 1
        if extra or len(cells) < width:
            problems.insert(0, ("", f"has {len(cells)} cells; the header has {width} columns"))
        if not problems:
            if attributes:
                data["attributes"] = attributes
            try:
                lead = _CsvLead.model_validate(data, strict=False)
            except ValidationError as exc:
                problems = [(f, m) for f, messages in field_errors(exc).items() for m in messages]
            else:
                values = [getattr(lead, name) for name in COLUMNS] + [lead.attributes]
                earlier = merged.setdefault(lead.email, values)
                if earlier is not values:
                    _apply_later_row(earlier, values)
        if problems:
            checked.invalid += 1
            checked.errors += [(line, name, message) for name, message in problems]
    checked.leads = [
        (*values[:-1], _json(values[-1]) if values[-1] else None) for values in merged.values()
    ]
    return checked


def _has_undecodable_bytes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: a byte that surrogateescape set aside
        return True
    return False


def _apply_later_row(earlier: list[Any], later: list[Any]) -> None:
    """Fold a later row for the same email into an earlier one, as two API calls would."""
    for i, value in enumerate(later[1:-1], start=1):
        if value is not None:
            earlier[i] = value
    if later[-1]:
        earlier[-1] = {**(earlier[-1] or {}), **later[-1]}


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _checked_batches(
    columns: tuple[str, ...], records: Iterator[Record], workers: int
) -> Iterator[_Checked]:
    """Batches in file order, checked here or by `workers` processes a few batches ahead."""
    if workers <= 0:
        for batch in _batches(records):
            yield _check_batch(columns, batch)
        return
    # fork: workers start at once with the schemas loaded and the domain memo in place; they
    # never touch the database connection they inherit. An executor, not a Pool: when reading
    # stops early, shutdown cancels what has not started instead of killing workers that a
    # feeder thread may be blocked on, and a worker that dies raises instead of hanging.
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    pending: deque[Future[_Checked]] = deque()
    try:
        for batch in _batches(records):
            pending.append(executor.submit(_check_batch, columns, batch))
            if len(pending) > 2 * workers:  # bounded read-ahead keeps memory flat
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


# Writing: one function per dialect, each (session, now) -> write(leads) -> (created, updated).

_PROFILE = COLUMNS[1:]
_STAGING_COLUMNS = (*COLUMNS, "attributes")
_CREATE_STAGING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} ("
    + ", ".join(
        f"{name} {'integer' if name == 'company_size' else 'text'}" for name in COLUMNS
    )
    + ", attributes jsonb) ON COMMIT DROP"
)
_MERGE = f"""
WITH merged AS (
    INSERT INTO leads ({", ".join(_STAGING_COLUMNS)}, lifecycle_stage, created_at, updated_at)
    SELECT {", ".join(COLUMNS)}, coalesce(attributes, '{{}}'), %(stage)s, %(now)s, %(now)s
    FROM {_STAGING}
    ON CONFLICT (email) DO UPDATE SET
        {", ".join(f"{n} = coalesce(EXCLUDED.{n}, leads.{n})" for n in _PROFILE)},
        attributes = leads.attributes || EXCLUDED.attributes,
        updated_at = EXCLUDED.updated_at
    WHERE ({", ".join(f"leads.{n}" for n in _PROFILE)}, leads.attributes)
        IS DISTINCT FROM
        ({", ".join(f"coalesce(EXCLUDED.{n}, leads.{n})" for n in _PROFILE)},
         leads.attributes || EXCLUDED.attributes)
    RETURNING id, xmax = 0 AS inserted, created_at
), history AS (
    INSERT INTO lifecycle_changes (lead_id, from_stage, to_stage, cause, changed_at)
    SELECT id, NULL, %(stage)s, %(cause)s, %(now)s FROM merged WHERE inserted
)
SELECT count(*) FILTER (WHERE inserted),
       count(*) FILTER (WHERE NOT inserted AND created_at <> %(now)s)
FROM merged
"""
"""One batch into leads: unchanged leads are not rewritten; `xmax = 0` marks inserted rows,
and a lead created earlier in this import (created_at = now) does not count as updated."""


def _postgres_writer(
    session: Session, now: datetime
) -> Callable[[list[tuple[Any, ...]]], tuple[int, int]]:
    session.flush()  # what the session holds goes first: the rest bypasses it, same transaction
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(_CREATE_STAGING)
    cursor.execute(f"TRUNCATE {_STAGING}")
    params = {"now": now, "stage": LifecycleStage.LEAD.value, "cause": IMPORT_CAUSE}

    def write(leads: list[tuple[Any, ...]]) -> tuple[int, int]:
        with cursor.copy(f"COPY {_STAGING} ({', '.join(_STAGING_COLUMNS)}) FROM STDIN") as copy:
            for lead in leads:
                copy.write_row(lead)
        cursor.execute(_MERGE, params)
        created, updated = cursor.fetchone()
        cursor.execute(f"TRUNCATE {_STAGING}")
        return created, updated

    return write


def _sqlite_writer(
    session: Session, now: datetime
) -> Callable[[list[tuple[Any, ...]]], tuple[int, int]]:
    leads_table, history = Lead.__table__, LifecycleChange.__table__
    insert_leads = insert(leads_table).returning(leads_table.c.id, sort_by_parameter_order=True)
    update_leads = update(leads_table).where(leads_table.c.id == bindparam("lead_id"))

    def write(leads: list[tuple[Any, ...]]) -> tuple[int, int]:
        emails = [lead[0] for lead in leads]
        existing = {}
        for start in range(0, len(emails), 500):  # under SQLite's bound-parameter limit
            query = select(leads_table).where(leads_table.c.email.in_(emails[start:start + 500]))
            existing.update({row.email: row for row in session.execute(query)})
        fresh, changed, updated = [], [], 0
        for lead in leads:
            given = dict(zip(_STAGING_COLUMNS, lead, strict=True))
            attributes = json.loads(given["attributes"]) if given["attributes"] else {}
            old = existing.get(given["email"])
            if old is None:
                fresh.append({**given, "attributes": attributes, "created_at": now,
                              "updated_at": now, "lifecycle_stage": LifecycleStage.LEAD})
                continue
            new = {n: old._mapping[n] if given[n] is None else given[n] for n in _PROFILE}
            new["attributes"] = {**(old.attributes or {}), **attributes}
            if any(new[n] != old._mapping[n] for n in new):
                changed.append({**new, "lead_id": old.id, "updated_at": now})
                updated += old.created_at != now  # not a lead this import created
        if fresh:
            ids = session.execute(insert_leads, fresh).scalars().all()
            session.execute(insert(history), [
                {"lead_id": i, "from_stage": None, "to_stage": LifecycleStage.LEAD,
                 "cause": IMPORT_CAUSE, "changed_at": now} for i in ids
            ])
        if changed:
            session.execute(update_leads, changed)
        return len(fresh), updated

    return write
