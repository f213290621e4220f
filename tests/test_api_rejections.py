"""POST /api/v1/rejections: sales gives a lead back with a reason."""

from __future__ import annotations

import threading

import pytest

from nurture.models import Lead, LifecycleChange, Rejection, Role

REJECTION = {
    "lead": {"email": "Walter.Skinner@Example.com", "company": "FBI", "timezone": "Europe/Berlin"},
    "rep_email": "Rep.One@Example.com",
    "reason": "bad_timing",
    "note": "Budget cycle starts in Q3; call back then.",
    "revisit_on": "2027-07-01",
    "crm_id": "rej-0001",
}


def test_rejection_creates_the_lead_records_why_and_puts_it_in_nurture(api, count):
    response = api.post("/api/v1/rejections", json=REJECTION)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["rejection"]["reason"] == "bad_timing"
    assert body["rejection"]["rep_email"] == "rep.one@example.com"
    assert body["rejection"]["revisit_on"] == "2027-07-01"
    assert body["rejection"]["note"] == REJECTION["note"]
    assert body["lead"]["email"] == "walter.skinner@example.com"
    assert body["lead"]["lifecycle_stage"] == "nurturing"
    assert body["lead"]["rejections"] == [body["rejection"]]
    # no sequence is active, so none takes it, and the answer says why
    assert body["enrollment"] is None
    assert body["routing"] == {"enrolled": False,
                               "reason": "no active sequence takes rejection reason bad_timing"}
    assert (count(Lead), count(Rejection)) == (1, 1)
    assert count(LifecycleChange) == 2  # created, then lead → nurturing


def test_rejection_of_an_existing_lead_updates_it_and_keeps_history(api, count):
    lead = api.post("/api/v1/leads", json={"email": "walter.skinner@example.com", "title": "AD"}).json
    first = api.post("/api/v1/rejections", json={**REJECTION, "crm_id": None}).json
    second = api.post(
        "/api/v1/rejections",
        json={**REJECTION, "crm_id": None, "reason": "no_budget", "rejected_at": "2026-11-24T09:00:00+01:00"},
    ).json
    assert first["lead"]["id"] == second["lead"]["id"] == lead["id"]
    assert second["lead"]["title"] == "AD"
    assert [r["reason"] for r in second["lead"]["rejections"]] == ["no_budget", "bad_timing"]
    assert second["rejection"]["rejected_at"] == "2026-11-24T08:00:00Z"
    assert count(Rejection) == 2


def test_a_retried_rejection_with_the_same_crm_id_is_stored_once(api, count):
    first = api.post("/api/v1/rejections", json=REJECTION)
    again = api.post("/api/v1/rejections", json=REJECTION)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["rejection"] == first.json["rejection"]
    assert count(Rejection) == 1
    assert count(LifecycleChange) == 2


def test_concurrent_retries_of_one_rejection_store_it_once(app, make_token, count):
    token = make_token(Role.ADMIN)
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            "/api/v1/rejections", json=REJECTION, headers={"Authorization": f"Bearer {token}"}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [200] * 5 + [201]
    assert (count(Lead), count(Rejection)) == (1, 1)


def test_a_rep_token_may_record_a_rejection(client, make_token):
    token = make_token(Role.REP)
    response = client.post(
        "/api/v1/rejections", json=REJECTION, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201


def test_a_sales_approver_token_may_not_403(client, make_token, count):
    token = make_token(Role.SALES_APPROVER)
    response = client.post(
        "/api/v1/rejections", json=REJECTION, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
    assert count(Lead) == 0


def test_no_token_is_401(client, count):
    assert client.post("/api/v1/rejections", json=REJECTION).status_code == 401
    assert count(Rejection) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": "too_expensive"}, "reason"),
        ({"reason": None}, "reason"),
        ({"reason": "BAD_TIMING"}, "reason"),
        ({"rep_email": None}, "rep_email"),
        ({"rep_email": "rep at example"}, "rep_email"),
        ({"revisit_on": "next spring"}, "revisit_on"),
        ({"revisit_on": "2027-02-30"}, "revisit_on"),
        ({"revisit_on": 20270701}, "revisit_on"),
        ({"rejected_at": "2026-11-24T09:00:00"}, "rejected_at"),  # no offset: ambiguous
        ({"note": "x" * 10_001}, "note"),
        ({"note": "nul \u0000 inside"}, "note"),
        ({"lead": {"email": "nope"}}, "lead.email"),
        ({"lead": {"email": "a@example.com", "country": "Germany"}}, "lead.country"),
        ({"lead": {"email": "a@example.com", "size": 3}}, "lead.size"),
        ({"lead": "a@example.com"}, "lead"),
        ({"priority": "high"}, "priority"),
    ],
)
def test_invalid_rejection_is_422_naming_the_field_and_changes_nothing(api, count, change, field):
    body = {**REJECTION, **change}
    response = api.post("/api/v1/rejections", json=body)
    assert response.status_code == 422, response.json
    assert field in response.json["errors"], response.json["errors"]
    assert (count(Lead), count(Rejection), count(LifecycleChange)) == (0, 0, 0)


def test_missing_required_fields_are_each_named(api):
    response = api.post("/api/v1/rejections", json={"note": "hm"})
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"lead", "rep_email", "reason"}
    assert response.json["errors"]["reason"] == ["required"]


def test_unknown_reason_lists_the_allowed_ones(api):
    response = api.post("/api/v1/rejections", json={**REJECTION, "reason": "meh"})
    message = response.json["errors"]["reason"][0]
    for reason in ("no_budget", "no_authority", "no_need", "bad_timing", "not_icp",
                   "unresponsive", "chose_competitor", "other"):
        assert reason in message


def test_wrong_content_type_malformed_and_oversized_bodies(api, count):
    assert api.post("/api/v1/rejections", data="reason=no_budget",
                    content_type="application/x-www-form-urlencoded").status_code == 415
    assert api.post("/api/v1/rejections", data=b'{"lead": ',
                    content_type="application/json").status_code == 400
    big = b'{"note": "' + b"x" * (1024 * 1024) + b'"}'
    assert api.post("/api/v1/rejections", data=big, content_type="application/json").status_code == 413
    assert count(Rejection) == 0
