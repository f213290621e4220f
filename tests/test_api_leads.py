"""POST /api/v1/leads and GET /api/v1/leads…: intake from the CRM, and every refusal."""

from __future__ import annotations

import io
import json
import threading

import pytest

from nurture.models import Lead, LifecycleChange, Role

FULL_LEAD = {
    "email": "  Dana.Scully@FBI.example.com ",
    "first_name": "Dana",
    "last_name": "Scully",
    "company": "FBI",
    "title": "Special Agent",
    "industry": "Government",
    "company_size": 35000,
    "country": "us",
    "timezone": "America/New_York",
    "source": "webinar",
    "owner_email": "Fox.Mulder@fbi.example.com",
    "crm_id": "00Q5e00000AbCdE",
    "attributes": {"segment": "enterprise", "tags": ["x-files"]},
}


def test_create_lead_normalises_and_answers_201_with_the_lead(api, count):
    response = api.post("/api/v1/leads", json=FULL_LEAD)
    assert response.status_code == 201, response.json
    lead = response.json
    assert lead["email"] == "dana.scully@fbi.example.com"
    assert lead["country"] == "US"
    assert lead["owner_email"] == "fox.mulder@fbi.example.com"
    assert lead["company_size"] == 35000
    assert lead["attributes"] == {"segment": "enterprise", "tags": ["x-files"]}
    assert lead["lifecycle_stage"] == "lead"
    assert lead["score"] == {
        "total": 0, "fit": 0, "engagement": 0, "model_version": None, "explanation": []
    }
    assert lead["rejections"] == [] and lead["enrollments"] == [] and lead["handoffs"] == []
    assert count(Lead) == 1
    assert count(LifecycleChange) == 1


def test_same_email_in_other_case_updates_the_lead_with_200(api, count):
    first = api.post("/api/v1/leads", json={"email": "kim@example.com", "title": "CTO"}).json
    response = api.post(
        "/api/v1/leads",
        json={"email": "KIM@Example.com", "company": "Acme", "attributes": {"a": 1}},
    )
    assert response.status_code == 200
    assert response.json["id"] == first["id"]
    assert response.json["title"] == "CTO"  # absent fields are left as they are
    assert response.json["company"] == "Acme"
    assert count(Lead) == 1


def test_attributes_merge_key_by_key_and_null_removes_a_key(api):
    api.post("/api/v1/leads", json={"email": "a@example.com", "attributes": {"x": 1, "y": 2}})
    lead = api.post(
        "/api/v1/leads", json={"email": "a@example.com", "attributes": {"y": None, "z": 3}}
    ).json
    assert lead["attributes"] == {"x": 1, "z": 3}


def test_the_same_body_twice_is_one_lead_unchanged(api, count):
    first = api.post("/api/v1/leads", json=FULL_LEAD)
    second = api.post("/api/v1/leads", json=FULL_LEAD)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json["updated_at"] == first.json["updated_at"]  # nothing changed
    assert count(Lead) == 1


def test_get_lead_by_id_and_by_email(api):
    created = api.post("/api/v1/leads", json=FULL_LEAD).json
    by_id = api.get(f"/api/v1/leads/{created['id']}")
    by_email = api.get("/api/v1/leads", query_string={"email": "DANA.scully@fbi.example.com"})
    assert by_id.status_code == 200 and by_email.status_code == 200
    assert by_id.json == by_email.json == created


def test_unknown_lead_is_404_problem(api):
    response = api.get("/api/v1/leads/999999")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 404
    assert api.get(f"/api/v1/leads/{2**63}").status_code == 404  # past BIGINT: cannot exist
    assert api.get("/api/v1/leads/0").status_code == 404
    missing = api.get("/api/v1/leads", query_string={"email": "nobody@example.com"})
    assert missing.status_code == 404


def test_get_by_email_needs_a_valid_email(api):
    assert api.get("/api/v1/leads").json["errors"] == {"email": ["required"]}
    bad = api.get("/api/v1/leads", query_string={"email": "not-an-email"})
    assert bad.status_code == 422 and "email" in bad.json["errors"]
    unknown = api.get("/api/v1/leads", query_string={"email": "a@example.com", "x": "1"})
    assert unknown.status_code == 422 and unknown.json["errors"] == {"x": ["unknown parameter"]}


# -- refusals: each leaves the database unchanged ------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not an email"}, "email"),
        ({"email": "a@@example.com"}, "email"),
        ({}, "email"),
        ({"email": None}, "email"),
        ({"email": "a@example.com", "country": "XX"}, "country"),
        ({"email": "a@example.com", "country": "USA"}, "country"),
        ({"email": "a@example.com", "timezone": "Mars/Olympus"}, "timezone"),
        ({"email": "a@example.com", "timezone": "../../etc/passwd"}, "timezone"),
        ({"email": "a@example.com", "company_size": "12"}, "company_size"),
        ({"email": "a@example.com", "company_size": 12.5}, "company_size"),
        ({"email": "a@example.com", "company_size": True}, "company_size"),
        ({"email": "a@example.com", "company_size": -1}, "company_size"),
        ({"email": "a@example.com", "first_name": 7}, "first_name"),
        ({"email": "a@example.com", "first_name": "x" * 256}, "first_name"),
        ({"email": "a@example.com", "attributes": ["not", "an", "object"]}, "attributes"),
        ({"email": "a@example.com", "attributes": {"big": "x" * 20_000}}, "attributes"),
        ({"email": "a@example.com", "owner_email": "nope"}, "owner_email"),
        ({"email": "a@example.com", "favourite_colour": "blue"}, "favourite_colour"),
        ({"email": "a@example.com", "company": "Ac\u0000me"}, "company"),
        ({"email": "a@example.com", "attributes": {"k\u0000": 1}}, "attributes"),
        ({"email": "a@example.com", "attributes": {"k": ["ok", "n\u0000"]}}, "attributes"),
        ({"email": "a\u0000b@example.com"}, "email"),
    ],
)
def test_invalid_lead_is_422_naming_the_field(api, count, body, field):
    response = api.post("/api/v1/leads", json=body)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert set(response.json) >= {"type", "title", "status", "detail", "errors"}
    assert field in response.json["errors"], response.json["errors"]
    assert all(isinstance(m, str) and m for m in response.json["errors"][field])
    assert count(Lead) == 0


def test_unknown_field_message_says_so(api):
    response = api.post("/api/v1/leads", json={"email": "a@example.com", "vip": True})
    assert response.json["errors"] == {"vip": ["unknown field"]}


def test_a_json_array_is_422_for_the_body(api, count):
    response = api.post("/api/v1/leads", json=[{"email": "a@example.com"}])
    assert response.status_code == 422
    assert "body" in response.json["errors"]
    assert count(Lead) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(api, count, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post(
        "/api/v1/leads", data=json.dumps({"email": "a@example.com"}), headers=headers
    )
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"
    assert count(Lead) == 0


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"email": "a@example.com"', b"\xff\xfe"])
def test_malformed_json_is_400(api, count, raw):
    response = api.post("/api/v1/leads", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json["detail"] == "the body is not valid JSON"
    assert count(Lead) == 0


def test_body_over_one_mebibyte_is_413(api, count):
    body = json.dumps({"email": "a@example.com", "attributes": {"x": "y" * (1024 * 1024)}})
    response = api.post("/api/v1/leads", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert count(Lead) == 0


def test_body_without_content_length_over_the_limit_is_413(api, count):
    # as a chunked request reaches the app from a WSGI server: no length, a terminated stream
    response = api.post(
        "/api/v1/leads",
        input_stream=io.BytesIO(b"x" * (1024 * 1024 + 10)),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert count(Lead) == 0


# -- authentication and roles --------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer nrt_unknown", "Bearer x" * 50],
)
def test_missing_or_invalid_token_is_401(client, count, header):
    headers = {"Authorization": header} if header else {}
    response = client.post("/api/v1/leads", json={"email": "a@example.com"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"
    assert count(Lead) == 0


def test_revoked_token_is_401_at_once(client, make_token, runner, count):
    token = make_token(Role.ADMIN)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/leads", json={"email": "a@x.example.com"}, headers=headers).status_code == 201
    result = runner.invoke(args=["tokens", "revoke", "1"])
    assert result.exit_code == 0, result.output
    response = client.post("/api/v1/leads", json={"email": "b@x.example.com"}, headers=headers)
    assert response.status_code == 401
    assert count(Lead) == 1


def test_rep_token_may_not_create_leads_403(client, make_token, count):
    token = make_token(Role.REP)
    response = client.post(
        "/api/v1/leads", json={"email": "a@example.com"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert count(Lead) == 0


def test_rep_token_may_not_read_leads_403(client, make_token, api):
    lead = api.post("/api/v1/leads", json={"email": "a@example.com"}).json
    token = make_token(Role.REP)
    response = client.get(f"/api/v1/leads/{lead['id']}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_unknown_api_path_is_a_problem_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_wrong_method_is_a_problem_405(api):
    response = api.client.delete("/api/v1/leads", headers={"Authorization": f"Bearer {api.token}"})
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


# -- concurrency ---------------------------------------------------------------------------


def test_concurrent_creates_of_one_email_make_one_lead_and_no_500(app, make_token, count):
    token = make_token(Role.ADMIN)
    threads, statuses = 8, []
    barrier = threading.Barrier(threads)
    lock = threading.Lock()

    def post(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        for round_ in range(5):
            response = client.post(
                "/api/v1/leads",
                json={"email": f"race{round_}@example.com", "title": f"t{i}"},
                headers={"Authorization": f"Bearer {token}"},
            )
            with lock:
                statuses.append(response.status_code)

    workers = [threading.Thread(target=post, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(statuses) == threads * 5
    assert set(statuses) <= {200, 201}, statuses
    assert statuses.count(201) == 5  # one creation per email, the rest updates
    assert count(Lead) == 5
    assert count(LifecycleChange) == 5
