"""The sequence builder's other pages: version history with a diff, the YAML (view, import,
export), the email preview at desktop and phone width, and a test send to oneself."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from campaigns import sequences as service
from campaigns.builder import document_diff, version_rows
from campaigns.composing import sender_from
from campaigns.documents import dump_document, parse_document_text, version_document
from campaigns.messengers import SendRefused, SendUnknown
from campaigns.previews import Preview, preview_email, send_test_email
from campaigns.rendering import make_environment
from campaigns.templates import stored_templates
from nurture.clock import utcnow
from nurture.errors import InvalidInput, NotFound
from nurture.models import Sequence, SequenceVersion
from nurture.web import db_session, settings
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp
from nurture.web.admin.sequences import MARKETING, _sequence, header_versions
from nurture.web.security import CONTENT_SECURITY_POLICY

MAX_DOCUMENT_BYTES = 512 * 1024
"""Largest YAML document the import takes (a 200-step sequence is far smaller)."""

PREVIEW_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
"""The email preview's own policy: the email's inline styles, its images, never a script
(`sandbox` too, should it be opened outside the builder's sandboxed frame)."""


def _version(sequence: Sequence, number: int | None) -> SequenceVersion:
    try:
        return service.get_version(db_session(), sequence.id, number)
    except NotFound:
        abort(404)


@bp.get("/sequences/<int:sequence_id>/versions")
@allow(*MARKETING)
def sequence_versions(sequence_id: int) -> Any:
    sequence = _sequence(sequence_id)
    session = db_session()
    rows = version_rows(session, sequence.id, sequence.active_version_id)
    newest = rows[0].number if rows else 1
    old_number = request.args.get("a", type=int) or max(newest - 1, 1)
    new_number = request.args.get("b", type=int) or newest
    old, new = _version(sequence, old_number), _version(sequence, new_number)
    return render_template("admin/sequences/versions.html", sequence=sequence, rows=rows,
                           old=old, new=new, diff=document_diff(old.document, new.document),
                           **header_versions(sequence))


@bp.get("/sequences/<int:sequence_id>/yaml")
@allow(*MARKETING)
def sequence_yaml(sequence_id: int) -> Any:
    sequence = _sequence(sequence_id)
    version = _version(sequence, request.args.get("version", type=int))
    return render_template("admin/sequences/yaml.html", sequence=sequence, version=version,
                           text=dump_document(version.document, yaml_format=True),
                           draft=None, errors={}, **header_versions(sequence))


@bp.get("/sequences/<int:sequence_id>/yaml/download")
@allow(*MARKETING)
def sequence_yaml_download(sequence_id: int) -> Any:
    sequence = _sequence(sequence_id)
    version = _version(sequence, request.args.get("version", type=int))
    return Response(dump_document(version.document, yaml_format=True),
                    mimetype="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="{sequence.key}'
                                                    f'-v{version.version}.yaml"'})


def _uploaded_text() -> str:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        data = upload.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise InvalidInput("too large", {"document": [
                f"the file is over {MAX_DOCUMENT_BYTES // 1024} KB"]})
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("not text", {"document": ["the file is not UTF-8 text"]}) from None
    text = request.form.get("document", "")
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise InvalidInput("too large", {"document": [
            f"the document is over {MAX_DOCUMENT_BYTES // 1024} KB"]})
    return text


def _import(sequence: Sequence | None) -> Any:
    """Import YAML (typed or uploaded) as a new version; on any error, nothing is stored and
    the text comes back with each error under the path the API names."""
    session = db_session()
    text = ""
    try:
        text = _uploaded_text()
        if not text.strip():
            raise InvalidInput("empty", {"document": ["paste a YAML document or choose a file"]})
        try:
            data = parse_document_text(text, yaml_format=True)
        except ValueError as exc:
            raise InvalidInput("syntax", {"document": [str(exc)]}) from None
        if sequence is not None and isinstance(data, dict) and data.get("key") != sequence.key:
            raise InvalidInput("key", {"key": [
                f"this document is {data.get('key')!r}, this sequence is {sequence.key!r}: "
                "import it from the sequence list to make a new sequence"]})
        imported = service.import_sequence(session, data, actor=current_user.email,
                                           now=utcnow())
    except InvalidInput as exc:
        session.rollback()
        flash("Not imported: nothing was changed.", "error")
        template = "admin/sequences/yaml.html" if sequence else "admin/sequences/import.html"
        version = service.latest_version(session, sequence.id) if sequence else None
        versions = header_versions(sequence) if sequence else {}
        return render_template(template, sequence=sequence, version=version, text=text,
                               draft=text, errors=exc.errors, **versions), 422
    session.commit()
    flash(f"Imported as version {imported.version.version}." if imported.created_version
          else "Nothing changed: the document is the newest version already.", "success")
    return redirect(url_for("admin.sequence_builder", sequence_id=imported.sequence.id))


@bp.post("/sequences/<int:sequence_id>/yaml")
@allow(*MARKETING)
def sequence_yaml_import(sequence_id: int) -> Any:
    return _import(_sequence(sequence_id))


@bp.route("/sequences/import", methods=["GET", "POST"])
@allow(*MARKETING)
def sequence_import() -> Any:
    if request.method == "POST":
        return _import(None)
    return render_template("admin/sequences/import.html", sequence=None, version=None,
                           text="", draft="", errors={})


def _preview(sequence: Sequence, step_id: str) -> tuple[SequenceVersion, Preview]:
    version = _version(sequence, request.values.get("version", type=int))
    document = version_document(version.id, version.document)
    config = settings()
    sender = sender_from(config.mail_from, company=config.company_name,
                         postal_address=config.postal_address, base_url=config.base_url)
    lead = (request.values.get("lead") or "").strip() or None
    session = db_session()
    # the templates as sending renders them: the shipped ones and those saved in the admin
    preview = preview_email(session, document, step_id, sender=sender,
                            env=make_environment(stored_templates(session)),
                            today=utcnow().date(), lead_email=lead)
    return version, preview


@bp.get("/sequences/<int:sequence_id>/steps/<step_id>/preview")
@allow(*MARKETING)
def sequence_preview(sequence_id: int, step_id: str) -> Any:
    sequence = _sequence(sequence_id)
    error, version, preview = None, None, None
    try:
        version, preview = _preview(sequence, step_id)
    except NotFound as exc:
        if "no step" in str(exc) or request.values.get("lead") is None:
            abort(404)
        error = str(exc)
    except InvalidInput as exc:
        error = "; ".join([str(exc), *[m for ms in exc.errors.values() for m in ms]])
    response = Response(render_template(
        "admin/sequences/preview.html", sequence=sequence, step_id=step_id, version=version,
        preview=preview, error=error, lead=request.values.get("lead", "")),
        status=200 if error is None else 422)
    # the admin's policy, and the email frames from this site
    response.headers["Content-Security-Policy"] = f"{CONTENT_SECURITY_POLICY}; frame-src 'self'"
    return response


@bp.get("/sequences/<int:sequence_id>/steps/<step_id>/preview/email.html")
@allow(*MARKETING)
def sequence_preview_frame(sequence_id: int, step_id: str) -> Any:
    """The email alone, for the builder's sandboxed frame, under a policy of its own."""
    sequence = _sequence(sequence_id)
    try:
        _, preview = _preview(sequence, step_id)
    except (NotFound, InvalidInput):
        abort(404)
    response = Response(preview.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.post("/sequences/<int:sequence_id>/steps/<step_id>/test-send")
@allow(*MARKETING)
def sequence_test_send(sequence_id: int, step_id: str) -> Any:
    sequence = _sequence(sequence_id)
    back = url_for("admin.sequence_preview", sequence_id=sequence.id, step_id=step_id,
                   lead=request.form.get("lead") or None,
                   version=request.form.get("version", type=int))
    try:
        _, preview = _preview(sequence, step_id)
    except (NotFound, InvalidInput) as exc:
        flash(f"Not sent: {exc}.", "error")
        return redirect(back)
    config = settings()
    sender = sender_from(config.mail_from, company=config.company_name,
                         postal_address=config.postal_address, base_url=config.base_url)
    try:
        send_test_email(preview, to_address=current_user.email, sender=sender,
                        smtp_url=config.smtp_url, instance_path=str(config.instance_path))
    except (SendRefused, SendUnknown) as exc:
        flash(f"Not sent: the mail server said {exc}.", "error")
        return redirect(back)
    flash(f"Test email sent to {current_user.email}.", "success")
    return redirect(back)
