"""The sequence builder in a real browser (Chromium via Playwright against `nurture serve`):
a marketer builds a two-stage sequence with a short wait, an email featuring collateral and a
branch; activation is refused on the step while the collateral is unapproved; the collateral
is approved through the CLI; the sequence activates. Live validation, drag and keyboard
reordering, the preview at both widths, a test send, versions and YAML; axe on every page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from campaigns import collateral as collateral_service
from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.models import ReportCount, Role, Sequence
from tests import test_admin_browser
from tests.browser import Watched, accessibility_problems, launch, screenshot
from tests.test_admin_browser import make_user, sign_in
from tests.test_processes import wait_until

PASSWORD = "correct horse battery"

served = test_admin_browser.served
"""`nurture serve` for the module, with a real SMTP server (the admin's browser tests' own)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture()
def page(browser, served) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def submitted_collateral(db, key: str, title: str, *, submit: bool = True) -> int:
    """A collateral version submitted to sales (or left a draft), not approved yet; returns
    its version id."""
    marketer = Actor(email="mara@example.com", role=Role.MARKETER)
    with db.session_scope() as session:
        version = collateral_service.create_collateral(
            session, key, {"title": title, "url": f"https://cdn.example.com/{key}.pdf"},
            actor=marketer, now=utcnow())
        if submit:
            collateral_service.transition(session, version.id, "submit", actor=marketer,
                                          now=utcnow())
        return version.id


def field(p, name: str) -> Any:
    return p.locator(f'[name="{name}"]')


def test_a_marketer_builds_a_sequence_sees_activation_refused_then_activates(
        page, served, db, runner):
    system, sink = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    version_id = submitted_collateral(db, "planning-guide", "The 2027 planning guide")
    submitted_collateral(db, "draft-only", "A draft nobody submitted", submit=False)
    p = page.page
    sign_in(p, system.url, "mara@example.com")
    p.wait_for_url(f"{system.url}/admin/")
    p.goto(f"{system.url}/admin/sequences")
    assert accessibility_problems(p) == []
    p.get_by_role("link", name="New sequence").click()
    p.wait_for_url(f"{system.url}/admin/sequences/new")
    assert accessibility_problems(p) == []

    # who it takes
    field(p, "key").fill("timing-check-in")
    field(p, "name").fill("Bad timing: check in")
    p.get_by_label("bad timing").check()
    # stage 1: the email features the collateral awaiting approval, a short wait
    p.locator("#step-first-email summary").click()
    picker = p.locator("#step-first-email")
    expect(picker.get_by_text("awaiting sales approval")).to_be_visible()
    expect(picker.locator(".unpickable")).to_contain_text("A draft nobody submitted")
    expect(picker.locator('input[value="draft-only"]')).to_have_count(0)  # cannot be picked
    picker.locator('input[value="planning-guide"]').check()
    # live validation: the validator's message and path, on the field, as one types
    wait = field(p, "stages[0].steps[1].wait.duration")
    wait.fill("ten minutes")
    error = p.locator('[data-errors-for="stages[0].steps[1].wait.duration"]')
    expect(error).to_contain_text("stages[0].steps[1].wait.duration")
    expect(error).to_contain_text("not an ISO 8601 duration")
    expect(wait).to_have_attribute("aria-invalid", "true")
    wait.fill("PT10M")
    expect(error).to_be_empty()
    expect(p.locator("#live-status")).to_contain_text("No problems")
    # the exit goes; a second stage with an email and the exit; a branch in the first
    p.get_by_role("button", name="Remove done").click()
    p.get_by_role("button", name="+ Add a stage").click()
    field(p, "stages[1].name").fill("Prove")
    field(p, "stages[1].key").fill("prove")
    field(p, "stages[1].add").select_option("email")
    p.get_by_role("button", name="Add step").nth(1).click()
    field(p, "stages[1].steps[1].email.id").fill("case-study")
    field(p, "stages[1].steps[1].email.template").select_option("case-study")
    field(p, "stages[1].add").select_option("exit")
    p.get_by_role("button", name="Add step").nth(1).click()
    field(p, "stages[0].add").select_option("branch")
    p.get_by_role("button", name="Add step").nth(0).click()
    branch = p.locator('[data-card="stages[0].steps[2]"]')
    expect(branch.get_by_text("Yes")).to_be_visible()
    expect(branch.get_by_text("No", exact=True)).to_be_visible()
    field(p, "stages[0].steps[2].branch.condition.engaged").select_option("click")
    field(p, "stages[0].steps[2].branch.then").select_option("case-study")
    field(p, "stages[0].steps[2].branch.condition.within").fill("PT10M")
    # keyboard: the second stage's wait moves above its email with the arrow button
    first_wait = p.locator('[data-card="stages[1].steps[0]"]')
    assert "wait" in (first_wait.get_attribute("class") or "")
    move_down = first_wait.locator('[data-move="down"]')
    move_down.focus()
    p.keyboard.press("Enter")
    expect(p.locator('[data-card="stages[1].steps[1]"]')).to_have_class(re.compile("card-wait"))
    expect(p.locator('[data-card="stages[1].steps[0]"]')).to_have_class(re.compile("card-email"))
    # the branch's "No" path follows the new order: the next step is now the email
    otherwise = field(p, "stages[0].steps[2].branch.else")
    expect(otherwise.locator("option").first).to_have_text("the next step (case-study)")
    assert accessibility_problems(p) == []
    screenshot(p, "builder-new")
    p.get_by_role("button", name="Save the sequence").click()
    p.wait_for_url(re.compile(r"/admin/sequences/\d+$"))
    expect(p.get_by_text("Saved as version 1")).to_be_visible()
    with db.session_scope() as session:
        sequence = session.query(Sequence).filter_by(key="timing-check-in").one()
        sequence_id = sequence.id
    steps = [c.get_attribute("id") for c in p.locator("[data-card]").all()]
    assert steps[:2] == ["step-first-email", "step-after-first-email"]
    assert steps[2].startswith("step-branch-")
    assert steps[3] == "step-case-study"

    # activation refused, the reason on the step that features the collateral
    p.get_by_role("button", name="Activate version 1").click()
    expect(p.get_by_text("Not activated")).to_be_visible()
    problem = p.locator("#step-first-email .card-problem")
    expect(problem).to_contain_text("not approved by sales")
    assert accessibility_problems(p) == []
    screenshot(p, "builder-refused")

    # sales approves through the CLI; activation goes through
    result = runner.invoke(args=["collateral", "review", str(version_id), "approve",
                                 "--as-role", "sales_approver", "--by", "sam@example.com"])
    assert result.exit_code == 0, result.output
    p.reload()
    expect(p.locator("#step-first-email .card-problem")).to_have_count(0)
    p.get_by_role("button", name="Activate version 1").click()
    expect(p.get_by_text("Active: new enrollments use this version")).to_be_visible()
    expect(p.locator("h1 .status")).to_have_text("active")

    # the preview at both widths, and a test send to oneself
    p.get_by_role("link", name="Preview & test send").first.click()
    expect(p.get_by_role("heading", name=re.compile("Preview of"))).to_be_visible()
    desktop = p.frame_locator("iframe.frame-desktop")
    expect(desktop.get_by_text("The 2027 planning guide").first).to_be_visible()
    assert p.locator("iframe.frame-desktop").bounding_box()["width"] == 1000
    assert p.locator("iframe.frame-phone").bounding_box()["width"] == 375
    assert p.locator("iframe.frame-phone").get_attribute("sandbox") == ""
    assert accessibility_problems(p) == []
    screenshot(p, "builder-preview")
    sink.messages.clear()
    p.get_by_role("button", name="Send a test to mara@example.com").click()
    expect(p.get_by_text("Test email sent to mara@example.com")).to_be_visible()
    message = wait_until(lambda: list(sink.messages), 10, "the test email")[0]
    assert message["To"] == "mara@example.com" and message["Subject"].startswith("[Test] ")

    # editing the active sequence makes version 2; version 1 stays live until activated
    p.goto(f"{system.url}/admin/sequences/{sequence_id}")
    field(p, "stages[0].steps[1].wait.duration").fill("PT20M")
    p.get_by_role("button", name="Save as a new version").click()
    expect(p.get_by_text("Saved as version 2")).to_be_visible()
    expect(p.locator(".subtitle")).to_contain_text("version 1 is live")

    # versions and YAML pages
    p.goto(f"{system.url}/admin/sequences/{sequence_id}/versions")
    expect(p.get_by_role("heading", name="History")).to_be_visible()
    expect(p.locator("tr.diff-removed")).to_contain_text("duration: PT10M")
    expect(p.locator("tr.diff-added")).to_contain_text("duration: PT20M")
    assert accessibility_problems(p) == []
    screenshot(p, "builder-versions")
    p.goto(f"{system.url}/admin/sequences/{sequence_id}/yaml")
    expect(p.locator(".yaml-view")).to_contain_text("key: timing-check-in")
    assert accessibility_problems(p) == []
    screenshot(p, "builder-yaml")
    assert page.errors == []


def test_the_builder_with_numbers_on_the_cards(page, served, db, app, runner):
    """The README's picture: a shipped sequence, its steps' numbers, drag to reorder."""
    from pathlib import Path

    from tests.test_api_sequences import make_collateral

    system, _ = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    make_collateral(db)
    library = Path(__file__).parent.parent / "campaigns" / "library"
    result = runner.invoke(args=["sequences", "import",
                                 str(library / "bad-timing-quarterly-check-in.yaml")])
    assert result.exit_code == 0, result.output
    with db.session_scope() as session:
        sequence = session.query(Sequence).one()
        sequence_id = sequence.id
        today = utcnow().date()
        for step, sent, opens, clicks, unsubscribes in (
                ("check-in", 1840, 912, 233, 9), ("quarterly-check-in", 1210, 533, 141, 6),
                ("case-study", 233, 161, 88, 1), ("decision-guide", 97, 70, 41, 0)):
            for metric, n in (("delivered", sent), ("human_open", opens),
                              ("human_click", clicks), ("unsubscribe", unsubscribes)):
                session.add(ReportCount(day=today - timedelta(days=3), metric=metric,
                                        sequence_id=sequence_id, step_id=step, n=n))
        session.add(ReportCount(day=today, metric="exit", sequence_id=sequence_id,
                                step_id="done", n=64))
    p = page.page
    sign_in(p, system.url, "mara@example.com")
    p.wait_for_url(f"{system.url}/admin/")
    p.set_viewport_size({"width": 1440, "height": 1800})  # the whole board in view
    p.goto(f"{system.url}/admin/sequences/{sequence_id}")
    card = p.locator("#step-check-in")
    expect(card.locator(".step-numbers")).to_contain_text("1,840")
    expect(card.locator(".step-numbers")).to_contain_text("Human opens")
    # drag the stage-2 wait below the quarterly email by its handle
    handle = p.locator("#step-tuesday-morning .drag-handle")
    target = p.locator("#step-quarterly-check-in")
    box = target.bounding_box()
    handle.drag_to(target, target_position={"x": 40, "y": box["height"] - 12})
    expect(p.locator('[data-card="stages[1].steps[2]"]')).to_have_attribute(
        "id", "step-tuesday-morning")
    expect(p.locator("#live-status")).to_contain_text("No problems")
    p.reload()  # not saved: the stored order is back
    expect(p.locator('[data-card="stages[1].steps[1]"]')).to_have_attribute(
        "id", "step-tuesday-morning")
    assert accessibility_problems(p) == []
    # the whole page in the window, so the save bar sits where it ends (it follows scrolling)
    p.set_viewport_size({"width": 1440,
                         "height": p.evaluate("document.documentElement.scrollHeight")})
    screenshot(p, "builder")
    # the template panel, inside the builder
    p.set_viewport_size({"width": 1440, "height": 900})
    p.get_by_role("button", name="Edit the template of check-in").click()
    panel = p.locator("#template-panel")
    expect(panel.get_by_label("Subject")).to_have_value(re.compile("Still on your radar"))
    expect(panel.get_by_label("Subject")).to_be_focused()
    assert accessibility_problems(p) == []
    screenshot(p, "builder-template")
    panel.get_by_role("button", name="Close").click()
    expect(p.locator("#template-panel")).to_have_count(0)
    p.set_viewport_size({"width": 375, "height": 812})
    assert accessibility_problems(p) == []
    screenshot(p, "builder-phone")
    # the page does not scroll sideways on a phone: the board scrolls in its own box
    wide = p.evaluate("""() => [...document.querySelectorAll('body *')].filter(e =>
        e.getBoundingClientRect().right > 376 && !e.closest('.board, .tabs')).map(e =>
        e.tagName + '.' + e.className).slice(0, 5)""")
    assert p.evaluate("document.documentElement.scrollWidth") <= 375, wide
    assert page.errors == []
