"""Collateral and its sales approval through the API: every move recorded, roles enforced."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from nurture.models import CollateralTransition, CollateralVersion, Role
from tests.conftest import Api

GUIDE = {
    "key": "planning-guide",
    "title": "The 2027 planning guide",
    "url": "https://cdn.example.com/planning-guide.pdf",
    "funnel_stage": "consideration",
    "personas": ["ops lead"],
    "industries": ["logistics"],
    "expires_on": "2030-01-01",
}


@pytest.fixture()
def marketer(client, make_token):
    return Api(client, make_token(Role.MARKETER, "marketer"))


@pytest.fixture()
def approver(client, make_token):
    return Api(client, make_token(Role.SALES_APPROVER, "approver"))


def test_draft_submit_approve_is_recorded_with_who_and_when(marketer, approver, count):
    created = marketer.post("/api/v1/collateral", json=GUIDE)
    assert created.status_code == 201, created.json
    assert (created.json["status"], created.json["version"]) == ("draft", 1)
    version_id = created.json["id"]
    assert marketer.post(f"/api/v1/collateral/versions/{version_id}/submit").json["status"] == "submitted"
    approved = approver.post(f"/api/v1/collateral/versions/{version_id}/approve",
                             json={"comment": "Good to go"})
    assert approved.status_code == 200 and approved.json["status"] == "approved"
    detail = marketer.get("/api/v1/collateral/planning-guide").json
    history = detail["versions"][0]["history"]
    assert [(h["from"], h["to"], h["by"]) for h in history] == [
        (None, "draft", "token:marketer"),
        ("draft", "submitted", "token:marketer"),
        ("submitted", "approved", "token:approver"),
    ]
    assert history[-1]["comment"] == "Good to go"
    assert count(CollateralTransition) == 3


def test_only_a_sales_approver_approves(marketer, count):
    version_id = marketer.post("/api/v1/collateral", json=GUIDE).json["id"]
    marketer.post(f"/api/v1/collateral/versions/{version_id}/submit")
    response = marketer.post(f"/api/v1/collateral/versions/{version_id}/approve")
    assert response.status_code == 403
    assert count(CollateralTransition) == 2


def test_request_changes_needs_a_comment_and_a_resubmission(marketer, approver):
    version_id = marketer.post("/api/v1/collateral", json=GUIDE).json["id"]
    marketer.post(f"/api/v1/collateral/versions/{version_id}/submit")
    bare = approver.post(f"/api/v1/collateral/versions/{version_id}/request-changes")
    assert bare.status_code == 422 and "comment" in bare.json["errors"]
    asked = approver.post(f"/api/v1/collateral/versions/{version_id}/request-changes",
                          json={"comment": "Update the pricing page"})
    assert asked.json["status"] == "changes_requested"
    again = marketer.post(f"/api/v1/collateral/versions/{version_id}/submit")
    assert again.json["status"] == "submitted"


def test_wrong_order_is_409_and_changes_nothing(marketer, approver, count):
    version_id = marketer.post("/api/v1/collateral", json=GUIDE).json["id"]
    response = approver.post(f"/api/v1/collateral/versions/{version_id}/approve")
    assert response.status_code == 409
    assert count(CollateralTransition) == 1
    marketer.post(f"/api/v1/collateral/versions/{version_id}/retire")
    assert marketer.post(f"/api/v1/collateral/versions/{version_id}/submit").status_code == 409


def test_versions_are_numbered_and_independent(marketer, approver):
    first = marketer.post("/api/v1/collateral", json=GUIDE).json
    second = marketer.post(
        "/api/v1/collateral/planning-guide/versions",
        json={k: v for k, v in GUIDE.items() if k != "key"} | {"title": "Guide, 2nd edition"},
    )
    assert second.status_code == 201 and second.json["version"] == 2
    assert first["id"] != second.json["id"]
    detail = marketer.get("/api/v1/collateral/planning-guide").json
    assert [v["version"] for v in detail["versions"]] == [2, 1]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"key": "Has Spaces"}, "key"),
        ({"funnel_stage": "bottom"}, "funnel_stage"),
        ({"expires_on": "soon"}, "expires_on"),
        ({"title": ""}, "title"),
        ({"owner": "me"}, "owner"),
    ],
)
def test_invalid_collateral_is_422(marketer, count, change, field):
    response = marketer.post("/api/v1/collateral", json={**GUIDE, **change})
    assert response.status_code == 422
    assert field in response.json["errors"]
    assert count(CollateralVersion) == 0


def test_duplicate_key_is_409(marketer, count):
    marketer.post("/api/v1/collateral", json=GUIDE)
    assert marketer.post("/api/v1/collateral", json=GUIDE).status_code == 409
    assert count(CollateralVersion) == 1


def test_unknown_collateral_is_404(marketer):
    assert marketer.get("/api/v1/collateral/nothing").status_code == 404
    assert marketer.post("/api/v1/collateral/versions/999/submit").status_code == 404


PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _upload(api, path, data, name, **fields):
    form = {"title": "Benchmark 2027", "personas": "ops lead, cfo", **fields,
            "file": (io.BytesIO(data), name)}
    return api.post(path, data=form, content_type="multipart/form-data")


def test_an_uploaded_file_is_stored_and_served_once_approved(marketer, approver, client, app):
    created = _upload(marketer, "/api/v1/collateral", PDF, "benchmark.pdf", key="benchmark")
    assert created.status_code == 201, created.json
    version = created.json
    assert version["file_name"] == "benchmark.pdf"
    assert version["content_type"] == "application/pdf"
    assert version["url"] == f"http://127.0.0.1:8000/files/{version['id']}/benchmark.pdf"
    path = f"/files/{version['id']}/benchmark.pdf"
    assert client.get(path).status_code == 404  # a draft is not public
    marketer.post(f"/api/v1/collateral/versions/{version['id']}/submit")
    approver.post(f"/api/v1/collateral/versions/{version['id']}/approve")
    served = client.get(path)
    assert served.status_code == 200 and served.data == PDF
    assert served.mimetype == "application/pdf"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"/files/{version['id']}/other.pdf").status_code == 404
    marketer.post(f"/api/v1/collateral/versions/{version['id']}/retire")
    assert client.get(path).status_code == 410


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (PDF, "../../etc/passwd.pdf", "plain file name"),
        (PDF, "folder\\\\deck.pdf", "plain file name"),
        (PDF, ".hidden.pdf", "plain file name"),
        (PDF, "script.exe", "is not one of"),
        (PDF, "noextension", "is not one of"),
        (b"<html><script>alert(1)</script></html>", "fake.pdf", "content is"),
        (b"", "empty.pdf", "empty"),
    ],
)
def test_refused_uploads_say_why_and_store_nothing(marketer, count, app, data, name, message):
    response = _upload(marketer, "/api/v1/collateral", data, name, key="refused")
    assert response.status_code == 422, response.json
    assert any(message in m for m in response.json["errors"]["file"]), response.json
    assert count(CollateralVersion) == 0
    uploads = Path(app.extensions["nurture.settings"].instance_path) / "uploads"
    leftovers = [p for p in uploads.rglob(".upload-*")] if uploads.exists() else []
    assert leftovers == []  # nothing half-written is left behind


def test_an_upload_over_the_limit_is_413(marketer, count):
    from campaigns.uploads import MAX_UPLOAD_BYTES

    big = PDF + b"0" * (MAX_UPLOAD_BYTES + 100 * 1024)
    response = _upload(marketer, "/api/v1/collateral", big, "big.pdf", key="big")
    assert response.status_code == 413
    assert count(CollateralVersion) == 0


def test_an_upload_needs_its_fields_and_a_file(marketer, count):
    no_title = marketer.post("/api/v1/collateral", data={
        "key": "x", "file": (io.BytesIO(PDF), "x.pdf")}, content_type="multipart/form-data")
    assert no_title.status_code == 422 and "title" in no_title.json["errors"]
    no_file = marketer.post("/api/v1/collateral", data={"key": "x", "title": "X"},
                            content_type="multipart/form-data")
    assert no_file.status_code == 422 and "file" in no_file.json["errors"]
    assert count(CollateralVersion) == 0
