"""The rep's pages: the inbox of recycled leads and the lead card, with accept, reject,
feedback on collateral and (for a team lead) reassign. Thin: the handoff services are the
API's (`nurture.handoffs.services.accept` / `reject`, the same 409s), the inbox's queries are
`nurture.handoffs.inbox`, the plain-words explanation `nurture.scoring.explain`.

A handoff or lead the rep may not see answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from pydantic import ValidationError
from wtforms import HiddenField, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from campaigns import feedback as collateral_feedback
from campaigns.messengers import SendRefused, SendUnknown, messenger_for
from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.errors import Conflict, Forbidden, InvalidInput, NotFound
from nurture.handoffs import inbox as inbox_service
from nurture.handoffs import services
from nurture.handoffs.notifications import new_notifications
from nurture.handoffs.schemas import HandoffRejectIn
from nurture.models import SYSTEM_REASONS, HandoffStatus, RejectionReason, Role
from nurture.scoring.explain import ago, plain_explanation
from nurture.web import db_session, redis, settings
from nurture.web.access import allow
from nurture.web.reps import bp
from workers.notifying import enqueue_notifications

log = logging.getLogger(__name__)

REASON_WORDS = {
    "no_budget": "No budget", "no_authority": "Not the decision maker", "no_need": "No need",
    "bad_timing": "Bad timing", "not_icp": "Not our kind of customer",
    "unresponsive": "Unresponsive", "chose_competitor": "Chose a competitor", "other": "Other",
    "sla_expired": "SLA expired", "stalled_in_sales": "Stalled in sales",
}
"""Rejection reasons as a rep reads them."""

NOTE_MAX = 2000


class RejectForm(FlaskForm):
    reason = SelectField("Reason", choices=[("", "Choose a reason")] + [
        (r.value, REASON_WORDS[r.value]) for r in RejectionReason if r not in SYSTEM_REASONS],
        validators=[DataRequired("Choose why you give the lead back.")])
    note = TextAreaField("Note on the lead", validators=[Optional(), Length(max=NOTE_MAX)])


class FeedbackForm(FlaskForm):
    useful = HiddenField(validators=[DataRequired()])
    note = TextAreaField("Note (optional)", validators=[Optional(), Length(max=NOTE_MAX)])


class ReassignForm(FlaskForm):
    rep = SelectField("Give it to", validators=[DataRequired("Choose a rep of your team.")])


def _viewer() -> inbox_service.Viewer:
    return inbox_service.viewer(db_session(), int(current_user.id))


def _actor(who: inbox_service.Viewer) -> Actor:
    return Actor(email=who.email, role=Role.REP, user_id=who.id)


def _enqueue_notifications() -> None:
    """Hand the notifications made in the request (a reassignment's email) to the workers;
    without Redis the dispatcher's sweep finds them."""
    ids = new_notifications(db_session())
    connection = redis()
    if not ids or connection is None:
        return
    enqueue_notifications(connection, ids)  # never raises: the sweep delivers what it misses


@bp.get("/")
@allow(Role.REP)
def inbox() -> Any:
    session, who, now = db_session(), _viewer(), utcnow()
    status_arg = request.args.get("status", "")
    filters = {s.value: s for s in inbox_service.FILTERS}
    code = 200
    if status_arg and status_arg not in filters:
        flash(f"There is no filter '{status_arg[:40]}': choose open, accepted, rejected or "
              "expired. Showing all.", "error")
        status_arg, code = "", 400
    team = request.args.get("team") == "1" and who.leads_team
    reps = inbox_service.visible_reps(session, who, team=team)
    rows = inbox_service.inbox(session, reps, status=filters.get(status_arg))
    items = [_row(row, who, now) for row in rows]
    return render_template(
        "reps/inbox.html", items=items, counts=inbox_service.counts(session, reps),
        status=status_arg, team=team, who=who, now_local=now.astimezone(who.zone),
        filters=[("", "All")] + [(s.value, s.value.capitalize()) for s in inbox_service.FILTERS],
        page_size=inbox_service.PAGE), code


def _row(row: inbox_service.Row, who: inbox_service.Viewer, now: Any) -> dict[str, Any]:
    h, lead = row.handoff, row.lead
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email
    explanation = (h.score or {}).get("explanation") or []
    top = max(explanation, key=lambda i: abs(float(i.get("points") or 0)), default=None) \
        if isinstance(explanation, list) else None
    return {
        "id": h.id, "name": name, "company": lead.company, "title": lead.title,
        "status": h.status.value, "score": (h.score or {}).get("total"),
        "top_rule": (str(top.get("rule")).replace("_", " ") if isinstance(top, dict) else None),
        "countdown": (inbox_service.countdown(h.sla_due_at, now, who.zone)
                      if h.status == HandoffStatus.OPEN else None),
        "escalated": h.status == HandoffStatus.OPEN and (h.escalations > 0 or h.reassignments > 0),
        "escalations": h.escalations, "reassigned": h.reassignments,
        "rep_email": h.rep_email, "mine": h.rep_email == who.email,
        "arrived": ago(h.created_at, now),
        "closed": ago(h.closed_at, now) if h.closed_at else None,
    }


def _card(handoff_id: int, *, reject_form: RejectForm | None = None,
          conflict: str | None = None, status: int = 200) -> Any:
    session, who, now = db_session(), _viewer(), utcnow()
    reps = inbox_service.visible_reps(session, who, team=True)
    try:
        handoff = inbox_service.visible_handoff(session, handoff_id, reps)
    except NotFound:
        abort(404)
    lead = services.get_lead_of(session, handoff)
    reasons = plain_explanation(session, lead_id=lead.id, score=handoff.score or {},
                                model_id=handoff.model_version_id,
                                until=handoff.created_at, now=now)
    prior = inbox_service.rejection_of(session, handoff.prior_rejection_id)
    answer = inbox_service.rejection_of(session, handoff.rejection_id)
    mine = handoff.rep_email == who.email
    team_reps = []
    if who.leads_team and handoff.status == HandoffStatus.OPEN:
        team_reps = [u for u in inbox_service.team_members(session, who.team or "")
                     if u.email != handoff.rep_email]
    reassign_form = ReassignForm()
    reassign_form.rep.choices = [("", "Choose a rep")] + [
        (u.email, u.name or u.email) for u in team_reps]
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email
    return render_template(
        "reps/card.html", handoff=handoff, lead=lead, name=name, who=who, mine=mine,
        reasons=reasons, prior=prior, answer=answer, reason_words=REASON_WORDS,
        contact=inbox_service.contact_of(lead),
        lead_time=inbox_service.lead_local_time(lead, now),
        countdown=(inbox_service.countdown(handoff.sla_due_at, now, who.zone)
                   if handoff.status == HandoffStatus.OPEN else None),
        collateral=inbox_service.collateral_seen(session, handoff, who.email if mine else None),
        timeline=inbox_service.timeline(session, handoff), zone=who.zone, now=now, ago=ago,
        reject_form=reject_form or RejectForm(), feedback_form=FeedbackForm(),
        reassign_form=reassign_form, team_reps=team_reps, conflict=conflict,
    ), status


@bp.get("/handoffs/<int:handoff_id>")
@allow(Role.REP)
def card(handoff_id: int) -> Any:
    return _card(handoff_id)


@bp.get("/leads/<int:lead_id>")
@allow(Role.REP)
def lead(lead_id: int) -> Any:
    """A lead by its address: the card of its latest handoff the rep may see, else 404."""
    session, who = db_session(), _viewer()
    try:
        handoff = inbox_service.visible_lead_handoff(
            session, lead_id, inbox_service.visible_reps(session, who, team=True))
    except NotFound:
        abort(404)
    return redirect(url_for("reps.card", handoff_id=handoff.id))


def _own_handoff(handoff_id: int, who: inbox_service.Viewer) -> None:
    """404 unless the handoff is visible to the rep (a team lead sees the team's)."""
    session = db_session()
    try:
        inbox_service.visible_handoff(session, handoff_id,
                                      inbox_service.visible_reps(session, who, team=True))
    except NotFound:
        abort(404)


def _conflict_words(handoff_id: int) -> str:
    session = db_session()
    handoff = services.get_handoff(session, handoff_id)
    session.refresh(handoff)
    when = handoff.closed_at.astimezone(_viewer().zone).strftime("%d %b %H:%M %Z") \
        if handoff.closed_at else ""
    by = "the SLA timer" if handoff.closed_by == "sla" else handoff.closed_by
    return (f"Nothing changed: this lead was {handoff.status.value} already"
            + (f" by {by}" if by else "") + (f" on {when}" if when else "") + ".")


@bp.post("/handoffs/<int:handoff_id>/accept")
@allow(Role.REP)
def accept(handoff_id: int) -> Any:
    session, who = db_session(), _viewer()
    _own_handoff(handoff_id, who)
    try:
        services.accept(session, handoff_id, actor=_actor(who), now=utcnow())
    except Conflict:
        session.rollback()
        return _card(handoff_id, conflict=_conflict_words(handoff_id), status=409)
    except Forbidden:
        session.rollback()
        return _card(handoff_id, conflict="Only the rep it is assigned to can accept it: "
                                          "reassign it to yourself first.", status=403)
    session.commit()
    flash("Accepted: the lead is yours and has left nurture. Call them now.", "success")
    return redirect(url_for("reps.card", handoff_id=handoff_id))


@bp.post("/handoffs/<int:handoff_id>/reject")
@allow(Role.REP)
def reject(handoff_id: int) -> Any:
    session, who = db_session(), _viewer()
    _own_handoff(handoff_id, who)
    form = RejectForm()
    if not form.validate_on_submit():
        return _card(handoff_id, reject_form=form, status=422)
    try:  # the API's schema, read as the API reads it (JSON)
        body = HandoffRejectIn.model_validate_json(json.dumps(
            {"reason": form.reason.data, "note": form.note.data or None}))
    except ValidationError as exc:
        for error in exc.errors():
            where = form.reason if error["loc"][:1] == ("reason",) else form.note
            where.errors = [*where.errors, error["msg"]]
        return _card(handoff_id, reject_form=form, status=422)
    try:
        _, intake = services.reject(session, handoff_id, actor=_actor(who), reason=body.reason,
                                    note=body.note, revisit_on=body.revisit_on, now=utcnow())
    except Conflict:
        session.rollback()
        return _card(handoff_id, conflict=_conflict_words(handoff_id), status=409)
    except Forbidden:
        session.rollback()
        return _card(handoff_id, conflict="Only the rep it is assigned to can reject it: "
                                          "reassign it to yourself first.", status=403)
    where = intake.routing_reason
    enrollment = intake.enrollment
    session.commit()
    if enrollment is not None:
        flash(f"Rejected ({REASON_WORDS[body.reason.value].lower()}): the lead is back in "
              f"nurture, in the sequence '{enrollment['sequence_name']}'.", "success")
    else:
        flash(f"Rejected ({REASON_WORDS[body.reason.value].lower()}): the lead is back in "
              f"nurture. No sequence takes it yet{f' ({where})' if where else ''}.", "success")
    return redirect(url_for("reps.card", handoff_id=handoff_id))


@bp.post("/handoffs/<int:handoff_id>/reassign")
@allow(Role.REP)
def reassign(handoff_id: int) -> Any:
    session, who = db_session(), _viewer()
    if not who.leads_team:
        abort(403)
    _own_handoff(handoff_id, who)
    form = ReassignForm()
    form.rep.choices = [(u.email, u.email) for u in inbox_service.team_members(
        session, who.team or "")]
    if not form.validate_on_submit():
        flash("Choose a rep of your team to give it to.", "error")
        return redirect(url_for("reps.card", handoff_id=handoff_id))
    try:
        inbox_service.reassign(session, handoff_id, lead_by=who, to_email=form.rep.data,
                               now=utcnow())
    except Conflict:
        session.rollback()
        return _card(handoff_id, conflict=_conflict_words(handoff_id), status=409)
    except InvalidInput as exc:
        session.rollback()
        flash(" ".join(m for ms in exc.errors.values() for m in ms) or str(exc), "error")
        return redirect(url_for("reps.card", handoff_id=handoff_id))
    session.commit()
    _enqueue_notifications()
    flash(f"Reassigned to {form.rep.data}: they have been emailed, with a fresh SLA window.",
          "success")
    return redirect(url_for("reps.card", handoff_id=handoff_id))


@bp.post("/handoffs/<int:handoff_id>/collateral/<int:version_id>/feedback")
@allow(Role.REP)
def feedback(handoff_id: int, version_id: int) -> Any:
    session, who = db_session(), _viewer()
    try:
        handoff = inbox_service.visible_handoff(session, handoff_id, [who.email])
    except NotFound:
        abort(404)
    seen = {c.version_id for c in inbox_service.collateral_seen(session, handoff, who.email,
                                                                 limit=1000)}
    if version_id not in seen:
        abort(404)
    form = FeedbackForm()
    if not form.validate_on_submit() or form.useful.data not in ("yes", "no"):
        flash("Say whether it was useful: press Useful or Not useful.", "error")
        return redirect(url_for("reps.card", handoff_id=handoff_id, _anchor="collateral"))
    try:
        given = collateral_feedback.record_feedback(
            session, version_id=version_id, handoff=handoff, rep_email=who.email,
            useful=form.useful.data == "yes", note=form.note.data, now=utcnow())
    except InvalidInput as exc:
        session.rollback()
        flash(" ".join(m for ms in exc.errors.values() for m in ms), "error")
        return redirect(url_for("reps.card", handoff_id=handoff_id, _anchor="collateral"))
    config = settings()
    message = collateral_feedback.author_email(session, given, mail_from=config.mail_from,
                                               base_url=config.base_url)
    session.commit()
    told = _send(message) if message is not None else False
    flash("Thanks: your feedback counts in the collateral's numbers"
          + (" and its author has been told." if told else "."), "success")
    return redirect(url_for("reps.card", handoff_id=handoff_id, _anchor="collateral"))


def _send(message: Any) -> bool:
    config = settings()
    messenger = messenger_for(config.smtp_url, Path(config.instance_path) / "outbox")
    try:
        messenger.send(message)
    except (SendRefused, SendUnknown) as exc:
        log.warning("collateral feedback email to %s not sent: %s", message["To"], exc)
        return False
    finally:
        messenger.close()
    return True
