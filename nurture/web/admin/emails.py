"""Email templates: list, edit subject, HTML and text, preview, where each is used.

The pages call `campaigns.templates`, the same service sequence validation and sending read
the templates through: what is saved here is what the engine sends. The preview is a page of
its own (the email's HTML under a policy with no script at all), framed in a sandboxed
iframe by the editor at desktop and phone widths.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import escape
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from campaigns import templates as service
from campaigns import usage
from campaigns.rendering import TemplateProblem
from nurture.clock import utcnow
from nurture.errors import Conflict, InvalidInput, NotFound
from nurture.models import Role
from nurture.web import db_session
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp
from nurture.web.security import CONTENT_SECURITY_POLICY

MARKETING = (Role.MARKETER, Role.ADMIN)

EDITOR_POLICY = f"{CONTENT_SECURITY_POLICY}; frame-src 'self'"
"""The editor's policy: the admin's own, and frames of this site (the preview)."""

PREVIEW_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; font-src https: data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)
"""An email preview: its own inline styles and images as a mail client shows them, no script,
no forms, a sandboxed document that only this site may frame."""

EXCERPT_LINES = 2
"""Lines shown either side of an error's line."""


class TemplateForm(FlaskForm):
    subject = StringField("Subject", validators=[
        DataRequired("Write a subject."), Length(max=service.MAX_PART_CHARS)])
    html = TextAreaField("HTML body", validators=[
        DataRequired("Write the HTML body."), Length(max=service.MAX_PART_CHARS)])
    text = TextAreaField("Text body", validators=[Length(max=service.MAX_PART_CHARS)])


class NewTemplateForm(TemplateForm):
    name = StringField("Name", validators=[DataRequired("Name the template."), Length(max=100)])


class ResetForm(FlaskForm):
    pass


@bp.get("/templates")
@allow(*MARKETING)
def templates() -> Any:
    session = db_session()
    return render_template("admin/templates/list.html", templates=service.list_templates(session),
                           usage=usage.template_usage(session), builder=_builder())


@bp.route("/templates/new", methods=["GET", "POST"])
@allow(*MARKETING)
def template_new() -> Any:
    form = NewTemplateForm()
    if not form.is_submitted():
        form.subject.data = "{{ lead.first_name or 'Hello' }}, "
        form.html.data = ("<p>Hi {{ lead.first_name or 'there' }},</p>\n\n<p></p>\n\n"
                          "{% for item in collateral %}\n"
                          "<p><a href=\"{{ item.url }}\">{{ item.title }}</a></p>\n"
                          "{% endfor %}\n")
        form.text.data = ("Hi {{ lead.first_name or 'there' }},\n\n\n"
                          "{% for item in collateral %}\n{{ item.title }}: {{ item.url }}\n"
                          "{% endfor %}\n")
    problems: list[service.Problem] = []
    if form.validate_on_submit():
        session = db_session()
        try:
            saved = service.save_template(
                session, form.name.data.strip(), form.subject.data, form.html.data,
                form.text.data or "", actor=current_user.email, now=utcnow(), create=True)
        except service.TemplateInvalid as exc:
            problems = exc.problems
        except (InvalidInput, Conflict) as exc:
            for message in getattr(exc, "errors", {}).get("name", [str(exc)]):
                form.name.errors.append(message)
        else:
            session.commit()
            flash(f"Template {saved.name} created. Feature it in a sequence's email step.",
                  "success")
            return redirect(url_for("admin.template_edit", name=saved.name))
    _attach(form, problems)
    return _editor("admin/templates/new.html", form=form, problems=problems)


@bp.route("/templates/<name>", methods=["GET", "POST"])
@allow(*MARKETING)
def template_edit(name: str) -> Any:
    session = db_session()
    try:
        current = service.get_template(session, name)
    except NotFound:
        abort(404)
    form = TemplateForm()
    if not form.is_submitted():
        form.subject.data, form.html.data, form.text.data = (current.subject, current.html,
                                                             current.text)
    problems: list[service.Problem] = []
    if form.validate_on_submit():
        try:
            saved = service.save_template(session, name, form.subject.data, form.html.data,
                                          form.text.data or "", actor=current_user.email,
                                          now=utcnow())
        except service.TemplateInvalid as exc:
            problems = exc.problems
        else:
            session.commit()
            if saved.revision == current.revision:
                flash("Nothing changed.", "info")
            else:
                flash(f"Saved revision {saved.revision} of {name}. Sequences using it send "
                      "this text from their next email on.", "success")
            return redirect(url_for("admin.template_edit", name=name))
    _attach(form, problems)
    preview = rendered = None
    lead = (request.args.get("lead") or "").strip()[:320] or None
    who, lead_problem = "", None
    try:
        rendered, who = service.preview_email(session, name, lead_email=lead)
    except NotFound:
        lead_problem = f"No lead has the address {lead}; the preview shows the sample lead."
        lead = None
        try:
            rendered, who = service.preview_email(session, name)
        except TemplateProblem as exc:
            preview = str(exc)
    except TemplateProblem as exc:
        preview = str(exc)
    return _editor(
        "admin/templates/edit.html", form=form, template=current, problems=problems,
        rendered=rendered, preview_problem=preview, who=who, lead=lead,
        lead_problem=lead_problem,
        usage=usage.template_usage(session).get(name, []),
        revisions=service.revisions(session, name), reset_form=ResetForm(), builder=_builder(),
    )


@bp.post("/templates/<name>/reset")
@allow(*MARKETING)
def template_reset(name: str) -> Any:
    if not ResetForm().validate_on_submit():
        abort(400)
    session = db_session()
    try:
        service.reset_template(session, name, actor=current_user.email, now=utcnow())
    except Conflict as exc:
        flash(str(exc), "error")
    else:
        session.commit()
        flash(f"{name} uses its shipped text again (your revisions stay listed).", "success")
    return redirect(url_for("admin.template_edit", name=name))


@bp.get("/templates/<name>/preview")
@allow(*MARKETING)
def template_preview(name: str) -> Any:
    """The saved template's email for the sample lead, as a document for a sandboxed frame."""
    session = db_session()
    try:
        rendered, _ = service.preview_email(session, name,
                                            lead_email=request.args.get("lead") or None)
        html = rendered.html
    except NotFound:
        abort(404)
    except TemplateProblem as exc:
        html = f"<!DOCTYPE html><p>This template does not render: {escape(str(exc))}</p>"
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _builder() -> bool:
    """Whether the sequences using a template link to their builder."""
    return "admin.sequence_builder" in current_app.view_functions


def _attach(form: FlaskForm, problems: list[service.Problem]) -> None:
    """Each problem beside its field, with its line."""
    for p in problems:
        field = getattr(form, p.field, None) or form.html
        field.errors = [*field.errors, f"Line {p.line}: {p.message}" if p.line else p.message]


def _editor(page: str, form: FlaskForm, problems: list[service.Problem],
            **context: Any) -> Any:
    excerpts = [_excerpt(getattr(form, p.field).data or "", p) for p in problems
                if p.line and hasattr(form, p.field)]
    response = Response(render_template(page, form=form, problems=problems,
                                        excerpts=excerpts, **context),
                        status=422 if problems or form.errors else 200)
    response.headers["Content-Security-Policy"] = EDITOR_POLICY
    return response


def _excerpt(source: str, problem: service.Problem) -> dict[str, Any]:
    """The lines around a problem's line, numbered, the line itself marked."""
    lines = source.splitlines() or [""]
    line = min(max(problem.line or 1, 1), len(lines))
    first = max(1, line - EXCERPT_LINES)
    last = min(len(lines), line + EXCERPT_LINES)
    return {"field": problem.field, "label": problem.field.upper() if problem.field == "html"
            else problem.field.capitalize(), "line": line, "message": problem.message,
            "lines": [(n, lines[n - 1], n == line) for n in range(first, last + 1)]}
