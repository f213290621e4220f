"""The rows of a leads file: its header, its records with their line numbers, and their checks.

Reading happens in the importing process; checking a batch is a pure function of it, so that
worker processes can do it (`check_batch`), with the same rules as the API (`LeadIn`).
"""

from __future__ import annotations

import codecs
import csv
import importlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any, BinaryIO

from pydantic import AfterValidator, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from nurture.errors import InvalidInput
from nurture.fields import field_errors
from nurture.leads.schemas import Email, LeadIn, attributes_json
from nurture.models import Lead

ATTRIBUTE_PREFIX = "attributes."
"""A column named `attributes.<key>` sets that key of the lead's attributes object."""

COLUMNS = ("email", *(name for name in Lead.PROFILE_FIELDS if name != "attributes"))
"""The lead fields a file may carry as columns of their own (CONTRACT.md, POST /leads)."""

HEADER_LIMIT_BYTES = 64 * 1024
"""A first line longer than this is not a header: the file is refused without reading on."""

LINE_LIMIT_CHARS = 1024 * 1024
"""A longer physical line is a row error; keeps memory bounded whatever the file holds."""

OWNER_CACHE_SIZE = 10_000
"""Distinct owner addresses remembered per process: a file names few owners for many leads."""

DOMAIN_CACHE_SIZE = 20_000
"""Distinct email domains whose syntax check is remembered during an import."""

Record = tuple[int, list[str] | str]
"""(line, cells), or (line, why the record cannot be read as CSV)."""

CheckedLead = list[Any]
"""A valid row, rows with the same email merged: the COLUMNS, then the attributes as JSON."""


# Reading: header first, then records with their line numbers, never a whole line unbounded.


def _header_error(problem: str) -> InvalidInput:
    allowed = ", ".join(COLUMNS) + f", {ATTRIBUTE_PREFIX}<key>"
    return InvalidInput(
        f"wrong header: {problem} (columns allowed: {allowed}; email is required)",
        {"header": [problem]},
    )


def read_header(source: io.BufferedReader) -> tuple[str, ...]:
    """The column names of the first line, or `InvalidInput` saying what is wrong with it."""
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


class CountingReader(io.RawIOBase):
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


def read_records(text: io.TextIOWrapper) -> Iterator[Record]:
    """The CSV records after the header, each with the line it starts on."""
    # an exception from the csv reader spoils one record; the reader reads on after it
    lines = _Lines(text)
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


def batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    """The records in lists of `size` (the last one shorter)."""
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# Checking: pure functions of the batch, so that they can run in worker processes.


@contextmanager
def domain_checks_remembered() -> Iterator[None]:
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
    """`LeadIn` with its rules, except that each distinct owner address is checked once, and
    the attributes are kept as the JSON text their size was checked on (it is what is stored).
    """

    owner_email: Annotated[Email, WrapValidator(_memoised_email)] | None = None
    attributes: Annotated[dict[str, Any], AfterValidator(attributes_json)] | None = None


_lead_values = attrgetter(*COLUMNS, "attributes")


@dataclass
class CheckedBatch:
    """A checked batch: its valid rows merged by email, as the writer takes them."""

    leads: Any = None
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    rows: int = 0
    invalid: int = 0


def check_batch(
    columns: tuple[str, ...],
    records: list[Record],
    encode: Callable[[list[CheckedLead]], Any],
) -> CheckedBatch:
    """Check each record as the API checks a lead; `encode` turns the valid ones into what
    the writer takes (it runs where the check runs, in a worker process if there are any)."""
    checked = CheckedBatch()
    merged: dict[str, CheckedLead] = {}
    width = len(columns)
    profile = [(i, name) for i, name in enumerate(columns) if not name.startswith(ATTRIBUTE_PREFIX)]
    keys = [(i, name[len(ATTRIBUTE_PREFIX):]) for i, name in enumerate(columns)
            if name.startswith(ATTRIBUTE_PREFIX)]
    for line, cells in records:
        if isinstance(cells, str):
            checked.rows += 1
            checked.invalid += 1
            checked.errors.append((line, "", cells))
            continue
        values = [cell.strip() for cell in cells]  # an empty cell means "not given"
        given = values if len(values) == width else values[:width]
        extra = len(values) > width and any(values[width:])
        if not (extra or any(given)):
            continue  # a blank row, as spreadsheets leave at the end
        checked.rows += 1
        problems: list[tuple[str, str]] = []
        if extra or len(values) < width:
            problems.append(("", f"has {len(cells)} cells; the header has {width} columns"))
        if not "".join(given).isascii():
            problems += [(name, "not valid UTF-8")  # fewer cells than columns: reported above
                         for name, value in zip(columns, given, strict=False)
                         if _has_undecodable_bytes(value)]
        if not problems:
            data = {name: value for i, name in profile if (value := given[i])}
            attributes = {key: value for i, key in keys if (value := given[i])}
            if attributes:
                data["attributes"] = attributes
            try:
                lead = _CsvLead.model_validate(data, strict=False)
            except ValidationError as exc:
                problems = [(f, m) for f, messages in field_errors(exc).items() for m in messages]
            else:
                found = list(_lead_values(lead))
                earlier = merged.setdefault(lead.email, found)
                if earlier is not found:
                    _apply_later_row(earlier, found)
        if problems:
            checked.invalid += 1
            checked.errors += [(line, name, message) for name, message in problems]
    checked.leads = encode(list(merged.values()))
    return checked


def _has_undecodable_bytes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: a byte that surrogateescape set aside
        return True
    return False


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _apply_later_row(earlier: CheckedLead, later: CheckedLead) -> None:
    """Fold a later row for the same email into an earlier one, as two API calls would."""
    for i, value in enumerate(later[1:-1], start=1):
        if value is not None:
            earlier[i] = value
    if later[-1]:
        attributes = json.loads(earlier[-1]) if earlier[-1] else {}
        earlier[-1] = _json({**attributes, **json.loads(later[-1])})
