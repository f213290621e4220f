"""POST /api/v1/events: client engagement, idempotent by the client's id, refused whole."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from nurture.models import EngagementEvent, EventType, Role
from tests.test_openapi import _check

AT = "2026-11-20T09:30:00+01:00"


def lead_id(api, email="ada@example.com") -> int:
    created = api.post("/api/v1/leads", json={"email": email})
    assert created.status_code == 201, created.json
    return created.json["id"]


def one(**kw):
    return {"id": "evt-1", "email": "ada@example.com", "type": "page_view", "occurred_at": AT,
            "properties": {"url": "https://www.example.com/pricing"}} | kw


def stored(db) -> list[EngagementEvent]:
    with db.session_scope() as session:
        return session.execute(
            select(EngagementEvent).order_by(EngagementEvent.id)).scalars().all()


def test_every_client_type_is_stored_on_its_lead_and_a_retry_changes_nothing(api, db, client):
    ada = lead_id(api)
    types = ["page_view", "form_submit", "content_download", "webinar_registered",
             "webinar_attended", "email_reply", "meeting_booked"]
    events = [one(id=f"e-{t}", type=t) for t in types[:-1]]
    events.append({"id": "e-meeting", "lead_id": ada, "type": "meeting_booked",
                   "occurred_at": "2026-11-20T08:00:00Z"})
    answer = api.post("/api/v1/events", json={"events": events})
    assert (answer.status_code, answer.json) == (202, {"accepted": 7, "duplicates": 0})
    again = api.post("/api/v1/events", json={"events": events})
    assert (again.status_code, again.json) == (202, {"accepted": 0, "duplicates": 7})
    rows = {r.source_event_id: r for r in stored(db)}
    assert sorted(r.type.value for r in rows.values()) == sorted(types)
    assert {(r.lead_id, r.source) for r in rows.values()} == {(ada, "api")}
    view = rows["e-page_view"]
    assert view.occurred_at.isoformat() == "2026-11-20T08:30:00+00:00"
    assert view.properties == {"url": "https://www.example.com/pricing"}
    # the lead document lists them, newest first, as its OpenAPI schema says
    shown = api.get(f"/api/v1/leads/{ada}")
    assert shown.status_code == 200
    listed = shown.json["events"]
    assert sorted(e["type"] for e in listed) == sorted(types)
    assert [e["occurred_at"] for e in listed] == sorted(
        (e["occurred_at"] for e in listed), reverse=True)
    assert {(e["source"], e["is_machine"]) for e in listed} == {("api", False)}
    assert next(e for e in listed if e["type"] == "page_view")["properties"] == {
        "url": "https://www.example.com/pricing"}


def test_the_lead_document_lists_its_latest_events_as_documented(api, client):
    document = client.get("/api/v1/openapi.json").json
    ada = lead_id(api)
    events = [one(id=f"e-{n}", occurred_at=f"2026-11-20T0{n}:00:00Z") for n in range(3)]
    assert api.post("/api/v1/events", json={"events": events}).status_code == 202
    shown = api.get(f"/api/v1/leads/{ada}")
    _check(document, "/leads/{lead_id}", "get", shown)
    assert [e["occurred_at"] for e in shown.json["events"]] == [
        "2026-11-20T02:00:00Z", "2026-11-20T01:00:00Z", "2026-11-20T00:00:00Z"]


def test_any_offset_is_stored_as_its_instant(api, db):
    lead_id(api)
    answer = api.post("/api/v1/events", json={"events": [one(occurred_at="2000-01-01T00:00:00+16:00")]})
    assert answer.status_code == 202, answer.json
    (row,) = stored(db)
    assert row.occurred_at.isoformat() == "1999-12-31T08:00:00+00:00"


def test_an_unknown_email_is_stored_unmatched_with_its_address(api, db):
    answer = api.post("/api/v1/events", json={"events": [one(email="Nobody@Example.com")]})
    assert (answer.status_code, answer.json) == (202, {"accepted": 1, "duplicates": 0})
    (row,) = stored(db)
    assert (row.lead_id, row.properties["email"]) == (None, "nobody@example.com")


def test_a_repeat_inside_one_request_is_one_event(api, db):
    lead_id(api)
    answer = api.post("/api/v1/events", json={"events": [one(), one()]})
    assert answer.json == {"accepted": 1, "duplicates": 1}
    assert len(stored(db)) == 1


def test_bad_input_is_refused_whole_and_stores_nothing(api, db, client, make_token):
    lead_id(api)
    good = one(id="good")
    cases = {
        "not json": (dict(data="{", content_type="application/json"), 400, None),
        "not a json type": (dict(data="x", content_type="text/plain"), 415, None),
        "no events key": (dict(json={"evts": []}), 422, "evts"),
        "empty": (dict(json={"events": []}), 422, "events"),
        "too many": (dict(json={"events": [one(id=str(i)) for i in range(1001)]}), 422, "events"),
        "both lead keys": (dict(json={"events": [good, one(lead_id=1)]}), 422, "events[1]"),
        "no lead": (dict(json={"events": [good, {k: v for k, v in one().items()
                                                   if k != "email"}]}), 422, "events[1]"),
        "provider type": (dict(json={"events": [good, one(type="open")]}), 422, "events[1].type"),
        "naive time": (dict(json={"events": [good, one(occurred_at="2026-11-20T09:30:00")]}),
                       422, "events[1].occurred_at"),
        "unix time": (dict(json={"events": [good, one(occurred_at=1700000000)]}), 422,
                      "events[1].occurred_at"),
        "far future": (dict(json={"events": [good, one(occurred_at="2999-01-01T00:00:00Z")]}),
                       422, "events[1].occurred_at"),
        "out of range in UTC": (dict(json={"events": [good, one(
            occurred_at="0001-01-01T00:00:00+16:00")]}), 422, "events[1].occurred_at"),
        "bad email": (dict(json={"events": [good, one(email="not-an-address")]}), 422,
                      "events[1].email"),
        "unknown lead": (dict(json={"events": [good, {"id": "x", "lead_id": 999999,
                                                      "type": "page_view", "occurred_at": AT}]}),
                         422, "events[1].lead_id"),
        "unknown field": (dict(json={"events": [good, one(score=5)]}), 422, "events[1].score"),
        "same id, other content": (dict(json={"events": [good, one(id="good", type="form_submit")]}),
                                   422, "events[1].id"),
        "empty id": (dict(json={"events": [good, one(id="")]}), 422, "events[1].id"),
        "NUL in properties": (dict(json={"events": [good, one(properties={"a": "\x00"})]}), 422,
                              "events[1].properties"),
    }
    for name, (request, status, field) in cases.items():
        answer = api.post("/api/v1/events", **request)
        assert answer.status_code == status, (name, answer.json)
        assert answer.mimetype == "application/problem+json", name
        if field is not None:
            assert any(key.startswith(field) for key in answer.json["errors"]), (name, answer.json)
    assert stored(db) == []


def test_a_body_over_the_limit_is_413_and_stores_nothing(api, db):
    lead_id(api)
    huge = {"events": [one(properties={"blob": "x" * (10 * 1024 * 1024)})]}
    answer = api.post("/api/v1/events", json=huge)
    assert answer.status_code == 413
    assert stored(db) == []


def test_tokens_and_roles(client, make_token, db):
    body = {"events": [one()]}
    assert client.post("/api/v1/events", json=body).status_code == 401
    rep = {"Authorization": f"Bearer {make_token(Role.REP)}"}
    assert client.post("/api/v1/events", json=body, headers=rep).status_code == 403
    marketer = {"Authorization": f"Bearer {make_token(Role.MARKETER)}"}
    assert client.post("/api/v1/events", json=body, headers=marketer).status_code == 202
    assert [r.type for r in stored(db)] == [EventType.PAGE_VIEW]


def test_answers_match_the_openapi_document(api, client):
    document = client.get("/api/v1/openapi.json").json
    _check(document, "/events", "post", api.post("/api/v1/events", json={"events": [one()]}))
    _check(document, "/events", "post", api.post("/api/v1/events", json={"events": []}))


def test_new_events_are_handed_to_scoring_through_rq(api, app, db):
    from rq import Queue

    lead_id(api)
    answer = api.post("/api/v1/events", json={"events": [one(), one(id="evt-2")]})
    assert answer.json["accepted"] == 2
    connection = app.extensions["nurture.redis"]
    jobs = Queue("scoring", connection=connection).jobs
    ids = [row.id for row in stored(db)]
    assert [(j.func_name, j.args) for j in jobs] == [
        ("workers.jobs.handle_engagement", (min(ids), max(ids)))]
    retried = api.post("/api/v1/events", json={"events": [one()]})
    assert retried.json == {"accepted": 0, "duplicates": 1}
    assert len(Queue("scoring", connection=connection).jobs) == 1  # nothing new to hand on


def test_a_page_views_url_is_what_scoring_rules_match(api, app, db, client, make_token):
    """The page a client names (`properties.url`) is stored as the event's `url`, which the
    default model's `pricing_page` rule matches (`field: url`): before, only a tracked link's
    click carried it, and no page view reported through the API could ever score as one."""
    from nurture.models import ScoreLedgerEntry
    from nurture.scoring import live
    from tests.conftest import Api
    from tests.test_scoring_models import DOCUMENT

    marketer = Api(client, make_token(Role.MARKETER, "marketer"))
    sales = Api(client, make_token(Role.SALES_APPROVER, "sales"))
    model_id = marketer.post("/api/v1/scoring/models", json=DOCUMENT).json["id"]
    assert marketer.post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert sales.post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert api.post(f"/api/v1/scoring/models/{model_id}/activate").status_code == 200
    ada = lead_id(api)
    answer = api.post("/api/v1/events", json={"events": [
        one(occurred_at=utcnow_iso()),
        one(id="evt-blog", occurred_at=utcnow_iso(),
            properties={"url": "https://www.example.com/blog", "title": "Blog"}),
        one(id="evt-none", occurred_at=utcnow_iso(), properties={"url": 42})]})
    assert answer.json["accepted"] == 3
    urls = {row.source_event_id: row.url for row in stored(db)}
    assert urls == {"evt-1": "https://www.example.com/pricing",
                    "evt-blog": "https://www.example.com/blog", "evt-none": None}
    ids = [row.id for row in stored(db)]
    with db.session_scope() as session:
        live.score_events(session, min(ids), max(ids), now=datetime.now(UTC))
    with db.session_scope() as session:
        rules = session.execute(select(ScoreLedgerEntry.rule, ScoreLedgerEntry.event_id)
                                .where(ScoreLedgerEntry.lead_id == ada)).all()
    assert {event_id for rule, event_id in rules if rule == "pricing_page"} == {ids[0]}


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat()
