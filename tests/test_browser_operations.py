"""The operators' pages in a real browser: Chromium (Playwright) against `nurture serve` and
`nurture worker` on real ports, with a real CRM receiver that first refuses and then accepts.

An operator redelivers a failed CRM webhook and sees the new attempt; makes an API token, sees
it once, and revoking it stops it for the API at once; every operator page passes axe-core
(no serious or critical violation) at desktop and phone widths, without sideways scrolling."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from nurture.accounts.services import create_user
from nurture.clock import utcnow
from nurture.engagement.receipts import record_refusal
from nurture.models import HandoffNotification, NotificationChannel, Role, Suppression
from tests.browser import Watched, accessibility_problems, launch, require_chromium, screenshot
from tests.test_admin_operations import CRM_SECRET, Crm, failed_delivery
from tests.test_drip_e2e import System
from tests.test_processes import wait_until

PASSWORD = "correct horse battery"
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def crm() -> Iterator[Crm]:
    receiver = Crm()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def served(service_env, app, crm, tmp_path_factory) -> Iterator[System]:
    """`nurture serve` and a worker, with the CRM webhook set and no SMTP_URL (the outbox)."""
    require_chromium()
    system = System(service_env, "", tmp_path_factory.mktemp("serve-operations"))
    system.env.pop("SMTP_URL", None)
    system.env.update({"CRM_WEBHOOK_URL": crm.url, "CRM_WEBHOOK_SECRET": CRM_SECRET})
    try:
        system.start("serve", "worker")
        yield system
    finally:
        system.stop()


@pytest.fixture()
def page(browser, served) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def operator_signs_in(p, url, db) -> None:
    with db.session_scope() as session:
        create_user(session, "ada@example.com", Role.ADMIN, password=PASSWORD, name="Ada Admin",
                    timezone="Europe/London", now=utcnow())
    p.goto(f"{url}/auth/sign-in?next=/admin/operations")
    p.get_by_label("Email").fill("ada@example.com")
    p.get_by_label("Password").fill(PASSWORD)
    p.get_by_role("button", name="Sign in").click()
    p.wait_for_url(f"{url}/admin/operations")


def visible(locator: Any) -> None:
    """Waits (up to Playwright's timeout) for the locator to be visible."""
    from playwright.sync_api import expect

    expect(locator).to_be_visible()


def api_status(url: str, token: str) -> int:
    request = urllib.request.Request(f"{url}/api/v1/handoffs?status=open",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def checked(p, name: str) -> None:
    """axe-core at desktop width and on a phone, no sideways scroll, screenshots of both."""
    p.set_viewport_size({"width": 1280, "height": 800})
    assert accessibility_problems(p) == [], name
    screenshot(p, f"operations-{name}")
    p.set_viewport_size(PHONE)
    assert accessibility_problems(p) == [], f"{name} (phone)"
    assert p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
    screenshot(p, f"operations-{name}-phone")
    p.set_viewport_size({"width": 1280, "height": 800})


def test_every_operator_page_passes_axe_at_desktop_and_phone_width(page, served, crm, db, app):
    from workers.queues import QueueName, queue

    # something on every page: users, a refusal, a delivery, an email, a failed job, suppressions
    crm.accept = False
    failed_delivery(db, crm.url)
    with db.session_scope() as session:
        for email, role, team in [
                ("mara@example.com", Role.MARKETER, "Growth"),
                ("sam@example.com", Role.SALES_APPROVER, "Sales EMEA"),
                ("rob@example.com", Role.REP, "Sales EMEA")]:
            create_user(session, email, role, password=PASSWORD, name=email.split("@")[0].title(),
                        now=utcnow()).team = team
        record_refusal(session, "mailgun", status=403,
                       reason="this signature's token was used before for another event",
                       remote_addr="203.0.113.7", now=utcnow())
        for email, reason, source in [("ann@example.com", "unsubscribed", "unsubscribe link"),
                                      ("bob@example.org", "hard_bounce", "sendgrid bounce"),
                                      ("<script>x</script>@example.net", "complaint", "ses")]:
            session.add(Suppression(email=email, reason=reason, source=source,
                                    created_at=utcnow()))
    connection = app.extensions["nurture.redis"]
    queue(connection, QueueName.DEFAULT).enqueue_call(
        "workers.inspection.queue_counts", args=("not redis",), job_id="broken-browser",
        description="queue_counts('not redis')")
    p = page.page
    operator_signs_in(p, served.url, db)
    checked(p, "overview")
    # users: the list, a new one (with a bad address), one's page; the reset link goes out
    p.get_by_role("navigation", name="Operations").get_by_role("link", name="Users").click()
    visible(p.get_by_role("cell", name=re.compile("^Rob rob@example.com")))
    checked(p, "users")
    p.get_by_role("link", name="New user").click()
    p.get_by_label("Email", exact=True).fill("not an address")
    p.get_by_label("Team").fill("Sales EMEA")
    p.get_by_role("button", name="Create the user").click()
    assert "not a valid email address" in p.locator("#email-error").inner_text().lower()
    assert p.get_by_label("Team").input_value() == "Sales EMEA"
    checked(p, "user-new-error")
    p.get_by_label("Email", exact=True).fill("nina@example.com")
    p.get_by_label("Time zone").fill("Europe/Berlin")
    p.get_by_role("button", name="Create the user").click()
    p.wait_for_url(f"{served.url}/admin/users")
    visible(p.get_by_text("A link to choose a password is on its way"))
    p.get_by_role("link", name=re.compile("Edit rita@example.com")).click()
    checked(p, "user")
    p.get_by_role("button", name="Email a reset link").click()
    visible(p.get_by_text("A reset link is on its way to rita@example.com"))
    # integrations, the outbox and one email
    p.goto(f"{served.url}/admin/operations/integrations")
    visible(p.locator("#provider-mailgun").get_by_text("403"))
    checked(p, "integrations")
    p.goto(f"{served.url}/admin/operations/outbox")
    visible(p.get_by_role("link", name=re.compile("password", re.I)).first)
    checked(p, "outbox")
    p.get_by_role("link", name=re.compile("password", re.I)).first.click()
    assert p.frame_locator("iframe.email-frame").locator("body").inner_text()
    checked(p, "outbox-email")
    # the queues: the worker, and the job it failed (waited for: the worker runs it)
    def failed_shown() -> bool:
        p.goto(f"{served.url}/admin/operations/queues")
        return p.get_by_text("broken-browser").count() > 0
    wait_until(failed_shown, 30, "the worker to fail the broken job")
    visible(p.get_by_text("AttributeError").first)
    visible(p.locator("table").first.get_by_text("default"))
    checked(p, "queues")
    p.get_by_role("button", name=re.compile("Requeue")).first.click()
    visible(p.get_by_text("is back on the default queue"))
    # suppressions: search, the remove form with its error, the removal
    p.goto(f"{served.url}/admin/operations/suppressions")
    visible(p.get_by_role("cell", name="<script>x</script>@example.net", exact=True))  # inert
    checked(p, "suppressions")
    p.get_by_role("link", name=re.compile("Remove… ann@example.com")).click()
    p.get_by_role("button", name="Remove from the list").click()
    visible(p.locator("#reason-error"))
    checked(p, "suppression-remove")
    p.get_by_label("Why may this address be emailed again?").fill("Asked by phone, ticket 4411")
    p.get_by_role("button", name="Remove from the list").click()
    visible(p.get_by_text("ann@example.com is off the suppression list"))
    visible(p.get_by_role("cell", name="Asked by phone, ticket 4411"))
    with db.session_scope() as session:
        assert session.execute(select(Suppression).where(
            Suppression.email == "ann@example.com")).first() is None
    p.goto(f"{served.url}/admin/operations/deliveries")
    checked(p, "deliveries-list")
    assert page.errors == []


def test_an_operator_redelivers_a_failed_crm_webhook_and_sees_the_new_attempt(
        page, served, crm, db):
    crm.accept = False
    crm.received.clear()
    notification_id = failed_delivery(db, crm.url)
    p = page.page
    operator_signs_in(p, served.url, db)
    p.get_by_role("navigation", name="Operations").get_by_role("link", name="CRM deliveries"
                                                               ).click()
    p.wait_for_url(f"{served.url}/admin/operations/deliveries")
    card = p.locator(f"#delivery-{notification_id}")
    visible(card.get_by_text("retrying", exact=True))
    assert card.locator("tr.attempt").count() == 1
    assert "lead locked by another sync" in card.locator("tr.attempt").first.inner_text()
    checked(p, "deliveries-failed")
    crm.accept = True
    card.get_by_role("button", name=re.compile("Redeliver")).click()
    p.wait_for_url(re.compile(r"/admin/operations/deliveries"))
    visible(p.get_by_text(re.compile(rf"Delivery {notification_id} is delivered again \(HTTP 202")))
    card = p.locator(f"#delivery-{notification_id}")
    rows = card.locator("tr.attempt")
    assert rows.count() == 2
    assert "202" in rows.nth(1).inner_text() and "00Q5e000001" in rows.nth(1).inner_text()
    visible(card.get_by_text("delivered", exact=True))
    assert len(crm.received) == 2 and crm.received[0] == crm.received[1]
    with db.session_scope() as session:
        assert session.get(HandoffNotification, notification_id).status == "delivered"
    checked(p, "deliveries")
    assert page.errors == []


def test_an_operator_makes_a_token_sees_it_once_and_revoking_it_stops_it(page, served, db):
    p = page.page
    operator_signs_in(p, served.url, db)
    p.goto(f"{served.url}/admin/operations/tokens")
    visible(p.get_by_text("No tokens yet"))
    p.get_by_label("Name").fill("salesforce")
    p.get_by_role("button", name="Make the token").click()
    shown = p.locator("#new-token")
    token = shown.input_value()
    assert token.startswith("nrt_") and len(token) > 40
    visible(p.get_by_text("It is not shown again"))
    visible(p.get_by_role("button", name="Copy"))  # the page's own script ran
    checked(p, "token-once")
    assert api_status(served.url, token) == 200
    p.goto(f"{served.url}/admin/operations/tokens")  # again: the token is gone for good
    assert p.locator("#new-token").count() == 0
    assert token not in p.content() and token[:10] in p.content()
    p.get_by_role("button", name=re.compile("Revoke")).click()
    visible(p.get_by_text(re.compile("is revoked: the API refuses it")))
    assert api_status(served.url, token) == 401
    checked(p, "tokens")
    assert page.errors == []


def test_a_marketer_opening_an_operator_page_is_refused(page, served, db):
    with db.session_scope() as session:
        create_user(session, "mara@example.com", Role.MARKETER, password=PASSWORD, now=utcnow())
    p = page.page
    p.goto(f"{served.url}/auth/sign-in")
    p.get_by_label("Email").fill("mara@example.com")
    p.get_by_label("Password").fill(PASSWORD)
    p.get_by_role("button", name="Sign in").click()
    p.wait_for_url(f"{served.url}/admin/")
    assert p.get_by_role("navigation", name="Main").get_by_role("link", name="Operations"
                                                                ).count() == 0
    answer = p.goto(f"{served.url}/admin/operations/deliveries")
    assert answer is not None and answer.status == 403
    visible(p.get_by_role("heading", name="Your role cannot open this page"))
    with db.session_scope() as session:
        assert session.execute(select(HandoffNotification).where(
            HandoffNotification.channel == NotificationChannel.CRM_WEBHOOK)).first() is None
