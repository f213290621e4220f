"""Recycle to sales: eligibility, the rep chosen, the lead out of nurture, one handoff per lead."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from campaigns.intake import reject_lead
from nurture.accounts.services import create_user
from nurture.handoffs import services
from nurture.handoffs.notifications import new_notifications
from nurture.handoffs.policy import RecyclePolicy, add_business_time
from nurture.models import (
    Enrollment,
    Handoff,
    HandoffEvent,
    HandoffNotification,
    Lead,
    LifecycleChange,
    LongTermNurture,
    NotificationChannel,
    RejectionReason,
    Role,
)
from tests.conftest import Api
from tests.test_api_sequences import make_collateral
from tests.test_routing import sequence

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday
LONG_AGO = T0 - timedelta(days=200)

SCORE = {
    "total": 72, "fit": 30, "engagement": 42, "model_version": 1,
    "explanation": [{"rule": "pricing page visit", "points": 25, "at": T0 - timedelta(hours=1)},
                    {"rule": "webinar attended", "points": 17, "at": T0 - timedelta(days=2)}],
}


def make_rep(db, email, *, active=True, timezone="UTC", role=Role.REP):
    with db.session_scope() as session:
        user = create_user(session, email, role, timezone=timezone, now=LONG_AGO)
        user.is_active = active
        return user.id


def rejected_lead(db, email="lena@example.com", *, reason=RejectionReason.NO_BUDGET,
                  rep="rita@example.com", rejected_at=LONG_AGO, revisit_on=None):
    with db.session_scope() as session:
        intake = reject_lead(session, email, {"company": "Acme", "first_name": "Lena"},
                             rep_email=rep, reason=reason, revisit_on=revisit_on,
                             rejected_at=rejected_at, now=rejected_at)
        return intake.lead_id


def recycle(db, lead_id, *, now=T0, policy=None, score=SCORE):
    with db.session_scope() as session:
        kwargs = {"policy": policy} if policy else {}
        handoff = services.recycle(session, lead_id, score=score, model_version_id=7,
                                   qualifying_event_id=None, qualified_at=now - timedelta(
                                       milliseconds=250), now=now, **kwargs)
        notifications = new_notifications(session)
        return (handoff.id if handoff else None), notifications


def test_a_qualified_lead_goes_back_to_the_rep_who_rejected_it(db, count):
    make_rep(db, "rita@example.com", timezone="Europe/Berlin")
    make_rep(db, "other@example.com")
    lead_id = rejected_lead(db)
    handoff_id, notifications = recycle(db, lead_id)
    assert handoff_id is not None
    with db.session_scope() as session:
        handoff = session.get(Handoff, handoff_id)
        lead = session.get(Lead, lead_id)
        assert handoff.rep_email == "rita@example.com"
        assert handoff.score["explanation"][0] == {
            "rule": "pricing page visit", "points": 25, "at": "2026-11-24T09:00:00Z"}
        assert (handoff.model_version_id, handoff.handoff_ms) == (7, 250)
        # 1 business hour in Berlin: 11:00 local on a Tuesday is 10:00 UTC + 1h
        assert handoff.sla_due_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
        assert lead.lifecycle_stage == "recycled_to_sales"
        change = session.execute(select(LifecycleChange).where(
            LifecycleChange.lead_id == lead_id).order_by(LifecycleChange.id.desc())).scalars().first()
        assert (change.from_stage, change.to_stage) == ("nurturing", "recycled_to_sales")
        channels = {n.channel for n in session.execute(select(HandoffNotification)).scalars()}
        assert channels == {NotificationChannel.CRM_WEBHOOK, NotificationChannel.REP_EMAIL}
        assert [e.kind for e in session.execute(select(HandoffEvent)).scalars()] == ["created"]
    assert len(notifications) == 2


def test_round_robin_when_the_rejecting_rep_is_gone(db):
    make_rep(db, "rita@example.com", active=False)
    make_rep(db, "a@example.com")
    make_rep(db, "b@example.com")
    make_rep(db, "boss@example.com", role=Role.ADMIN)
    reps = []
    for n in range(4):
        lead_id = rejected_lead(db, f"lead{n}@example.com")
        handoff_id, _ = recycle(db, lead_id, now=T0 + timedelta(minutes=n))
        with db.session_scope() as session:
            reps.append(session.get(Handoff, handoff_id).rep_email)
    assert reps == ["a@example.com", "b@example.com", "a@example.com", "b@example.com"]


def test_the_recycled_leads_enrollments_exit_now(db, client, make_token):
    make_collateral(db)
    sequence(Api(client, make_token(Role.MARKETER, "m")), "budget", reasons=("no_budget",))
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db)
    with db.session_scope() as session:
        assert session.execute(select(Enrollment.status)).scalar_one() == "active"
    recycle(db, lead_id)
    with db.session_scope() as session:
        enrollment = session.execute(select(Enrollment)).scalar_one()
        assert (enrollment.status, enrollment.exit_reason) == ("exited", "recycled to sales")
        assert enrollment.next_due_at is None


@pytest.mark.parametrize(("reason", "days", "may"), [
    (RejectionReason.NO_BUDGET, 29, False), (RejectionReason.NO_BUDGET, 31, True),
    (RejectionReason.UNRESPONSIVE, 15, True), (RejectionReason.NOT_ICP, 60, False),
])
def test_a_minimum_time_in_nurture_after_each_rejection(db, reason, days, may):
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db, reason=reason, rejected_at=T0 - timedelta(days=days))
    handoff_id, notifications = recycle(db, lead_id)
    assert (handoff_id is not None) is may
    assert bool(notifications) is may


def test_bad_timing_waits_for_revisit_on_in_the_leads_zone(db):
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db, reason=RejectionReason.BAD_TIMING,
                            rejected_at=T0 - timedelta(days=90), revisit_on=date(2026, 12, 1))
    assert recycle(db, lead_id)[0] is None
    assert recycle(db, lead_id, now=datetime(2026, 12, 1, 0, 0, tzinfo=UTC))[0] is not None


def test_not_in_nurture_or_already_open_is_not_recycled(db):
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db)
    assert recycle(db, lead_id)[0] is not None
    assert recycle(db, lead_id, now=T0 + timedelta(seconds=1))[0] is None  # open handoff
    with db.session_scope() as session:
        session.get(Lead, lead_id).lifecycle_stage = "customer"
        session.execute(Handoff.__table__.update().values(status="accepted"))
    assert recycle(db, lead_id, now=T0 + timedelta(seconds=2))[0] is None
    assert recycle(db, 10**12)[0] is None


def test_the_recycle_cap_marks_the_lead_for_long_term_nurture(db, count):
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db)
    policy = RecyclePolicy(max_recycles=2)
    now = T0
    for _ in range(2):
        handoff_id, _ = recycle(db, lead_id, now=now, policy=policy)
        assert handoff_id is not None
        with db.session_scope() as session:
            services.reject(session, handoff_id, actor=_rep("rita@example.com"),
                            reason=RejectionReason.NO_NEED, note=None, now=now)
        now += timedelta(days=31)
    assert recycle(db, lead_id, now=now, policy=policy)[0] is None
    with db.session_scope() as session:
        assert session.get(LongTermNurture, lead_id).recycles == 2
    assert count(Handoff) == 2


def test_concurrent_recycles_of_one_lead_make_one_handoff(db, count):
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def race():
        barrier.wait()
        try:
            results.append(recycle(db, lead_id)[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len([r for r in results if r is not None]) == 1
    assert count(Handoff) == 1
    assert count(HandoffNotification) == 2


def test_no_active_rep_leaves_the_handoff_unassigned(db):
    lead_id = rejected_lead(db)
    handoff_id, notifications = recycle(db, lead_id)
    with db.session_scope() as session:
        assert session.get(Handoff, handoff_id).rep_email is None
    assert len(notifications) == 1  # the CRM hears of it; there is no rep to email


def test_business_time_skips_nights_and_weekends():
    friday_late = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)
    assert add_business_time(friday_late, timedelta(hours=1), "UTC") == datetime(
        2026, 11, 30, 9, 30, tzinfo=UTC)
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert add_business_time(saturday, timedelta(hours=1), "America/New_York") == datetime(
        2026, 11, 30, 15, 0, tzinfo=UTC)
    assert add_business_time(datetime(2026, 11, 24, 8, 0, tzinfo=UTC), timedelta(hours=9),
                             "UTC") == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _rep(email):
    from nurture.accounts.services import Actor

    return Actor(email=email, role=Role.REP)



def test_nurture_sla_is_an_iso_8601_duration_of_business_time():
    from nurture.config import SettingsError, load_settings

    assert load_settings({}).sla == timedelta(hours=1)
    assert load_settings({"NURTURE_SLA": "PT30M"}).sla == timedelta(minutes=30)
    for bad in ("soon", "PT0S", "P1M"):
        with pytest.raises(SettingsError, match="NURTURE_SLA"):
            load_settings({"NURTURE_SLA": bad})


def test_the_sessions_policy_sets_the_sla_of_recycles_made_through_it(db):
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db)
    with db.session_scope() as session:
        services.use_policy(session, RecyclePolicy(sla=timedelta(minutes=15)))
        handoff = services.recycle(session, lead_id, score=SCORE, model_version_id=None,
                                   qualifying_event_id=None, qualified_at=T0, now=T0)
        assert handoff.sla_due_at == T0 + timedelta(minutes=15)


def test_a_flood_of_events_scored_concurrently_makes_one_handoff(db, count):
    """10,000 events for one lead within a minute, scored by four workers at once."""
    from nurture.clock import utcnow
    from nurture.models import EngagementEvent
    from nurture.scoring import rescoring
    from nurture.scoring.lifecycle import ensure_default_model

    make_rep(db, "rita@example.com")
    now = utcnow()
    lead_id = rejected_lead(db, "flood@example.com", rejected_at=now - timedelta(days=60))
    with db.session_scope() as session:
        lead = session.get(Lead, lead_id)
        lead.title, lead.industry, lead.company_size, lead.country = (
            "VP Sales", "software", 300, "DE")
        ensure_default_model(session, now=now)
        kinds = ("form_submit", "webinar_attended", "page_view", "meeting_booked")
        session.execute(EngagementEvent.__table__.insert(), [
            {"lead_id": lead_id, "type": kinds[n % 4], "source": "api",
             "source_event_id": f"flood-{n}", "is_machine": False, "properties": {},
             "url": "https://example.com/pricing",
             "occurred_at": now - timedelta(seconds=60) + timedelta(milliseconds=6 * n),
             "received_at": now} for n in range(10_000)])
        first = session.execute(select(EngagementEvent.id).order_by(EngagementEvent.id)
                                ).scalars().first()
    errors = []

    def score(start):
        try:
            with db.session_scope() as session:
                rescoring.score_events(session, start, start + 2_499, now=utcnow())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=score, args=(first + 2_500 * i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(Handoff) == 1
    assert count(HandoffNotification) == 2
    with db.session_scope() as session:
        assert session.get(Lead, lead_id).lifecycle_stage == "recycled_to_sales"
