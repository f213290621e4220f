"""Routing: a rejection goes to the first active sequence that takes it, never twice at once."""

from __future__ import annotations

import copy
import threading

import pytest
from sqlalchemy import select

from nurture.models import Enrollment, EnrollmentEvent, Role
from tests.conftest import Api
from tests.test_api_sequences import MINIMAL, make_collateral

REJECTION = {
    "lead": {"email": "gina@example.com", "country": "DE", "company_size": 300,
             "timezone": "Europe/Berlin"},
    "rep_email": "rep@example.com",
    "reason": "bad_timing",
}


@pytest.fixture()
def marketer(client, make_token):
    return Api(client, make_token(Role.MARKETER, "marketer"))


def sequence(marketer, key, *, priority=100, reasons=("bad_timing",), lead=None, activate=True):
    document = copy.deepcopy(MINIMAL)
    document.update(key=key, name=key, priority=priority,
                    entry={"reasons": list(reasons), **({"lead": lead} if lead else {})})
    created = marketer.post("/api/v1/sequences", json=document)
    assert created.status_code == 201, created.json
    if activate:
        assert marketer.post(f"/api/v1/sequences/{created.json['id']}/activate").status_code == 200
    return created.json["id"]


def test_rejection_is_enrolled_in_the_matching_sequence_and_starts_now(marketer, api, db):
    make_collateral(db)
    sequence_id = sequence(marketer, "timing")
    sequence(marketer, "budget", reasons=("no_budget",))
    response = api.post("/api/v1/rejections", json=REJECTION)
    assert response.status_code == 201
    enrollment = response.json["enrollment"]
    assert enrollment["sequence_id"] == sequence_id
    assert (enrollment["status"], enrollment["step_id"]) == ("active", "hello")
    assert response.json["routing"] == {"enrolled": True, "reason": None}
    assert response.json["lead"]["enrollments"] == [enrollment]


def test_the_first_by_priority_wins_and_criteria_filter(marketer, api, db):
    make_collateral(db)
    sequence(marketer, "late", priority=50)
    sequence(marketer, "us-only", priority=1, lead={"country": ["US"]})
    early = sequence(marketer, "mid-market", priority=10, lead={"company_size": {"min": 100, "max": 1000}})
    response = api.post("/api/v1/rejections", json=REJECTION)
    assert response.json["enrollment"]["sequence_id"] == early


def test_paused_and_draft_sequences_take_no_one(marketer, api, db):
    make_collateral(db)
    paused = sequence(marketer, "paused")
    marketer.post(f"/api/v1/sequences/{paused}/pause")
    sequence(marketer, "draft", activate=False)
    response = api.post("/api/v1/rejections", json=REJECTION)
    assert response.json["enrollment"] is None
    assert response.json["routing"]["reason"] == "no active sequence takes rejection reason bad_timing"


def test_revisit_on_schedules_the_start_at_midnight_in_the_leads_zone(marketer, api, db):
    make_collateral(db)
    sequence(marketer, "timing")
    response = api.post("/api/v1/rejections", json={**REJECTION, "revisit_on": "2031-03-02"})
    enrollment = response.json["enrollment"]
    assert enrollment["status"] == "scheduled"
    assert enrollment["next_due_at"] == "2031-03-01T23:00:00Z"  # 00:00 in Berlin (CET)


def test_a_lead_is_never_enrolled_twice_in_one_sequence_at_once(marketer, api, db, count):
    make_collateral(db)
    sequence(marketer, "timing")
    first = api.post("/api/v1/rejections", json=REJECTION).json
    second = api.post("/api/v1/rejections", json={**REJECTION, "note": "again"}).json
    assert first["enrollment"] is not None
    assert second["enrollment"] is None
    assert second["routing"]["reason"] == "already enrolled in 'timing'"
    assert count(Enrollment) == 1


def test_concurrent_rejections_enroll_once(app, marketer, make_token, db, count):
    make_collateral(db)
    sequence(marketer, "timing")
    token = make_token(Role.ADMIN)
    barrier, statuses = threading.Barrier(6), []

    def post(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/rejections", json={**REJECTION, "crm_id": f"r{i}"},
                               headers={"Authorization": f"Bearer {token}"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [201] * 6
    assert count(Enrollment) == 1


def test_a_retried_rejection_answers_with_the_same_enrollment(marketer, api, db, count):
    make_collateral(db)
    sequence(marketer, "timing")
    first = api.post("/api/v1/rejections", json={**REJECTION, "crm_id": "x1"})
    again = api.post("/api/v1/rejections", json={**REJECTION, "crm_id": "x1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["enrollment"] == first.json["enrollment"]
    assert count(Enrollment) == 1
    with db.session_scope() as session:
        kinds = session.execute(select(EnrollmentEvent.kind)).scalars().all()
    assert kinds == ["enrolled"]


def test_a_not_ready_lead_goes_to_a_sequence_for_not_ready_leads(marketer, api, db, count):
    make_collateral(db)
    sequence(marketer, "timing")
    document = copy.deepcopy(MINIMAL)
    document.update(key="warm-up", name="Warm-up", entry={"not_ready": True})
    created = marketer.post("/api/v1/sequences", json=document).json
    marketer.post(f"/api/v1/sequences/{created['id']}/activate")
    lead = api.post("/api/v1/leads", json={"email": "early@example.com"}).json
    response = api.post(f"/api/v1/leads/{lead['id']}/nurture")
    assert response.status_code == 200, response.json
    assert response.json["enrollment"]["sequence_key"] == "warm-up"
    assert response.json["lead"]["lifecycle_stage"] == "nurturing"
    again = api.post(f"/api/v1/leads/{lead['id']}/nurture")
    assert again.json["routing"]["reason"] == "already enrolled in 'warm-up'"
    assert count(Enrollment) == 1
    assert api.post("/api/v1/leads/424242/nurture").status_code == 404


def test_a_lead_sales_holds_cannot_be_put_into_nurture(api, db):
    from nurture.models import Lead, LifecycleStage

    lead = api.post("/api/v1/leads", json={"email": "held@example.com"}).json
    with db.session_scope() as session:
        session.get(Lead, lead["id"]).lifecycle_stage = LifecycleStage.ACCEPTED_BY_SALES
    response = api.post(f"/api/v1/leads/{lead['id']}/nurture")
    assert response.status_code == 409
