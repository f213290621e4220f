"""Collateral and its sales approval through the API: every move recorded, roles enforced."""

from __future__ import annotations

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
