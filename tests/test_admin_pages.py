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


def test_the_sequence_list_is_empty_until_one_is_imported(client, db):
    make_user(db)
    sign_in(client)
    page = client.get("/admin/sequences").text
    assert "No sequences yet" in page and "POST /api/v1/sequences" in page


def test_the_sequence_list_shows_status_version_entry_and_counts(client, db, api, make_token):
    from tests.conftest import Api
    from tests.test_api_sequences import make_collateral
    from tests.test_routing import sequence

    marketer = Api(client, make_token(Role.MARKETER, "m"))
    make_collateral(db)
    sequence(marketer, "budget", reasons=("no_budget",), lead={"country": ["DE"]})
    sequence(marketer, "drafted", reasons=("bad_timing",), activate=False)
    for n in range(2):
        answer = api.post("/api/v1/rejections", json={
            "lead": {"email": f"lead{n}@example.com", "country": "DE"},
            "rep_email": "rita@example.com", "reason": "no_budget"})
        assert answer.json["enrollment"] is not None, answer.json
    make_user(db)
    sign_in(client)
    page = client.get("/admin/sequences").text
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)[1:]
    budget, drafted = rows
    assert ">active<" in budget and "v1 live" in budget
    assert "rejected for no budget" in budget and "in DE" in budget
    cells = re.findall(r'<td class="num">([^<]+)</td>', budget)
    assert cells == ["2", "2", "0", "0"]  # enrolled, in progress, completed, exited
    assert "none live" in drafted and "v1 draft" in drafted
    assert re.findall(r'<td class="num">([^<]+)</td>', drafted) == ["0", "0", "0", "0"]


def test_sequences_are_for_marketers_and_admins(client, db):
    make_user(db, role=Role.SALES_APPROVER)
    sign_in(client)
    assert client.get("/admin/sequences").status_code == 403
    assert "/admin/sequences" not in client.get("/admin/").text  # not in the navigation


def test_the_sequence_list_shows_the_reports_requalification_rate(client, db, make_token):
    from nurture.clock import utcnow
    from nurture.models import ReportCount
    from tests.conftest import Api
    from tests.test_api_sequences import make_collateral
    from tests.test_routing import sequence

    marketer = Api(client, make_token(Role.MARKETER, "m"))
    make_collateral(db)
    sequence_id = sequence(marketer, "budget", reasons=("no_budget",))
    today = utcnow().date()
    with db.session_scope() as session:  # the rollups as the engine writes them
        session.add_all([
            ReportCount(day=today, metric="enrolled", sequence_id=sequence_id, n=8),
            ReportCount(day=today, metric="requalified", sequence_id=sequence_id, n=2),
        ])
    make_user(db)
    sign_in(client)
    page = client.get("/admin/sequences").text
    assert "25%" in page and "2 of 8" in page
