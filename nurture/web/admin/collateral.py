"""The collateral library: files and links, their versions, sales approval, use and numbers.

The pages call the services the API calls: `campaigns.uploads.store_upload` (type sniffed,
size and name checked, stored by content under `instance/uploads`),
`campaigns.collateral.create_collateral` / `add_version` / `transition` (the approval
workflow, its roles and its history), `campaigns.catalogue` to read, and the reports for the
numbers. Sales approvers decide in their queue (`admin.approvals`); here a marketer submits.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from pydantic import ValidationError
from wtforms import DateField, RadioField, SelectField, StringField, TextAreaField, URLField
from wtforms.validators import DataRequired, Length, Optional

from campaigns import catalogue, uploads
from campaigns import collateral as service
from campaigns.schemas import CollateralIn, CollateralVersionIn
from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.errors import Conflict, Forbidden, InvalidInput, NotFound
from nurture.fields import field_errors
from nurture.models import CollateralVersion, FunnelStage, Role
from nurture.reports import figures
from nurture.reports.params import Period, ReportQuery
from nurture.web import db_session, settings
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp
from nurture.web.layout import STAFF

MARKETING = (Role.MARKETER, Role.ADMIN)
"""Who adds collateral and submits it (sales approvers decide in their queue)."""

NUMBERS_DAYS = 90
"""The collateral's numbers count the last this many days."""

UPLOAD_ENDPOINTS = ("admin.collateral_new", "admin.collateral_version_new")

STAGES = [(s.value, s.value.capitalize()) for s in FunnelStage]
ACCEPT = ",".join(sorted(uploads.ALLOWED_TYPES))


@bp.url_value_preprocessor
def _upload_size(endpoint: str | None, _values: Any) -> None:
    # before the CSRF check reads the form: a file may exceed the API's 1 MB body limit
    if endpoint in UPLOAD_ENDPOINTS and request.method == "POST":
        request.max_content_length = uploads.MAX_UPLOAD_BYTES + 64 * 1024


class VersionForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired("Give it a title."), Length(max=255)])
    source = RadioField("Where it is", choices=[("file", "Upload a file"), ("link", "A link")],
                        default="file")
    file = FileField("File")
    url = URLField("Link", validators=[Optional(), Length(max=2048)])
    funnel_stage = SelectField("Funnel stage", choices=STAGES, default="consideration")
    personas = StringField("Personas", validators=[Length(max=2000)])
    industries = StringField("Industries", validators=[Length(max=2000)])
    expires_on = DateField("Expires on", validators=[Optional()])


class NewAssetForm(VersionForm):
    key = StringField("Key", validators=[DataRequired("Give it a key."), Length(max=100)])


class ActionForm(FlaskForm):
    comment = TextAreaField("Note for the approvers", validators=[Length(max=5000)])


def _actor() -> Actor:
    return Actor(email=current_user.email, role=current_user.role, user_id=current_user.id)


def _numbers(today: Any) -> tuple[Period, dict[str, dict[str, int]]]:
    period = Period(today - timedelta(days=NUMBERS_DAYS - 1), today)
    report = figures.collateral(db_session(), ReportQuery(period, None))
    return period, {r["collateral"]: r for r in report.rows}


@bp.get("/collateral")
@allow(*STAFF)
def collateral() -> Any:
    today = utcnow().date()
    stage = request.args.get("stage") if request.args.get("stage") in {s for s, _ in STAGES} \
        else None
    status = request.args.get("status")
    if status not in {"sendable", "draft", "submitted", "changes_requested", "retired"}:
        status = None
    assets = catalogue.list_assets(db_session(), today=today, stage=stage, status=status)
    period, numbers = _numbers(today)
    return render_template("admin/collateral/list.html", assets=assets, numbers=numbers,
                           period=period, stage=stage, status=status, stages=STAGES,
                           filtered=bool(stage or status),
                           can_add=current_user.role in MARKETING)


def _fields(form: VersionForm) -> dict[str, Any]:
    """The form as the API's schema reads it; the file is stored by the caller."""
    return {"title": form.title.data or "", "funnel_stage": form.funnel_stage.data,
            "personas": _list(form.personas.data), "industries": _list(form.industries.data),
            "expires_on": form.expires_on.data}


def _list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _validated(form: VersionForm, *, key: str | None) -> dict[str, Any] | None:
    """The version's fields, checked by the API's own schemas, its file stored; None (with
    each error on its field) when something is refused."""
    fields = _fields(form)
    link = form.source.data == "link"
    probe = {**fields, "url": form.url.data if link else "https://upload.invalid/"}
    if key is not None:
        probe["key"] = key
    try:
        (CollateralIn if key is not None else CollateralVersionIn).model_validate(
            probe, strict=False)
    except ValidationError as exc:
        for path, messages in field_errors(exc).items():
            name = path.split("[")[0].split(".")[0]
            target = getattr(form, name if hasattr(form, name) else "title")
            target.errors = [*target.errors, *messages]
        return None
    if link:
        if not form.url.data:
            form.url.errors = [*form.url.errors, "Give the link, or upload a file instead."]
            return None
        return {**fields, "url": form.url.data}
    upload = request.files.get(form.file.name)
    if upload is None or not upload.filename:
        form.file.errors = [*form.file.errors, "Choose a file, or give a link instead."]
        return None
    try:
        stored = uploads.store_upload(upload.stream, upload.filename,
                                      Path(settings().instance_path) / "uploads")
    except InvalidInput as exc:
        form.file.errors = [*form.file.errors, *exc.errors.get("file", [str(exc)])]
        return None
    return {**fields, "file_path": stored.path, "file_name": stored.file_name,
            "content_type": stored.content_type}


def _link_file(version: CollateralVersion) -> None:
    if version.file_path and not version.url:
        version.url = uploads.public_url(settings().base_url, version.id, version.file_name or "")


def _form_page(template: str, form: VersionForm, **context: Any) -> Any:
    status = 422 if form.is_submitted() else 200
    return render_template(template, form=form, accept=ACCEPT,
                           max_mib=uploads.MAX_UPLOAD_BYTES // (1024 * 1024),
                           max_bytes=uploads.MAX_UPLOAD_BYTES, **context), status


@bp.route("/collateral/new", methods=["GET", "POST"])
@allow(*MARKETING)
def collateral_new() -> Any:
    form = NewAssetForm()
    if form.validate_on_submit():
        key = (form.key.data or "").strip()
        fields = _validated(form, key=key)
        if fields is not None:
            session = db_session()
            try:
                version = service.create_collateral(session, key, fields, actor=_actor(),
                                                    now=utcnow())
            except Conflict:
                form.key.errors = [*form.key.errors,
                                   "That key is taken: add a version to it instead."]
            else:
                _link_file(version)
                session.commit()
                flash(f"{version.title} added as a draft. Submit it for sales approval when "
                      "it is ready.", "success")
                return redirect(url_for("admin.collateral_item", key=key))
    return _form_page("admin/collateral/new.html", form)


@bp.get("/collateral/<key>")
@allow(*STAFF)
def collateral_item(key: str) -> Any:
    today = utcnow().date()
    try:
        detail = catalogue.asset_detail(db_session(), key, today=today)
    except NotFound:
        abort(404)
    period, numbers = _numbers(today)
    return render_template("admin/collateral/item.html", detail=detail, asset=detail.asset,
                           numbers=numbers.get(key, {}), period=period, action=ActionForm(),
                           can_submit=current_user.role in MARKETING, today=today,
                           approvals="admin.approval_collateral" in current_app.view_functions,
                           builder=current_user.role in MARKETING
                           and "admin.sequence_builder" in current_app.view_functions)


@bp.route("/collateral/<key>/versions/new", methods=["GET", "POST"])
@allow(*MARKETING)
def collateral_version_new(key: str) -> Any:
    session = db_session()
    try:
        detail = catalogue.asset_detail(session, key, today=utcnow().date())
    except NotFound:
        abort(404)
    form = VersionForm()
    if not form.is_submitted():
        start = catalogue.version_fields(detail.asset.latest)
        form.title.data = start["title"]
        form.funnel_stage.data = start["funnel_stage"]
        form.personas.data = ", ".join(start["personas"])
        form.industries.data = ", ".join(start["industries"])
        form.expires_on.data = start["expires_on"]
        if start["url"]:
            form.source.data, form.url.data = "link", start["url"]
    elif form.validate_on_submit():
        fields = _validated(form, key=None)
        if fields is not None:
            version = service.add_version(session, key, fields, actor=_actor(), now=utcnow())
            _link_file(version)
            session.commit()
            sendable = detail.asset.sendable
            flash(f"Version {version.version} added as a draft."
                  + (f" Version {sendable.version} stays in use until sales approves it."
                     if sendable else ""), "success")
            return redirect(url_for("admin.collateral_item", key=key))
    return _form_page("admin/collateral/version.html", form, asset=detail.asset)


def _transition(version_id: int, action: str, done: str) -> Any:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    session = db_session()
    version = session.get(CollateralVersion, version_id) if 0 < version_id < 2**63 else None
    if version is None:
        abort(404)
    key = _key(version)
    try:
        service.transition(session, version_id, action, actor=_actor(),
                           comment=(form.comment.data or "").strip() or None, now=utcnow())
    except Forbidden:
        abort(403)
    except (Conflict, InvalidInput) as exc:
        flash(str(exc), "error")
    else:
        session.commit()
        flash(done.format(n=version.version), "success")
    return redirect(url_for("admin.collateral_item", key=key))


def _key(version: CollateralVersion) -> str:
    from nurture.models import Collateral

    collateral = db_session().get(Collateral, version.collateral_id)
    assert collateral is not None
    return collateral.key


@bp.post("/collateral/versions/<int:version_id>/submit")
@allow(*MARKETING)
def collateral_submit(version_id: int) -> Any:
    return _transition(version_id, "submit",
                       "Version {n} is with sales for approval; their decision will show here.")


@bp.post("/collateral/versions/<int:version_id>/retire")
@allow(*STAFF)
def collateral_retire(version_id: int) -> Any:
    return _transition(version_id, "retire",
                       "Version {n} is retired: no email features it from now on.")


@bp.get("/collateral/versions/<int:version_id>/file")
@allow(*STAFF)
def collateral_file(version_id: int) -> Any:
    """An uploaded file as staff see it, whatever its status: downloaded, never rendered in
    the admin's origin (a sandbox policy, no sniffing)."""
    version = db_session().get(CollateralVersion, version_id) if 0 < version_id < 2**63 else None
    if version is None or not version.file_path:
        abort(404)
    response = send_from_directory(
        Path(settings().instance_path) / "uploads", version.file_path,
        mimetype=version.content_type, download_name=version.file_name, as_attachment=True)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
