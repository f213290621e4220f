"""Emails Nurture writes to its own users (a password reset, changes requested on a draft):
one template folder each in `email_templates/`, rendered in the shared sandbox, with the
headers every such email carries. The caller sends it through the messenger."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from campaigns.rendering import shared_environment


def staff_email(template: str, context: dict[str, Any], *, to: str, user_id: int,
                mail_from: str) -> EmailMessage:
    """`email_templates/<template>/` (subject.txt, body.txt, body.html) rendered with
    `context`, to `to`: an automatic email with a Message-ID and our own message id."""
    env = shared_environment()

    def render(part: str) -> str:
        return env.get_template(f"{template}/{part}").render(context)

    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = " ".join(render("subject.txt").split())
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=template)
    message["X-Nurture-Message-Id"] = f"{template}-{user_id}-{uuid.uuid4().hex[:12]}"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render("body.txt"))
    message.add_alternative(render("body.html"), subtype="html")
    return message
