"""Sign-in, roles, CSRF, the sign-in rate limit, `next`, password reset and security headers
of the browser pages (nurture/web/auth, access, security)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from nurture.accounts.resets import RESET_VALID_FOR, reset_token, user_for_reset
from nurture.accounts.services import check_password, create_user
from nurture.clock import utcnow
from nurture.errors import InvalidInput
from nurture.models import Role, User
from nurture.web.security import CONTENT_SECURITY_POLICY

PASSWORD = "correct horse battery"


def make_user(db, email="mara@example.com", role=Role.MARKETER, password=PASSWORD):
    with db.session_scope() as session:
        return create_user(session, email, role, password=password, name="Mara",
                           now=utcnow()).id


def csrf_token(client, path="/auth/sign-in"):
    page = client.get(path)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def sign_in(client, email="mara@example.com", password=PASSWORD, next_=""):
    return client.post("/auth/sign-in", data={
        "csrf_token": csrf_token(client), "email": email, "password": password, "next": next_})


def test_sign_in_opens_the_dashboard_and_sign_out_ends_the_session(client, db):
    make_user(db)
    assert client.get("/").headers["Location"] == "/auth/sign-in"
    answer = sign_in(client)
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
    assert "Leads recycled to sales" in dashboard.text  # the reports' numbers
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = re.search(r'name="csrf_token" value="([^"]+)"', dashboard.text).group(1)
    assert client.post("/auth/sign-out", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").headers["Location"].startswith("/auth/sign-in?next=")


def test_a_wrong_password_is_refused_and_keeps_the_email(client, db):
    make_user(db)
    answer = sign_in(client, password="not the password")
    assert answer.status_code == 422
    assert "do not match an active account" in answer.text
    assert 'value="mara@example.com"' in answer.text  # what was typed stays
    assert 'value="not the password"' not in answer.text
    assert client.get("/admin/").status_code == 302  # not signed in


def test_a_deactivated_user_cannot_sign_in_and_is_signed_out(client, db):
    user_id = make_user(db)
    assert sign_in(client).status_code == 302
    with db.session_scope() as session:
        session.get(User, user_id).is_active = False
    assert client.get("/admin/").status_code == 302
    assert sign_in(client).status_code == 422


def test_a_flood_of_sign_ins_is_refused(client, db):
    make_user(db)
    token = csrf_token(client)
    answers = [client.post("/auth/sign-in", data={
        "csrf_token": token, "email": "mara@example.com", "password": f"guess {n}"}).status_code
        for n in range(12)]
    assert answers[:10] == [422] * 10
    assert answers[10:] == [429, 429]
    flooded = client.post("/auth/sign-in", data={"csrf_token": token, "email": "x@example.com",
                                                 "password": "y"})
    assert "Too many attempts" in flooded.text and flooded.headers["Retry-After"]
    # the right password is refused too while the limit holds: guessing gains nothing
    refused = client.post("/auth/sign-in", data={
        "csrf_token": token, "email": "mara@example.com", "password": PASSWORD})
    assert refused.status_code == 429
    assert client.get("/auth/sign-in").status_code == 200  # reading the page is not limited


def test_a_post_without_csrf_token_is_400_and_changes_nothing(client, db):
    make_user(db)
    answer = client.post("/auth/sign-in", data={"email": "mara@example.com",
                                                "password": PASSWORD})
    assert answer.status_code == 400
    assert "Nothing was changed" in answer.text  # a page of the layout, saying so
    assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert client.get("/admin/").status_code == 302  # not signed in
    # signed in, a sign-out without the token keeps the session
    assert sign_in(client).status_code == 302
    assert client.post("/auth/sign-out").status_code == 400
    assert client.get("/admin/").status_code == 200
    # a reset without the token sends nothing and changes no password
    assert client.post("/auth/reset", data={"email": "mara@example.com"}).status_code == 400


@pytest.mark.parametrize("role, status", [
    (Role.MARKETER, 403), (Role.SALES_APPROVER, 403), (Role.REP, 403), (Role.ADMIN, 200)])
def test_the_users_page_is_for_admins_only(client, db, role, status):
    make_user(db, role=role)
    sign_in(client)
    answer = client.get("/admin/users")
    assert answer.status_code == status
    if status == 403:
        assert "Your role cannot open this page" in answer.text


def test_a_rep_has_no_admin_pages(client, db):
    make_user(db, role=Role.REP)
    answer = sign_in(client)
    assert answer.headers["Location"] == "/reps/"  # the rep's inbox
    assert client.get("/admin/").status_code == 403
    assert "Dashboard" not in client.get("/auth/account").text  # no navigation to it


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "http:/evil.example", "/\r\nLocation: https://evil.example", " //evil.example",
    "evil.example",
])
def test_sign_in_refuses_an_open_redirect_through_next(client, db, target):
    make_user(db)
    answer = sign_in(client, next_=target)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/"


def test_sign_in_follows_next_on_this_site(client, db):
    make_user(db, role=Role.ADMIN)
    page = client.get("/admin/users")
    assert page.headers["Location"] == "/auth/sign-in?next=/admin/users"
    assert 'value="/admin/users"' in client.get(page.headers["Location"]).text
    assert sign_in(client, next_="/admin/users").headers["Location"] == "/admin/users"


def test_the_reset_link_is_emailed_and_works_once(client, db, app, smtp_server, monkeypatch):
    sink, url = smtp_server
    make_user(db)
    # the app reads SMTP_URL from its settings: point them at the test's SMTP server
    settings = app.extensions["nurture.settings"]
    monkeypatch.setitem(app.extensions, "nurture.settings",
                        type(settings)(**{**settings.__dict__, "smtp_url": url}))
    token = csrf_token(client, "/auth/reset")
    unknown = client.post("/auth/reset", data={"csrf_token": token, "email": "nobody@example.com"})
    known = client.post("/auth/reset", data={"csrf_token": token, "email": "mara@example.com"})
    assert unknown.status_code == known.status_code == 302  # the same answer either way
    assert len(sink.messages) == 1
    message = sink.messages[0]
    assert message["To"] == "mara@example.com"
    body = message.get_body(("plain",)).get_content()
    link = re.search(r"http://\S+/auth/reset/(\S+)", body)
    assert link, body
    path = f"/auth/reset/{link.group(1)}"

    form = client.get(path)
    assert form.status_code == 200 and "mara@example.com" in form.text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form.text).group(1)
    short = client.post(path, data={"csrf_token": token, "password": "short",
                                    "confirm": "short"})
    assert short.status_code == 422 and "12 to 256 characters" in short.text
    new = "a brand new passphrase"
    done = client.post(path, data={"csrf_token": token, "password": new, "confirm": new})
    assert done.status_code == 302 and done.headers["Location"] == "/auth/sign-in"
    with db.session_scope() as session:
        assert check_password(session, "mara@example.com", new) is not None
        assert check_password(session, "mara@example.com", PASSWORD) is None

    # used once: the link no longer works, and cannot set another password
    again = client.get(path)
    assert again.status_code == 302 and again.headers["Location"] == "/auth/reset"
    client.post(path, data={"csrf_token": token, "password": "yet another one!",
                            "confirm": "yet another one!"})
    with db.session_scope() as session:
        assert check_password(session, "mara@example.com", new) is not None


def test_a_forged_or_expired_reset_link_is_refused(client, db, app):
    user_id = make_user(db)
    secret = app.config["SECRET_KEY"]
    now = utcnow()
    with db.session_scope() as session:
        user = session.get(User, user_id)
        forged = reset_token(user, "another secret key", now=now)
        expired = reset_token(user, secret, now=now - RESET_VALID_FOR - timedelta(minutes=2))
        fresh = reset_token(user, secret, now=now)
        assert user_for_reset(session, fresh, secret, now=now).id == user_id
        for token in (forged, expired, fresh[:-2] + "xx", "garbage"):
            with pytest.raises(InvalidInput):
                user_for_reset(session, token, secret, now=now)
    for token in (forged, expired, "garbage"):
        answer = client.get(f"/auth/reset/{token}")
        assert answer.status_code == 302 and answer.headers["Location"] == "/auth/reset"
    with db.session_scope() as session:
        hashes = session.execute(select(User.password_hash)).scalars().all()
    assert len(hashes) == 1


def test_a_new_password_signs_out_other_sessions(client, db, app):
    user_id = make_user(db)
    sign_in(client)
    assert client.get("/admin/").status_code == 200
    from nurture.accounts.resets import set_password

    with db.session_scope() as session:
        set_password(session, session.get(User, user_id), "changed elsewhere!")
    assert client.get("/admin/").status_code == 302


def test_pages_carry_a_strict_content_security_policy(client, db):
    make_user(db)
    for path in ("/auth/sign-in", "/auth/reset"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert policy == CONTENT_SECURITY_POLICY
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert "unsafe" not in policy and "*" not in policy
        assert directives["frame-ancestors"] == "'none'"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
    sign_in(client)
    page = client.get("/admin/")
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text
    assert client.get("/assets/nurture.css").status_code == 200


def test_every_browser_page_declares_its_roles(app, runner):
    from nurture.cli.access import route_table, short_rule

    with app.app_context():
        rows = route_table()
    assert not [r for r in rows if r[2] == "not declared"], rows
    assert ("/admin/users", "GET", "admin") in rows
    printed = runner.invoke(args=["access"])
    assert printed.exit_code == 0 and "/auth/sign-in" in printed.output
    lines = printed.output.splitlines()
    assert len(lines) <= 60 and max(map(len, lines)) <= 160  # one screen
    for rule, _, who in rows:  # every route is there, under who may use it
        heading = next(i for i, line in enumerate(lines) if line.startswith(f"{who} ("))
        following = lines[heading + 1:]
        group = following[:next((i for i, line in enumerate(following)
                                 if not line.startswith(" ")), len(following))]
        assert any(f" {short_rule(rule)} " in f"{line} " for line in group), (rule, who)
    long = runner.invoke(args=["access", "--long"])
    assert long.exit_code == 0 and len(long.output.splitlines()) == len(rows)
