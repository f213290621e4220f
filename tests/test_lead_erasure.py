"""Erasing a lead for GDPR (nurture.leads.erasure): nothing that names the person is left in
any table, and every aggregate it counted in is as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from nurture.clock import utcnow
from nurture.errors import Conflict
from nurture.leads.erasure import erase_lead, erased_address, is_erased
from nurture.models import (
    Base,
    EngagementEvent,
    Enrollment,
    EnrollmentStatus,
    EventType,
    Handoff,
    HandoffEvent,
    HandoffNotification,
    HandoffStatus,
    Lead,
    LifecycleStage,
    Message,
    MessageStatus,
    NotificationChannel,
    NotificationStatus,
    ReportCount,
    ReportJourney,
    Role,
    Suppression,
    SuppressionReason,
)
from tests.conftest import Api
from tests.test_api_sequences import make_collateral
from tests.test_routing import sequence

PERSONAL = ("vera@example.com", "Vera", "Verapamil", "Acme Anvils", "Chief Anvil Officer",
            "CRM-VERA-1", "ask about her twins", "198.51.100.7", "Mozilla/5.0 Vera")


def every_text_value(db) -> str:
    """Every value of every table, as one string."""
    chunks = []
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(text(f"SELECT * FROM {table.name}")):
                chunks.append(" ".join(str(v) for v in row))
    return "\n".join(chunks)


def aggregates(db):
    with db.session_scope() as session:
        return (session.execute(select(ReportCount.metric, func.sum(ReportCount.n))
                                .group_by(ReportCount.metric).order_by(ReportCount.metric)).all(),
                session.execute(select(func.count()).select_from(ReportJourney)).scalar_one())


def test_erasure_removes_every_trace_of_the_person_and_keeps_the_numbers(db, api, client,
                                                                          make_token):
    marketer = Api(client, make_token(Role.MARKETER, "marketer"))
    make_collateral(db)
    sequence(marketer, "timing", reasons=("bad_timing",))
    answer = api.post("/api/v1/rejections", json={
        "lead": {"email": "vera@example.com", "first_name": "Vera", "last_name": "Verapamil",
                 "company": "Acme Anvils", "title": "Chief Anvil Officer", "crm_id": "CRM-VERA-1",
                 "industry": "software", "country": "DE", "attributes": {"kids": "twins"}},
        "rep_email": "rita@example.com", "reason": "bad_timing", "note": "ask about her twins"})
    assert answer.status_code == 201
    lead_id, now = answer.json["lead"]["id"], utcnow()
    with db.session_scope() as session:
        enrollment = session.execute(select(Enrollment)).scalar_one()
        message = Message(message_id="m-1", enrollment_id=enrollment.id, step_id="hello",
                          lead_id=lead_id, to_address="vera@example.com",
                          subject="Vera, your anvil guide", status=MessageStatus.SENT, links={},
                          created_at=now, sent_at=now)
        session.add(message)
        session.flush()
        session.add(EngagementEvent(
            lead_id=lead_id, message_id=message.id, type=EventType.CLICK, occurred_at=now,
            received_at=now, source="sendgrid", url="https://acme.example/?who=vera@example.com",
            properties={"ip": "198.51.100.7", "useragent": "Mozilla/5.0 Vera"}))
        handoff = Handoff(lead_id=lead_id, rep_email="rex@example.com", score={"total": 70},
                          qualified_at=now, sla_due_at=now + timedelta(hours=1),
                          next_sla_at=now + timedelta(minutes=30), handoff_ms=10, created_at=now)
        session.add(handoff)
        session.flush()
        session.add(HandoffEvent(handoff_id=handoff.id, kind="created", rep_email="rex@example.com",
                                 detail="Vera Verapamil is hot", at=now))
        session.add(HandoffNotification(
            public_id="n-1", handoff_id=handoff.id, channel=NotificationChannel.CRM_WEBHOOK,
            purpose="handoff", recipient="https://crm.example/hook",
            body='{"lead": {"email": "vera@example.com", "first_name": "Vera"}}',
            status=NotificationStatus.PENDING, next_attempt_at=now, created_at=now))
        session.add(Suppression(email="vera@example.com", reason=SuppressionReason.MANUAL,
                                created_at=now))
    before = every_text_value(db)
    assert all(value in before for value in PERSONAL)  # the test data is really there
    counted = aggregates(db)

    with db.session_scope() as session:
        lead = erase_lead(session, lead_id, now=utcnow())
        assert is_erased(lead)

    after = every_text_value(db)
    for value in PERSONAL:
        assert value not in after, value
    assert aggregates(db)[1] == counted[1]  # journeys kept
    kept = dict(aggregates(db)[0])
    assert all(kept[metric] >= n for metric, n in counted[0])  # counts only grow (the exit)
    with db.session_scope() as session:
        lead = session.get(Lead, lead_id)
        assert lead.email == erased_address(lead_id) and lead.attributes == {}
        assert (lead.industry, lead.country) == ("software", "DE")  # groupings, not a person
        assert lead.lifecycle_stage == LifecycleStage.DISQUALIFIED
        enrollment = session.execute(select(Enrollment)).scalar_one()
        assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED, "erased")
        handoff = session.execute(select(Handoff)).scalar_one()
        assert handoff.status == HandoffStatus.EXPIRED and handoff.next_sla_at is None
        notification = session.execute(select(HandoffNotification)).scalar_one()
        assert notification.status == NotificationStatus.FAILED and notification.body is None
        assert session.execute(select(func.count()).select_from(Message)).scalar_one() == 1

    with db.session_scope() as session, pytest.raises(Conflict):
        erase_lead(session, lead_id, now=utcnow())
