"""The admin's pages (nurture/web/admin): what they show, from the same services as the API."""

from __future__ import annotations

import re

from nurture.models import Role
from tests.test_auth import make_user, sign_in


def kpi(html: str, label: str) -> str:
    match = re.search(rf'kpi-label">{re.escape(label)}</p>\s*<p class="kpi-value">([^<]+)<', html)
    assert match, html
    return match.group(1)


def test_the_dashboard_says_what_to_do_when_nothing_happened_yet(client, db):
    make_user(db)
    sign_in(client)
    page = client.get("/admin/").text
    assert "Nothing to count yet" in page and "nurture seed-demo" in page
    assert kpi(page, "Leads that entered nurture") == "0"


def test_the_dashboard_counts_a_rejection_that_entered_nurture(client, db, api):
    answer = api.post("/api/v1/rejections", json={
        "lead": {"email": "vera@example.com", "company": "Acme"}, "rep_email": "rita@example.com",
        "reason": "no_budget", "note": "frozen"})
    assert answer.status_code == 201, answer.json
    make_user(db)
    sign_in(client)
    page = client.get("/admin/").text
    assert "Nothing to count yet" not in page
    assert kpi(page, "Leads that entered nurture") == "1"


def test_the_users_page_lists_everyone_with_their_role(client, db):
    make_user(db, role=Role.ADMIN)
    make_user(db, email="rita@example.com", role=Role.REP)
    sign_in(client)
    page = client.get("/admin/users").text
    assert "rita@example.com" in page and "mara@example.com" in page
    assert page.count('class="role-badge"') >= 2
