"""The handoffs API: the rep's inbox, accept, reject again (routed by the new reason)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from nurture.accounts.services import create_token
from nurture.clock import utcnow
from nurture.models import (
    Enrollment,
    Handoff,
    HandoffEvent,
    Lead,
    Rejection,
    Role,
    User,
)
from tests.conftest import Api
from tests.test_api_sequences import make_collateral
from tests.test_handoffs import make_rep, recycle, rejected_lead
from tests.test_routing import sequence


def user_token(db, email, role=Role.REP):
    with db.session_scope() as session:
        user_id = session.execute(select(User.id).where(User.email == email)).scalar_one()
        _, token = create_token(session, email, role, user_id=user_id, now=utcnow())
    return token


@pytest.fixture()
def handoff(db):
    """An open handoff of a lead rejected long ago, to rita (the rep who rejected it)."""
    make_rep(db, "rita@example.com")
    make_rep(db, "otto@example.com")
    lead_id = rejected_lead(db)
    handoff_id, _ = recycle(db, lead_id, now=utcnow())
    return handoff_id, lead_id


@pytest.fixture()
def rita(client, db):
    return Api(client, user_token(db, "rita@example.com"))


@pytest.fixture()
def otto(client, db):
    return Api(client, user_token(db, "otto@example.com"))


def test_the_reps_inbox_lists_its_own_open_handoffs(handoff, rita, otto, api):
    handoff_id, lead_id = handoff
    inbox = rita.get("/api/v1/handoffs?status=open")
    assert inbox.status_code == 200
    [item] = inbox.json["handoffs"]
    assert (item["id"], item["lead"]["id"], item["rep_email"]) == (handoff_id, lead_id,
                                                                   "rita@example.com")
    assert item["score"]["explanation"][0]["rule"] == "pricing page visit"
    assert otto.get("/api/v1/handoffs").json == {"handoffs": []}
    assert otto.get("/api/v1/handoffs?rep_email=rita@example.com").status_code == 403
    everyone = api.get("/api/v1/handoffs?rep_email=rita@example.com&status=open")
    assert [h["id"] for h in everyone.json["handoffs"]] == [handoff_id]
    assert api.get("/api/v1/handoffs?status=closed").status_code == 422
    assert api.get("/api/v1/handoffs?page=2").status_code == 422
    lead = api.get(f"/api/v1/leads/{lead_id}").json
    assert [h["id"] for h in lead["handoffs"]] == [handoff_id]
    assert lead["lifecycle_stage"] == "recycled_to_sales"


def test_accept_takes_the_lead_out_of_nurture_once(handoff, rita, db):
    handoff_id, lead_id = handoff
    accepted = rita.post(f"/api/v1/handoffs/{handoff_id}/accept")
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["handoff"]["status"] == "accepted"
    assert accepted.json["handoff"]["response_ms"] >= 0
    again = rita.post(f"/api/v1/handoffs/{handoff_id}/accept")
    assert again.status_code == 409
    assert again.mimetype == "application/problem+json"
    assert rita.post(f"/api/v1/handoffs/{handoff_id}/reject",
                     json={"reason": "no_need"}).status_code == 409
    with db.session_scope() as session:
        assert session.get(Lead, lead_id).lifecycle_stage == "accepted_by_sales"
        assert session.get(Handoff, handoff_id).first_action_at is not None
        kinds = session.execute(select(HandoffEvent.kind).order_by(HandoffEvent.id)).scalars()
        assert list(kinds) == ["created", "accepted"]


def test_another_reps_handoff_is_403_and_changes_nothing(handoff, otto, db, client, make_token):
    handoff_id, _ = handoff
    assert otto.post(f"/api/v1/handoffs/{handoff_id}/accept").status_code == 403
    assert otto.post(f"/api/v1/handoffs/{handoff_id}/reject",
                     json={"reason": "no_budget"}).status_code == 403
    marketer = Api(client, make_token(Role.MARKETER, "m"))
    assert marketer.post(f"/api/v1/handoffs/{handoff_id}/accept").status_code == 403
    assert Api(client, "nrt_unknown").post(f"/api/v1/handoffs/{handoff_id}/accept").status_code == 401
    with db.session_scope() as session:
        assert session.get(Handoff, handoff_id).status == "open"


def test_reject_again_records_a_rejection_and_routes_by_the_new_reason(handoff, rita, db, client,
                                                                        make_token):
    make_collateral(db)
    marketer = Api(client, make_token(Role.MARKETER, "m"))
    sequence(marketer, "timing", reasons=("bad_timing",))
    budget = sequence(marketer, "budget-2", reasons=("no_budget",), priority=5)
    handoff_id, lead_id = handoff
    with db.session_scope() as session:  # the first nurture cycle's enrollment had exited
        assert session.execute(select(Enrollment)).first() is None
    answer = rita.post(f"/api/v1/handoffs/{handoff_id}/reject",
                       json={"reason": "no_budget", "note": "Q3 freeze"})
    assert answer.status_code == 200, answer.json
    assert answer.json["handoff"]["status"] == "rejected"
    assert answer.json["rejection"]["reason"] == "no_budget"
    assert answer.json["rejection"]["rep_email"] == "rita@example.com"
    assert answer.json["enrollment"]["sequence_id"] == budget
    assert rita.post(f"/api/v1/handoffs/{handoff_id}/reject",
                     json={"reason": "no_budget"}).status_code == 409
    with db.session_scope() as session:
        assert session.get(Lead, lead_id).lifecycle_stage == "nurturing"
        assert session.execute(select(Rejection.note).order_by(Rejection.id.desc())
                               ).scalars().first() == "Q3 freeze"
        assert session.get(Handoff, handoff_id).rejection_id == answer.json["rejection"]["id"]


def test_reject_validates_its_body(handoff, rita):
    handoff_id, _ = handoff
    assert rita.post(f"/api/v1/handoffs/{handoff_id}/reject",
                     json={"reason": "bored"}).status_code == 422
    assert rita.post(f"/api/v1/handoffs/{handoff_id}/reject",
                     json={"reason": "no_need", "extra": 1}).status_code == 422
    assert rita.post("/api/v1/handoffs/999999/reject",
                     json={"reason": "no_need"}).status_code == 404


def test_an_admin_may_act_on_any_handoff(handoff, api):
    handoff_id, _ = handoff
    answer = api.post(f"/api/v1/handoffs/{handoff_id}/reject", json={"reason": "no_need"})
    assert answer.status_code == 200
    assert answer.json["rejection"]["rep_email"] == "rita@example.com"  # on the rep's behalf


def test_first_action_time_is_measured(handoff, rita, db):
    handoff_id, _ = handoff
    with db.session_scope() as session:
        session.get(Handoff, handoff_id).created_at = utcnow() - timedelta(minutes=3)
    answer = rita.post(f"/api/v1/handoffs/{handoff_id}/accept")
    assert 180_000 <= answer.json["handoff"]["response_ms"] < 240_000


def test_answers_match_the_openapi_document(handoff, rita, otto, client, api):
    from tests.test_openapi import _check

    document = client.get("/api/v1/openapi.json").json
    handoff_id, lead_id = handoff
    _check(document, "/handoffs", "get", rita.get("/api/v1/handoffs?status=open&limit=5"))
    _check(document, "/handoffs", "get", rita.get("/api/v1/handoffs?limit=0"))
    _check(document, "/handoffs/{handoff_id}/accept", "post",
           otto.post(f"/api/v1/handoffs/{handoff_id}/accept"))
    _check(document, "/handoffs/{handoff_id}/reject", "post",
           rita.post(f"/api/v1/handoffs/{handoff_id}/reject", json={"reason": "other"}))
    _check(document, "/handoffs/{handoff_id}/accept", "post",
           rita.post(f"/api/v1/handoffs/{handoff_id}/accept"))
    lead = api.get(f"/api/v1/leads/{lead_id}")
    assert lead.json["handoffs"][0]["status"] == "rejected"
    _check(document, "/leads/{lead_id}", "get", lead)
