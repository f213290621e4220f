"""POST /webhooks/mailgun through the real HTTP stack: one signed event per request; a token
seen again is a redelivery with the same event-data and a forgery with other event-data."""

from __future__ import annotations

import copy
import json
import time

from nurture.models import EventType, MailgunToken
from tests.provider_signing import fixture, mailgun_request, mailgun_signature
from tests.webhook_app import MAILGUN_KEY, scoring_jobs, seed, stored_events, suppressed

URL = "/webhooks/mailgun"


def event_data(name: str) -> dict:
    return copy.deepcopy(fixture("mailgun_events.json")[name]["event-data"])


def post(providers, body: bytes):
    return providers.app.test_client().post(URL, data=body, content_type="application/json")


def test_every_event_kind_is_stored_and_matched(providers, db):
    lead, message = seed(db, "alice@example.com", "m-2002")
    kinds = {"delivered": (EventType.DELIVERED, None), "failed_temporary": (EventType.DEFERRED, None),
             "opened": (EventType.OPEN, None), "clicked": (EventType.CLICK, None),
             "unsubscribed": (EventType.UNSUBSCRIBE, None),
             "complained": (EventType.SPAM_COMPLAINT, None),
             "failed_permanent": (EventType.BOUNCE, "hard")}
    for name in kinds:
        answer = post(providers, mailgun_request(event_data(name), MAILGUN_KEY,
                                                 timestamp=int(time.time())))
        assert (answer.status_code, answer.json) == (200, {"accepted": 1, "duplicates": 0}), name
    rows = stored_events(db)
    assert [(r.type, r.bounce_class) for r in rows] == list(kinds.values())
    assert {(r.lead_id, r.message_id, r.source) for r in rows} == {(lead, message, "mailgun")}
    assert suppressed(db) == {"alice@example.com": "unsubscribed"}  # the first one stays
    # handed to scoring: one waiting job stands for every request (workers/coalescing.py)
    assert scoring_jobs(providers.app) == [(rows[0].id, rows[0].id)]


def test_a_redelivery_with_the_same_token_changes_nothing(providers, db, count):
    seed(db, "alice@example.com", "m-2002")
    body = mailgun_request(event_data("opened"), MAILGUN_KEY, timestamp=int(time.time()))
    assert post(providers, body).json == {"accepted": 1, "duplicates": 0}
    again = post(providers, body)
    assert (again.status_code, again.json) == (200, {"accepted": 0, "duplicates": 1})
    assert len(stored_events(db)) == 1
    assert count(MailgunToken) == 1


def test_a_token_reused_for_another_event_is_refused_and_stores_nothing(providers, db):
    seed(db, "alice@example.com", "m-2002")
    now = int(time.time())
    first = json.loads(mailgun_request(event_data("opened"), MAILGUN_KEY, timestamp=now))
    assert post(providers, json.dumps(first).encode()).status_code == 200
    # the captured signature (timestamp, token) on a made-up complaint
    forged = {"signature": first["signature"], "event-data": event_data("complained")}
    answer = post(providers, json.dumps(forged).encode())
    assert answer.status_code == 403
    assert [r.type for r in stored_events(db)] == [EventType.OPEN]
    assert suppressed(db) == {}


def test_refusals_store_nothing(providers, db, count):
    seed(db, "alice@example.com", "m-2002")
    now = int(time.time())
    good = json.loads(mailgun_request(event_data("opened"), MAILGUN_KEY, timestamp=now))
    wrong_key = mailgun_request(event_data("opened"), "another-key", timestamp=now)
    expired = mailgun_request(event_data("opened"), MAILGUN_KEY, timestamp=now - 3600)
    unsigned = {"event-data": good["event-data"]}
    bad_signature = copy.deepcopy(good)
    bad_signature["signature"]["signature"] = mailgun_signature(MAILGUN_KEY, now, "other-token")
    future = event_data("opened")
    future["timestamp"] = now + 3 * 86400
    cases = {
        "no signature": (json.dumps(unsigned).encode(), 401),
        "wrong key": (wrong_key, 403),
        "signature of another token": (json.dumps(bad_signature).encode(), 403),
        "expired": (expired, 403),
        "malformed json": (b'{"signature": ', 400),
        "wrong shape": (json.dumps({"signature": good["signature"], "event-data": []}).encode(),
                        400),
        "far future": (mailgun_request(future, MAILGUN_KEY, timestamp=now), 400),
        "10 MB": (b"{" + b" " * (10 * 1024 * 1024) + b"}", 413),
    }
    for name, (body, status) in cases.items():
        answer = post(providers, body)
        assert answer.status_code == status, (name, answer.get_data()[:200])
        assert answer.mimetype == "application/problem+json", name
    assert stored_events(db) == []
    assert count(MailgunToken) == 0


def test_an_event_for_an_unknown_message_is_stored_unmatched(providers, db):
    data = event_data("clicked")
    data["user-variables"]["nurture_message_id"] = "nope"
    data["recipient"] = "stranger@example.com"
    answer = post(providers, mailgun_request(data, MAILGUN_KEY, timestamp=int(time.time())))
    assert answer.json == {"accepted": 1, "duplicates": 0}
    (row,) = stored_events(db)
    assert (row.lead_id, row.message_id, row.type) == (None, None, EventType.CLICK)
