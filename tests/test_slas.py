"""The SLA as one agreed document: its lifecycle (the scoring model's), validation naming the
path, business-hours arithmetic with holidays, and the timers it sets, fired from the database
once however many dispatchers run."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from nurture.handoffs import services, timers
from nurture.handoffs.delivery import deliver
from nurture.handoffs.policy import BusinessCalendar, RecyclePolicy, add_business_time
from nurture.handoffs.sla import install_sla, terms_in_force
from nurture.handoffs.sla_document import default_document
from nurture.models import (
    Handoff,
    HandoffEvent,
    HandoffNotification,
    HandoffStatus,
    Lead,
    Rejection,
    RejectionReason,
    Role,
    Sla,
)
from tests.conftest import Api
from tests.test_handoff_delivery import channels
from tests.test_handoffs import SCORE, T0, make_rep, recycle, rejected_lead

DOCUMENT = {
    "name": "Marketing and sales SLA 2027",
    "business_hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "opens": "09:00",
                       "closes": "17:00", "holidays": ["2026-12-25"],
                       "timezone": "Europe/Berlin"},
    "first_action": {"within": "PT2H", "rules": [
        {"score_at_least": 80, "within": "PT30M"},
        {"source": ["webinar"], "within": "PT1H"},
    ]},
    "escalation": [{"notify": ["rep"], "within": "PT1H"},
                   {"notify": ["rep", "manager@example.com"], "within": "PT1H"}],
    "on_last_lapse": "return_to_nurture",
    "stalled_in_sales_days": 10,
    "min_nurture_days": {"no_budget": 60, "sla_expired": 7},
    "recycle_cap": 5,
}


@pytest.fixture()
def people(client, make_token):
    return {role: Api(client, make_token(role, role.value)) for role in
            (Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER, Role.REP)}


def test_a_draft_is_approved_by_both_sides_then_activated_and_retired(people, db):
    marketer, sales, admin = people[Role.MARKETER], people[Role.SALES_APPROVER], people[Role.ADMIN]
    created = marketer.post("/api/v1/slas", data=yaml.safe_dump(DOCUMENT),
                            content_type="application/yaml")
    assert created.status_code == 201, created.json
    sla_id = created.json["id"]
    assert (created.json["status"], created.json["version"]) == ("draft", 1)
    assert created.json["document"]["first_action"]["within"] == "PT2H"

    refused = admin.post(f"/api/v1/slas/{sla_id}/activate")
    assert refused.status_code == 409
    assert refused.json["errors"]["approvals"] == ["marketer approval required",
                                                    "sales_approver approval required"]
    assert marketer.post(f"/api/v1/slas/{sla_id}/approve").json["status"] == "draft"
    still = admin.post(f"/api/v1/slas/{sla_id}/activate")
    assert still.status_code == 409
    assert still.json["errors"]["approvals"] == ["sales_approver approval required"]
    assert sales.post(f"/api/v1/slas/{sla_id}/approve").json["status"] == "approved"
    assert sales.post(f"/api/v1/slas/{sla_id}/withdraw").json["status"] == "draft"
    assert admin.post(f"/api/v1/slas/{sla_id}/activate").status_code == 409
    assert sales.post(f"/api/v1/slas/{sla_id}/approve").json["status"] == "approved"
    active = admin.post(f"/api/v1/slas/{sla_id}/activate")
    assert active.status_code == 200 and active.json["status"] == "active"
    assert people[Role.REP].post(f"/api/v1/slas/{sla_id}/approve").status_code == 403
    listed = marketer.get("/api/v1/slas").json
    assert listed["active_id"] == sla_id
    assert len(listed["slas"][0]["approvals"]) == 3  # the withdrawn one stays recorded
    with db.session_scope() as session:
        terms = terms_in_force(session)
        assert (terms.sla_id, terms.policy.max_recycles) == (sla_id, 5)
        assert terms.policy.min_nurture[RejectionReason.NO_BUDGET] == timedelta(days=60)

    second = marketer.post("/api/v1/slas", json={**DOCUMENT, "name": "v2"}).json["id"]
    marketer.post(f"/api/v1/slas/{second}/approve")
    sales.post(f"/api/v1/slas/{second}/approve")
    assert admin.post(f"/api/v1/slas/{second}/activate").status_code == 200
    assert admin.get(f"/api/v1/slas/{sla_id}").json["status"] == "retired"
    assert admin.post(f"/api/v1/slas/{second}/retire").json["status"] == "retired"
    with db.session_scope() as session:
        assert terms_in_force(session).sla_id is None  # the settings' default again
    assert admin.post(f"/api/v1/slas/{second}/retire").status_code == 409


@pytest.mark.parametrize(("change", "path"), [
    ({"first_action": {"within": "-PT1H"}}, "first_action.within"),
    ({"first_action": {"within": "PT0S"}}, "first_action.within"),
    ({"first_action": {"within": "soon"}}, "first_action.within"),
    ({"first_action": {"within": "PT1H", "rules": [{"within": "PT1H"}]}},
     "first_action.rules[0]"),
    ({"escalation": [{"notify": ["rep"], "within": "PT1H"}, {"notify": ["not an email"],
                                                               "within": "PT1H"}]},
     "escalation[1].notify[0]"),
    ({"escalation": [{"notify": ["rep"]}]}, "escalation[0].within"),
    ({"business_hours": {"opens": "18:00", "closes": "09:00"}}, "business_hours"),
    ({"business_hours": {"days": ["someday"]}}, "business_hours.days[0]"),
    ({"business_hours": {"holidays": ["2026-02-30"]}}, "business_hours.holidays[0]"),
    ({"business_hours": {"timezone": "Mars/Olympus"}}, "business_hours.timezone"),
    ({"on_last_lapse": "shrug"}, "on_last_lapse"),
    ({"stalled_in_sales_days": 0}, "stalled_in_sales_days"),
    ({"min_nurture_days": {"bored": 3}}, "min_nurture_days.bored.[key]"),
    ({"recycle_cap": "3"}, "recycle_cap"),
    ({"surprise": True}, "surprise"),
    ({"name": "\x00"}, "body"),
])
def test_an_invalid_document_is_422_naming_the_path_and_stores_nothing(people, count, change,
                                                                         path):
    document = {**copy.deepcopy(DOCUMENT), **change}
    answer = people[Role.MARKETER].post("/api/v1/slas", json=document)
    assert answer.status_code == 422, answer.json
    assert path in answer.json["errors"], answer.json["errors"]
    assert count(Sla) == 0


def test_malformed_and_wrongly_typed_bodies(people, count):
    marketer = people[Role.MARKETER]
    assert marketer.post("/api/v1/slas", data="{", content_type="application/json").status_code == 400
    assert marketer.post("/api/v1/slas", data="a: [", content_type="application/yaml").status_code == 400
    assert marketer.post("/api/v1/slas", json=[1]).status_code == 422
    assert marketer.post("/api/v1/slas", data="x", content_type="text/plain").status_code == 415
    assert people[Role.REP].post("/api/v1/slas", json=DOCUMENT).status_code == 403
    assert marketer.get("/api/v1/slas/99").status_code == 404
    assert count(Sla) == 0


BERLIN = DOCUMENT["business_hours"]


def test_business_time_skips_the_weekend_and_a_holiday_in_the_reps_zone():
    calendar = default_document(RecyclePolicy()).business_hours.model_copy(update={
        "holidays": [date(2026, 12, 28)]}).calendar()  # a Monday off
    # Friday 25 Dec is an ordinary Friday here; 16:30 in New York is 21:30 UTC
    friday = datetime(2026, 12, 25, 21, 30, tzinfo=UTC)
    due = add_business_time(friday, timedelta(hours=1), "America/New_York", calendar)
    # 30 minutes on Friday, nothing at the weekend or on the Monday holiday, 30 on Tuesday
    assert due == datetime(2026, 12, 29, 14, 30, tzinfo=UTC)  # 09:30 in New York
    # a Berlin rep's SLA document with Christmas off: Thursday 16:00 + 3h → Monday 11:00
    berlin = BusinessCalendar(holidays=frozenset({date(2026, 12, 25)}))
    thursday = datetime(2026, 12, 24, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
    assert add_business_time(thursday, timedelta(hours=3), "Europe/Berlin", berlin) == (
        datetime(2026, 12, 28, 10, 0, tzinfo=UTC))


def _open_minutes(start: datetime, end: datetime, zone: str, calendar: BusinessCalendar) -> int:
    """The oracle: count open five-minute slots one by one."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    slots, at = 0, start
    while at < end:
        local = at.astimezone(tz)
        if (calendar.is_open_on(local.date())
                and calendar.opens <= local.time() < calendar.closes):
            slots += 1
        at += timedelta(minutes=5)
    return slots * 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start_slot=st.integers(min_value=0, max_value=365 * 24 * 12),
    minutes=st.integers(min_value=1, max_value=24 * 12).map(lambda n: n * 5),
    zone=st.sampled_from(["America/New_York", "Europe/Berlin", "Asia/Kolkata",
                          "Australia/Sydney"]),
    holidays=st.sets(st.integers(min_value=0, max_value=380), max_size=30),
)
def test_business_time_counts_exactly_the_open_minutes(start_slot, minutes, zone, holidays):
    """For any start, duration, zone and holidays: the open time between the start and the
    answer is the duration, and the answer is inside opening hours (or at closing)."""
    first = date(2026, 1, 1)
    calendar = BusinessCalendar(holidays=frozenset(first + timedelta(days=d) for d in holidays))
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * start_slot)
    due = add_business_time(start, timedelta(minutes=minutes), zone, calendar)
    assert _open_minutes(start, due, zone, calendar) == minutes
    assert _open_minutes(start, due - timedelta(minutes=5), zone, calendar) == minutes - 5


# --- the timers an active SLA sets ---------------------------------------------------------


def activate(db, document=DOCUMENT):
    with db.session_scope() as session:
        return install_sla(session, document, now=T0 - timedelta(days=1)).id


def fire(db, now):
    with db.session_scope() as session:
        return timers.fire_due_timers(session, now=now)


def events(db, handoff_id):
    with db.session_scope() as session:
        return session.execute(select(HandoffEvent.kind).where(
            HandoffEvent.handoff_id == handoff_id).order_by(HandoffEvent.id)).scalars().all()


def test_the_first_action_window_goes_by_score_band_and_source(db):
    sla_id = activate(db)
    make_rep(db, "rita@example.com", timezone="Europe/Berlin")
    hot = rejected_lead(db, "hot@example.com")
    webinar = rejected_lead(db, "web@example.com")
    plain = rejected_lead(db, "plain@example.com")
    with db.session_scope() as session:
        session.get(Lead, webinar).source = "Webinar"
    # T0 is Tuesday 10:00 UTC, 11:00 in Berlin
    hot_id, _ = recycle(db, hot, score={**SCORE, "total": 85})
    web_id, _ = recycle(db, webinar)
    plain_id, _ = recycle(db, plain)
    with db.session_scope() as session:
        due = {h.id: (h.sla_due_at, h.sla_id) for h in session.execute(select(Handoff)).scalars()}
    assert due[hot_id] == (T0 + timedelta(minutes=30), sla_id)
    assert due[web_id] == (T0 + timedelta(hours=1), sla_id)
    assert due[plain_id] == (T0 + timedelta(hours=2), sla_id)


def test_an_unanswered_handoff_escalates_along_the_chain_then_returns_to_nurture(db):
    activate(db)
    make_rep(db, "rita@example.com", timezone="Europe/Berlin")
    make_rep(db, "otto@example.com")
    lead_id = rejected_lead(db)
    handoff_id, _ = recycle(db, lead_id)
    due = T0 + timedelta(hours=2)
    assert not fire(db, due - timedelta(seconds=1))
    assert fire(db, due).escalations == 1
    assert not fire(db, due + timedelta(minutes=59))
    assert fire(db, due + timedelta(hours=1)).escalations == 1
    with db.session_scope() as session:
        told = session.execute(select(HandoffNotification.recipient).where(
            HandoffNotification.purpose == "reminder").order_by(HandoffNotification.id)
        ).scalars().all()
    assert told == ["rita@example.com", "rita@example.com", "manager@example.com"]
    assert fire(db, due + timedelta(hours=2)).escalations == 1
    assert events(db, handoff_id) == ["created", "sla_missed", "escalated", "sla_expired"]
    with db.session_scope() as session:
        handoff = session.get(Handoff, handoff_id)
        assert (handoff.status, handoff.next_sla_at) == (HandoffStatus.EXPIRED, None)
        rejection = session.get(Rejection, handoff.rejection_id)
        assert (rejection.reason, rejection.rep_email) == (RejectionReason.SLA_EXPIRED,
                                                           "rita@example.com")
        assert session.get(Lead, lead_id).lifecycle_stage.value == "nurturing"
    assert not fire(db, due + timedelta(days=30))


def test_an_accepted_lead_with_no_opportunity_returns_as_stalled_in_sales(db):
    activate(db)
    make_rep(db, "rita@example.com", timezone="Europe/Berlin")
    lead_id = rejected_lead(db)
    handoff_id, _ = recycle(db, lead_id)
    with db.session_scope() as session:
        admin = services.Actor(email="admin@example.com", role=Role.ADMIN)
        services.accept(session, handoff_id, actor=admin, now=T0)
        stalls_at = session.get(Handoff, handoff_id).stalls_at
    # ten business days of eight hours from Tuesday 11:00 in Berlin: two weeks later, 11:00
    assert stalls_at == T0 + timedelta(days=14)
    assert not fire(db, stalls_at - timedelta(seconds=1))
    assert fire(db, stalls_at).stalls == 1
    with db.session_scope() as session:
        handoff = session.get(Handoff, handoff_id)
        assert (handoff.status, handoff.stalls_at) == (HandoffStatus.STALLED, None)
        assert session.get(Rejection, handoff.rejection_id).reason == RejectionReason.STALLED_IN_SALES
        assert session.get(Lead, lead_id).lifecycle_stage.value == "nurturing"
    assert events(db, handoff_id)[-1] == "stalled_in_sales"


def test_with_no_sla_active_the_settings_work_as_before(db):
    make_rep(db, "rita@example.com")
    make_rep(db, "otto@example.com")
    handoff_id, _ = recycle(db, rejected_lead(db))
    with db.session_scope() as session:
        handoff = session.get(Handoff, handoff_id)
        assert (handoff.sla_id, handoff.sla_due_at) == (None, T0 + timedelta(hours=1))
    fire(db, T0 + timedelta(hours=1))
    fire(db, T0 + timedelta(hours=2))
    assert events(db, handoff_id) == ["created", "sla_missed", "reassigned"]


def test_two_dispatchers_at_once_fire_each_timer_once(db):
    activate(db)
    make_rep(db, "rita@example.com", timezone="Europe/Berlin")
    ids = [recycle(db, rejected_lead(db, f"lead{i}@example.com"))[0] for i in range(40)]
    due = T0 + timedelta(hours=2)
    barrier = threading.Barrier(2)
    fired: list[int] = []
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            barrier.wait()
            while True:
                with db.session_scope() as session:
                    done = timers.fire_due_timers(session, now=due, limit=5)
                if not done:
                    return
                fired.append(done.escalations)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sum(fired) == len(ids)
    with db.session_scope() as session:
        per_handoff = dict(session.execute(
            select(HandoffEvent.handoff_id, func.count()).where(HandoffEvent.kind == "sla_missed")
            .group_by(HandoffEvent.handoff_id)).all())
    assert per_handoff == dict.fromkeys(ids, 1)


def test_a_manager_the_escalation_names_gets_the_reminder_email(db, smtp_server):
    sink, url = smtp_server
    activate(db)
    make_rep(db, "rita@example.com", timezone="Europe/Berlin")
    recycle(db, rejected_lead(db))
    fire(db, T0 + timedelta(hours=2))
    fire(db, T0 + timedelta(hours=3))
    with db.session_scope() as session:
        manager = session.execute(select(HandoffNotification.id).where(
            HandoffNotification.recipient == "manager@example.com")).scalar_one()
    at = T0 + timedelta(hours=3)
    assert deliver(db, manager, channels(None, smtp_url=url), clock=lambda: at) == "delivered"
    [message] = sink.messages
    assert message["To"] == "manager@example.com"
    assert "Lena" in message["Subject"]
