"""The sales approvers' queue and the scoring pages in a real browser (Chromium via Playwright
against `nurture serve`, a real SMTP server): a sales approver reads a collateral version's
diff, requests a change (the author gets the email), then approves the next version; a scoring
draft is written in the rules table, backtested, submitted by a marketer, approved by a sales
approver and activated. Every page passes axe-core at desktop and phone widths, with no CSP
refusal; the `approvals-queue` screenshot (the README's) is taken here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from campaigns import collateral as collateral_service
from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.handoffs import sla as slas
from nurture.models import CollateralStatus, CollateralVersion, Role, User
from nurture.scoring import lifecycle as models
from nurture.scoring.document import default_document
from tests.browser import Watched, accessibility_problems, launch, screenshot
from tests.test_admin_browser import (
    make_user,
    served,  # noqa: F401  (the module's server)
    sign_in,
)
from tests.test_processes import wait_until

MARA, SAM = "mara@example.com", "sam@example.com"
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def _page(browser: Any, viewport: dict[str, int]) -> Iterator[Watched]:
    context = browser.new_context(viewport=viewport, locale="en-GB")
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


@pytest.fixture()
def page(browser, served) -> Iterator[Watched]:  # noqa: F811
    yield from _page(browser, {"width": 1280, "height": 900})


@pytest.fixture()
def phone(browser, served) -> Iterator[Watched]:  # noqa: F811
    yield from _page(browser, PHONE)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def user_id(db, email):
    with db.session_scope() as session:
        from sqlalchemy import select

        return session.execute(select(User.id).where(User.email == email)).scalar_one()


def marketer(db) -> Actor:
    return Actor(email=MARA, role=Role.MARKETER, user_id=user_id(db, MARA))


def new_version(db, key, fields, *, first=False, approve_by=None):
    """A collateral version written and submitted by Mara (approved by `approve_by`)."""
    mara, now = marketer(db), utcnow()
    with db.session_scope() as session:
        if first:
            version = collateral_service.create_collateral(session, key, fields, actor=mara,
                                                           now=now)
        else:
            version = collateral_service.add_version(session, key, fields, actor=mara, now=now)
        collateral_service.transition(session, version.id, "submit", actor=mara, now=now)
        if approve_by:
            collateral_service.transition(session, version.id, "approve",
                                          actor=Actor(approve_by, Role.SALES_APPROVER), now=now)
        return version.id


def the_queue(db):
    """A morning's queue: two collateral versions (one expiring soon), a scoring draft and an
    SLA draft, all submitted by Mara."""
    make_user(db, MARA, Role.MARKETER, "Mara Marketing")
    make_user(db, SAM, Role.SALES_APPROVER, "Sam Sales")
    today = utcnow().date()
    new_version(db, "roi-guide", {"title": "ROI calculator guide",
                                  "url": "https://cdn.example.com/roi-guide-2026.pdf",
                                  "funnel_stage": "consideration", "personas": ["cfo"],
                                  "industries": ["software"]},
                first=True, approve_by="vera@example.com")
    guide = new_version(db, "roi-guide", {
        "title": "ROI calculator guide 2027", "url": "https://cdn.example.com/roi-guide-2027.pdf",
        "funnel_stage": "decision", "personas": ["cfo", "controller"],
        "industries": ["software", "fintech"], "expires_on": today + timedelta(days=365)})
    new_version(db, "webinar-onboarding", {
        "title": "Webinar recording: Cutting onboarding costs",
        "url": "https://video.example.com/onboarding-costs",
        "funnel_stage": "awareness", "expires_on": today + timedelta(days=14)}, first=True)
    now = utcnow()
    with db.session_scope() as session:
        models.ensure_default_model(session, now=now)
        data = default_document().as_data() | {"name": "B2B model, stronger pricing intent"}
        data["thresholds"] = {"total": 65, "fit": 15}
        model = models.create_model(session, data, actor=MARA, now=now)
        models.approve_model(session, model.id, actor=marketer(db), now=now)
        terms = slas.default_terms().document.as_data() | {"name": "Sales and marketing SLA 2027"}
        terms["first_action"] = {"within": "PT2H", "rules": [{"score_at_least": 80,
                                                              "within": "PT30M"}]}
        sla = slas.create_sla(session, terms, actor=MARA, now=now)
        slas.approve_sla(session, sla.id, actor=marketer(db), now=now)
    return guide, model.id, sla.id


def checked(p: Any, name: str | None = None) -> None:
    problems = accessibility_problems(p)
    assert problems == [], problems
    if name:
        screenshot(p, name)


def test_an_approver_requests_a_change_then_approves_the_next_version(page, served, db):  # noqa: F811
    system, sink = served
    guide, model_id, sla_id = the_queue(db)
    p = page.page
    sign_in(p, system.url, SAM)
    p.wait_for_url(f"{system.url}/admin/")
    p.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    expect(p.get_by_role("heading", name="Approvals", exact=True)).to_be_visible()
    items = p.locator("ol.queue > li")
    expect(items).to_have_count(4)
    expect(p.locator(".flag-expiring")).to_have_count(1)
    checked(p, "approvals-queue")

    p.get_by_role("link", name="Review ROI calculator guide 2027 v2").click()
    expect(p.get_by_role("heading", name=re.compile("ROI calculator guide 2027"))).to_be_visible()
    diff = p.locator("ul.diff")
    expect(diff.locator("del", has_text="ROI calculator guide")).to_be_visible()
    expect(diff.locator("ins", has_text="ROI calculator guide 2027")).to_be_visible()
    expect(diff.locator("ins", has_text="decision")).to_be_visible()
    checked(p, "approvals-collateral")

    p.get_by_label("What should change").fill("The 2027 prices are missing on page 4.")
    p.get_by_role("button", name="Request changes").click()
    p.wait_for_url(f"{system.url}/admin/approvals")
    expect(p.get_by_text("Sent “ROI calculator guide 2027” v2 back")).to_be_visible()
    expect(items).to_have_count(3)
    wait_until(lambda: any(m["To"] == MARA for m in sink.messages), 20, "the author's email")
    email = next(m for m in sink.messages if m["To"] == MARA)
    assert "The 2027 prices are missing" in email.get_body(("plain",)).get_content()

    # Mara sends a third version; Sam approves it
    third = new_version(db, "roi-guide", {
        "title": "ROI calculator guide 2027", "url": "https://cdn.example.com/roi-guide-2027b.pdf",
        "funnel_stage": "decision", "personas": ["cfo", "controller"]})
    p.reload()
    p.get_by_role("link", name="Review ROI calculator guide 2027 v3").click()
    expect(p.locator("ul.diff ins", has_text="roi-guide-2027b.pdf")).to_be_visible()
    p.get_by_role("button", name="Approve").click()
    p.wait_for_url(f"{system.url}/admin/approvals")
    expect(p.get_by_text("Approved “ROI calculator guide 2027” v3")).to_be_visible()
    with db.session_scope() as session:
        assert session.get(CollateralVersion, third).status == CollateralStatus.APPROVED
        assert session.get(CollateralVersion, guide).status == CollateralStatus.CHANGES_REQUESTED

    p.get_by_role("link", name="Your decisions").click()
    expect(p.locator("blockquote.comment", has_text="The 2027 prices are missing")).to_be_visible()
    checked(p, "approvals-history")

    p.goto(f"{system.url}/admin/approvals/scoring_model/{model_id}")
    expect(p.get_by_role("heading", name="The rules")).to_be_visible()
    checked(p, "approvals-scoring-draft")
    p.goto(f"{system.url}/admin/approvals/sla/{sla_id}")
    expect(p.get_by_role("heading", name="The terms")).to_be_visible()
    checked(p)
    assert page.errors == []


def engagement_history(api) -> None:
    """Four weeks of buyers: senior people at fitting companies who attend a webinar and look
    fill in a form (enough for either model), and some who only attend (60: not 65)."""
    now = utcnow()
    events = []
    for n in range(18):
        email = f"buyer{n}@company{n}.example"
        answer = api.post("/api/v1/leads", json={
            "email": email, "title": "VP Operations", "company": f"Company {n}",
            "industry": "software", "company_size": 250, "country": "DE"})
        assert answer.status_code in (200, 201), answer.json
        day = now - timedelta(days=27 - n * 1.5, hours=3)
        events.append({"id": f"w{n}", "email": email, "type": "webinar_attended",
                       "occurred_at": day.isoformat().replace("+00:00", "Z")})
        if n % 3:
            later = day + timedelta(hours=2)
            events.append({"id": f"f{n}", "email": email, "type": "form_submit",
                           "occurred_at": later.isoformat().replace("+00:00", "Z")})
    assert api.post("/api/v1/events", json={"events": events}).status_code == 202


def test_a_scoring_draft_is_approved_by_a_marketer_and_an_approver_and_activated(
        page, served, db, api):  # noqa: F811
    system, _ = served
    make_user(db, MARA, Role.MARKETER, "Mara Marketing")
    make_user(db, SAM, Role.SALES_APPROVER, "Sam Sales")
    with db.session_scope() as session:
        models.ensure_default_model(session, now=utcnow())
    engagement_history(api)
    p = page.page
    sign_in(p, system.url, MARA)
    p.wait_for_url(f"{system.url}/admin/")
    p.get_by_role("navigation", name="Main").get_by_role("link", name="Scoring & SLA").click()
    expect(p.get_by_text("Scoring model in force")).to_be_visible()
    checked(p, "scoring")

    p.get_by_role("link", name="New draft from v1").click()
    expect(p.get_by_role("heading", name="New scoring draft")).to_be_visible()
    checked(p, "scoring-editor")
    p.get_by_label("Name", exact=True).fill("Stronger pricing intent")
    p.get_by_label("Recycle at a total of").fill("65")
    # reorder in the page (scoring.js), then a rule with a bad value: the validator's message
    first = p.get_by_label("Rule name, fit rule 1", exact=True).input_value()
    p.get_by_role("button", name="Move fit rule 1 down").click()
    expect(p.get_by_label("Rule name, fit rule 2", exact=True)).to_have_value(first)
    p.get_by_label("Points, engagement rule 1", exact=True).fill("plenty")
    p.get_by_role("button", name="Save as a draft").first.click()
    error = p.locator("#engagement-0-points-error")
    expect(error).to_contain_text("Input should be a valid number")
    expect(p.get_by_label("Rule name, fit rule 2", exact=True)).to_have_value(first)  # the order is kept
    checked(p)
    p.get_by_label("Points, engagement rule 1", exact=True).fill("20")
    p.get_by_role("button", name="Save as a draft").first.click()
    expect(p.get_by_text("Saved as draft version 2")).to_be_visible()

    p.get_by_label("Days of history").fill("30")
    p.get_by_role("button", name="Run a backtest").click()
    expect(p.get_by_role("columnheader", name="Active (v1)")).to_be_visible()
    recycled = p.get_by_role("row", name=re.compile("^Leads recycled to sales"))
    expect(recycled).to_contain_text("-6")  # the six who only attended: recycled at 60, not 65
    expect(p.locator("svg.chart-svg rect.bar-model")).not_to_have_count(0)
    checked(p, "scoring-model")
    p.get_by_role("button", name="Submit to sales").click()
    expect(p.get_by_text("waits in the sales approvers' queue")).to_be_visible()
    model_url = p.url

    p.context.clear_cookies()
    sign_in(p, system.url, SAM)
    p.wait_for_url(f"{system.url}/admin/")
    p.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    p.get_by_role("link", name="Review Stronger pricing intent v2").click()
    expect(p.locator("ul.diff")).to_contain_text("Recycled at a total of")
    expect(p.get_by_role("columnheader", name="This draft (v2)")).to_be_visible()
    p.get_by_role("button", name="Approve").click()
    expect(p.get_by_text("both teams have signed, it can be activated")).to_be_visible()

    p.context.clear_cookies()
    sign_in(p, system.url, MARA)
    p.wait_for_url(f"{system.url}/admin/")
    p.goto(model_url)
    signatures = p.locator(".signature.signed")
    expect(signatures).to_have_count(2)
    expect(signatures.nth(1)).to_contain_text(SAM)
    p.get_by_role("button", name="Activate v2").click()
    expect(p.get_by_text("Scoring model version 2 is active (version 1 is retired)")).to_be_visible()
    p.get_by_role("link", name="Scoring & SLA").first.click()
    expect(p.locator(".active-card").first).to_contain_text("Stronger pricing intent")
    with db.session_scope() as session:
        assert models.active_model(session).version == 2
    assert page.errors == []


def test_every_page_passes_axe_on_a_phone(phone, served, db):  # noqa: F811
    system, _ = served
    guide, model_id, sla_id = the_queue(db)
    p = phone.page
    sign_in(p, system.url, SAM)
    p.wait_for_url(f"{system.url}/admin/")
    for path in ("/admin/approvals", f"/admin/approvals/collateral/{guide}",
                 f"/admin/approvals/scoring_model/{model_id}", f"/admin/approvals/sla/{sla_id}",
                 "/admin/approvals/history", "/admin/scoring",
                 f"/admin/scoring/models/{model_id}", f"/admin/scoring/slas/{sla_id}"):
        answer = p.goto(f"{system.url}{path}")
        assert answer is not None and answer.status == 200, path
        checked(p)
        width = p.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)  # no sideways scroll
    p.goto(f"{system.url}/admin/approvals")
    screenshot(p, "approvals-queue-phone")
    p.context.clear_cookies()
    sign_in(p, system.url, MARA)
    p.wait_for_url(f"{system.url}/admin/")
    for path in ("/admin/scoring/models/new", "/admin/scoring/slas/new"):
        p.goto(f"{system.url}{path}")
        checked(p)
    assert phone.errors == []
