"""The scoring model and the SLA: drafts, backtests, approval and activation.

The same services as the API (`nurture.scoring.lifecycle`, `nurture.handoffs.sla`,
`nurture.scoring.backtest`): a draft is a new immutable version; a marketer submits it to
sales by approving it for marketing; a sales approver approves it (here or in the queue); once
both have, anyone of staff activates it. The editor is a table of rules (scoring_table.py)
checked by the API's validator, each error on its field.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from redis.exceptions import RedisError
from sqlalchemy import func, select
from wtforms import IntegerField, TextAreaField
from wtforms.validators import InputRequired, NumberRange

from nurture.accounts.services import Actor
from nurture.approvals import lifecycle as approvals
from nurture.clock import utcnow
from nurture.errors import Conflict, Forbidden, InvalidInput, NotFound
from nurture.handoffs import sla as slas
from nurture.models import EngagementEvent, Role
from nurture.reviews import describe, items, queue
from nurture.scoring import backtest as backtests
from nurture.scoring import lifecycle as models
from nurture.scoring.document import load_text
from nurture.web import db_session, redis
from nurture.web.access import allow
from nurture.web.admin import scoring_table
from nurture.web.admin.blueprint import bp
from nurture.web.layout import STAFF
from workers.queues import enqueue

log = logging.getLogger(__name__)

EDITORS = (Role.MARKETER, Role.ADMIN)
SIGNERS = (Role.MARKETER, Role.SALES_APPROVER)

INLINE_BACKTEST_EVENTS = 20_000
"""A backtest over at most this many events runs within the request; more go to a worker."""

KINDS = {"models": ("scoring_model", models.SCORING_MODEL, "admin.scoring_model"),
         "slas": ("sla", slas.SLA, "admin.scoring_sla")}
"""The URL's kind → the queue's name, the approved document, its page."""


class BacktestForm(FlaskForm):
    days = IntegerField("Days of history", default=90, validators=[
        InputRequired("Say how many days."),
        NumberRange(1, backtests.MAX_DAYS, f"From 1 to {backtests.MAX_DAYS} days.")])


class SlaForm(FlaskForm):
    document = TextAreaField("The SLA (YAML)", validators=[InputRequired("Write the SLA.")])


def _actor() -> Actor:
    return Actor(email=current_user.email, role=current_user.role, user_id=current_user.id)


@bp.app_context_processor
def _active_versions() -> dict[str, Any]:
    """`active_scoring_version()` and `active_sla_version()` for any page that shows a score
    or an SLA time (a version number, or None)."""

    def scoring_version() -> int | None:
        model = models.active_model(db_session())
        return model.version if model else None

    def sla_version() -> int | None:
        sla = slas.active_sla(db_session())
        return sla.version if sla else None

    return {"active_scoring_version": scoring_version, "active_sla_version": sla_version}


def _overview(kind_key: str, rows: list[Any]) -> list[dict[str, Any]]:
    session = db_session()
    kind = queue.KINDS[kind_key]
    requests = approvals.change_requests(session, kind, [r.id for r in rows])
    return [{"row": r, "summary": approvals.summary(session, kind, r),
             "requests": requests[r.id]} for r in rows]


@bp.get("/scoring")
@allow(*STAFF)
def scoring() -> Any:
    session = db_session()
    model, sla = models.active_model(session), slas.active_sla(session)
    return render_template(
        "admin/scoring/index.html",
        model=model, model_summary=models.model_summary(session, model) if model else None,
        sla=sla, sla_summary=slas.sla_summary(session, sla) if sla else None,
        models=_overview("scoring_model", models.list_models(session)),
        slas=_overview("sla", slas.list_slas(session)),
        default_terms=slas.default_terms() if sla is None else None,
        can_edit=current_user.role in EDITORS, duration=describe.duration_text)


# a scoring model's page ---------------------------------------------------------------------


def _model_page(row_id: int, *, backtest_form: BacktestForm | None = None,
                problem: str | None = None, status: int = 200) -> Any:
    try:
        review = items.document_review(db_session(), "scoring_model", row_id)
    except NotFound:
        abort(404)
    return render_template("admin/scoring/model.html", review=review, problem=problem,
                           backtest_form=backtest_form or BacktestForm(),
                           actions=_actions(review), can_edit=current_user.role in EDITORS,
                           running=any(b.status.value in ("queued", "running")
                                       for b in review.backtests)), status


def _actions(review: items.DocumentReview) -> dict[str, bool]:
    """Which buttons the signed-in user gets on a version's page."""
    status = review.row.status.value
    live = {a["role"] for a in review.summary["approvals"] if a["withdrawn_at"] is None}
    role = current_user.role.value
    reviewable = status in ("draft", "approved")
    return {"approve": reviewable and current_user.role in SIGNERS and role not in live,
            "withdraw": reviewable and current_user.role in SIGNERS and role in live,
            "activate": status == "approved" and current_user.role in STAFF,
            "submit_label": role == "marketer"}


@bp.get("/scoring/models/<int:row_id>")
@allow(*STAFF)
def scoring_model(row_id: int) -> Any:
    return _model_page(row_id)


@bp.post("/scoring/models/<int:row_id>/backtest")
@allow(*STAFF)
def scoring_backtest(row_id: int) -> Any:
    form = BacktestForm()
    if not form.validate():
        return _model_page(row_id, backtest_form=form, status=422)
    session, now = db_session(), utcnow()
    try:
        backtest = backtests.request_backtest(session, row_id, days=form.days.data or 90,
                                              actor=current_user.email, now=now)
    except NotFound:
        abort(404)
    small = session.execute(select(func.count()).select_from(
        select(EngagementEvent.id).where(
            EngagementEvent.occurred_at >= now - timedelta(days=backtest.days))
        .limit(INLINE_BACKTEST_EVENTS + 1).subquery())).scalar_one() <= INLINE_BACKTEST_EVENTS
    connection = redis()
    if small or connection is None:
        backtests.run_backtest(session, backtest.id, now=now)
        session.commit()
        flash("Backtest done: its result is beside the active model's below.", "success")
    else:
        backtest_id = backtest.id
        session.commit()
        try:
            enqueue(connection, "run_backtest", backtest_id)
            flash("The backtest runs in the background; this page shows it when it is done.",
                  "info")
        except RedisError:
            log.warning("backtest %d recorded but not enqueued", backtest_id, exc_info=True)
            flash("The backtest is recorded but no worker took it: "
                  f"`nurture scoring backtest {row_id}` runs it.", "warning")
    return redirect(url_for("admin.scoring_model", row_id=row_id) + "#backtest-title")


# approval and activation (both documents) ---------------------------------------------------


def _kind(kind: str) -> tuple[str, Any, str]:
    if kind not in KINDS:
        abort(404)
    return KINDS[kind]


def _refused(kind: str, row_id: int, message: str) -> Any:
    if kind == "models":
        return _model_page(row_id, problem=message, status=409)
    return _sla_page(row_id, problem=message, status=409)


@bp.post("/scoring/<kind>/<int:row_id>/approve")
@allow(*SIGNERS)
def scoring_approve(kind: str, row_id: int) -> Any:
    _, approvable, page = _kind(kind)
    session = db_session()
    try:
        row = approvals.approve(session, approvable, row_id, actor=_actor(), now=utcnow())
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except Conflict as exc:
        session.rollback()
        return _refused(kind, row_id, str(exc))
    number, state = row.version, row.status.value
    session.commit()
    if state == "approved":
        flash(f"Version {number} has both approvals: it can be activated.", "success")
    elif current_user.role == Role.MARKETER:
        flash(f"Version {number} is approved for marketing and waits in the sales approvers' "
              "queue.", "success")
    else:
        flash(f"Version {number} is approved for sales; it needs a marketer's approval too.",
              "success")
    return redirect(url_for(page, row_id=row_id))


@bp.post("/scoring/<kind>/<int:row_id>/withdraw")
@allow(*SIGNERS)
def scoring_withdraw(kind: str, row_id: int) -> Any:
    _, approvable, page = _kind(kind)
    session = db_session()
    try:
        row = approvals.withdraw(session, approvable, row_id, actor=_actor(), now=utcnow())
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except Conflict as exc:
        session.rollback()
        return _refused(kind, row_id, str(exc))
    number = row.version
    session.commit()
    flash(f"Your approval of version {number} is withdrawn; it is a draft again.", "success")
    return redirect(url_for(page, row_id=row_id))


@bp.post("/scoring/<kind>/<int:row_id>/activate")
@allow(*STAFF)
def scoring_activate(kind: str, row_id: int) -> Any:
    _, _, page = _kind(kind)
    session = db_session()
    try:
        if kind == "models":
            row, previous = models.activate_model(session, row_id, actor=current_user.email,
                                                  now=utcnow())
        else:
            row, previous = slas.activate_sla(session, row_id, actor=current_user.email,
                                              now=utcnow())
    except NotFound:
        abort(404)
    except Conflict as exc:
        session.rollback()
        return _refused(kind, row_id, str(exc))
    number, model_id = row.version, row.id
    before = f" (version {previous.version} is retired)" if previous is not None else ""
    session.commit()
    if kind == "models":
        _enqueue_rescore(model_id)
        flash(f"Scoring model version {number} is active{before}; every lead is re-scored in "
              "the background.", "success")
    else:
        flash(f"SLA version {number} is active{before}; new handoffs run under it.", "success")
    return redirect(url_for(page, row_id=row_id))


def _enqueue_rescore(model_id: int) -> None:
    connection = redis()
    if connection is None:
        return
    try:
        enqueue(connection, "rescore_leads", model_id)
    except RedisError:
        log.warning("rescore of model %d recorded but not enqueued", model_id, exc_info=True)


# the editors --------------------------------------------------------------------------------


def _source_document(kind: str, default: Any) -> tuple[dict[str, Any], Any]:
    """The document a new draft starts from: `?from=<id>`, else the active one."""
    session = db_session()
    start = request.args.get("from", type=int)
    approvable = KINDS[kind][1]
    row = None
    if start:
        try:
            row = approvals.get(session, approvable, start)
        except NotFound:
            abort(404)
    else:
        row = approvals.active(session, approvable)
    return (row.document if row is not None else default()), row


@bp.route("/scoring/models/new", methods=["GET", "POST"])
@allow(*EDITORS)
def scoring_edit() -> Any:
    # CSRFProtect has checked the post; the table is read from the form by scoring_table
    if request.method == "GET":
        document, source = _source_document("models",
                                            lambda: models.default_document().as_data())
        table = scoring_table.from_document(document)
        return render_template("admin/scoring/edit.html", table=table, source=source)
    table = scoring_table.from_form(request.form)
    op = request.form.get("op", "save")
    source_id = request.form.get("source", type=int)
    if op != "save":
        scoring_table.apply(table, op)
        return render_template("admin/scoring/edit.html", table=table, source=None,
                               source_id=source_id)
    session = db_session()
    try:
        model = models.create_model(session, scoring_table.to_document(table),
                                    actor=current_user.email, now=utcnow())
    except InvalidInput as exc:
        session.rollback()
        scoring_table.place_errors(table, exc.errors or {"document": [str(exc)]})
        return render_template("admin/scoring/edit.html", table=table, source=None,
                               source_id=source_id), 422
    row_id, number = model.id, model.version
    session.commit()
    flash(f"Saved as draft version {number}. Run a backtest, then submit it to sales.",
          "success")
    return redirect(url_for("admin.scoring_model", row_id=row_id))


# the SLA -----------------------------------------------------------------------------------


def _sla_page(row_id: int, *, problem: str | None = None, status: int = 200) -> Any:
    try:
        review = items.document_review(db_session(), "sla", row_id)
    except NotFound:
        abort(404)
    return render_template("admin/scoring/sla.html", review=review, problem=problem,
                           actions=_actions(review), can_edit=current_user.role in EDITORS
                           ), status


@bp.get("/scoring/slas/<int:row_id>")
@allow(*STAFF)
def scoring_sla(row_id: int) -> Any:
    return _sla_page(row_id)


@bp.route("/scoring/slas/new", methods=["GET", "POST"])
@allow(*EDITORS)
def scoring_sla_edit() -> Any:
    form = SlaForm()
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "GET":
        document, _ = _source_document("slas", slas.default_terms().document.as_data)
        form.document.data = describe.as_yaml(document)
    elif form.validate():
        session = db_session()
        try:
            data = load_text(form.document.data or "", yaml_format=True)
            sla = slas.create_sla(session, data, actor=current_user.email, now=utcnow())
        except ValueError as exc:  # YAML syntax
            errors = {"document": [str(exc)]}
        except InvalidInput as exc:
            session.rollback()
            errors = exc.errors or {"document": [str(exc)]}
        else:
            row_id, number = sla.id, sla.version
            session.commit()
            flash(f"Saved as SLA draft version {number}. Submit it to sales when it reads "
                  "right.", "success")
            return redirect(url_for("admin.scoring_sla", row_id=row_id))
        status = 422
    else:
        status = 422
    return render_template("admin/scoring/sla_edit.html", form=form, errors=errors), status
