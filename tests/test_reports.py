"""Reports: a small history built through the services with a controlled clock, every figure
compared with one computed by hand; the JSON and the CSV agree; the rebuilt rollups equal the
incremental ones; bad queries are refused."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from campaigns.intake import reject_lead
from campaigns.messengers import SmtpMessenger
from nurture import rollups
from nurture.accounts.services import Actor, create_user
from nurture.engagement.handling import handle_events
from nurture.engagement.ingest import IncomingEvent, store_events
from nurture.handoffs import services as handoffs
from nurture.handoffs.policy import RecyclePolicy
from nurture.models import (
    EngagementEvent,
    EventType,
    Lead,
    Message,
    Outcome,
    OutcomeKind,
    RejectionReason,
    ReportCount,
    ReportJourney,
    Role,
    User,
)
from nurture.reports import figures
from nurture.reports.params import Period, ReportQuery
from nurture.reports.rebuild import rebuild
from tests.conftest import Api
from tests.test_drip_engine import T0, clock, sending, setup_sequence, tick  # noqa: F401

PERIOD = {"from": "2026-11-01", "to": "2026-11-30"}
NO_WAIT = RecyclePolicy(min_nurture=dict.fromkeys(RejectionReason, timedelta(0)))
SCORE = {"total": 70, "fit": 30, "engagement": 40, "model_version": 1, "explanation": []}


def make_rep(db, email, team):
    with db.session_scope() as session:
        user = create_user(session, email, Role.REP, now=T0 - timedelta(days=30))
        user.team = team


def reject(db, email, *, rep, reason, source, now):
    with db.session_scope() as session:
        return reject_lead(session, email, {"source": source, "timezone": "UTC"},
                           rep_email=rep, reason=reason, now=now).lead_id


def events(db, items, *, now):
    with db.session_scope() as session:
        stored = store_events(session, items, now=now)
        handle_events(session, *stored.id_range, now=now)


def recycle(db, lead_id, *, now):
    with db.session_scope() as session:
        handoff = handoffs.recycle(session, lead_id, score=SCORE, model_version_id=None,
                                   qualifying_event_id=None,
                                   qualified_at=now - timedelta(milliseconds=250), now=now,
                                   policy=NO_WAIT)
        return handoff.id


def outcome(db, lead_id, kind, *, at, amount=None):
    """What the CRM outcomes service stores and counts for one outcome."""
    with db.session_scope() as session:
        session.add(Outcome(crm_outcome_id=f"{lead_id}-{kind}", lead_id=lead_id, kind=kind,
                            amount=amount, currency="EUR" if amount else None, occurred_at=at,
                            recorded_at=at))
        rollups.outcome(session, lead_id, kind.value, amount=amount, at=at)


def deliver_rep_email(db, handoff_id, smtp_url, *, at):
    from nurture.handoffs.delivery import Channels, deliver
    from nurture.models import HandoffNotification, NotificationChannel

    channels = Channels(crm_url=None, crm_secret=None,
                        messenger=lambda: SmtpMessenger(smtp_url, timeout=5),
                        mail_from="n@example.com", base_url="http://127.0.0.1:8000")
    with db.session_scope() as session:
        notification_id = session.execute(select(HandoffNotification.id).where(
            HandoffNotification.handoff_id == handoff_id,
            HandoffNotification.channel == NotificationChannel.REP_EMAIL)).scalar_one()
    assert deliver(db, notification_id, channels, clock=lambda: at) == "delivered"


@pytest.fixture()
def history(db, clock, sending, smtp_server):  # noqa: F811
    """Three leads from two reps of two teams, as in the module's docstring of figures:

    A (webinar, rita/east, bad_timing) at T0: emailed at +1m, clicks the guide at +2m,
      recycled at +1h (its rep's email delivered 30 s later), accepted at +1h03m (SLA met),
      opportunity at +1d, won 12,000 at +5d.
    C (webinar, rita/east, no_budget) at T0: no sequence takes it.
    B (ads, sam/west, bad_timing) at +1m: emailed at +1m, a machine open at +2m, a page view
      at +4m, recycled at +2h, escalated at +3h30m, rejected again (no_need) at +4h.
    """
    _, make = sending
    _, smtp_url = smtp_server
    make_rep(db, "rita@example.com", "east")
    make_rep(db, "sam@example.com", "west")
    setup_sequence(db, clock)
    a = reject(db, "a@example.com", rep="rita@example.com", reason=RejectionReason.BAD_TIMING,
               source="webinar", now=T0)
    reject(db, "c@example.com", rep="rita@example.com", reason=RejectionReason.NO_BUDGET,
           source="webinar", now=T0)
    clock.advance(minutes=1)
    b = reject(db, "b@example.com", rep="sam@example.com", reason=RejectionReason.BAD_TIMING,
               source="ads", now=clock())
    assert tick(db, clock, make).sent == 2
    with db.session_scope() as session:
        hello = {m.lead_id: m for m in session.execute(select(Message)).scalars()}
        a_message, b_message = hello[a].id, hello[b].id
    events(db, [
        IncomingEvent(source="sendgrid", source_event_id="a-click", type=EventType.CLICK,
                      occurred_at=T0 + timedelta(minutes=2), message_id=a_message,
                      url="https://cdn.example.com/planning-guide"),
        IncomingEvent(source="sendgrid", source_event_id="b-open", type=EventType.OPEN,
                      occurred_at=T0 + timedelta(minutes=2), message_id=b_message,
                      machine_hint="provider says: bot"),
        IncomingEvent(source="api", source_event_id="b-view", type=EventType.PAGE_VIEW,
                      occurred_at=T0 + timedelta(minutes=4), lead_id=b),
    ], now=T0 + timedelta(minutes=4))
    with db.session_scope() as session:
        flags = dict(session.execute(select(EngagementEvent.source_event_id,
                                            EngagementEvent.is_machine)).tuples().all())
        assert flags == {"a-click": False, "b-open": True, "b-view": False}
    a_handoff = recycle(db, a, now=T0 + timedelta(hours=1))
    deliver_rep_email(db, a_handoff, smtp_url, at=T0 + timedelta(hours=1, seconds=30))
    with db.session_scope() as session:
        handoffs.accept(session, a_handoff, actor=Actor("rita@example.com", Role.REP),
                        now=T0 + timedelta(hours=1, minutes=3))
    b_handoff = recycle(db, b, now=T0 + timedelta(hours=2))
    with db.session_scope() as session:
        assert handoffs.escalate(session, b_handoff,
                                 now=T0 + timedelta(hours=3, minutes=30)) == "reminded"
    with db.session_scope() as session:
        handoffs.reject(session, b_handoff, actor=Actor("sam@example.com", Role.REP),
                        reason=RejectionReason.NO_NEED, note=None,
                        now=T0 + timedelta(hours=4))
    outcome(db, a, OutcomeKind.OPPORTUNITY_CREATED, at=T0 + timedelta(days=1))
    outcome(db, a, OutcomeKind.WON, at=T0 + timedelta(days=5), amount=Decimal("12000"))


@pytest.fixture()
def reader(client, make_token):
    return Api(client, make_token(Role.MARKETER, "reader"))


def report(reader, name, **query):
    response = reader.get(f"/api/v1/reports/{name}", query_string={**PERIOD, **query})
    assert response.status_code == 200, response.json
    as_csv = reader.get(f"/api/v1/reports/{name}",
                        query_string={**PERIOD, **query, "format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv.mimetype == "text/csv"
    rows = response.json["rows"]
    lines = list(csv.reader(io.StringIO(as_csv.get_data(as_text=True))))
    assert lines[0] == response.json["columns"]
    assert lines[1:] == [[_cell(row[c]) for c in response.json["columns"]] for row in rows]
    return rows


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_funnel_by_cohort(history, reader):
    rows = report(reader, "funnel")
    # A and B reach nurtured (0 s after entering), engaged (A 120 s, B 180 s after the
    # enrollment), recycled (A 3,480 s, B 6,960 s after engaging); A is accepted 180 s later,
    # an opportunity 82,620 s later and won 4 days later. C and B's second pass stop at entered.
    assert [(r["stage"], r["count"], r["conversion"], r["median_seconds"], r["p90_seconds"])
            for r in rows] == [
        ("entered", 4, None, None, None),
        ("nurtured", 2, 0.5, 0, 0),
        ("engaged", 2, 1.0, 120, 180),
        ("recycled", 2, 1.0, 3480, 6960),
        ("accepted", 1, 0.5, 180, 180),
        ("opportunity", 1, 1.0, 82620, 82620),
        ("won", 1, 1.0, 345600, 345600),
    ]
    assert {r["cohort"] for r in rows} == {"2026-11-01"}
    by_team = report(reader, "funnel", group_by="team")
    assert [(r["team"], r["stage"], r["count"]) for r in by_team if r["count"]] == [
        ("east", "entered", 2), ("east", "nurtured", 1), ("east", "engaged", 1),
        ("east", "recycled", 1), ("east", "accepted", 1), ("east", "opportunity", 1),
        ("east", "won", 1),
        ("west", "entered", 2), ("west", "nurtured", 1), ("west", "engaged", 1),
        ("west", "recycled", 1),
    ]


def test_rejections_acceptance_and_rerejections(history, reader):
    assert report(reader, "rejection_reasons") == [
        {"month": "2026-11", "reason": "bad_timing", "count": 2},
        {"month": "2026-11", "reason": "no_budget", "count": 1},
        {"month": "2026-11", "reason": "no_need", "count": 1},
    ]
    assert report(reader, "rejection_reasons", group_by="rep") == [
        {"month": "2026-11", "reason": "bad_timing", "rep": "rita@example.com", "count": 1},
        {"month": "2026-11", "reason": "bad_timing", "rep": "sam@example.com", "count": 1},
        {"month": "2026-11", "reason": "no_budget", "rep": "rita@example.com", "count": 1},
        {"month": "2026-11", "reason": "no_need", "rep": "sam@example.com", "count": 1},
    ]
    assert report(reader, "acceptance") == [
        {"recycled": 2, "accepted": 1, "rejected_again": 1, "acceptance_rate": 0.5}]
    assert report(reader, "acceptance", group_by="team") == [
        {"team": "east", "recycled": 1, "accepted": 1, "rejected_again": 0,
         "acceptance_rate": 1.0},
        {"team": "west", "recycled": 1, "accepted": 0, "rejected_again": 1,
         "acceptance_rate": 0.0},
    ]
    assert report(reader, "rerejection_reasons") == [{"reason": "no_need", "count": 1}]


def test_touches_time_revenue_speed_and_sla(history, reader):
    assert report(reader, "qualifying") == [{
        "qualified": 2, "emails_delivered": 2, "emails_delivered_median": 1,
        "human_engagements": 2, "human_engagements_median": 1,
        # A: 1 h less 250 ms; B: 1 h 59 m less 250 ms (whole seconds)
        "nurture_median_seconds": 3599, "nurture_p90_seconds": 7139,
    }]
    assert report(reader, "revenue") == [{
        "qualified": 2, "won": 1, "qualified_per_won": 2.0, "won_from_recycled": 1,
        "revenue_from_recycled": "12000.00"}]
    speed = {r["leg"]: r for r in report(reader, "speed_to_lead")}
    assert speed["qualified_to_stored"] | {} == {
        "leg": "qualified_to_stored", "count": 2, "median_ms": 250, "p90_ms": 250,
        "within_5_minutes": 1.0}
    assert speed["stored_to_notified"] == {  # only A's rep email was delivered
        "leg": "stored_to_notified", "count": 1, "median_ms": 30_000, "p90_ms": 30_000,
        "within_5_minutes": 1.0}
    assert speed["stored_to_first_action"] == {
        "leg": "stored_to_first_action", "count": 2, "median_ms": 180_000,
        "p90_ms": 7_200_000, "within_5_minutes": 0.5}
    assert speed["qualified_to_first_action"] == {
        "leg": "qualified_to_first_action", "count": 2, "median_ms": 180_250,
        "p90_ms": 7_200_250, "within_5_minutes": 0.5}
    assert report(reader, "sla") == [
        {"rep": "rita@example.com", "handoffs": 1, "met": 1, "escalated": 0, "expired": 0,
         "stalled_returns": 0},
        {"rep": "sam@example.com", "handoffs": 1, "met": 0, "escalated": 1, "expired": 0,
         "stalled_returns": 0},
    ]
    assert [r["team"] for r in report(reader, "sla", group_by="team")] == ["east", "west"]


def test_sequences_steps_exits_and_collateral(history, reader):
    zero = dict.fromkeys(("enrolled", "delivered", "human_open", "human_click",
                          "unsubscribe", "exit", "requalified"), 0)
    assert report(reader, "sequences") == [
        {"sequence": "fast", "step": "", **zero, "enrolled": 2, "delivered": 2,
         "human_click": 1, "exit": 2, "requalified": 2},
        {"sequence": "fast", "step": "hello", **zero, "delivered": 2, "human_click": 1},
        {"sequence": "fast", "step": "pause", **zero, "exit": 2},
    ]
    assert report(reader, "exits") == [
        {"sequence": "fast", "step": "pause", "reason": "recycled to sales", "count": 2}]
    guide = [r for r in report(reader, "collateral") if r["collateral"] == "planning-guide"]
    assert guide == [{"collateral": "planning-guide", "recipients": 2, "engagements": 1,
                      "in_explanations": 0}]


def test_a_period_outside_the_history_is_empty(history, reader):
    response = reader.get("/api/v1/reports/acceptance",
                          query_string={"from": "2026-12-01", "to": "2026-12-31"})
    assert response.json["rows"] == []


def _rollups(db):
    with db.session_scope() as session:
        counts = sorted(
            (r.day, r.metric, r.reason, r.sequence_id, r.step_id, r.rep_email, r.team, r.source,
             r.collateral_id, r.n, r.amount)
            for r in session.execute(select(ReportCount)).scalars())
        columns = [c.key for c in ReportJourney.__table__.columns if c.key != "id"]
        journeys = sorted(tuple(str(getattr(j, c)) for c in columns)
                          for j in session.execute(select(ReportJourney)).scalars())
    return counts, journeys


def test_rebuilt_rollups_equal_the_incremental_ones(history, db, runner):
    before = _rollups(db)
    assert len(before[1]) == 4 and len(before[0]) > 10
    with db.session_scope() as session:
        rebuild(session)
    assert _rollups(db) == before
    result = runner.invoke(args=["reports", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "rebuilt 4 journeys" in result.output
    assert _rollups(db) == before


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "2026-11-30", "to": "2026-11-01"}, "to"),
    ({"from": "2020-01-01", "to": "2025-01-02"}, "to"),
    ({"from": "2026-13-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-11-01T00:00:00Z"}, "to"),
    ({"group_by": "colour"}, "group_by"),
    ({"group_by": "sequence"}, "group_by"),  # acceptance does not group by sequence
    ({"format": "xml"}, "format"),
    ({"period": "month"}, "period"),
])
def test_bad_queries_are_422_naming_the_parameter(reader, query, field, count):
    response = reader.get("/api/v1/reports/acceptance", query_string=query)
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]
    assert count(ReportCount) == 0


def test_an_unknown_report_is_404_and_reading_needs_a_role(client, make_token, reader):
    assert reader.get("/api/v1/reports/happiness").status_code == 404
    assert client.get("/api/v1/reports/funnel").status_code == 401
    rep = Api(client, make_token(Role.REP, "rep"))
    assert rep.get("/api/v1/reports/funnel").status_code == 403
    listed = reader.get("/api/v1/reports").json["reports"]
    assert {r["name"] for r in listed} >= {"funnel", "speed_to_lead", "sla", "collateral"}


def test_five_years_is_the_longest_period(reader):
    ok = reader.get("/api/v1/reports/funnel",
                    query_string={"from": "2021-11-01", "to": "2026-10-31"})
    assert ok.status_code == 200, ok.json


def test_users_have_a_team(db):
    make_rep(db, "t@example.com", "north")
    with db.session_scope() as session:
        assert session.execute(select(User.team)).scalar_one() == "north"


def test_rebuilt_rollups_equal_the_incremental_ones_after_sla_timers(db):
    """Timers fired as the dispatcher's job fires them under an active SLA (remind, escalate,
    expire to nurture; an accepted lead stalls): the rollups the services kept equal the
    rebuilt ones, and the SLA report counts each outcome once."""
    from nurture.handoffs import timers
    from nurture.models import Handoff, HandoffStatus
    from tests.test_slas import activate

    activate(db)
    make_rep(db, "rita@example.com", "east")
    make_rep(db, "sam@example.com", "west")
    long_ago = T0 - timedelta(days=200)
    quiet = reject(db, "q@example.com", rep="rita@example.com",
                   reason=RejectionReason.NO_NEED, source="ads", now=long_ago)
    accepted = reject(db, "s@example.com", rep="sam@example.com",
                      reason=RejectionReason.OTHER, source="ads", now=long_ago)
    assert recycle(db, quiet, now=T0)
    sam_handoff = recycle(db, accepted, now=T0)
    with db.session_scope() as session:
        handoffs.accept(session, sam_handoff, actor=Actor("sam@example.com", Role.REP),
                        now=T0 + timedelta(minutes=5))
    for _ in range(8):
        with db.session_scope() as session:
            due = [h.next_sla_at if h.status == HandoffStatus.OPEN else h.stalls_at
                   for h in session.execute(select(Handoff)).scalars()
                   if h.status in (HandoffStatus.OPEN, HandoffStatus.ACCEPTED)]
            due = [at for at in due if at is not None]
            if not due:
                break
            timers.fire_due_timers(session, now=min(due))
    with db.session_scope() as session:
        assert sorted(h.status.value for h in session.execute(select(Handoff)).scalars()) == [
            "expired", "stalled"]
    before = _rollups(db)
    with db.session_scope() as session:
        rebuild(session)
    assert _rollups(db) == before
    with db.session_scope() as session:
        rows = figures.sla(session, ReportQuery(Period(T0.date(), T0.date() + timedelta(days=30)),
                                                 None)).rows
    assert rows == [
        {"rep": "rita@example.com", "handoffs": 1, "met": 0, "escalated": 1, "expired": 1,
         "stalled_returns": 0},
        {"rep": "sam@example.com", "handoffs": 1, "met": 1, "escalated": 0, "expired": 0,
         "stalled_returns": 1},
    ]


# The funnel's closed months: stored figures, used only while untouched (docs/REPORTS.md).

DECEMBER = T0.date().replace(year=2026, month=12, day=15)
"""A day after the history's month (November 2026) has closed."""

FUNNEL_GROUPINGS = (None, "reason", "sequence", "rep", "team", "source")


def _funnel_answers(reader):
    return {g: report(reader, "funnel", **({"group_by": g} if g else {}))
            for g in FUNNEL_GROUPINGS}


def _touched(db):
    from nurture.models import ReportFunnelTouched

    with db.session_scope() as session:
        return sorted(str(c) for c in session.execute(
            select(ReportFunnelTouched.cohort)).scalars())


def _stored(db):
    from nurture.models import ReportFunnelMonth

    with db.session_scope() as session:
        return {(str(m.cohort), m.grouping): m.figures
                for m in session.execute(select(ReportFunnelMonth)).scalars()}


def test_a_closed_months_stored_figures_equal_the_live_ones(history, db, reader):
    from nurture.reports.funnel_months import refresh
    from nurture.reports.percentiles import live_funnel

    live = _funnel_answers(reader)
    assert _touched(db) and set(_touched(db)) == {"2026-11-01"}
    assert refresh(db, today=T0.date()) == 0  # the current month is never stored
    assert refresh(db, today=DECEMBER) == 1
    assert _touched(db) == []
    stored = _stored(db)
    assert sorted(stored) == [("2026-11-01", g or "") for g in sorted(
        FUNNEL_GROUPINGS, key=lambda g: g or "")]
    with db.session_scope() as session:
        for grouping in FUNNEL_GROUPINGS:
            computed = live_funnel(session, grouping, [T0.date().replace(day=1)])
            assert {(k[1] if grouping else None): [list(s) for s in v]
                    for k, v in computed.items()} == {
                group: spreads for group, spreads in stored[("2026-11-01", grouping or "")]["rows"]}
    assert _funnel_answers(reader) == live  # read from the stored month now
    assert refresh(db, today=DECEMBER) == 0  # nothing touched since


def test_a_late_fact_for_a_closed_month_is_counted_at_once_and_stored_again(history, db,
                                                                            reader):
    from nurture.reports.funnel_months import refresh

    assert refresh(db, today=DECEMBER) == 1
    before = report(reader, "funnel")
    assert [r["count"] for r in before if r["stage"] == "opportunity"] == [1]
    # B's second pass (rejected again at +4h) becomes an opportunity in December.
    with db.session_scope() as session:
        b = session.execute(select(ReportJourney.lead_id).where(
            ReportJourney.rereject_reason == "no_need")).scalar_one()
    outcome(db, b, OutcomeKind.OPPORTUNITY_CREATED, at=T0 + timedelta(days=20))
    assert _touched(db) == ["2026-11-01"]
    after = report(reader, "funnel")  # computed live: the month was touched
    assert [(r["count"], r["median_seconds"]) for r in after if r["stage"] == "opportunity"] \
        == [(2, 82620)]
    assert refresh(db, today=DECEMBER) == 1
    assert _touched(db) == []
    assert report(reader, "funnel") == after
    by_team = [(r["team"], r["count"]) for r in report(reader, "funnel", group_by="team")
               if r["stage"] == "opportunity"]
    assert by_team == [("east", 1), ("west", 1)]


def test_a_change_committed_while_a_month_is_stored_keeps_it_live(history, db, reader):
    """The refresh's snapshot does not see a fact committed after it began: that fact's
    touch survives the refresh, so the month is still computed live, and right."""
    from nurture.reports.funnel_months import refresh, refresh_isolation, store_month

    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: no refresh runs beside a writer")
    with db.session_scope() as session:
        b = session.execute(select(ReportJourney.lead_id).where(
            ReportJourney.rereject_reason == "no_need")).scalar_one()
    november = T0.date().replace(day=1)
    with db.session_scope() as refreshing:
        refresh_isolation(refreshing)
        refreshing.execute(select(1))  # its snapshot
        outcome(db, b, OutcomeKind.OPPORTUNITY_CREATED, at=T0 + timedelta(days=20))
        store_month(refreshing, november)
    assert _touched(db) == ["2026-11-01"]
    assert [r["count"] for r in report(reader, "funnel") if r["stage"] == "opportunity"] == [2]
    assert refresh(db, today=DECEMBER) == 1
    assert [r["count"] for r in report(reader, "funnel") if r["stage"] == "opportunity"] == [2]


def test_the_rebuild_forgets_stored_months_and_marks_every_cohort(history, db):
    from nurture.reports.funnel_months import refresh

    assert refresh(db, today=DECEMBER) == 1
    with db.session_scope() as session:
        rebuild(session)
    assert _stored(db) == {}
    assert _touched(db) == ["2026-11-01"]


def test_only_a_first_engagement_touches_a_stored_month(history, db, reader):
    from nurture.reports.funnel_months import refresh

    assert refresh(db, today=DECEMBER) == 1
    with db.session_scope() as session:
        leads = {u.email: u.id for u in session.execute(select(Lead)).scalars()}
    later = T0 + timedelta(days=20)
    events(db, [IncomingEvent(source="api", source_event_id="a-again", type=EventType.PAGE_VIEW,
                              occurred_at=later, lead_id=leads["a@example.com"])], now=later)
    assert _touched(db) == []  # A engaged long before: the funnel does not move
    events(db, [IncomingEvent(source="api", source_event_id="c-first", type=EventType.PAGE_VIEW,
                              occurred_at=later, lead_id=leads["c@example.com"])], now=later)
    assert _touched(db) == ["2026-11-01"]
    assert [r["count"] for r in report(reader, "funnel") if r["stage"] == "engaged"] == [3]


def test_the_dispatcher_has_touched_closed_months_stored_by_one_job(history, app, db, reader,
                                                                     service_env, monkeypatch):
    from datetime import UTC, datetime

    from rq import SimpleWorker

    from workers.dispatcher import Tick, dispatch_funnel_months
    from workers.queues import all_queues

    for name, value in service_env.items():
        monkeypatch.setenv(name, value)  # the worker's settings
    redis = app.extensions["nurture.redis"]
    november = datetime(2026, 11, 30, 12, tzinfo=UTC)
    dispatch_funnel_months(Tick(redis, db, "test", november))  # the open month: nothing
    assert sum(q.count for q in all_queues(redis)) == 0
    live = _funnel_answers(reader)
    december = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    dispatch_funnel_months(Tick(redis, db, "test", december))
    dispatch_funnel_months(Tick(redis, db, "test", december))  # one job, not two
    assert sum(q.count for q in all_queues(redis)) == 1
    SimpleWorker(all_queues(redis), connection=redis).work(burst=True, logging_level="WARNING")
    assert _touched(db) == []
    assert len(_stored(db)) == len(FUNNEL_GROUPINGS)
    assert _funnel_answers(reader) == live
    dispatch_funnel_months(Tick(redis, db, "test", december))  # nothing touched since
    assert sum(q.count for q in all_queues(redis)) == 0
