"""Writing checked leads in bulk, one batch at a time, inside the caller's transaction.

PostgreSQL: COPY into a temporary staging table, then one merge statement per batch. SQLite:
plain executemany. Each writer says how it wants a batch (`encode`, which runs where the rows
are checked, so possibly in a worker process) and writes it (`write`, in the importing one).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from nurture.leads.import_rows import COLUMNS, CheckedLead
from nurture.models import Lead, LifecycleChange, LifecycleStage

IMPORT_CAUSE = "imported"
"""The cause recorded in the lifecycle history of each lead a file creates."""


@dataclass(frozen=True)
class LeadWriter:
    """`encode` (a module-level function, so that it can go to a worker process) turns a
    checked batch into what `write` takes; `write` returns (leads created, leads updated)."""

    encode: Callable[[list[CheckedLead]], Any]
    write: Callable[[Any], tuple[int, int]]


def lead_writer(session: Session, now: datetime) -> LeadWriter:
    """The writer for the session's database; leads it writes are stamped `now`."""
    if session.get_bind().dialect.name == "postgresql":
        return _postgres_writer(session, now)
    return _sqlite_writer(session, now)


_PROFILE = COLUMNS[1:]
_STAGING = "lead_import_staging"
_STAGING_COLUMNS = (*COLUMNS, "attributes")
_CREATE_STAGING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} ("
    + ", ".join(
        f"{name} {'integer' if name == 'company_size' else 'text'}" for name in COLUMNS
    )
    + ", attributes jsonb) ON COMMIT DROP"
)
_COPY = f"COPY {_STAGING} ({', '.join(_STAGING_COLUMNS)}) FROM STDIN (FORMAT csv)"
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


def copy_csv(leads: list[CheckedLead]) -> bytes:
    """The batch as the body of `COPY … (FORMAT csv)`: an unquoted empty cell is NULL.

    No checked value is an empty string (LeadIn refuses them), so none is taken for NULL.
    Lines end in CRLF so that the csv module quotes any value holding a CR or an LF.
    """
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(leads)
    return text.getvalue().encode("utf-8")


def _postgres_writer(session: Session, now: datetime) -> LeadWriter:
    session.flush()  # what the session holds goes first: the rest bypasses it, same transaction
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(_CREATE_STAGING)
    cursor.execute(f"TRUNCATE {_STAGING}")
    params = {"now": now, "stage": LifecycleStage.LEAD.value, "cause": IMPORT_CAUSE}

    def write(body: bytes) -> tuple[int, int]:
        with cursor.copy(_COPY) as copy:
            copy.write(body)
        cursor.execute(_MERGE, params)
        created, updated = cursor.fetchone()
        cursor.execute(f"TRUNCATE {_STAGING}")
        return created, updated

    return LeadWriter(copy_csv, write)


def _as_they_are(leads: list[CheckedLead]) -> list[CheckedLead]:
    return leads


def _sqlite_writer(session: Session, now: datetime) -> LeadWriter:
    leads_table, history = Lead.__table__, LifecycleChange.__table__
    insert_leads = insert(leads_table).returning(leads_table.c.id, sort_by_parameter_order=True)
    update_leads = update(leads_table).where(leads_table.c.id == bindparam("lead_id"))

    def write(leads: list[CheckedLead]) -> tuple[int, int]:
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

    return LeadWriter(_as_they_are, write)
