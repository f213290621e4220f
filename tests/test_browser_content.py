"""Email templates and collateral in a real browser: Chromium (Playwright) against
`nurture serve` on a real port. A marketer edits a template, sees the error at its line,
fixes it and reads the preview at both widths; uploads a collateral file and submits it for
sales approval, then reads the approver's comment. axe-core on every page; no console or CSP
error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from campaigns import collateral as collateral_service
from nurture.accounts.services import Actor, create_user
from nurture.clock import utcnow
from nurture.models import CollateralVersion, Role
from tests.browser import Watched, accessibility_problems, launch, require_chromium, screenshot
from tests.test_drip_e2e import System

PASSWORD = "correct horse battery"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def served(service_env, app, tmp_path_factory) -> Iterator[System]:
    require_chromium()
    system = System(service_env, "smtp://127.0.0.1:9", tmp_path_factory.mktemp("serve"))
    try:
        system.start("serve")
        yield system
    finally:
        system.stop()


@pytest.fixture()
def page(browser, served) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def signed_in(p, url, db, email="mara@example.com", role=Role.MARKETER, name="Mara Marketing"):
    with db.session_scope() as session:
        create_user(session, email, role, password=PASSWORD, name=name, now=utcnow())
    p.goto(f"{url}/")
    p.get_by_label("Email").fill(email)
    p.get_by_label("Password").fill(PASSWORD)
    p.get_by_role("button", name="Sign in").click()
    p.wait_for_url(f"{url}/admin/")


def no_accessibility_problems(p) -> None:
    assert accessibility_problems(p) == []


def test_a_marketer_edits_a_template_sees_the_error_at_its_line_and_fixes_it(page, served, db):
    from playwright.sync_api import expect

    p = page.page
    signed_in(p, served.url, db)
    p.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    p.wait_for_url(f"{served.url}/admin/templates")
    expect(p.get_by_role("heading", name="Email templates")).to_be_visible()
    no_accessibility_problems(p)
    screenshot(p, "templates-list")

    p.get_by_role("link", name="check-in", exact=True).click()
    p.wait_for_url(f"{served.url}/admin/templates/check-in")
    frame = p.frame_locator("iframe[title='Email preview at desktop width']")
    expect(frame.locator("body")).to_contain_text("Sam")
    no_accessibility_problems(p)
    screenshot(p, "template-edit")

    html = p.get_by_label("HTML body")
    broken = ("<p>Hi {{ lead.first_name }},</p>\n<p>Budgets thaw in spring.</p>\n"
              "<p>{% if lead.company %}We saved a seat for {{ lead.company }}.</p>\n")
    html.fill(broken)
    p.get_by_role("button", name="Save template").click()
    problems = p.locator(".problems")
    expect(problems).to_contain_text("HTML, line 3")
    expect(p.locator(".excerpt-here")).to_contain_text("{% if lead.company %}")
    expect(p.locator("#html-error")).to_contain_text("Line 3")
    assert p.get_by_label("HTML body").input_value().startswith("<p>Hi {{ lead.first_name }}")
    no_accessibility_problems(p)
    screenshot(p, "template-error-at-line")

    # the error's link puts the cursor on that line (the page's own script)
    p.get_by_role("link", name="HTML, line 3").click()
    expect(p.get_by_label("HTML body")).to_be_focused()
    selected = p.get_by_label("HTML body").evaluate(
        "a => a.value.substring(a.selectionStart, a.selectionEnd)")
    assert selected == "<p>{% if lead.company %}We saved a seat for {{ lead.company }}.</p>"

    p.get_by_label("HTML body").fill(broken.replace("{{ lead.company }}.</p>", "{{ lead.company }}.{% endif %}</p>"))
    p.get_by_label("Subject").fill("Budgets thaw, {{ lead.first_name }}")
    p.get_by_role("button", name="Save template").click()
    expect(p.get_by_text("Saved revision 1 of check-in")).to_be_visible()
    expect(p.locator(".inbox-line")).to_contain_text("Budgets thaw, Sam")
    expect(frame.locator("body")).to_contain_text("We saved a seat for Example Corp.")
    p.get_by_role("button", name="Phone").click()
    expect(p.locator("iframe[title='Email preview at phone width']")).to_be_visible()
    expect(p.locator("iframe[title='Email preview at desktop width']")).to_be_hidden()
    phone = p.frame_locator("iframe[title='Email preview at phone width']")
    expect(phone.locator("body")).to_contain_text("Budgets thaw in spring.")
    width = p.locator("iframe[title='Email preview at phone width']").bounding_box()
    assert width is not None and width["width"] <= 375
    no_accessibility_problems(p)
    screenshot(p, "template-saved-phone-preview")
    p.set_viewport_size({"width": 390, "height": 844})  # the editor on a phone
    expect(p.get_by_role("button", name="Save template")).to_be_visible()
    no_accessibility_problems(p)
    screenshot(p, "template-edit-on-a-phone")
    assert page.errors == []  # no CSP refusal, no script error


def test_a_new_template_page_passes_axe(page, served, db):
    p = page.page
    signed_in(p, served.url, db)
    p.goto(f"{served.url}/admin/templates/new")
    no_accessibility_problems(p)
    screenshot(p, "template-new")


def test_a_marketer_uploads_collateral_submits_it_and_reads_the_approvers_comment(
        page, served, db, tmp_path):
    from playwright.sync_api import expect

    p = page.page
    signed_in(p, served.url, db)
    p.get_by_role("navigation", name="Main").get_by_role("link", name="Collateral").click()
    expect(p.get_by_role("heading", name="No collateral yet")).to_be_visible()
    no_accessibility_problems(p)
    screenshot(p, "collateral-empty")

    p.get_by_role("link", name="Add collateral").first.click()
    p.wait_for_url(f"{served.url}/admin/collateral/new")
    no_accessibility_problems(p)
    # a wrong file first: refused beside the field, nothing stored
    wrong = tmp_path / "notes.txt"
    wrong.write_text("not a deck")
    p.get_by_label("Title").fill("Logistics ROI benchmark 2027")
    p.get_by_label("Key").fill("roi-benchmark")
    p.get_by_label("File", exact=True).set_input_files(str(wrong))
    p.get_by_role("button", name="Add as a draft").click()
    expect(p.locator("#file-error")).to_contain_text("is not one of")
    expect(p.get_by_label("Title")).to_have_value("Logistics ROI benchmark 2027")
    no_accessibility_problems(p)
    screenshot(p, "collateral-refused-file")

    guide = tmp_path / "roi-benchmark.pdf"
    guide.write_bytes(PDF)
    p.get_by_label("File", exact=True).set_input_files(str(guide))
    p.get_by_label("Funnel stage").select_option("decision")
    p.get_by_label("Personas").fill("CFO, Head of Logistics")
    p.get_by_label("Industries").fill("Logistics, Retail")
    p.get_by_label("Expires on").fill("2030-06-30")
    p.get_by_role("button", name="Add as a draft").click()
    p.wait_for_url(f"{served.url}/admin/collateral/roi-benchmark")
    expect(p.get_by_text("added as a draft")).to_be_visible()
    p.get_by_label("Note for the approvers (optional)").fill("For the Q1 logistics push")
    p.get_by_role("button", name="Submit version 1 for sales approval").click()
    expect(p.get_by_text("is with sales for approval")).to_be_visible()
    expect(p.locator(".version .status").first).to_have_text("submitted")

    with db.session_scope() as session:  # sales decides in its queue (issue #9) or the API
        version_id = session.query(CollateralVersion).one().id
        collateral_service.transition(
            session, version_id, "request_changes",
            actor=Actor(email="sal@example.com", role=Role.SALES_APPROVER),
            comment="Use the 2027 figures on page 3.", now=utcnow())
    p.reload()
    timeline = p.locator(".timeline")
    expect(timeline).to_contain_text("changes requested by sal@example.com")
    expect(timeline).to_contain_text("Use the 2027 figures on page 3.")
    expect(timeline).to_contain_text("For the Q1 logistics push")
    no_accessibility_problems(p)
    screenshot(p, "collateral-item")

    p.get_by_role("link", name="Collateral", exact=True).first.click()
    row = p.get_by_role("row", name=re.compile("Logistics ROI benchmark 2027"))
    expect(row).to_contain_text("changes requested")
    expect(row).to_contain_text("decision")
    no_accessibility_problems(p)
    screenshot(p, "collateral-list")
    p.set_viewport_size({"width": 390, "height": 844})
    p.get_by_role("link", name="Logistics ROI benchmark 2027").click()
    no_accessibility_problems(p)
    screenshot(p, "collateral-item-on-a-phone")
    assert page.errors == []
