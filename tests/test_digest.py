"""The alignment digest: the period's key numbers against the period before, sent once per
period whoever races to send it, and after a restart."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from rq import SimpleWorker
from sqlalchemy import select

from campaigns.intake import reject_lead
from campaigns.messengers import SmtpMessenger
from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.handoffs import services as handoffs
from nurture.models import Digest, RejectionReason, Role
from nurture.reports.digest import DigestSettings, due_period, send_due_digest
from tests.test_reports import NO_WAIT, SCORE, clock, history, make_rep, sending  # noqa: F401
from workers import digests
from workers.dispatcher import Tick, dispatch_digest
from workers.queues import all_queues

PEOPLE = ("marketing@example.com", "sales@example.com")


def test_periods_are_fixed_fortnights_and_the_last_ended_one_is_due():
    assert due_period(date(2026, 12, 7), 14) == due_period(date(2026, 12, 20), 14)
    period = due_period(date(2026, 12, 7), 14)
    assert (period.start, period.end) == (date(2026, 11, 23), date(2026, 12, 6))
    assert due_period(date(2026, 12, 21), 14).start == date(2026, 12, 7)
    assert period.previous().end == date(2026, 11, 22)


def test_the_digest_is_sent_once_with_the_numbers_and_their_change(db, history, smtp_server):  # noqa: F811
    """The history of test_reports lies in the fortnight 23 Nov – 6 Dec 2026; the fortnight
    before it is empty."""
    sink, url = smtp_server
    settings = DigestSettings(recipients=PEOPLE, days=14, mail_from="Nurture <n@example.com>",
                              base_url="http://127.0.0.1:8000")
    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    before = len(sink.messages)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def race() -> None:
        barrier.wait()
        results.append(send_due_digest(db, settings, lambda: SmtpMessenger(url, timeout=5),
                                       now=now))

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["claimed elsewhere", "sent"]
    # a restart in the same fortnight: nothing more
    assert send_due_digest(db, settings, lambda: SmtpMessenger(url, timeout=5),
                           now=now + timedelta(days=3)) == "claimed elsewhere"
    digests_sent = sink.messages[before:]
    assert len(digests_sent) == 1
    email = digests_sent[0]
    assert str(email["Subject"]).strip() == ("Sales and marketing, 2026-11-23 to 2026-12-06: "
                                "2 leads recycled, 50% accepted")
    assert email["To"] == ", ".join(PEOPLE)
    text = email.get_body(("plain",)).get_content()
    for line in (
        "- Leads that entered nurture: 4 (before: 0; +4)",
        "- Leads recycled to sales: 2 (before: 0; +2)",
        "- Accepted by sales: 1 (before: 0; +1)",
        "- Rejected again: 1 (before: 0; +1)",
        "- Acceptance rate: 50% (before: n/a; no comparison)",
        "- Deals won: 1 (before: 0; +1)",
        "- Revenue won from recycled leads: 12,000.00 (before: 0.00; +12,000.00)",
        "- Median time to the rep's first action: 3 min (before: n/a; no comparison)",
        "- First action within 5 minutes of qualifying: 50% (before: n/a; no comparison)",
        "- Handoffs worked within the SLA: 1 (before: 0; +1)",
        "- Handoffs escalated: 1 (before: 0; +1)",
    ):
        assert line in text, text
    assert "<td>Leads recycled to sales</td>" in email.get_body(("html",)).get_content()
    with db.session_scope() as session:
        row = session.execute(select(Digest)).scalar_one()
        assert (row.period_start, row.status.value) == (date(2026, 11, 23), "sent")


def test_two_dispatchers_and_a_restart_send_the_digest_once(app, db, smtp_server, service_env,
                                                            monkeypatch):
    sink, url = smtp_server
    for name, value in {**service_env, "SMTP_URL": url,
                        "NURTURE_DIGEST_RECIPIENTS": ",".join(PEOPLE)}.items():
        monkeypatch.setenv(name, value)
    redis = app.extensions["nurture.redis"]
    period = due_period(utcnow().date(), 14)  # the worker's clock is real
    at = datetime.combine(period.start, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    make_rep(db, "rita@example.com", "east")
    with db.session_scope() as session:
        lead_id = reject_lead(session, "d@example.com", {}, rep_email="rita@example.com",
                              reason=RejectionReason.NO_NEED, now=at).lead_id
    with db.session_scope() as session:
        handoff = handoffs.recycle(session, lead_id, score=SCORE, model_version_id=None,
                                   qualifying_event_id=None, qualified_at=at, now=at,
                                   policy=NO_WAIT)
        handoff_id = handoff.id
    with db.session_scope() as session:
        handoffs.accept(session, handoff_id, actor=Actor("rita@example.com", Role.REP),
                        now=at + timedelta(minutes=2))
    barrier = threading.Barrier(2)

    def tick() -> None:
        barrier.wait()
        dispatch_digest(Tick(redis, db, "test", utcnow()))

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(q.count for q in all_queues(redis)) == 1
    SimpleWorker(all_queues(redis), connection=redis).work(burst=True, logging_level="WARNING")
    assert len(sink.messages) == 1
    assert "1 leads recycled, 100% accepted" in sink.messages[0]["Subject"]
    dispatch_digest(Tick(redis, db, "test", utcnow()))  # claimed: nothing enqueued
    assert sum(q.count for q in all_queues(redis)) == 0
    assert digests.send_digest(period.start.isoformat()) == "claimed elsewhere"  # a restart
    assert len(sink.messages) == 1


def test_no_recipients_no_digest(app, db, monkeypatch, service_env):
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NURTURE_DIGEST_RECIPIENTS", raising=False)
    redis = app.extensions["nurture.redis"]
    dispatch_digest(Tick(redis, db, "test", utcnow()))
    assert sum(q.count for q in all_queues(redis)) == 0
    with db.session_scope() as session:
        assert session.execute(select(Digest)).first() is None
