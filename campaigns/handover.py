"""The hand-over: the few statements sending runs for every email, as plain SQL on a connection.

`mark_sending` commits an email `sending` (and the one before it on the same SMTP connection
`sent`) before the messenger is called: the at-most-once guarantee; `mark_sent` records the
last one; `settle_sent` moves the enrollments of sent emails on to their wait or their end
without planning them again. The state machine around them is `campaigns.engine`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import (
    Connection,
    Executable,
    and_,
    bindparam,
    case,
    exists,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from campaigns.engine import LEFT_NURTURE, Outgoing, wait_ends
from nurture.models import (
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Lead,
    Message,
    MessageStatus,
    Sequence,
    SequenceStatus,
    Suppression,
)

_messages, _enrollments = Message.__table__, Enrollment.__table__
_leads, _sequences, _suppressions = Lead.__table__, Sequence.__table__, Suppression.__table__

_IS_NEXT = _messages.c.id == bindparam("row_id")
_MAY_GO = and_(
    _IS_NEXT,
    _messages.c.status == MessageStatus.QUEUED.value,
    exists().where(
        _enrollments.c.id == bindparam("for_enrollment"),
        _enrollments.c.status == EnrollmentStatus.ACTIVE.value,
        _leads.c.id == _enrollments.c.lead_id,
        # each as its own literal: an IN list would be expanded again at every execution
        *(_leads.c.lifecycle_stage != literal(stage.value) for stage in LEFT_NURTURE),
        _sequences.c.id == _enrollments.c.sequence_id,
        _sequences.c.status == SequenceStatus.ACTIVE.value,
    ),
    ~exists().where(_suppressions.c.email == bindparam("address")),
)
_WAS_SENDING = and_(_messages.c.id == bindparam("sent_id"),
                    _messages.c.status == MessageStatus.SENDING.value)
_SENT_AT = bindparam("sent_at_", type_=_messages.c.sent_at.type)

_HAND_OVER = (
    # one statement an email: the next one `sending`, the one handed over before it `sent`
    update(_messages)
    .where(or_(_MAY_GO, _WAS_SENDING))
    .values(
        status=case((_IS_NEXT, MessageStatus.SENDING.value), else_=MessageStatus.SENT.value),
        attempts=case((_IS_NEXT, _messages.c.attempts + 1), else_=_messages.c.attempts),
        subject=case((_IS_NEXT, bindparam("subject_", type_=_messages.c.subject.type)),
                     else_=_messages.c.subject),
        links=case((_IS_NEXT, bindparam("links_", type_=_messages.c.links.type)),
                   else_=_messages.c.links),
        sent_at=case((_IS_NEXT, _messages.c.sent_at), else_=_SENT_AT),
        last_error=case((_IS_NEXT, _messages.c.last_error), else_=None),
    )
    .returning(_messages.c.id)
)

_MARK_SENT = (
    update(_messages)
    .where(_WAS_SENDING)
    .values(status=MessageStatus.SENT.value, sent_at=_SENT_AT, last_error=None)
)


def mark_sending(
    connection: Connection, outgoing: Outgoing, subject: str, links: dict[str, Any], *,
    sent: tuple[int, datetime] | None = None,
) -> bool:
    """Mark a queued message `sending` with its subject and tracked links, and the message
    handed over before it (`sent`: its id and when) `sent`, in one statement, which the
    caller runs in autocommit: committed when this returns, before the handover (the
    at-most-once guarantee; a click works even if the outcome stays unknown).

    False, leaving the queued message as it is, if the lead was suppressed, left nurture or
    its enrollment stopped since the batch was planned: the email must not go (the next
    plan settles it). This runs once an email, on the hot path: on PostgreSQL through
    psycopg directly, prepared on the server."""
    sent_id, sent_at = sent or (None, None)
    values = {
        "row_id": outgoing.message_id, "for_enrollment": outgoing.enrollment.id,
        "address": outgoing.lead.email, "sent_id": sent_id, "sent_at_": sent_at,
        "subject_": subject, "links_": links,
    }
    if connection.dialect.name == "postgresql":
        changed = _on_driver(connection, _HAND_OVER, values)
    else:
        changed = connection.execute(_HAND_OVER, values).scalars().all()
    return outgoing.message_id in changed


def mark_sent(connection: Connection, sent: tuple[int, datetime]) -> None:
    """The messenger took this email: `sent`. The next plan moves its enrollment on."""
    connection.execute(_MARK_SENT, {"sent_id": sent[0], "sent_at_": sent[1]})


@cache
def _postgresql_sql(statement: Executable) -> tuple[str, dict[str, Any]]:
    """A statement as psycopg's SQL text (named `%(…)s` parameters) and the values of its
    literals, compiled once."""
    compiled = statement.compile(dialect=postgresql.psycopg.dialect())  # type: ignore[attr-defined]
    return str(compiled), dict(compiled.params)


def _on_driver(connection: Connection, statement: Executable, row: dict[str, Any]) -> list[Any]:
    """Run a statement through psycopg directly, prepared on the server, and return the
    first column of what it returned: what SQLAlchemy adds to an execution (cache lookup,
    parameter processing, result wrapping) costs more than this statement itself. Only
    plain values: datetimes must be aware and are sent as UTC, dicts go as JSONB."""
    sql, params = _postgresql_sql(statement)
    params = dict(params)
    for name, value in row.items():
        if isinstance(value, dict):
            value = Jsonb(value)
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("naive datetime on the hand-over")
            value = value.astimezone(UTC)
        params[name] = value
    driver = connection.connection.driver_connection
    cursor = driver.execute(sql, params, prepare=True)  # type: ignore[union-attr]
    return [found for found, in cursor.fetchall()]


_SETTLE_WHERE = (_enrollments.c.id == bindparam("enrollment"),
                 _enrollments.c.status == EnrollmentStatus.ACTIVE.value,
                 _enrollments.c.step_id == bindparam("email_step"))
_WHEN = _enrollments.c.next_due_at.type
_SETTLE_WAIT = update(_enrollments).where(*_SETTLE_WHERE).values(
    step_id=bindparam("to_step"), step_started_at=bindparam("now_", type_=_WHEN),
    next_due_at=bindparam("due", type_=_WHEN), claimed_until=None,
)
_SETTLE_FINISH = update(_enrollments).where(*_SETTLE_WHERE).values(
    step_id=bindparam("to_step"), step_started_at=bindparam("now_", type_=_WHEN),
    status=bindparam("finished_as"), exit_reason=bindparam("reason"),
    finished_at=bindparam("now_", type_=_WHEN), next_due_at=None, claimed_until=None,
)


def settle_sent(connection: Connection, sent: list[Outgoing], *, now: datetime) -> set[int]:
    """Move the enrollments of sent emails on to their wait or their end, as the next plan
    would, without loading them again; their claims end. Returns the enrollments moved; the
    others (a branch or an email next, or stopped meanwhile) are left to the next plan."""
    waits, finishes = [], []
    for item in sent:
        then = item.then
        if then is None:
            continue
        row = {"enrollment": item.enrollment.id, "email_step": item.step.id,
               "to_step": then.step_id, "now_": now}
        if then.wait is not None:
            waits.append(row | {"due": wait_ends(then.wait, now, then.zone)})
        elif then.finish is not None:
            finishes.append(row | {"finished_as": then.finish[0].value,
                                   "reason": then.finish[1]})
    moved = 0
    for statement, rows in ((_SETTLE_WAIT, waits), (_SETTLE_FINISH, finishes)):
        if rows:
            moved += connection.execute(statement, rows).rowcount
    rows = waits + finishes
    settled = {row["enrollment"] for row in rows}
    if moved != len(rows):  # some stopped or moved meanwhile: keep those that went as asked
        settled = {enrollment_id for enrollment_id, step_id in connection.execute(
            select(_enrollments.c.id, _enrollments.c.step_id)
            .where(_enrollments.c.id.in_(settled))
        ).tuples() if any(r["enrollment"] == enrollment_id and r["to_step"] == step_id
                          for r in rows)}
    events = []
    for row in rows:
        if row["enrollment"] not in settled:
            continue
        events.append({"enrollment_id": row["enrollment"], "step_id": row["email_step"],
                       "kind": "sent", "detail": None, "at": now})
        if "finished_as" in row:
            events.append({"enrollment_id": row["enrollment"], "step_id": row["to_step"],
                           "kind": row["finished_as"], "detail": row["reason"], "at": now})
    if events:
        connection.execute(insert(EnrollmentEvent.__table__), events)
    return settled
