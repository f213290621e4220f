"""The sales approvers' queue (nurture/web/admin/approvals.py): what waits, each item's
preview and diff, approving, requesting changes (in the admin and by email), the history, and
the bad input: wrong role, own draft, no CSRF token, stored script, no comment."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns import collateral as collateral_service
from nurture.accounts.services import Actor
from nurture.approvals import lifecycle as approvals
from nurture.clock import utcnow
from nurture.handoffs import sla as slas
from nurture.models import (
    ChangeRequest,
    CollateralStatus,
    CollateralVersion,
    DocumentStatus,
    Role,
    ScoringModel,
    User,
)
from nurture.scoring import lifecycle as models
from nurture.scoring.document import default_document
from tests.test_auth import make_user, sign_in

MARA = "mara@example.com"  # marketer
SAM = "sam@example.com"  # sales approver


@pytest.fixture()
def people(db):
    return {"mara": make_user(db, MARA, Role.MARKETER),
            "sam": make_user(db, SAM, Role.SALES_APPROVER)}


def token_of(client, path):
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def submitted_collateral(db, user_id, *, key="roi-guide", title="ROI guide", approved=None,
                         expires_on=None, url="https://cdn.example.com/roi-v2.pdf"):
    """A collateral version the marketer submitted; `approved`: a title for an approved v1."""
    mara = Actor(email=MARA, role=Role.MARKETER, user_id=user_id)
    sam = Actor(email="earlier@example.com", role=Role.SALES_APPROVER)
    now = utcnow()
    with db.session_scope() as session:
        if approved:
            first = collateral_service.create_collateral(
                session, key, {"title": approved, "url": "https://cdn.example.com/roi-v1.pdf",
                               "personas": ["cfo"]}, actor=mara, now=now)
            collateral_service.transition(session, first.id, "submit", actor=mara, now=now)
            collateral_service.transition(session, first.id, "approve", actor=sam, now=now)
            version = collateral_service.add_version(
                session, key, {"title": title, "url": url, "personas": ["cfo", "controller"],
                               "expires_on": expires_on}, actor=mara, now=now)
        else:
            version = collateral_service.create_collateral(
                session, key, {"title": title, "url": url, "expires_on": expires_on},
                actor=mara, now=now)
        collateral_service.transition(session, version.id, "submit", actor=mara, now=now)
        return version.id


def scoring_draft(db, *, author=MARA, submit=True, total=70.0):
    """A scoring model draft (the default's rules, another threshold), the active default
    model beside it; submitted to sales (approved by the marketer) unless `submit` is False."""
    now = utcnow()
    with db.session_scope() as session:
        models.ensure_default_model(session, now=now)
        data = default_document().as_data() | {"name": "Stricter model"}
        data["thresholds"] = {"total": total, "fit": 15}
        data["engagement"] = [r for r in data["engagement"] if r["rule"] != "email_open"]
        model = models.create_model(session, data, actor=author, now=now)
        if submit:
            models.approve_model(session, model.id, actor=Actor(MARA, Role.MARKETER), now=now)
        return model.id


def sla_draft(db, *, submit=True):
    now = utcnow()
    with db.session_scope() as session:
        data = slas.default_terms().document.as_data() | {"name": "Faster SLA"}
        data["first_action"] = {"within": "PT30M", "rules": []}
        sla = slas.create_sla(session, data, actor=MARA, now=now)
        if submit:
            slas.approve_sla(session, sla.id, actor=Actor(MARA, Role.MARKETER), now=now)
        return sla.id


def status_of(db, version_id):
    with db.session_scope() as session:
        return session.get(CollateralVersion, version_id).status


def test_the_queue_lists_everything_waiting_with_who_asked(client, db, people):
    collateral_id = submitted_collateral(db, people["mara"])
    model_id = scoring_draft(db)
    sla_id = sla_draft(db)
    scoring_draft(db, submit=False, total=80.0)  # not submitted: not waiting for sales
    sign_in(client, SAM)
    page = client.get("/admin/approvals")
    assert page.status_code == 200
    html = page.text
    assert "ROI guide" in html and "Stricter model" in html and "Faster SLA" in html
    assert f"/admin/approvals/collateral/{collateral_id}" in html
    assert f"/admin/approvals/scoring_model/{model_id}" in html
    assert f"/admin/approvals/sla/{sla_id}" in html
    assert html.count("Asked by <strong>Mara</strong>") == 3  # the user's name
    assert "3 changes since v1" in html  # the scoring draft: name, threshold, a rule removed
    assert re.search(r'class="count">3</span> waiting', html)


def test_an_empty_queue_says_what_comes_there(client, db, people):
    sign_in(client, SAM)
    html = client.get("/admin/approvals").text
    assert "Nothing is waiting for you" in html and "Your decisions" in html


def test_the_queue_is_for_sales_approvers_and_admins(client, db, people):
    assert client.get("/admin/approvals").headers["Location"].startswith("/auth/sign-in?next=")
    sign_in(client, MARA)
    assert client.get("/admin/approvals").status_code == 403
    assert client.get("/admin/approvals/history").status_code == 403


def test_a_non_approver_posting_an_approval_form_is_403_and_nothing_changes(client, db, people):
    version_id = submitted_collateral(db, people["mara"])
    model_id = scoring_draft(db)
    sign_in(client, MARA)
    token = token_of(client, "/admin/scoring")
    for path in (f"/admin/approvals/collateral/{version_id}/approve",
                 f"/admin/approvals/collateral/{version_id}/request-changes",
                 f"/admin/approvals/scoring_model/{model_id}/approve"):
        answer = client.post(path, data={"csrf_token": token, "comment": "no"})
        assert answer.status_code == 403, path
    assert status_of(db, version_id) == CollateralStatus.SUBMITTED
    with db.session_scope() as session:
        assert session.get(ScoringModel, model_id).status == DocumentStatus.DRAFT


def test_a_collateral_version_shows_its_asset_and_a_readable_diff(client, db, people):
    soon = utcnow().date() + timedelta(days=200)
    version_id = submitted_collateral(db, people["mara"], approved="ROI guide 2026",
                                      title="ROI guide 2027", expires_on=soon)
    sign_in(client, SAM)
    html = client.get(f"/admin/approvals/collateral/{version_id}").text
    assert 'href="https://cdn.example.com/roi-v2.pdf"' in html  # the asset
    assert "replaces v1, approved and in use" in html
    diff = re.search(r'<ul class="diff">(.*?)</ul>', html, re.S).group(1)
    assert re.search(r"Title</span>.*<del>ROI guide 2026</del>.*<ins>ROI guide 2027</ins>",
                     diff, re.S)
    assert "<ins>cfo, controller</ins>" in diff and "<del>cfo</del>" in diff
    assert f"<ins>{soon.isoformat()}</ins>" in diff
    assert "asked by <strong>mara@example.com</strong>" in html
    assert "Approve</button>" in html and "Request changes</button>" in html


def test_approving_collateral_records_it_and_lists_it_in_the_history(client, db, people):
    version_id = submitted_collateral(db, people["mara"])
    sign_in(client, SAM)
    token = token_of(client, f"/admin/approvals/collateral/{version_id}")
    answer = client.post(f"/admin/approvals/collateral/{version_id}/approve",
                         data={"csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/approvals"
    assert status_of(db, version_id) == CollateralStatus.APPROVED
    assert "Approved “ROI guide” v1" in client.get("/admin/approvals").text
    history = client.get("/admin/approvals/history").text
    assert "ROI guide" in history and ">approved<" in history


def test_a_post_without_csrf_token_is_400_and_changes_nothing(client, db, people):
    version_id = submitted_collateral(db, people["mara"])
    model_id = scoring_draft(db)
    sign_in(client, SAM)
    assert client.post(f"/admin/approvals/collateral/{version_id}/approve").status_code == 400
    assert client.post(f"/admin/approvals/collateral/{version_id}/request-changes",
                       data={"comment": "shorter"}).status_code == 400
    assert client.post(f"/admin/approvals/scoring_model/{model_id}/approve").status_code == 400
    assert status_of(db, version_id) == CollateralStatus.SUBMITTED
    with db.session_scope() as session:
        assert session.get(ScoringModel, model_id).status == DocumentStatus.DRAFT


def test_requesting_changes_reaches_the_author_in_the_admin_and_by_email(
        client, db, people, app, smtp_server, monkeypatch):
    sink, url = smtp_server
    settings = app.extensions["nurture.settings"]
    monkeypatch.setitem(app.extensions, "nurture.settings",
                        type(settings)(**{**settings.__dict__, "smtp_url": url}))
    version_id = submitted_collateral(db, people["mara"])
    sign_in(client, SAM)
    token = token_of(client, f"/admin/approvals/collateral/{version_id}")
    comment = "Use the 2027 prices <script>alert('x')</script>"
    answer = client.post(f"/admin/approvals/collateral/{version_id}/request-changes",
                         data={"csrf_token": token, "comment": comment})
    assert answer.status_code == 302
    assert status_of(db, version_id) == CollateralStatus.CHANGES_REQUESTED
    assert len(sink.messages) == 1
    message = sink.messages[0]
    assert message["To"] == MARA and "Changes requested" in message["Subject"]
    assert "Use the 2027 prices" in message.get_body(("plain",)).get_content()
    html_body = message.get_body(("html",)).get_content()
    assert "<script>" not in html_body and "&lt;script&gt;" in html_body
    assert f"/admin/approvals/collateral/{version_id}" in message.get_body(("plain",)).get_content()
    # the author reads it in the admin, inert
    client.post("/auth/sign-out", data={"csrf_token": token_of(client, "/admin/approvals")})
    sign_in(client, MARA)
    page = client.get(f"/admin/approvals/collateral/{version_id}").text
    assert "Use the 2027 prices &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "Request changes</button>" not in page  # the marketer reads, does not decide


def test_requesting_changes_needs_a_comment_shown_beside_the_field(client, db, people):
    version_id = submitted_collateral(db, people["mara"])
    sign_in(client, SAM)
    token = token_of(client, f"/admin/approvals/collateral/{version_id}")
    answer = client.post(f"/admin/approvals/collateral/{version_id}/request-changes",
                         data={"csrf_token": token, "comment": "   "})
    assert answer.status_code == 422
    assert re.search(r'<p class="error" id="comment-error">required when requesting changes',
                     answer.text)
    assert 'aria-invalid="true"' in answer.text
    assert status_of(db, version_id) == CollateralStatus.SUBMITTED


def test_an_approver_cannot_approve_collateral_they_submitted(client, db, people):
    # Mara wrote and submitted it as a marketer, then became a sales approver
    version_id = submitted_collateral(db, people["mara"])
    with db.session_scope() as session:
        session.get(User, people["mara"]).role = Role.SALES_APPROVER
    sign_in(client, MARA)
    token = token_of(client, f"/admin/approvals/collateral/{version_id}")
    answer = client.post(f"/admin/approvals/collateral/{version_id}/approve",
                         data={"csrf_token": token})
    assert answer.status_code == 409
    assert "This could not be done" in answer.text
    assert "another sales approver must approve it" in answer.text
    assert status_of(db, version_id) == CollateralStatus.SUBMITTED


def test_an_approver_cannot_approve_a_scoring_draft_they_wrote(client, db, people):
    model_id = scoring_draft(db, author=SAM)  # e.g. `nurture scoring import --by sam@…`
    sign_in(client, SAM)
    token = token_of(client, f"/admin/approvals/scoring_model/{model_id}")
    answer = client.post(f"/admin/approvals/scoring_model/{model_id}/approve",
                         data={"csrf_token": token})
    assert answer.status_code == 409
    assert "you wrote scoring model version" in answer.text
    with db.session_scope() as session:
        model = session.get(ScoringModel, model_id)
        assert model.status == DocumentStatus.DRAFT
        live = approvals.summary(session, models.SCORING_MODEL, model)["approvals"]
        assert [a["role"] for a in live] == ["marketer"]


def test_expiring_collateral_is_flagged_in_the_queue_on_approval_and_in_the_history(
        client, db, people):
    soon = utcnow().date() + timedelta(days=12)
    version_id = submitted_collateral(db, people["mara"], expires_on=soon)
    submitted_collateral(db, people["mara"], key="later", title="Later guide",
                         expires_on=utcnow().date() + timedelta(days=90))
    sign_in(client, SAM)
    queue_page = client.get("/admin/approvals").text
    assert queue_page.count('class="flag-expiring"') == 1
    assert "expiring within 30 days" in queue_page
    item = client.get(f"/admin/approvals/collateral/{version_id}").text
    assert "It expires on" in item
    token = token_of(client, f"/admin/approvals/collateral/{version_id}")
    client.post(f"/admin/approvals/collateral/{version_id}/approve", data={"csrf_token": token})
    flashed = client.get("/admin/approvals").text
    assert f"it expires on {soon.isoformat()}, within 30 days" in flashed
    assert f"expires {soon.isoformat()}" in client.get("/admin/approvals/history").text


def test_a_scoring_draft_shows_its_rules_diff_backtest_and_who_asked(client, db, people):
    from nurture.scoring import backtest as backtests

    model_id = scoring_draft(db)
    with db.session_scope() as session:
        backtest = backtests.request_backtest(session, model_id, days=30, actor=MARA,
                                              now=utcnow())
        backtests.run_backtest(session, backtest.id, now=utcnow())
    sign_in(client, SAM)
    html = client.get(f"/admin/approvals/scoring_model/{model_id}").text
    assert "submitted by <strong>mara@example.com</strong>" in html
    diff = re.search(r'<ul class="diff">(.*?)</ul>', html, re.S).group(1)
    assert re.search(r"Recycled at a total of</span>.*<del>60</del>.*<ins>70</ins>", diff, re.S)
    assert "engagement rule email_open" in diff and "diff-removed" in diff
    assert "Leads recycled to sales" in html and "This draft (v2)" in html
    assert "Active (v1)" in html
    assert "<code>pricing_page</code>" in html  # the rules
    assert re.search(r'signature signed">\s*<span class="signature-team">Marketing', html)


def test_approving_a_scoring_draft_gives_it_both_approvals(client, db, people):
    model_id = scoring_draft(db)
    sign_in(client, SAM)
    token = token_of(client, f"/admin/approvals/scoring_model/{model_id}")
    answer = client.post(f"/admin/approvals/scoring_model/{model_id}/approve",
                         data={"csrf_token": token})
    assert answer.status_code == 302
    with db.session_scope() as session:
        assert session.get(ScoringModel, model_id).status == DocumentStatus.APPROVED
    assert "it can be activated" in client.get("/admin/approvals").text
    assert "Stricter model" in client.get("/admin/approvals/history").text


def test_sending_an_sla_draft_back_withdraws_its_approval_and_tells_the_author(
        client, db, people, app, smtp_server, monkeypatch):
    sink, url = smtp_server
    settings = app.extensions["nurture.settings"]
    monkeypatch.setitem(app.extensions, "nurture.settings",
                        type(settings)(**{**settings.__dict__, "smtp_url": url}))
    sla_id = sla_draft(db)
    sign_in(client, SAM)
    html = client.get(f"/admin/approvals/sla/{sla_id}").text
    assert "first_action.within" in html and "PT30M" in html  # the terms and the diff
    token = token_of(client, f"/admin/approvals/sla/{sla_id}")
    answer = client.post(f"/admin/approvals/sla/{sla_id}/request-changes",
                         data={"csrf_token": token, "comment": "30 minutes is not realistic"})
    assert answer.status_code == 302
    with db.session_scope() as session:
        request = session.execute(select(ChangeRequest)).scalar_one()
        assert (request.document_kind, request.document_id, request.author) == ("slas", sla_id,
                                                                                 MARA)
        assert slas.get_sla(session, sla_id).status == DocumentStatus.DRAFT
        live = [a for a in slas.sla_summary(session, slas.get_sla(session, sla_id))["approvals"]
                if a["withdrawn_at"] is None]
        assert live == []
    assert "Faster SLA" not in client.get("/admin/approvals").text.split("Sent")[0]
    assert [m["To"] for m in sink.messages] == [MARA]
    assert f"/admin/scoring/slas/{sla_id}" in sink.messages[0].get_body(("plain",)).get_content()
    history = client.get("/admin/approvals/history").text
    assert "changes requested" in history and "30 minutes is not realistic" in history
    # the author sees it on the SLA's page
    client.post("/auth/sign-out", data={"csrf_token": token})
    sign_in(client, MARA)
    page = client.get(f"/admin/scoring/slas/{sla_id}").text
    assert "Changes requested" in page and "30 minutes is not realistic" in page


def test_an_unknown_item_is_404(client, db, people):
    sign_in(client, SAM)
    assert client.get("/admin/approvals/collateral/999").status_code == 404
    assert client.get("/admin/approvals/scoring_model/999").status_code == 404
    assert client.get("/admin/approvals/nothing/1").status_code == 404


def test_approving_in_the_queue_lets_the_marketers_sequence_go_live(client, db, people,
                                                                    make_token):
    from tests.conftest import Api
    from tests.test_routing import sequence

    marketer = Api(client, make_token(Role.MARKETER, "m"))
    version_id = submitted_collateral(db, people["mara"], key="planning-guide",
                                      title="Planning guide")
    sequence_id = sequence(marketer, "timing", activate=False)
    refused = marketer.post(f"/api/v1/sequences/{sequence_id}/activate")
    assert refused.status_code == 409 and "planning-guide" in str(refused.json)
    sign_in(client, SAM)
    token = token_of(client, f"/admin/approvals/collateral/{version_id}")
    client.post(f"/admin/approvals/collateral/{version_id}/approve", data={"csrf_token": token})
    assert marketer.post(f"/api/v1/sequences/{sequence_id}/activate").status_code == 200


def test_an_uploaded_asset_is_previewed_from_a_staff_only_address(client, db, people, app):
    import io
    from pathlib import Path

    from campaigns.uploads import store_upload

    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
           b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05"
           b"\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
    folder = Path(app.extensions["nurture.settings"].instance_path) / "uploads"
    stored = store_upload(io.BytesIO(png), "banner.png", folder)
    mara = Actor(email=MARA, role=Role.MARKETER, user_id=people["mara"])
    with db.session_scope() as session:
        version = collateral_service.create_collateral(
            session, "banner", {"title": "Banner", "file_path": stored.path,
                                "file_name": stored.file_name,
                                "content_type": stored.content_type}, actor=mara, now=utcnow())
        collateral_service.transition(session, version.id, "submit", actor=mara, now=utcnow())
        version_id = version.id
    asset = f"/admin/approvals/collateral/{version_id}/asset"
    assert client.get(asset).status_code == 302  # anonymous: to sign-in
    sign_in(client, SAM)
    html = client.get(f"/admin/approvals/collateral/{version_id}").text
    assert f'<img class="asset-image" src="{asset}" alt="Banner">' in html
    answer = client.get(asset)
    assert answer.status_code == 200 and answer.data == png
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert client.get(f"/files/{version_id}/banner.png").status_code == 404  # not approved yet
