"""Email providers' webhooks (CONTRACT.md): authenticate, store, commit, then answer.

Each view reads the raw body, lets the provider's adapter authenticate and parse it, stores
the events in the request's transaction (each provider event identity once), commits, and
only then answers 2xx and hands the stored events to scoring through RQ. A refused request
(`WebhookRefused`, or a batch the storage refuses) stores nothing. A fault on our side is a
5xx, never a 4xx: SNS and Postmark drop an event answered with a 4xx for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, current_app, request

from nurture.clock import utcnow
from nurture.engagement.providers import ProviderEvent, WebhookRefused
from nurture.engagement.providers.mailgun import authenticate_mailgun, parse_mailgun
from nurture.engagement.providers.postmark import authenticate_postmark, parse_postmark
from nurture.engagement.providers.sendgrid import authenticate_sendgrid, parse_sendgrid
from nurture.engagement.providers.ses import parse_ses
from nurture.engagement.providers.sns import (
    CertificateStore,
    SubscriptionNotConfirmed,
    authenticate_sns,
    confirm_subscription,
)
from nurture.engagement.receipts import note_accepted, record_refusal
from nurture.engagement.webhooks import (
    check_mailgun_token,
    record_sns_subscription,
    settle_sns_subscription,
    store_provider_events,
)
from nurture.errors import InvalidInput
from nurture.models import SnsSubscriptionStatus
from nurture.web import db_session, read_body, settings
from nurture.web.engagement import hand_on
from nurture.web.problems import problem

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/sendgrid")
def sendgrid() -> Any:
    body, now = read_body(), utcnow()
    authenticate_sendgrid(request.headers, body, settings(), now=now)
    return _store(parse_sendgrid(body, now=now), now)


@bp.post("/mailgun")
def mailgun() -> Any:
    body, now = read_body(), utcnow()
    signed = authenticate_mailgun(request.headers, body, settings(), now=now)
    events = parse_mailgun(body, now=now)
    # a token seen with other event-data is refused here, before anything is stored
    check_mailgun_token(db_session(), signed.token, signed.signed_at, signed.event_digest,
                        now=now)
    return _store(events, now)


@bp.post("/postmark")
def postmark() -> Any:
    body, now = read_body(), utcnow()
    authenticate_postmark(request.headers, body, settings(), now=now)
    return _store(parse_postmark(body, now=now), now)


@bp.post("/ses")
def ses() -> Any:
    """Amazon SNS: notifications carry SES event records; confirmations are recorded (and a
    subscription confirmed by calling its SubscribeURL when that answers; the admin sees it
    pending otherwise)."""
    body, now = read_body(), utcnow()
    message = authenticate_sns(request.headers, body, settings(), now=now,
                               certificates=_certificates())
    if message.type == "Notification":
        return _store(parse_ses(message, now=now), now)
    session = db_session()
    subscription = record_sns_subscription(
        session, kind=message.type, message_id=message.message_id, topic_arn=message.topic_arn,
        subscribe_url=message.subscribe_url, token=message.token, now=now,
    )
    session.commit()
    if subscription.status is SnsSubscriptionStatus.PENDING and message.subscribe_url:
        # a new confirmation, or a redelivery of one not confirmed yet: try (again)
        confirm = current_app.extensions.get(SNS_CONFIRM, confirm_subscription)
        try:
            confirm(message.subscribe_url)
            error = None
        except SubscriptionNotConfirmed as exc:
            error = str(exc)
        settle_sns_subscription(session, subscription.id, error=error, now=utcnow())
        session.commit()
    return {"subscription": subscription.status.value}, 200


SNS_CONFIRM = "nurture.sns_confirm"
"""app.extensions key of the call that confirms a subscription (tests stand in for AWS)."""

SNS_CERTIFICATES = "nurture.sns_certificates"
"""app.extensions key of the process's SNS certificate store (downloaded certificates kept)."""


def _certificates() -> CertificateStore:
    store = current_app.extensions.get(SNS_CERTIFICATES)
    if store is None:
        store = current_app.extensions.setdefault(
            SNS_CERTIFICATES, CertificateStore(settings().ses_sns_certificates)
        )
    return store


def _store(events: Sequence[ProviderEvent], now: Any) -> Any:
    session = db_session()
    stored = store_provider_events(session, events, now=now)
    note_accepted(session, _provider(), stored.accepted + stored.duplicates, now=now)
    session.commit()
    hand_on(stored)
    return {"accepted": stored.accepted, "duplicates": stored.duplicates}, 200


@bp.errorhandler(WebhookRefused)
def _refused(exc: WebhookRefused) -> Any:
    _keep_refusal(exc.status, exc.detail)
    return problem(exc.status, exc.detail)


@bp.errorhandler(InvalidInput)
def _invalid(exc: InvalidInput) -> Any:
    _keep_refusal(400, str(exc))
    return problem(400, str(exc), errors=exc.errors)


def _provider() -> str:
    return (request.endpoint or "").rpartition(".")[2]


def _keep_refusal(status: int, reason: str) -> None:
    """The refusal as the operators' integrations page shows it, in a transaction of its own
    (the refused request's work is rolled back first: it stores nothing)."""
    session = db_session()
    session.rollback()
    record_refusal(session, _provider(), status=status, reason=reason,
                   remote_addr=request.remote_addr, now=utcnow())
    session.commit()
