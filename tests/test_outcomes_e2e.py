"""Issue #7 end to end, through the HTTP API with a real RQ worker and the dispatcher's loop on
a controlled clock: an SLA agreed by both sides is activated; three nurtured leads qualify and
go to the rep under it. One is accepted, becomes an opportunity and is lost for `timing`: it
is back in nurture in the timing sequence. One is accepted and nothing happens: when its window
passes it returns to nurture as `stalled_in_sales`. One is never answered: it escalates to the
rep and a manager at its due time, and expires back to nurture (`sla_expired`) a window later.
Two dispatchers tick together; each timer fires once. The reports' figures for that history
equal hand-computed ones (and the rollups rebuilt from the facts equal the kept ones); the
alignment digest of the fortnight reaches the SMTP server once."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from rq import SimpleWorker
from sqlalchemy import select

from nurture.clock import utcnow
from nurture.handoffs.policy import BusinessCalendar, add_business_time
from nurture.models import Digest, Handoff, HandoffEvent, HandoffNotification, Role
from nurture.reports.digest import EPOCH
from nurture.reports.rebuild import rebuild
from tests.conftest import Api
from tests.test_api_handoffs import user_token
from tests.test_api_sequences import make_collateral
from tests.test_handoffs import make_rep
from tests.test_reports import _rollups
from tests.test_routing import sequence
from tests.test_scoring_models import DOCUMENT as SCORING
from workers.dispatcher import Dispatcher, PeriodicTask, dispatch_digest, dispatch_sla_timers
from workers.queues import all_queues

PROFILE = {"first_name": "Vera", "title": "VP Engineering", "industry": "software",
           "company_size": 300, "country": "DE", "company": "Acme"}

SLA = {
    "name": "Sales and marketing, 2027",
    "business_hours": {"opens": "09:00", "closes": "17:00", "holidays": ["2026-12-25"],
                       "timezone": "Europe/Berlin"},
    "first_action": {"within": "PT1H"},
    "escalation": [{"notify": ["rep", "head-of-sales@example.com"], "within": "PT2H"}],
    "on_last_lapse": "return_to_nurture",
    "stalled_in_sales_days": 2,
    "min_nurture_days": {"no_budget": 30},
}
CALENDAR = BusinessCalendar(holidays=frozenset({date(2026, 12, 25)}))


def work(app):
    redis = app.extensions["nurture.redis"]
    SimpleWorker(all_queues(redis), connection=redis).work(burst=True, logging_level="WARNING")


def kinds(db, handoff_id):
    with db.session_scope() as session:
        return session.execute(select(HandoffEvent.kind).where(
            HandoffEvent.handoff_id == handoff_id).order_by(HandoffEvent.id)).scalars().all()


def test_outcomes_and_the_sla_close_the_loop(app, client, db, make_token, receiver, crm_env,
                                             smtp_server, monkeypatch):
    admin = Api(client, make_token(Role.ADMIN, "admin"))
    marketer = Api(client, make_token(Role.MARKETER, "marketer"))
    sales = Api(client, make_token(Role.SALES_APPROVER, "sales"))
    make_collateral(db)
    timing = sequence(marketer, "timing", reasons=("bad_timing",))
    stalled = sequence(marketer, "stalled", reasons=("stalled_in_sales",))
    expired = sequence(marketer, "expired", reasons=("sla_expired",))
    make_rep(db, "rita@example.com", timezone="Europe/Berlin")
    rita = Api(client, user_token(db, "rita@example.com"))

    # the SLA, drafted by marketing, approved by both sides, active
    sla_id = marketer.post("/api/v1/slas", json=SLA).json["id"]
    assert admin.post(f"/api/v1/slas/{sla_id}/activate").status_code == 409
    assert marketer.post(f"/api/v1/slas/{sla_id}/approve").status_code == 200
    assert sales.post(f"/api/v1/slas/{sla_id}/approve").status_code == 200
    assert admin.post(f"/api/v1/slas/{sla_id}/activate").json["status"] == "active"
    model_id = marketer.post("/api/v1/scoring/models", json=SCORING).json["id"]
    marketer.post(f"/api/v1/scoring/models/{model_id}/approve")
    sales.post(f"/api/v1/scoring/models/{model_id}/approve")
    assert admin.post(f"/api/v1/scoring/models/{model_id}/activate").status_code == 200

    # three leads rejected for budget two months ago book a meeting now: they qualify
    leads = {}
    for name in ("lost", "stalled", "unanswered"):
        email = f"{name}@example.com"
        rejected = admin.post("/api/v1/rejections", json={
            "lead": {"email": email, "crm_id": f"crm-{name}", **PROFILE},
            "rep_email": "rita@example.com", "reason": "no_budget",
            "rejected_at": (utcnow() - timedelta(days=60)).isoformat()})
        assert rejected.status_code == 201, rejected.json
        leads[name] = rejected.json["lead"]["id"]
    work(app)
    events = admin.post("/api/v1/events", json={"events": [
        {"id": f"meeting-{name}", "email": f"{name}@example.com", "type": "meeting_booked",
         "occurred_at": utcnow().isoformat(), "properties": {}} for name in leads]})
    assert events.status_code == 202, events.json
    work(app)
    assert len(receiver.requests) == 3  # the CRM heard of each handoff once
    inbox = {h["lead_id"]: h for h in rita.get("/api/v1/handoffs?status=open").json["handoffs"]}
    assert set(inbox) == set(leads.values())
    handoffs = {name: inbox[lead_id] for name, lead_id in leads.items()}
    for handoff in handoffs.values():
        assert handoff["sla_id"] == sla_id
    with db.session_scope() as session:
        created = session.get(Handoff, handoffs["unanswered"]["id"]).created_at
    due = add_business_time(created, timedelta(hours=1), "Europe/Berlin", CALENDAR)
    assert handoffs["unanswered"]["sla_due_at"] == due.isoformat().replace("+00:00", "Z")

    # accepted, an opportunity, lost for timing: back in nurture in the timing sequence
    for name in ("lost", "stalled"):
        assert rita.post(f"/api/v1/handoffs/{handoffs[name]['id']}/accept").status_code == 200
    reported = admin.post("/api/v1/outcomes", json={"outcomes": [
        {"id": "opp-9", "type": "opportunity_created", "crm_id": "crm-lost",
         "amount": "24000", "currency": "EUR", "occurred_at": utcnow().isoformat()},
        {"id": "opp-9", "type": "opportunity_created", "crm_id": "crm-lost",
         "amount": "24000", "currency": "EUR", "occurred_at": utcnow().isoformat()},
        {"id": "opp-x", "type": "opportunity_created", "email": "stranger@example.com",
         "occurred_at": utcnow().isoformat()},
    ]})
    assert [r["status"] for r in reported.json["results"]] == ["recorded", "duplicate",
                                                               "unknown_lead"]
    assert admin.get(f"/api/v1/leads/{leads['lost']}").json["lifecycle_stage"] == "opportunity"
    lost = admin.post("/api/v1/outcomes", json={"outcomes": [
        {"id": "lost-9", "type": "lost", "loss_reason": "timing", "crm_id": "crm-lost",
         "occurred_at": utcnow().isoformat()}]})
    assert lost.json["results"][0]["routing"]["sequence_id"] == timing
    lead = admin.get(f"/api/v1/leads/{leads['lost']}").json
    assert lead["lifecycle_stage"] == "nurturing"
    assert lead["rejections"][0]["reason"] == "bad_timing"
    assert [e["sequence_id"] for e in lead["enrollments"] if e["status"] == "active"] == [timing]

    # the dispatchers (two at once, on a controlled clock) fire the SLA's timers
    clock = {"now": utcnow()}
    dispatchers = [Dispatcher(app.extensions["nurture.redis"], db, interval=0.1,
                              clock=lambda: clock["now"],
                              tasks=(PeriodicTask("sla_timers", timedelta(0),
                                                  dispatch_sla_timers),))
                   for _ in range(2)]

    def at(moment):
        clock["now"] = moment
        acted = [d.tick() for d in dispatchers]
        assert sorted(acted) == [False, True]  # one holds the lease
        work(app)

    unanswered = handoffs["unanswered"]["id"]
    at(due - timedelta(seconds=1))
    assert "sla_missed" not in kinds(db, unanswered)
    at(due)
    at(due)  # the same tick again: nothing more
    assert kinds(db, unanswered).count("sla_missed") == 1
    with db.session_scope() as session:
        reminded = session.execute(select(HandoffNotification.recipient).where(
            HandoffNotification.handoff_id == unanswered,
            HandoffNotification.purpose == "reminder")).scalars().all()
        next_due = session.get(Handoff, unanswered).next_sla_at
    assert sorted(reminded) == ["head-of-sales@example.com", "rita@example.com"]
    assert next_due == add_business_time(due, timedelta(hours=2), "Europe/Berlin", CALENDAR)
    at(next_due - timedelta(seconds=1))
    assert "sla_expired" not in kinds(db, unanswered)
    at(next_due)
    at(next_due + timedelta(minutes=5))
    assert kinds(db, unanswered).count("sla_expired") == 1
    lead = admin.get(f"/api/v1/leads/{leads['unanswered']}").json
    assert lead["lifecycle_stage"] == "nurturing"
    assert lead["rejections"][0]["reason"] == "sla_expired"
    assert lead["handoffs"][0]["status"] == "expired"
    assert [e["sequence_id"] for e in lead["enrollments"] if e["status"] == "active"] == [expired]

    # accepted with no opportunity: back to nurture when its two business days pass
    stall_at = rita.get(f"/api/v1/handoffs/{handoffs['stalled']['id']}").json["stalls_at"]
    assert stall_at is not None
    with db.session_scope() as session:
        handoff = session.get(Handoff, handoffs["stalled"]["id"])
        stalls_at, accepted_at = handoff.stalls_at, handoff.closed_at
    assert stalls_at == add_business_time(accepted_at, timedelta(hours=16), "Europe/Berlin",
                                          CALENDAR)
    at(stalls_at - timedelta(seconds=1))
    assert admin.get(f"/api/v1/leads/{leads['stalled']}").json["lifecycle_stage"] == (
        "accepted_by_sales")
    at(stalls_at)
    lead = admin.get(f"/api/v1/leads/{leads['stalled']}").json
    assert lead["lifecycle_stage"] == "nurturing"
    assert lead["rejections"][0]["reason"] == "stalled_in_sales"
    assert lead["handoffs"][0]["status"] == "stalled"
    assert [e["sequence_id"] for e in lead["enrollments"] if e["status"] == "active"] == [stalled]
    assert kinds(db, handoffs["stalled"]["id"]).count("stalled_in_sales") == 1
    # the lost lead was never touched by a timer
    assert "stalled_in_sales" not in kinds(db, handoffs["lost"]["id"])

    # the numbers, from the product's own data: every figure computed by hand
    period = {"from": (utcnow() - timedelta(days=70)).date().isoformat(),
              "to": (stalls_at + timedelta(days=2)).date().isoformat()}

    def report(name, **query):
        answer = marketer.get(f"/api/v1/reports/{name}", query_string={**period, **query})
        assert answer.status_code == 200, answer.json
        return answer.json["rows"]

    reasons = Counter()
    for row in report("rejection_reasons"):
        reasons[row["reason"]] += row["count"]
    assert reasons == {"no_budget": 3, "bad_timing": 1, "sla_expired": 1, "stalled_in_sales": 1}
    assert report("acceptance") == [{"recycled": 3, "accepted": 2, "rejected_again": 0,
                                     "acceptance_rate": 1.0}]
    assert report("sla") == [{"rep": "rita@example.com", "handoffs": 3, "met": 2, "escalated": 1,
                              "expired": 1, "stalled_returns": 1}]
    reached = Counter()
    for row in report("funnel"):
        reached[row["stage"]] += row["count"]
        if row["stage"] == "nurtured" and row["count"]:
            assert row["median_seconds"] == row["p90_seconds"] == 0  # enrolled on rejection
    # the three leads (no sequence takes no_budget) and their three returns to nurture
    assert reached == {"entered": 6, "nurtured": 3, "engaged": 3, "recycled": 3, "accepted": 2,
                       "opportunity": 1, "won": 0}
    assert report("revenue") == [{"qualified": 3, "won": 0, "qualified_per_won": None,
                                  "won_from_recycled": 0, "revenue_from_recycled": "0.00"}]
    speed = {row["leg"]: row for row in report("speed_to_lead")}
    assert speed["qualified_to_stored"]["count"] == 3
    assert (speed["stored_to_first_action"]["count"],
            speed["stored_to_first_action"]["within_5_minutes"]) == (2, 1.0)
    assert {(r["sequence"], r["enrolled"]) for r in report("sequences") if r["step"] == ""} == {
        ("timing", 1), ("stalled", 1), ("expired", 1)}
    as_csv = marketer.get("/api/v1/reports/sla", query_string={**period, "format": "csv"})
    assert as_csv.get_data(as_text=True).splitlines() == [
        "rep,handoffs,met,escalated,expired,stalled_returns", "rita@example.com,3,2,1,1,1"]
    kept = _rollups(db)
    with db.session_scope() as session:
        rebuild(session)
    assert _rollups(db) == kept

    # the alignment digest of the fortnight of the stall, once, whoever ticks
    sink, smtp_url = smtp_server
    monkeypatch.setenv("SMTP_URL", smtp_url)
    monkeypatch.setenv("NURTURE_DIGEST_RECIPIENTS", "marketing@example.com,sales@example.com")
    fortnight = EPOCH + timedelta(days=(stalls_at.date() - EPOCH).days // 14 * 14)
    for dispatcher in dispatchers:  # the same two, now running the digest's task
        dispatcher.tasks = (PeriodicTask("digest", timedelta(0), dispatch_digest),)
    at(stalls_at.replace(hour=8) + timedelta(days=(fortnight - stalls_at.date()).days + 14))
    at(clock["now"] + timedelta(minutes=1))
    digests = [m for m in sink.messages if "Sales and marketing" in str(m["Subject"])]
    assert len(digests) == 1
    assert f"{fortnight.isoformat()} to {(fortnight + timedelta(days=13)).isoformat()}" in str(
        digests[0]["Subject"])
    with db.session_scope() as session:
        assert [d.status.value for d in session.execute(select(Digest)).scalars()] == ["sent"]
