"""The builder's template panel: create or edit an email template without leaving the builder.

The panel is part of the builder's form, so the sequence's unsaved draft comes back with it
whatever the panel does. Templates are saved by the same service as the template pages and
the sending engine read (`campaigns.templates`): a template that does not compile or render
is refused with each problem at its part and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from campaigns import templates as service
from nurture.errors import Conflict, InvalidInput, NotFound

_OP = re.compile(r"^template-(open|new|save|close)(?::(\d{1,3}):(\d{1,4}))?$")

STARTER_SUBJECT = 'A quick idea for {{ lead.company or "your team" }}'
STARTER_HTML = """<p>Hi {{ lead.first_name or "there" }},</p>
<p>Write what this email is for, in a few short lines.</p>
<p>{{ sender.name }}</p>
"""
STARTER_TEXT = """Hi {{ lead.first_name or "there" }},

Write what this email is for, in a few short lines.

{{ sender.name }}
"""


@dataclass
class Panel:
    mode: str
    """`edit` an existing template, or `new`."""
    name: str
    subject: str
    html: str
    text: str
    card: str | None = None
    """`si:ti` of the email step the panel was opened from."""
    errors: dict[str, list[str]] = field(default_factory=dict)
    revision: int = 0


@dataclass
class Outcome:
    document: dict[str, Any]
    panel: Panel | None
    note: str | None = None
    status: int = 200


def _step(document: dict[str, Any], card: str | None) -> dict[str, Any] | None:
    if not card:
        return None
    si, _, ti = card.partition(":")
    try:
        step = document["stages"][int(si)]["steps"][int(ti)]
    except (IndexError, KeyError, ValueError):
        return None
    return step if step.get("type") == "email" else None


def is_template_operation(operation: str) -> bool:
    return bool(_OP.match(operation))


def template_operation(
    session: Session, document: dict[str, Any], operation: str, form: MultiDict[str, str], *,
    actor: str, now: datetime,
) -> Outcome:
    """Open, start, save or close the panel; the caller commits when `note` says it saved."""
    match = _OP.match(operation)
    assert match is not None
    action = match.group(1)
    card = f"{match.group(2)}:{match.group(3)}" if match.group(2) is not None \
        else (form.get("tpl.card") or None)
    if action == "close":
        return Outcome(document, None)
    if action == "new":
        return Outcome(document, Panel("new", "", STARTER_SUBJECT, STARTER_HTML, STARTER_TEXT,
                                       card))
    if action == "open":
        step = _step(document, card)
        name = str(step.get("template", "")) if step else ""
        try:
            current = service.get_template(session, name)
        except NotFound:
            return Outcome(document, Panel("new", name, STARTER_SUBJECT, STARTER_HTML,
                                           STARTER_TEXT, card))
        return Outcome(document, Panel("edit", current.name, current.subject, current.html,
                                       current.text, card, revision=current.revision))
    panel = Panel((form.get("tpl.mode") == "new" and "new") or "edit",
                  (form.get("tpl.name") or "").strip(), form.get("tpl.subject") or "",
                  form.get("tpl.html") or "", form.get("tpl.text") or "", card)
    try:
        saved = service.save_template(session, panel.name, panel.subject, panel.html,
                                      panel.text, actor=actor, now=now,
                                      create=panel.mode == "new")
    except service.TemplateInvalid as exc:
        panel.errors = {p.field: [] for p in exc.problems}
        for problem in exc.problems:
            panel.errors[problem.field].append(
                f"line {problem.line}: {problem.message}" if problem.line else problem.message)
        return Outcome(document, panel, status=422)
    except (InvalidInput, Conflict, NotFound) as exc:
        errors = getattr(exc, "errors", None) or {"name": [str(exc)]}
        panel.errors = {key: list(value) for key, value in errors.items()}
        return Outcome(document, panel, status=422)
    step = _step(document, card)
    if step is not None and panel.mode == "new":
        step["template"] = saved.name  # the email it was started from sends it
    verb = "created" if panel.mode == "new" else "saved"
    return Outcome(document, None, note=f"Template {saved.name!r} {verb} (revision "
                                        f"{saved.revision}); every sequence sending it uses "
                                        "it from its next email on.")
