"""The webhooks over real HTTP: `nurture serve` (gunicorn) and `nurture worker` as processes.

For each provider (SendGrid, Mailgun, Postmark, SES over SNS) a signed event is stored and
matched, and a redelivery changes nothing; every refusal of the Flask-level tests
(tests/test_webhooks_*.py) is answered with the same status and stores nothing. Each test
starts one server: the process start is the slow part, so each groups many requests."""

from __future__ import annotations

import copy
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nurture.models import EventType
from tests.provider_signing import (
    SNS_TOPIC_ARN,
    SnsSigner,
    fixture,
    mailgun_request,
    mailgun_signature,
    postmark_auth_header,
    sendgrid_key_pair,
    sign_sendgrid,
)
from tests.test_drip_e2e import FLOW_TIMEOUT_S, Answer, System
from tests.test_drip_e2e import http as request
from tests.test_processes import wait_until
from tests.webhook_app import (
    MAILGUN_KEY,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    seed,
    stored_events,
)

POSTMARK_AUTH = postmark_auth_header(POSTMARK_USER, POSTMARK_PASSWORD)

TEN_MB = 10 * 1024 * 1024


class WebhookSystem(System):
    """The processes, with every provider's webhook configured (keys made now; the SNS
    certificate written into a SES_SNS_CERTIFICATES directory under `cwd`)."""

    def __init__(self, service_env: dict[str, str], smtp_url: str, cwd: Path) -> None:
        super().__init__(service_env, smtp_url, cwd)
        self.sendgrid_key, sendgrid_public_key = sendgrid_key_pair()
        certificates = cwd / "sns-certificates"
        certificates.mkdir()
        self.sns = SnsSigner.create(certificates)
        self.env.update(
            SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid_public_key,
            MAILGUN_WEBHOOK_SIGNING_KEY=MAILGUN_KEY,
            POSTMARK_WEBHOOK_USERNAME=POSTMARK_USER,
            POSTMARK_WEBHOOK_PASSWORD=POSTMARK_PASSWORD,
            SES_SNS_TOPIC_ARNS=SNS_TOPIC_ARN,
            SES_SNS_CERTIFICATES=str(certificates),
        )

    def post(self, provider: str, body: bytes, headers: dict[str, str] | None = None) -> Answer:
        return request("POST", f"{self.url}/webhooks/{provider}", body=body,
                       headers={"Content-Type": "application/json", **(headers or {})})

    def announced_10_mb(self, provider: str, headers: dict[str, str]) -> int:
        """The status of a 10 MB body, answered from its headers alone (the server stops
        reading at 1 MiB, so a client still sending would see the connection closed)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.putrequest("POST", f"/webhooks/{provider}")
        announced = {"Content-Type": "application/json", "Content-Length": str(TEN_MB),
                     **headers}
        for name, value in announced.items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            return connection.getresponse().status
        finally:
            connection.close()


@pytest.fixture()
def system(service_env, smtp_server, app, tmp_path) -> Iterator[WebhookSystem]:
    running = WebhookSystem(service_env, smtp_server[1], tmp_path)
    try:
        yield running
    finally:
        running.stop()


Cases = dict[str, tuple[bytes, dict[str, str], int]]
"""A refusal's name: (body, headers, the status it is answered with)."""


def assert_refused(system: WebhookSystem, provider: str, cases: Cases) -> None:
    for name, (body, headers, status) in cases.items():
        answer = system.post(provider, body, headers)
        assert answer.status == status, (name, answer.status, answer.body[:200])
        assert answer.headers.get_content_type() == "application/problem+json", name


def mailgun_event(name: str) -> dict[str, Any]:
    return copy.deepcopy(fixture("mailgun_events.json")[name]["event-data"])


def postmark_record(kind: str) -> bytes:
    return json.dumps(fixture("postmark_records.json")[kind]).encode()


def ses_record(kind: str) -> str:
    return json.dumps(fixture("ses_records.json")[kind])


# --- SendGrid --------------------------------------------------------------------------------


def test_sendgrid_batch_is_stored_handed_on_and_a_redelivery_counted_once(system, db):
    system.start("serve", "worker")
    lead, message = seed(db, "example@test.com", "m-1001")
    body = json.dumps(fixture("sendgrid_events.json")).encode()
    headers = sign_sendgrid(system.sendgrid_key, int(time.time()), body)

    answer = system.post("sendgrid", body, headers)
    assert (answer.status, answer.json) == (200, {"accepted": 11, "duplicates": 0})
    assert len(stored_events(db)) == 11  # stored before the answer
    wait_until(lambda: all(r.handled_at for r in stored_events(db)), FLOW_TIMEOUT_S,
               "the worker to hand the events on")

    again = system.post("sendgrid", body, headers)
    assert (again.status, again.json) == (200, {"accepted": 0, "duplicates": 11})
    assert {(r.lead_id, r.message_id) for r in stored_events(db)} == {(lead, message)}


def test_sendgrid_refusals_store_nothing_and_a_repeat_in_a_batch_is_stored_once(system, db):
    system.start("serve")
    seed(db, "example@test.com", "m-1001")
    events = fixture("sendgrid_events.json")
    body = json.dumps(events).encode()
    now = int(time.time())
    key = system.sendgrid_key
    good = sign_sendgrid(key, now, body)
    future = copy.deepcopy(events)
    future[0]["timestamp"] = now + 3 * 86400

    def signed(payload: bytes, timestamp: int = now) -> tuple[bytes, dict[str, str]]:
        return payload, sign_sendgrid(key, timestamp, payload)

    assert_refused(system, "sendgrid", {
        "no signature": (body, {}, 401),
        "wrong key": (body, sign_sendgrid(sendgrid_key_pair()[0], now, body), 403),
        "other body": (body.replace(b"m-1001", b"m-9999"), good, 403),
        "other timestamp": (body, {**good, "X-Twilio-Email-Event-Webhook-Timestamp":
                                   str(now + 1)}, 403),
        "expired": (*signed(body, now - 26 * 3600), 403),
        "malformed json": (*signed(b"[{"), 400),
        "not an array": (*signed(b'{"event": "open"}'), 400),
        "wrong shape": (*signed(b'[{"event": "open"}]'), 400),
        "far future": (*signed(json.dumps(future).encode()), 400),
    })
    huge = b"[" + b" " * TEN_MB + b"]"
    assert system.announced_10_mb("sendgrid", sign_sendgrid(key, now, huge)) == 413
    assert stored_events(db) == []

    repeated = json.dumps([events[0], events[1], events[0]]).encode()
    answer = system.post("sendgrid", *signed(repeated))
    assert answer.status == 200, answer.body[:200]
    assert len(stored_events(db)) == 2


# --- Mailgun ---------------------------------------------------------------------------------


def test_mailgun_event_is_stored_matched_and_its_token_cannot_be_reused(system, db):
    system.start("serve")
    lead, message = seed(db, "alice@example.com", "m-2002")
    body = mailgun_request(mailgun_event("opened"), MAILGUN_KEY, timestamp=int(time.time()))

    answer = system.post("mailgun", body)
    assert (answer.status, answer.json) == (200, {"accepted": 1, "duplicates": 0})
    again = system.post("mailgun", body)  # the same token: a redelivery
    assert (again.status, again.json) == (200, {"accepted": 0, "duplicates": 1})

    # the captured signature (timestamp, token) on a made-up complaint
    forged = {"signature": json.loads(body)["signature"],
              "event-data": mailgun_event("complained")}
    assert system.post("mailgun", json.dumps(forged).encode()).status == 403
    rows = stored_events(db)
    assert [(r.type, r.lead_id, r.message_id, r.source) for r in rows] == [
        (EventType.OPEN, lead, message, "mailgun")]


def test_mailgun_refusals_store_nothing(system, db):
    system.start("serve")
    seed(db, "alice@example.com", "m-2002")
    now = int(time.time())
    good = json.loads(mailgun_request(mailgun_event("opened"), MAILGUN_KEY, timestamp=now))
    other_token = copy.deepcopy(good)
    other_token["signature"]["signature"] = mailgun_signature(MAILGUN_KEY, now, "other-token")
    future = mailgun_event("opened")
    future["timestamp"] = now + 3 * 86400

    def encoded(document: Any) -> bytes:
        return json.dumps(document).encode()

    assert_refused(system, "mailgun", {
        "no signature": (encoded({"event-data": good["event-data"]}), {}, 401),
        "wrong key": (mailgun_request(mailgun_event("opened"), "another-key", timestamp=now),
                      {}, 403),
        "signature of another token": (encoded(other_token), {}, 403),
        "expired": (mailgun_request(mailgun_event("opened"), MAILGUN_KEY,
                                    timestamp=now - 3600), {}, 403),
        "malformed json": (b'{"signature": ', {}, 400),
        "wrong shape": (encoded({"signature": good["signature"], "event-data": []}), {}, 400),
        "far future": (mailgun_request(future, MAILGUN_KEY, timestamp=now), {}, 400),
    })
    assert system.announced_10_mb("mailgun", {}) == 413
    assert stored_events(db) == []


# --- Postmark --------------------------------------------------------------------------------


def test_postmark_records_are_stored_matched_and_a_redelivery_changes_nothing(system, db):
    system.start("serve")
    lead, message = seed(db, "john@example.com", "m-3003")
    kinds = {"Delivery": EventType.DELIVERED, "Open": EventType.OPEN}
    for kind in kinds:
        answer = system.post("postmark", postmark_record(kind), POSTMARK_AUTH)
        assert (answer.status, answer.json) == (200, {"accepted": 1, "duplicates": 0}), kind
        again = system.post("postmark", postmark_record(kind), POSTMARK_AUTH)
        assert (again.status, again.json) == (200, {"accepted": 0, "duplicates": 1}), kind
    rows = stored_events(db)
    assert [r.type for r in rows] == list(kinds.values())
    assert {(r.lead_id, r.message_id, r.source) for r in rows} == {(lead, message, "postmark")}


def test_postmark_refusals_are_401_never_403_and_store_nothing(system, db):
    system.start("serve")
    seed(db, "john@example.com", "m-3003")
    future = fixture("postmark_records.json")["Open"]
    future["ReceivedAt"] = "2999-01-01T00:00:00.0000000Z"
    wrong_password = postmark_auth_header(POSTMARK_USER, "nope")

    assert_refused(system, "postmark", {
        "no credentials": (postmark_record("Open"), {}, 401),
        "wrong password": (postmark_record("Open"), wrong_password, 401),
        "malformed json": (b"{", POSTMARK_AUTH, 400),
        "wrong shape": (b'{"RecordType": 5}', POSTMARK_AUTH, 400),
        "far future": (json.dumps(future).encode(), POSTMARK_AUTH, 400),
    })
    assert system.announced_10_mb("postmark", POSTMARK_AUTH) == 413
    assert stored_events(db) == []


# --- SES over SNS ----------------------------------------------------------------------------


def sns_post(system: WebhookSystem, message: dict[str, Any]) -> Answer:
    return system.post("ses", SnsSigner.body(message), SnsSigner.headers(message))


def test_ses_notifications_of_both_signature_versions_are_stored_once(system, db):
    system.start("serve")
    lead, message = seed(db, "recipient@example.com", "m-4004")
    kinds = {"Delivery": EventType.DELIVERED, "Open": EventType.OPEN}
    for kind, version in zip(kinds, ["1", "2"], strict=True):  # SHA-1, SHA-256
        signed = system.sns.message(message=ses_record(kind), version=version)
        answer = sns_post(system, signed)
        assert (answer.status, answer.json) == (200, {"accepted": 1, "duplicates": 0}), version
        again = sns_post(system, signed)  # SNS retries with the same MessageId
        assert (again.status, again.json) == (200, {"accepted": 0, "duplicates": 1}), version
    rows = stored_events(db)
    assert [r.type for r in rows] == list(kinds.values())
    assert {(r.lead_id, r.message_id, r.source) for r in rows} == {(lead, message, "ses")}


def test_ses_refusals_store_nothing(system, db):
    system.start("serve")
    seed(db, "recipient@example.com", "m-4004")
    sns = system.sns
    complaint = ses_record("Complaint")
    good = sns.message(message=complaint)
    future = json.loads(complaint)
    future["complaint"]["timestamp"] = "2999-01-01T00:00:00.000Z"

    def sent(message: dict[str, Any], body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
        return (SnsSigner.body(message) if body is None else body), SnsSigner.headers(message)

    assert_refused(system, "ses", {
        "no signature": (*sent({k: v for k, v in good.items() if k != "Signature"}), 401),
        "wrong key": (*sent(SnsSigner.create().message(message=complaint)), 403),
        "signature over another message": (*sent(dict(good, Message=ses_record("Bounce"))),
                                           403),
        "non-SNS certificate host": (*sent(sns.message(
            message=complaint,
            cert_url="https://sns.us-east-1.amazonaws.com.evil.example/cert.pem")), 403),
        "unknown topic": (*sent(sns.message(
            message=complaint, topic_arn="arn:aws:sns:us-east-1:123456789012:other")), 403),
        "expired": (*sent(sns.message(message=complaint,
                                      timestamp="2020-01-01T00:00:00.000Z")), 403),
        "malformed json": (*sent(good, b"{"), 400),
        "wrong shape": (*sent(good, json.dumps(dict(good, MessageId=5)).encode()), 400),
        "far future": (*sent(sns.message(message=json.dumps(future))), 400),
    })
    assert system.announced_10_mb("ses", SnsSigner.headers(good)) == 413
    assert stored_events(db) == []
