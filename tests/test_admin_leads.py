"""The admin's lead pages (nurture/web/admin/leads.py): search and filters with keyset pages,
the lead page (profile, lifecycle, timeline, score explanation), its actions, bulk actions and
CSV import as background tasks run by a real RQ worker, and the bad input each must survive."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from nurture.clock import utcnow
from nurture.leads.services import upsert_lead
from nurture.models import (
    Collateral,
    CollateralVersion,
    EngagementEvent,
    Enrollment,
    EnrollmentStatus,
    EventType,
    Handoff,
    HandoffEvent,
    Lead,
    Message,
    MessageCollateral,
    MessageStatus,
    Outcome,
    OutcomeKind,
    Role,
    ScoreLedgerEntry,
    Suppression,
)
from nurture.models.lead_tasks import LeadTask, LeadTaskStatus
from nurture.scoring.lifecycle import ensure_default_model
from tests.conftest import Api
from tests.test_api_sequences import make_collateral
from tests.test_auth import make_user, sign_in
from tests.test_routing import sequence
from workers.queues import all_queues

SCRIPT = "<script>alert('x')</script>"
IMG = '<img src=x onerror="alert(1)">'


def reject(api, email, *, reason="bad_timing", rep="rita@example.com", **lead):
    answer = api.post("/api/v1/rejections", json={
        "lead": {"email": email, **lead}, "rep_email": rep, "reason": reason, "note": "call later"})
    assert answer.status_code == 201, answer.json
    return answer.json


def lead_id(db, email):
    with db.session_scope() as session:
        return session.execute(select(Lead.id).where(Lead.email == email)).scalar_one()


def token(page_text):
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page_text).group(1)


@pytest.fixture()
def marketer(client, make_token):
    """The API as a marketer (sequences are imported and activated through it)."""
    return Api(client, make_token(Role.MARKETER, "marketer"))


@pytest.fixture()
def signed_in(client, db):
    make_user(db)
    sign_in(client)
    return client


def run_worker(app, monkeypatch, service_env):
    """A real RQ worker, in this process, until the queues are empty (the job reads the
    settings from the environment, as `nurture worker` does)."""
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)
    connection = app.extensions["nurture.redis"]
    SimpleWorker(all_queues(connection), connection=connection).work(burst=True)


def task_of(db):
    with db.session_scope() as session:
        return session.execute(select(LeadTask).order_by(LeadTask.id.desc())).scalars().first()


# --- roles ---------------------------------------------------------------------------------


PAGES = ["/admin/leads", "/admin/leads/1", "/admin/leads/import", "/admin/leads/tasks/1",
         "/admin/leads/tasks/1/status", "/admin/leads/1/erase"]
POSTS = ["/admin/leads/bulk", "/admin/leads/1/enroll", "/admin/leads/1/remove",
         "/admin/leads/1/suppress", "/admin/leads/1/erase", "/admin/leads/import"]


def test_anonymous_visitors_are_sent_to_sign_in_and_reps_get_403(client, db):
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 302 and "/auth/sign-in" in answer.headers["Location"], path
    make_user(db, email="rex@example.com", role=Role.REP)
    sign_in(client, "rex@example.com")
    csrf = token(client.get("/auth/account").text)
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    for path in POSTS:
        assert client.post(path, data={"csrf_token": csrf}).status_code == 403, path


def test_a_sales_approver_reads_leads_but_changes_nothing(client, db, api):
    reject(api, "vera@example.com")
    make_user(db, email="sam@example.com", role=Role.SALES_APPROVER)
    sign_in(client, "sam@example.com")
    lid = lead_id(db, "vera@example.com")
    page = client.get("/admin/leads")
    assert page.status_code == 200 and "vera@example.com" in page.text
    assert "Run in the background" not in page.text  # no bulk tools
    detail = client.get(f"/admin/leads/{lid}")
    assert detail.status_code == 200 and "Erase personal data" not in detail.text
    csrf = token(detail.text)
    assert client.post(f"/admin/leads/{lid}/suppress", data={"csrf_token": csrf}).status_code == 403


# --- search and pages ----------------------------------------------------------------------


def test_each_filter_finds_its_leads(signed_in, db, api, marketer):
    make_collateral(db)
    timing = sequence(marketer, "timing", reasons=("bad_timing",))
    reject(api, "ann@acme.example", company="Acme Robotics", reason="bad_timing")
    reject(api, "bob@globex.example", company="Globex", reason="no_budget",
           rep="rex@example.com")
    with db.session_scope() as session:
        upsert_lead(session, "cy@initech.example", {"company": "Initech", "owner_email":
                                                     "rex@example.com"}, now=utcnow())

    def found(**args):
        answer = signed_in.get("/admin/leads", query_string=args)
        assert answer.status_code == 200, answer.text
        return {e for e in ("ann@acme.example", "bob@globex.example", "cy@initech.example")
                if e in answer.text}

    assert found() == {"ann@acme.example", "bob@globex.example", "cy@initech.example"}
    assert found(q="an") == {"ann@acme.example"}
    assert found(q="BOB@globex.example") == {"bob@globex.example"}
    assert found(company="acme") == {"ann@acme.example"}
    assert found(stage="lead") == {"cy@initech.example"}
    assert found(stage="nurturing") == {"ann@acme.example", "bob@globex.example"}
    assert found(reason="no_budget") == {"bob@globex.example"}
    assert found(sequence=str(timing)) == {"ann@acme.example"}
    assert found(rep="rex@example.com") == {"bob@globex.example", "cy@initech.example"}
    assert found(band="cold") == {"ann@acme.example", "bob@globex.example", "cy@initech.example"}
    assert found(band="qualified") == set()
    assert found(q="nobody") == set()
    assert "No lead matches this search" in signed_in.get("/admin/leads?q=nobody").text


def test_the_list_pages_by_keyset_without_gaps_or_repeats(signed_in, db):
    now = utcnow()
    with db.session_scope() as session:
        for n in range(120):
            upsert_lead(session, f"lead{n:03}@example.com", {}, now=now + timedelta(seconds=n))
    for sort in ("newest", "email", "updated"):
        seen: list[str] = []
        url = f"/admin/leads?sort={sort}"
        pages = 0
        while url:
            answer = signed_in.get(url)
            assert answer.status_code == 200
            seen += re.findall(r'aria-label="Select (lead\d+@example\.com)"', answer.text)
            nxt = re.search(r'rel="next" href="([^"]+)"', answer.text)
            url = html.unescape(nxt.group(1)) if nxt else None
            pages += 1
        assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120, sort
        if sort == "email":
            assert seen == sorted(seen)
        else:
            assert seen == sorted(seen, reverse=True)
    first = signed_in.get("/admin/leads").text
    assert "120 leads match" in first


def test_the_count_stops_at_a_thousand_and_says_more(signed_in, db):
    now = utcnow()
    with db.engine.begin() as conn:
        conn.execute(Lead.__table__.insert(), [
            {"email": f"bulk{n:04}@example.com", "attributes": {}, "lifecycle_stage": "lead",
             "created_at": now, "updated_at": now} for n in range(1_002)])
    page = signed_in.get("/admin/leads").text
    assert "More than 1,000 leads match" in page and "showing 50" in page
    assert "1,002" not in page
    assert "2 leads match" in signed_in.get("/admin/leads?q=bulk100").text  # 1000 and 1001


@pytest.mark.parametrize(("args", "message"), [
    ({"after": "not-a-cursor!!"}, "this page link is damaged"),
    ({"after": "WyJlbWFpbCIsMSwxXQ"}, "this page link is damaged"),  # a cursor of another order
    ({"stage": "nope"}, "unknown value"),
    ({"reason": "<b>x</b>"}, "unknown value"),
    ({"band": "boiling"}, "unknown score band"),
    ({"sequence": "1 OR 1=1"}, "choose a sequence from the list"),
    ({"rep": "not an address"}, "give the rep&#39;s email address"),
    ({"sort": "random"}, "unknown order"),
    ({"q": "x" * 400}, "at most 320 characters"),
])
def test_a_malformed_filter_or_cursor_is_a_clear_400(signed_in, args, message):
    answer = signed_in.get("/admin/leads", query_string=args)
    assert answer.status_code == 400
    assert message in answer.text and "Nothing was searched" in answer.text
    assert "<b>x</b>" not in answer.text


# --- the lead page -------------------------------------------------------------------------


def build_history(db, api, marketer):
    """A lead with one of everything the timeline shows."""
    make_collateral(db)
    sequence(marketer, "timing", reasons=("bad_timing",))
    reject(api, "vp@acme.example", first_name="Vera", last_name="Price", title="VP Sales",
           company="Acme", industry="software", company_size=300)
    now = utcnow()
    with db.session_scope() as session:
        ensure_default_model(session, now=now)
        lead = session.execute(select(Lead).where(Lead.email == "vp@acme.example")).scalar_one()
        enrollment = session.execute(select(Enrollment).where(
            Enrollment.lead_id == lead.id)).scalar_one()
        message = Message(message_id="m-1", enrollment_id=enrollment.id, step_id="hello",
                          lead_id=lead.id, to_address=lead.email, subject="Your ROI guide",
                          status=MessageStatus.SENT, links={}, created_at=now, sent_at=now)
        session.add(message)
        session.flush()
        version = session.execute(select(CollateralVersion).join(Collateral)).scalars().first()
        session.add(MessageCollateral(message_id=message.id, collateral_version_id=version.id))
        human = EngagementEvent(lead_id=lead.id, message_id=message.id, type=EventType.CLICK,
                                occurred_at=now + timedelta(minutes=5), received_at=now,
                                source="tracking", url="https://acme.example/pricing",
                                properties={})
        robot = EngagementEvent(lead_id=lead.id, message_id=message.id, type=EventType.OPEN,
                                occurred_at=now + timedelta(minutes=1), received_at=now,
                                source="tracking", is_machine=True,
                                machine_reason="Apple Mail Privacy Protection", properties={})
        session.add_all([human, robot])
        session.flush()
        from nurture.scoring.lifecycle import active_model
        model = active_model(session)
        session.add(ScoreLedgerEntry(lead_id=lead.id, model_id=model.id, rule="pricing_page",
                                     points=20, event_id=human.id, occurred_at=human.occurred_at,
                                     recorded_at=now))
        handoff = Handoff(lead_id=lead.id, rep_email="rex@example.com", score={"total": 72},
                          qualified_at=now + timedelta(minutes=6),
                          sla_due_at=now + timedelta(hours=1), handoff_ms=40,
                          created_at=now + timedelta(minutes=6))
        session.add(handoff)
        session.flush()
        session.add(HandoffEvent(handoff_id=handoff.id, kind="created", rep_email="rex@example.com",
                                 at=now + timedelta(minutes=6)))
        session.add(Outcome(crm_outcome_id="opp-1", lead_id=lead.id, handoff_id=handoff.id,
                            kind=OutcomeKind.WON, amount=Decimal("12000"), currency="EUR",
                            occurred_at=now + timedelta(days=2), recorded_at=now))
        return lead.id


def test_the_lead_page_shows_profile_lifecycle_timeline_and_score(signed_in, db, api,
                                                                  marketer):
    lid = build_history(db, api, marketer)
    page = signed_in.get(f"/admin/leads/{lid}")
    assert page.status_code == 200
    text = page.text
    # profile and lifecycle
    assert "Vera Price" in text and "VP Sales" in text and "vp@acme.example" in text
    assert "Created as lead" in text or "cause: created" in text
    assert "rejected:bad timing" in text.replace("rejected:bad_timing", "rejected:bad timing")
    # the timeline: everything, in one list
    timeline = text.split('id="timeline-title"')[1].split('id="score-title"')[0]
    for expected in ("Rejected by sales: bad timing", "call later", "Enrolled in timing",
                     "Email sent: Your ROI guide", "Featured: ", "Clicked a link",
                     "https://acme.example/pricing", "+20 pts", "Machine: Apple Mail Privacy",
                     "Recycled to sales with a score of 72", "Won", "12,000.00 EUR"):
        assert expected in timeline, expected
    assert timeline.index("Won") < timeline.index("Recycled to sales") < timeline.index(
        "Clicked a link")  # newest first
    # the score explanation: the default model's fit rules this profile meets
    score = text.split('id="score-title"')[1]
    assert "senior title" in score and "icp industry" in score and "+15" in score
    assert "Recycled to sales at 60" in score


def test_an_unknown_lead_is_404_and_a_bad_older_link_says_so(signed_in, db, api):
    assert signed_in.get("/admin/leads/999999").status_code == 404
    assert signed_in.get("/admin/leads/99999999999999999999").status_code == 404
    reject(api, "vera@example.com")
    lid = lead_id(db, "vera@example.com")
    answer = signed_in.get(f"/admin/leads/{lid}?before=yesterday")
    assert answer.status_code == 302
    assert "link to older entries was damaged" in signed_in.get(answer.headers["Location"]).text


def test_stored_script_renders_inert_in_the_list_the_page_and_the_timeline(signed_in, db, api):
    answer = api.post("/api/v1/rejections", json={
        "lead": {"email": "eve@example.com", "first_name": SCRIPT, "company": IMG,
                 "title": SCRIPT}, "rep_email": "rita@example.com", "reason": "other",
        "note": SCRIPT})
    assert answer.status_code == 201
    lid = lead_id(db, "eve@example.com")
    with db.session_scope() as session:
        session.add(EngagementEvent(lead_id=lid, type=EventType.PAGE_VIEW, occurred_at=utcnow(),
                                    received_at=utcnow(), source="api",
                                    url=f"https://x.example/{SCRIPT}", properties={}))
    for path in ("/admin/leads", f"/admin/leads/{lid}"):
        text = signed_in.get(path).text
        assert SCRIPT not in text and IMG not in text, path
        assert "&lt;script&gt;" in text and "&lt;img src=x" in text, path
    timeline = signed_in.get(f"/admin/leads/{lid}").text.split('id="timeline-title"')[1]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in timeline


# --- actions on one lead -------------------------------------------------------------------


def test_enroll_remove_and_suppress_from_the_lead_page(signed_in, db, api, marketer):
    make_collateral(db)
    other = sequence(marketer, "budget", reasons=("no_budget",))
    reject(api, "vera@example.com")  # taken by no sequence: bad_timing
    lid = lead_id(db, "vera@example.com")
    page = signed_in.get(f"/admin/leads/{lid}").text
    csrf = token(page)
    answer = signed_in.post(f"/admin/leads/{lid}/enroll",
                            data={"csrf_token": csrf, "enroll-sequence": str(other)})
    assert answer.status_code == 302
    with db.session_scope() as session:
        enrollment = session.execute(select(Enrollment).where(Enrollment.lead_id == lid)
                                     ).scalar_one()
        assert enrollment.status == EnrollmentStatus.ACTIVE
    page = signed_in.get(f"/admin/leads/{lid}").text
    assert "Enrolled: the first step runs" in page and "in budget" in page
    again = signed_in.post(f"/admin/leads/{lid}/enroll",
                           data={"csrf_token": csrf, "enroll-sequence": str(other)})
    assert "Nothing changed: already enrolled in budget" in html.unescape(
        signed_in.get(again.headers["Location"]).text)
    signed_in.post(f"/admin/leads/{lid}/remove", data={"csrf_token": csrf, "sequence": str(other)})
    with db.session_scope() as session:
        enrollment = session.get(Enrollment, enrollment.id)
        assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED, "removed")
    signed_in.post(f"/admin/leads/{lid}/suppress", data={"csrf_token": csrf})
    with db.session_scope() as session:
        assert session.execute(select(Suppression.reason).where(
            Suppression.email == "vera@example.com")).scalar_one() == "manual"
    refused = signed_in.post(f"/admin/leads/{lid}/enroll",
                             data={"csrf_token": csrf, "enroll-sequence": str(other)})
    assert "the lead&#39;s address is suppressed" in signed_in.get(refused.headers["Location"]).text


def test_posts_without_a_csrf_token_are_400_and_change_nothing(signed_in, db, api,
                                                               marketer, count):
    make_collateral(db)
    other = sequence(marketer, "budget", reasons=("no_budget",))
    reject(api, "vera@example.com")
    lid = lead_id(db, "vera@example.com")
    for path, data in ((f"/admin/leads/{lid}/enroll", {"enroll-sequence": str(other)}),
                       (f"/admin/leads/{lid}/suppress", {}),
                       (f"/admin/leads/{lid}/erase", {"confirm": "vera@example.com"}),
                       ("/admin/leads/bulk", {"action": "enroll", "sequence": str(other),
                                              "lead_ids": str(lid)}),
                       ("/admin/leads/import", {})):
        answer = signed_in.post(path, data=data)
        assert answer.status_code == 400, path
    assert count(Enrollment) == 0 and count(Suppression) == 0 and count(LeadTask) == 0
    assert lead_id(db, "vera@example.com") == lid  # not erased


def test_erase_asks_for_the_address_then_removes_the_personal_data(signed_in, db, api):
    reject(api, "vera@example.com", first_name="Vera", company="Acme")
    lid = lead_id(db, "vera@example.com")
    form = signed_in.get(f"/admin/leads/{lid}/erase")
    assert form.status_code == 200 and "cannot be undone" in form.text
    wrong = signed_in.post(f"/admin/leads/{lid}/erase",
                           data={"csrf_token": token(form.text), "confirm": "someone@example.com"})
    assert wrong.status_code == 400 and "not the lead&#39;s email address" in wrong.text
    assert lead_id(db, "vera@example.com") == lid
    done = signed_in.post(f"/admin/leads/{lid}/erase",
                          data={"csrf_token": token(form.text), "confirm": "Vera@Example.com"})
    assert done.status_code == 302
    page = signed_in.get(f"/admin/leads/{lid}").text
    assert "personal data erased" in page and "Vera" not in page and "Acme" not in page
    assert f"erased-{lid}@erased.invalid" in page


# --- bulk actions and import: background tasks with a real worker --------------------------


def test_bulk_enroll_runs_in_the_background_with_progress(signed_in, db, api, marketer, app,
                                                          monkeypatch, service_env):
    make_collateral(db)
    target = sequence(marketer, "budget", reasons=("no_budget",))
    for n in range(3):
        reject(api, f"l{n}@example.com")
    with db.session_scope() as session:
        upsert_lead(session, "held@example.com", {}, now=utcnow())
    ids = [lead_id(db, f"l{n}@example.com") for n in range(3)]
    csrf = token(signed_in.get("/admin/leads").text)
    answer = signed_in.post("/admin/leads/bulk", data={
        "csrf_token": csrf, "scope": "selected", "action": "enroll", "sequence": str(target),
        "lead_ids": [str(i) for i in ids]})
    assert answer.status_code == 302
    task = task_of(db)
    assert answer.headers["Location"] == f"/admin/leads/tasks/{task.id}"
    page = signed_in.get(answer.headers["Location"]).text
    assert "Waiting for a worker" in page and "Refresh to see the progress" in page
    assert signed_in.get(f"/admin/leads/tasks/{task.id}/status").json["status"] == "queued"
    run_worker(app, monkeypatch, service_env)
    state = signed_in.get(f"/admin/leads/tasks/{task.id}/status").json
    assert (state["status"], state["percent"], state["result"]["acted"]) == ("done", 100, 3)
    page = signed_in.get(f"/admin/leads/tasks/{task.id}").text
    assert "Finished." in page and "Enrolled" in page
    with db.session_scope() as session:
        assert session.execute(select(func.count()).select_from(Enrollment).where(
            Enrollment.sequence_id == target)).scalar_one() == 3
    # all matching the search, then removed: the same ones, one already out is skipped
    answer = signed_in.post("/admin/leads/bulk", data={
        "csrf_token": csrf, "scope": "matching", "q": "l", "action": "remove",
        "sequence": str(target)})
    run_worker(app, monkeypatch, service_env)
    task = task_of(db)
    assert task.status == LeadTaskStatus.DONE and task.result["acted"] == 3


def test_a_bulk_action_with_nothing_selected_says_so(signed_in, db, api, marketer, count):
    make_collateral(db)
    target = sequence(marketer, "budget", reasons=("no_budget",))
    csrf = token(signed_in.get("/admin/leads").text)
    answer = signed_in.post("/admin/leads/bulk", data={
        "csrf_token": csrf, "action": "enroll", "sequence": str(target)})
    assert "select at least one lead" in signed_in.get(answer.headers["Location"]).text
    answer = signed_in.post("/admin/leads/bulk", data={
        "csrf_token": csrf, "action": "enroll", "sequence": str(target), "lead_ids": "1; drop"})
    assert "The selection is damaged" in signed_in.get(answer.headers["Location"]).text
    assert count(LeadTask) == 0


GOOD = "email,first_name,company\nann@example.com,Ann,Acme\nbob@example.com,Bob,Globex\n"
ONE_BAD = GOOD + "not-an-address,Carl,Initech\n"


def upload(client, content: bytes, name="leads.csv", skip=False):
    csrf = token(client.get("/admin/leads/import").text)
    data = {"csrf_token": csrf, "file": (__import__("io").BytesIO(content), name)}
    if skip:
        data["skip_invalid"] = "y"
    return client.post("/admin/leads/import", data=data, content_type="multipart/form-data")


def test_a_csv_import_runs_in_the_background(signed_in, db, app, monkeypatch, service_env, count):
    answer = upload(signed_in, GOOD.encode())
    assert answer.status_code == 302
    assert count(Lead) == 0  # not yet: a worker imports it
    run_worker(app, monkeypatch, service_env)
    task = task_of(db)
    assert task.status == LeadTaskStatus.DONE and task.result["created"] == 2
    assert task.upload is None and task.report is None
    page = signed_in.get(f"/admin/leads/tasks/{task.id}").text
    assert "Leads created" in page and "Download the error report" not in page
    assert count(Lead) == 2


def test_an_invalid_row_rejects_the_file_with_a_downloadable_report(signed_in, db, app,
                                                                    monkeypatch, service_env,
                                                                    count):
    upload(signed_in, ONE_BAD.encode())
    run_worker(app, monkeypatch, service_env)
    task = task_of(db)
    assert task.status == LeadTaskStatus.FAILED and count(Lead) == 0
    page = signed_in.get(f"/admin/leads/tasks/{task.id}").text
    assert "Nothing imported: 1 of 3 rows invalid" in page
    report = signed_in.get(f"/admin/leads/tasks/{task.id}/errors.csv")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    assert "attachment" in report.headers["Content-Disposition"]
    lines = report.text.splitlines()
    assert lines[0] == "line,field,message" and lines[1].startswith("4,email,")
    # skipping invalid rows: the good ones are imported, the report lists the bad one
    upload(signed_in, ONE_BAD.encode(), skip=True)
    run_worker(app, monkeypatch, service_env)
    task = task_of(db)
    assert task.status == LeadTaskStatus.DONE and task.result["invalid"] == 1
    assert count(Lead) == 2 and task.report.splitlines()[1].startswith("4,email,")


@pytest.mark.parametrize(("content", "name", "message"), [
    (b"mail,name\nann@example.com,Ann\n", "leads.csv", "wrong header: no email column"),
    (b"email,favourite_colour\nann@example.com,red\n", "leads.csv", "unknown column"),
    ("email,company\nann@example.com,Caf\u00e9\n".encode("latin-1"), "leads.csv", "not UTF-8"),
    (b"\xff\xfee\x00m\x00", "leads.csv", "not UTF-8"),
    (b"email\nann@example.com\n", "leads.xlsx", "must be a .csv file"),
    (b"", "leads.csv", "choose a CSV file"),
])
def test_a_bad_csv_gets_a_clear_error_and_changes_nothing(signed_in, content, name, message,
                                                         count):
    answer = upload(signed_in, content, name)
    assert answer.status_code == 400
    assert message in answer.text
    assert count(LeadTask) == 0 and count(Lead) == 0


def test_an_oversized_csv_is_refused_with_its_size(signed_in, count):
    from nurture.leads.tasks import IMPORT_MAX_BYTES

    body = b"email\n" + b"a@example.com\n" * (IMPORT_MAX_BYTES // 14 + 1)
    answer = upload(signed_in, body)
    assert answer.status_code == 400 and "the browser takes up to 20 MB" in answer.text
    huge = upload(signed_in, body + b"x" * (128 * 1024))
    assert huge.status_code == 413
    assert count(LeadTask) == 0 and count(Lead) == 0
