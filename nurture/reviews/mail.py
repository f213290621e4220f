"""The "changes requested" email to an author: `email_templates/changes-requested/`, sent by
the caller through the messenger like every other email of Nurture."""

from __future__ import annotations

from email.message import EmailMessage

from campaigns.staff_mail import staff_email
from nurture.models import User

TEMPLATE = "changes-requested"


def compose_changes_requested(user: User, *, label: str, title: str, version: int,
                              reviewer: str, comment: str, link: str,
                              mail_from: str) -> EmailMessage:
    context = {"user": {"name": user.name, "email": user.email},
               "item": {"label": label, "title": title, "version": version},
               "reviewer": reviewer, "comment": comment, "link": link}
    return staff_email(TEMPLATE, context, to=user.email, user_id=user.id,
                       mail_from=mail_from)
