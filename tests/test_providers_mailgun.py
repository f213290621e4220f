"""Mailgun webhook adapter: HMAC signature, timestamp window, replay information, parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.config import load_settings
from nurture.engagement.providers import WebhookRefused
from nurture.engagement.providers.mailgun import (
    SIGNATURE_MAX_AGE,
    authenticate_mailgun,
    event_digest,
    parse_mailgun,
)
from nurture.models.engagement import EventType
from tests.provider_signing import fixture, mailgun_request, mailgun_signature

KEY = "key-0123456789abcdef0123456789abcdef"
CONFIG = load_settings({"MAILGUN_WEBHOOK_SIGNING_KEY": KEY})
NOW = datetime(2018, 3, 19, 15, 12, tzinfo=UTC)
STAMP = int(NOW.timestamp())
EVENTS = fixture("mailgun_events.json")


def event_data(name: str) -> dict:
    return EVENTS[name]["event-data"]


def signed(name: str = "delivered", **kwargs) -> bytes:
    kwargs.setdefault("timestamp", STAMP)
    return mailgun_request(event_data(name), KEY, **kwargs)


def test_a_signed_request_passes_and_returns_its_token():
    body = signed(token="t" * 50)
    token = authenticate_mailgun({}, body, CONFIG, now=NOW)
    assert token.token == "t" * 50
    assert token.signed_at == NOW
    assert token.expires_at == NOW + SIGNATURE_MAX_AGE
    assert token.event_digest == event_digest(event_data("delivered"))
    assert len(token.event_digest) == 64


def test_the_documented_sample_signature_shape_is_checked_with_our_key():
    # The docs' sample is signed with a key we do not have: with ours it must fail.
    body = json.dumps(EVENTS["delivered"]).encode()
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, body, CONFIG, now=datetime(2018, 6, 14, 20, 7, 34, tzinfo=UTC))
    assert refused.value.status == 403


def test_a_redelivery_has_the_same_digest_and_a_forgery_another():
    """The storage refuses a token seen with another digest and accepts the same one."""
    first = authenticate_mailgun({}, signed(token="tok"), CONFIG, now=NOW)
    # an exact redelivery (even re-serialised with other spacing and key order)
    data = event_data("delivered")
    again = json.dumps(
        {
            "event-data": dict(reversed(list(data.items()))),
            "signature": json.loads(signed(token="tok"))["signature"],
        },
        indent=3,
    ).encode()
    assert authenticate_mailgun({}, again, CONFIG, now=NOW) == first
    # the same signature block moved onto another event
    forged = json.dumps(
        {"signature": json.loads(signed(token="tok"))["signature"],
         "event-data": event_data("unsubscribed")}
    ).encode()
    replay = authenticate_mailgun({}, forged, CONFIG, now=NOW)
    assert replay.token == first.token
    assert replay.event_digest != first.event_digest


@pytest.mark.parametrize("missing", ["timestamp", "token", "signature"])
def test_a_missing_signature_field_is_401(missing):
    body = json.loads(signed())
    del body["signature"][missing]
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, json.dumps(body).encode(), CONFIG, now=NOW)
    assert refused.value.status == 401


def test_a_missing_signature_object_is_401():
    body = json.dumps({"event-data": event_data("delivered")}).encode()
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, body, CONFIG, now=NOW)
    assert refused.value.status == 401


def test_a_wrong_key_is_403():
    body = mailgun_request(event_data("delivered"), "another-key", timestamp=STAMP)
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, body, CONFIG, now=NOW)
    assert refused.value.status == 403


@pytest.mark.parametrize("signature", ["zz" * 32, "00" * 32, "abc"])
def test_a_wrong_or_malformed_signature_is_403(signature):
    body = json.loads(signed())
    body["signature"]["signature"] = signature
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, json.dumps(body).encode(), CONFIG, now=NOW)
    assert refused.value.status == 403


def test_a_signature_for_another_timestamp_is_403():
    body = json.loads(signed(token="tok"))
    body["signature"]["timestamp"] = str(STAMP - 1)
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, json.dumps(body).encode(), CONFIG, now=NOW)
    assert refused.value.status == 403


def test_an_integer_timestamp_is_accepted():
    body = json.loads(signed(token="tok"))
    body["signature"]["timestamp"] = STAMP
    authenticate_mailgun({}, json.dumps(body).encode(), CONFIG, now=NOW)


@pytest.mark.parametrize(
    ("age", "passes"),
    [
        (timedelta(0), True),
        (SIGNATURE_MAX_AGE, True),
        (SIGNATURE_MAX_AGE + timedelta(seconds=1), False),
        (timedelta(hours=8), False),
        (-timedelta(minutes=4), True),
        (-timedelta(minutes=10), False),
    ],
)
def test_the_timestamp_window(age, passes):
    body = signed(timestamp=int((NOW - age).timestamp()))
    if passes:
        authenticate_mailgun({}, body, CONFIG, now=NOW)
    else:
        with pytest.raises(WebhookRefused) as refused:
            authenticate_mailgun({}, body, CONFIG, now=NOW)
        assert refused.value.status == 403


def test_no_signing_key_configured_is_503():
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, signed(), load_settings({}), now=NOW)
    assert refused.value.status == 503


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=60).filter(lambda t: t != "tok"))
def test_any_other_token_breaks_the_signature(token):
    body = json.loads(signed(token="tok"))
    body["signature"]["token"] = token
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, json.dumps(body).encode(), CONFIG, now=NOW)
    assert refused.value.status == 403


def test_mailgun_signature_helper_matches_the_documented_recipe():
    # hex HMAC-SHA256 of timestamp + token
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1529006854abc", hashlib.sha256).hexdigest()
    assert mailgun_signature("k", "1529006854", "abc") == expected


EXPECTED = {
    "delivered": (EventType.DELIVERED, None),
    "failed_permanent": (EventType.BOUNCE, "hard"),
    "failed_suppressed": (EventType.DROPPED, None),
    "failed_temporary": (EventType.DEFERRED, None),
    "opened": (EventType.OPEN, None),
    "clicked": (EventType.CLICK, None),
    "complained": (EventType.SPAM_COMPLAINT, None),
    "unsubscribed": (EventType.UNSUBSCRIBE, None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_documented_event_is_mapped(name):
    [event] = parse_mailgun(signed(name), now=NOW)
    raw = event_data(name)
    assert (event.type, event.bounce_class) == EXPECTED[name]
    assert event.provider == "mailgun"
    assert event.event_id == f"{raw['id']}:{int(raw['timestamp'])}"
    assert event.occurred_at == datetime.fromtimestamp(raw["timestamp"], UTC)
    assert event.recipient == "alice@example.com"
    assert event.nurture_message_id == "m-2002"
    assert event.raw == raw


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("accepted", EventType.PROCESSED), ("rejected", EventType.DROPPED), ("stored", None)],
)
def test_other_events(kind, expected):
    data = {**event_data("delivered"), "event": kind}
    events = parse_mailgun(mailgun_request(data, KEY, timestamp=STAMP), now=NOW)
    assert [e.type for e in events] == ([expected] if expected else [])


def test_click_details():
    [event] = parse_mailgun(signed("clicked"), now=NOW)
    assert event.url == "https://example.com/whitepaper"
    assert event.ip == "50.56.129.169"
    assert event.user_agent.startswith("Mozilla/5.0 (X11; Linux")
    assert event.provider_type == "clicked"
    [failed] = parse_mailgun(signed("failed_permanent"), now=NOW)
    assert failed.provider_type == "failed/permanent"
    assert failed.url is None


def test_without_nurture_message_id_the_recipient_remains():
    data = {**event_data("opened"), "user-variables": {}}
    [event] = parse_mailgun(mailgun_request(data, KEY, timestamp=STAMP), now=NOW)
    assert event.nurture_message_id is None
    assert event.recipient == "alice@example.com"


def test_a_failed_event_without_severity_counts_as_permanent():
    data = {k: v for k, v in event_data("failed_permanent").items() if k != "severity"}
    [event] = parse_mailgun(mailgun_request(data, KEY, timestamp=STAMP), now=NOW)
    assert (event.type, event.bounce_class) == (EventType.BOUNCE, "hard")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'{"signature": {}}',
        b'{"event-data": []}',
        b'{"event-data": {"event": "opened", "id": "x"}}',
        b'{"event-data": {"event": "opened", "timestamp": 1521243339.8}}',
        b'{"event-data": {"id": "x", "timestamp": 1521243339.8}}',
        b'{"event-data": {"event": "opened", "id": "x", "timestamp": "now"}}',
        b'{"event-data": {"event": "opened", "id": "x", "timestamp": 1, "user-variables": []}}',
    ],
)
def test_malformed_json_and_wrong_shapes_are_400(body):
    with pytest.raises(WebhookRefused) as refused:
        parse_mailgun(body, now=NOW)
    assert refused.value.status == 400


def test_malformed_json_is_400_before_any_signature_check():
    with pytest.raises(WebhookRefused) as refused:
        authenticate_mailgun({}, b"{not json", CONFIG, now=NOW)
    assert refused.value.status == 400


def test_an_event_far_in_the_future_is_400():
    data = {**event_data("opened"), "timestamp": (NOW + timedelta(days=3)).timestamp()}
    with pytest.raises(WebhookRefused) as refused:
        parse_mailgun(mailgun_request(data, KEY, timestamp=STAMP), now=NOW)
    assert refused.value.status == 400
