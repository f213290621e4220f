"""The web admin in a real browser: Chromium (Playwright) against `nurture serve` on a real
port. Sign-in, sign-out, roles, the reset link by email, the rate limit, CSP (no refusal in the
console), and axe-core on every page (no serious or critical violation)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from nurture.accounts.services import create_user
from nurture.clock import utcnow
from nurture.models import Role
from tests.browser import Watched, accessibility_problems, launch, require_chromium, screenshot
from tests.test_drip_e2e import System
from tests.test_processes import wait_until

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def served(service_env, app, tmp_path_factory) -> Iterator[tuple[System, Any]]:
    """`nurture serve` for the module, with a real SMTP server for the reset emails."""
    require_chromium()
    from aiosmtpd.controller import Controller

    from nurture.embedded_redis import free_port
    from tests.conftest import SmtpSink

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    system = System(service_env, f"smtp://127.0.0.1:{controller.port}",
                    tmp_path_factory.mktemp("serve"))
    try:
        system.start("serve")
        yield system, sink
    finally:
        system.stop()
        controller.stop()


@pytest.fixture()
def page(browser, served) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def make_user(db, email, role, name):
    with db.session_scope() as session:
        create_user(session, email, role, password=PASSWORD, name=name, now=utcnow())


def sign_in(page, url, email, password=PASSWORD):
    page.goto(f"{url}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_marketer_signs_in_sees_the_dashboard_and_signs_out(page, served, db):
    system, _ = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    p = page.page
    p.goto(f"{system.url}/")
    assert p.url == f"{system.url}/auth/sign-in"
    assert accessibility_problems(p) == []
    screenshot(p, "sign-in")
    sign_in(p, system.url, "mara@example.com")
    p.wait_for_url(f"{system.url}/admin/")
    assert p.get_by_role("heading", name="Dashboard").is_visible()
    assert p.get_by_text("Leads recycled to sales").is_visible()
    nav = p.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Dashboard").is_visible()
    assert nav.get_by_role("link", name="Users").count() == 0  # admins only
    assert accessibility_problems(p) == []
    screenshot(p, "dashboard")
    # the account page, then sign out
    p.get_by_role("link", name=re.compile("Mara Marketing")).click()
    assert p.get_by_role("heading", name="Your account").is_visible()
    assert accessibility_problems(p) == []
    p.get_by_role("button", name="Sign out").click()
    p.wait_for_url(f"{system.url}/auth/sign-in")
    assert p.get_by_text("You are signed out.").is_visible()
    p.goto(f"{system.url}/admin/")
    assert p.url.startswith(f"{system.url}/auth/sign-in?next=")
    assert page.errors == []  # no CSP refusal, no script error


def test_a_wrong_password_shows_the_error_beside_the_field_and_keeps_the_email(page, served, db):
    system, _ = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    p = page.page
    sign_in(p, system.url, "mara@example.com", "not my password")
    error = p.locator("#password-error")
    assert "do not match" in error.inner_text()
    assert p.get_by_label("Email").input_value() == "mara@example.com"
    assert p.get_by_label("Password").get_attribute("aria-describedby") == "password-error"
    assert accessibility_problems(p) == []
    screenshot(p, "sign-in-error")
    assert p.url.startswith(f"{system.url}/auth/sign-in")


def test_a_marketer_is_refused_the_admins_page_and_an_admin_opens_it(page, served, db):
    system, _ = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    make_user(db, "root@example.com", Role.ADMIN, "Ada Admin")
    p = page.page
    sign_in(p, system.url, "mara@example.com")
    p.wait_for_url(f"{system.url}/admin/")
    answer = p.goto(f"{system.url}/admin/users")
    assert answer is not None and answer.status == 403
    assert p.get_by_role("heading", name="Your role cannot open this page").is_visible()
    assert accessibility_problems(p) == []
    screenshot(p, "forbidden")
    p.context.clear_cookies()
    # the admin, sent to sign-in by the page itself, lands back on it
    p.goto(f"{system.url}/admin/users")
    p.get_by_label("Email").fill("root@example.com")
    p.get_by_label("Password").fill(PASSWORD)
    p.get_by_role("button", name="Sign in").click()
    p.wait_for_url(f"{system.url}/admin/users")
    assert p.get_by_role("row").filter(has_text="mara@example.com").count() == 1  # listed once
    assert accessibility_problems(p) == []
    screenshot(p, "users")


def test_next_pointing_elsewhere_lands_on_the_dashboard(page, served, db):
    system, _ = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    p = page.page
    p.goto(f"{system.url}/auth/sign-in?next=//evil.example/")
    p.get_by_label("Email").fill("mara@example.com")
    p.get_by_label("Password").fill(PASSWORD)
    p.get_by_role("button", name="Sign in").click()
    p.wait_for_url(f"{system.url}/admin/")


def test_a_password_reset_by_the_emailed_link_works_once(page, served, db):
    system, sink = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    sink.messages.clear()
    p = page.page
    p.goto(f"{system.url}/auth/sign-in")
    p.get_by_role("link", name="Forgot your password?").click()
    assert accessibility_problems(p) == []
    p.get_by_label("Email").fill("mara@example.com")
    p.get_by_role("button", name="Email me a link").click()
    assert p.get_by_text("an email with a reset link is on its way").is_visible()
    message = wait_until(lambda: list(sink.messages), 10, "the reset email")[0]
    link = re.search(r"http://\S+/auth/reset/\S+", message.get_body(("plain",)).get_content())
    assert link and link.group(0).startswith(system.url)
    p.goto(link.group(0))
    p.get_by_label("New password", exact=True).fill("a brand new passphrase")
    p.get_by_label("Repeat the new password").fill("a different passphrase")
    p.get_by_role("button", name="Save the new password").click()
    assert "differ" in p.locator("#confirm-error").inner_text()
    assert accessibility_problems(p) == []
    screenshot(p, "reset")
    p.get_by_label("New password", exact=True).fill("a brand new passphrase")
    p.get_by_label("Repeat the new password").fill("a brand new passphrase")
    p.get_by_role("button", name="Save the new password").click()
    p.wait_for_url(f"{system.url}/auth/sign-in")
    assert p.get_by_text("Your password is changed").is_visible()
    sign_in(p, system.url, "mara@example.com", "a brand new passphrase")
    p.wait_for_url(f"{system.url}/admin/")
    p.goto(link.group(0))  # used: refused
    p.wait_for_url(f"{system.url}/auth/reset")
    assert p.get_by_text("used already").is_visible()
    assert page.errors == []


def test_a_flood_of_sign_ins_is_refused_in_the_browser(page, served, db):
    system, _ = served
    p = page.page
    statuses = []
    for n in range(11):
        p.goto(f"{system.url}/auth/sign-in")
        p.get_by_label("Email").fill("nobody@example.com")
        p.get_by_label("Password").fill(f"guess number {n}")
        with p.expect_navigation() as navigation:
            p.get_by_role("button", name="Sign in").click()
        statuses.append(navigation.value.status)
    assert statuses == [422] * 10 + [429]


def test_pages_send_a_strict_content_security_policy(page, served):
    system, _ = served
    answer = page.page.goto(f"{system.url}/auth/sign-in")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    # an inline script, were one ever injected, would not run
    page.page.set_content("<p>x</p>")  # about:blank: no policy; the real page has one
    page.page.goto(f"{system.url}/auth/sign-in")
    ran = page.page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__ran = 1'; document.body.appendChild(s); return !!window.__ran; }""")
    assert ran is False


def test_demo_users_sign_in_and_see_the_demo_numbers_and_sequences(page, served, db, app):
    """`nurture up` prints the demo sign-in: those accounts work on the admin's pages."""
    from nurture.demo.seeding import seed_demo

    system, _ = served
    seeded = seed_demo(db, app.extensions["nurture.settings"], seed=7, leads=150,
                       until=utcnow().date())
    marketer = next(s for s in seeded.sign_ins if s.role == Role.MARKETER)
    p = page.page
    sign_in(p, system.url, marketer.email, marketer.password)
    p.wait_for_url(f"{system.url}/admin/")
    assert p.get_by_text("Nothing to count yet").count() == 0
    entered = p.locator(".kpi", has_text="Leads that entered nurture").locator(".kpi-value")
    assert entered.inner_text() not in ("0", "n/a")
    assert accessibility_problems(p) == []
    screenshot(p, "dashboard-demo")
    p.get_by_role("navigation", name="Main").get_by_role("link", name="Sequences").click()
    p.wait_for_url(f"{system.url}/admin/sequences")
    rows = p.locator("tbody tr")
    assert rows.count() >= 2
    assert p.get_by_text("active", exact=True).first.is_visible()
    assert accessibility_problems(p) == []
    screenshot(p, "sequences")
    p.set_viewport_size({"width": 375, "height": 812})
    assert accessibility_problems(p) == []
    screenshot(p, "sequences-phone")
    # the page does not scroll sideways on a phone; the table scrolls in its own box
    assert p.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.errors == []
