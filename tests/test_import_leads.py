"""`nurture import-leads FILE.csv`: streamed bulk intake, all or nothing unless --skip-invalid."""

from __future__ import annotations

import csv
import io
import os
import pty
import random
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from nurture.clock import utcnow
from nurture.errors import InvalidInput
from nurture.fields import field_errors
from nurture.leads import importer
from nurture.leads.schemas import LeadIn
from nurture.leads.services import upsert_lead
from nurture.models import Lead, LifecycleChange, LifecycleStage

HEADER = ["email", "first_name", "last_name", "company", "company_size", "country", "timezone",
          "owner_email", "crm_id", "attributes.plan", "attributes.region"]


def write_rows(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def row(email: str, **fields: str) -> list[str]:
    given = {"email": email, **{k.replace("__", "."): v for k, v in fields.items()}}
    return [given.get(name, "") for name in HEADER]


def read_report(path: Path) -> list[tuple[int, str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        assert next(reader) == ["line", "field", "message"]
        return [(int(line), field, message) for line, field, message in reader]


def stored(db) -> dict[str, Lead]:
    with db.session_scope() as session:
        return {lead.email: lead for lead in session.execute(select(Lead)).scalars()}


def import_file(runner, path: Path, *options: str):
    return runner.invoke(args=["import-leads", str(path), *options])


def seed_lead(db, email: str, fields: dict, *, days_ago: int = 1) -> None:
    with db.session_scope() as session:
        upsert_lead(session, email, fields, now=utcnow() - timedelta(days=days_ago))


def test_a_good_file_creates_and_updates_leads_with_their_attributes(runner, db, count, tmp_path):
    seed_lead(db, "old@example.com", {"first_name": "Olga", "last_name": "Orr", "company": "OldCo",
                                      "attributes": {"tier": "gold"}})
    before = stored(db)["old@example.com"].updated_at
    path = write_rows(tmp_path / "leads.csv", [
        row("Ann@Example.COM", first_name=" Ann ", last_name="Lee", company="Acme",
            company_size="120", country="de", timezone="Europe/Berlin",
            owner_email="Rep@Example.com", crm_id="CRM-1", attributes__plan="pro",
            attributes__region="emea"),
        row("old@example.com", company="NewCo", attributes__region="apac"),
        row("bob@example.com", first_name="Bob"),
    ])

    result = import_file(runner, path)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"imported 3 rows from {path}: 2 leads created, 1 updated; no invalid rows"
    )
    leads = stored(db)
    assert set(leads) == {"ann@example.com", "old@example.com", "bob@example.com"}
    ann = leads["ann@example.com"]
    assert ann.profile() == {
        "first_name": "Ann", "last_name": "Lee", "company": "Acme", "title": None,
        "industry": None, "company_size": 120, "country": "DE", "timezone": "Europe/Berlin",
        "source": None, "owner_email": "rep@example.com", "crm_id": "CRM-1",
        "attributes": {"plan": "pro", "region": "emea"},
    }
    old = leads["old@example.com"]
    # given fields change; empty cells leave fields as they were; attributes merge by key
    assert (old.first_name, old.last_name, old.company) == ("Olga", "Orr", "NewCo")
    assert old.attributes == {"tier": "gold", "region": "apac"}
    assert old.updated_at > before
    assert leads["bob@example.com"].attributes == {}
    with db.session_scope() as session:
        history = session.execute(
            select(LifecycleChange).where(LifecycleChange.cause == importer.IMPORT_CAUSE)
        ).scalars().all()
        assert sorted(c.lead_id for c in history) == sorted([ann.id, leads["bob@example.com"].id])
        assert {(c.from_stage, c.to_stage) for c in history} == {(None, LifecycleStage.LEAD)}
    assert count(LifecycleChange) == 3  # the seeded lead's own "created"
    assert not (tmp_path / "leads.errors.csv").exists()


def test_importing_the_same_file_again_changes_nothing(runner, db, tmp_path):
    path = write_rows(tmp_path / "leads.csv", [
        row("a@example.com", first_name="Ann", attributes__plan="pro"),
        row("b@example.com", company="Beta", company_size="5"),
    ])
    assert import_file(runner, path).exit_code == 0
    first = {email: (lead.updated_at, lead.profile()) for email, lead in stored(db).items()}

    again = import_file(runner, path)

    assert again.exit_code == 0, again.output
    assert "imported 2 rows" in again.stdout and "0 leads created, 0 updated" in again.stdout
    assert {email: (lead.updated_at, lead.profile()) for email, lead in stored(db).items()} == first


@pytest.fixture()
def one_row_per_batch(monkeypatch):
    """Batches of one row: every row is written before the next is read."""
    monkeypatch.setattr(importer, "BATCH_ROWS", 1)


def mixed_rows() -> list[list[str]]:
    return [
        row("good1@example.com", first_name="One"),
        row("old@example.com", company="Changed"),
        row("not-an-email", first_name="Bad"),
        row("good2@example.com", company_size="many"),
        row("good3@example.com", country="Atlantis", attributes__plan="pro"),
        row("good4@example.com", first_name="Four"),
    ]


def test_one_invalid_row_rejects_the_whole_file(runner, db, count, tmp_path, one_row_per_batch):
    seed_lead(db, "old@example.com", {"company": "Original"})
    leads_before, history_before = count(Lead), count(LifecycleChange)
    path = write_rows(tmp_path / "leads.csv", mixed_rows())

    result = import_file(runner, path)

    assert result.exit_code == 1
    assert f"rejected {path}: 3 invalid rows; nothing imported" in result.stderr
    assert (count(Lead), count(LifecycleChange)) == (leads_before, history_before)
    assert stored(db)["old@example.com"].company == "Original"
    report = read_report(tmp_path / "leads.errors.csv")
    assert [(line, field) for line, field, _ in report] == [
        (4, "email"), (5, "company_size"), (6, "country"),
    ]
    assert "@-sign" in report[0][2] and "Atlantis" in report[2][2]


def test_skip_invalid_imports_the_good_rows_and_reports_the_others(runner, db, tmp_path):
    seed_lead(db, "old@example.com", {"company": "Original"})
    path = write_rows(tmp_path / "leads.csv", mixed_rows())
    report_path = tmp_path / "report.csv"

    result = import_file(runner, path, "--skip-invalid", "--errors", str(report_path))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"imported 3 rows from {path}: 2 leads created, 1 updated; "
        f"3 invalid rows skipped, listed in {report_path}"
    )
    leads = stored(db)
    assert set(leads) == {"old@example.com", "good1@example.com", "good4@example.com"}
    assert leads["old@example.com"].company == "Changed"
    assert [(line, field) for line, field, _ in read_report(report_path)] == [
        (4, "email"), (5, "company_size"), (6, "country"),
    ]


def test_line_numbers_count_physical_lines_of_quoted_multiline_cells(runner, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text('email,company\na@example.com,"Acme\nEurope"\n\nnope,X\n', encoding="utf-8")

    result = import_file(runner, path, "--skip-invalid")

    assert result.exit_code == 0, result.output
    assert [line for line, _, _ in read_report(tmp_path / "leads.errors.csv")] == [5]


@pytest.mark.parametrize(("header", "problem"), [
    ("first_name,company", "no email column"),
    ("email,favourite_colour", "unknown column 'favourite_colour'"),
    ("email,first_name,First_Name", "column 'first_name' appears more than once"),
    ("email,attributes.plan,attributes.plan", "column 'attributes.plan' appears more than once"),
    ("email,,company", "column 2 has no name"),
    ("email,attributes.", "unknown column 'attributes.'"),
    ("email,attributes", "unknown column 'attributes'"),
])
def test_a_wrong_header_is_refused_before_any_row_even_with_skip_invalid(
    runner, count, tmp_path, header, problem
):
    path = tmp_path / "leads.csv"
    path.write_text(f"{header}\na@example.com,x,y\n", encoding="utf-8")

    result = import_file(runner, path, "--skip-invalid")

    assert result.exit_code == 1
    assert f"wrong header: {problem}" in result.stderr and "nothing imported" in result.stderr
    assert "email is required" in result.stderr
    assert count(Lead) == 0
    assert not (tmp_path / "leads.errors.csv").exists()


NOT_UTF8 = (b"email,first_name\na@example.com,Zo\xc3\xab\nb@example.com,B\xe9a\n"
            b"c@example.com,Cy\n")


def test_a_byte_that_is_not_utf8_rejects_the_file(runner, count, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes(NOT_UTF8)

    result = import_file(runner, path)

    assert result.exit_code == 1
    assert count(Lead) == 0
    assert read_report(tmp_path / "leads.errors.csv") == [(3, "first_name", "not valid UTF-8")]


def test_a_byte_that_is_not_utf8_skips_only_its_row_with_skip_invalid(runner, db, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes(NOT_UTF8)

    result = import_file(runner, path, "--skip-invalid")

    assert result.exit_code == 0, result.output
    leads = stored(db)
    assert set(leads) == {"a@example.com", "c@example.com"}
    assert leads["a@example.com"].first_name == "Zoë"
    assert read_report(tmp_path / "leads.errors.csv") == [(3, "first_name", "not valid UTF-8")]


def test_random_bytes_are_refused_at_the_header_without_reading_on(runner, db, count, tmp_path):
    garbage = random.Random(7).randbytes(4 * 1024 * 1024)
    path = tmp_path / "garbage.csv"
    path.write_bytes(garbage)

    result = import_file(runner, path, "--skip-invalid")

    assert result.exit_code == 1
    assert "wrong header: the first line is not UTF-8 text" in result.stderr
    assert count(Lead) == 0
    source = io.BytesIO(garbage)
    with db.session_scope() as session, pytest.raises(InvalidInput):
        importer.import_leads(session, source, skip_invalid=True, report=print, now=utcnow())
    assert source.tell() <= 2 * importer.HEADER_LIMIT_BYTES


def test_a_first_line_too_long_for_a_header_is_refused_without_reading_on(runner, db, tmp_path):
    blob = random.Random(8).randbytes(3 * 1024 * 1024).replace(b"\n", b"").replace(b"\r", b"")
    path = tmp_path / "blob.csv"
    path.write_bytes(blob)

    result = import_file(runner, path)

    assert result.exit_code == 1
    assert f"longer than {importer.HEADER_LIMIT_BYTES} bytes" in result.stderr
    source = io.BytesIO(blob)
    with db.session_scope() as session, pytest.raises(InvalidInput):
        importer.import_leads(session, source, skip_invalid=False, report=print, now=utcnow())
    assert source.tell() <= 2 * importer.HEADER_LIMIT_BYTES


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_garbage_body_is_rejected_after_max_errors_without_reading_it_all(
    runner, db, count, tmp_path, workers
):
    body = random.Random(9).randbytes(4 * 1024 * 1024)
    data = b"email,first_name\n" + body
    path = tmp_path / "leads.csv"
    path.write_bytes(data)

    result = import_file(runner, path, "--workers", workers)

    assert result.exit_code == 1
    assert f"after {importer.MAX_ERRORS} errors; nothing imported" in result.stderr
    assert len(read_report(tmp_path / "leads.errors.csv")) == importer.MAX_ERRORS
    assert count(Lead) == 0
    source = io.BytesIO(data)
    reported = []
    with db.session_scope() as session, pytest.raises(importer.ImportRejected):
        importer.import_leads(session, source, skip_invalid=False, report=reported.append,
                              now=utcnow())
    assert len(reported) == importer.MAX_ERRORS
    assert source.tell() < len(data) / 2


def test_rows_that_cannot_be_read_as_csv_are_row_errors(runner, db, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text(
        "email,first_name\n"
        "a@example.com,A\x00nn\n"  # line 2: NUL
        'b@example.com,"Bo"b\n'  # line 3: a quote inside a quoted cell
        f'c@example.com,"{"x" * 200_000}"\n'  # line 4: a cell over the csv field limit
        "d@example.com,Dee\n"  # line 5
        f"e@example.com,{'y' * (importer.LINE_LIMIT_CHARS + 10)}\n"  # line 6: a line too long
        "f@example.com,Fay\n"  # line 7
        "g@example.com,Gus,extra\n"  # line 8: one cell too many
        "h@example.com\n"  # line 9: one cell too few
        "i@example.com,Ida,,\n",  # line 10: empty trailing cells are fine
        encoding="utf-8",
    )

    result = import_file(runner, path, "--skip-invalid")

    assert result.exit_code == 0, result.output
    assert set(stored(db)) == {"d@example.com", "f@example.com", "i@example.com"}
    report = read_report(tmp_path / "leads.errors.csv")
    assert [(line, field) for line, field, _ in report] == [
        (2, "first_name"), (3, ""), (4, ""), (6, ""), (8, ""), (9, ""),
    ]
    messages = [message for _, _, message in report]
    assert "NUL" in messages[0]
    assert messages[1].startswith("cannot be read as CSV")
    assert "field larger than field limit" in messages[2]
    assert f"longer than {importer.LINE_LIMIT_CHARS} characters" in messages[3]
    assert messages[4] == "has 3 cells; the header has 2 columns"
    assert messages[5] == "has 1 cells; the header has 2 columns"


@pytest.mark.parametrize("batch_rows", [importer.BATCH_ROWS, 1])
def test_duplicate_emails_apply_in_file_order_so_the_last_row_wins(
    runner, db, tmp_path, monkeypatch, batch_rows
):
    monkeypatch.setattr(importer, "BATCH_ROWS", batch_rows)
    path = write_rows(tmp_path / "leads.csv", [
        row("dup@example.com", first_name="Ann", company="Acme", attributes__plan="free"),
        row("other@example.com", first_name="Otto"),
        row("DUP@Example.com", first_name="Anna", attributes__plan="pro",
            attributes__region="emea"),
        row("dup@example.com", last_name="Lee"),
    ])

    result = import_file(runner, path)

    assert result.exit_code == 0, result.output
    assert "imported 4 rows" in result.stdout and "2 leads created, 0 updated" in result.stdout
    dup = stored(db)["dup@example.com"]
    assert (dup.first_name, dup.last_name, dup.company) == ("Anna", "Lee", "Acme")
    assert dup.attributes == {"plan": "pro", "region": "emea"}


def test_a_utf8_bom_and_crlf_line_ends_are_accepted(runner, db, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfEmail,First_Name\r\na@example.com,Zo\xc3\xab\r\n")

    result = import_file(runner, path)

    assert result.exit_code == 0, result.output
    assert stored(db)["a@example.com"].first_name == "Zoë"


def test_an_empty_file_is_refused(runner, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    result = import_file(runner, path)

    assert result.exit_code == 1
    assert "wrong header: the file is empty" in result.stderr


def test_a_header_alone_imports_nothing_and_succeeds(runner, count, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("email,first_name\n\n,\n", encoding="utf-8")

    result = import_file(runner, path)

    assert result.exit_code == 0, result.output
    assert "imported 0 rows" in result.stdout
    assert count(Lead) == 0


def test_progress_is_not_printed_when_stderr_is_not_a_terminal(runner, tmp_path):
    path = write_rows(tmp_path / "leads.csv", [row(f"p{i}@example.com") for i in range(50)])

    result = import_file(runner, path)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("imported 50 rows")


def test_progress_is_shown_when_stderr_is_a_terminal(app, service_env, tmp_path):
    path = write_rows(tmp_path / "leads.csv", [row(f"p{i}@example.com") for i in range(50)])
    controller, terminal = pty.openpty()
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nurture", "import-leads", str(path)],
            env={**os.environ, **service_env}, stdout=subprocess.PIPE, stderr=terminal,
            timeout=120, check=False,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=30)
        os.close(controller)
    assert done.returncode == 0, shown.decode(errors="replace")
    assert done.stdout.decode().startswith("imported 50 rows")
    assert b"importing" in shown and b"100%" in shown


def test_worker_processes_give_the_same_outcome_as_one_process(runner, db, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "BATCH_ROWS", 7)
    rows = [row(f"w{i}@example.com", first_name=f"W{i}", country="fr" if i % 9 else "xx",
                owner_email=f"rep{i % 3}@example.com") for i in range(100)]
    rows += [row("w1@example.com", company="Later")]
    path = write_rows(tmp_path / "leads.csv", rows)
    outcomes = []
    for workers in ("0", "2"):
        result = import_file(runner, path, "--skip-invalid", "--workers", workers)
        assert result.exit_code == 0, result.output
        leads = {email: lead.profile() for email, lead in stored(db).items()}
        outcomes.append((result.stdout.split(":", 1)[1], leads,
                         read_report(tmp_path / "leads.errors.csv")))
        with db.session_scope() as session:
            session.execute(LifecycleChange.__table__.delete())
            session.execute(Lead.__table__.delete())
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0][1]) == 88 and len(outcomes[0][2]) == 12
    assert outcomes[0][1]["w1@example.com"]["company"] == "Later"


CHECKED_ADDRESSES = [
    "Ann@Example.COM", "ann@bücher.de", "x@xn--bcher-kva.de", "ä@example.com", "nope",
    "a@localhost", "a@example.invalid", "a@@b.com", "a@-bad-.com", '"quoted"@example.com',
    "a@[127.0.0.1]", "a@b.c", "a..b@example.com", "a@exa mple.com", "a@" + "x" * 250 + ".com",
]


def api_outcome(email: str, owner: str) -> tuple[str | None, dict]:
    try:
        lead = LeadIn.model_validate({"email": email, "owner_email": owner}, strict=False)
    except ValidationError as exc:
        return None, field_errors(exc)
    return lead.owner_email, {}


def test_rows_are_checked_exactly_as_the_api_checks_them(runner, db, tmp_path):
    # each address twice, as a lead's and as an owner's: the second time may come from memory
    rows = [row(f"r{i}.{n}@example.com", owner_email=address)
            for n in range(2) for i, address in enumerate(CHECKED_ADDRESSES)]
    rows += [row(address) for n in range(2) for address in CHECKED_ADDRESSES]
    path = write_rows(tmp_path / "leads.csv", rows)

    result = import_file(runner, path, "--skip-invalid")

    assert result.exit_code == 0, result.output
    leads = stored(db)
    errors: dict[int, dict[str, list[str]]] = {}
    for line, field, message in read_report(tmp_path / "leads.errors.csv"):
        errors.setdefault(line, {}).setdefault(field, []).append(message)
    for position, values in enumerate(rows):
        email, owner = values[0], values[HEADER.index("owner_email")] or None
        normalised_owner, api_errors = api_outcome(email, owner)
        line = position + 2
        assert errors.get(line, {}) == api_errors, (line, email, owner)
        if not api_errors:
            expected = LeadIn.model_validate({"email": email}, strict=False).email
            assert leads[expected].owner_email == normalised_owner
    assert len(errors) > len(CHECKED_ADDRESSES)  # many rows were refused, in both columns


def test_the_report_path_is_checked_first_and_an_old_report_is_cleared(runner, count, tmp_path):
    path = write_rows(tmp_path / "leads.csv", [row("bad"), row("good@example.com")])
    refused = import_file(runner, path, "--skip-invalid", "--errors", str(path))
    assert refused.exit_code == 2 and "cannot be the file being imported" in refused.output
    assert path.read_text(encoding="utf-8").startswith("email,")
    nowhere = import_file(runner, path, "--skip-invalid", "--errors",
                          str(tmp_path / "missing" / "report.csv"))
    assert nowhere.exit_code == 2 and "no folder" in nowhere.output
    assert count(Lead) == 0

    assert import_file(runner, path).exit_code == 1
    assert (tmp_path / "leads.errors.csv").exists()
    write_rows(path, [row("good@example.com")])
    assert import_file(runner, path).exit_code == 0
    assert not (tmp_path / "leads.errors.csv").exists()

    other = tmp_path / "notes.csv"
    other.write_text("my,own,file\n", encoding="utf-8")
    assert import_file(runner, path, "--errors", str(other)).exit_code == 0
    assert other.read_text(encoding="utf-8") == "my,own,file\n"


def test_a_nul_in_an_attribute_is_refused_and_a_backslash_u0000_text_is_kept(runner, db, tmp_path):
    path = write_rows(tmp_path / "leads.csv", [
        row("a@example.com", attributes__plan="x\x00y"),
        row("b@example.com", attributes__plan="\\u0000", attributes__region="emea"),
    ])

    result = import_file(runner, path, "--skip-invalid")

    assert result.exit_code == 0, result.output
    assert read_report(tmp_path / "leads.errors.csv") == [
        (2, "attributes", "must not contain the NUL character (U+0000) at plan"),
    ]
    assert stored(db)["b@example.com"].attributes == {"plan": "\\u0000", "region": "emea"}


def test_values_with_separators_quotes_and_line_breaks_are_stored_as_they_are(
    runner, db, tmp_path
):
    awkward = 'Ann, "the" first\r\nline two\rthree\\N \\. ë'
    path = write_rows(tmp_path / "leads.csv", [
        row("a@example.com", first_name=awkward, company="\\.", attributes__plan=awkward),
    ])

    result = import_file(runner, path)

    assert result.exit_code == 0, result.output
    lead = stored(db)["a@example.com"]
    assert (lead.first_name, lead.company, lead.attributes["plan"]) == (awkward, "\\.", awkward)
