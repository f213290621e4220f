"""Amazon SNS over HTTPS: the envelope that carries SES events, and its signature.

A message is a JSON object (sent as `text/plain`) of `Type` SubscriptionConfirmation,
Notification or UnsubscribeConfirmation. It is signed with RSA PKCS#1 v1.5, over SHA-1
(`SignatureVersion` 1) or SHA-256 (2), by the key of the X.509 certificate at
`SigningCertURL`, which must be an https URL on an SNS host of AWS (`sns.<region>.amazonaws.com`,
or `….amazonaws.com.cn` in China). The string signed is `name\\nvalue\\n` for the fields of
SIGNED_FIELDS, in that order, those absent skipped.

Status codes: SNS counts any answer from 200 to 499 as delivered and retries only 5xx and
timeouts. A refused message (403 bad signature, unknown topic, foreign certificate host; 400
malformed) is therefore dropped by SNS, which is right for forgeries; a fault on our side
(certificate download failing) is 503 so that SNS retries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from nurture.config import Settings
from nurture.engagement.providers import WebhookRefused
from nurture.engagement.providers.common import (
    check_signed_at,
    from_iso,
    header,
    load_json,
    validate,
)

SNS_HOST = re.compile(r"^sns\.[a-z0-9][a-z0-9-]*[a-z0-9]\.amazonaws\.com(\.cn)?$")
"""SNS's own hosts, as AWS's SDKs accept them (every region, GovCloud and China)."""

MESSAGE_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")

SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}
"""The fields SNS signs for each message type, in the order it signs them."""

SIGNATURE_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}

MESSAGE_MAX_AGE = timedelta(days=1)
"""SNS keeps a message's `Timestamp` across retries, and its HTTP retries end within an hour
(3,600 s is AWS's hard limit), throttled subscriptions queue longer. A refusal is final (SNS
does not retry a 4xx) while a replayed genuine message is deduped by `MessageId`: generous."""

DOWNLOAD_TIMEOUT = 5.0
"""Seconds for fetching a certificate or confirming a subscription; SNS waits 15 s for us."""

MAX_CERTIFICATE_BYTES = 64 * 1024
"""An SNS certificate is about 2 KB; anything much larger is not one."""

MAX_REMEMBERED_MISSES = 1024
"""Certificate URLs that SNS answered 4xx for are remembered (refused without a download) up to
this many; past it the memory starts over."""


@dataclass(frozen=True)
class SnsMessage:
    """An authenticated SNS message. `message` is the payload (for Notification the SES event
    JSON); `subscribe_url` and `token` are set for the two confirmation types, and
    `subscribe_url` has been checked to be an https URL on an SNS host."""

    type: str
    message_id: str
    topic_arn: str
    timestamp: datetime
    message: str
    subject: str | None = None
    subscribe_url: str | None = None
    token: str | None = None


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    Type: StrictStr
    MessageId: StrictStr = Field(min_length=1, max_length=200)
    TopicArn: StrictStr
    Message: StrictStr
    Timestamp: StrictStr
    SignatureVersion: StrictStr
    Signature: StrictStr
    SigningCertURL: StrictStr
    Subject: StrictStr | None = None
    SubscribeURL: StrictStr | None = None
    Token: StrictStr | None = None


class SubscriptionNotConfirmed(Exception):
    """Calling a SubscribeURL failed; `str()` says why (for the admin to see)."""


def certificate_file_name(url: str) -> str:
    """The file a certificate is looked up under in SES_SNS_CERTIFICATES: `<sha256 hex>.pem`
    of its SigningCertURL exactly as SNS sends it."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest() + ".pem"


def check_sns_url(url: str, what: str) -> None:
    """Refuse (403) a URL that is not plain https on an SNS host (no user, no port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookRefused(403, f"{what} is not a URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme != "https":
        raise WebhookRefused(403, f"{what} must be https, got {parts.scheme or 'none'}")
    if not SNS_HOST.match(host) or parts.username is not None or port not in (None, 443):
        raise WebhookRefused(403, f"{what} is not on an Amazon SNS host: {parts.netloc!r}")


def download(url: str, timeout: float) -> bytes:
    """GET an already checked SNS URL (no redirects followed): the body, at most
    MAX_CERTIFICATE_BYTES. Raises `WebhookRefused` 403 when SNS answers 3xx or 4xx (no such
    file: the message cannot be genuine), 503 on any other failure (ours or the network's)."""
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(url, timeout=timeout) as response:
            body: bytes = response.read(MAX_CERTIFICATE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        status = 503 if exc.code >= 500 else 403  # 3xx too: SNS serves certificates directly
        raise WebhookRefused(status, f"fetching {url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WebhookRefused(503, f"fetching {url} failed: {exc}") from None
    if len(body) > MAX_CERTIFICATE_BYTES:
        raise WebhookRefused(403, f"{url} is too large to be a certificate")
    return body


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx then surfaces as an HTTPError


class CertificateStore:
    """SNS signing certificates by SigningCertURL: from `directory` (SES_SNS_CERTIFICATES,
    files named by `certificate_file_name`) first, else downloaded once and kept in memory.

    One store per process; it is thread-safe. `fetch` replaces `download` in tests."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        fetch: Callable[[str, float], bytes] = download,
        timeout: float = DOWNLOAD_TIMEOUT,
    ) -> None:
        self.directory = directory
        self._fetch = fetch
        self._timeout = timeout
        self._certificates: dict[str, x509.Certificate] = {}
        self._misses: set[str] = set()
        self._lock = threading.Lock()

    def certificate(self, url: str) -> x509.Certificate:
        """The certificate at a checked SigningCertURL (see `check_sns_url`).

        Raises `WebhookRefused`: 403 when SNS has no such certificate or the file is not one,
        503 when it cannot be had now (network) or a file in `directory` is damaged."""
        found = self._certificates.get(url)
        if found is not None:
            return found
        check_sns_url(url, "SigningCertURL")  # the caller checked it; never fetch from elsewhere
        with self._lock:  # one download per URL, however many requests arrive at once
            found = self._certificates.get(url)
            if found is not None:
                return found
            if url in self._misses:
                raise WebhookRefused(403, f"no SNS certificate at {url}")
            certificate = self._load(url)
            self._certificates[url] = certificate
            return certificate

    def _load(self, url: str) -> x509.Certificate:
        if self.directory is not None:
            path = self.directory / certificate_file_name(url)
            if path.is_file():
                try:
                    return x509.load_pem_x509_certificate(path.read_bytes())
                except (OSError, ValueError) as exc:
                    raise WebhookRefused(503, f"{path} is not a PEM certificate: {exc}") from None
        try:
            pem = self._fetch(url, self._timeout)
        except WebhookRefused as refused:
            if refused.status == 403:
                if len(self._misses) >= MAX_REMEMBERED_MISSES:
                    self._misses.clear()
                self._misses.add(url)
            raise
        try:
            return x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise WebhookRefused(403, f"{url} is not a PEM certificate") from None


def authenticate_sns(
    headers: Mapping[str, str],
    body: bytes,
    settings: Settings,
    *,
    now: datetime,
    certificates: CertificateStore,
) -> SnsMessage:
    """Parse and authenticate an SNS message; return it.

    Raises `WebhookRefused`: 503 when no topic is allowed (SES_SNS_TOPIC_ARNS unset) or the
    certificate cannot be fetched now; 400 when the body is not an SNS message (not JSON, a
    field missing or not a string, an unknown `Type`, a Type header that contradicts it);
    401 when `Signature`, `SignatureVersion` or `SigningCertURL` is missing; 403 for a topic
    not in the allow-list, a certificate URL that is not https on an SNS host, a SubscribeURL
    that is not either, an expired or future `Timestamp`, an unknown signature version, a
    certificate that is not a valid RSA one, or a signature that does not verify."""
    if not settings.ses_sns_topic_arns:
        raise WebhookRefused(503, "SES_SNS_TOPIC_ARNS is not set")
    data = load_json(body)
    if not isinstance(data, dict):
        raise WebhookRefused(400, "an SNS message is a JSON object")
    if not all(data.get(name) for name in ("Signature", "SignatureVersion", "SigningCertURL")):
        raise WebhookRefused(401, "Signature, SignatureVersion and SigningCertURL are required")
    envelope = validate(_Envelope, data, "SNS message")
    if envelope.Type not in MESSAGE_TYPES:
        raise WebhookRefused(400, f"unknown SNS message Type {envelope.Type!r}")
    declared = header(headers, "x-amz-sns-message-type")
    if declared is not None and declared != envelope.Type:
        raise WebhookRefused(400, f"x-amz-sns-message-type {declared!r} but Type {envelope.Type!r}")
    if envelope.Type != "Notification" and not (envelope.SubscribeURL and envelope.Token):
        raise WebhookRefused(400, f"a {envelope.Type} needs SubscribeURL and Token")
    if envelope.TopicArn not in settings.ses_sns_topic_arns:
        raise WebhookRefused(403, f"topic {envelope.TopicArn!r} is not in SES_SNS_TOPIC_ARNS")
    check_sns_url(envelope.SigningCertURL, "SigningCertURL")
    if envelope.SubscribeURL is not None and envelope.Type != "Notification":
        check_sns_url(envelope.SubscribeURL, "SubscribeURL")
    timestamp = from_iso(envelope.Timestamp, "Timestamp")
    check_signed_at(timestamp, now, MESSAGE_MAX_AGE, 403)
    algorithm = SIGNATURE_HASHES.get(envelope.SignatureVersion)
    if algorithm is None:
        raise WebhookRefused(403, f"unknown SignatureVersion {envelope.SignatureVersion!r}")
    try:
        signature = base64.b64decode(envelope.Signature, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused(403, "Signature is not base64") from None
    certificate = certificates.certificate(envelope.SigningCertURL)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise WebhookRefused(403, "the signing certificate is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused(403, "the signing certificate has no RSA key")
    try:
        key.verify(signature, string_to_sign(data), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise WebhookRefused(403, "the signature does not match the message") from None
    return SnsMessage(
        type=envelope.Type,
        message_id=envelope.MessageId,
        topic_arn=envelope.TopicArn,
        timestamp=timestamp,
        message=envelope.Message,
        subject=envelope.Subject,
        subscribe_url=envelope.SubscribeURL if envelope.Type != "Notification" else None,
        token=envelope.Token if envelope.Type != "Notification" else None,
    )


def string_to_sign(message: Mapping[str, object]) -> bytes:
    """The bytes SNS signs for a message (a JSON object with a known `Type`): each field of
    SIGNED_FIELDS present (Subject may be absent or null) as `name\\nvalue\\n`."""
    lines = []
    for name in SIGNED_FIELDS[str(message["Type"])]:
        value = message.get(name)
        if value is None:
            continue
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


def confirm_subscription(url: str, *, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Confirm an SNS subscription by calling its SubscribeURL (checked again here).

    Raises `SubscriptionNotConfirmed` saying why when the URL is not an SNS one or the call
    fails; the caller records that for the admin, who can confirm by hand."""
    try:
        check_sns_url(url, "SubscribeURL")
        download(url, timeout)
    except WebhookRefused as refused:
        raise SubscriptionNotConfirmed(refused.detail) from None
