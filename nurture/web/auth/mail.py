"""The password-reset email: `email_templates/password-reset/`, sent through the messenger
(SMTP_URL, else the outbox folder) like every other email of Nurture."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from campaigns.messengers import messenger_for
from campaigns.staff_mail import staff_email
from nurture.accounts.resets import RESET_VALID_FOR
from nurture.config import Settings
from nurture.models import User

TEMPLATE = "password-reset"


def compose(user: User, link: str, *, mail_from: str) -> EmailMessage:
    context = {"user": {"name": user.name, "email": user.email}, "link": link,
               "valid_minutes": int(RESET_VALID_FOR.total_seconds() // 60)}
    return staff_email(TEMPLATE, context, to=user.email, user_id=user.id,
                       mail_from=mail_from)


def send_reset_email(settings: Settings, user: User, link: str) -> None:
    """Raises the messenger's SendRefused / SendUnknown: the caller says so to no one (the
    page answers the same whether or not an account exists) but logs it."""
    messenger = messenger_for(settings.smtp_url, Path(settings.instance_path) / "outbox")
    try:
        messenger.send(compose(user, link, mail_from=settings.mail_from))
    finally:
        messenger.close()
