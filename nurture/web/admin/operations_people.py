"""The operators' pages for people and API tokens (admin role): create a user, change a
user's role, team and time zone, deactivate, send a password reset link; create, list and
revoke API tokens. The same services as `nurture users` and `nurture tokens`."""

from __future__ import annotations

import logging
import zoneinfo
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from campaigns.messengers import SendRefused, SendUnknown
from nurture.accounts import people
from nurture.accounts.resets import RESET_VALID_FOR, reset_token
from nurture.accounts.services import create_token, create_user, revoke_token
from nurture.clock import utcnow
from nurture.errors import Conflict, DomainError, InvalidInput, NotFound
from nurture.models import ApiToken, Role, User
from nurture.web import db_session, settings
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp
from nurture.web.admin.operations_forms import ActionForm, NewUserForm, TokenForm, UserForm
from nurture.web.admin.operations_pages import render
from nurture.web.auth.mail import send_reset_email

log = logging.getLogger(__name__)

TIMEZONES = sorted(zoneinfo.available_timezones())
"""Offered as suggestions in the time zone field (any IANA name is accepted)."""


@bp.get("/users")
@allow(Role.ADMIN)
def users() -> Any:
    return render_template("admin/users.html", users=people.list_users(db_session()),
                           action=ActionForm())


@bp.route("/users/new", methods=["GET", "POST"])
@allow(Role.ADMIN)
def user_new() -> Any:
    session = db_session()
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            user = create_user(session, form.email.data or "", Role(form.role.data),
                               name=None, now=utcnow())
            people.update_user(session, user.id, name=form.name.data, role=user.role,
                               team=form.team.data, timezone=form.timezone.data or "UTC")
        except (InvalidInput, Conflict) as exc:
            session.rollback()
            _field_errors(form, exc, default="email")
        else:
            session.commit()
            role = user.role.value.replace("_", " ")
            if not form.send_link.data:
                flash(f"{user.email} is created as {role}. They have no password yet: send "
                      "them a reset link from their page when they need to sign in.", "success")
            elif _send_reset_link(user):
                flash(f"{user.email} is created as {role}. A link to choose a password is on "
                      f"its way (it works once, within {_valid_minutes()} minutes).", "success")
            else:
                flash(f"{user.email} is created as {role}, but the email with the link could "
                      "not be sent: send it again from their page.", "warning")
            return redirect(url_for("admin.users"))
    return render_template("admin/operations/user_form.html", form=form, user=None,
                           timezones=TIMEZONES, teams=people.teams(session),
                           action=ActionForm()), 200 if not form.errors else 422


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@allow(Role.ADMIN)
def user_edit(user_id: int) -> Any:
    session = db_session()
    user = _user(user_id)
    form = UserForm(obj=user)
    if request.method == "GET":
        form.role.data = user.role.value
    if form.validate_on_submit():
        try:
            people.update_user(session, user.id, name=form.name.data, role=Role(form.role.data),
                               team=form.team.data, timezone=form.timezone.data or "",
                               acting_user_id=current_user.id)
        except (InvalidInput, Conflict) as exc:
            session.rollback()
            _field_errors(form, exc, default="role")
        else:
            session.commit()
            flash(f"{user.email} is saved.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/operations/user_form.html", form=form, user=user,
                           timezones=TIMEZONES, teams=people.teams(session),
                           action=ActionForm()), 200 if not form.errors else 422


@bp.post("/users/<int:user_id>/deactivate")
@allow(Role.ADMIN)
def user_deactivate(user_id: int) -> Any:
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/reactivate")
@allow(Role.ADMIN)
def user_reactivate(user_id: int) -> Any:
    return _set_active(user_id, True)


@bp.post("/users/<int:user_id>/reset")
@allow(Role.ADMIN)
def user_reset(user_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    user = _user(user_id)
    if not user.is_active:
        flash(f"{user.email} is deactivated: reactivate them first.", "error")
    elif _send_reset_link(user):
        flash(f"A reset link is on its way to {user.email}. It works once, within "
              f"{_valid_minutes()} minutes; their password works until they choose a new one.",
              "success")
    else:
        flash(f"The reset email to {user.email} could not be sent: see the outbox or the "
              "SMTP server's log, and try again.", "error")
    return redirect(url_for("admin.user_edit", user_id=user.id))


@bp.route("/operations/tokens", methods=["GET", "POST"])
@allow(Role.ADMIN)
def operations_tokens() -> Any:
    session = db_session()
    form = TokenForm()
    created = None
    if form.validate_on_submit():
        try:
            record, token = create_token(session, form.name.data or "", Role(form.role.data),
                                         now=utcnow())
        except InvalidInput as exc:
            session.rollback()
            form.name.errors = [*form.name.errors, str(exc)]
        else:
            session.commit()
            created = {"id": record.id, "name": record.name, "token": token}
            form = TokenForm(formdata=None)  # an empty form for the next one
    return render("admin/operations/tokens.html", form=form, created=created,
                           tokens=people.list_tokens(session), action=ActionForm()), (
        422 if form.errors else 200)


@bp.post("/operations/tokens/<int:token_id>/revoke")
@allow(Role.ADMIN)
def operations_token_revoke(token_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db_session()
    if session.get(ApiToken, token_id) is None:
        abort(404)
    record = revoke_token(session, token_id, now=utcnow())
    session.commit()
    flash(f"The token {record.name} ({record.prefix}…) is revoked: the API refuses it from now "
          "on.", "success")
    return redirect(url_for("admin.operations_tokens"))


def _set_active(user_id: int, active: bool) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db_session()
    user = _user(user_id)
    try:
        people.set_active(session, user.id, active, acting_user_id=current_user.id,
                          now=utcnow())
    except Conflict as exc:
        session.rollback()
        flash(_sentence(str(exc)), "error")
    else:
        session.commit()
        flash(f"{user.email} is reactivated: they can sign in again." if active else
              f"{user.email} is deactivated: signed out at their next request, API tokens "
              "revoked.", "success")
    return redirect(url_for("admin.user_edit", user_id=user.id))


def _send_reset_link(user: User) -> bool:
    """The same signed link as the sign-in page's "forgot your password" (nurture.web.auth),
    emailed through the messenger; False if the email could not be handed over."""
    token = reset_token(user, settings().secret_key, now=utcnow())
    link = settings().base_url.rstrip("/") + url_for("auth.reset", token=token)
    try:
        send_reset_email(settings(), user, link)
    except (SendRefused, SendUnknown) as exc:
        log.warning("reset email to user %s not sent: %s", user.id, exc)
        return False
    log.info("reset link sent to user %s by operator %s", user.id, current_user.id)
    return True


def _user(user_id: int) -> User:
    try:
        return people.get_user(db_session(), user_id)
    except NotFound:
        abort(404)


def _field_errors(form: Any, exc: DomainError, *, default: str) -> None:
    """A service's error beside its field (the field it names, else `default`)."""
    errors = getattr(exc, "errors", None) or {default: [_sentence(str(exc))]}
    for name, messages in errors.items():
        field = getattr(form, name, None) or getattr(form, default)
        field.errors = [*field.errors, *messages]


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _valid_minutes() -> int:
    return int(RESET_VALID_FOR.total_seconds() // 60)
