"""The "changes requested" email to an author: `email_templates/changes-requested/`, sent by
the caller through the messenger like every other email of Nurture."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from campaigns.rendering import shared_environment
from nurture.models import User

TEMPLATE = "changes-requested"


def compose_changes_requested(user: User, *, label: str, title: str, version: int,
                              reviewer: str, comment: str, link: str,
                              mail_from: str) -> EmailMessage:
    env = shared_environment()
    context = {"user": {"name": user.name, "email": user.email},
               "item": {"label": label, "title": title, "version": version},
               "reviewer": reviewer, "comment": comment, "link": link}

    def render(part: str) -> str:
        return env.get_template(f"{TEMPLATE}/{part}").render(context)

    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = user.email
    message["Subject"] = " ".join(render("subject.txt").split())
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring="changes-requested")
    message["X-Nurture-Message-Id"] = f"changes-requested-{user.id}-{uuid.uuid4().hex[:12]}"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render("body.txt"))
    message.add_alternative(render("body.html"), subtype="html")
    return message
