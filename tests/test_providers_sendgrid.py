"""SendGrid Event Webhook adapter: signature, timestamps, parsing, type mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurture.config import Settings, load_settings
from nurture.engagement.providers import WebhookRefused
from nurture.engagement.providers.sendgrid import authenticate_sendgrid, parse_sendgrid
from nurture.models.engagement import EventType
from tests.provider_signing import fixture, sendgrid_key_pair, sign_sendgrid

NOW = datetime(2017, 12, 15, 1, 0, tzinfo=UTC)
STAMP = int(NOW.timestamp())

# The known-answer vector of sendgrid-python's event-webhook unit test (test_eventwebhook.py).
SDK_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe6"
    "2gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SDK_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15Tl"
    "uLtEZtM="
)
SDK_TIMESTAMP = "1600112502"
SDK_PAYLOAD = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": (
                    "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
                ),
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()


def sendgrid_settings(public_b64: str) -> Settings:
    """Settings as a user would configure them (the key goes through load_settings)."""
    return load_settings({"SENDGRID_WEBHOOK_PUBLIC_KEY": public_b64})


@pytest.fixture(scope="module")
def keys():
    return sendgrid_key_pair()


@pytest.fixture(scope="module")
def config(keys):
    return sendgrid_settings(keys[1])


@pytest.fixture(scope="module")
def batch() -> bytes:
    return json.dumps(fixture("sendgrid_events.json")).encode()


def test_the_sdk_known_answer_vector_verifies():
    config = sendgrid_settings(SDK_PUBLIC_KEY)
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": SDK_SIGNATURE,
        "X-Twilio-Email-Event-Webhook-Timestamp": SDK_TIMESTAMP,
    }
    now = datetime.fromtimestamp(int(SDK_TIMESTAMP), UTC)
    authenticate_sendgrid(headers, SDK_PAYLOAD, config, now=now)
    [event] = parse_sendgrid(SDK_PAYLOAD, now=now)
    assert event.type is EventType.DROPPED
    assert event.event_id == "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"
    # the SDK's own negative cases: another body, another timestamp
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(headers, b"payload", config, now=now)
    assert refused.value.status == 403
    shifted = {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": str(int(SDK_TIMESTAMP) + 1)}
    with pytest.raises(WebhookRefused):
        authenticate_sendgrid(shifted, SDK_PAYLOAD, config, now=now)


def test_a_batch_signed_with_the_configured_key_passes(keys, config, batch):
    authenticate_sendgrid(sign_sendgrid(keys[0], STAMP, batch), batch, config, now=NOW)


def test_header_names_are_case_insensitive(keys, config, batch):
    headers = {k.lower(): v for k, v in sign_sendgrid(keys[0], STAMP, batch).items()}
    authenticate_sendgrid(headers, batch, config, now=NOW)


@pytest.mark.parametrize("missing", ["Signature", "Timestamp"])
def test_a_missing_header_is_401(keys, config, batch, missing):
    headers = sign_sendgrid(keys[0], STAMP, batch)
    del headers[f"X-Twilio-Email-Event-Webhook-{missing}"]
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(headers, batch, config, now=NOW)
    assert refused.value.status == 401


def test_another_key_is_403(config, batch):
    other, _ = sendgrid_key_pair()
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(sign_sendgrid(other, STAMP, batch), batch, config, now=NOW)
    assert refused.value.status == 403


def test_a_signature_over_a_different_body_is_403(keys, config, batch):
    headers = sign_sendgrid(keys[0], STAMP, b"[]")
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(headers, batch, config, now=NOW)
    assert refused.value.status == 403


@pytest.mark.parametrize("signature", ["not base64!", "", "AAAA"])
def test_a_malformed_signature_is_refused(keys, config, batch, signature):
    headers = sign_sendgrid(keys[0], STAMP, batch)
    headers["X-Twilio-Email-Event-Webhook-Signature"] = signature
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(headers, batch, config, now=NOW)
    assert refused.value.status in (401, 403)


@pytest.mark.parametrize("timestamp", ["soon", "-5", "1e9", "99999999999999"])
def test_a_malformed_timestamp_is_403(keys, config, batch, timestamp):
    headers = sign_sendgrid(keys[0], timestamp, batch)
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(headers, batch, config, now=NOW)
    assert refused.value.status == 403


def test_a_retry_within_25_hours_passes_and_an_older_signature_has_expired(keys, config, batch):
    signed = STAMP - 24 * 3600
    authenticate_sendgrid(sign_sendgrid(keys[0], signed, batch), batch, config, now=NOW)
    expired = STAMP - 25 * 3600 - 1
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(sign_sendgrid(keys[0], expired, batch), batch, config, now=NOW)
    assert refused.value.status == 403
    assert "expired" in refused.value.detail


def test_a_signature_from_the_future_is_403(keys, config, batch):
    later = STAMP + 3600
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(sign_sendgrid(keys[0], later, batch), batch, config, now=NOW)
    assert refused.value.status == 403


def test_no_key_configured_is_503(keys, batch):
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(
            sign_sendgrid(keys[0], STAMP, batch), batch, load_settings({}), now=NOW
        )
    assert refused.value.status == 503


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_flip_in_the_body_breaks_the_signature(keys, config, batch, data):
    headers = sign_sendgrid(keys[0], STAMP, batch)
    position = data.draw(st.integers(0, len(batch) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = bytearray(batch)
    tampered[position] ^= flip
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sendgrid(headers, bytes(tampered), config, now=NOW)
    assert refused.value.status == 403


EXPECTED = {
    "processed": (EventType.PROCESSED, None),
    "deferred": (EventType.DEFERRED, None),
    "delivered": (EventType.DELIVERED, None),
    "open": (EventType.OPEN, None),
    "click": (EventType.CLICK, None),
    "bounce": (EventType.BOUNCE, "hard"),
    "dropped": (EventType.DROPPED, None),
    "spamreport": (EventType.SPAM_COMPLAINT, None),
    "unsubscribe": (EventType.UNSUBSCRIBE, None),
    "group_unsubscribe": (EventType.UNSUBSCRIBE, None),
    "group_resubscribe": (EventType.RESUBSCRIBE, None),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_documented_event_type_is_mapped(kind):
    [raw] = [e for e in fixture("sendgrid_events.json") if e["event"] == kind]
    [event] = parse_sendgrid(json.dumps([raw]).encode(), now=NOW)
    assert (event.type, event.bounce_class) == EXPECTED[kind]
    assert event.provider == "sendgrid"
    assert event.provider_type.split("/")[0] == kind
    assert event.event_id == raw["sg_event_id"]
    assert event.occurred_at == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    assert event.recipient == "example@test.com"
    assert event.nurture_message_id == "m-1001"
    assert event.raw == raw


def test_the_documented_batch_parses_in_order(batch):
    events = parse_sendgrid(batch, now=NOW)
    assert [e.provider_type.split("/")[0] for e in events] == [
        e["event"] for e in fixture("sendgrid_events.json")
    ]


def test_click_and_open_details():
    events = {e.type: e for e in parse_sendgrid(json.dumps(fixture("sendgrid_events.json")).encode(), now=NOW)}
    assert events[EventType.CLICK].url == "http://www.sendgrid.com/"
    assert events[EventType.OPEN].url is None
    assert events[EventType.OPEN].ip == "255.255.255.255"
    assert events[EventType.OPEN].user_agent.startswith("Mozilla/4.0")


@pytest.mark.parametrize(("kind", "bounce_class"), [("bounce", "hard"), ("blocked", "soft")])
def test_a_blocked_bounce_is_soft(kind, bounce_class):
    [raw] = [e for e in fixture("sendgrid_events.json") if e["event"] == "bounce"]
    [event] = parse_sendgrid(json.dumps([{**raw, "type": kind}]).encode(), now=NOW)
    assert event.bounce_class == bounce_class
    assert event.provider_type == f"bounce/{kind}"


def test_an_event_without_nurture_message_id_keeps_its_recipient():
    raw = {"email": "Someone@Example.COM", "timestamp": STAMP, "event": "delivered",
           "sg_event_id": "abc"}
    [event] = parse_sendgrid(json.dumps([raw]).encode(), now=NOW)
    assert event.nurture_message_id is None
    assert event.recipient == "someone@example.com"


def test_nurture_message_id_nested_in_unique_args_is_found():
    raw = {"email": "a@example.com", "timestamp": STAMP, "event": "open", "sg_event_id": "x",
           "unique_args": {"nurture_message_id": 42}}
    [event] = parse_sendgrid(json.dumps([raw]).encode(), now=NOW)
    assert event.nurture_message_id == "42"


def test_an_event_without_sg_event_id_gets_a_stable_identity():
    raw = {"email": "a@example.com", "timestamp": STAMP, "event": "dropped", "reason": "Invalid"}
    first = parse_sendgrid(json.dumps([raw]).encode(), now=NOW)[0].event_id
    reordered = json.dumps([dict(reversed(list(raw.items())))], indent=1).encode()
    assert parse_sendgrid(reordered, now=NOW)[0].event_id == first
    assert first.startswith("digest:")


def test_duplicates_inside_one_batch_are_returned_once():
    raw = {"email": "a@example.com", "timestamp": STAMP, "event": "open", "sg_event_id": "same"}
    events = parse_sendgrid(json.dumps([raw, raw, {**raw, "event": "click"}]).encode(), now=NOW)
    assert len(events) == 1
    assert events[0].type is EventType.OPEN


def test_unknown_event_types_are_left_out_not_refused():
    raw = {"email": "a@example.com", "timestamp": STAMP, "event": "account_status_change",
           "sg_event_id": "acc"}
    assert parse_sendgrid(json.dumps([raw]).encode(), now=NOW) == []


def test_an_empty_batch_has_no_events():
    assert parse_sendgrid(b"[]", now=NOW) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[{]",
        b"\xff\xfe",
        b'{"event": "open"}',
        b'"a string"',
        b"[1, 2]",
        b'[{"event": "open", "timestamp": 1513299569}]',
        b'[{"email": "a@example.com", "timestamp": 1513299569}]',
        b'[{"email": "a@example.com", "event": "open"}]',
        b'[{"email": "a@example.com", "event": "open", "timestamp": "yesterday"}]',
        b'[{"email": ["a@example.com"], "event": "open", "timestamp": 1513299569}]',
        b'[{"email": "a@example.com", "event": "open", "timestamp": 1e300}]',
    ],
)
def test_malformed_json_and_wrong_shapes_are_400(body):
    with pytest.raises(WebhookRefused) as refused:
        parse_sendgrid(body, now=NOW)
    assert refused.value.status == 400


def test_an_event_far_in_the_future_is_400():
    late = int((NOW + timedelta(days=2)).timestamp())
    raw = {"email": "a@example.com", "timestamp": late, "event": "open", "sg_event_id": "f"}
    with pytest.raises(WebhookRefused) as refused:
        parse_sendgrid(json.dumps([raw]).encode(), now=NOW)
    assert refused.value.status == 400
    assert "future" in refused.value.detail
    soon = int((NOW + timedelta(hours=1)).timestamp())
    assert parse_sendgrid(json.dumps([{**raw, "timestamp": soon}]).encode(), now=NOW)
