"""Email templates as marketers edit them: list, read, check, save, reset, preview, and which
sequences use each.

The shipped `email_templates/` folder holds the defaults; a template saved here is stored in
the database (`EmailTemplate`, every save kept as an `EmailTemplateRevision`) and overrides
the shipped one of the same name everywhere it is rendered: sequence validation, sending,
the previews. A template is saved only when every part compiles in the sandbox and renders
for the sample lead, so a saved template never holds an email back; each error names its
part and line. Saving changes what the sequences using the template send from their next
email on (the editor lists them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.previews import LEAD_FIELDS, find_lead
from campaigns.rendering import (
    LAYOUT,
    PARTS,
    FolderTemplates,
    LayeredTemplates,
    RenderedEmail,
    TemplateProblem,
    make_environment,
    render_email,
    sample_context,
)
from nurture.errors import Conflict, InvalidInput, NotFound
from nurture.models.templates import EmailTemplate, EmailTemplateRevision

SYSTEM_TEMPLATES = frozenset({"changes-requested", "digest", "handoff", "password-reset"})
"""Emails the system sends to staff, not to leads: shipped, never edited in the admin."""

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
"""A template's name: lowercase letters, digits and dashes (it is also a folder name)."""

MAX_PART_CHARS = 200_000
"""Longest subject, HTML or text a template may have."""

FIELDS = {"subject.txt": "subject", "body.html": "html", "body.txt": "text"}
"""Each part's file name and the field it is edited in."""


@dataclass(frozen=True)
class TemplateText:
    name: str
    subject: str
    html: str
    text: str
    shipped: bool
    """A default of the `email_templates/` folder exists under this name."""
    revision: int
    """The stored revision in use; 0 when the shipped text is."""
    updated_by: str | None = None
    updated_at: datetime | None = None

    @property
    def edited(self) -> bool:
        return self.revision > 0


@dataclass(frozen=True)
class Problem:
    """Why a part cannot be saved, and where."""

    field: str
    """`subject`, `html` or `text`; `layout` when the shared layout refused what it was given."""
    line: int | None
    message: str


class TemplateInvalid(InvalidInput):
    """A template that does not compile or render; `problems` say which part and line."""

    def __init__(self, problems: list[Problem]) -> None:
        errors: dict[str, list[str]] = {}
        for p in problems:
            errors.setdefault(p.field, []).append(
                f"line {p.line}: {p.message}" if p.line else p.message)
        super().__init__("the template has errors", errors)
        self.problems = problems


def stored_templates(session: Session, folder: Any = None) -> LayeredTemplates:
    """The shipped templates with the stored ones over them, read now."""
    store = LayeredTemplates(folder)
    _load(session, store)
    return store


def refresh_stored(session: Session, env: SandboxedEnvironment) -> bool:
    """Bring an environment over a `LayeredTemplates` store up to the database's templates;
    True when something changed. One small query when nothing did (sending calls it for each
    batch): a changed template compiles again at its next use, the others stay compiled."""
    store = getattr(env.loader, "store", None)
    if not isinstance(store, LayeredTemplates):
        return False
    token = tuple(session.execute(
        select(EmailTemplate.name, EmailTemplate.revision).order_by(EmailTemplate.name)
    ).tuples())
    if token == store.token:
        return False
    _load(session, store)
    return True


def _load(session: Session, store: LayeredTemplates) -> None:
    rows = session.execute(select(EmailTemplate).order_by(EmailTemplate.name)).scalars().all()
    store.replace(
        {r.name: (r.revision, {"subject.txt": r.subject, "body.html": r.html, "body.txt": r.text})
         for r in rows},
        tuple((r.name, r.revision) for r in rows),
    )


def list_templates(session: Session) -> list[TemplateText]:
    """Every template a sequence may send (system emails left out), by name."""
    store = stored_templates(session)
    rows = {r.name: r for r in session.execute(select(EmailTemplate)).scalars()}
    return [_text(store, name, rows.get(name)) for name in store.names()
            if name not in SYSTEM_TEMPLATES]


def get_template(session: Session, name: str) -> TemplateText:
    if name in SYSTEM_TEMPLATES or not NAME.match(name):
        raise NotFound(f"no template {name!r}")
    store = stored_templates(session)
    if store.source(name, "body.html") is None:
        raise NotFound(f"no template {name!r}")
    row = session.execute(select(EmailTemplate).where(EmailTemplate.name == name)
                          ).scalar_one_or_none()
    return _text(store, name, row)


def _text(store: LayeredTemplates, name: str, row: EmailTemplate | None) -> TemplateText:
    shipped = store.folder.source(name, "body.html") is not None
    return TemplateText(
        name=name, subject=store.source(name, "subject.txt") or "",
        html=store.source(name, "body.html") or "", text=store.source(name, "body.txt") or "",
        shipped=shipped, revision=row.revision if row else 0,
        updated_by=row.updated_by if row else None, updated_at=row.updated_at if row else None,
    )


def check_text(subject: str, html: str, text: str, *, folder: Any = None) -> list[Problem]:
    """Each problem of this text, by part and line: every part compiled on its own (so each
    part's first error shows at once), then the whole rendered for the sample lead."""
    parts = {"subject.txt": subject, "body.html": html, "body.txt": text}
    problems: list[Problem] = []
    for part, source in parts.items():
        field = FIELDS[part]
        if not source.strip() and part != "body.txt":
            problems.append(Problem(field, None, "cannot be empty"))
        elif len(source) > MAX_PART_CHARS:
            problems.append(Problem(field, None, f"longer than {MAX_PART_CHARS:,} characters"))
        elif "\x00" in source:
            problems.append(Problem(field, None, "contains a NUL character"))
    if problems:
        return problems
    probe = "__checked__"
    store = LayeredTemplates(folder)
    store.replace({probe: (1, parts)}, None)
    env = make_environment(store)
    for part in PARTS:
        try:
            env.get_template(f"{probe}/{part}")
        except TemplateSyntaxError as exc:
            problems.append(Problem(FIELDS[part], exc.lineno, exc.message or "syntax error"))
    if problems:
        return problems
    try:
        render_email(env, probe, sample_context())
    except TemplateProblem as exc:
        problems.append(_located(exc, probe))
    return problems


def _located(exc: TemplateProblem, probe: str) -> Problem:
    message = str(exc)
    name, _, part = (exc.template or "").partition("/")
    if exc.line and message.startswith(f"{exc.template}, line {exc.line}: "):
        message = message.split(": ", 1)[1]
    message = message.replace(probe, "this template")
    if name == probe and part in FIELDS:
        return Problem(FIELDS[part], exc.line, message)
    if name == LAYOUT:
        return Problem("layout", exc.line, message)
    return Problem("html", exc.line, message)


def save_template(
    session: Session, name: str, subject: str, html: str, text: str, *,
    actor: str, now: datetime, create: bool = False, folder: Any = None,
) -> TemplateText:
    """Store the template's new text (a new revision); `create` for a new name.

    Raises InvalidInput for a bad name, TemplateInvalid (part and line) for text that does
    not compile or render, Conflict for a new name that exists, NotFound to edit none."""
    if not NAME.match(name or "") or name == LAYOUT:
        raise InvalidInput("refused template name", {"name": [
            "use lowercase letters, digits and dashes, starting with a letter or digit"]})
    if name in SYSTEM_TEMPLATES:
        raise InvalidInput("a system email", {"name": [f"{name!r} is a system email, not "
                                                      "edited here"]})
    folder = folder or FolderTemplates()
    row = session.execute(select(EmailTemplate).where(EmailTemplate.name == name)
                          .with_for_update()).scalar_one_or_none()
    exists = row is not None or folder.source(name, "body.html") is not None
    if create and exists:
        raise Conflict(f"a template named {name!r} exists", {"name": ["that name is taken"]})
    if not create and not exists:
        raise NotFound(f"no template {name!r}")
    problems = check_text(subject, html, text, folder=folder)
    if problems:
        raise TemplateInvalid(problems)
    if row is not None and (row.subject, row.html, row.text) == (subject, html, text):
        return get_template(session, name)
    revision = _next_revision(session, name)
    if row is None:
        row = EmailTemplate(name=name, subject=subject, html=html, text=text, revision=revision,
                            updated_by=actor, updated_at=now)
        session.add(row)
    else:
        row.subject, row.html, row.text = subject, html, text
        row.revision, row.updated_by, row.updated_at = revision, actor, now
    session.add(EmailTemplateRevision(name=name, revision=revision, subject=subject, html=html,
                                      text=text, saved_by=actor, saved_at=now))
    session.flush()
    return get_template(session, name)


def reset_template(session: Session, name: str, *, actor: str, now: datetime) -> TemplateText:
    """Go back to the shipped text of a template (its stored revisions stay recorded)."""
    row = session.execute(select(EmailTemplate).where(EmailTemplate.name == name)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        raise Conflict(f"{name!r} already uses its shipped text")
    if FolderTemplates().source(name, "body.html") is None:
        raise Conflict(f"{name!r} was written here and has no shipped text to go back to")
    session.add(EmailTemplateRevision(name=name, revision=_next_revision(session, name),
                                      subject=None, html=None, text=None, saved_by=actor,
                                      saved_at=now))
    session.delete(row)
    session.flush()
    return get_template(session, name)


def _next_revision(session: Session, name: str) -> int:
    return (session.execute(select(func.max(EmailTemplateRevision.revision))
                            .where(EmailTemplateRevision.name == name)).scalar() or 0) + 1


def revisions(session: Session, name: str, *, limit: int = 20) -> list[EmailTemplateRevision]:
    """The template's saves, newest first."""
    return list(session.execute(
        select(EmailTemplateRevision).where(EmailTemplateRevision.name == name)
        .order_by(EmailTemplateRevision.revision.desc()).limit(limit)
    ).scalars())


def preview_email(session: Session, name: str, *, lead_email: str | None = None
                  ) -> tuple[RenderedEmail, str]:
    """The template rendered as sending would (links untracked), for the sample lead or the
    lead with this address; and whom it was rendered for. NotFound for an unknown template
    or lead, TemplateProblem when it does not render."""
    get_template(session, name)
    context = sample_context()
    who = "the sample lead Sam Sample"
    if lead_email:
        lead = find_lead(session, lead_email)
        context["lead"] = ({field: getattr(lead, field) for field in LEAD_FIELDS}
                           | {"attributes": lead.attributes or {}})
        who = lead.email
    env = make_environment(stored_templates(session))
    return render_email(env, name, context), who
