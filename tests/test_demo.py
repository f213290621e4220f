"""`nurture seed-demo`: six months through the real services, the same for the same seed,
refused on a database in use, and nothing sent to any SMTP server or CRM."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from nurture.accounts.services import check_password
from nurture.config import load_settings, with_secret_key
from nurture.db import Database
from nurture.demo.seeding import seed_demo
from nurture.demo.simulation import Interrupted
from nurture.migrate import upgrade_database
from nurture.models import (
    EngagementEvent,
    Enrollment,
    Handoff,
    HandoffNotification,
    Lead,
    Message,
    Outcome,
    Rejection,
    RejectionReason,
    User,
)
from nurture.testing import scratch_database

UNTIL = date(2026, 11, 23)
"""A fixed last day: the same seed gives the same history whatever day the test runs."""

KEY_FIELDS = {
    "leads": "SELECT email, lifecycle_stage, created_at FROM leads",
    "rejections": "SELECT l.email, r.reason, r.rep_email, r.rejected_at, r.crm_id "
                  "FROM rejections r JOIN leads l ON l.id = r.lead_id",
    "enrollments": "SELECT l.email, s.key, e.status, e.exit_reason, e.enrolled_at, e.step_id "
                   "FROM enrollments e JOIN leads l ON l.id = e.lead_id "
                   "JOIN sequences s ON s.id = e.sequence_id",
    "messages": "SELECT l.email, m.step_id, m.status, m.sent_at, m.subject "
                "FROM messages m JOIN leads l ON l.id = m.lead_id",
    "events": "SELECT l.email, e.type, e.source, e.occurred_at, e.is_machine, "
              "e.machine_reason, e.url FROM engagement_events e LEFT JOIN leads l "
              "ON l.id = e.lead_id",
    "handoffs": "SELECT l.email, h.status, h.rep_email, h.created_at, h.escalations, "
                "h.reassignments, h.closed_at FROM handoffs h JOIN leads l ON l.id = h.lead_id",
    "notifications": "SELECT n.channel, n.purpose, n.status, n.recipient, n.created_at "
                     "FROM handoff_notifications n",
    "suppressions": "SELECT email, reason FROM suppressions",
}
"""Each table's rows by what they mean (no generated ids or random message ids)."""


def snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    with database.engine.connect() as connection:
        return {name: sorted((tuple(row) for row in connection.execute(text(query))), key=repr)
                for name, query in KEY_FIELDS.items()}


@contextmanager
def fresh_database(tmp_path: Path, name: str) -> Iterator[Database]:
    """An empty, migrated database of the kind the suite runs on (PostgreSQL or SQLite)."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith("postgres"):
        with scratch_database(configured, prefix="nurture_demo") as url:
            upgrade_database(url)
            database = Database(url)
            try:
                yield database
            finally:
                database.dispose()
        return
    url = f"sqlite:///{tmp_path / name}.db"
    upgrade_database(url)
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()


def settings_for(service_env: dict[str, str], **extra: str) -> Any:
    return with_secret_key(load_settings({**service_env, **extra}))


def test_seed_demo_builds_six_months_through_the_services(runner, db, count):
    result = runner.invoke(args=["seed-demo", "--leads", "120", "--seed", "3",
                                 "--until", UNTIL.isoformat()])

    assert result.exit_code == 0, result.output
    assert "demo sign-in" in result.output
    assert count(Lead) == 120
    with db.session_scope() as session:
        reasons = set(session.execute(select(Rejection.reason).distinct()).scalars())
        stages = dict(session.execute(
            select(Lead.lifecycle_stage, func.count()).group_by(Lead.lifecycle_stage)).all())
        machine = session.execute(select(func.count()).select_from(EngagementEvent)
                                  .where(EngagementEvent.is_machine.is_(True))).scalar_one()
        human = session.execute(select(func.count()).select_from(EngagementEvent)
                                .where(EngagementEvent.is_machine.is_(False))).scalar_one()
        statuses = dict(session.execute(
            select(Handoff.status, func.count()).group_by(Handoff.status)).all())
        sent = session.execute(select(func.count()).select_from(Message)
                               .where(Message.status == "sent")).scalar_one()
        first, last = session.execute(
            select(func.min(Rejection.rejected_at), func.max(Rejection.rejected_at))).one()
        # the printed passwords sign in
        for line in result.output.splitlines():
            parts = line.split()
            if len(parts) >= 3 and "@demo.example.com" in parts[1]:
                assert check_password(session, parts[1], parts[2]) is not None, line
        users = session.execute(select(func.count()).select_from(User)).scalar_one()
        outcomes = set(session.execute(select(Outcome.kind).distinct()).scalars())
    assert reasons == set(RejectionReason)  # sales's, the SLA's expiries and stalls
    assert stages.get("nurturing", 0) > 0 and stages.get("customer", 0) > 0
    assert machine > 0 and human > 0
    assert {"accepted", "rejected", "expired"} <= set(statuses)  # accepted, again, lapsed
    assert {"opportunity_created", "won"} <= outcomes  # (losses too, in larger histories)
    assert sent > 120
    assert (last - first).days > 120  # spread over the months, not one day
    assert users == 9  # marketer, approver, six reps, admin
    assert count(Enrollment) >= 100


def test_the_same_seed_builds_the_same_history_and_another_seed_another(tmp_path,
                                                                         service_env):
    settings = settings_for(service_env)
    snapshots = []
    for name, seed in (("one", 11), ("two", 11), ("three", 12)):
        with fresh_database(tmp_path, name) as database:
            seed_demo(database, settings, seed=seed, leads=40, until=UNTIL)
            snapshots.append(snapshot(database))
    same, again, other = snapshots

    assert {name: len(rows) for name, rows in same.items()} == \
        {name: len(rows) for name, rows in again.items()}
    assert same == again
    assert len(same["messages"]) > 0 and len(same["events"]) > 0
    assert same["leads"] != other["leads"]


def test_a_database_in_use_is_refused_and_left_as_it_was(runner, api, count):
    assert api.post("/api/v1/leads", json={"email": "dana@example.com"}).status_code == 201

    result = runner.invoke(args=["seed-demo", "--leads", "5"])

    assert result.exit_code == 1
    assert "not empty (leads" in result.output
    assert count(Lead) == 1
    assert count(User) == 0


def test_nothing_reaches_the_smtp_server_or_the_crm(tmp_path, service_env, smtp_server,
                                                    receiver):
    sink, smtp_url = smtp_server
    settings = settings_for(service_env, SMTP_URL=smtp_url, CRM_WEBHOOK_URL=receiver.url,
                            CRM_WEBHOOK_SECRET="s" * 32)
    assert settings.smtp_url and settings.crm_webhook_url  # configured, yet never used

    with fresh_database(tmp_path, "quiet") as database:
        seeded = seed_demo(database, settings, seed=5, leads=60, until=UNTIL)
        with database.session_scope() as session:
            webhooks = dict(session.execute(
                select(HandoffNotification.status, func.count())
                .where(HandoffNotification.channel == "crm_webhook")
                .group_by(HandoffNotification.status)).all())
            handoffs = session.execute(select(func.count()).select_from(Handoff)).scalar_one()

    assert seeded.emails_sunk > 0
    assert sink.messages == [] and receiver.requests == []
    assert handoffs > 0
    assert webhooks == {"skipped": handoffs}  # recorded as not sent, to no URL


def test_a_run_asked_to_stop_stops_at_once(tmp_path, service_env):
    with fresh_database(tmp_path, "stopped") as database:
        with pytest.raises(Interrupted, match="the history is partial"):
            seed_demo(database, settings_for(service_env), leads=50, until=UNTIL,
                      stop=lambda: True)
        with database.session_scope() as session:
            leads = session.execute(select(func.count()).select_from(Lead)).scalar_one()
    assert leads == 0  # stopped before the first hour: the staff and content only


def test_outbox_is_not_written(tmp_path, service_env):
    """Without SMTP_URL, sending would go to the instance's outbox: the demo's does not."""
    instance = tmp_path / "instance"
    settings = replace(settings_for(service_env), instance_path=instance)
    with fresh_database(tmp_path, "outbox") as database:
        seed_demo(database, settings, seed=2, leads=15, until=UNTIL)
    assert not (instance / "outbox").exists() or not any((instance / "outbox").iterdir())
