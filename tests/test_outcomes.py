"""POST /api/v1/outcomes: opportunities, wins and losses from the CRM, each once, answered per
item; a loss returns the lead to nurture routed by its reason; bad input changes nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from nurture.clock import utcnow
from nurture.handoffs.outcomes import LOSS_REASONS
from nurture.models import (
    Enrollment,
    Handoff,
    HandoffStatus,
    Lead,
    LossReason,
    Outcome,
    Rejection,
    RejectionReason,
    Role,
)
from tests.conftest import Api
from tests.test_api_handoffs import user_token
from tests.test_api_sequences import make_collateral
from tests.test_handoffs import make_rep, recycle, rejected_lead
from tests.test_routing import sequence

NOW = utcnow().isoformat()


def item(outcome_id, type_, *, email="lena@example.com", **fields):
    return {"id": outcome_id, "type": type_, "email": email, "occurred_at": NOW, **fields}


@pytest.fixture()
def accepted(db, client):
    """Lena, recycled to rita, accepted: (lead id, handoff id)."""
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db)
    handoff_id, _ = recycle(db, lead_id, now=utcnow())
    rita = Api(client, user_token(db, "rita@example.com"))
    assert rita.post(f"/api/v1/handoffs/{handoff_id}/accept").status_code == 200
    return lead_id, handoff_id


def stage(db, lead_id):
    with db.session_scope() as session:
        return session.get(Lead, lead_id).lifecycle_stage.value


def test_accepted_to_opportunity_to_customer(api, db, accepted):
    lead_id, handoff_id = accepted
    answer = api.post("/api/v1/outcomes", json={"outcomes": [
        item("opp-1", "opportunity_created", amount="12000.50", currency="EUR")]})
    assert answer.status_code == 200, answer.json
    assert answer.json["results"] == [{"id": "opp-1", "status": "recorded", "lead_id": lead_id,
                                       "lifecycle_stage": "opportunity"}]
    with db.session_scope() as session:
        assert session.get(Handoff, handoff_id).stalls_at is None
    won = api.post("/api/v1/outcomes", json={"outcomes": [
        item("won-1", "won", amount="15000", currency="EUR"),
        item("won-2", "won", amount="123456789012.34", currency="EUR")]})
    assert won.json["recorded"] == 2
    assert stage(db, lead_id) == "customer"
    with db.session_scope() as session:
        rows = session.execute(select(Outcome).order_by(Outcome.id)).scalars().all()
        assert [(o.kind.value, o.amount, o.handoff_id) for o in rows] == [
            ("opportunity_created", Decimal("12000.5"), handoff_id),
            ("won", Decimal("15000"), handoff_id),
            ("won", Decimal("123456789012.34"), handoff_id)]  # SQLite: 15 digits are exact


@pytest.mark.usefixtures("accepted")
def test_a_loss_returns_the_lead_to_nurture_routed_by_its_reason(api, db, client, make_token):
    make_collateral(db)
    marketer = Api(client, make_token(Role.MARKETER, "marketer"))
    timing = sequence(marketer, "timing", reasons=("bad_timing",))
    sequence(marketer, "budget", reasons=("no_budget",))
    api.post("/api/v1/outcomes", json={"outcomes": [item("opp-1", "opportunity_created")]})
    answer = api.post("/api/v1/outcomes", json={"outcomes": [
        item("lost-1", "lost", loss_reason="timing")]})
    [result] = answer.json["results"]
    assert result["lifecycle_stage"] == "nurturing"
    assert result["routing"] == {"reason": "bad_timing", "enrolled": True, "sequence_id": timing,
                                 "detail": None}
    with db.session_scope() as session:
        rejection = session.execute(select(Rejection).order_by(Rejection.id.desc())).scalars().first()
        assert (rejection.reason, rejection.rep_email) == (RejectionReason.BAD_TIMING,
                                                           "rita@example.com")
        assert session.execute(select(Outcome.rejection_id).where(
            Outcome.crm_outcome_id == "lost-1")).scalar_one() == rejection.id
        assert session.execute(select(Enrollment.sequence_id).where(
            Enrollment.status == "active")).scalars().all() == [timing]


def test_every_loss_reason_maps_to_a_rejection_reason():
    assert set(LOSS_REASONS) == set(LossReason)
    assert not {r.value for r in LOSS_REASONS.values()} & {"sla_expired", "stalled_in_sales"}


def test_an_opportunity_for_an_unanswered_handoff_accepts_it_on_the_crms_word(api, db):
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db)
    handoff_id, _ = recycle(db, lead_id, now=utcnow())
    api.post("/api/v1/outcomes", json={"outcomes": [item("opp-1", "opportunity_created")]})
    with db.session_scope() as session:
        handoff = session.get(Handoff, handoff_id)
        assert (handoff.status, handoff.closed_by) == (HandoffStatus.ACCEPTED, "crm:outcomes")
        assert (handoff.next_sla_at, handoff.stalls_at) == (None, None)
    assert stage(db, lead_id) == "opportunity"


def test_an_unknown_lead_is_answered_for_its_item_and_the_rest_is_kept(api, db, accepted):
    lead_id, _ = accepted
    with db.session_scope() as session:
        session.get(Lead, lead_id).crm_id = "0031x"
    answer = api.post("/api/v1/outcomes", json={"outcomes": [
        item("a", "opportunity_created", email="nobody@example.com"),
        {"id": "b", "type": "opportunity_created", "crm_id": "0031x", "occurred_at": NOW},
        {"id": "c", "type": "won", "crm_id": "missing", "occurred_at": NOW, "amount": 1,
         "currency": "USD"},
    ]})
    assert answer.status_code == 200
    assert (answer.json["recorded"], answer.json["unknown_leads"]) == (1, 2)
    assert [r["status"] for r in answer.json["results"]] == ["unknown_lead", "recorded",
                                                             "unknown_lead"]
    assert answer.json["results"][0]["detail"] == "no lead with email 'nobody@example.com'"
    assert stage(db, lead_id) == "opportunity"


def test_a_repeated_outcome_id_counts_once(api, db, accepted, count):
    lead_id, _ = accepted
    batch = {"outcomes": [item("won-1", "won", amount="10", currency="USD"),
                          item("won-1", "won", amount="10", currency="USD")]}
    first = api.post("/api/v1/outcomes", json=batch)
    assert (first.json["recorded"], first.json["duplicates"]) == (1, 1)
    again = api.post("/api/v1/outcomes", json=batch)
    assert (again.json["recorded"], again.json["duplicates"]) == (0, 2)
    assert count(Outcome) == 1
    assert stage(db, lead_id) == "customer"


@pytest.mark.parametrize(("fields", "path"), [
    ({"type": "won"}, "outcomes[0]"),  # no amount
    ({"type": "won", "amount": -5, "currency": "EUR"}, "outcomes[0].amount"),
    ({"type": "won", "amount": "lots", "currency": "EUR"}, "outcomes[0].amount"),
    ({"type": "won", "amount": True, "currency": "EUR"}, "outcomes[0].amount"),
    ({"type": "won", "amount": "1e400", "currency": "EUR"}, "outcomes[0].amount"),
    ({"type": "won", "amount": "1" * 17, "currency": "EUR"}, "outcomes[0].amount"),
    ({"type": "won", "amount": "1.00001", "currency": "EUR"}, "outcomes[0].amount"),
    ({"type": "won", "amount": 10}, "outcomes[0]"),  # no currency
    ({"type": "won", "amount": 10, "currency": "euro"}, "outcomes[0].currency"),
    ({"type": "lost"}, "outcomes[0]"),  # no loss reason
    ({"type": "lost", "loss_reason": "bored"}, "outcomes[0].loss_reason"),
    ({"type": "opportunity_created", "loss_reason": "price"}, "outcomes[0]"),
    ({"type": "signed"}, "outcomes[0].type"),
    ({"type": "won", "amount": 1, "currency": "EUR", "email": None}, "outcomes[0]"),
    ({"type": "won", "amount": 1, "currency": "EUR", "occurred_at": "yesterday"},
     "outcomes[0].occurred_at"),
    ({"type": "won", "amount": 1, "currency": "EUR", "id": ""}, "outcomes[0].id"),
    ({"type": "won", "amount": 1, "currency": "EUR", "id": "a\x00"}, "outcomes[0].id"),
    ({"type": "won", "amount": 1, "currency": "EUR", "extra": 1}, "outcomes[0].extra"),
])
def test_invalid_items_refuse_the_whole_batch_naming_the_field(api, db, accepted, count, fields,
                                                                path):
    lead_id, _ = accepted
    good = item("ok", "opportunity_created")
    bad = {"id": "x", "email": "lena@example.com", "occurred_at": NOW, **fields}
    answer = api.post("/api/v1/outcomes", json={"outcomes": [bad, good]})
    assert answer.status_code == 422, answer.json
    assert path in answer.json["errors"], answer.json["errors"]
    assert count(Outcome) == 0
    assert stage(db, lead_id) == "accepted_by_sales"


def test_an_outcome_from_the_future_refuses_the_batch(api, db, accepted, count):
    lead_id, _ = accepted
    future = (utcnow() + timedelta(days=2)).isoformat()
    answer = api.post("/api/v1/outcomes", json={"outcomes": [
        item("ok", "opportunity_created"), {**item("late", "won", amount=1, currency="USD"),
                                            "occurred_at": future}]})
    assert answer.status_code == 422
    assert list(answer.json["errors"]) == ["outcomes[1].occurred_at"]
    assert count(Outcome) == 0
    assert stage(db, lead_id) == "accepted_by_sales"


def test_an_oversized_batch_malformed_json_and_the_wrong_content_type_store_nothing(api, count):
    too_many = api.post("/api/v1/outcomes", json={
        "outcomes": [item(str(i), "opportunity_created") for i in range(1001)]})
    assert too_many.status_code == 422 and "outcomes" in too_many.json["errors"]
    empty = api.post("/api/v1/outcomes", json={"outcomes": []})
    assert empty.status_code == 422
    malformed = api.post("/api/v1/outcomes", data='{"outcomes": [', content_type="application/json")
    assert malformed.status_code == 400
    assert malformed.mimetype == "application/problem+json"
    text = api.post("/api/v1/outcomes", data="won", content_type="text/plain")
    assert text.status_code == 415
    huge = api.post("/api/v1/outcomes", data=b"{" + b" " * (1024 * 1024 + 1) + b"}",
                    content_type="application/json")
    assert huge.status_code == 413
    assert count(Outcome) == 0


def test_tokens_and_roles(client, make_token, count):
    body = {"outcomes": [item("a", "opportunity_created")]}
    assert client.post("/api/v1/outcomes", json=body).status_code == 401
    wrong = Api(client, "not-a-token")
    assert wrong.post("/api/v1/outcomes", json=body).status_code == 401
    rep = Api(client, make_token(Role.REP, "rep"))
    assert rep.post("/api/v1/outcomes", json=body).status_code == 403
    assert count(Outcome) == 0


def test_a_customers_loss_is_recorded_and_the_customer_stays(api, db, accepted):
    lead_id, _ = accepted
    api.post("/api/v1/outcomes", json={"outcomes": [item("w", "won", amount=1, currency="USD")]})
    answer = api.post("/api/v1/outcomes", json={"outcomes": [
        item("l", "lost", loss_reason="price")]})
    assert answer.json["results"][0]["status"] == "recorded"
    assert stage(db, lead_id) == "customer"


def test_outcomes_in_one_batch_apply_in_the_order_they_occurred(api, db, accepted):
    lead_id, _ = accepted
    answer = api.post("/api/v1/outcomes", json={"outcomes": [
        {**item("w", "won", amount=5, currency="USD"), "occurred_at": "2026-11-23T12:00:00Z"},
        {**item("o", "opportunity_created"), "occurred_at": "2026-11-20T12:00:00Z"},
    ]})
    assert [r["lifecycle_stage"] for r in answer.json["results"]] == ["customer", "opportunity"]
    assert stage(db, lead_id) == "customer"


def test_system_reasons_are_refused_from_the_crm_and_reps(api):
    answer = api.post("/api/v1/rejections", json={
        "lead": {"email": "x@example.com"}, "rep_email": "r@example.com",
        "reason": "sla_expired"})
    assert answer.status_code == 422 and "reason" in answer.json["errors"]
