"""Re-scoring: stored events update their lead's score once, order-free, within caps; the
ledger records every change; a profile change re-evaluates fit; activation re-scores all."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from nurture.engagement.handling import handle_events
from nurture.engagement.ingest import IncomingEvent, store_events
from nurture.models import (
    ApprovalRole,
    EngagementEvent,
    EventType,
    Lead,
    LeadScore,
    LifecycleStage,
    RescoreRange,
    Role,
    ScoreLedgerEntry,
    ScoringApproval,
    ScoringModel,
    ScoringModelStatus,
)
from nurture.scoring import lifecycle
from nurture.scoring.document import default_document
from nurture.scoring.rescoring import lead_score, rescore_batch, score_events, unscored_ranges
from workers.jobs import handle_engagement

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday
DAY = timedelta(days=1)

DOCUMENT = {
    "name": "Test model",
    "half_life_days": 10,
    "thresholds": {"total": 50, "fit": 10},
    "fit": [
        {"rule": "senior", "when": [{"field": "title", "op": "matches", "value": r"\bvp\b"}],
         "points": 20},
        {"rule": "free_mail", "when": [{"field": "email_domain", "op": "in",
                                         "value": ["gmail.com"]}], "points": -10},
    ],
    "engagement": [
        {"rule": "pricing", "event": ["page_view", "click"],
         "where": [{"field": "url", "op": "contains", "value": "/pricing"}], "points": 10,
         "cap": {"per_day": 20, "per_week": 30}},
        {"rule": "webinar", "event": "webinar_attended", "points": 15},
        {"rule": "open", "event": "open", "points": 1, "cap": {"per_day": 3}},
        {"rule": "bot_click", "event": "click", "include_machine": True,
         "where": [{"field": "url", "op": "contains", "value": "/bot"}], "points": 2},
    ],
    "negative": [
        {"rule": "unsubscribed", "event": "unsubscribe", "points": -20},
    ],
}


def install(session, document=None, *, now=NOW) -> ScoringModel:
    """A model approved by both roles and active."""
    model = lifecycle.create_model(session, document or DOCUMENT, actor="t", now=now)
    for role in ApprovalRole:
        session.add(ScoringApproval(model_id=model.id, role=role, approved_by="t",
                                    approved_at=now))
    model.status = ScoringModelStatus.APPROVED
    session.flush()
    return lifecycle.activate_model(session, model.id, actor="t", now=now)[0]


def make_lead(session, email="ada@example.com", title="VP Engineering") -> int:
    lead = Lead(email=email, title=title, lifecycle_stage=LifecycleStage.NURTURING,
                created_at=NOW - 30 * DAY, updated_at=NOW - 30 * DAY, attributes={})
    session.add(lead)
    session.flush()
    return lead.id


_counter = iter(range(10**9))


def ev(lead_id, type_=EventType.PAGE_VIEW, *, at=NOW, url=None, machine=None, key=None):
    return IncomingEvent(
        source="api", source_event_id=key or f"e{next(_counter)}", type=type_,
        occurred_at=at, lead_id=lead_id, url=url, machine_hint=machine)


def store_and_score(db, events, *, now=NOW):
    with db.session_scope() as session:
        stored = store_events(session, events, now=now)
    if stored.id_range is None:
        return None
    with db.session_scope() as session:
        return score_events(session, *stored.id_range, now=now)


def score(db, lead_id, *, now=NOW) -> dict:
    with db.session_scope() as session:
        return lead_score(session, session.get(Lead, lead_id), now=now)


def ledger(db, lead_id):
    with db.session_scope() as session:
        return session.execute(
            select(ScoreLedgerEntry.rule, ScoreLedgerEntry.points, ScoreLedgerEntry.event_id)
            .where(ScoreLedgerEntry.lead_id == lead_id).order_by(ScoreLedgerEntry.id)
        ).all()


def test_an_event_updates_the_score_and_the_ledger_records_why(db):
    with db.session_scope() as session:
        model = install(session)
        lead = make_lead(session)
    store_and_score(db, [ev(lead, url="https://x.example/pricing")])
    result = score(db, lead)
    assert result["fit"] == 20
    assert result["engagement"] == 10
    assert result["total"] == 30
    assert result["model_version"] == model.version
    assert [(i["rule"], i["points"]) for i in result["explanation"]] == [
        ("senior", 20), ("pricing", 10)]
    rows = ledger(db, lead)
    assert [(r.rule, r.points) for r in rows] == [("senior", 20), ("pricing", 10)]
    assert rows[0].event_id is None and rows[1].event_id is not None
    # ten days later (one half-life) the engagement is worth half, fit the same
    later = score(db, lead, now=NOW + 10 * DAY)
    assert later["engagement"] == pytest.approx(5)
    assert later["explanation"][1] == {"rule": "pricing", "points": 5.0,
                                       "at": "2026-11-18T12:00:00Z"}


def test_the_same_event_delivered_twice_scores_once(db, job_env):
    with db.session_scope() as session:
        install(session)
        lead = make_lead(session)
    first = store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED, key="w1")])
    assert first.events == 1
    again = store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED, key="w1")])
    assert again is None  # the ingest stored it once
    with db.session_scope() as session:
        event_id = session.execute(select(EngagementEvent.id)).scalar_one()
        # the job run again for the same range (a retry, a sweep): nothing more
        assert score_events(session, event_id, event_id, now=NOW).events == 0
    handle_engagement(event_id, event_id)
    assert score(db, lead)["engagement"] == 15
    assert [r.rule for r in ledger(db, lead)] == ["senior", "webinar"]


@pytest.fixture()
def job_env(monkeypatch, service_env):
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)


def test_the_engagement_job_scores_what_it_hands_on(db, job_env):
    with db.session_scope() as session:
        install(session)
        lead = make_lead(session)
        stored = store_events(session, [ev(lead, EventType.WEBINAR_ATTENDED)], now=NOW)
    assert handle_engagement(*stored.id_range)["events"] == 1
    assert score(db, lead)["engagement"] == 15
    with db.session_scope() as session:
        assert unscored_ranges(session, received_before=NOW + DAY) == []


def test_events_handled_without_scoring_are_found_by_the_sweep(db):
    """Tracking opens and clicks are handled in their request; scoring finds them later."""
    with db.session_scope() as session:
        install(session)
        lead = make_lead(session)
        stored = store_events(session, [ev(lead, EventType.WEBINAR_ATTENDED)], now=NOW)
        handle_events(session, *stored.id_range, now=NOW)
    with db.session_scope() as session:
        ranges = unscored_ranges(session, received_before=NOW + timedelta(seconds=1))
        assert ranges == [stored.id_range]
        score_events(session, *ranges[0], now=NOW)
    assert score(db, lead)["engagement"] == 15


def test_the_score_does_not_depend_on_arrival_order_even_for_late_events(db):
    times = [NOW - 9 * DAY, NOW - 3 * DAY, NOW - 20 * DAY, NOW - DAY, NOW - 12 * DAY]
    with db.session_scope() as session:
        install(session)
        in_order = make_lead(session, "a@example.com")
        shuffled = make_lead(session, "b@example.com")
    for at in sorted(times):
        store_and_score(db, [ev(in_order, EventType.WEBINAR_ATTENDED, at=at)])
    for at in times:  # late, out-of-order arrivals, one job each
        store_and_score(db, [ev(shuffled, EventType.WEBINAR_ATTENDED, at=at)])
    expected = sum(15 * 2 ** (-(NOW - at).total_seconds() / (10 * 86400)) for at in times)
    a, b = score(db, in_order), score(db, shuffled)
    assert a["engagement"] == pytest.approx(expected, abs=0.01)
    assert b["engagement"] == pytest.approx(expected, abs=0.01)
    assert a["explanation"] == b["explanation"]


def test_a_flood_of_ten_thousand_events_in_a_minute_respects_the_caps(db):
    with db.session_scope() as session:
        install(session)
        lead = make_lead(session)
    flood = [ev(lead, EventType.PAGE_VIEW, url="https://x.example/pricing",
                at=NOW + timedelta(milliseconds=6 * i)) for i in range(10_000)]
    for start in range(0, len(flood), 1000):  # as the events API takes them, 1000 a request
        store_and_score(db, flood[start:start + 1000], now=NOW + timedelta(seconds=1))
    result = score(db, lead, now=NOW + timedelta(minutes=1))
    assert result["engagement"] == pytest.approx(20, abs=0.01)  # the day's cap
    assert sum(r.points for r in ledger(db, lead) if r.rule == "pricing") == 20
    # the next day adds 10 more at most (the week's cap is 30)
    tomorrow = NOW + DAY
    store_and_score(db, [ev(lead, EventType.CLICK, url="https://x.example/pricing",
                            at=tomorrow + timedelta(seconds=i)) for i in range(50)],
                    now=tomorrow)
    assert sum(r.points for r in ledger(db, lead) if r.rule == "pricing") == 30


def test_machine_events_count_only_for_rules_that_say_so(db):
    with db.session_scope() as session:
        install(session)
        lead = make_lead(session)
    store_and_score(db, [
        ev(lead, EventType.CLICK, url="https://x.example/pricing", machine="scanner"),
        ev(lead, EventType.CLICK, url="https://x.example/bot", machine="scanner"),
    ])
    with db.session_scope() as session:
        assert session.execute(select(func.count()).where(EngagementEvent.is_machine)).scalar() == 2
    assert [(i["rule"], i["points"]) for i in score(db, lead)["explanation"]] == [
        ("senior", 20), ("bot_click", 2)]


def test_negative_rules_take_points_and_keep_them(db):
    with db.session_scope() as session:
        install(session)
        lead = make_lead(session)
    store_and_score(db, [ev(lead, EventType.UNSUBSCRIBE)])
    assert score(db, lead, now=NOW + 100 * DAY)["engagement"] == -20  # it does not decay


def test_a_profile_change_re_evaluates_fit(api, db):
    with db.session_scope() as session:
        install(session)
    created = api.post("/api/v1/leads", json={"email": "ada@gmail.com", "title": "Engineer"})
    lead = created.json["id"]
    assert created.json["score"]["fit"] == -10
    updated = api.post("/api/v1/leads", json={"email": "ada@gmail.com", "title": "VP Sales"})
    assert updated.json["score"]["fit"] == 10
    assert [(i["rule"], i["points"]) for i in updated.json["score"]["explanation"]] == [
        ("senior", 20), ("free_mail", -10)]
    assert [(r.rule, r.points) for r in ledger(db, lead)] == [("free_mail", -10), ("senior", 20)]
    got = api.get(f"/api/v1/leads/{lead}").json["score"]
    assert got["total"] == 10
    assert got["model_version"] == 1


def test_activating_a_new_model_re_scores_every_lead_with_progress(db, monkeypatch):
    with db.session_scope() as session:
        install(session)
        leads = [make_lead(session, f"l{i}@example.com") for i in range(7)]
    store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED) for lead in leads])
    doubled = copy.deepcopy(DOCUMENT)
    doubled["engagement"][1]["points"] = 30
    with db.session_scope() as session:
        second = install(session, doubled)
        assert second.version == 2
    # before the re-score reaches them, the scores stay as they were, under version 1
    assert score(db, leads[0])["model_version"] == 1
    monkeypatch.setattr("nurture.scoring.rescoring.RESCORE_BATCH", 3)
    monkeypatch.setattr("nurture.scoring.rescoring.BULK_RESCORE_BATCH", 3)
    progress = []
    while True:
        with db.session_scope() as session:
            more = rescore_batch(session, second.id, now=NOW)
            model = session.get(ScoringModel, second.id)
            progress.append((model.rescore_done, model.rescore_total))
        if not more:
            break
    assert progress == [(3, 7), (6, 7), (7, 7), (7, 7)]
    for lead in leads:
        result = score(db, lead)
        assert (result["model_version"], result["engagement"]) == (2, 30)
    with db.session_scope() as session:
        assert session.get(ScoringModel, second.id).rescore_finished_at == NOW
        assert {row.model_id for row in session.execute(select(LeadScore)).scalars()} == {
            second.id}


def test_a_lead_with_new_events_is_rebuilt_under_the_new_model_at_once(db):
    with db.session_scope() as session:
        install(session)
        lead = make_lead(session)
    store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED, at=NOW - DAY)])
    doubled = copy.deepcopy(DOCUMENT)
    doubled["engagement"][1]["points"] = 30
    with db.session_scope() as session:
        install(session, doubled)
    store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED)])
    result = score(db, lead)
    assert result["model_version"] == 2
    assert result["engagement"] == pytest.approx(30 + 30 * 2 ** (-0.1), abs=0.01)


def test_no_active_model_scores_nothing_and_the_default_installs_once(db):
    with db.session_scope() as session:
        lead = make_lead(session)
    assert store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED)]).events == 1
    assert score(db, lead)["model_version"] is None
    with db.session_scope() as session:
        model = lifecycle.ensure_default_model(session, now=NOW)
        assert model.status == ScoringModelStatus.ACTIVE
        assert model.name == default_document().name
        assert lifecycle.ensure_default_model(session, now=NOW) is None
    # the default model's fit for a VP (fit is shown before any event is scored)
    assert score(db, lead)["fit"] == 15


def test_roles_of_the_api_tokens_for_reading_a_score(client, make_token):
    # a rep reads its handoffs, not leads (unchanged by scoring)
    response = client.get("/api/v1/leads/1",
                          headers={"Authorization": f"Bearer {make_token(Role.REP)}"})
    assert response.status_code == 403


def test_the_dispatcher_enqueues_unscored_events_and_an_unfinished_rescore(app, db):
    from rq.job import Job

    from workers.dispatcher import Tick, score_unscored_events

    with db.session_scope() as session:
        model = install(session)
        lead = make_lead(session)
        stored = store_events(session, [ev(lead, EventType.OPEN)], now=NOW)
        handle_events(session, *stored.id_range, now=NOW)  # as tracking does, in the request
    connection = app.extensions["nurture.redis"]
    score_unscored_events(Tick(connection, db, "test", NOW + timedelta(minutes=1)))
    first, last = stored.id_range
    assert Job.fetch(f"score_events-{first}-{last}", connection=connection).args == (first, last)
    assert Job.fetch(f"rescore_leads-{model.id}", connection=connection).args == (model.id,)


def _rep(session, email="rep@example.com"):
    from nurture.models import User

    session.add(User(email=email, role=Role.REP, created_at=NOW - 100 * DAY, is_active=True))
    session.flush()


def test_crossing_the_thresholds_hands_the_lead_to_sales_with_the_score(db):
    from nurture.models import Handoff

    with db.session_scope() as session:
        model = install(session)
        lead = make_lead(session)
        _rep(session)
    # fit 20 + pricing 10 + webinar 15 = 45: under the total of 50
    store_and_score(db, [ev(lead, url="https://x.example/pricing"),
                         ev(lead, EventType.WEBINAR_ATTENDED)])
    with db.session_scope() as session:
        assert session.execute(select(func.count()).select_from(Handoff)).scalar() == 0
    later = NOW + timedelta(minutes=5)
    result = store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED, at=later)], now=later)
    assert (result.qualified, result.recycled) == (1, 1)
    with db.session_scope() as session:
        handoff = session.execute(select(Handoff)).scalar_one()
        qualifying = session.execute(
            select(EngagementEvent.id).order_by(EngagementEvent.id.desc()).limit(1)).scalar()
        assert (handoff.lead_id, handoff.model_version_id, handoff.qualifying_event_id) == (
            lead, model.id, qualifying)
        assert handoff.rep_email == "rep@example.com"
        assert handoff.score["total"] == pytest.approx(60, abs=0.01)
        assert handoff.score["model_version"] == model.version
        assert [i["rule"] for i in handoff.score["explanation"]] == ["webinar", "senior",
                                                                     "pricing"]
        assert session.get(LeadScore, lead).qualified_at == later
        assert session.get(Lead, lead).lifecycle_stage == LifecycleStage.RECYCLED_TO_SALES


def test_a_flood_that_crosses_the_thresholds_makes_one_handoff(db):
    from nurture.models import Handoff

    with db.session_scope() as session:
        install(session)
        lead = make_lead(session)
        _rep(session)
    flood = [ev(lead, EventType.WEBINAR_ATTENDED if i % 2 else EventType.CLICK,
                url="https://x.example/pricing", at=NOW + timedelta(milliseconds=6 * i))
             for i in range(10_000)]
    recycled = 0
    for start in range(0, len(flood), 1000):
        recycled += store_and_score(db, flood[start:start + 1000],
                                    now=NOW + timedelta(seconds=1)).recycled
    assert recycled == 1
    with db.session_scope() as session:
        assert session.execute(select(func.count()).select_from(Handoff)).scalar() == 1
    assert sum(r.points for r in ledger(db, lead) if r.rule == "pricing") == 20


def test_the_set_based_re_score_equals_the_lead_by_lead_one(db, monkeypatch):
    """On PostgreSQL, activation re-scores ranges of leads in SQL; it must agree with the
    lead-by-lead rebuild (caps across days and weeks, decay, machine events, fit)."""
    if db.dialect != "postgresql":
        pytest.skip("the set-based path is PostgreSQL's")
    with db.session_scope() as session:
        install(session)
        titles = ["VP Sales", "Engineer", None, "vp of things", "Head"]
        leads = [make_lead(session, f"l{i}@{'gmail.com' if i % 3 == 0 else 'x.example'}",
                           title=titles[i % len(titles)]) for i in range(25)]
    events = []
    for i, lead in enumerate(leads):
        for j in range(i % 7 * 3):
            at = NOW - timedelta(days=j % 12, hours=j)
            events.append(ev(lead, EventType.PAGE_VIEW, url="https://x.example/pricing", at=at))
        events.append(ev(lead, EventType.CLICK, url="https://x.example/bot", machine="scan",
                         at=NOW - timedelta(days=i)))
        events.append(ev(lead, EventType.CLICK, url="https://x.example/pricing", machine="scan",
                         at=NOW - timedelta(days=i)))
        if i % 4 == 0:
            events.append(ev(lead, EventType.UNSUBSCRIBE, at=NOW - timedelta(days=i)))
        if i % 2:
            events.append(ev(lead, EventType.WEBINAR_ATTENDED, at=NOW - timedelta(days=40 - i)))
        events.extend(ev(lead, EventType.OPEN, at=NOW - timedelta(hours=h)) for h in range(i))
    store_and_score(db, events)
    changed = copy.deepcopy(DOCUMENT)
    changed["engagement"][0]["points"] = 7
    changed["engagement"][0]["cap"] = {"per_day": 15, "per_week": 25}
    with db.session_scope() as session:
        second = install(session, changed, now=NOW)

    def rescore_all():
        with db.session_scope() as session:
            model = session.get(ScoringModel, second.id)
            model.rescore_total = model.rescore_finished_at = None
            session.execute(LeadScore.__table__.update().values(model_id=None))
        while True:
            with db.session_scope() as session:
                if not rescore_batch(session, second.id, now=NOW + timedelta(hours=1)):
                    break
        return {lead: score(db, lead, now=NOW + timedelta(hours=2)) for lead in leads}

    set_based = rescore_all()
    monkeypatch.setattr("nurture.scoring.bulk.supported", lambda session, document: False)
    lead_by_lead = rescore_all()
    for lead in leads:
        a, b = set_based[lead], lead_by_lead[lead]
        assert a["model_version"] == b["model_version"] == second.version
        assert a["total"] == pytest.approx(b["total"], abs=0.02), lead
        assert [(i["rule"], i["at"]) for i in a["explanation"]] == [
            (i["rule"], i["at"]) for i in b["explanation"]], lead
        assert [i["points"] for i in a["explanation"]] == pytest.approx(
            [i["points"] for i in b["explanation"]], abs=0.02)
    assert any(s["total"] != 0 for s in set_based.values())


@pytest.mark.parametrize("keep", ["fit", "engagement"])
def test_a_model_with_only_fit_or_only_engagement_rules_re_scores(db, keep):
    document = {k: v for k, v in DOCUMENT.items()
                if k in ("name", "half_life_days", "thresholds", keep)}
    with db.session_scope() as session:
        leads = [make_lead(session, f"l{i}@example.com") for i in range(3)]
    store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED) for lead in leads])
    with db.session_scope() as session:
        model = install(session, document)
    while True:
        with db.session_scope() as session:
            if not rescore_batch(session, model.id, now=NOW):
                break
    expected = {"fit": (20, 0), "engagement": (0, 15)}[keep]
    for lead in leads:
        result = score(db, lead)
        assert (result["fit"], result["engagement"]) == expected


def test_re_score_jobs_share_the_ranges_and_a_dead_jobs_range_is_taken_again(db, monkeypatch):
    """Two jobs side by side take different ranges (the second does not wait for the first);
    a job that dies leaves its range to the next; progress counts committed ranges only."""
    if db.dialect != "postgresql":
        pytest.skip("jobs side by side need SKIP LOCKED (PostgreSQL)")
    from sqlalchemy.orm import Session

    with db.session_scope() as session:
        install(session)
        leads = [make_lead(session, f"l{i}@example.com") for i in range(7)]
    store_and_score(db, [ev(lead, EventType.WEBINAR_ATTENDED) for lead in leads])
    doubled = copy.deepcopy(DOCUMENT)
    doubled["engagement"][1]["points"] = 30
    with db.session_scope() as session:
        second = install(session, doubled).id
    monkeypatch.setattr("nurture.scoring.rescoring.BULK_RESCORE_BATCH", 3)
    with db.session_scope() as session:  # plans the ranges and does the first
        assert rescore_batch(session, second, now=NOW)
    dying = Session(db.engine)
    try:  # a job in the middle of the second range: it holds the range's row
        dying.execute(select(RescoreRange).where(RescoreRange.model_id == second,
                                                 RescoreRange.done_at.is_(None))
                      .order_by(RescoreRange.first_lead_id).limit(1).with_for_update())
        with db.session_scope() as session:  # another job takes the third meanwhile
            assert rescore_batch(session, second, now=NOW)
        with db.session_scope() as session:  # nothing left to take: not finished either
            assert not rescore_batch(session, second, now=NOW)
            model = session.get(ScoringModel, second)
            assert (model.rescore_done, model.rescore_total) == (4, 7)  # 3 + 1 (the last)
            assert model.rescore_finished_at is None
    finally:
        dying.rollback()  # the job died
        dying.close()
    while True:
        with db.session_scope() as session:
            if not rescore_batch(session, second, now=NOW):
                break
    with db.session_scope() as session:
        model = session.get(ScoringModel, second)
        assert (model.rescore_done, model.rescore_total) == (7, 7)
        assert model.rescore_finished_at == NOW
    for lead in leads:
        assert (score(db, lead)["model_version"], score(db, lead)["engagement"]) == (2, 30)
