"""The lead pages in a real browser: Chromium (Playwright) against `nurture serve` and a real
`nurture worker` on real ports. A marketer finds a lead by search and reads its timeline and
score explanation; bulk-enrolls a selection and watches the progress reach done; imports a CSV
file and downloads its error report. axe-core checks every page; no CSP refusal or script
error anywhere."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from nurture.models import Enrollment, Role
from tests.browser import Watched, accessibility_problems, launch, require_chromium, screenshot
from tests.conftest import Api
from tests.test_admin_browser import make_user, sign_in
from tests.test_admin_leads import build_history, lead_id, reject
from tests.test_api_sequences import make_collateral
from tests.test_drip_e2e import System
from tests.test_routing import sequence

DONE_TIMEOUT_MS = 60_000
"""How long a background task may take to show as finished (a worker on a busy machine)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def served(service_env, app, tmp_path_factory) -> Iterator[System]:
    """`nurture serve` and `nurture worker` for the module."""
    require_chromium()
    system = System(service_env, "smtp://127.0.0.1:9", tmp_path_factory.mktemp("serve"))
    try:
        system.start("serve", "worker")
        yield system
    finally:
        system.stop()


@pytest.fixture()
def page(browser, served) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-GB",
                                  accept_downloads=True)
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


@pytest.fixture()
def marketer(client, make_token):
    return Api(client, make_token(Role.MARKETER, "marketer"))


def signed_in(page, system, db):
    make_user(db, "mara@example.com", Role.MARKETER, "Mara Marketing")
    sign_in(page, system.url, "mara@example.com")
    page.wait_for_url(f"{system.url}/admin/")


def test_a_marketer_finds_a_lead_and_reads_its_timeline_and_score(page, served, db, api,
                                                                 marketer):
    from playwright.sync_api import expect

    lid = build_history(db, api, marketer)
    for n, (first, company) in enumerate((("Noah", "Northwind"), ("Ines", "Initech"),
                                          ("Omar", "Oceanic Air"))):
        reject(api, f"{first.lower()}@{company.split()[0].lower()}.example", first_name=first,
               last_name="Example", company=company, title="Head of Operations",
               reason=("no_budget", "bad_timing", "not_icp")[n])
    p = page.page
    signed_in(p, served, db)
    p.get_by_role("navigation", name="Main").get_by_role("link", name="Leads").click()
    p.wait_for_url(f"{served.url}/admin/leads")
    expect(p.get_by_text("4 leads match")).to_be_visible()
    assert accessibility_problems(p) == []
    screenshot(p, "leads-list")
    p.get_by_label("Email").fill("vp@")
    p.get_by_role("button", name="Search").click()
    expect(p.get_by_text("1 lead matches")).to_be_visible()
    p.get_by_role("link", name="Vera Price").click()
    p.wait_for_url(f"{served.url}/admin/leads/{lid}")
    expect(p.get_by_role("heading", name="Vera Price", level=1)).to_be_visible()
    timeline = p.locator(".timeline")
    expect(timeline).to_contain_text("Rejected by sales: bad timing")
    expect(timeline).to_contain_text("Email sent: Your ROI guide")
    expect(timeline).to_contain_text("Machine: Apple Mail Privacy Protection")
    expect(timeline).to_contain_text("Recycled to sales with a score of 72")
    score = p.locator("section[aria-labelledby=score-title]")
    expect(score).to_contain_text("senior title")
    expect(score).to_contain_text("Recycled to sales at 60")
    assert accessibility_problems(p) == []
    screenshot(p, "lead-page")
    # the erasure's confirmation: a wrong address erases nothing
    p.get_by_role("link", name="Erase personal data…").click()
    expect(p.get_by_role("heading", name="Erase this lead's personal data?")).to_be_visible()
    assert accessibility_problems(p) == []
    p.get_by_label("Type the lead's email address to confirm").fill("someone@example.com")
    p.get_by_role("button", name="Erase personal data").click()
    expect(p.locator("#confirm-error")).to_contain_text("not the lead's email address")
    assert accessibility_problems(p) == []
    screenshot(p, "lead-erase")
    assert page.errors == []


def test_a_bulk_enroll_of_a_selection_shows_its_progress_until_done(page, served, db, api,
                                                                   marketer):
    from playwright.sync_api import expect

    make_collateral(db)
    target = sequence(marketer, "budget", reasons=("no_budget",))
    for n in range(3):
        reject(api, f"lena{n}@example.com", first_name=f"Lena {n}", company="Umbrella")
    reject(api, "other@example.com")
    p = page.page
    signed_in(p, served, db)
    p.goto(f"{served.url}/admin/leads?company=umbrella")
    expect(p.get_by_text("3 leads match")).to_be_visible()
    p.get_by_label("Select every lead on this page").check()
    expect(p.locator("[data-selected-count]")).to_have_text("(3)")
    p.get_by_label("Action").select_option("enroll")
    p.get_by_label("Sequence", exact=True).select_option(str(target))
    p.get_by_role("button", name="Run in the background").click()
    p.wait_for_url(f"{served.url}/admin/leads/tasks/*")
    assert accessibility_problems(p) == []
    expect(p.get_by_text("Finished.")).to_be_visible(timeout=DONE_TIMEOUT_MS)
    expect(p.locator("[data-task-progress]")).to_have_attribute("value", "100")
    expect(p.locator(".task-kpis")).to_contain_text("Enrolled")
    assert accessibility_problems(p) == []
    screenshot(p, "lead-bulk-done")
    with db.session_scope() as session:
        enrolled = session.execute(select(func.count()).select_from(Enrollment).where(
            Enrollment.sequence_id == target)).scalar_one()
    assert enrolled == 3
    assert lead_id(db, "other@example.com")  # not selected: left alone
    assert page.errors == []


def test_a_csv_import_in_the_browser_gives_a_downloadable_error_report(page, served, db,
                                                                      tmp_path: Path):
    from playwright.sync_api import expect

    source = tmp_path / "leads.csv"
    source.write_text("email,first_name,company,company_size\n"
                      "ann@example.com,Ann,Acme,120\n"
                      "bob@example.com,Bob,Globex,many\n"
                      "not-an-address,Carl,Initech,5\n", encoding="utf-8")
    p = page.page
    signed_in(p, served, db)
    p.goto(f"{served.url}/admin/leads")
    p.get_by_role("link", name="Import a CSV file").first.click()
    expect(p.get_by_role("heading", name="Import leads from a CSV file")).to_be_visible()
    assert accessibility_problems(p) == []
    screenshot(p, "lead-import")
    p.get_by_label("CSV file").set_input_files(str(source))
    p.get_by_role("button", name="Import").click()
    p.wait_for_url(f"{served.url}/admin/leads/tasks/*")
    expect(p.get_by_text("Stopped.")).to_be_visible(timeout=DONE_TIMEOUT_MS)
    expect(p.get_by_role("alert")).to_contain_text("Nothing imported: 2 of 3 rows invalid")
    assert accessibility_problems(p) == []
    screenshot(p, "lead-import-report")
    with p.expect_download() as download:
        p.get_by_role("link", name="Download the error report (CSV)").click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert rows[0] == ["line", "field", "message"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("3", "company_size"), ("4", "email")]
    # the same file, skipping the invalid rows: Ann is imported
    p.goto(f"{served.url}/admin/leads/import")
    p.get_by_label("CSV file").set_input_files(str(source))
    p.get_by_label("Import the valid rows and skip the invalid ones").check()
    p.get_by_role("button", name="Import").click()
    expect(p.get_by_text("Finished.")).to_be_visible(timeout=DONE_TIMEOUT_MS)
    expect(p.locator(".task-kpis")).to_contain_text("Leads created")
    assert lead_id(db, "ann@example.com")
    assert page.errors == []
