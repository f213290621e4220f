"""Backtests: a draft model over stored history, beside the active one, touching no live score."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

from sqlalchemy import func, select

from nurture.engagement.ingest import store_events
from nurture.models import (
    Backtest,
    BacktestStatus,
    EventType,
    LeadScore,
    LifecycleChange,
    LifecycleStage,
    Role,
    ScoreLedgerEntry,
)
from nurture.scoring import lifecycle
from nurture.scoring.backtest import request_backtest, run_backtest
from tests.conftest import Api
from tests.test_rescoring import DAY, DOCUMENT, NOW, ev, install, make_lead

LENIENT = copy.deepcopy(DOCUMENT)
LENIENT["name"] = "Lenient"
LENIENT["thresholds"] = {"total": 30, "fit": 0}


def history(db):
    """Three leads: one hot (both models recycle it), one warm (only the lenient one), one
    cold; the warm one was accepted by sales before."""
    with db.session_scope() as session:
        active = install(session)
        draft = lifecycle.create_model(session, LENIENT, actor="t", now=NOW)
        hot = make_lead(session, "hot@example.com")
        warm = make_lead(session, "warm@example.com", title="Engineer")
        cold = make_lead(session, "cold@example.com", title="Engineer")
        session.add(LifecycleChange(lead_id=warm, from_stage=LifecycleStage.NURTURING,
                                    to_stage=LifecycleStage.ACCEPTED_BY_SALES, cause="t",
                                    changed_at=NOW - 60 * DAY))
        store_events(session, [
            *(ev(hot, EventType.WEBINAR_ATTENDED, at=NOW - 20 * DAY + timedelta(hours=i))
              for i in range(3)),
            *(ev(warm, EventType.WEBINAR_ATTENDED, at=NOW - 10 * DAY + timedelta(hours=i))
              for i in range(3)),
            ev(cold, EventType.OPEN, at=NOW - 5 * DAY),
            ev(hot, EventType.WEBINAR_ATTENDED, at=NOW - 200 * DAY),  # outside the window
        ], now=NOW)
    return active, draft, hot, warm, cold


def test_a_backtest_compares_a_draft_with_the_active_model_and_changes_no_score(db, count):
    active, draft, hot, warm, _cold = history(db)
    with db.session_scope() as session:
        backtest_id = request_backtest(session, draft.id, days=90, actor="t", now=NOW).id
    with db.session_scope() as session:
        done = run_backtest(session, backtest_id, now=NOW)
        result = done.result
        assert done.status == BacktestStatus.DONE
    assert result["events"] == 7
    assert result["window"]["days"] == 90
    mine, theirs = result["model"], result["compared"]
    assert (mine["version"], theirs["version"]) == (draft.version, active.version)
    assert mine["recycled"] == 2
    assert theirs["recycled"] == 1
    assert {row["lead_id"] for row in mine["leads"]} == {hot, warm}
    # fit 20, then 15 a webinar, decaying: the active model's 50 is met at the third
    hot_at = (NOW - 20 * DAY + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert theirs["leads"] == [{"lead_id": hot, "at": hot_at}]
    assert mine["accepted_by_sales_before"] == 1
    assert theirs["accepted_by_sales_before"] == 0
    assert mine["won_before"] == 0
    assert result["overlap"] == {"both": 1, "only_model": 1, "only_compared": 0}
    assert sum(mine["recycled_by_day"].values()) == 2
    # nothing live was touched
    assert count(LeadScore) == 0
    assert count(ScoreLedgerEntry) == 0


def test_the_api_queues_a_backtest_and_shows_it(client, make_token, db, app, monkeypatch,
                                               service_env):
    _active, draft, *_ = history(db)
    marketer = Api(client, make_token(Role.MARKETER))
    queued = marketer.post(f"/api/v1/scoring/models/{draft.id}/backtests", json={"days": 15})
    assert queued.status_code == 202, queued.json
    assert queued.json["status"] == "queued"
    backtest_id = queued.json["id"]
    from rq.job import Job

    job = Job.fetch(f"run_backtest-{backtest_id}", connection=app.extensions["nurture.redis"])
    assert job.args == (backtest_id,)
    for name, value in service_env.items():  # the job reads its settings as a worker does
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("workers.jobs.utcnow", lambda: NOW)
    from workers.jobs import run_backtest as job

    assert job(backtest_id) == {"events": 4}
    shown = marketer.get(f"/api/v1/scoring/backtests/{backtest_id}")
    assert shown.json["status"] == "done"
    assert shown.json["result"]["model"]["recycled"] == 1  # 15 days: the warm lead only
    assert marketer.post(f"/api/v1/scoring/models/{draft.id}/backtests",
                         json={"days": 0}).status_code == 422
    assert marketer.post("/api/v1/scoring/models/999/backtests", json={}).status_code == 404
    assert marketer.get("/api/v1/scoring/backtests/999").status_code == 404
    with db.session_scope() as session:
        assert session.execute(select(func.count()).select_from(Backtest)).scalar() == 1


def test_the_cli_runs_a_backtest(runner, db):
    _active, draft, *_ = history(db)
    result = runner.invoke(args=["scoring", "backtest", str(draft.id), "--days", "3650"])
    assert result.exit_code != 0  # longer than the longest window
    result = runner.invoke(args=["scoring", "backtest", str(draft.id), "--days", "365"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["status"] == "done"
    assert document["result"]["events"] == 8


def test_the_set_based_backtest_equals_the_event_by_event_one(db, monkeypatch):
    import pytest

    if db.dialect != "postgresql":
        pytest.skip("the set-based path is PostgreSQL's")
    with db.session_scope() as session:
        install(session)
        draft = lifecycle.create_model(session, LENIENT, actor="t", now=NOW)
        titles = ["VP Sales", "Engineer", None, "Head of IT"]
        leads = [make_lead(session, f"l{i}@{'gmail.com' if i % 3 == 0 else 'x.example'}",
                           title=titles[i % len(titles)]) for i in range(30)]
        events = []
        for i, lead in enumerate(leads):
            for j in range(i % 9 * 2):
                events.append(ev(lead, EventType.PAGE_VIEW, url="https://x.example/pricing",
                                 at=NOW - timedelta(days=(i + 3 * j) % 80, hours=j)))
            if i % 2:
                events.append(ev(lead, EventType.WEBINAR_ATTENDED,
                                 at=NOW - timedelta(days=i % 50)))
            if i % 5 == 0:
                events.append(ev(lead, EventType.UNSUBSCRIBE, at=NOW - timedelta(days=i % 40)))
            events.append(ev(lead, EventType.CLICK, url="https://x.example/bot", machine="scan",
                             at=NOW - timedelta(days=i % 30)))
        store_events(session, events, now=NOW)

    def run():
        with db.session_scope() as session:
            backtest_id = request_backtest(session, draft.id, days=90, actor="t", now=NOW).id
        with db.session_scope() as session:
            return run_backtest(session, backtest_id, now=NOW).result

    set_based = run()
    monkeypatch.setattr("nurture.scoring.bulk.backtest_supported", lambda *a, **k: False)
    event_by_event = run()
    assert set_based == event_by_event
    assert set_based["model"]["recycled"] > set_based["compared"]["recycled"] > 0
