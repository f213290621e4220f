"""Previews and test sends of a sequence's emails, rendered as sending renders them.

A preview is for the sample lead every template is validated with, or for a real lead; the
collateral is what the step would feature today (the newest approved, unexpired version), or
the newest version of one not yet sendable, so a marketer sees the email before sales
approves. Nothing is recorded: no message row, no tracking, no frequency cap.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.collateral import sendable_versions
from campaigns.composing import Sender, build_message, inline_css
from campaigns.documents import EmailStep, SequenceDocument
from campaigns.messengers import messenger_for
from campaigns.rendering import RenderedEmail, TemplateProblem, render_email, sample_context
from nurture.errors import InvalidInput, NotFound
from nurture.models import Collateral, CollateralVersion, Lead

LEAD_FIELDS = ("email", "first_name", "last_name", "company", "title", "industry",
               "company_size", "country", "timezone", "source")
"""The lead's fields an email template sees (as `campaigns.sending.compose` gives them)."""

TEST_SUBJECT_PREFIX = "[Test] "


@dataclass(frozen=True)
class Preview:
    step_id: str
    template: str
    lead: str
    """Whom it was rendered for: the sample lead or a real lead's address."""
    subject: str
    html: str
    text: str
    collateral: list[dict[str, Any]]


def email_step(document: SequenceDocument, step_id: str) -> EmailStep:
    try:
        step = document.step(step_id)
    except KeyError:
        raise NotFound(f"no step {step_id!r} in this version") from None
    if not isinstance(step, EmailStep):
        raise InvalidInput(f"step {step_id!r} is a {step.type} step, not an email")
    return step


def find_lead(session: Session, email: str) -> Lead:
    lead = session.execute(
        select(Lead).where(func.lower(Lead.email) == email.strip().lower())
    ).scalar_one_or_none()
    if lead is None:
        raise NotFound(f"no lead {email.strip()!r}")
    return lead


def _collateral(session: Session, keys: list[str], *, today: date) -> list[dict[str, Any]]:
    sendable = sendable_versions(session, keys, today=today)
    items = []
    for key in keys:
        version = sendable.get(key) or session.execute(
            select(CollateralVersion).join(Collateral)
            .where(Collateral.key == key).order_by(CollateralVersion.version.desc()).limit(1)
        ).scalar_one_or_none()
        if version is None:
            continue
        items.append({"key": key, "title": version.title, "url": version.url or "",
                      "funnel_stage": version.funnel_stage.value,
                      "sendable": key in sendable})
    return items


def preview_email(
    session: Session,
    document: SequenceDocument,
    step_id: str,
    *,
    sender: Sender,
    env: SandboxedEnvironment,
    today: date,
    lead_email: str | None = None,
) -> Preview:
    """The step's email rendered in the sandbox for the sample lead, or the lead with this
    address; InvalidInput naming the template's problem when it does not render."""
    step = email_step(document, step_id)
    context = sample_context()
    who = "the sample lead"
    if lead_email:
        lead = find_lead(session, lead_email)
        context["lead"] = ({name: getattr(lead, name) for name in LEAD_FIELDS}
                           | {"attributes": lead.attributes or {}})
        who = lead.email
    collateral = _collateral(session, step.collateral, today=today)
    context["collateral"] = [{k: v for k, v in c.items() if k != "sendable"} for c in collateral]
    context["sender"] = {"name": sender.name, "company": sender.company,
                         "postal_address": sender.postal_address}
    context["step"] = {"id": step.id}
    try:
        rendered = render_email(env, step.template, context, subject=step.subject)
    except TemplateProblem as exc:
        raise InvalidInput(f"the email of step {step.id!r} does not render",
                           {"template": [str(exc)]}) from None
    return Preview(step_id=step.id, template=step.template, lead=who, subject=rendered.subject,
                   html=inline_css(rendered.html), text=rendered.text, collateral=collateral)


def send_test_email(
    preview: Preview, *, to_address: str, sender: Sender, smtp_url: str | None,
    instance_path: str,
) -> str:
    """Send a preview to one address (the marketer's own) through the configured messenger;
    returns its message id. Raises the messenger's SendRefused / SendUnknown."""
    message_id = f"test-{uuid.uuid4().hex[:20]}"
    rendered = RenderedEmail(subject=TEST_SUBJECT_PREFIX + preview.subject, html=preview.html,
                             text=preview.text)
    email = build_message(sender=sender, to_address=to_address, to_name=None, rendered=rendered,
                          html=preview.html, message_id=message_id,
                          unsubscribe_url=sample_context()["unsubscribe_url"])
    messenger = messenger_for(smtp_url, Path(instance_path) / "outbox")
    try:
        messenger.send(email)
    finally:
        messenger.close()
    return message_id
