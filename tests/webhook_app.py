"""An app configured for every provider webhook (keys made here), and helpers to seed leads and
messages the providers' sample events name. Imported by the tests/test_webhooks_*.py modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from nurture import create_app
from nurture.models import EngagementEvent, Suppression
from tests.provider_signing import SNS_TOPIC_ARN, SnsSigner, sendgrid_key_pair
from tests.test_engagement import make_lead, make_message

MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hook", "s3cret-pass-phrase"


@dataclass
class Providers:
    app: Flask
    sendgrid_key: Any
    sns: SnsSigner
    certificates: Path


@contextmanager
def provider_app(service_env: dict[str, str], directory: Path) -> Iterator[Providers]:
    """A second app on the same database and Redis, with every provider's settings (keys
    made now; SNS certificates in `directory`). The `providers` fixture of conftest.py."""
    private_key, public_key = sendgrid_key_pair()
    certificates = directory
    sns = SnsSigner.create(certificates)
    application = create_app({
        **service_env, "TESTING": True,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "POSTMARK_WEBHOOK_USERNAME": POSTMARK_USER,
        "POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD,
        "SES_SNS_TOPIC_ARNS": SNS_TOPIC_ARN,
        "SES_SNS_CERTIFICATES": str(certificates),
    })
    yield Providers(application, private_key, sns, certificates)
    application.extensions["nurture.db"].dispose()


def seed(db, email: str, message_name: str, **kw: Any) -> tuple[int, int]:
    """A lead with this address and a sent message named `message_name`: (lead id, message id)."""
    with db.session_scope() as session:
        lead = make_lead(session, email)
        return lead, make_message(session, lead, name=message_name, **kw)


def stored_events(db) -> list[EngagementEvent]:
    with db.session_scope() as session:
        return session.execute(
            select(EngagementEvent).order_by(EngagementEvent.id)).scalars().all()


def suppressed(db) -> dict[str, str]:
    with db.session_scope() as session:
        return {e: r.value for e, r in session.execute(
            select(Suppression.email, Suppression.reason)).all()}


def scoring_jobs(app: Flask) -> list[tuple[Any, ...]]:
    from rq import Queue

    queue = Queue("scoring", connection=app.extensions["nurture.redis"])
    return [job.args for job in queue.jobs]
