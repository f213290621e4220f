"""Handoff notifications: the signed CRM webhook against a real HTTP server that fails, hangs
or answers; every attempt recorded; retries with backoff; the rep's email; the SLA loop."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from campaigns.messengers import SmtpMessenger
from nurture.embedded_redis import free_port
from nurture.handoffs import services
from nurture.handoffs.delivery import RETRY_FOR, Channels, deliver
from nurture.handoffs.notifications import new_notifications
from nurture.models import (
    Handoff,
    HandoffEvent,
    HandoffNotification,
    NotificationAttempt,
    NotificationChannel,
)
from tests.test_drip_engine import Clock
from tests.test_handoffs import SCORE, T0, make_rep, recycle, rejected_lead

SECRET = "crm-secret-0123456789"


class Receiver:
    """A CRM endpoint: answers `mode` ("ok", "500", "hang"), keeps every request."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                if receiver.mode == "hang":
                    receiver.release.wait(10)
                status = 500 if receiver.mode == "500" else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/nurture"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def verified(self, index: int = -1) -> dict:
        """The request's JSON body, after checking its signature with the secret."""
        headers, body = self.requests[index]
        fields = dict(part.split("=", 1) for part in headers["Nurture-Signature"].split(","))
        expected = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + body,
                            hashlib.sha256).hexdigest()
        assert hmac.compare_digest(fields["v1"], expected)
        return json.loads(body)


@pytest.fixture()
def clock():
    return Clock(T0)


def channels(url, *, timeout=2.0, smtp_url=None):
    return Channels(crm_url=url, crm_secret=SECRET, timeout_s=timeout,
                    messenger=lambda: SmtpMessenger(smtp_url or "smtp://127.0.0.1:1"),
                    mail_from="Nurture <nurture@example.com>", base_url="https://nurture.test")


def crm_notification(db, lead_id, clock):
    recycle(db, lead_id, now=clock())
    with db.session_scope() as session:
        return session.execute(select(HandoffNotification.id).where(
            HandoffNotification.channel == NotificationChannel.CRM_WEBHOOK)).scalar_one()


def attempts(db):
    with db.session_scope() as session:
        return [(a.ok, a.status_code, a.error) for a in session.execute(
            select(NotificationAttempt).order_by(NotificationAttempt.id)).scalars()]


def test_the_crm_gets_one_signed_lead_recycled_with_the_explanation(db, receiver, clock):
    make_rep(db, "rita@example.com")
    lead_id = rejected_lead(db)
    notification_id = crm_notification(db, lead_id, clock)
    assert deliver(db, notification_id, channels(receiver.url), clock=clock) == "delivered"
    payload = receiver.verified()
    assert payload["type"] == "lead.recycled"
    assert payload["id"].startswith("evt_")
    assert payload["lead"]["id"] == lead_id and payload["lead"]["email"] == "lena@example.com"
    assert payload["score"]["total"] == SCORE["total"]
    assert [e["rule"] for e in payload["score"]["explanation"]] == [
        "pricing page visit", "webinar attended"]
    assert payload["rep_email"] == "rita@example.com"
    assert payload["rejection"]["reason"] == "no_budget"
    assert payload["sla_due_at"] == "2026-11-24T11:00:00Z"
    assert attempts(db) == [(True, 200, None)]
    # delivered: asking again sends nothing
    assert deliver(db, notification_id, channels(receiver.url), clock=clock) == "delivered"
    assert len(receiver.requests) == 1


def test_a_500_is_retried_with_backoff_under_the_same_id(db, receiver, clock, count):
    make_rep(db, "rita@example.com")
    notification_id = crm_notification(db, rejected_lead(db), clock)
    receiver.mode = "500"
    assert deliver(db, notification_id, channels(receiver.url), clock=clock) == "pending"
    assert deliver(db, notification_id, channels(receiver.url), clock=clock) == "not due"
    assert len(receiver.requests) == 1
    with db.session_scope() as session:
        assert session.get(HandoffNotification, notification_id).next_attempt_at == (
            T0 + timedelta(seconds=30))
    receiver.mode = "ok"
    clock.advance(seconds=30)
    assert deliver(db, notification_id, channels(receiver.url), clock=clock) == "delivered"
    first, second = receiver.verified(0), receiver.verified(1)
    assert first == second  # the same body, the same stable id
    assert [a[:2] for a in attempts(db)] == [(False, 500), (True, 200)]
    assert count(Handoff) == 1


def test_a_slow_crm_times_out_and_is_retried(db, receiver, clock):
    make_rep(db, "rita@example.com")
    notification_id = crm_notification(db, rejected_lead(db), clock)
    receiver.mode = "hang"
    assert deliver(db, notification_id, channels(receiver.url, timeout=0.3),
                   clock=clock) == "pending"
    [(ok, status, error)] = attempts(db)
    assert (ok, status) == (False, None) and "timed out" in error.lower()
    receiver.release.set()
    receiver.mode = "ok"
    clock.advance(minutes=1)
    assert deliver(db, notification_id, channels(receiver.url), clock=clock) == "delivered"
    assert receiver.verified(0)["id"] == receiver.verified(1)["id"]


def test_a_crm_that_is_down_is_retried_for_at_least_24_hours_then_given_up(db, clock):
    make_rep(db, "rita@example.com")
    notification_id = crm_notification(db, rejected_lead(db), clock)
    down = f"http://127.0.0.1:{free_port()}/hook"
    tries = 0
    while deliver(db, notification_id, channels(down), clock=clock) == "pending":
        tries += 1
        with db.session_scope() as session:
            clock.now = session.get(HandoffNotification, notification_id).next_attempt_at
    assert clock.now - T0 >= timedelta(hours=24)
    assert clock.now - T0 >= RETRY_FOR
    with db.session_scope() as session:
        assert session.get(HandoffNotification, notification_id).status == "failed"
        assert "crm_webhook_failed" in session.execute(select(HandoffEvent.kind)).scalars().all()
    recorded = attempts(db)
    assert len(recorded) == tries + 1 > 20
    assert all(not ok and "Connection" in error for ok, _, error in recorded)


def test_without_a_crm_url_the_webhook_is_skipped(db, clock):
    make_rep(db, "rita@example.com")
    notification_id = crm_notification(db, rejected_lead(db), clock)
    assert deliver(db, notification_id, channels(None), clock=clock) == "skipped"
    assert attempts(db) == []


def test_the_rep_gets_an_email_with_the_evidence(db, clock, smtp_server):
    sink, url = smtp_server
    make_rep(db, "rita@example.com", timezone="Europe/Berlin")
    recycle(db, rejected_lead(db), now=clock())
    with db.session_scope() as session:
        email_id = session.execute(select(HandoffNotification.id).where(
            HandoffNotification.channel == NotificationChannel.REP_EMAIL)).scalar_one()
    assert deliver(db, email_id, channels(None, smtp_url=url), clock=clock) == "delivered"
    [message] = sink.messages
    assert message["To"] == "rita@example.com"
    assert message["Subject"] == "Lena (Acme) is back: score 72"
    text = message.get_body(("plain",)).get_content()
    assert "pricing page visit: 25" in text
    assert "Tue 24 Nov 2026 12:00 CET" in text  # the SLA in the rep's zone
    with db.session_scope() as session:
        assert "rep_email_sent" in session.execute(select(HandoffEvent.kind)).scalars().all()


def test_an_smtp_server_that_refuses_is_retried(db, clock, smtp_server):
    sink, url = smtp_server
    sink.refuse = "451 try later"
    make_rep(db, "rita@example.com")
    recycle(db, rejected_lead(db), now=clock())
    with db.session_scope() as session:
        email_id = session.execute(select(HandoffNotification.id).where(
            HandoffNotification.channel == NotificationChannel.REP_EMAIL)).scalar_one()
    assert deliver(db, email_id, channels(None, smtp_url=url), clock=clock) == "pending"
    sink.refuse = None
    clock.advance(seconds=30)
    assert deliver(db, email_id, channels(None, smtp_url=url), clock=clock) == "delivered"
    assert len(sink.messages) == 1


def test_sla_missed_reminds_then_reassigns_after_a_second_window(db, clock):
    make_rep(db, "rita@example.com")
    make_rep(db, "otto@example.com")
    handoff_id, _ = recycle(db, rejected_lead(db), now=clock())

    def fire():
        with db.session_scope() as session:
            due = services.due_timers(session, now=clock())
            done = [services.escalate(session, h, now=clock()) for h in due]
            return done, new_notifications(session)

    clock.advance(minutes=59)
    assert fire() == ([], [])
    clock.advance(minutes=1)
    done, made = fire()
    assert done == ["reminded"] and len(made) == 1
    clock.advance(minutes=30)
    assert fire() == ([], [])
    clock.advance(minutes=30)
    done, made = fire()
    assert done == ["reassigned"] and len(made) == 1
    with db.session_scope() as session:
        handoff = session.get(Handoff, handoff_id)
        assert (handoff.rep_email, handoff.reassignments) == ("otto@example.com", 1)
        assert handoff.sla_due_at == clock() + timedelta(hours=1)
        kinds = session.execute(select(HandoffEvent.kind).order_by(HandoffEvent.id)).scalars()
        assert list(kinds) == ["created", "sla_missed", "reassigned"]
        purposes = session.execute(select(HandoffNotification.purpose).where(
            HandoffNotification.channel == NotificationChannel.REP_EMAIL
        ).order_by(HandoffNotification.id)).scalars()
        assert list(purposes) == ["handoff", "reminder", "reassigned"]


def test_an_answered_handoff_does_not_escalate(db, clock):
    from nurture.accounts.services import Actor
    from nurture.models import Role

    make_rep(db, "rita@example.com")
    handoff_id, _ = recycle(db, rejected_lead(db), now=clock())
    with db.session_scope() as session:
        services.accept(session, handoff_id, actor=Actor("rita@example.com", Role.REP),
                        now=clock())
    clock.advance(hours=3)
    with db.session_scope() as session:
        assert services.due_timers(session, now=clock()) == []
        assert services.escalate(session, handoff_id, now=clock()) is None


def test_every_attempt_is_visible_with_the_handoff(db, receiver, clock, client, make_token):
    from nurture.models import Role
    from tests.conftest import Api
    from tests.test_api_handoffs import user_token
    from tests.test_openapi import _check

    make_rep(db, "rita@example.com")
    make_rep(db, "otto@example.com")
    notification_id = crm_notification(db, rejected_lead(db), clock)
    receiver.mode = "500"
    deliver(db, notification_id, channels(receiver.url), clock=clock)
    receiver.mode = "ok"
    clock.advance(seconds=30)
    deliver(db, notification_id, channels(receiver.url), clock=clock)
    with db.session_scope() as session:
        handoff_id = session.execute(select(Handoff.id)).scalar_one()
    detail = Api(client, make_token(Role.MARKETER, "m")).get(f"/api/v1/handoffs/{handoff_id}")
    assert detail.status_code == 200, detail.json
    [crm] = [n for n in detail.json["notifications"] if n["channel"] == "crm_webhook"]
    assert crm["id"] == receiver.verified()["id"]
    assert [(t["ok"], t["status_code"]) for t in crm["tries"]] == [(False, 500), (True, 200)]
    assert [e["kind"] for e in detail.json["events"]] == ["created", "crm_webhook_sent"]
    _check(client.get("/api/v1/openapi.json").json, "/handoffs/{handoff_id}", "get", detail)
    otto = Api(client, user_token(db, "otto@example.com"))
    assert otto.get(f"/api/v1/handoffs/{handoff_id}").status_code == 403
    rita = Api(client, user_token(db, "rita@example.com"))
    assert rita.get(f"/api/v1/handoffs/{handoff_id}").status_code == 200
    assert rita.get("/api/v1/handoffs/424242").status_code == 404
