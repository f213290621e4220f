"""Email templates in the admin (nurture/web/admin/emails.py) and the storage behind them
(campaigns/templates.py): what is saved is what validation and sending use."""

from __future__ import annotations

import copy
import re

import pytest

from campaigns import templates as service
from campaigns.rendering import make_environment, render_email, sample_context, shared_environment
from nurture.clock import utcnow
from nurture.models import Role
from nurture.models.templates import EmailTemplate, EmailTemplateRevision
from tests.test_auth import csrf_token, make_user, sign_in
from tests.test_drip_engine import sending  # noqa: F401  (a fixture)

GOOD_HTML = "<p>Hi {{ lead.first_name }},</p>\n<p>Budgets move. Ours did too.</p>\n"
BROKEN_HTML = "<p>Hi {{ lead.first_name }},</p>\n<p>Budgets move.</p>\n<p>{% if lead.company %}</p>\n"


@pytest.fixture(autouse=True)
def _forget_stored_templates():
    """The process's sending environment keeps its snapshot of the stored templates; the
    tables are emptied after each test, so the snapshot is too."""
    yield
    shared_environment().loader.store.replace({}, None)


def signed_in(client, db, role=Role.MARKETER):
    make_user(db, role=role)
    sign_in(client)


def post(client, path, data, token=True):
    if token:
        data = {"csrf_token": csrf_token(client, path if "/reset" not in path else
                                         path.rsplit("/", 1)[0]), **data}
    return client.post(path, data=data)


# the service: storage that keeps the engine's behaviour


def test_a_saved_template_overrides_the_shipped_one_for_validation_and_sending(db):
    with db.session_scope() as session:
        shipped = service.get_template(session, "check-in")
        assert not shipped.edited and shipped.shipped
        saved = service.save_template(session, "check-in", "Still there, {{ lead.first_name }}?",
                                      GOOD_HTML, "Hi {{ lead.first_name }}", actor="m@x",
                                      now=utcnow())
        assert saved.revision == 1 and saved.edited
    env = shared_environment()  # the process's sending environment
    before = render_email(env, "check-in", sample_context())
    with db.session_scope() as session:
        assert service.refresh_stored(session, env) is True
        assert service.refresh_stored(session, env) is False  # nothing new: one small query
    after = render_email(env, "check-in", sample_context())
    assert after.subject == "Still there, Sam?" and "Ours did too" in after.html
    assert before.subject != after.subject
    with db.session_scope() as session:  # back to the shipped text: sending follows
        service.reset_template(session, "check-in", actor="m@x", now=utcnow())
    with db.session_scope() as session:
        assert service.refresh_stored(session, env) is True
    assert render_email(env, "check-in", sample_context()).subject == before.subject


def test_a_broken_template_is_refused_at_its_part_and_line_and_nothing_is_stored(db, count):
    with db.session_scope() as session, pytest.raises(service.TemplateInvalid) as refused:
        service.save_template(session, "check-in", "Hi {{ lead.first_name }", BROKEN_HTML, "x",
                              actor="m@x", now=utcnow())
    by_field = {p.field: p for p in refused.value.problems}
    assert by_field["subject"].line == 1
    assert by_field["html"].line == 3 and "endif" in by_field["html"].message
    assert count(EmailTemplate) == 0 and count(EmailTemplateRevision) == 0


def test_a_runtime_error_is_shown_at_its_line(db):
    html = "<p>Hi</p>\n<p>{{ lead.nickname.upper() }}</p>\n"
    problems = service.check_text("Hello", html, "Hello")
    assert [(p.field, p.line) for p in problems] == [("html", 2)], problems
    assert "nickname" in problems[0].message
    unsafe = service.check_text("Hello", "{{ lead.__class__.__mro__ }}", "x")
    assert unsafe and unsafe[0].field == "html" and "unsafe" in unsafe[0].message


def test_sequence_validation_sees_templates_written_in_the_admin(db, api):
    from tests.test_api_sequences import MINIMAL, make_collateral

    make_collateral(db)
    doc = copy.deepcopy(MINIMAL)
    doc["stages"][0]["steps"][0]["template"] = "budget-thaw"
    refused = api.post("/api/v1/sequences", json=doc)
    assert refused.status_code == 422 and "no template" in str(refused.json["errors"])
    with db.session_scope() as session:
        service.save_template(session, "budget-thaw", "Budgets thaw", GOOD_HTML, "Hi",
                              actor="m@x", now=utcnow(), create=True)
    assert api.post("/api/v1/sequences", json=doc).status_code == 201


def test_system_emails_and_bad_names_are_not_edited_here(db):
    with db.session_scope() as session:
        names = [t.name for t in service.list_templates(session)]
        assert "check-in" in names and "handoff" not in names and "password-reset" not in names
        for name in ("handoff", "../etc", "Layout", "layout", ""):
            with pytest.raises(Exception):  # noqa: B017  InvalidInput or NotFound
                service.save_template(session, name, "s", GOOD_HTML, "t", actor="m@x",
                                      now=utcnow(), create=True)


# the pages


def test_the_list_shows_each_template_its_subject_and_the_sequences_using_it(client, db, api):
    from tests.test_api_sequences import MINIMAL, make_collateral

    make_collateral(db)
    doc = copy.deepcopy(MINIMAL)
    assert api.post("/api/v1/sequences", json=doc).status_code == 201
    used = doc["stages"][0]["steps"][0]["template"]
    signed_in(client, db)
    page = client.get("/admin/templates")
    assert page.status_code == 200
    row = re.search(rf'<tr>\s*<td><a class="strong-link" href="/admin/templates/{used}">.*?</tr>',
                    page.text, re.S)
    assert row and doc["name"] in row.group(0), page.text
    assert "shipped default" in page.text
    assert 'href="/admin/templates/handoff"' not in page.text


def test_editing_shows_the_error_at_its_line_keeps_the_text_then_saves(client, db, count):
    signed_in(client, db)
    page = client.get("/admin/templates/check-in")
    assert page.status_code == 200 and 'sandbox=""' in page.text
    assert "frame-src 'self'" in page.headers["Content-Security-Policy"]
    answer = post(client, "/admin/templates/check-in",
                  {"subject": "Checking in", "html": BROKEN_HTML, "text": "Hi"})
    assert answer.status_code == 422
    assert "HTML, line 3" in answer.text and "excerpt-here" in answer.text
    assert re.search(r'id="html-error">Line 3: [^<]*endif', answer.text), answer.text
    assert "{% if lead.company %}" in answer.text  # what was typed is kept
    assert count(EmailTemplate) == 0
    fixed = BROKEN_HTML + "{% endif %}\n"
    saved = post(client, "/admin/templates/check-in",
                 {"subject": "Checking in", "html": fixed, "text": "Hi"})
    assert saved.status_code == 302 and saved.headers["Location"] == "/admin/templates/check-in"
    page = client.get("/admin/templates/check-in").text
    assert "Saved revision 1" in page and "edited · rev 1" in page
    with db.session_scope() as session:
        assert service.get_template(session, "check-in").html == fixed


def test_a_new_template_is_created_and_its_name_checked(client, db, count):
    signed_in(client, db)
    assert client.get("/admin/templates/new").status_code == 200
    taken = post(client, "/admin/templates/new", {"name": "check-in", "subject": "s",
                                                  "html": GOOD_HTML, "text": "t"})
    assert taken.status_code == 422 and "that name is taken" in taken.text
    bad = post(client, "/admin/templates/new", {"name": "../../etc/passwd", "subject": "s",
                                                "html": GOOD_HTML, "text": "t"})
    assert bad.status_code == 422 and "lowercase letters" in bad.text
    assert count(EmailTemplate) == 0
    made = post(client, "/admin/templates/new", {"name": "budget-thaw", "subject": "Hello",
                                                 "html": GOOD_HTML, "text": "t"})
    assert made.status_code == 302 and made.headers["Location"] == "/admin/templates/budget-thaw"
    assert count(EmailTemplate) == 1


def test_the_preview_is_the_email_under_a_policy_without_script(client, db):
    signed_in(client, db)
    with db.session_scope() as session:
        service.save_template(session, "check-in", "Hi",
                              '<p>{{ "<script>alert(1)</script>" }}</p><p>Hi {{ lead.first_name }}</p>',
                              "t", actor="m@x", now=utcnow())
    preview = client.get("/admin/templates/check-in/preview")
    assert preview.status_code == 200 and "Hi Sam" in preview.text
    policy = preview.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy and "sandbox" in policy
    assert preview.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "<script>" not in preview.text and "&lt;script&gt;" in preview.text
    assert client.get("/admin/templates/no-such/preview").status_code == 404


def test_the_preview_for_a_real_lead_and_for_an_unknown_address(client, db, api):
    answer = api.post("/api/v1/leads", json={"email": "vera@acme.example", "first_name": "Vera",
                                             "company": "<b>Acme</b>"})
    assert answer.status_code == 201
    signed_in(client, db)
    page = client.get("/admin/templates/check-in?lead=vera@acme.example").text
    assert "for vera@acme.example" in page
    assert "/admin/templates/check-in/preview?lead=vera@acme.example" in page
    preview = client.get("/admin/templates/check-in/preview?lead=vera@acme.example").text
    assert "Hi Vera" in preview and "&lt;b&gt;Acme&lt;/b&gt;" in preview
    unknown = client.get("/admin/templates/check-in?lead=nobody@example.com").text
    assert "No lead has the address nobody@example.com" in unknown
    assert "for the sample lead Sam Sample" in unknown
    assert client.get("/admin/templates/check-in/preview?lead=nobody@example.com"
                      ).status_code == 404


def test_stored_script_in_a_template_stays_inert_in_the_editor(client, db):
    signed_in(client, db)
    with db.session_scope() as session:
        service.save_template(session, "check-in", "</textarea><script>alert(1)</script>",
                              "<p>x</p><script>alert(2)</script>", "t", actor="m@x",
                              now=utcnow())
    page = client.get("/admin/templates/check-in").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    # the email's own HTML only ever reaches the browser through the sandboxed preview
    preview = client.get("/admin/templates/check-in/preview")
    assert "<script>alert(2)</script>" in preview.text  # what the marketer wrote, as written
    assert "script-src" not in preview.headers["Content-Security-Policy"]
    assert "sandbox" in preview.headers["Content-Security-Policy"]


def test_a_post_without_csrf_token_is_refused_and_changes_nothing(client, db, count):
    signed_in(client, db)
    answer = post(client, "/admin/templates/check-in",
                  {"subject": "x", "html": GOOD_HTML, "text": "t"}, token=False)
    assert answer.status_code == 400
    answer = post(client, "/admin/templates/new",
                  {"name": "fresh", "subject": "x", "html": GOOD_HTML, "text": "t"}, token=False)
    assert answer.status_code == 400
    assert count(EmailTemplate) == 0


def test_reset_goes_back_to_the_shipped_text(client, db, count):
    signed_in(client, db)
    with db.session_scope() as session:
        service.save_template(session, "check-in", "Mine", GOOD_HTML, "t", actor="m@x",
                              now=utcnow())
    assert client.post("/admin/templates/check-in/reset").status_code == 400  # no token
    assert count(EmailTemplate) == 1
    token = csrf_token(client, "/admin/templates/check-in")
    answer = client.post("/admin/templates/check-in/reset", data={"csrf_token": token})
    assert answer.status_code == 302
    assert count(EmailTemplate) == 0 and count(EmailTemplateRevision) == 2


@pytest.mark.parametrize("path", ["/admin/templates", "/admin/templates/new",
                                  "/admin/templates/check-in",
                                  "/admin/templates/check-in/preview"])
def test_templates_are_for_marketers_and_admins(client, db, path):
    assert client.get(path).status_code == 302  # anonymous: to the sign-in page
    make_user(db, email="rita@example.com", role=Role.REP)
    sign_in(client, email="rita@example.com")
    assert client.get(path).status_code == 403
    client.post("/auth/sign-out", data={"csrf_token": csrf_token(client, "/auth/account")})
    make_user(db, email="sal@example.com", role=Role.SALES_APPROVER)
    sign_in(client, email="sal@example.com")
    assert client.get(path).status_code == 403


def test_the_admin_role_may_edit_templates(client, db):
    make_user(db, role=Role.ADMIN)
    sign_in(client)
    assert client.get("/admin/templates/check-in").status_code == 200


def test_an_edited_template_is_what_the_engine_sends(db):
    """The environment sending builds from the store: a fresh one sees the saved text."""
    with db.session_scope() as session:
        service.save_template(session, "check-in", "Edited {{ lead.company }}", GOOD_HTML,
                              "t", actor="m@x", now=utcnow())
        env = make_environment(service.stored_templates(session))
    assert render_email(env, "check-in", sample_context()).subject == "Edited Example Corp"


def test_the_drip_engine_sends_the_saved_text_and_the_next_revision_at_once(db, sending):  # noqa: F811
    """Through the engine itself: a worker's long-lived environment sends what was saved,
    and a later save from its next batch on."""
    from tests.test_drip_engine import T0, Clock, reject, setup_sequence, tick

    sink, make = sending
    clock = Clock(T0)
    setup_sequence(db, clock)
    with db.session_scope() as session:
        service.save_template(session, "check-in", "Budgets thaw, {{ lead.first_name }}",
                              GOOD_HTML, "Hi {{ lead.first_name }}", actor="m@x", now=utcnow())
    reject(db, clock, email="one@example.com")
    tick(db, clock, make)
    assert [m["Subject"] for m in sink.messages] == ["Budgets thaw, Lee"]
    assert "Ours did too" in sink.messages[0].get_body(("html",)).get_content()
    with db.session_scope() as session:
        service.save_template(session, "check-in", "Second thoughts, {{ lead.first_name }}?",
                              GOOD_HTML, "Hi", actor="m@x", now=utcnow())
    reject(db, clock, email="two@example.com")
    tick(db, clock, make)
    assert [m["Subject"] for m in sink.messages][-1] == "Second thoughts, Lee?"
