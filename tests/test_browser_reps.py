"""The rep's inbox in a real browser, on a phone: Chromium (Playwright) against `nurture serve`
with a real worker and dispatcher. A lead rejected with no_budget qualifies again through
events, the worker recycles it to its rep, who reads why on a 375 × 812 screen and rejects it
with no_budget and a note: the lead is back in the budget sequence. Another rep gets 404 for it.
No horizontal scroll at 375 px; axe-core at phone and desktop widths."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from campaigns.intake import reject_lead
from nurture.accounts.services import create_user
from nurture.clock import utcnow
from nurture.handoffs import services
from nurture.models import Enrollment, EnrollmentStatus, Handoff, Lead, RejectionReason, Role
from tests.browser import Watched, accessibility_problems, launch, require_chromium, screenshot
from tests.conftest import Api
from tests.test_api_sequences import make_collateral
from tests.test_drip_e2e import System
from tests.test_processes import wait_until
from tests.test_routing import sequence
from tests.test_scoring_models import DOCUMENT

PASSWORD = "correct horse battery"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}

VERA = {"email": "vera.lind@acme-logistics.example", "first_name": "Vera", "last_name": "Lind",
        "title": "VP Engineering", "industry": "logistics", "company_size": 420, "country": "DE",
        "company": "Acme Logistics", "timezone": "Europe/Berlin", "source": "webinar",
        "attributes": {"phone": "+49 30 5550 1234"}}

OTHERS = [  # (fields, reason, note, days since the rejection, what happened since)
    ({"email": "jonas.becker@nordwind.example", "first_name": "Jonas", "last_name": "Becker",
      "title": "Head of Operations", "company": "Nordwind GmbH", "country": "DE"},
     RejectionReason.BAD_TIMING, "Call again after their ERP migration", 95, "escalated"),
    ({"email": "priya.shah@brightpath.example", "first_name": "Priya", "last_name": "Shah",
      "title": "Director of Finance", "company": "Brightpath", "country": "GB"},
     RejectionReason.NO_AUTHORITY, "Needs the CFO on the call", 120, "open"),
    ({"email": "tom.evans@fieldwork.example", "first_name": "Tom", "last_name": "Evans",
      "title": "CTO", "company": "Fieldwork", "country": "US"},
     RejectionReason.NO_NEED, None, 150, "accepted"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def served(service_env, app, tmp_path_factory) -> Iterator[System]:
    """`nurture serve`, a worker and a dispatcher for the module, with a real SMTP server."""
    require_chromium()
    from aiosmtpd.controller import Controller

    from nurture.embedded_redis import free_port
    from tests.conftest import SmtpSink

    controller = Controller(SmtpSink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    system = System(service_env, f"smtp://127.0.0.1:{controller.port}",
                    tmp_path_factory.mktemp("serve-reps"))
    try:
        system.start("serve", "worker", "dispatcher")
        yield system
    finally:
        system.stop()
        controller.stop()


def open_page(browser, viewport) -> tuple[Any, Watched]:
    context = browser.new_context(viewport=viewport, locale="en-GB", timezone_id="Europe/Berlin",
                                  device_scale_factor=2 if viewport is PHONE else 1,
                                  is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    return context, Watched(context.new_page())


def make_user(db, email, role, name, *, timezone="Europe/Berlin", team=None):
    with db.session_scope() as session:
        user = create_user(session, email, role, password=PASSWORD, name=name,
                           timezone=timezone, now=utcnow() - timedelta(days=400))
        user.team = team


def sign_in(page, url, email):
    page.goto(f"{url}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def no_horizontal_scroll(page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide at 375 px"


def other_handoffs(db) -> None:
    """Rita's earlier recycled leads, so the inbox looks like a working day."""
    now = utcnow()
    for fields, reason, note, days, state in OTHERS:
        with db.session_scope() as session:
            intake = reject_lead(session, fields["email"], fields, rep_email="rita@example.com",
                                 reason=reason, note=note, rejected_at=now - timedelta(days=days),
                                 now=now - timedelta(days=days))
            at = now - timedelta(hours=3 if state == "accepted" else 0.3)
            score = {"total": 68, "fit": 30, "engagement": 38, "model_version": 1, "explanation": [
                {"rule": "pricing_page", "points": 15, "at": at.isoformat()},
                {"rule": "case_study", "points": 10, "at": at.isoformat()}]}
            handoff = services.recycle(session, intake.lead_id, score=score, model_version_id=None,
                                       qualifying_event_id=None, qualified_at=at, now=at)
            assert handoff is not None
            if state == "escalated":  # reminded once; the next step is a while off
                handoff.escalations = 1
                handoff.sla_due_at = now - timedelta(minutes=12)
                handoff.next_sla_at = now + timedelta(hours=2)
            if state == "accepted":
                services.accept(session, handoff.id,
                                actor=services.Actor("rita@example.com", Role.REP),
                                now=at + timedelta(minutes=4))


TITLES = {"customer-story-logistics": "How Nordhafen cut onboarding time by 40%",
          "roi-calculator": "ROI calculator: onboarding costs",
          "planning-guide": "The 2027 planning guide"}


def collateral_titles(db) -> dict[str, int]:
    """Collateral with the titles a marketer would give it; key → version id."""
    from nurture.models import Collateral, CollateralVersion

    with db.session_scope() as session:
        ids = {}
        for version, key in session.execute(select(CollateralVersion, Collateral.key).join(
                Collateral, Collateral.id == CollateralVersion.collateral_id)).all():
            version.title = TITLES.get(key, version.title)
            ids[key] = version.id
        return ids


def collateral_engagement(db, lead_id, titles) -> None:
    """What the lead did with the nurture emails' collateral (tracked clicks and a download)."""
    from nurture.models import EngagementEvent, EventType

    now = utcnow()
    with db.session_scope() as session:
        for n, (key, kind, days) in enumerate((
                ("customer-story-logistics", EventType.CLICK, 9),
                ("roi-calculator", EventType.CONTENT_DOWNLOAD, 3))):
            session.add(EngagementEvent(
                lead_id=lead_id, type=kind, occurred_at=now - timedelta(days=days),
                received_at=now, source="tracking", source_event_id=f"demo-{n}",
                url=f"https://cdn.example.com/{key}", collateral_version_id=titles[key],
                properties={}, handled_at=now, scored_at=now))


def test_a_rep_on_a_phone_reads_why_a_lead_is_back_and_rejects_it_to_the_budget_sequence(
        browser, served, app, db, make_token):
    system = served
    client = app.test_client()
    admin = Api(client, make_token(Role.ADMIN, "admin"))
    marketer = Api(client, make_token(Role.MARKETER, "marketer"))
    sales = Api(client, make_token(Role.SALES_APPROVER, "sales"))
    make_user(db, "rita@example.com", Role.REP, "Rita Reyes", team="DACH")
    make_user(db, "otto@example.com", Role.REP, "Otto Rep", timezone="America/New_York")
    make_collateral(db)
    titles = collateral_titles(db)
    budget = sequence(marketer, "budget", reasons=("no_budget",))
    other_handoffs(db)

    # rejected with no_budget two months ago: nurtured by the budget sequence
    rejected = admin.post("/api/v1/rejections", json={
        "lead": VERA, "rep_email": "rita@example.com", "reason": "no_budget",
        "note": "Budget frozen until the new fiscal year",
        "rejected_at": (utcnow() - timedelta(days=62)).isoformat()})
    assert rejected.status_code == 201, rejected.json
    lead_id = rejected.json["lead"]["id"]
    collateral_engagement(db, lead_id, titles)
    # the default model, approved by both sides and active; then qualifying events
    model_id = marketer.post("/api/v1/scoring/models", json=DOCUMENT).json["id"]
    assert marketer.post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert sales.post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert admin.post(f"/api/v1/scoring/models/{model_id}/activate").status_code == 200
    now = utcnow()
    events = admin.post("/api/v1/events", json={"events": [
        {"id": "w-1", "email": VERA["email"], "type": "webinar_attended",
         "occurred_at": (now - timedelta(days=2)).isoformat(),
         "properties": {"title": "Cutting onboarding costs"}},
        {"id": "w-3", "email": VERA["email"], "type": "form_submit",
         "occurred_at": now.isoformat(), "properties": {"form": "Talk to sales"}},
    ]})
    assert events.status_code == 202, events.json

    def recycled() -> int | None:
        with db.session_scope() as session:
            return session.execute(select(Handoff.id).where(
                Handoff.lead_id == lead_id)).scalar_one_or_none()

    handoff_id = wait_until(recycled, 90, "the worker to recycle the lead to sales")

    # Rita, on her phone
    context, watched = open_page(browser, PHONE)
    try:
        p = watched.page
        sign_in(p, system.url, "rita@example.com")
        p.wait_for_url(f"{system.url}/reps/")
        assert p.get_by_role("heading", name="Your inbox").is_visible()
        item = p.get_by_role("link", name=re.compile("Vera Lind"))
        assert item.is_visible()
        assert "left" in item.inner_text() or "overdue" in item.inner_text()
        assert p.get_by_text("Escalated").first.is_visible()
        no_horizontal_scroll(p)
        assert accessibility_problems(p) == []
        screenshot(p, "rep-inbox-phone")

        # every target a thumb can hit: the filters and the list items are at least 44 px
        for box in [p.get_by_role("link", name=re.compile("^Open")).bounding_box(),
                    item.bounding_box()]:
            assert box is not None and box["height"] >= 44

        item.click()
        p.wait_for_url(f"{system.url}/reps/handoffs/{handoff_id}")
        why = p.locator("section", has=p.get_by_role("heading", name="Why now"))
        assert re.search(r"\+\d+\s*attended the webinar 'Cutting onboarding costs', 2 days ago",
                         why.inner_text())
        assert "filled in the form 'Talk to sales', just now" in why.inner_text()
        came_back = p.locator("section", has=p.get_by_role("heading", name="It came back from"))
        assert "Budget frozen until the new fiscal year" in came_back.inner_text()
        assert "rita@example.com" in came_back.inner_text()
        no_horizontal_scroll(p)
        assert accessibility_problems(p) == []
        screenshot(p, "rep-card-phone")

        collateral = p.locator("section", has=p.get_by_role("heading", name="Collateral it saw"))
        assert "How Nordhafen cut onboarding time by 40%" in collateral.inner_text()
        story = collateral.locator("li", has_text="How Nordhafen")
        story.get_by_text("Add a note for its author").click()
        story.get_by_label("Note for its author (optional)").fill("Exactly their situation")
        story.get_by_role("button", name="Useful", exact=True).click()
        p.wait_for_url(re.compile(rf".*/reps/handoffs/{handoff_id}#collateral$"))
        assert "You said: useful" in p.locator("section", has=p.get_by_role(
            "heading", name="Collateral it saw")).inner_text()

        p.get_by_label("Reason").select_option("no_budget")
        p.get_by_label("Note on the lead").fill("Still no budget: their CFO says Q3 at the earliest")
        p.get_by_role("button", name="Reject and return to nurture").click()
        p.wait_for_url(f"{system.url}/reps/handoffs/{handoff_id}")
        flash = p.get_by_role("status").first
        assert "back in nurture, in the sequence 'budget'" in flash.inner_text()
        assert p.get_by_text("Still no budget: their CFO says Q3").is_visible()
        no_horizontal_scroll(p)
        assert accessibility_problems(p) == []
        screenshot(p, "rep-card-rejected-phone")
        assert watched.errors == []  # no CSP refusal, no script error
    finally:
        context.close()

    with db.session_scope() as session:
        assert session.get(Lead, lead_id).lifecycle_stage.value == "nurturing"
        live = session.execute(select(Enrollment).where(
            Enrollment.lead_id == lead_id,
            Enrollment.status == EnrollmentStatus.ACTIVE)).scalar_one()
        assert live.sequence_id == budget

    # another rep cannot open that lead, by the card's address or the lead's
    context, watched = open_page(browser, PHONE)
    try:
        p = watched.page
        sign_in(p, system.url, "otto@example.com")
        p.wait_for_url(f"{system.url}/reps/")
        assert p.get_by_text("Vera Lind").count() == 0
        for path in (f"/reps/handoffs/{handoff_id}", f"/reps/leads/{lead_id}"):
            answer = p.goto(f"{system.url}{path}")
            assert answer is not None and answer.status == 404
            assert p.get_by_text("Vera").count() == 0
    finally:
        context.close()

    # Rita leads her team: the team's inbox, on the phone, and a reassignment
    make_user(db, "mia@example.com", Role.REP, "Mia Wagner", team="DACH")
    with db.session_scope() as session:
        from nurture.models import User

        session.execute(select(User).where(User.email == "rita@example.com")).scalar_one() \
            .team_lead = True
        intake = reject_lead(session, "lukas.braun@kessler.example", {
            "first_name": "Lukas", "last_name": "Braun", "title": "Head of IT",
            "company": "Kessler Maschinenbau", "country": "AT"}, rep_email="mia@example.com",
            reason=RejectionReason.BAD_TIMING, rejected_at=utcnow() - timedelta(days=100),
            now=utcnow() - timedelta(days=100))
        mias = services.recycle(session, intake.lead_id, score={
            "total": 64, "fit": 25, "engagement": 39, "explanation": [
                {"rule": "demo_request", "points": 39, "at": utcnow().isoformat()}]},
            model_version_id=None, qualifying_event_id=None, qualified_at=utcnow(),
            now=utcnow())
        assert mias is not None
        mias_id = mias.id
    context, watched = open_page(browser, PHONE)
    try:
        p = watched.page
        sign_in(p, system.url, "rita@example.com")
        p.wait_for_url(f"{system.url}/reps/")
        p.get_by_role("link", name=re.compile("Team · DACH")).click()
        p.wait_for_url(re.compile(r".*/reps/\?team=1$"))
        assert p.get_by_role("heading", name="Team inbox").is_visible()
        assert p.get_by_text("Assigned to mia@example.com").is_visible()
        no_horizontal_scroll(p)
        assert accessibility_problems(p) == []
        screenshot(p, "rep-team-inbox-phone")
        p.get_by_role("link", name=re.compile("Lukas Braun")).click()
        p.wait_for_url(f"{system.url}/reps/handoffs/{mias_id}")
        p.get_by_label("Give it to").select_option("rita@example.com")
        p.get_by_role("button", name="Reassign").click()
        assert "Reassigned to rita@example.com" in p.get_by_role("status").first.inner_text()
        assert p.get_by_role("button", name="Accept: I will work this lead").is_visible()
        no_horizontal_scroll(p)
        assert accessibility_problems(p) == []
        assert watched.errors == []
    finally:
        context.close()

    # the same pages at a desk
    context, watched = open_page(browser, DESKTOP)
    try:
        p = watched.page
        sign_in(p, system.url, "rita@example.com")
        p.wait_for_url(f"{system.url}/reps/")
        assert accessibility_problems(p) == []
        screenshot(p, "rep-inbox-desktop")
        p.get_by_role("link", name=re.compile("Rejected")).first.click()
        p.wait_for_url(re.compile(r".*/reps/\?status=rejected$"))
        assert p.get_by_role("link", name=re.compile("Vera Lind")).is_visible()
        p.goto(f"{system.url}/reps/handoffs/{handoff_id}")
        assert accessibility_problems(p) == []
        screenshot(p, "rep-card-desktop")
        assert watched.errors == []
    finally:
        context.close()
