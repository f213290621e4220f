"""The sales approvers' queue: collateral versions, scoring drafts and SLA drafts waiting.

Each item opens on its preview (the asset; the model's rules; the SLA's terms), its readable
diff against the version now approved, a scoring draft's backtests, and who asked. Approving
and requesting changes call the same services as the API (`campaigns.collateral.transition`,
`nurture.approvals.lifecycle`); a comment reaches the author in the admin (the item's page,
the scoring page) and by email. Reading an item is open to all staff (the author follows the
email's link to it); deciding is for sales approvers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import abort, flash, redirect, render_template, send_from_directory, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from campaigns import collateral as collateral_service
from campaigns.messengers import SendRefused, SendUnknown, messenger_for
from nurture.accounts.services import Actor
from nurture.approvals import lifecycle as approvals_lifecycle
from nurture.clock import utcnow
from nurture.errors import Conflict, Forbidden, InvalidInput, NotFound
from nurture.models import CollateralVersion, Role, User
from nurture.reviews import items, queue
from nurture.reviews.mail import compose_changes_requested
from nurture.web import db_session, settings
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp
from nurture.web.layout import STAFF

log = logging.getLogger(__name__)

APPROVERS = (Role.SALES_APPROVER, Role.ADMIN)
"""Who opens the queue (an admin sees it; only a sales approver's decision counts)."""

DECIDERS = (Role.SALES_APPROVER,)
"""Who approves or requests changes."""

DOCUMENTS = ("scoring_model", "sla")

QUEUE_SUMMARIES = 50
"""Items of the queue listed with the size of their diff (the rest with a link only)."""


class DecisionForm(FlaskForm):
    """Approve (no field) or request changes (a comment, required by the service)."""

    comment = TextAreaField("What should change", validators=[Length(max=5000)])


def _actor() -> Actor:
    return Actor(email=current_user.email, role=current_user.role, user_id=current_user.id)


@bp.get("/approvals")
@allow(*APPROVERS)
def approvals() -> Any:
    session, now = db_session(), utcnow()
    waiting = queue.waiting(session, today=now.date())
    counts = {kind: sum(1 for i in waiting if i.kind == kind) for kind in queue.LABELS}
    names = {u.email: u.name for u in queue.recipients(session, [i.asked_by for i in waiting])
             if u.name}
    return render_template("admin/approvals/queue.html", items=waiting, counts=counts,
                           labels=queue.LABELS, can_decide=current_user.role in DECIDERS,
                           names=names, now=now,
                           changes={(i.kind, i.id): _change_count(i, now) for i in
                                    waiting[:QUEUE_SUMMARIES]})


def _change_count(item: queue.Item, now: Any) -> tuple[int, int | None]:
    """How many lines the item's diff has, and the version it is compared with."""
    session = db_session()
    if item.kind == "collateral":
        review = items.collateral_review(session, item.id, today=now.date())
        return len(review.changes), review.approved.version if review.approved else None
    document = items.document_review(session, item.kind, item.id)
    return len(document.changes), document.active.version if document.active else None


@bp.get("/approvals/history")
@allow(*APPROVERS)
def approval_history() -> Any:
    found = queue.decisions(db_session(), user_id=current_user.id, email=current_user.email)
    return render_template("admin/approvals/history.html", decisions=found)


# collateral ---------------------------------------------------------------------------------


def _collateral_page(version_id: int, form: DecisionForm | None = None, *,
                     problem: str | None = None, status: int = 200) -> Any:
    try:
        review = items.collateral_review(db_session(), version_id, today=utcnow().date())
    except NotFound:
        abort(404)
    return render_template("admin/approvals/collateral.html", review=review,
                           form=form or DecisionForm(), problem=problem,
                           can_decide=current_user.role in DECIDERS), status


@bp.get("/approvals/collateral/<int:version_id>")
@allow(*STAFF)
def approval_collateral(version_id: int) -> Any:
    return _collateral_page(version_id)


@bp.get("/approvals/collateral/<int:version_id>/asset")
@allow(*STAFF)
def approval_collateral_asset(version_id: int) -> Any:
    """The uploaded file of any version, for staff to review (the public address serves
    approved versions only); never run by the browser as a page of this site."""
    version = db_session().get(CollateralVersion, version_id) if 0 < version_id < 2**63 else None
    if version is None or not version.file_path:
        abort(404)
    response = send_from_directory(
        Path(settings().instance_path) / "uploads", version.file_path,
        mimetype=version.content_type, download_name=version.file_name, as_attachment=False)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.post("/approvals/collateral/<int:version_id>/approve")
@allow(*DECIDERS)
def approval_collateral_approve(version_id: int) -> Any:
    session = db_session()
    try:
        version = collateral_service.transition(session, version_id, "approve", actor=_actor(),
                                                now=utcnow())
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except Conflict as exc:
        session.rollback()
        return _collateral_page(version_id, problem=str(exc), status=409)
    title, number, expires = version.title, version.version, version.expires_on
    session.commit()
    if queue.expiring(expires, today=utcnow().date()):
        flash(f"Approved “{title}” v{number}. Note: it expires on {expires.isoformat()}"  # type: ignore[union-attr]
              ", within 30 days.", "warning")
    else:
        flash(f"Approved “{title}” v{number}: sequences may feature it now.", "success")
    return redirect(url_for("admin.approvals"))


@bp.post("/approvals/collateral/<int:version_id>/request-changes")
@allow(*DECIDERS)
def approval_collateral_changes(version_id: int) -> Any:
    form = DecisionForm()
    session = db_session()
    if not form.validate():
        return _collateral_page(version_id, form, status=422)
    comment = (form.comment.data or "").strip()
    try:
        version = collateral_service.transition(session, version_id, "request_changes",
                                                actor=_actor(), comment=comment, now=utcnow())
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except InvalidInput as exc:
        session.rollback()
        form.comment.errors = list(exc.errors.get("comment", [str(exc)]))
        return _collateral_page(version_id, form, status=422)
    except Conflict as exc:
        session.rollback()
        return _collateral_page(version_id, form, problem=str(exc), status=409)
    authors = queue.collateral_authors(session, version)
    title, number = version.title, version.version
    session.commit()
    _email_authors(authors, label="Collateral", title=title, version=number, comment=comment,
                   link=url_for("admin.approval_collateral", version_id=version_id,
                                _external=True))
    flash(f"Sent “{title}” v{number} back with your comment.", "success")
    return redirect(url_for("admin.approvals"))


# scoring models and SLAs --------------------------------------------------------------------


def _document_page(kind: str, row_id: int, form: DecisionForm | None = None, *,
                   problem: str | None = None, status: int = 200) -> Any:
    if kind not in DOCUMENTS:
        abort(404)
    try:
        review = items.document_review(db_session(), kind, row_id)
    except NotFound:
        abort(404)
    return render_template("admin/approvals/document.html", review=review,
                           form=form or DecisionForm(), problem=problem,
                           can_decide=current_user.role in DECIDERS,
                           compared=_compared_backtest(review)), status


def _compared_backtest(review: items.DocumentReview) -> Any:
    done = [b for b in review.backtests if b.status.value == "done" and b.result]
    return done[0] if done else None


@bp.get("/approvals/<kind>/<int:row_id>")
@allow(*STAFF)
def approval_document(kind: str, row_id: int) -> Any:
    return _document_page(kind, row_id)


@bp.post("/approvals/<kind>/<int:row_id>/approve")
@allow(*DECIDERS)
def approval_document_approve(kind: str, row_id: int) -> Any:
    if kind not in DOCUMENTS:
        abort(404)
    session = db_session()
    try:
        row = approvals_lifecycle.approve(session, queue.KINDS[kind], row_id,
                                                  actor=_actor(), now=utcnow())
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except Conflict as exc:
        session.rollback()
        return _document_page(kind, row_id, problem=str(exc), status=409)
    name, number, state = row.name, row.version, row.status.value
    session.commit()
    flash(f"Approved {queue.LABELS[kind].lower()} “{name}” v{number}"
          + (": both teams have signed, it can be activated." if state == "approved" else "."),
          "success")
    return redirect(url_for("admin.approvals"))


@bp.post("/approvals/<kind>/<int:row_id>/request-changes")
@allow(*DECIDERS)
def approval_document_changes(kind: str, row_id: int) -> Any:
    if kind not in DOCUMENTS:
        abort(404)
    form = DecisionForm()
    if not form.validate():
        return _document_page(kind, row_id, form, status=422)
    session = db_session()
    comment = (form.comment.data or "").strip()
    approvable = queue.KINDS[kind]
    submitter = queue.submitted_by(session, approvable, row_id) if row_id < 2**63 else None
    try:
        row = approvals_lifecycle.request_changes(session, approvable, row_id,
                                                          actor=_actor(), comment=comment,
                                                          now=utcnow())
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except InvalidInput as exc:
        session.rollback()
        form.comment.errors = list(exc.errors.get("comment", [str(exc)]))
        return _document_page(kind, row_id, form, status=422)
    except Conflict as exc:
        session.rollback()
        return _document_page(kind, row_id, form, problem=str(exc), status=409)
    authors = queue.document_authors(session, approvable, row, submitter[0] if submitter else None)
    name, number = row.name, row.version
    session.commit()
    endpoint = "admin.scoring_model" if kind == "scoring_model" else "admin.scoring_sla"
    _email_authors(authors, label=queue.LABELS[kind], title=name, version=number,
                   comment=comment, link=url_for(endpoint, row_id=row_id, _external=True))
    flash(f"Sent {queue.LABELS[kind].lower()} “{name}” v{number} back with your comment.",
          "success")
    return redirect(url_for("admin.approvals"))


def _email_authors(authors: list[User], **what: Any) -> None:
    """The comment by email to each author (after the commit: a refused email leaves the
    decision recorded, and the page says so)."""
    config = settings()
    reviewer = current_user.display_name
    sent = 0
    for user in authors:
        if user.id == current_user.id:
            continue
        messenger = messenger_for(config.smtp_url, Path(config.instance_path) / "outbox")
        try:
            messenger.send(compose_changes_requested(user, reviewer=reviewer,
                                                     mail_from=config.mail_from, **what))
            sent += 1
        except (SendRefused, SendUnknown, OSError):
            log.warning("changes-requested email to %s not sent", user.email, exc_info=True)
            flash(f"The email to {user.email} could not be sent; the comment is recorded "
                  "and shows on the item's page.", "warning")
        finally:
            messenger.close()
