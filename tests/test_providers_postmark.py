"""Postmark webhook adapter: basic auth (always 401 when refused), records, identities."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from nurture.config import load_settings
from nurture.engagement.providers import WebhookRefused
from nurture.engagement.providers.postmark import (
    BOUNCE_TYPES,
    authenticate_postmark,
    parse_postmark,
)
from nurture.models.engagement import EventType
from tests.provider_signing import fixture, postmark_auth_header

CONFIG = load_settings(
    {"POSTMARK_WEBHOOK_USERNAME": "postmark", "POSTMARK_WEBHOOK_PASSWORD": "s3cret:with colon"}
)
NOW = datetime(2020, 2, 2, tzinfo=UTC)
RECORDS = fixture("postmark_records.json")


def body(record: dict) -> bytes:
    return json.dumps(record).encode()


def test_the_configured_credentials_pass():
    headers = postmark_auth_header("postmark", "s3cret:with colon")
    authenticate_postmark(headers, b"{}", CONFIG, now=NOW)
    authenticate_postmark({"authorization": headers["Authorization"]}, b"{}", CONFIG, now=NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(b"postmark").decode()},
        postmark_auth_header("postmark", "wrong"),
        postmark_auth_header("someone", "s3cret:with colon"),
        postmark_auth_header("postmark", "s3cret:with colon "),
        postmark_auth_header("", ""),
    ],
)
def test_missing_or_wrong_credentials_are_401_never_403(headers):
    with pytest.raises(WebhookRefused) as refused:
        authenticate_postmark(headers, b"{}", CONFIG, now=NOW)
    assert refused.value.status == 401


def test_no_credentials_configured_is_503():
    with pytest.raises(WebhookRefused) as refused:
        authenticate_postmark(postmark_auth_header("a", "b"), b"{}", load_settings({}), now=NOW)
    assert refused.value.status == 503


EXPECTED = {
    "Delivery": (EventType.DELIVERED, None, "john@example.com"),
    "Open": (EventType.OPEN, None, "john@example.com"),
    "Click": (EventType.CLICK, None, "john@example.com"),
    "Bounce": (EventType.BOUNCE, "hard", "john@example.com"),
    "SpamComplaint": (EventType.SPAM_COMPLAINT, None, "john@example.com"),
    "SubscriptionChange": (EventType.UNSUBSCRIBE, None, "bounced-address@wildbit.com"),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_documented_record_is_mapped(kind):
    raw = RECORDS[kind]
    [event] = parse_postmark(body(raw), now=NOW)
    assert (event.type, event.bounce_class, event.recipient) == EXPECTED[kind]
    assert event.provider == "postmark"
    assert event.nurture_message_id == "m-3003"
    assert event.occurred_at.tzinfo is UTC
    assert event.raw == raw
    assert len(event.event_id) <= 255


def test_times_keep_their_fraction_and_offset():
    [event] = parse_postmark(body(RECORDS["Delivery"]), now=NOW)
    assert event.occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)
    record = {**RECORDS["Bounce"], "BouncedAt": "2014-08-01T13:28:10.2735393-04:00"}
    [bounce] = parse_postmark(body(record), now=NOW)
    assert bounce.occurred_at == datetime(2014, 8, 1, 17, 28, 10, 273539, tzinfo=UTC)


def test_subscription_change_false_is_a_resubscribe():
    record = {**RECORDS["SubscriptionChange"], "SuppressSending": False}
    [event] = parse_postmark(body(record), now=NOW)
    assert event.type is EventType.RESUBSCRIBE


@pytest.mark.parametrize(
    ("bounce_type", "expected"),
    [
        ("HardBounce", (EventType.BOUNCE, "hard")),
        ("BadEmailAddress", (EventType.BOUNCE, "hard")),
        ("SoftBounce", (EventType.BOUNCE, "soft")),
        ("DnsError", (EventType.BOUNCE, "soft")),
        ("Blocked", (EventType.BOUNCE, "soft")),
        ("Transient", (EventType.DEFERRED, None)),
        ("Unsubscribe", (EventType.UNSUBSCRIBE, None)),
        ("SpamComplaint", (EventType.SPAM_COMPLAINT, None)),
        ("ManuallyDeactivated", (EventType.DROPPED, None)),
        ("SomethingNew", (EventType.BOUNCE, "soft")),
        ("AutoResponder", None),
        ("Subscribe", None),
    ],
)
def test_bounce_types(bounce_type, expected):
    record = {**RECORDS["Bounce"], "Type": bounce_type}
    events = parse_postmark(body(record), now=NOW)
    if expected is None:
        assert events == []
    else:
        [event] = events
        assert (event.type, event.bounce_class) == expected
        assert event.provider_type == f"Bounce/{bounce_type}"


def test_every_bounce_type_maps_to_a_bounce_class_only_for_bounces():
    for mapped in BOUNCE_TYPES.values():
        if mapped is not None:
            type_, bounce_class = mapped
            assert (bounce_class is not None) == (type_ is EventType.BOUNCE)


def test_click_and_open_details():
    [click] = parse_postmark(body(RECORDS["Click"]), now=NOW)
    assert click.url == "https://example.com"
    assert click.ip == "188.2.95.4"
    assert click.user_agent.startswith("Mozilla/5.0 (Macintosh")
    [open_] = parse_postmark(body(RECORDS["Open"]), now=NOW)
    assert open_.url is None


def test_the_identity_is_stable_and_tells_events_apart():
    [delivery] = parse_postmark(body(RECORDS["Delivery"]), now=NOW)
    [again] = parse_postmark(json.dumps(RECORDS["Delivery"], indent=4).encode(), now=NOW)
    assert delivery.event_id == again.event_id
    assert delivery.event_id.startswith("Delivery:00000000-0000-0000-0000-000000000000:")
    [open_] = parse_postmark(body(RECORDS["Open"]), now=NOW)
    later = {**RECORDS["Open"], "ReceivedAt": "2019-11-05T16:33:54.9070260Z"}
    [second_open] = parse_postmark(body(later), now=NOW)
    assert len({delivery.event_id, open_.event_id, second_open.event_id}) == 3
    [click] = parse_postmark(body(RECORDS["Click"]), now=NOW)
    other_link = {**RECORDS["Click"], "OriginalLink": "https://example.com/other"}
    assert parse_postmark(body(other_link), now=NOW)[0].event_id != click.event_id
    [bounce] = parse_postmark(body(RECORDS["Bounce"]), now=NOW)
    assert bounce.event_id == "Bounce:4323372036854775807"


def test_without_metadata_the_recipient_remains():
    record = {k: v for k, v in RECORDS["Open"].items() if k != "Metadata"}
    [event] = parse_postmark(body(record), now=NOW)
    assert event.nurture_message_id is None
    assert event.recipient == "john@example.com"


def test_unknown_record_types_are_left_out():
    assert parse_postmark(body({"RecordType": "Inbound", "MessageID": "x"}), now=NOW) == []


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"nope",
        b"[]",
        b"[{}]",
        b"{}",
        b'{"RecordType": "Delivery"}',
        b'{"MessageID": "x", "DeliveredAt": "2019-11-05T16:33:54Z", "Recipient": "a@b.c"}',
        b'{"RecordType": "Delivery", "MessageID": "x", "Recipient": "a@b.c"}',
        b'{"RecordType": "Delivery", "MessageID": "x", "DeliveredAt": "2019-11-05T16:33:54Z"}',
        b'{"RecordType": "Delivery", "MessageID": "x", "DeliveredAt": "yesterday", "Recipient": "a@b.c"}',
        b'{"RecordType": "Delivery", "MessageID": "x", "DeliveredAt": "2019-11-05T16:33:54", "Recipient": "a@b.c"}',
        b'{"RecordType": "Delivery", "MessageID": 5, "DeliveredAt": "2019-11-05T16:33:54Z", "Recipient": "a@b.c"}',
        b'{"RecordType": "Bounce", "MessageID": "x", "BouncedAt": "2019-11-05T16:33:54Z", "Email": "a@b.c"}',
        b'{"RecordType": "SubscriptionChange", "MessageID": "x", "ChangedAt": "2019-11-05T16:33:54Z", "Recipient": "a@b.c"}',
        b'{"RecordType": "Open", "MessageID": "x", "ReceivedAt": "2019-11-05T16:33:54Z", "Recipient": "a@b.c", "Metadata": "m"}',
    ],
)
def test_malformed_json_and_wrong_shapes_are_400(payload):
    with pytest.raises(WebhookRefused) as refused:
        parse_postmark(payload, now=NOW)
    assert refused.value.status == 400


def test_a_record_far_in_the_future_is_400():
    late = (NOW + timedelta(days=2)).isoformat()
    with pytest.raises(WebhookRefused) as refused:
        parse_postmark(body({**RECORDS["Delivery"], "DeliveredAt": late}), now=NOW)
    assert refused.value.status == 400
