"""Amazon SES via SNS: envelope, signature versions 1 and 2, certificates, SES records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurture.config import Settings, load_settings
from nurture.engagement.providers import WebhookRefused
from nurture.engagement.providers.ses import parse_ses
from nurture.engagement.providers.sns import (
    CertificateStore,
    SubscriptionNotConfirmed,
    authenticate_sns,
    certificate_file_name,
    check_sns_url,
    confirm_subscription,
)
from nurture.models.engagement import EventType
from tests.provider_signing import SNS_CERT_URL, SNS_TOPIC_ARN, SnsSigner, fixture

NOW = datetime(2017, 8, 9, 23, 52, tzinfo=UTC)
RECORDS = fixture("ses_records.json")


@pytest.fixture(scope="module")
def certificates_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sns-certificates")


@pytest.fixture(scope="module")
def signer(certificates_dir) -> SnsSigner:
    return SnsSigner.create(certificates_dir)


@pytest.fixture(scope="module")
def config(certificates_dir) -> Settings:
    return load_settings(
        {
            "SES_SNS_TOPIC_ARNS": f"arn:aws:sns:eu-west-1:123456789012:other,{SNS_TOPIC_ARN}",
            "SES_SNS_CERTIFICATES": str(certificates_dir),
        }
    )


def offline(url: str, timeout: float) -> bytes:
    raise AssertionError(f"no download expected, asked for {url}")


@pytest.fixture
def store(config) -> CertificateStore:
    return CertificateStore(config.ses_sns_certificates, fetch=offline)


def notification(signer: SnsSigner, record: dict | str, **kwargs) -> dict:
    message = record if isinstance(record, str) else json.dumps(record) + "\n"
    kwargs.setdefault("timestamp", NOW - timedelta(seconds=5))
    return signer.message("Notification", message=message, **kwargs)


def authenticate(message: dict, config: Settings, store: CertificateStore, headers=None):
    body = SnsSigner.body(message)
    headers = SnsSigner.headers(message) if headers is None else headers
    return authenticate_sns(headers, body, config, now=NOW, certificates=store)


# The envelope and its signature -----------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_notification_passes_with_either_signature_version(signer, config, store, version):
    message = notification(signer, RECORDS["Open"], version=version, subject="SES event")
    sns = authenticate(message, config, store)
    assert sns.type == "Notification"
    assert sns.message_id == message["MessageId"]
    assert sns.topic_arn == SNS_TOPIC_ARN
    assert sns.subject == "SES event"
    assert sns.subscribe_url is None and sns.token is None
    assert json.loads(sns.message) == RECORDS["Open"]


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
@pytest.mark.parametrize("version", ["1", "2"])
def test_confirmations_pass_and_carry_their_subscribe_url(signer, config, store, kind, version):
    message = signer.message(kind, version=version, timestamp=NOW)
    sns = authenticate(message, config, store)
    assert sns.type == kind
    assert sns.subscribe_url == message["SubscribeURL"]
    assert sns.token == message["Token"]
    assert parse_ses(sns, now=NOW) == []


def test_the_type_header_is_optional_but_must_agree(signer, config, store):
    message = notification(signer, RECORDS["Open"])
    authenticate(message, config, store, headers={})
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store, headers={"x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert refused.value.status == 400


@pytest.mark.parametrize("field", ["Signature", "SignatureVersion", "SigningCertURL"])
def test_a_missing_signature_field_is_401(signer, config, store, field):
    message = notification(signer, RECORDS["Open"])
    del message[field]
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 401


CHANGES = {
    "Message": lambda m: m["Message"] + " ",
    "MessageId": lambda m: m["MessageId"] + "x",
    "Subject": lambda m: m["Subject"] + "x",
    "Timestamp": lambda m: (NOW - timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "TopicArn": lambda m: "arn:aws:sns:eu-west-1:123456789012:other",  # also allowed
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_changing_any_signed_field_breaks_the_signature(signer, config, store, field):
    message = notification(signer, RECORDS["Open"], subject="s")
    message[field] = CHANGES[field](message)
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


def test_a_subject_added_after_signing_breaks_the_signature(signer, config, store):
    message = notification(signer, RECORDS["Open"])
    message["Subject"] = "added"
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


def test_a_signature_over_a_different_message_is_403(signer, config, store):
    message = notification(signer, RECORDS["Open"])
    other = notification(signer, RECORDS["Click"])
    message["Signature"] = other["Signature"]
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


def test_a_version_1_signature_claimed_as_version_2_is_403(signer, config, store):
    message = notification(signer, RECORDS["Open"], version="1")
    message["SignatureVersion"] = "2"
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


@pytest.mark.parametrize("version", ["3", "0", "SHA256"])
def test_an_unknown_signature_version_is_403(signer, config, store, version):
    message = notification(signer, RECORDS["Open"])
    message["SignatureVersion"] = version
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


def test_a_signature_that_is_not_base64_is_403(signer, config, store):
    message = notification(signer, RECORDS["Open"])
    message["Signature"] = "not base64 !"
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


def test_another_key_under_the_same_certificate_url_is_403(config, store):
    impostor = SnsSigner.create()  # its certificate is not installed; ours is used
    with pytest.raises(WebhookRefused) as refused:
        authenticate(notification(impostor, RECORDS["Open"]), config, store)
    assert refused.value.status == 403


def test_an_unknown_topic_is_403(signer, config, store):
    message = notification(signer, RECORDS["Open"], topic_arn="arn:aws:sns:us-east-1:999999999999:evil")
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403
    assert "topic" in refused.value.detail


def test_no_topic_configured_is_503(signer, store):
    with pytest.raises(WebhookRefused) as refused:
        authenticate(notification(signer, RECORDS["Open"]), load_settings({}), store)
    assert refused.value.status == 503


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem",
        "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
        "https://sqs.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.-x.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
        "file:///etc/passwd",
        "https://[::1/",
    ],
)
def test_a_certificate_url_off_sns_hosts_is_403_before_any_download(signer, config, url):
    message = notification(signer, RECORDS["Open"], cert_url=url)
    store = CertificateStore(config.ses_sns_certificates, fetch=offline)
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-central-2.amazonaws.com/x.pem",
        "https://sns.us-gov-west-1.amazonaws.com/x.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
        "https://SNS.US-EAST-1.AMAZONAWS.COM/x.pem",
    ],
)
def test_sns_hosts_of_every_partition_are_accepted(url):
    check_sns_url(url, "SigningCertURL")


def test_a_subscribe_url_off_sns_hosts_is_403(signer, config, store):
    message = signer.message(
        "SubscriptionConfirmation", timestamp=NOW, subscribe_url="https://evil.com/confirm"
    )
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    ("age", "passes"),
    [
        (timedelta(hours=23), True),
        (timedelta(days=1, seconds=1), False),
        (-timedelta(minutes=4), True),
        (-timedelta(minutes=6), False),
    ],
)
def test_the_timestamp_window(signer, config, store, age, passes):
    message = notification(signer, RECORDS["Open"], timestamp=NOW - age)
    if passes:
        authenticate(message, config, store)
    else:
        with pytest.raises(WebhookRefused) as refused:
            authenticate(message, config, store)
        assert refused.value.status == 403


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"Notification"',
        b"\xff",
    ],
)
def test_malformed_json_is_400(config, store, body):
    with pytest.raises(WebhookRefused) as refused:
        authenticate_sns({}, body, config, now=NOW, certificates=store)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "change",
    [
        {"Type": "Surprise"},
        {"MessageId": 5},
        {"Message": {"eventType": "Open"}},
        {"Timestamp": "yesterday"},
        {"Timestamp": "2017-08-09T23:51:55"},
        {"TopicArn": None},
    ],
)
def test_wrong_envelope_shapes_are_400(signer, config, store, change):
    message = {**notification(signer, RECORDS["Open"]), **change}
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store, headers={})
    assert refused.value.status == 400


def test_a_confirmation_without_token_is_400(signer, config, store):
    message = signer.message("SubscriptionConfirmation", timestamp=NOW)
    del message["Token"]
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 400


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_flip_in_the_message_breaks_the_signature(signer, config, store, data):
    message = notification(signer, RECORDS["Click"], version=data.draw(st.sampled_from("12")))
    text = bytearray(message["Message"].encode())
    position = data.draw(st.integers(0, len(text) - 1))
    text[position] ^= data.draw(st.integers(1, 127))
    message["Message"] = text.decode("utf-8", errors="replace")
    with pytest.raises(WebhookRefused) as refused:
        authenticate(message, config, store)
    assert refused.value.status == 403


# The certificate store --------------------------------------------------------------------


def test_certificates_are_downloaded_once_and_cached(signer, config):
    url = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem"
    calls = []

    def fetch(asked: str, timeout: float) -> bytes:
        calls.append((asked, timeout))
        return signer.pem

    store = CertificateStore(None, fetch=fetch)
    for _ in range(3):
        authenticate(notification(signer, RECORDS["Open"], cert_url=url), config, store)
    assert calls == [(url, 5.0)]


def test_the_directory_is_looked_up_first_under_the_sha256_of_the_url(signer, tmp_path):
    url = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-4567.pem"
    signer.install(tmp_path, url)
    assert (tmp_path / certificate_file_name(url)).is_file()
    store = CertificateStore(tmp_path, fetch=offline)
    assert store.certificate(url) == signer.certificate


def test_a_download_failure_is_503_and_not_remembered(signer):
    attempts = []

    def failing(url: str, timeout: float) -> bytes:
        attempts.append(url)
        if len(attempts) == 1:
            raise WebhookRefused(503, "network down")
        return signer.pem

    store = CertificateStore(None, fetch=failing)
    with pytest.raises(WebhookRefused) as refused:
        store.certificate(SNS_CERT_URL)
    assert refused.value.status == 503
    assert store.certificate(SNS_CERT_URL) == signer.certificate


def test_a_certificate_sns_does_not_have_is_403_and_remembered():
    attempts = []

    def missing(url: str, timeout: float) -> bytes:
        attempts.append(url)
        raise WebhookRefused(403, "404")

    store = CertificateStore(None, fetch=missing)
    for _ in range(2):
        with pytest.raises(WebhookRefused) as refused:
            store.certificate(SNS_CERT_URL)
        assert refused.value.status == 403
    assert len(attempts) == 1


def test_a_download_that_is_not_a_certificate_is_403():
    store = CertificateStore(None, fetch=lambda url, timeout: b"<html>hello</html>")
    with pytest.raises(WebhookRefused) as refused:
        store.certificate(SNS_CERT_URL)
    assert refused.value.status == 403


def test_a_damaged_file_in_the_directory_is_503(tmp_path):
    (tmp_path / certificate_file_name(SNS_CERT_URL)).write_text("damaged")
    with pytest.raises(WebhookRefused) as refused:
        CertificateStore(tmp_path, fetch=offline).certificate(SNS_CERT_URL)
    assert refused.value.status == 503


def test_an_expired_certificate_is_403(config, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    old = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(datetime(2010, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2011, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    signer = SnsSigner(key, old)
    store = CertificateStore(tmp_path, fetch=offline)
    signer.install(tmp_path)
    with pytest.raises(WebhookRefused) as refused:
        authenticate(notification(signer, RECORDS["Open"]), config, store)
    assert refused.value.status == 403


def test_confirm_subscription_refuses_a_foreign_url_without_calling_it():
    with pytest.raises(SubscriptionNotConfirmed, match="SNS host"):
        confirm_subscription("https://evil.example/confirm")
    with pytest.raises(SubscriptionNotConfirmed, match="https"):
        confirm_subscription("http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription")


# SES records ------------------------------------------------------------------------------

EXPECTED = {
    "Send": (EventType.PROCESSED, None, "2016-10-14T05:02:16.645000+00:00"),
    "Delivery": (EventType.DELIVERED, None, "2016-10-19T23:21:04.133000+00:00"),
    "Open": (EventType.OPEN, None, "2017-08-09T22:00:19.652000+00:00"),
    "Click": (EventType.CLICK, None, "2017-08-09T23:51:25.570000+00:00"),
    "Bounce": (EventType.BOUNCE, "hard", "2017-08-05T00:41:02.669000+00:00"),
    "Complaint": (EventType.SPAM_COMPLAINT, None, "2017-08-05T00:41:02.669000+00:00"),
    "Reject": (EventType.DROPPED, None, "2016-10-14T17:38:15.211000+00:00"),
    "Rendering Failure": (EventType.DROPPED, None, "2018-01-22T18:43:06.197000+00:00"),
    "DeliveryDelay": (EventType.DEFERRED, None, "2020-06-16T00:25:40.095000+00:00"),
    "Subscription": (EventType.UNSUBSCRIBE, None, "2022-01-12T01:00:17.910000+00:00"),
}

LATE_NOW = datetime(2022, 1, 12, 2, tzinfo=UTC)


def parsed(signer, config, store, record, **kwargs):
    sns = authenticate(notification(signer, record, **kwargs), config, store)
    return sns, parse_ses(sns, now=LATE_NOW)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_documented_record_is_mapped(signer, config, store, kind):
    sns, [event] = parsed(signer, config, store, RECORDS[kind])
    type_, bounce_class, occurred_at = EXPECTED[kind]
    assert (event.type, event.bounce_class) == (type_, bounce_class)
    assert event.occurred_at.isoformat() == occurred_at
    assert event.provider == "ses"
    assert event.provider_type == kind
    assert event.event_id == sns.message_id
    assert event.nurture_message_id == "m-4004"
    assert event.recipient == "recipient@example.com"
    assert event.raw == RECORDS[kind]


def test_click_and_open_details(signer, config, store):
    _, [click] = parsed(signer, config, store, RECORDS["Click"])
    assert click.url == "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html"
    assert click.ip == "192.0.2.1"
    assert click.user_agent.startswith("Mozilla/5.0 (Windows")
    _, [open_] = parsed(signer, config, store, RECORDS["Open"])
    assert open_.url is None and open_.user_agent.startswith("Mozilla/5.0 (iPhone")


@pytest.mark.parametrize(
    ("bounce_type", "subtype", "expected"),
    [
        ("Permanent", "General", (EventType.BOUNCE, "hard")),
        ("Transient", "MailboxFull", (EventType.BOUNCE, "soft")),
        ("Undetermined", "Undetermined", (EventType.BOUNCE, "soft")),
        ("Permanent", "Suppressed", (EventType.DROPPED, None)),
        ("Permanent", "OnAccountSuppressionList", (EventType.DROPPED, None)),
    ],
)
def test_bounce_classes(signer, config, store, bounce_type, subtype, expected):
    record = json.loads(json.dumps(RECORDS["Bounce"]))
    record["bounce"].update(bounceType=bounce_type, bounceSubType=subtype)
    _, [event] = parsed(signer, config, store, record)
    assert (event.type, event.bounce_class) == expected


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ({"unsubscribeAll": True}, EventType.UNSUBSCRIBE),
        ({"unsubscribeAll": False, "topicSubscriptionStatus": [
            {"topicName": "t", "subscriptionStatus": "OptOut"}]}, EventType.UNSUBSCRIBE),
        ({"unsubscribeAll": False, "topicSubscriptionStatus": [
            {"topicName": "t", "subscriptionStatus": "OptIn"}]}, EventType.RESUBSCRIBE),
        ({"unsubscribeAll": False}, EventType.RESUBSCRIBE),
    ],
)
def test_subscription_records_by_their_new_preferences(signer, config, store, new, expected):
    record = json.loads(json.dumps(RECORDS["Subscription"]))
    record["subscription"]["newTopicPreferences"] = new
    _, [event] = parsed(signer, config, store, record)
    assert event.type is expected


def test_a_record_about_several_recipients_gives_one_event_each(signer, config, store):
    record = json.loads(json.dumps(RECORDS["Bounce"]))
    record["bounce"]["bouncedRecipients"].append({"emailAddress": "Second@Example.com"})
    sns, events = parsed(signer, config, store, record)
    assert [e.event_id for e in events] == [f"{sns.message_id}:0", f"{sns.message_id}:1"]
    assert [e.recipient for e in events] == ["recipient@example.com", "second@example.com"]


def test_without_the_tag_the_recipient_remains_and_a_link_tag_is_read(signer, config, store):
    record = json.loads(json.dumps(RECORDS["Click"]))
    del record["mail"]["tags"]["nurture_message_id"]
    _, [event] = parsed(signer, config, store, record)
    assert event.nurture_message_id is None
    assert event.recipient == "recipient@example.com"
    record["click"]["linkTags"]["nurture_message_id"] = ["m-5"]
    _, [event] = parsed(signer, config, store, record)
    assert event.nurture_message_id == "m-5"


def test_identity_notifications_without_tags_parse(signer, config, store):
    record = {k: v for k, v in RECORDS["Delivery"].items() if k != "eventType"}
    record["notificationType"] = "Delivery"
    del record["mail"]["tags"]
    _, [event] = parsed(signer, config, store, record)
    assert event.type is EventType.DELIVERED
    assert event.nurture_message_id is None


@pytest.mark.parametrize(
    "message",
    [
        "Successfully validated SNS topic for Amazon SES event publishing.",
        json.dumps({"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "ok"}),
        json.dumps({"eventType": "SomethingNew", "mail": {}}),
    ],
)
def test_setup_messages_and_unknown_kinds_give_no_events(signer, config, store, message):
    assert parsed(signer, config, store, message)[1] == []


@pytest.mark.parametrize(
    "record",
    [
        [1, 2],
        {"mail": {}},
        {"eventType": "Open", "open": {"timestamp": "2017-08-09T22:00:19.652Z"}},
        {"eventType": "Open", "mail": {"timestamp": "2017-08-09T21:59:49.927Z", "messageId": "m"}},
        {"eventType": "Bounce", "mail": RECORDS["Bounce"]["mail"],
         "bounce": {"bounceType": "Permanent", "timestamp": "2017-08-05T00:41:02.669Z"}},
        {"eventType": "Open", "mail": RECORDS["Open"]["mail"], "open": {"timestamp": "soon"}},
        {"eventType": "Subscription", "mail": RECORDS["Open"]["mail"],
         "subscription": {"timestamp": "2017-08-09T22:00:19.652Z"}},
    ],
)
def test_wrong_record_shapes_are_400(signer, config, store, record):
    with pytest.raises(WebhookRefused) as refused:
        parsed(signer, config, store, record)
    assert refused.value.status == 400


def test_an_event_far_in_the_future_is_400(signer, config, store):
    record = json.loads(json.dumps(RECORDS["Open"]))
    record["open"]["timestamp"] = "2022-01-14T00:00:00.000Z"
    with pytest.raises(WebhookRefused) as refused:
        parsed(signer, config, store, record)
    assert refused.value.status == 400


# The download itself, against a local server ----------------------------------------------


@pytest.fixture
def local_server():
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = {
                "/cert.pem": (200, b"PEM"),
                "/missing.pem": (404, b"no"),
                "/broken.pem": (500, b"oops"),
                "/moved.pem": (302, b""),
                "/huge.pem": (200, b"x" * (65 * 1024)),
            }[self.path]
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/cert.pem")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "status"),
    [("/missing.pem", 403), ("/moved.pem", 403), ("/huge.pem", 403), ("/broken.pem", 503)],
)
def test_download_statuses(local_server, path, status):
    from nurture.engagement.providers.sns import download

    assert download(f"{local_server}/cert.pem", 2.0) == b"PEM"
    with pytest.raises(WebhookRefused) as refused:
        download(f"{local_server}{path}", 2.0)
    assert refused.value.status == status


def test_download_from_an_unreachable_host_is_503():
    import socket

    from nurture.engagement.providers.sns import download

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WebhookRefused) as refused:
        download(f"http://127.0.0.1:{port}/cert.pem", 1.0)
    assert refused.value.status == 503


def test_the_store_never_fetches_from_an_unchecked_url():
    store = CertificateStore(None, fetch=offline)
    with pytest.raises(WebhookRefused) as refused:
        store.certificate("https://evil.example/cert.pem")
    assert refused.value.status == 403
