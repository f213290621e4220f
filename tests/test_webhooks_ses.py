"""POST /webhooks/ses through the real HTTP stack: SNS messages signed with a local key whose
certificate is in SES_SNS_CERTIFICATES; SES event records stored once; subscriptions recorded
and confirmed (the call to AWS is the one thing stood in for)."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import select

from nurture.engagement.providers.sns import SubscriptionNotConfirmed
from nurture.models import EventType, Role, SnsSubscription
from tests.provider_signing import SNS_TOPIC_ARN, SnsSigner, fixture
from tests.webhook_app import scoring_jobs, seed, stored_events, suppressed

URL = "/webhooks/ses"


def ses_record(kind: str) -> str:
    return json.dumps(copy.deepcopy(fixture("ses_records.json")[kind]))


def post(providers, message: dict, *, body: bytes | None = None):
    return providers.app.test_client().post(
        URL, data=body if body is not None else SnsSigner.body(message),
        headers=SnsSigner.headers(message))


@pytest.fixture()
def confirmations(providers):
    """The SubscribeURLs the app called; `fail` makes the call fail as an unreachable AWS."""

    class Calls(list):
        fail: str | None = None

    calls = Calls()

    def confirm(url: str) -> None:
        calls.append(url)
        if calls.fail:
            raise SubscriptionNotConfirmed(calls.fail)

    providers.app.extensions["nurture.sns_confirm"] = confirm
    yield calls
    del providers.app.extensions["nurture.sns_confirm"]


def test_every_ses_record_kind_is_stored_and_matched_both_signature_versions(providers, db):
    lead, message = seed(db, "recipient@example.com", "m-4004")
    kinds = {"Send": EventType.PROCESSED, "Delivery": EventType.DELIVERED,
             "Open": EventType.OPEN, "Click": EventType.CLICK,
             "DeliveryDelay": EventType.DEFERRED, "Reject": EventType.DROPPED,
             "Rendering Failure": EventType.DROPPED, "Bounce": EventType.BOUNCE,
             "Complaint": EventType.SPAM_COMPLAINT, "Subscription": EventType.UNSUBSCRIBE}
    for index, kind in enumerate(kinds):
        signed = providers.sns.message(message=ses_record(kind), version=str(1 + index % 2))
        answer = post(providers, signed)
        assert (answer.status_code, answer.json) == (200, {"accepted": 1, "duplicates": 0}), kind
        again = post(providers, signed)  # SNS retries with the same MessageId
        assert again.json == {"accepted": 0, "duplicates": 1}, kind
    rows = stored_events(db)
    assert [r.type for r in rows] == list(kinds.values())
    assert {(r.lead_id, r.message_id, r.source) for r in rows} == {(lead, message, "ses")}
    assert suppressed(db) == {"recipient@example.com": "hard_bounce"}
    # handed to scoring: one waiting job stands for every request (workers/coalescing.py)
    assert scoring_jobs(providers.app) == [(rows[0].id, rows[0].id)]


def test_a_subscription_is_recorded_and_confirmed(providers, db, confirmations):
    signed = providers.sns.message("SubscriptionConfirmation")
    answer = post(providers, signed)
    assert (answer.status_code, answer.json) == (200, {"subscription": "confirmed"})
    assert confirmations == [signed["SubscribeURL"]]
    assert post(providers, signed).json == {"subscription": "confirmed"}  # SNS retried it
    assert len(confirmations) == 1
    with db.session_scope() as session:
        (row,) = session.execute(select(SnsSubscription)).scalars().all()
    assert (row.topic_arn, row.status.value, row.token) == (SNS_TOPIC_ARN, "confirmed",
                                                            signed["Token"])
    assert row.confirmed_at is not None


def test_an_unreachable_subscribe_url_leaves_it_pending_for_the_admin(providers, db,
                                                                      confirmations):
    confirmations.fail = "connection refused"
    answer = post(providers, providers.sns.message("SubscriptionConfirmation"))
    assert (answer.status_code, answer.json) == (200, {"subscription": "pending"})
    with db.session_scope() as session:
        (row,) = session.execute(select(SnsSubscription)).scalars().all()
    assert (row.status.value, row.last_error) == ("pending", "connection refused")



def test_the_admin_sees_subscriptions_pending_with_their_url_and_error(
        providers, confirmations, api, client, make_token):
    confirmations.fail = "connection refused"
    pending = providers.sns.message("SubscriptionConfirmation")
    post(providers, pending)
    confirmations.fail = None
    post(providers, providers.sns.message("SubscriptionConfirmation"))
    listed = api.get("/api/v1/sns-subscriptions")
    assert listed.status_code == 200
    rows = listed.json["subscriptions"]
    assert sorted(r["status"] for r in rows) == ["confirmed", "pending"]
    waiting = next(r for r in rows if r["status"] == "pending")
    assert (waiting["subscribe_url"], waiting["last_error"], waiting["topic_arn"]) == (
        pending["SubscribeURL"], "connection refused", SNS_TOPIC_ARN)
    marketer = make_token(Role.MARKETER)
    refused = client.get("/api/v1/sns-subscriptions",
                         headers={"Authorization": f"Bearer {marketer}"})
    assert refused.status_code == 403
    assert client.get("/api/v1/sns-subscriptions").status_code == 401


def test_an_unsubscribe_confirmation_is_recorded(providers, db, confirmations):
    answer = post(providers, providers.sns.message("UnsubscribeConfirmation"))
    assert answer.json == {"subscription": "unsubscribed"}
    assert confirmations == []


def test_refusals_store_nothing(providers, db, tmp_path, confirmations):
    seed(db, "recipient@example.com", "m-4004")
    sns = providers.sns
    good = sns.message(message=ses_record("Complaint"))
    stranger = SnsSigner.create()  # a key whose certificate is not the one at the URL
    other_host = sns.message(
        message=ses_record("Complaint"),
        cert_url="https://sns.us-east-1.amazonaws.com.evil.example/cert.pem")
    other_body = dict(good, Message=ses_record("Bounce"))
    future = json.loads(ses_record("Complaint"))
    future["complaint"]["timestamp"] = "2999-01-01T00:00:00.000Z"
    cases = {
        "no signature": ({k: v for k, v in good.items() if k != "Signature"}, None, 401),
        "wrong key": (stranger.message(message=ses_record("Complaint")), None, 403),
        "signature over another message": (other_body, None, 403),
        "non-SNS certificate host": (other_host, None, 403),
        "unknown topic": (sns.message(message=ses_record("Complaint"),
                                      topic_arn="arn:aws:sns:us-east-1:123456789012:other"),
                          None, 403),
        "expired": (sns.message(message=ses_record("Complaint"),
                                timestamp="2020-01-01T00:00:00.000Z"), None, 403),
        "malformed json": (good, b"{", 400),
        "wrong shape": (good, json.dumps(dict(good, MessageId=5)).encode(), 400),
        "far future": (sns.message(message=json.dumps(future)), None, 400),
        "10 MB": (good, b"{" + b" " * (10 * 1024 * 1024) + b"}", 413),
    }
    for name, (message, body, status) in cases.items():
        answer = post(providers, message, body=body)
        assert answer.status_code == status, (name, answer.get_data()[:300])
        assert answer.mimetype == "application/problem+json", name
    assert stored_events(db) == []
    assert suppressed(db) == {}
    with db.session_scope() as session:
        assert session.execute(select(SnsSubscription)).scalars().all() == []
