"""Issue #5 end to end: a rejected lead is nurtured; signed provider events and API events push
its score over the threshold; the CRM (a real HTTP server) gets one signed `lead.recycled`
with the explanation; the rep rejects it again with `no_budget`; it is routed to the
matching sequence. Web requests through the apps, jobs through a real RQ worker."""

from __future__ import annotations

import copy
import json
import time
from datetime import timedelta

from rq import SimpleWorker
from sqlalchemy import select

from nurture.clock import utcnow
from nurture.models import Enrollment, Handoff, HandoffNotification, Role
from tests.conftest import Api
from tests.provider_signing import fixture, mailgun_request
from tests.test_api_handoffs import user_token
from tests.test_api_sequences import make_collateral
from tests.test_handoffs import make_rep
from tests.test_routing import sequence
from tests.test_scoring_models import DOCUMENT
from tests.webhook_app import MAILGUN_KEY
from workers.queues import all_queues

LEAD = {"email": "vera@example.com", "first_name": "Vera", "title": "VP Engineering",
        "industry": "software", "company_size": 300, "country": "DE", "company": "Acme"}


def work(app):
    redis = app.extensions["nurture.redis"]
    SimpleWorker(all_queues(redis), connection=redis).work(burst=True, logging_level="WARNING")


def test_a_rejected_lead_qualifies_goes_back_to_sales_and_is_rejected_again(
        app, client, db, make_token, providers, receiver, crm_env):
    admin = Api(client, make_token(Role.ADMIN, "admin"))
    marketer = Api(client, make_token(Role.MARKETER, "marketer"))
    sales = Api(client, make_token(Role.SALES_APPROVER, "sales"))
    make_collateral(db)
    budget = sequence(marketer, "budget", reasons=("no_budget",))
    make_rep(db, "rita@example.com")
    rita = Api(client, user_token(db, "rita@example.com"))

    # rejected two months ago with no_budget: nurtured by the budget sequence
    rejected = admin.post("/api/v1/rejections", json={
        "lead": LEAD, "rep_email": "rita@example.com", "reason": "no_budget",
        "note": "budget frozen", "rejected_at": (utcnow() - timedelta(days=60)).isoformat()})
    assert rejected.status_code == 201, rejected.json
    lead_id = rejected.json["lead"]["id"]
    assert rejected.json["enrollment"]["sequence_id"] == budget
    assert rejected.json["lead"]["lifecycle_stage"] == "nurturing"

    # the default scoring model, approved by both sides, active
    model_id = marketer.post("/api/v1/scoring/models", json=DOCUMENT).json["id"]
    assert marketer.post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert sales.post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert admin.post(f"/api/v1/scoring/models/{model_id}/activate").status_code == 200
    work(app)
    assert receiver.requests == []  # fit alone does not qualify

    # a signed Mailgun click on the pricing page, and events from the website
    click = copy.deepcopy(fixture("mailgun_events.json")["clicked"]["event-data"])
    click.update(recipient=LEAD["email"], url="https://example.com/pricing",
                 timestamp=time.time(), **{"user-variables": {}})
    answer = providers.app.test_client().post(
        "/webhooks/mailgun", data=mailgun_request(click, MAILGUN_KEY, timestamp=int(time.time())),
        content_type="application/json")
    assert answer.status_code == 200 and answer.json["accepted"] == 1
    now = utcnow().isoformat()
    events = admin.post("/api/v1/events", json={"events": [
        {"id": "web-1", "email": LEAD["email"], "type": "webinar_attended", "occurred_at": now,
         "properties": {"webinar": "pricing-deep-dive"}},
        {"id": "web-2", "email": LEAD["email"], "type": "form_submit", "occurred_at": now,
         "properties": {"form": "contact"}},
    ]})
    assert events.status_code == 202, events.json
    work(app)

    # one correctly signed lead.recycled with the explanation
    assert len(receiver.requests) == 1
    payload = receiver.verified()
    assert payload["type"] == "lead.recycled"
    assert payload["lead"]["id"] == lead_id
    assert payload["rep_email"] == "rita@example.com"
    assert payload["rejection"]["reason"] == "no_budget"
    assert payload["score"]["total"] >= 60
    rules = {item["rule"] for item in payload["score"]["explanation"]}
    assert {"pricing_page", "webinar_attended", "form_submit", "senior_title"} <= rules
    with db.session_scope() as session:
        [handoff] = session.execute(select(Handoff)).scalars().all()
        assert handoff.qualifying_event_id is not None
        assert session.execute(select(Enrollment.status)).scalars().all() == ["exited"]
        statuses = {n.channel.value: n.status.value for n in
                    session.execute(select(HandoffNotification)).scalars()}
        assert statuses == {"crm_webhook": "delivered", "rep_email": "delivered"}
    assert admin.get(f"/api/v1/leads/{lead_id}").json["lifecycle_stage"] == "recycled_to_sales"

    # the rep sees it and gives it back with no_budget: routed to the budget sequence again
    [item] = rita.get("/api/v1/handoffs?status=open").json["handoffs"]
    assert item["id"] == handoff.id
    again = rita.post(f"/api/v1/handoffs/{handoff.id}/reject",
                      json={"reason": "no_budget", "note": "still no budget"})
    assert again.status_code == 200, again.json
    assert again.json["enrollment"]["sequence_id"] == budget
    assert again.json["enrollment"]["status"] == "active"
    lead = admin.get(f"/api/v1/leads/{lead_id}").json
    assert lead["lifecycle_stage"] == "nurturing"
    assert [r["reason"] for r in lead["rejections"]] == ["no_budget", "no_budget"]
    assert lead["handoffs"][0]["status"] == "rejected"
    # more engagement now does not bounce it straight back (minimum time after a rejection)
    admin.post("/api/v1/events", json={"events": [
        {"id": "web-3", "email": LEAD["email"], "type": "meeting_booked",
         "occurred_at": utcnow().isoformat(), "properties": {}}]})
    work(app)
    assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0][1])["id"] == payload["id"]
