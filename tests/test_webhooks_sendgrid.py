"""POST /webhooks/sendgrid through the real HTTP stack: signed batches stored once, refusals
store nothing (the adapter's own cases are in test_providers_sendgrid.py)."""

from __future__ import annotations

import copy
import json
import time

from nurture.models import EventType
from tests.provider_signing import fixture, sign_sendgrid
from tests.webhook_app import scoring_jobs, seed, stored_events, suppressed

URL = "/webhooks/sendgrid"


def post(providers, body: bytes, *, timestamp: int | None = None, headers=None, key=None):
    signed = sign_sendgrid(key or providers.sendgrid_key, timestamp or int(time.time()), body)
    return providers.app.test_client().post(
        URL, data=body, headers={**signed, **(headers or {})}, content_type="application/json")


def batch() -> list[dict]:
    return copy.deepcopy(fixture("sendgrid_events.json"))


def test_every_event_type_is_stored_matched_and_a_redelivery_changes_nothing(providers, db):
    lead, message = seed(db, "example@test.com", "m-1001")
    body = json.dumps(batch()).encode()
    answer = post(providers, body)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"accepted": 11, "duplicates": 0}
    rows = stored_events(db)
    by_id = {r.source_event_id: r for r in rows}
    assert [by_id[e["sg_event_id"]].type for e in batch()] == [
        EventType.PROCESSED, EventType.DEFERRED, EventType.DELIVERED, EventType.OPEN,
        EventType.CLICK, EventType.BOUNCE, EventType.DROPPED, EventType.SPAM_COMPLAINT,
        EventType.UNSUBSCRIBE, EventType.UNSUBSCRIBE, EventType.RESUBSCRIBE]
    assert {(r.lead_id, r.message_id, r.source) for r in rows} == {(lead, message, "sendgrid")}
    bounce, click = (next(r for r in rows if r.type is t) for t in (EventType.BOUNCE,
                                                                    EventType.CLICK))
    assert (bounce.bounce_class, bool(click.url)) == ("hard", True)
    processed = by_id["rbtnWrG1DVDGGGFHFyun0A=="]
    assert processed.properties["raw"]["event"] == "processed"
    assert suppressed(db) == {"example@test.com": "hard_bounce"}
    (job,) = scoring_jobs(providers.app)
    assert job == (rows[0].id, rows[-1].id)

    again = post(providers, body)  # SendGrid retries what it thinks failed
    assert (again.status_code, again.json) == (200, {"accepted": 0, "duplicates": 11})
    assert len(stored_events(db)) == 11
    assert len(scoring_jobs(providers.app)) == 1


def test_events_of_unknown_messages_are_stored_unmatched(providers, db):
    events = batch()[:3]
    for e in events:
        e["nurture_message_id"] = "no-such-message"
    answer = post(providers, json.dumps(events).encode())
    assert answer.json == {"accepted": 3, "duplicates": 0}
    assert {(r.lead_id, r.message_id) for r in stored_events(db)} == {(None, None)}


def test_a_repeat_inside_one_batch_is_stored_once(providers, db):
    events = batch()[:2]
    answer = post(providers, json.dumps([*events, events[0]]).encode())
    assert answer.status_code == 200
    assert len(stored_events(db)) == 2


def test_refusals_store_nothing(providers, db):
    from tests.provider_signing import sendgrid_key_pair

    seed(db, "example@test.com", "m-1001")
    body = json.dumps(batch()).encode()
    client = providers.app.test_client()
    now = int(time.time())
    good = sign_sendgrid(providers.sendgrid_key, now, body)
    future = batch()
    future[0]["timestamp"] = now + 3 * 86400
    cases = {
        "no signature": (client.post(URL, data=body, content_type="application/json"), 401),
        "wrong key": (post(providers, body, key=sendgrid_key_pair()[0]), 403),
        "other body": (client.post(URL, data=body.replace(b"m-1001", b"m-1002"), headers=good,
                                   content_type="application/json"), 403),
        "other timestamp": (client.post(URL, data=body, content_type="application/json",
                                        headers={**good, "X-Twilio-Email-Event-Webhook-Timestamp":
                                                 str(now + 1)}), 403),
        "expired": (post(providers, body, timestamp=now - 26 * 3600), 403),
        "malformed json": (post(providers, b"[{"), 400),
        "not an array": (post(providers, b'{"event": "open"}'), 400),
        "wrong shape": (post(providers, b'[{"event": "open"}]'), 400),
        "far future": (post(providers, json.dumps(future).encode()), 400),
        "10 MB": (post(providers, b"[" + b" " * (10 * 1024 * 1024) + b"]"), 413),
    }
    for name, (answer, status) in cases.items():
        assert answer.status_code == status, (name, answer.status_code, answer.get_data()[:200])
        assert answer.mimetype == "application/problem+json", name
    assert stored_events(db) == []
    assert suppressed(db) == {}
    assert scoring_jobs(providers.app) == []


def test_without_a_key_the_endpoint_answers_503(app, client):
    answer = client.post(URL, data=b"[]", content_type="application/json")
    assert answer.status_code == 503
