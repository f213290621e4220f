"""POST /webhooks/postmark through the real HTTP stack: basic auth (401, never 403: Postmark
stops retrying on 403), one record per request, each stored once."""

from __future__ import annotations

import copy
import json

from nurture.models import EventType
from tests.provider_signing import fixture, postmark_auth_header
from tests.webhook_app import (
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    scoring_jobs,
    seed,
    stored_events,
    suppressed,
)

URL = "/webhooks/postmark"
AUTH = postmark_auth_header(POSTMARK_USER, POSTMARK_PASSWORD)


def record(kind: str) -> dict:
    return copy.deepcopy(fixture("postmark_records.json")[kind])


def post(providers, body: bytes, headers=AUTH):
    return providers.app.test_client().post(URL, data=body, headers=headers,
                                            content_type="application/json")


def test_every_record_type_is_stored_matched_and_a_redelivery_changes_nothing(providers, db):
    lead, message = seed(db, "john@example.com", "m-3003")
    kinds = {"Delivery": EventType.DELIVERED, "Open": EventType.OPEN, "Click": EventType.CLICK,
             "Bounce": EventType.BOUNCE, "SpamComplaint": EventType.SPAM_COMPLAINT}
    for kind in kinds:
        body = json.dumps(record(kind)).encode()
        assert post(providers, body).json == {"accepted": 1, "duplicates": 0}, kind
        assert post(providers, body).json == {"accepted": 0, "duplicates": 1}, kind
    rows = stored_events(db)
    assert [r.type for r in rows] == list(kinds.values())
    assert {(r.lead_id, r.message_id, r.source) for r in rows} == {(lead, message, "postmark")}
    assert rows[3].bounce_class == "hard"
    assert suppressed(db) == {"john@example.com": "hard_bounce"}
    # handed to scoring: one waiting job stands for every request (workers/coalescing.py)
    assert scoring_jobs(providers.app) == [(rows[0].id, rows[0].id)]


def test_a_subscription_change_that_suppresses_is_an_unsubscribe(providers, db):
    seed(db, "bounced-address@wildbit.com", "m-3003")
    answer = post(providers, json.dumps(record("SubscriptionChange")).encode())
    assert answer.status_code == 200, answer.json
    assert [r.type for r in stored_events(db)] == [EventType.UNSUBSCRIBE]
    assert suppressed(db) == {"bounced-address@wildbit.com": "unsubscribed"}


def test_refusals_store_nothing(providers, db):
    body = json.dumps(record("Open")).encode()
    future = record("Open")
    future["ReceivedAt"] = "2999-01-01T00:00:00.0000000Z"
    cases = {
        "no credentials": (post(providers, body, headers={}), 401),
        "wrong password": (post(providers, body, headers=postmark_auth_header(POSTMARK_USER,
                                                                              "nope")), 401),
        "malformed json": (post(providers, b"{"), 400),
        "wrong shape": (post(providers, b'{"RecordType": 5}'), 400),
        "far future": (post(providers, json.dumps(future).encode()), 400),
        "10 MB": (post(providers, b"{" + b" " * (10 * 1024 * 1024) + b"}"), 413),
    }
    for name, (answer, status) in cases.items():
        assert answer.status_code == status, (name, answer.get_data()[:200])
        assert answer.mimetype == "application/problem+json", name
    assert stored_events(db) == []
