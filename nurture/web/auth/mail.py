"""The password-reset email: `email_templates/password-reset/`, sent through the messenger
(SMTP_URL, else the outbox folder) like every other email of Nurture."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from campaigns.messengers import messenger_for
from campaigns.rendering import shared_environment
from nurture.accounts.resets import RESET_VALID_FOR
from nurture.config import Settings
from nurture.models import User

TEMPLATE = "password-reset"


def compose(user: User, link: str, *, mail_from: str) -> EmailMessage:
    env = shared_environment()
    context = {"user": {"name": user.name, "email": user.email}, "link": link,
               "valid_minutes": int(RESET_VALID_FOR.total_seconds() // 60)}

    def render(part: str) -> str:
        return env.get_template(f"{TEMPLATE}/{part}").render(context)

    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = user.email
    message["Subject"] = " ".join(render("subject.txt").split())
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring="password-reset")
    message["X-Nurture-Message-Id"] = f"password-reset-{user.id}-{uuid.uuid4().hex[:12]}"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render("body.txt"))
    message.add_alternative(render("body.html"), subtype="html")
    return message


def send_reset_email(settings: Settings, user: User, link: str) -> None:
    """Raises the messenger's SendRefused / SendUnknown: the caller says so to no one (the
    page answers the same whether or not an account exists) but logs it."""
    messenger = messenger_for(settings.smtp_url, Path(settings.instance_path) / "outbox")
    try:
        messenger.send(compose(user, link, mail_from=settings.mail_from))
    finally:
        messenger.close()
