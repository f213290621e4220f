"""The operators' pages (nurture/web/admin/operations*.py): users and roles, API tokens,
integrations, CRM webhook deliveries, the outbox, the queues, the suppression list; each with
its roles, CSRF and bad input; and the services under them."""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture import create_app
from nurture.clock import utcnow
from nurture.engagement.receipts import KEPT_REFUSALS, provider_activity, record_refusal
from nurture.engagement.webhooks import record_sns_subscription, settle_sns_subscription
from nurture.handoffs.delivery import Channels, deliver
from nurture.models import (
    ApiToken,
    HandoffNotification,
    NotificationAttempt,
    NotificationChannel,
    Role,
    Suppression,
    SuppressionReason,
    SuppressionRemoval,
    User,
    WebhookRefusal,
)
from tests.test_auth import PASSWORD, csrf_token, make_user, sign_in

ADMIN = "root@example.com"
CRM_SECRET = "crm-secret-0123456789"


def operator(client, db):
    make_user(db, email=ADMIN, role=Role.ADMIN)
    sign_in(client, email=ADMIN)


def token_of(client, path):
    return csrf_token(client, path)


def user(db, email):
    with db.session_scope() as session:
        found = session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if found is not None:
            session.expunge(found)
        return found


def outbox(app) -> Path:
    return Path(app.extensions["nurture.settings"].instance_path) / "outbox"


@pytest.fixture()
def empty_outbox(app):
    shutil.rmtree(outbox(app), ignore_errors=True)
    yield outbox(app)
    shutil.rmtree(outbox(app), ignore_errors=True)


def reset_link(folder: Path, email: str) -> str:
    """The path of the reset link in the newest reset email to `email` in the outbox."""
    from email import message_from_bytes, policy

    paths = sorted(folder.glob("password-reset-*.eml"), key=lambda p: p.stat().st_mtime)
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in paths]
    mails = [m for m in mails if m["To"] == email]
    assert mails, list(folder.iterdir())
    body = mails[-1].get_body(("plain",)).get_content()
    match = re.search(r"https?://[^/\s]+(/auth/reset/\S+)", body)
    assert match, body
    return match.group(1)


# --- roles, anonymous, CSRF ------------------------------------------------------------

PAGES = ["/admin/operations", "/admin/users", "/admin/users/new", "/admin/operations/tokens",
         "/admin/operations/integrations", "/admin/operations/deliveries",
         "/admin/operations/outbox", "/admin/operations/queues",
         "/admin/operations/suppressions", "/admin/operations/suppressions.csv"]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.SALES_APPROVER, Role.REP])
def test_every_operator_page_is_403_for_other_roles(client, db, role):
    make_user(db, role=role)
    sign_in(client)
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 403, path
    # a form post is refused by role too, before anything happens
    make_user(db, email="victim@example.com", role=Role.MARKETER)
    victim = user(db, "victim@example.com")
    answer = client.post(f"/admin/users/{victim.id}/deactivate",
                         data={"csrf_token": csrf_token(client, "/auth/account")})
    assert answer.status_code == 403
    assert user(db, "victim@example.com").is_active


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 302 and "/auth/sign-in?next=" in answer.headers["Location"]


def test_every_operator_page_opens_for_an_admin_with_its_tab_current(client, db):
    operator(client, db)
    for path in PAGES[:-1]:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert 'aria-label="Operations"' in answer.text
        assert 'aria-current="page"' in answer.text
    assert client.get("/admin/operations").text.count("ops-card") >= 6


def test_posts_without_the_csrf_token_are_400_and_change_nothing(client, db, make_token, count):
    operator(client, db)
    make_user(db, email="rita@example.com", role=Role.REP)
    rita = user(db, "rita@example.com")
    make_token(Role.ADMIN, "crm")
    with db.session_scope() as session:
        token_id = session.execute(select(ApiToken.id)).scalar_one()
        session.add(Suppression(email="gone@example.com", reason=SuppressionReason.MANUAL,
                                created_at=utcnow()))
    posts = [
        ("/admin/users/new", {"email": "new@example.com", "role": "rep", "timezone": "UTC"}),
        (f"/admin/users/{rita.id}", {"role": "admin", "timezone": "UTC"}),
        (f"/admin/users/{rita.id}/deactivate", {}),
        (f"/admin/users/{rita.id}/reset", {}),
        ("/admin/operations/tokens", {"name": "sneaky", "role": "admin"}),
        (f"/admin/operations/tokens/{token_id}/revoke", {}),
        ("/admin/operations/deliveries/1/redeliver", {}),
        ("/admin/operations/queues/failed/x/requeue", {}),
        ("/admin/operations/suppressions/remove", {"email": "gone@example.com",
                                                   "reason": "they asked"}),
    ]
    users_before, tokens_before = count(User), count(ApiToken)
    for path, data in posts:
        answer = client.post(path, data=data)
        assert answer.status_code == 400, path
    assert (count(User), count(ApiToken)) == (users_before, tokens_before)
    assert user(db, "rita@example.com").role == Role.REP and user(db, "rita@example.com").is_active
    with db.session_scope() as session:
        assert session.get(ApiToken, token_id).revoked_at is None
    assert count(Suppression) == 1 and count(SuppressionRemoval) == 0


# --- users ----------------------------------------------------------------------------


def test_an_operator_creates_a_user_who_chooses_a_password_by_the_emailed_link(
        client, db, empty_outbox):
    operator(client, db)
    answer = client.post("/admin/users/new", data={
        "csrf_token": token_of(client, "/admin/users/new"), "email": "Rita@Example.com",
        "name": "Rita Rep", "role": "rep", "team": "  North   East ", "timezone": "Europe/Berlin",
        "send_link": "y"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/users"
    rita = user(db, "rita@example.com")
    assert (rita.name, rita.role, rita.team, rita.timezone) == (
        "Rita Rep", Role.REP, "North East", "Europe/Berlin")
    assert rita.password_hash is None
    listed = client.get("/admin/users").text
    assert "A link to choose a password is on its way" in listed
    assert "Rita Rep" in listed and "North East" in listed and "no password yet" in listed
    # the link is the sign-in page's own reset link: it works once
    link = reset_link(empty_outbox, "rita@example.com")
    client.post("/auth/sign-out", data={"csrf_token": csrf_token(client, "/auth/account")})
    page = client.get(link)
    assert page.status_code == 200 and "rita@example.com" in page.text
    done = client.post(link, data={"csrf_token": csrf_token(client, link),
                                   "password": "a long new passphrase",
                                   "confirm": "a long new passphrase"})
    assert done.status_code == 302
    assert sign_in(client, email="rita@example.com", password="a long new passphrase"
                   ).status_code == 302
    client.post("/auth/sign-out", data={"csrf_token": csrf_token(client, "/auth/account")})
    reused = client.get(link)
    assert reused.status_code == 302 and reused.headers["Location"] == "/auth/reset"
    assert "used already" in client.get("/auth/reset").text


def test_a_forged_reset_link_is_refused(client, db, empty_outbox):
    operator(client, db)
    make_user(db, email="rita@example.com", role=Role.REP)
    rita = user(db, "rita@example.com")
    answer = client.post(f"/admin/users/{rita.id}/reset",
                         data={"csrf_token": token_of(client, f"/admin/users/{rita.id}")})
    assert answer.status_code == 302
    assert "A reset link is on its way to rita@example.com" in client.get(
        f"/admin/users/{rita.id}").text
    link = reset_link(empty_outbox, "rita@example.com")
    forged = link[:-6] + ("AAAAAA" if not link.endswith("AAAAAA") else "BBBBBB")
    client.post("/auth/sign-out", data={"csrf_token": csrf_token(client, "/auth/account")})
    refused = client.get(forged)
    assert refused.status_code == 302 and refused.headers["Location"] == "/auth/reset"
    assert "not valid" in client.get("/auth/reset").text
    assert client.post(forged, data={"csrf_token": csrf_token(client, "/auth/reset"),
                                     "password": "x" * 20, "confirm": "x" * 20}
                       ).status_code == 302
    # the password did not change: the old one still signs in
    assert sign_in(client, email="rita@example.com", password=PASSWORD).status_code == 302


@pytest.mark.parametrize("email, error", [
    ("not-an-address", "not a valid email address"),
    ("mara@example.com", "a user with email mara@example.com exists"),
])
def test_a_bad_or_duplicate_email_is_shown_beside_the_field(client, db, count, email, error):
    operator(client, db)
    make_user(db)
    before = count(User)
    answer = client.post("/admin/users/new", data={
        "csrf_token": token_of(client, "/admin/users/new"), "email": email, "role": "marketer",
        "team": "Growth", "timezone": "UTC"})
    assert answer.status_code == 422
    beside = re.search(r'<p class="error" id="email-error">([^<]+)</p>', answer.text)
    assert beside and error.lower() in beside.group(1).lower(), answer.text
    assert 'aria-invalid="true"' in answer.text
    assert f'value="{email}"' in answer.text and 'value="Growth"' in answer.text  # kept
    assert count(User) == before


def test_a_bad_time_zone_is_shown_beside_its_field_and_nothing_is_saved(client, db, count):
    operator(client, db)
    answer = client.post("/admin/users/new", data={
        "csrf_token": token_of(client, "/admin/users/new"), "email": "tz@example.com",
        "role": "rep", "timezone": "Mars/Olympus"})
    assert answer.status_code == 422
    assert re.search(r'id="timezone-error">[^<]*not an IANA time zone', answer.text)
    assert user(db, "tz@example.com") is None


def test_an_operator_changes_a_users_role_team_and_time_zone(client, db):
    operator(client, db)
    make_user(db, email="rita@example.com", role=Role.REP)
    rita = user(db, "rita@example.com")
    page = client.get(f"/admin/users/{rita.id}")
    assert 'value="rep" selected' in page.text or '<option selected value="rep"' in page.text
    answer = client.post(f"/admin/users/{rita.id}", data={
        "csrf_token": token_of(client, f"/admin/users/{rita.id}"), "name": "Rita Lead",
        "role": "sales_approver", "team": "EMEA", "timezone": "America/New_York"})
    assert answer.status_code == 302
    changed = user(db, "rita@example.com")
    assert (changed.name, changed.role, changed.team, changed.timezone) == (
        "Rita Lead", Role.SALES_APPROVER, "EMEA", "America/New_York")


def test_an_operator_cannot_take_their_own_admin_role_or_deactivate_themselves(client, db):
    operator(client, db)
    me = user(db, ADMIN)
    answer = client.post(f"/admin/users/{me.id}", data={
        "csrf_token": token_of(client, f"/admin/users/{me.id}"), "role": "marketer",
        "timezone": "UTC"})
    assert answer.status_code == 422
    assert re.search(r'id="role-error">You cannot take the admin role', answer.text)
    answer = client.post(f"/admin/users/{me.id}/deactivate",
                         data={"csrf_token": token_of(client, f"/admin/users/{me.id}")})
    assert answer.status_code == 302
    assert "You cannot deactivate yourself" in client.get(f"/admin/users/{me.id}").text
    assert user(db, ADMIN).is_active and user(db, ADMIN).role == Role.ADMIN


def test_deactivating_signs_the_user_out_and_revokes_their_tokens(client, db, app):
    from nurture.accounts.services import create_token

    operator(client, db)
    make_user(db, email="rita@example.com", role=Role.REP)
    rita = user(db, "rita@example.com")
    with db.session_scope() as session:
        _, token = create_token(session, "rita's phone", Role.REP, user_id=rita.id, now=utcnow())
    rep_client = app.test_client()
    sign_in(rep_client, email="rita@example.com")
    assert rep_client.get("/auth/account").status_code == 200
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/handoffs?status=open", headers=bearer).status_code == 200
    answer = client.post(f"/admin/users/{rita.id}/deactivate",
                         data={"csrf_token": token_of(client, f"/admin/users/{rita.id}")})
    assert answer.status_code == 302
    assert "is deactivated" in client.get(f"/admin/users/{rita.id}").text
    assert api.get("/api/v1/handoffs?status=open", headers=bearer).status_code == 401
    assert rep_client.get("/auth/account").status_code == 302  # signed out
    assert sign_in(app.test_client(), email="rita@example.com").status_code == 422
    # reactivated: signs in again, the token stays revoked
    client.post(f"/admin/users/{rita.id}/reactivate",
                data={"csrf_token": token_of(client, f"/admin/users/{rita.id}")})
    assert sign_in(app.test_client(), email="rita@example.com").status_code == 302
    assert api.get("/api/v1/handoffs?status=open", headers=bearer).status_code == 401


def test_an_unknown_user_is_404(client, db):
    operator(client, db)
    assert client.get("/admin/users/999999").status_code == 404


# --- tokens ---------------------------------------------------------------------------


def test_a_token_is_shown_once_and_revoking_it_stops_it_at_once(client, db, app):
    operator(client, db)
    answer = client.post("/admin/operations/tokens", data={
        "csrf_token": token_of(client, "/admin/operations/tokens"), "name": "salesforce",
        "role": "admin"})
    assert answer.status_code == 200
    token = re.search(r'id="new-token"[^>]*value="(nrt_[A-Za-z0-9_-]+)"', answer.text).group(1)
    assert "It is not shown again" in answer.text
    listed = client.get("/admin/operations/tokens").text
    assert token not in listed and token[:10] in listed and "salesforce" in listed
    with db.session_scope() as session:
        record = session.execute(select(ApiToken)).scalar_one()
        assert record.token_hash != token and record.role == Role.ADMIN
        token_id = record.id
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/handoffs?status=open", headers=bearer).status_code == 200
    revoked = client.post(f"/admin/operations/tokens/{token_id}/revoke",
                          data={"csrf_token": token_of(client, "/admin/operations/tokens")})
    assert revoked.status_code == 302
    refused = api.get("/api/v1/handoffs?status=open", headers=bearer)
    assert refused.status_code == 401 and "revoked" in refused.json["detail"]
    assert ">revoked<" in client.get("/admin/operations/tokens").text


def test_a_token_without_a_name_is_refused_beside_the_field(client, db, count):
    operator(client, db)
    answer = client.post("/admin/operations/tokens", data={
        "csrf_token": token_of(client, "/admin/operations/tokens"), "name": "  ",
        "role": "admin"})
    assert answer.status_code == 422
    assert re.search(r'id="name-error">[^<]*Name the token', answer.text)
    assert "nrt_" not in answer.text and count(ApiToken) == 0


def test_revoking_an_unknown_token_is_404(client, db):
    operator(client, db)
    assert client.post("/admin/operations/tokens/424242/revoke", data={
        "csrf_token": token_of(client, "/admin/operations/tokens")}).status_code == 404


# --- integrations ---------------------------------------------------------------------


def test_refusals_are_recorded_with_their_reasons_and_shown(client, db, providers):
    webhook = providers.app.test_client()
    bad = webhook.post("/webhooks/mailgun", json={
        "signature": {"timestamp": str(int(utcnow().timestamp())), "token": "t" * 50,
                      "signature": "0" * 64},
        "event-data": {"event": "delivered", "id": "x", "timestamp": 1.0,
                       "recipient": "a@example.com"}})
    assert bad.status_code in (401, 403)
    unconfigured = client.post("/webhooks/sendgrid", data=b"[]",
                               headers={"Content-Type": "application/json"})
    assert unconfigured.status_code == 503
    with db.session_scope() as session:
        rows = {r.provider: (r.status, r.reason) for r in
                session.execute(select(WebhookRefusal)).scalars()}
    assert rows["mailgun"][0] == bad.status_code and "signature" in rows["mailgun"][1]
    assert rows["sendgrid"][0] == 503
    operator(client, db)
    page = client.get("/admin/operations/integrations").text
    mailgun = page.split('id="provider-mailgun"')[1].split("</li>\n{% endfor")[0]
    assert str(bad.status_code) in mailgun and rows["mailgun"][1][:30] in page
    assert "not configured" in page.split('id="provider-sendgrid"')[1][:400]


def test_an_accepted_request_is_the_providers_last_event(client, db, providers):
    from tests.test_webhooks_postmark import post, record

    answer = post(providers, json.dumps(record("Delivery")).encode())
    assert answer.status_code == 200, answer.text
    with db.session_scope() as session:
        activity = {a.provider: a for a in provider_activity(session)}
    assert activity["postmark"].last_accepted_at is not None
    assert activity["sendgrid"].last_accepted_at is None
    operator(client, db)
    page = client.get("/admin/operations/integrations").text
    assert "nothing received yet" in page
    assert "just now" in page.split('id="provider-postmark"')[1][:1500]


def test_only_the_last_refusals_are_kept_per_provider(db):
    now = utcnow()
    with db.session_scope() as session:
        for n in range(KEPT_REFUSALS + 5):
            record_refusal(session, "sendgrid", status=401, reason=f"bad signature {n}",
                           remote_addr="203.0.113.9", now=now + timedelta(seconds=n))
        record_refusal(session, "ses", status=403, reason="topic not allowed",
                       remote_addr=None, now=now)
    with db.session_scope() as session:
        kept = session.execute(select(WebhookRefusal.reason).where(
            WebhookRefusal.provider == "sendgrid").order_by(WebhookRefusal.id)).scalars().all()
        assert len(kept) == KEPT_REFUSALS
        assert kept[0] == "bad signature 5" and kept[-1] == f"bad signature {KEPT_REFUSALS + 4}"
        latest = {a.provider: a for a in provider_activity(session)}
        assert latest["sendgrid"].refusals[0].reason == f"bad signature {KEPT_REFUSALS + 4}"
        assert latest["ses"].refusals[0].status == 403


def test_pending_sns_confirmations_are_shown_with_what_to_do(client, db):
    with db.session_scope() as session:
        pending = record_sns_subscription(
            session, kind="SubscriptionConfirmation", message_id="m-1",
            topic_arn="arn:aws:sns:eu-west-1:123456789012:ses-events",
            subscribe_url="https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&T=1",
            token="tok", now=utcnow())
        settle_sns_subscription(session, pending.id, error="connection refused", now=utcnow())
    operator(client, db)
    page = client.get("/admin/operations/integrations").text
    assert "1 Amazon SNS subscription waiting for confirmation" in page
    assert "connection refused" in page and "ConfirmSubscription&amp;T=1" in page
    assert "SNS confirmation pending" in client.get("/admin/operations").text


# --- CRM deliveries -------------------------------------------------------------------


class Crm:
    """A CRM endpoint that refuses (500 with a JSON reason) until told to accept."""

    def __init__(self) -> None:
        self.accept = False
        self.received: list[bytes] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                crm.received.append(self.rfile.read(int(self.headers["Content-Length"])))
                status, body = ((202, b'{"ok": true, "crm_id": "00Q5e000001"}') if crm.accept
                                else (500, b'{"error": "lead locked by another sync"}'))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/nurture"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def crm_receiver():
    crm = Crm()
    try:
        yield crm
    finally:
        crm.close()


def failed_delivery(db, crm_url: str) -> int:
    """A lead recycled to its rep, its CRM webhook tried once and refused."""
    from tests.test_handoffs import make_rep, recycle, rejected_lead

    make_rep(db, "rita@example.com")
    recycle(db, rejected_lead(db), now=utcnow())
    with db.session_scope() as session:
        notification_id = session.execute(select(HandoffNotification.id).where(
            HandoffNotification.channel == NotificationChannel.CRM_WEBHOOK)).scalar_one()
    channels = Channels(crm_url=crm_url, crm_secret=CRM_SECRET, messenger=lambda: None,
                        mail_from="n@example.com", base_url="http://x", timeout_s=3.0)
    assert deliver(db, notification_id, channels, clock=utcnow) == "pending"
    return notification_id


@pytest.fixture()
def crm_app(service_env):
    with crm_receiver() as crm:
        application = create_app({**service_env, "TESTING": True,
                                  "CRM_WEBHOOK_URL": crm.url, "CRM_WEBHOOK_SECRET": CRM_SECRET})
        yield application, crm
        application.extensions["nurture.db"].dispose()


def test_an_operator_redelivers_a_refused_crm_webhook_and_sees_every_attempt(db, crm_app):
    application, crm = crm_app
    client = application.test_client()
    notification_id = failed_delivery(db, crm.url)
    operator(client, db)
    page = client.get("/admin/operations/deliveries").text
    assert "lena@example.com" in page and ">retrying<" in page
    assert "lead locked by another sync" in page and ">500<" in page
    crm.accept = True
    answer = client.post(f"/admin/operations/deliveries/{notification_id}/redeliver",
                         data={"csrf_token": token_of(client, "/admin/operations/deliveries")})
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"#delivery-{notification_id}")
    page = client.get("/admin/operations/deliveries").text
    assert f"Delivery {notification_id} is delivered again (HTTP 202" in page
    attempts = re.findall(r'<tr class="attempt">(.*?)</tr>', page, re.S)
    assert len(attempts) == 2
    assert ">500<" in attempts[0] and "lead locked" in attempts[0]
    assert ">202<" in attempts[1] and "00Q5e000001" in attempts[1]
    assert len(crm.received) == 2 and crm.received[0] == crm.received[1]  # the same body, id
    with db.session_scope() as session:
        assert session.get(HandoffNotification, notification_id).status == "delivered"
        excerpts = session.execute(select(NotificationAttempt.response_excerpt).order_by(
            NotificationAttempt.id)).scalars().all()
    assert json.loads(excerpts[0]) == {"error": "lead locked by another sync"}
    # the filter shows it under delivered, not under retrying
    assert f"delivery-{notification_id}" in client.get(
        "/admin/operations/deliveries?status=delivered").text
    assert "No retrying deliveries" in client.get("/admin/operations/deliveries?status=pending").text


def test_a_redelivery_refused_again_is_said_plainly_and_stays_retrying(db, crm_app):
    application, crm = crm_app
    client = application.test_client()
    notification_id = failed_delivery(db, crm.url)
    operator(client, db)
    client.post(f"/admin/operations/deliveries/{notification_id}/redeliver",
                data={"csrf_token": token_of(client, "/admin/operations/deliveries")})
    page = client.get("/admin/operations/deliveries").text
    assert "The CRM refused it again (HTTP 500" in page
    assert len(re.findall(r'<tr class="attempt">', page)) == 2
    with db.session_scope() as session:
        assert session.get(HandoffNotification, notification_id).status == "pending"


def test_redelivering_an_unknown_delivery_is_404(client, db):
    operator(client, db)
    assert client.post("/admin/operations/deliveries/987654/redeliver", data={
        "csrf_token": token_of(client, "/admin/operations/deliveries")}).status_code == 404


def test_without_a_crm_url_the_deliveries_page_says_what_to_set(client, db):
    operator(client, db)
    page = client.get("/admin/operations/deliveries").text
    assert "CRM_WEBHOOK_URL is not set" in page and "No CRM deliveries yet" in page


# --- outbox ---------------------------------------------------------------------------


def test_the_outbox_lists_and_shows_emails_and_keeps_their_html_sandboxed(
        client, db, empty_outbox):
    operator(client, db)
    make_user(db, email="rita@example.com", role=Role.REP)
    rita = user(db, "rita@example.com")
    client.post(f"/admin/users/{rita.id}/reset",
                data={"csrf_token": token_of(client, f"/admin/users/{rita.id}")})
    page = client.get("/admin/operations/outbox").text
    assert "SMTP_URL is not set" in page and "rita@example.com" in page
    name = re.search(r'href="/admin/operations/outbox/([^"]+)"', page).group(1)
    shown = client.get(f"/admin/operations/outbox/{name}")
    assert shown.status_code == 200 and "/auth/reset/" in shown.text
    assert 'sandbox src="/admin/operations/outbox/' in shown.text
    assert "frame-src 'self'" in shown.headers["Content-Security-Policy"]
    html = client.get(f"/admin/operations/outbox/{name}/html")
    assert html.status_code == 200 and "sandbox" in html.headers["Content-Security-Policy"]
    assert "script-src" not in html.headers["Content-Security-Policy"]
    for bad in ("..%2Fnurture.db", "..", ".hidden.eml", "x.txt"):
        assert client.get(f"/admin/operations/outbox/{bad}").status_code == 404


def test_an_empty_outbox_says_how_to_send_real_mail(client, db, empty_outbox):
    operator(client, db)
    assert "set SMTP_URL" in client.get("/admin/operations/outbox").text


# --- queues ---------------------------------------------------------------------------


def test_a_failed_job_is_shown_with_its_error_and_requeued(client, db, app):
    from rq import SimpleWorker

    from workers.queues import QueueName, queue

    connection = app.extensions["nurture.redis"]
    q = queue(connection, QueueName.DEFAULT)
    q.enqueue_call("workers.inspection.queue_counts", args=("not a redis",), job_id="broken-1",
                   description="queue_counts('not a redis')")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        SimpleWorker([q], connection=connection).work(burst=True)
    finally:  # the worker installs its own; pytest's own must come back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    operator(client, db)
    page = client.get("/admin/operations/queues").text
    assert "broken-1" in page and "AttributeError" in page
    assert re.search(r'<th scope="row">default</th>(.*?)</tr>', page, re.S).group(1).count(
        'status-bad">1<') == 1
    answer = client.post("/admin/operations/queues/failed/broken-1/requeue",
                         data={"csrf_token": token_of(client, "/admin/operations/queues")})
    assert answer.status_code == 302
    assert "is back on the default queue" in client.get("/admin/operations/queues").text
    assert q.count == 1 and "broken-1" in q.job_ids
    again = client.post("/admin/operations/queues/failed/broken-1/requeue",
                        data={"csrf_token": token_of(client, "/admin/operations/queues")})
    assert again.status_code == 302
    assert "no longer among the failed ones" in client.get("/admin/operations/queues").text


def test_no_worker_running_is_said(client, db):
    operator(client, db)
    assert "No worker is running" in client.get("/admin/operations/queues").text


# --- suppressions ---------------------------------------------------------------------


def suppress(db, *rows):
    with db.session_scope() as session:
        for email, reason, source in rows:
            session.add(Suppression(email=email, reason=reason, source=source,
                                    created_at=utcnow()))


def test_the_suppression_list_is_searched_and_stored_script_stays_inert(client, db):
    suppress(db, ("ann@example.com", SuppressionReason.UNSUBSCRIBED, "unsubscribe link"),
             ("bob@example.com", SuppressionReason.HARD_BOUNCE, "<script>alert(1)</script>"),
             ("cat@other.example.org", SuppressionReason.COMPLAINT, "sendgrid spamreport"))
    operator(client, db)
    page = client.get("/admin/operations/suppressions").text
    assert "1 unsubscribed, 1 hard bounced, 1 complained" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    found = client.get("/admin/operations/suppressions?q=EXAMPLE.COM").text
    assert "ann@example.com" in found and "bob@example.com" in found and "cat@other" not in found
    bounced = client.get("/admin/operations/suppressions?reason=hard_bounce").text
    assert "bob@example.com" in bounced and "ann@example.com" not in bounced
    wildcard = client.get("/admin/operations/suppressions?q=%25").text  # a literal %
    assert "No suppression matches" in wildcard


def test_the_suppression_list_is_exported_as_csv_without_formulas(client, db):
    suppress(db, ("ann@example.com", SuppressionReason.UNSUBSCRIBED, "=HYPERLINK(\"x\")"),
             ("bob@example.com", SuppressionReason.MANUAL, None))
    operator(client, db)
    answer = client.get("/admin/operations/suppressions.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    lines = answer.text.strip().splitlines()
    assert lines[0] == "email,reason,source,suppressed_at"
    assert lines[1].startswith("ann@example.com,unsubscribed,\"'=HYPERLINK")
    assert lines[2].startswith("bob@example.com,manual,,")


def test_removing_a_suppression_keeps_who_why_and_what_it_was(client, db, count):
    suppress(db, ("ann@example.com", SuppressionReason.UNSUBSCRIBED, "unsubscribe link"))
    operator(client, db)
    form = client.get("/admin/operations/suppressions/remove?email=ann@example.com")
    assert form.status_code == 200 and "unsubscribed" in form.text
    path = "/admin/operations/suppressions/remove?email=ann@example.com"
    empty = client.post("/admin/operations/suppressions/remove", data={
        "csrf_token": token_of(client, path), "email": "ann@example.com", "reason": " "})
    assert empty.status_code == 422 and 'id="reason-error"' in empty.text
    assert count(Suppression) == 1 and count(SuppressionRemoval) == 0
    done = client.post("/admin/operations/suppressions/remove", data={
        "csrf_token": token_of(client, path), "email": "ann@example.com",
        "reason": "Asked by phone to receive emails again, ticket 4411"})
    assert done.status_code == 302
    assert count(Suppression) == 0
    with db.session_scope() as session:
        removal = session.execute(select(SuppressionRemoval)).scalar_one()
        assert (removal.email, removal.suppressed_reason, removal.removed_by) == (
            "ann@example.com", "unsubscribed", ADMIN)
        assert removal.reason.startswith("Asked by phone")
    page = client.get("/admin/operations/suppressions").text
    assert "Recently removed" in page and "ticket 4411" in page
    assert client.get(path).status_code == 404  # not on the list any more
