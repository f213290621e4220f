"""The report pages and the dashboard in a real browser (Chromium via Playwright against
`nurture serve`): a marketer reads the funnel report, filters it and downloads its CSV; every
report page and the dashboard pass axe-core with no serious or critical violation and no CSP
refusal; the `reports` screenshot (the README's) is taken from demo data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from nurture.clock import utcnow
from nurture.models import Role
from tests import test_admin_browser
from tests.browser import SCREENSHOTS, Watched, accessibility_problems, launch, screenshot
from tests.test_admin_browser import make_user, sign_in
from tests.test_drip_engine import clock, sending  # noqa: F401
from tests.test_reports import PERIOD, history  # noqa: F401

PAGES = ("funnel", "trends", "recycling", "speed", "sla", "sequences", "collateral")
served = test_admin_browser.served
"""`nurture serve` for the module, with a real SMTP server (tests/test_admin_browser.py)."""

QUERY = f"from={PERIOD['from']}&to={PERIOD['to']}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture()
def page(browser, served) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB",
                                  accept_downloads=True)
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


@pytest.fixture()
def built(history):  # noqa: F811  (the hand-built history of tests/test_reports.py)
    return history


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_a_marketer_reads_the_funnel_report(page, served, db, built, tmp_path):
    system, _ = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    p = page.page
    sign_in(p, system.url, "mara@example.com")
    p.wait_for_url(f"{system.url}/admin/")
    p.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    p.wait_for_url(f"{system.url}/admin/reports")
    p.get_by_role("navigation", name="Reports").get_by_role("link", name="Funnel").click()
    p.wait_for_url(re.compile(r".*/admin/reports/funnel.*"))
    # the filters, without JavaScript's help: a GET form
    p.get_by_label("From", exact=True).fill(PERIOD["from"])
    p.get_by_label("To", exact=True).fill(PERIOD["to"])
    p.get_by_label("Group by").select_option("team")
    p.get_by_role("button", name="Show").click()
    p.wait_for_url(re.compile(r".*group_by=team.*"))
    expect(p.get_by_role("img", name=re.compile("The funnel by team"))).to_be_visible()
    p.get_by_label("Group by").select_option("")
    p.get_by_role("button", name="Show").click()
    chart = p.get_by_role("img", name=re.compile(r"^The funnel, cohorts November 2026"))
    expect(chart).to_be_visible()
    figures = p.get_by_role("region", name="Funnel: figures")
    row = figures.get_by_role("row").filter(has_text="Recycled to sales")
    expect(row).to_contain_text("2")
    expect(row).to_contain_text("100%")
    expect(figures.get_by_role("row").filter(has_text="Won")).to_contain_text("1")
    assert accessibility_problems(p) == []
    screenshot(p, "reports-funnel")
    with p.expect_download() as waiting:
        p.get_by_role("link", name=re.compile("Download CSV")).click()
    download = waiting.value
    assert download.suggested_filename == "funnel_2026-11-01_2026-11-30.csv"
    saved = tmp_path / "funnel.csv"
    download.save_as(saved)
    lines = Path(saved).read_text().splitlines()
    assert lines[0] == "cohort,stage,count,conversion,median_seconds,p90_seconds"
    assert lines[4] == "2026-11-01,recycled,2,1,3480,6960"
    # a bad filter: said beside its field, nothing else breaks
    p.get_by_label("From", exact=True).fill("2026-12-31")
    p.get_by_role("button", name="Show").click()
    expect(p.locator("#filter-to-error")).to_have_text("before from")
    assert p.get_by_label("To", exact=True).get_attribute("aria-invalid") == "true"
    assert accessibility_problems(p) == []
    assert page.errors == []  # no CSP refusal, no script error


def test_every_report_page_and_the_dashboard_pass_axe(page, served, db, built):
    system, _ = served
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    p = page.page
    sign_in(p, system.url, "mara@example.com")
    p.wait_for_url(f"{system.url}/admin/")
    assert accessibility_problems(p) == []
    p.goto(f"{system.url}/admin/reports")
    assert accessibility_problems(p) == []
    for slug in PAGES:
        answer = p.goto(f"{system.url}/admin/reports/{slug}?{QUERY}")
        assert answer is not None and answer.status == 200, slug
        assert p.locator("svg.chart").count() >= 1, slug
        assert accessibility_problems(p) == [], slug
        screenshot(p, f"reports-{slug}")
    p.goto(f"{system.url}/admin/reports/speed?{QUERY}&group_by=rep")
    assert accessibility_problems(p) == []
    p.set_viewport_size({"width": 390, "height": 844})  # a phone: chart above its table
    p.goto(f"{system.url}/admin/reports/speed?{QUERY}")
    assert accessibility_problems(p) == []
    screenshot(p, "reports-speed-phone")
    assert page.errors == []


def test_the_reports_screenshot_from_demo_data(page, served, db, service_env):
    """The README's `reports` screenshot: the funnel of demo data, and the dashboard."""
    from nurture.demo.seeding import seed_demo
    from tests.test_demo import settings_for

    system, _ = served
    today = utcnow().date()
    seed_demo(db, settings_for(service_env), seed=7, leads=DEMO_LEADS,
              until=today + timedelta(days=1))
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    p = page.page
    sign_in(p, system.url, "mara@example.com")
    p.wait_for_url(f"{system.url}/admin/")
    expect(p.get_by_role("img", name=re.compile("The funnel"))).to_be_visible()
    assert accessibility_problems(p) == []
    screenshot(p, "dashboard-demo")
    p.goto(f"{system.url}/admin/reports/funnel")
    chart = p.get_by_role("img", name=re.compile("The funnel"))
    expect(chart).to_be_visible()
    assert "Entered nurture 0," not in p.locator("#chart-funnel-desc").text_content()
    assert accessibility_problems(p) == []
    screenshot(p, "reports")
    assert page.errors == []


DEMO_LEADS = 400 if SCREENSHOTS else 60
"""Demo leads: a few for the check, more when the screenshots are taken (the README's)."""
