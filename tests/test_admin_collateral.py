"""The collateral library in the admin (nurture/web/admin/collateral.py): upload or link,
submit for sales approval, the status history with the approvers' comments, where it is
used, its numbers; on the same services as the API."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

import pytest

from campaigns import collateral as service
from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.models import Collateral, CollateralTransition, CollateralVersion, ReportCount, Role
from tests.test_auth import csrf_token, make_user, sign_in

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
FIELDS = {"title": "The 2027 planning guide", "key": "planning-guide", "source": "file",
          "funnel_stage": "decision", "personas": "CFO, Head of Operations",
          "industries": "Logistics", "expires_on": "2030-01-31"}


def marketer(client, db, role=Role.MARKETER, email="mara@example.com"):
    make_user(db, email=email, role=role)
    sign_in(client, email=email)


def upload(client, path, data, name, fields=None, token=True):
    form = {**(FIELDS if fields is None else fields), "file": (io.BytesIO(data), name)}
    if token:
        form["csrf_token"] = csrf_token(client, path)
    return client.post(path, data=form, content_type="multipart/form-data")


def uploads_in(app) -> list[Path]:
    folder = Path(app.extensions["nurture.settings"].instance_path) / "uploads"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_the_empty_library_says_what_to_do(client, db):
    marketer(client, db)
    page = client.get("/admin/collateral").text
    assert "No collateral yet" in page and 'href="/admin/collateral/new"' in page


def test_a_marketer_uploads_a_file_submits_it_and_sees_the_approvers_comment(client, db, app):
    marketer(client, db)
    answer = upload(client, "/admin/collateral/new", PDF, "guide.pdf")
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"] == "/admin/collateral/planning-guide"
    with db.session_scope() as session:
        version = session.query(CollateralVersion).one()
        assert (version.file_name, version.content_type) == ("guide.pdf", "application/pdf")
        assert version.url == f"http://127.0.0.1:8000/files/{version.id}/guide.pdf"
        assert version.personas == ["CFO", "Head of Operations"]
        assert version.expires_on.isoformat() == "2030-01-31"
        version_id = version.id
    assert any(p.read_bytes() == PDF for p in uploads_in(app))
    page = client.get("/admin/collateral/planning-guide").text
    assert "Submit version 1 for sales approval" in page and "not approved yet" in page
    token = csrf_token(client, "/admin/collateral/planning-guide")
    submitted = client.post(f"/admin/collateral/versions/{version_id}/submit",
                            data={"csrf_token": token, "comment": "For the Q1 push"})
    assert submitted.status_code == 302
    approver = Actor(email="sal@example.com", role=Role.SALES_APPROVER)
    with db.session_scope() as session:  # sales decides in its queue (or the API)
        service.transition(session, version_id, "request_changes", actor=approver,
                           comment="Drop the <b>pricing</b> slide", now=utcnow())
    page = client.get("/admin/collateral/planning-guide").text
    history = re.findall(r'<ol class="timeline">(.*?)</ol>', page, re.S)[0]
    assert history.index("changes requested") < history.index("submitted") < history.index(
        "draft")  # newest first
    assert "sal@example.com" in history and "For the Q1 push" in history
    assert "Drop the &lt;b&gt;pricing&lt;/b&gt; slide" in history
    assert "Submit version 1 for sales approval" in page  # changes requested: submit again
    downloaded = client.get(f"/admin/collateral/versions/{version_id}/file")
    assert downloaded.status_code == 200 and downloaded.data == PDF
    assert "attachment" in downloaded.headers["Content-Disposition"]
    assert "sandbox" in downloaded.headers["Content-Security-Policy"]


def test_a_link_is_added_and_a_new_version_starts_from_the_last(client, db, count):
    marketer(client, db)
    fields = {**FIELDS, "source": "link", "url": "https://cdn.example.com/guide"}
    token = csrf_token(client, "/admin/collateral/new")
    answer = client.post("/admin/collateral/new", data={**fields, "csrf_token": token})
    assert answer.status_code == 302, answer.text
    form = client.get("/admin/collateral/planning-guide/versions/new").text
    assert 'value="https://cdn.example.com/guide"' in form and 'value="Logistics"' in form
    token = csrf_token(client, "/admin/collateral/planning-guide/versions/new")
    fields = {k: v for k, v in fields.items() if k != "key"} | {"title": "Guide, second edition"}
    answer = client.post("/admin/collateral/planning-guide/versions/new",
                         data={**fields, "csrf_token": token})
    assert answer.status_code == 302
    assert count(CollateralVersion) == 2
    page = client.get("/admin/collateral/planning-guide").text
    assert "Version 2" in page and "Guide, second edition" in page


@pytest.mark.parametrize(("data", "name", "message"), [
    (PDF, "../../etc/passwd.pdf", "plain file name"),
    (PDF, "folder\\\\deck.pdf", "plain file name"),  # the form's quoting makes it one backslash
    (PDF, "script.exe", "is not one of"),
    (b"<html><script>alert(1)</script></html>", "fake.pdf", "content is"),
    (b"", "empty.pdf", "empty"),
])
def test_a_refused_file_says_why_beside_the_field_and_stores_nothing(client, db, app, count,
                                                                      data, name, message):
    marketer(client, db)
    before = uploads_in(app)
    answer = upload(client, "/admin/collateral/new", data, name)
    assert answer.status_code == 422, (answer.headers.get("Location"), answer.text[-3000:])
    error = re.search(r'id="file-error"[^>]*>([^<]+)<', answer.text)
    assert error and message in error.group(1), answer.text
    assert 'value="The 2027 planning guide"' in answer.text  # what was typed is kept
    assert count(CollateralVersion) == 0 and uploads_in(app) == before


def test_a_file_over_the_size_limit_is_refused_and_not_stored(client, db, app, count,
                                                              monkeypatch):
    from campaigns import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1024)
    marketer(client, db)
    before = uploads_in(app)
    answer = upload(client, "/admin/collateral/new", PDF + b"x" * 2048, "big.pdf")
    assert answer.status_code == 422 and "larger than" in answer.text
    assert count(CollateralVersion) == 0 and uploads_in(app) == before
    # far past the limit the body is not even read: 413
    huge = upload(client, "/admin/collateral/new", PDF + b"x" * 200_000, "huge.pdf")
    assert huge.status_code == 413 and count(CollateralVersion) == 0


def test_a_post_without_csrf_token_is_refused_and_changes_nothing(client, db, app, count):
    marketer(client, db)
    before = uploads_in(app)
    assert upload(client, "/admin/collateral/new", PDF + b"%csrf", "guide.pdf", token=False
                  ).status_code == 400
    assert count(CollateralVersion) == 0 and uploads_in(app) == before
    with db.session_scope() as session:
        version = service.create_collateral(
            session, "guide", {"title": "Guide", "url": "https://x.example/g"},
            actor=Actor(email="m@x", role=Role.MARKETER), now=utcnow())
        version_id = version.id
    for action in ("submit", "retire"):
        answer = client.post(f"/admin/collateral/versions/{version_id}/{action}")
        assert answer.status_code == 400
    assert count(CollateralTransition) == 1


def test_stored_script_in_a_title_is_inert(client, db):
    marketer(client, db)
    with db.session_scope() as session:
        service.create_collateral(
            session, "xss", {"title": "<script>alert('x')</script>", "url": "https://x.example/",
                             "personas": ["<img src=x onerror=alert(1)>"]},
            actor=Actor(email="m@x", role=Role.MARKETER), now=utcnow())
    for path in ("/admin/collateral", "/admin/collateral/xss"):
        page = client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(" in page


def test_where_it_is_used_and_its_numbers(client, db, make_token):
    from tests.conftest import Api
    from tests.test_api_sequences import MINIMAL, make_collateral

    make_collateral(db)
    api = Api(client, make_token(Role.MARKETER, "m"))
    doc = copy.deepcopy(MINIMAL)
    created = api.post("/api/v1/sequences", json=doc)
    assert created.status_code == 201
    assert api.post(f"/api/v1/sequences/{created.json['id']}/activate").status_code == 200
    with db.session_scope() as session:
        collateral_id = session.query(Collateral).filter_by(key="planning-guide").one().id
        today = utcnow().date()
        session.add_all([
            ReportCount(day=today, metric="collateral_sent", collateral_id=collateral_id, n=12),
            ReportCount(day=today, metric="collateral_engaged", collateral_id=collateral_id, n=5),
        ])
    marketer(client, db)
    page = client.get("/admin/collateral/planning-guide").text
    usage = re.search(r'id="usage-title".*?</section>', page, re.S).group(0)
    assert doc["name"] in usage and "live" in usage and "hello" in usage
    numbers = re.findall(r'<span class="n">([^<]+)</span>', page)
    assert numbers[:2] == ["12", "5"]
    listing = client.get("/admin/collateral").text
    row = re.search(r'<tr>\s*<td>\s*<a class="strong-link" href="/admin/collateral/planning-guide">'
                    r'.*?</tr>', listing, re.S).group(0)
    assert "1 sequence" in row and ">12<" in row and ">5<" in row
    assert client.get("/admin/collateral?status=sendable").text.count("strong-link") == 5
    assert "Nothing matches" in client.get("/admin/collateral?status=submitted").text


@pytest.mark.parametrize("path", ["/admin/collateral", "/admin/collateral/new",
                                  "/admin/collateral/guide",
                                  "/admin/collateral/guide/versions/new"])
def test_a_rep_gets_403_and_the_anonymous_sign_in(client, db, path):
    with db.session_scope() as session:
        service.create_collateral(session, "guide", {"title": "Guide", "url": "https://x.example/"},
                                  actor=Actor(email="m@x", role=Role.MARKETER), now=utcnow())
    assert client.get(path).status_code == 302
    marketer(client, db, role=Role.REP, email="rita@example.com")
    assert client.get(path).status_code == 403


def test_a_sales_approver_reads_the_library_but_does_not_add_or_submit(client, db, count):
    with db.session_scope() as session:
        version_id = service.create_collateral(
            session, "guide", {"title": "Guide", "url": "https://x.example/"},
            actor=Actor(email="m@x", role=Role.MARKETER), now=utcnow()).id
    marketer(client, db, role=Role.SALES_APPROVER, email="sal@example.com")
    page = client.get("/admin/collateral")
    assert page.status_code == 200 and "Add collateral" not in page.text
    assert client.get("/admin/collateral/new").status_code == 403
    token = csrf_token(client, "/admin/collateral/guide")
    answer = client.post(f"/admin/collateral/versions/{version_id}/submit",
                         data={"csrf_token": token})
    assert answer.status_code == 403 and count(CollateralTransition) == 1
