"""Sequences: the list, and the builder on the same sequence documents as the API and `campaigns/`.

The builder is one form holding the whole document (see `sequence_forms`): its buttons add,
duplicate, remove and move steps in the draft, and Save validates it with the API's
validator and stores it as a new version (`campaigns.sequences.import_sequence`), never
touching the version enrolled leads are on. Live validation posts the same form to
`sequence_validate`, which answers the errors placed on their fields.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from campaigns import sequences as service
from campaigns.builder import collateral_choices
from campaigns.documents import WEEKDAYS, version_document
from campaigns.overview import list_sequences
from campaigns.templates import list_templates
from nurture.clock import utcnow
from nurture.errors import Conflict, InvalidInput, NotFound
from nurture.models import RejectionReason, Role, Sequence, SequenceVersion
from nurture.reports import figures
from nurture.reports.params import Period, ReportQuery
from nurture.web import db_session
from nurture.web.access import allow
from nurture.web.admin import sequence_forms as forms
from nurture.web.admin.blueprint import bp
from nurture.web.admin.sequence_templates import Panel, is_template_operation, template_operation

REQUALIFICATION_DAYS = 180
"""The sequence list's requalification rate counts the leads enrolled in this many days."""

STEP_NUMBERS_DAYS = 90
"""The numbers on the builder's cards count this many days, today included."""

MARKETING = (Role.MARKETER, Role.ADMIN)


@bp.get("/sequences")
@allow(*MARKETING)
def sequences() -> Any:
    session, today = db_session(), utcnow().date()
    period = Period(today - timedelta(days=REQUALIFICATION_DAYS - 1), today)
    report = figures.sequences(session, ReportQuery(period, None))
    requalified = {r["sequence"]: (r["requalified"], r["enrolled"])
                   for r in report.rows if r["step"] == ""}
    return render_template("admin/sequences.html", sequences=list_sequences(session, today=today),
                           requalified=requalified, requalification_days=REQUALIFICATION_DAYS)


def _sequence(sequence_id: int) -> Sequence:
    try:
        return service.get_sequence(db_session(), sequence_id)
    except NotFound:
        abort(404)


def step_numbers(sequence: Sequence | None, today: date) -> dict[str, dict[str, int]]:
    """Per step of the sequence: sent, human opens, clicks, unsubscribes, exits (the
    sequences report of the last STEP_NUMBERS_DAYS days)."""
    if sequence is None:
        return {}
    period = Period(today - timedelta(days=STEP_NUMBERS_DAYS - 1), today)
    report = figures.sequences(db_session(), ReportQuery(period, None))
    return {r["step"]: r for r in report.rows if r["sequence"] == sequence.key and r["step"]}


def header_versions(sequence: Sequence) -> dict[str, SequenceVersion | None]:
    """The newest and the live version, for the header of every page of a sequence."""
    session = db_session()
    live = (session.get(SequenceVersion, sequence.active_version_id)
            if sequence.active_version_id else None)
    return {"latest": service.latest_version(session, sequence.id), "live": live}


def render_builder(
    sequence: Sequence | None,
    document: dict[str, Any],
    *,
    errors: dict[str, list[str]] | None = None,
    focus: str | None = None,
    panel: Panel | None = None,
    panel_note: str | None = None,
    status: int = 200,
) -> Any:
    session, today = db_session(), utcnow().date()
    latest = live = None
    blocked: dict[str, list[str]] = {}
    if sequence is not None:
        latest = service.latest_version(session, sequence.id)
        live = (session.get(SequenceVersion, sequence.active_version_id)
                if sequence.active_version_id else None)
        if latest is not None:
            blocked = forms.blocked_steps(service.activation_problems(session, latest,
                                                                      today=today))
    saved_steps = (set(version_document(latest.id, latest.document).step_ids())
                   if latest is not None else set())
    placed = forms.place_errors(errors or {}, forms.anchors(document))
    return render_template(
        "admin/sequences/builder.html", sequence=sequence, document=document, errors=placed,
        error_count=sum(len(v) for v in placed.values()), focus=focus,
        settings_problems=any(not a.startswith(("stages", "document")) for a in placed), latest=latest, live=live,
        blocked=blocked, saved_steps=saved_steps, numbers=step_numbers(sequence, today),
        numbers_days=STEP_NUMBERS_DAYS, collateral=collateral_choices(session, today=today),
        templates=[t.name for t in list_templates(session)], panel=panel, panel_note=panel_note,
        reasons=[r.value for r in RejectionReason],
        weekdays=WEEKDAYS, step_types=forms.STEP_TYPES, engagements=forms.ENGAGEMENTS,
        in_words=forms.describe_duration,
    ), status


def _post_builder(sequence: Sequence | None) -> Any:
    """A builder button: a step operation on the draft (re-rendered, not saved), or Save."""
    document = forms.document_from_form(request.form)
    if sequence is not None:
        document["key"] = sequence.key  # a sequence's key is its identity: never renamed here
    operation = request.form.get("op", "save")
    if is_template_operation(operation):
        session = db_session()
        outcome = template_operation(session, document, operation, request.form,
                                     actor=current_user.email, now=utcnow())
        if outcome.note:
            session.commit()
        else:
            session.rollback()
        return render_builder(sequence, outcome.document, panel=outcome.panel,
                              panel_note=outcome.note, status=outcome.status)
    if operation != "save":
        document, focus = forms.apply_operation(document, operation, request.form)
        return render_builder(sequence, document, focus=focus)
    session = db_session()
    try:
        imported = service.import_sequence(session, document, actor=current_user.email,
                                           now=utcnow())
    except InvalidInput as exc:
        session.rollback()
        flash("Not saved: fix the problems marked on the steps.", "error")
        return render_builder(sequence, document, errors=exc.errors, status=422)
    session.commit()
    if not imported.created_version:
        flash(f"Nothing changed: version {imported.version.version} is the same document.",
              "info")
    elif imported.sequence.active_version_id:
        flash(f"Saved as version {imported.version.version}. Leads already enrolled stay on "
              "their version; activate this one to use it for new enrollments.", "success")
    else:
        flash(f"Saved as version {imported.version.version}.", "success")
    return redirect(url_for("admin.sequence_builder", sequence_id=imported.sequence.id))


@bp.route("/sequences/new", methods=["GET", "POST"])
@allow(*MARKETING)
def sequence_new() -> Any:
    if request.method == "POST":
        return _post_builder(None)
    return render_builder(None, forms.starter_document())


@bp.route("/sequences/<int:sequence_id>", methods=["GET", "POST"])
@allow(*MARKETING)
def sequence_builder(sequence_id: int) -> Any:
    sequence = _sequence(sequence_id)
    if request.method == "POST":
        return _post_builder(sequence)
    version = service.latest_version(db_session(), sequence.id)
    if version is None:
        abort(404)
    return render_builder(sequence, version.document)


@bp.post("/sequences/validate")
@allow(*MARKETING)
def sequence_validate() -> Any:
    """The builder's live validation: the form's draft through the API's validator, each
    error placed on its field (JSON; nothing stored)."""
    document = forms.document_from_form(request.form)
    if request.form.get("sequence_id", "").isdigit():
        document["key"] = _sequence(int(request.form["sequence_id"])).key
    session = db_session()
    try:
        service.validate_document(session, document)
        errors: dict[str, list[str]] = {}
    except InvalidInput as exc:
        errors = exc.errors
    finally:
        session.rollback()
    placed = forms.place_errors(errors, forms.anchors(document))
    return {"errors": placed, "count": sum(len(v) for v in placed.values())}


@bp.post("/sequences/<int:sequence_id>/activate")
@allow(*MARKETING)
def sequence_activate(sequence_id: int) -> Any:
    session, now = db_session(), utcnow()
    sequence = _sequence(sequence_id)
    try:
        service.activate_sequence(session, sequence.id, now=now, today=now.date())
    except Conflict as exc:
        session.rollback()
        flash(f"Not activated: {exc} (see the steps marked below).", "error")
        return redirect(url_for("admin.sequence_builder", sequence_id=sequence_id))
    except NotFound:
        abort(404)
    session.commit()
    flash("Active: new enrollments use this version.", "success")
    return redirect(url_for("admin.sequence_builder", sequence_id=sequence_id))


@bp.post("/sequences/<int:sequence_id>/pause")
@allow(*MARKETING)
def sequence_pause(sequence_id: int) -> Any:
    session = db_session()
    sequence = _sequence(sequence_id)
    try:
        service.pause_sequence(session, sequence.id, now=utcnow())
    except Conflict as exc:
        session.rollback()
        flash(f"Not paused: {exc}.", "error")
        return redirect(url_for("admin.sequence_builder", sequence_id=sequence_id))
    session.commit()
    flash("Paused: no new enrollments and no sending until it is activated again.", "success")
    return redirect(url_for("admin.sequence_builder", sequence_id=sequence_id))


from nurture.web.admin import sequence_pages  # noqa: E402, F401  (versions, YAML, previews)
