"""Sign webhook requests the way each email provider does, with locally generated keys.

For the adapter tests, the HTTP tests of the webhook routes and the benchmarks:

    private_key, public_b64 = sendgrid_key_pair()     # SENDGRID_WEBHOOK_PUBLIC_KEY=public_b64
    headers = sign_sendgrid(private_key, timestamp, body)

    body = mailgun_request(event_data, signing_key, timestamp=t)   # signed JSON body
    headers = postmark_auth_header("user", "password")

    signer = SnsSigner.create(certificates_dir)      # SES_SNS_CERTIFICATES=certificates_dir
    body = signer.body(signer.message("Notification", message=json.dumps(ses_record), ...))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
"""The providers' documented sample payloads (JSON)."""

SNS_CERT_URL = (
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"
    "9c6465fa7f48f5cacd23014631ec1136.pem"
)
"""A SigningCertURL of the shape SNS uses; tests put their certificate under its name."""

SNS_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:nurture-ses-events"


def fixture(name: str) -> Any:
    """A JSON fixture of tests/fixtures/providers, parsed."""
    return json.loads((FIXTURES / name).read_text())


# SendGrid ---------------------------------------------------------------------------------


def sendgrid_key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A new ECDSA P-256 key and its public key as SendGrid shows it (base64 DER SPKI)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_key, base64.b64encode(der).decode("ascii")


def sign_sendgrid(
    private_key: ec.EllipticCurvePrivateKey, timestamp: int | str, body: bytes
) -> dict[str, str]:
    """The two headers SendGrid sends: ECDSA-SHA256 over the timestamp's digits + body."""
    stamp = str(timestamp)
    signature = private_key.sign(stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode("ascii"),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


# Mailgun ----------------------------------------------------------------------------------


def mailgun_signature(signing_key: str, timestamp: int | str, token: str) -> str:
    """Mailgun's signature: hex HMAC-SHA256 of timestamp + token."""
    message = f"{timestamp}{token}".encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def mailgun_request(
    event_data: dict[str, Any],
    signing_key: str,
    *,
    timestamp: int,
    token: str | None = None,
) -> bytes:
    """A Mailgun webhook body: `event-data` with a fresh (or the given) token, signed."""
    token = token or secrets.token_hex(25)
    signature = {
        "timestamp": str(timestamp),
        "token": token,
        "signature": mailgun_signature(signing_key, timestamp, token),
    }
    return json.dumps({"signature": signature, "event-data": event_data}).encode()


# Postmark ---------------------------------------------------------------------------------


def postmark_auth_header(username: str, password: str) -> dict[str, str]:
    """The basic-auth header Postmark sends when its webhook URL has credentials."""
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {credentials}"}


# Amazon SNS -------------------------------------------------------------------------------

SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}
"""Written out again here (not imported from the code under test) so that a mistake there
is not copied into the tests."""


def sns_certificate_file_name(url: str) -> str:
    """Where SES_SNS_CERTIFICATES holds the certificate of a SigningCertURL."""
    return hashlib.sha256(url.encode()).hexdigest() + ".pem"


def self_signed_certificate(private_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """A certificate for `private_key` named like SNS's (valid 2000-2100, so any test time)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC))
        .sign(private_key, hashes.SHA256())
    )


@dataclass
class SnsSigner:
    """An RSA key whose self-signed certificate is in a SES_SNS_CERTIFICATES directory under
    the name of `cert_url`, signing SNS messages as SNS does."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    cert_url: str = SNS_CERT_URL

    @classmethod
    def create(cls, directory: Path | None = None, cert_url: str = SNS_CERT_URL) -> SnsSigner:
        """A new key (2048-bit RSA); its certificate written into `directory` if given."""
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signer = cls(private_key, self_signed_certificate(private_key), cert_url)
        if directory is not None:
            signer.install(directory)
        return signer

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def install(self, directory: Path, cert_url: str | None = None) -> Path:
        """Write the certificate into `directory` under the name of `cert_url`."""
        path = directory / sns_certificate_file_name(cert_url or self.cert_url)
        path.write_bytes(self.pem)
        return path

    def message(
        self,
        type_: str = "Notification",
        *,
        message: str = "{}",
        timestamp: datetime | str | None = None,
        topic_arn: str = SNS_TOPIC_ARN,
        version: str = "1",
        message_id: str | None = None,
        subject: str | None = None,
        token: str | None = None,
        subscribe_url: str | None = None,
        cert_url: str | None = None,
    ) -> dict[str, Any]:
        """An SNS message of `type_`, signed (SignatureVersion `version`: "1" SHA-1, "2"
        SHA-256). Confirmations get a Token and SubscribeURL unless given."""
        when = timestamp or datetime.now(UTC)
        if isinstance(when, datetime):
            when = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
                f"{when.microsecond // 1000:03d}Z"
            )
        fields: dict[str, Any] = {
            "Type": type_,
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": when,
            "SignatureVersion": version,
            "SigningCertURL": cert_url or self.cert_url,
        }
        if subject is not None:
            fields["Subject"] = subject
        if type_ != "Notification":
            fields["Token"] = token or secrets.token_hex(64)
            fields["SubscribeURL"] = subscribe_url or (
                "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
                f"&TopicArn={topic_arn}&Token={fields['Token']}"
            )
            if type_ == "SubscriptionConfirmation":
                fields["Message"] = (
                    f"You have chosen to subscribe to the topic {topic_arn}.\n"
                    "To confirm the subscription, visit the SubscribeURL included in this message."
                )
        else:
            fields["UnsubscribeURL"] = (
                "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
                f"&SubscriptionArn={topic_arn}:c9135db0-26c4-47ec-8998-413945fb5a96"
            )
        fields["Signature"] = self.sign(fields)
        return fields

    def sign(self, fields: dict[str, Any]) -> str:
        """The base64 signature SNS would put on `fields` (their SignatureVersion's hash)."""
        text = "".join(
            f"{name}\n{fields[name]}\n"
            for name in SIGNED_FIELDS[fields["Type"]]
            if fields.get(name) is not None
        )
        algorithm = hashes.SHA1() if fields["SignatureVersion"] == "1" else hashes.SHA256()
        signature = self.private_key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        return base64.b64encode(signature).decode("ascii")

    @staticmethod
    def body(message: dict[str, Any]) -> bytes:
        """The HTTP body SNS posts (JSON, sent as text/plain)."""
        return json.dumps(message, indent=2).encode()

    @staticmethod
    def headers(message: dict[str, Any]) -> dict[str, str]:
        """The headers SNS sends with a message."""
        return {
            "x-amz-sns-message-type": message["Type"],
            "x-amz-sns-message-id": message["MessageId"],
            "x-amz-sns-topic-arn": message["TopicArn"],
            "Content-Type": "text/plain; charset=UTF-8",
        }
