"""The rep's inbox and lead card (nurture/web/reps): what a rep sees and does, on the same
handoff services as the API, and what a rep may not see or do."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from campaigns.feedback import feedback_counts, feedback_for_version
from nurture.accounts.services import create_user
from nurture.clock import utcnow
from nurture.handoffs import services
from nurture.handoffs.delivery import deliver
from nurture.models import (
    CollateralVersion,
    EngagementEvent,
    Enrollment,
    EventType,
    Handoff,
    HandoffEvent,
    HandoffNotification,
    HandoffStatus,
    Lead,
    NotificationChannel,
    RejectionReason,
    Role,
    User,
)
from nurture.models.collateral import CollateralFeedback
from tests.conftest import Api
from tests.test_api_sequences import make_collateral
from tests.test_auth import PASSWORD, csrf_token
from tests.test_handoff_delivery import channels
from tests.test_handoffs import rejected_lead
from tests.test_routing import sequence
from tests.test_scoring_models import DOCUMENT
from workers.queues import all_queues

SCORE = {
    "total": 72, "fit": 30, "engagement": 42, "model_version": 1,
    "explanation": [{"rule": "pricing_page", "points": 25, "at": None},
                    {"rule": "webinar_attended", "points": 17, "at": None}],
}


def make_rep(db, email, *, name=None, timezone="Europe/Berlin", team=None, team_lead=False,
             role=Role.REP):
    with db.session_scope() as session:
        user = create_user(session, email, role, password=PASSWORD, name=name,
                           timezone=timezone, now=utcnow() - timedelta(days=300))
        user.team, user.team_lead = team, team_lead
        return user.id


def sign_in(client, email, next_=""):
    return client.post("/auth/sign-in", data={
        "csrf_token": csrf_token(client), "email": email, "password": PASSWORD, "next": next_})


def recycle_to(db, email="lena@example.com", *, rep="rita@example.com", note="budget frozen",
               score=SCORE, at=None):
    """A lead rejected by `rep` long ago, recycled to them now; returns (handoff id, lead id)."""
    lead_id = rejected_lead(db, email, rep=rep)
    if note is not None:
        with db.session_scope() as session:
            lead = session.get(Lead, lead_id)
            lead.rejections[0].note = note
    now = at or utcnow()
    with db.session_scope() as session:
        handoff = services.recycle(session, lead_id, score=score, model_version_id=None,
                                   qualifying_event_id=None, qualified_at=now, now=now)
        assert handoff is not None
        return handoff.id, lead_id


def status_of(db, handoff_id):
    with db.session_scope() as session:
        return session.get(Handoff, handoff_id).status


def post(client, path, data=None):
    """A form post with the session's CSRF token (any page's)."""
    return client.post(path, data={"csrf_token": csrf_token(client, "/reps/"), **(data or {})})


@pytest.fixture()
def rita(db, client):
    make_rep(db, "rita@example.com", name="Rita Rep")
    return client


# --- the inbox -------------------------------------------------------------------------------

def test_a_rep_signs_in_to_the_inbox_open_first_with_the_sla_in_their_zone(db, rita):
    closed, _ = recycle_to(db, "old@example.com", at=utcnow() - timedelta(days=3))
    with db.session_scope() as session:
        services.accept(session, closed, actor=services.Actor("rita@example.com", Role.REP),
                        now=utcnow() - timedelta(days=2))
    open_id, _ = recycle_to(db, "lena@example.com")
    escalated_id, _ = recycle_to(db, "esc@example.com", at=utcnow() - timedelta(hours=1))
    with db.session_scope() as session:
        session.get(Handoff, escalated_id).escalations = 1
    answer = sign_in(rita, "rita@example.com")
    assert answer.headers["Location"] == "/reps/"
    page = rita.get("/reps/")
    assert page.status_code == 200
    text = page.text
    links = re.findall(r'href="/reps/handoffs/(\d+)"', text)
    assert [int(i) for i in links[:2]] == sorted([open_id, escalated_id], key=lambda i: (
        i != escalated_id))  # the soonest due first
    assert int(links[2]) == closed  # closed ones after every open one
    assert text.count("Escalated") == 1
    assert "Times in Europe/Berlin" in text
    with db.session_scope() as session:
        due = session.get(Handoff, open_id).sla_due_at
    from zoneinfo import ZoneInfo
    local = due.astimezone(ZoneInfo("Europe/Berlin")).strftime("%a %H:%M")
    assert f"Due {local}" in text  # the countdown in the rep's zone
    assert re.search(r"(\d+ (d|h|min).*left|overdue by)", text)
    assert re.search(r'Open <span class="filter-count">2</span>', text)
    assert re.search(r'Accepted <span class="filter-count">1</span>', text)


def test_the_filters_show_one_status_and_an_unknown_one_is_a_clear_400(db, rita):
    accepted, _ = recycle_to(db, "old@example.com")
    with db.session_scope() as session:
        services.accept(session, accepted, actor=services.Actor("rita@example.com", Role.REP),
                        now=utcnow())
    open_id, _ = recycle_to(db, "lena@example.com")
    sign_in(rita, "rita@example.com")
    page = rita.get("/reps/?status=accepted").text
    assert f"/reps/handoffs/{accepted}" in page and f"/reps/handoffs/{open_id}" not in page
    page = rita.get("/reps/?status=expired").text
    assert "No expired leads" in page
    bad = rita.get("/reps/?status=<script>")
    assert bad.status_code == 400 and "choose open, accepted" in bad.text
    assert "<script>" not in bad.text


def test_an_empty_inbox_says_what_happens_next(db, rita):
    sign_in(rita, "rita@example.com")
    page = rita.get("/reps/").text
    assert "No recycled leads yet" in page and "emailed a link" in page


# --- the lead card ----------------------------------------------------------------------------

def work(app):
    redis = app.extensions["nurture.redis"]
    SimpleWorker(all_queues(redis), connection=redis).work(burst=True, logging_level="WARNING")


@pytest.fixture()
def worker_env(monkeypatch, service_env):
    """What a worker reads: the test's services (the jobs run in this process)."""
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)


def qualified_lead(app, client, db, make_token, *, email="vera@example.com"):
    """A lead rejected with no_budget two months ago that qualified now through events (the
    default model, active); returns (handoff id, lead id, budget sequence id)."""
    admin = Api(client, make_token(Role.ADMIN, "admin"))
    marketer = Api(client, make_token(Role.MARKETER, "marketer"))
    sales = Api(client, make_token(Role.SALES_APPROVER, "sales"))
    make_collateral(db)
    budget = sequence(marketer, "budget", reasons=("no_budget",))
    rejected = admin.post("/api/v1/rejections", json={
        "lead": {"email": email, "first_name": "Vera", "last_name": "Lind",
                 "title": "VP Engineering", "industry": "software", "company_size": 300,
                 "country": "DE", "company": "Acme", "timezone": "Europe/Berlin",
                 "attributes": {"phone": "+49 30 1234567"}},
        "rep_email": "rita@example.com", "reason": "no_budget", "note": "budget frozen",
        "rejected_at": (utcnow() - timedelta(days=60)).isoformat()})
    assert rejected.status_code == 201, rejected.json
    model_id = marketer.post("/api/v1/scoring/models", json=DOCUMENT).json["id"]
    assert marketer.post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert sales.post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert admin.post(f"/api/v1/scoring/models/{model_id}/activate").status_code == 200
    two_days_ago = (utcnow() - timedelta(days=2)).isoformat()
    events = admin.post("/api/v1/events", json={"events": [
        {"id": "w-1", "email": email, "type": "webinar_attended", "occurred_at": two_days_ago,
         "properties": {"title": "Cutting onboarding costs"}},
        {"id": "w-2", "email": email, "type": "form_submit",
         "occurred_at": utcnow().isoformat(), "properties": {"form": "contact"}},
    ]})
    assert events.status_code == 202, events.json
    work(app)
    with db.session_scope() as session:
        handoff = session.execute(select(Handoff)).scalar_one()
        return handoff.id, handoff.lead_id, budget


def test_the_card_says_why_now_in_plain_words_and_where_it_came_back_from(
        app, db, rita, make_token, worker_env):
    handoff_id, _, _ = qualified_lead(app, rita, db, make_token)
    sign_in(rita, "rita@example.com")
    page = rita.get(f"/reps/handoffs/{handoff_id}")
    assert page.status_code == 200
    text = html.unescape(re.sub(r"<[^>]+>", " ", page.text))
    text = re.sub(r"\s+", " ", text).replace(" ,", ",")
    assert re.search(r"\+\d+ attended the webinar 'Cutting onboarding costs', 2 days ago", text), text
    assert re.search(r"\+15 filled in the form 'contact', just now", text)
    assert re.search(r"\+15 fits: decision makers and their direct reports", text)
    # the rejection it came back from: reason, note, who, when
    assert "It came back from" in text and "No budget" in text and "budget frozen" in text
    assert "Rejected by rita@example.com, " in text and "(8 weeks ago)" in text
    # contact details, the lead's own time, the timeline
    assert "vera@example.com" in text and "+49 30 1234567" in text
    assert 'href="tel:+49 30 1234567"' in page.text
    assert "Their time" in text
    assert "Attended a webinar: Cutting onboarding costs" in text
    assert "Came back to sales" in text
    # the SLA countdown and both answers, one step each
    assert "left" in text or "overdue by" in text
    assert f'action="/reps/handoffs/{handoff_id}/accept"' in page.text
    assert f'action="/reps/handoffs/{handoff_id}/reject"' in page.text


def test_rejecting_with_no_budget_and_a_note_puts_the_lead_back_in_the_matching_sequence(
        app, db, rita, make_token, worker_env):
    handoff_id, lead_id, budget = qualified_lead(app, rita, db, make_token)
    sign_in(rita, "rita@example.com")
    answer = post(rita, f"/reps/handoffs/{handoff_id}/reject",
                  {"reason": "no_budget", "note": "Q3 at the earliest"})
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/reps/handoffs/{handoff_id}"
    page = rita.get(answer.headers["Location"]).text
    assert "back in nurture, in the sequence &#39;budget&#39;" in page
    assert "Q3 at the earliest" in page
    with db.session_scope() as session:
        assert session.get(Handoff, handoff_id).status == HandoffStatus.REJECTED
        assert session.get(Lead, lead_id).lifecycle_stage.value == "nurturing"
        live = session.execute(select(Enrollment).where(
            Enrollment.lead_id == lead_id, Enrollment.status == "active")).scalar_one()
        assert live.sequence_id == budget


def test_a_reject_without_a_reason_shows_the_error_beside_the_field_and_changes_nothing(
        db, rita):
    handoff_id, _ = recycle_to(db)
    sign_in(rita, "rita@example.com")
    answer = post(rita, f"/reps/handoffs/{handoff_id}/reject", {"reason": "", "note": "kept"})
    assert answer.status_code == 422
    assert 'id="reason-error"' in answer.text and "Choose why you give the lead back" in answer.text
    assert "kept</textarea>" in answer.text
    refused = post(rita, f"/reps/handoffs/{handoff_id}/reject", {"reason": "sla_expired"})
    assert refused.status_code == 422
    assert status_of(db, handoff_id) == HandoffStatus.OPEN


def test_accepting_takes_the_lead_and_a_second_answer_is_a_plain_409(db, rita):
    handoff_id, _lead_id = recycle_to(db)
    sign_in(rita, "rita@example.com")
    answer = post(rita, f"/reps/handoffs/{handoff_id}/accept")
    assert answer.status_code == 302
    assert "Accepted: the lead is yours" in rita.get(answer.headers["Location"]).text
    assert status_of(db, handoff_id) == HandoffStatus.ACCEPTED
    again = post(rita, f"/reps/handoffs/{handoff_id}/reject", {"reason": "no_budget"})
    assert again.status_code == 409, re.findall(r'class="error"[^<]*>([^<]*)', again.text)
    assert "Nothing changed: this lead was accepted already by rita@example.com" in again.text
    assert 'role="alert"' in again.text
    assert status_of(db, handoff_id) == HandoffStatus.ACCEPTED


def test_accepting_a_handoff_already_rejected_is_409_shown_plainly(db, rita, client, make_token):
    handoff_id, _ = recycle_to(db)
    from tests.test_api_handoffs import user_token

    api = Api(client, user_token(db, "rita@example.com"))
    assert api.post(f"/api/v1/handoffs/{handoff_id}/reject",
                    json={"reason": "no_need"}).status_code == 200
    sign_in(rita, "rita@example.com")
    answer = post(rita, f"/reps/handoffs/{handoff_id}/accept")
    assert answer.status_code == 409
    assert "Nothing changed: this lead was rejected already" in answer.text
    assert status_of(db, handoff_id) == HandoffStatus.REJECTED
    # the API says the same
    assert api.post(f"/api/v1/handoffs/{handoff_id}/accept").status_code == 409


# --- what a rep may not see or do ------------------------------------------------------------

def test_a_rep_opening_another_reps_lead_or_handoff_by_address_gets_404(db, rita, client):
    make_rep(db, "otto@example.com")
    handoff_id, lead_id = recycle_to(db)
    sign_in(rita, "rita@example.com")
    assert rita.get(f"/reps/leads/{lead_id}").headers["Location"] == f"/reps/handoffs/{handoff_id}"
    token = csrf_token(rita, f"/reps/handoffs/{handoff_id}")
    rita.post("/auth/sign-out", data={"csrf_token": token})
    sign_in(rita, "otto@example.com")
    assert rita.get(f"/reps/handoffs/{handoff_id}").status_code == 404
    assert rita.get(f"/reps/leads/{lead_id}").status_code == 404
    assert rita.get("/reps/handoffs/999999").status_code == 404  # the same answer as none
    assert rita.get(f"/reps/handoffs/{2**70}").status_code == 404
    token = csrf_token(rita, "/reps/")
    for action, data in (("accept", {}), ("reject", {"reason": "no_need"})):
        answer = rita.post(f"/reps/handoffs/{handoff_id}/{action}",
                           data={"csrf_token": token, **data})
        assert answer.status_code == 404
    assert f"/reps/handoffs/{handoff_id}" not in rita.get("/reps/").text
    assert status_of(db, handoff_id) == HandoffStatus.OPEN


def test_a_form_post_without_csrf_is_400_and_changes_nothing(db, rita):
    handoff_id, _ = recycle_to(db)
    sign_in(rita, "rita@example.com")
    assert rita.post(f"/reps/handoffs/{handoff_id}/reject",
                     data={"reason": "no_budget"}).status_code == 400
    assert rita.post(f"/reps/handoffs/{handoff_id}/accept").status_code == 400
    assert status_of(db, handoff_id) == HandoffStatus.OPEN


def test_stored_script_in_a_rejection_note_and_a_lead_name_is_inert(db, rita):
    handoff_id, lead_id = recycle_to(db, note='<script>alert("note")</script><img src=x onerror=alert(1)>')
    with db.session_scope() as session:
        session.get(Lead, lead_id).first_name = "<script>alert('name')</script>"
    sign_in(rita, "rita@example.com")
    for path in ("/reps/", f"/reps/handoffs/{handoff_id}"):
        page = rita.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(" in page
    page = rita.get(f"/reps/handoffs/{handoff_id}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize("role", [Role.MARKETER, Role.SALES_APPROVER, Role.ADMIN])
def test_the_reps_pages_are_for_reps(db, client, role):
    make_rep(db, "rita@example.com")
    handoff_id, _ = recycle_to(db)
    make_rep(db, "staff@example.com", role=role)
    sign_in(client, "staff@example.com")
    assert client.get("/reps/").status_code == 403
    assert client.get(f"/reps/handoffs/{handoff_id}").status_code == 403
    assert "/reps/" not in client.get("/auth/account").text  # no Inbox in the navigation


def test_the_reps_email_links_to_the_card_through_sign_in(db, client, smtp_server):
    sink, url = smtp_server
    make_rep(db, "rita@example.com")
    handoff_id, _ = recycle_to(db)
    with db.session_scope() as session:
        email_id = session.execute(select(HandoffNotification.id).where(
            HandoffNotification.channel == NotificationChannel.REP_EMAIL)).scalar_one()
    assert deliver(db, email_id, channels(None, smtp_url=url), clock=utcnow) == "delivered"
    [message] = sink.messages
    link = f"https://nurture.test/reps/handoffs/{handoff_id}"
    assert f"Open the lead: {link}" in message.get_body(("plain",)).get_content()
    assert f'href="{link}"' in message.get_body(("html",)).get_content()
    path = link.removeprefix("https://nurture.test")
    answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/auth/sign-in?next={path}"
    signed = sign_in(client, "rita@example.com", next_=path)
    assert signed.headers["Location"] == path
    assert client.get(path).status_code == 200


# --- team leads --------------------------------------------------------------------------------

def test_a_team_lead_sees_the_teams_inbox_and_reassigns(db, client):
    make_rep(db, "tara@example.com", name="Tara Lead", team="North", team_lead=True)
    make_rep(db, "rita@example.com", name="Rita Rep", team="North")
    make_rep(db, "nils@example.com", name="Nils New", team="North", timezone="America/New_York")
    make_rep(db, "sam@example.com", team="South")
    ritas, _ = recycle_to(db, "a@example.com", rep="rita@example.com")
    sams, _ = recycle_to(db, "b@example.com", rep="sam@example.com")
    sign_in(client, "tara@example.com")
    mine = client.get("/reps/").text
    assert f"/reps/handoffs/{ritas}" not in mine and "Team · North" in mine
    team = client.get("/reps/?team=1").text
    assert f"/reps/handoffs/{ritas}" in team and f"/reps/handoffs/{sams}" not in team
    assert client.get(f"/reps/handoffs/{sams}").status_code == 404  # another team's
    card = client.get(f"/reps/handoffs/{ritas}").text
    assert "Assigned to rita@example.com" in card and "Reassign" in card
    assert f'action="/reps/handoffs/{ritas}/accept"' not in card  # only the rep answers
    answer = post(client, f"/reps/handoffs/{ritas}/reassign", {"rep": "sam@example.com"})
    assert answer.status_code == 302
    assert "Choose a rep of your team" in client.get(answer.headers["Location"]).text
    answer = post(client, f"/reps/handoffs/{ritas}/reassign", {"rep": "nils@example.com"})
    assert answer.status_code == 302
    with db.session_scope() as session:
        handoff = session.get(Handoff, ritas)
        assert handoff.rep_email == "nils@example.com" and handoff.reassignments == 1
        kinds = session.execute(select(HandoffEvent.kind).where(
            HandoffEvent.handoff_id == ritas)).scalars().all()
        assert "reassigned" in kinds
        emails = session.execute(select(HandoffNotification.recipient).where(
            HandoffNotification.handoff_id == ritas,
            HandoffNotification.purpose == "reassigned")).scalars().all()
        assert emails == ["nils@example.com"]


def test_a_rep_who_leads_no_team_cannot_reassign(db, client):
    make_rep(db, "rita@example.com", team="North")
    make_rep(db, "nils@example.com", team="North")
    handoff_id, _ = recycle_to(db)
    sign_in(client, "rita@example.com")
    assert "Team ·" not in client.get("/reps/").text
    answer = post(client, f"/reps/handoffs/{handoff_id}/reassign", {"rep": "nils@example.com"})
    assert answer.status_code == 403
    with db.session_scope() as session:
        assert session.get(Handoff, handoff_id).rep_email == "rita@example.com"


# --- feedback on collateral --------------------------------------------------------------------

def test_feedback_on_collateral_the_lead_saw_counts_and_reaches_its_author(
        db, rita, app, monkeypatch, tmp_path):
    author = make_rep(db, "mara@example.com", role=Role.MARKETER, name="Mara")
    make_collateral(db, ["case-study"])
    lead_id = rejected_lead(db)
    with db.session_scope() as session:
        version = session.execute(select(CollateralVersion)).scalar_one()
        version.created_by = author
        version_id = version.id
        session.add(EngagementEvent(
            lead_id=lead_id, type=EventType.CLICK, occurred_at=utcnow() - timedelta(hours=2),
            received_at=utcnow(), source="tracking", source_event_id="c-1",
            url="https://cdn.example.com/case-study", collateral_version_id=version_id,
            properties={}))
    now = utcnow()
    with db.session_scope() as session:
        handoff_id = services.recycle(session, lead_id, score=SCORE, model_version_id=None,
                                      qualifying_event_id=None, qualified_at=now, now=now).id
    sent = []
    monkeypatch.setattr("nurture.web.reps.views._send", lambda m: sent.append(m) or True)
    sign_in(rita, "rita@example.com")
    card = rita.get(f"/reps/handoffs/{handoff_id}").text
    assert "Collateral it saw" in card and "Case-Study" in card and "clicked" in card
    path = f"/reps/handoffs/{handoff_id}/collateral/{version_id}/feedback"
    answer = post(rita, path, {"useful": "no", "note": "<b>too generic</b> for fintech"})
    assert answer.status_code == 302
    page = rita.get(f"/reps/handoffs/{handoff_id}").text
    assert "its author has been told" in page
    assert "You said: <strong>not useful</strong>" in page
    assert "&lt;b&gt;too generic&lt;/b&gt; for fintech" in page
    with db.session_scope() as session:
        assert feedback_counts(session, [version_id]) == {version_id: (0, 1)}
        [item] = feedback_for_version(session, version_id)
        assert (item.rep_email, item.useful) == ("rita@example.com", False)
    [message] = sent
    assert message["To"] == "mara@example.com"
    assert "not useful" in message["Subject"] and "too generic" in message.get_content()
    # said again: replaced, not counted twice
    post(rita, path, {"useful": "yes"})
    with db.session_scope() as session:
        assert feedback_counts(session, [version_id]) == {version_id: (1, 0)}
    # a version the lead never saw, a missing word, no CSRF
    assert post(rita, f"/reps/handoffs/{handoff_id}/collateral/{version_id + 99}/feedback",
                {"useful": "yes"}).status_code == 404
    assert rita.post(path, data={"useful": "no"}).status_code == 400
    bad = post(rita, path, {"useful": "maybe"})
    assert bad.status_code == 302
    assert "Say whether it was useful" in rita.get(bad.headers["Location"]).text
    with db.session_scope() as session:
        assert session.execute(select(CollateralFeedback.useful)).scalars().all() == [True]


def test_the_plain_words_of_each_kind_of_reason():
    from datetime import UTC, datetime

    from nurture.scoring.explain import ago, describe_event, format_points

    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert ago(now - timedelta(days=2, hours=3), now) == "2 days ago"
    assert ago(now - timedelta(seconds=20), now) == "just now"
    assert ago(now - timedelta(minutes=1), now) == "1 minute ago"
    assert format_points(24.6) == "+25" and format_points(-15) == "−15"
    event = EngagementEvent(type=EventType.WEBINAR_ATTENDED,
                            properties={"webinar": "cutting-onboarding-costs"})
    assert describe_event(event) == "attended the webinar 'Cutting onboarding costs'"
    assert describe_event(EngagementEvent(type=EventType.PAGE_VIEW, url="https://x.io/pricing?a=1",
                                          properties={})) == "viewed the pricing page"
    assert describe_event(EngagementEvent(type=EventType.CLICK, properties={}),
                          "The ROI guide") == "clicked 'The ROI guide'"
    assert describe_event(EngagementEvent(type=EventType.MEETING_BOOKED, properties={})) == \
        "booked a meeting"


def test_the_user_model_has_a_team_lead_flag_defaulting_to_false(db):
    make_rep(db, "rita@example.com")
    with db.session_scope() as session:
        assert session.execute(select(User.team_lead)).scalar_one() is False
    assert RejectionReason.NO_BUDGET.value == "no_budget"
