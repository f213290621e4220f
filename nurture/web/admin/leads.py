"""Leads: search and filter, the lead page with its timeline, bulk actions, CSV import.

Views validate, call the services the API and the CLI use (nurture.leads.*, campaigns.*,
nurture.scoring.*), commit and redirect with a flash. Imports and bulk actions are `LeadTask`
rows run by a worker (`run_lead_task`); their page reads the row (and polls it with
leads.js, or is reloaded by hand without JavaScript).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError

from campaigns import lead_actions
from nurture.clock import utcnow
from nurture.errors import Conflict, InvalidInput, NotFound
from nurture.leads import search, services, tasks
from nurture.leads.erasure import erase_lead, is_erased
from nurture.leads.timeline import lead_timeline, lifecycle_history
from nurture.models import LifecycleStage, RejectionReason, Role
from nurture.models.lead_tasks import LeadTask, LeadTaskKind, LeadTaskStatus
from nurture.scoring.bands import score_scale
from nurture.scoring.lifecycle import active_model, document_of
from nurture.scoring.rescoring import lead_score
from nurture.web import db_session, redis
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp
from nurture.web.admin.lead_forms import EraseForm, ImportForm, SequenceForm
from nurture.web.layout import STAFF
from workers.queues import enqueue

log = logging.getLogger(__name__)

MARKETING = (Role.MARKETER, Role.ADMIN)
"""Who may change leads (enroll, remove, suppress, erase, import); approvers only read."""


@bp.url_value_preprocessor
def _import_size(endpoint: str | None, _values: Any) -> None:
    # runs before the CSRF check reads the form, so a leads file may exceed the API's 1 MB
    if endpoint == "admin.lead_import" and request.method == "POST":
        request.max_content_length = tasks.IMPORT_MAX_BYTES + 64 * 1024


def _lead_or_404(lead_id: int) -> Any:
    try:
        return services.get_lead(db_session(), lead_id)
    except NotFound:
        abort(404, "There is no lead with this id.")


# --- the list ----------------------------------------------------------------------------------


@bp.get("/leads")
@allow(*STAFF)
def leads() -> Any:
    session, now = db_session(), utcnow()
    scale = score_scale(session)
    errors: dict[str, list[str]] = {}
    try:
        query = search.parse_query(request.args, scale)
    except InvalidInput as exc:
        errors, query = exc.errors, None
    page = search.search_leads(session, query, scale, now=now) if query else None
    kept = {k: v for k, v in request.args.items() if k in search.FILTERS and v}
    next_url = (url_for("admin.leads", **kept, after=page.next_cursor)
                if page is not None and page.next_cursor else None)
    return render_template(
        "admin/leads/list.html", page=page, query=query, args=request.args, errors=errors,
        scale=scale, stages=list(LifecycleStage), reasons=list(RejectionReason),
        sequences=lead_actions.all_sequences(session),
        active_sequences=lead_actions.active_sequences(session), sorts=search.SORTS,
        count_cap=search.COUNT_CAP, filters=search.FILTERS,
        recent=tasks.recent_tasks(session, limit=5), first_url=url_for("admin.leads", **kept),
        next_url=next_url, may_change=current_user.role in MARKETING,
    ), 400 if errors else 200


@bp.post("/leads/bulk")
@allow(*MARKETING)
def lead_bulk() -> Any:
    session, now = db_session(), utcnow()
    action = request.form.get("action", "")
    back = url_for("admin.leads", **{k: v for k, v in request.form.items()
                                     if k in search.FILTERS and v})
    try:
        kind = LeadTaskKind(action)
        sequence_id = int(request.form.get("sequence", ""))
        sequence = lead_actions.get_sequence(session, sequence_id)
    except (ValueError, NotFound):
        flash("Choose an action and a sequence for the selected leads.", "error")
        return redirect(back)
    if request.form.get("scope") == "matching":
        scale = score_scale(session)
        try:
            query = search.parse_query(request.form, scale)
        except InvalidInput:
            flash("The search has invalid values; search again first.", "error")
            return redirect(back)
        lead_ids = search.matching_ids(session, query, scale, now=now,
                                       limit=tasks.BULK_MAX_LEADS)
    else:
        raw = request.form.getlist("lead_ids")
        if not all(value.isdigit() for value in raw):
            flash("The selection is damaged; select the leads again.", "error")
            return redirect(back)
        lead_ids = [int(value) for value in raw]
    try:
        task = tasks.create_bulk(session, kind, lead_ids, sequence.id,
                                 actor=current_user.email, now=now)
    except InvalidInput as exc:
        flash(" ".join(m for ms in exc.errors.values() for m in ms) or str(exc), "error")
        return redirect(back)
    session.commit()
    _start(task.id)
    verb = "Enrolling" if kind == LeadTaskKind.ENROLL else "Removing"
    flash(f"{verb} {task.total} leads {'in' if verb == 'Enrolling' else 'from'} "
          f"{sequence.name} in the background.", "success")
    return redirect(url_for("admin.lead_task", task_id=task.id))


# --- one lead ----------------------------------------------------------------------------------


@bp.get("/leads/<int:lead_id>")
@allow(*STAFF)
def lead_detail(lead_id: int) -> Any:
    session, now = db_session(), utcnow()
    lead = _lead_or_404(lead_id)
    before = None
    if request.args.get("before"):
        try:
            before = datetime.fromisoformat(request.args["before"])
            if before.tzinfo is None:
                raise ValueError
        except ValueError:
            flash("The link to older entries was damaged: here are the newest.", "error")
            return redirect(url_for("admin.lead_detail", lead_id=lead.id))
    scale = score_scale(session)
    score = lead_score(session, lead, now=now)
    model = active_model(session)
    rules = {}
    if model is not None:
        document = document_of(model)
        for rule in (*document.fit, *document.engagement, *document.negative):
            rules[rule.rule] = rule.description
    history = lifecycle_history(session, lead.id)
    live = lead_actions.live_sequences(session, lead.id)
    enroll_form = SequenceForm(prefix="enroll")
    enroll_form.sequence.choices = [("", "Choose a sequence…")] + [
        (str(s.id), s.name) for s in lead_actions.active_sequences(session)
        if s.id not in {x.id for x in live}]
    return render_template(
        "admin/leads/detail.html", lead=lead, score=score, band=scale.band_of(score["total"]),
        scale=scale, threshold=_threshold(model), rules=rules, history=history,
        timeline=lead_timeline(session, lead.id, before=before), live=live,
        enroll_form=enroll_form, erased=is_erased(lead),
        enrollable=lead.lifecycle_stage in lead_actions.ENROLLABLE_FROM,
        suppressed=lead_actions.is_suppressed(session, lead.email),
        may_change=current_user.role in MARKETING,
    )


def _threshold(model: Any) -> float | None:
    return document_of(model).thresholds.total if model is not None else None


def _act(lead_id: int, action: Any, done: str) -> Any:
    """Run one action on the lead; a conflict is flashed, not an error page."""
    session = db_session()
    try:
        result = action(session)
    except (Conflict, NotFound, InvalidInput) as exc:
        session.rollback()
        flash(f"Nothing changed: {exc}.", "error")
    else:
        session.commit()
        flash(done if result is not False else "Nothing changed: it was so already.",
              "success" if result is not False else "info")
    return redirect(url_for("admin.lead_detail", lead_id=lead_id))


def _sequence_id(form_name: str) -> int:
    value = request.form.get(form_name, "")
    if not value.isdigit():
        flash("Choose a sequence.", "error")
        return 0
    return int(value)


@bp.post("/leads/<int:lead_id>/enroll")
@allow(*MARKETING)
def lead_enroll(lead_id: int) -> Any:
    _lead_or_404(lead_id)
    sequence_id = _sequence_id("enroll-sequence")
    if not sequence_id:
        return redirect(url_for("admin.lead_detail", lead_id=lead_id))
    return _act(lead_id, lambda s: lead_actions.enroll_lead(
        s, lead_id, sequence_id, actor=current_user.email, now=utcnow()),
        "Enrolled: the first step runs at the dispatcher's next tick.")


@bp.post("/leads/<int:lead_id>/remove")
@allow(*MARKETING)
def lead_remove(lead_id: int) -> Any:
    _lead_or_404(lead_id)
    sequence_id = _sequence_id("sequence")
    if not sequence_id:
        return redirect(url_for("admin.lead_detail", lead_id=lead_id))
    return _act(lead_id, lambda s: lead_actions.remove_from_sequence(
        s, lead_id, sequence_id, actor=current_user.email, now=utcnow()),
        "Removed from the sequence: no more of its emails.")


@bp.post("/leads/<int:lead_id>/suppress")
@allow(*MARKETING)
def lead_suppress(lead_id: int) -> Any:
    _lead_or_404(lead_id)
    return _act(lead_id, lambda s: lead_actions.suppress_lead(
        s, lead_id, actor=current_user.email, now=utcnow()),
        "Suppressed: this address gets no more email, and its sequences end.")


@bp.route("/leads/<int:lead_id>/erase", methods=["GET", "POST"])
@allow(*MARKETING)
def lead_erase(lead_id: int) -> Any:
    session = db_session()
    lead = _lead_or_404(lead_id)
    if is_erased(lead):
        flash("This lead's personal data was erased already.", "info")
        return redirect(url_for("admin.lead_detail", lead_id=lead_id))
    form = EraseForm()
    if form.validate_on_submit():
        if form.confirm.data.strip().lower() != lead.email.lower():
            form.confirm.errors.append("This is not the lead's email address: nothing erased.")
        else:
            erase_lead(session, lead.id, now=utcnow())
            session.commit()
            flash("The lead's personal data is erased; its numbers stay in the reports.",
                  "success")
            return redirect(url_for("admin.lead_detail", lead_id=lead_id))
    return render_template("admin/leads/erase.html", lead=lead, form=form), (
        400 if form.errors else 200)


# --- import and tasks ----------------------------------------------------------------------------


@bp.route("/leads/import", methods=["GET", "POST"])
@allow(*MARKETING)
def lead_import() -> Any:
    session = db_session()
    form = ImportForm()
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        data = upload.read() if upload else b""
        try:
            task = tasks.create_import(session, data, upload.filename if upload else "",
                                       skip_invalid=form.skip_invalid.data,
                                       actor=current_user.email, now=utcnow())
        except InvalidInput as exc:
            form.file.errors = list(exc.errors.get("file") or [str(exc)])
            status = 400
        else:
            session.commit()
            _start(task.id)
            flash(f"Importing {task.file_name} in the background.", "success")
            return redirect(url_for("admin.lead_task", task_id=task.id))
    elif request.method == "POST":
        status = 400
    return render_template("admin/leads/import.html", form=form,
                           max_mb=tasks.IMPORT_MAX_BYTES // 1_048_576,
                           recent=tasks.recent_tasks(session, limit=5)), status


def _start(task_id: int) -> None:
    """Hand the task to a worker; if Redis does not take it now, its page asks again."""
    connection = redis()
    if connection is None:
        return
    try:
        enqueue(connection, "run_lead_task", task_id)
    except RedisError:
        log.warning("lead task %d recorded but not enqueued", task_id, exc_info=True)


def _task_or_404(task_id: int) -> LeadTask:
    try:
        return tasks.get_task(db_session(), task_id)
    except NotFound:
        abort(404, "There is no such import or bulk action.")


@bp.get("/leads/tasks/<int:task_id>")
@allow(*MARKETING)
def lead_task(task_id: int) -> Any:
    task = _task_or_404(task_id)
    if task.status == LeadTaskStatus.QUEUED:
        _start(task.id)  # the database says it is due; a lost job is asked for again (idempotent)
    sequence = None
    if task.params.get("sequence_id"):
        try:
            sequence = lead_actions.get_sequence(db_session(), int(task.params["sequence_id"]))
        except NotFound:
            sequence = None
    return render_template("admin/leads/task.html", task=task, sequence=sequence)


@bp.get("/leads/tasks/<int:task_id>/status")
@allow(*MARKETING)
def lead_task_status(task_id: int) -> Any:
    return jsonify(_task_or_404(task_id).summary())


@bp.get("/leads/tasks/<int:task_id>/errors.csv")
@allow(*MARKETING)
def lead_task_report(task_id: int) -> Any:
    task = _task_or_404(task_id)
    if not task.report:
        abort(404, "This import has no error report: no row was invalid.")
    name = f"lead-import-{task.id}-errors.csv"
    return Response(task.report, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"'})
