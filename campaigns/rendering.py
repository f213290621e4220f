"""Rendering marketer-written emails: always in Jinja2's sandbox, HTML autoescaped.

Templates come from a `TemplateStore`: the `email_templates/` folder, overridden by name by
the templates marketers save in the admin (`LayeredTemplates`, its snapshot of the database
refreshed by `campaigns.templates`). Each email is `NAME/subject.txt`, `NAME/body.html`,
`NAME/body.txt`, wrapped in the shared `layout/` (never edited in the admin: it carries the
unsubscribe link and the sender's postal address every email owes its reader).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from jinja2 import (
    BaseLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

PARTS = ("subject.txt", "body.html", "body.txt")
LAYOUT = "layout"
MAX_SUBJECT_LENGTH = 250
"""Longest rendered subject; longer ones are cut (mail clients show far less)."""

SUBJECT_CACHE_SIZE = 1024
"""Compiled subject templates an environment keeps."""


class TemplateStore(Protocol):
    """Where email templates come from."""

    def names(self) -> list[str]: ...

    def source(self, name: str, part: str) -> str | None: ...


class FolderTemplates:
    """Templates shipped in a folder (by default the `email_templates` package)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(str(files("email_templates")))

    def names(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir()
            if p.is_dir() and p.name != LAYOUT and (p / "body.html").is_file()
        )

    def source(self, name: str, part: str) -> str | None:
        if part not in PARTS and not (name == LAYOUT and part in ("base.html", "base.txt")):
            return None
        if "/" in name or name.startswith("."):
            return None
        path = self.root / name / part
        return path.read_text(encoding="utf-8") if path.is_file() else None


class LayeredTemplates:
    """The shipped folder, overridden by name by templates stored in the database.

    The stored ones are a snapshot this process holds (`replace` swaps a new one in, see
    `campaigns.templates.refresh_stored`); each carries its revision, so an environment over
    this store compiles again only the templates whose revision changed."""

    def __init__(self, folder: TemplateStore | None = None) -> None:
        self.folder = folder or FolderTemplates()
        self.stored: dict[str, tuple[int, dict[str, str]]] = {}
        self.token: Any = None
        """What the snapshot was taken from (the stored names and revisions)."""

    def names(self) -> list[str]:
        return sorted(set(self.folder.names()) | set(self.stored))

    def source(self, name: str, part: str) -> str | None:
        entry = self.stored.get(name)
        if entry is not None and part in PARTS:
            return entry[1].get(part)
        return self.folder.source(name, part)

    def revision(self, name: str) -> int:
        """The stored revision in use for `name`; 0 for the shipped text."""
        entry = self.stored.get(name)
        return entry[0] if entry is not None else 0

    def replace(self, stored: dict[str, tuple[int, dict[str, str]]], token: Any) -> None:
        self.stored, self.token = stored, token


class _StoreLoader(BaseLoader):
    def __init__(self, store: TemplateStore) -> None:
        self.store = store

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        name, _, part = template.partition("/")
        source = self.store.source(name, part)
        if source is None:
            raise TemplateNotFound(template)
        # the file name is the template's name: an error's traceback names it and its line
        store = self.store
        if isinstance(store, LayeredTemplates):
            revision = store.revision(name)
            return source, template, lambda: store.revision(name) == revision
        return source, template, lambda: False


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


class TemplateProblem(ValueError):
    """A template that does not exist, does not compile, or breaks the sandbox when rendered.

    `template` (`NAME/body.html`, or `subject` for a sequence's own subject) and `line` say
    where, when known."""

    def __init__(self, message: str, template: str | None = None,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.template = template
        self.line = line


class EmailEnvironment(SandboxedEnvironment):
    """Jinja's sandbox, with the subjects it compiled (kept out of the templates' reach)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.subjects: dict[str, Any] = {}


def make_environment(store: TemplateStore | None = None) -> EmailEnvironment:
    store = store or FolderTemplates()
    environment = EmailEnvironment(
        loader=_StoreLoader(store),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # shipped files never change under a process; stored templates say when they did
        auto_reload=isinstance(store, LayeredTemplates),
    )
    return environment


_SHARED: list[EmailEnvironment] = []


def shared_environment() -> EmailEnvironment:
    """The process's environment over the shipped templates and the stored ones: each compiled
    once per process and revision (a worker compiles the shipped ones before it starts, see
    `warm_templates`; sending refreshes the stored ones, `campaigns.templates.refresh_stored`)."""
    if not _SHARED:
        _SHARED.append(make_environment(LayeredTemplates()))
    return _SHARED[0]


def warm_templates(env: SandboxedEnvironment, store: TemplateStore | None = None) -> int:
    """Compile every template of `store` now; returns how many (broken ones are skipped:
    sending reports them when it meets them)."""
    store = store or FolderTemplates()
    compiled = 0
    for name in [*store.names(), LAYOUT]:
        for part in (*PARTS, "base.html", "base.txt"):
            if store.source(name, part) is None:
                continue
            try:
                env.get_template(f"{name}/{part}")
            except TemplateError:
                continue
            compiled += 1
    return compiled


def _subject_template(env: SandboxedEnvironment, source: str) -> Any:
    """Subjects come from sequence documents: compiled once per source and environment."""
    cache = env.subjects if isinstance(env, EmailEnvironment) else {}
    template = cache.get(source)
    if template is None:
        if len(cache) >= SUBJECT_CACHE_SIZE:
            cache.clear()
        template = cache[source] = env.from_string(source)
    return template


def render_email(
    env: SandboxedEnvironment,
    template: str,
    context: dict[str, Any],
    *,
    subject: str | None = None,
) -> RenderedEmail:
    """Render subject, HTML and text of `template` inside the layout; raise TemplateProblem."""
    try:
        subject_template = (env.get_template(f"{template}/subject.txt") if subject is None
                            else _subject_template(env, subject))
        variables = {**env.globals, **context}  # Jinja's `render` would copy both for each part
        rendered_subject = _one_line(_render(subject_template, variables))
        html_body = _render(env.get_template(f"{template}/body.html"), variables)
        text_body = _render(env.get_template(f"{template}/body.txt"), variables)
        variables["subject"] = rendered_subject
        html = _render(env.get_template(f"{LAYOUT}/base.html"),
                       {**variables, "content": Markup(html_body)})
        text = _render(env.get_template(f"{LAYOUT}/base.txt"), {**variables, "content": text_body})
    except TemplateNotFound as exc:
        raise TemplateProblem(f"no template {exc.name!r}", exc.name) from None
    except TemplateSyntaxError as exc:
        where = f"{exc.name}, " if exc.name else ""
        raise TemplateProblem(f"{where}line {exc.lineno}: {exc.message}",
                              exc.name or "subject", exc.lineno) from None
    except Exception as exc:  # noqa: BLE001  SecurityError, UndefinedError, or a marketer's
        # expression failing for one lead (`{{ lead.company_size + 1 }}` without a company
        # size): that email is held with the reason, never the whole batch stopped and
        # retried forever
        name, line = _failing_line(exc)
        where = f"{name}, line {line}: " if line else ""
        raise TemplateProblem(f"{where}{type(exc).__name__}: {exc}", name, line) from None
    return RenderedEmail(subject=rendered_subject, html=html, text=text)


def _render(template: Template, variables: dict[str, Any]) -> str:
    """`template.render(variables)` for variables that already hold the environment's globals:
    `render` copies the globals and the variables into a new dict for every part (five an
    email). Errors go through Jinja's `handle_exception` as `render`'s do (the traceback
    rewritten to name the template and line, which `_failing_line` reads)."""
    environment = template.environment
    try:
        return environment.concat(  # type: ignore[attr-defined,no-any-return]
            template.root_render_func(template.new_context(variables, shared=True)))
    except Exception:
        environment.handle_exception()
        raise  # handle_exception always raises


def _failing_line(exc: BaseException) -> tuple[str | None, int | None]:
    """The template and line an error was raised at: Jinja rewrites the traceback so that
    each frame of template code names its template (`NAME/part`, `<template>` for a
    subject compiled from a string) and its line; the innermost such frame is the one."""
    found: tuple[str | None, int | None] = (None, None)
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == "<template>":
            found = ("subject", tb.tb_lineno)
        elif "/" in filename and filename.rpartition("/")[2] in (*PARTS, "base.html", "base.txt") \
                and not filename.startswith("/"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _one_line(value: str) -> str:
    """Subjects are headers: no line breaks (header injection), trimmed to a sane length."""
    return " ".join(value.split())[:MAX_SUBJECT_LENGTH]


def sample_context() -> dict[str, Any]:
    """A full context with every field set: what validation renders each template with."""
    return {
        "lead": {
            "email": "sam.sample@example.com", "first_name": "Sam", "last_name": "Sample",
            "company": "Example Corp", "title": "Head of Operations", "industry": "Software",
            "company_size": 250, "country": "DE", "timezone": "Europe/Berlin",
            "source": "webinar", "attributes": {},
        },
        "sender": {
            "name": "The Nurture team", "company": "Example Inc.",
            "postal_address": "1 Sample Street, 10115 Berlin, Germany",
        },
        "collateral": [
            {"key": "sample", "title": "Sample guide", "url": "https://example.com/guide",
             "funnel_stage": "consideration"},
        ],
        "step": {"id": "sample", "stage": "sample"},
        "unsubscribe_url": "https://example.com/u/sample",
        "open_pixel_url": "https://example.com/t/o/sample",
    }


def check_template(env: SandboxedEnvironment, template: str, subject: str | None) -> str | None:
    """Why `template` (with this subject) cannot be sent, or None when it renders cleanly."""
    try:
        render_email(env, template, sample_context(), subject=subject)
    except TemplateProblem as exc:
        return str(exc)
    return None
