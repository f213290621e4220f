"""Sign-in, sign-out and password reset for the browser pages (Flask-Login sessions)."""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from campaigns.messengers import SendRefused, SendUnknown
from nurture.accounts.resets import (
    password_fingerprint,
    reset_token,
    set_password,
    user_for_reset,
)
from nurture.accounts.services import check_password, find_user
from nurture.clock import utcnow
from nurture.errors import InvalidInput
from nurture.models import Role, User
from nurture.web import db_session, settings
from nurture.web.access import SignedIn, allow, home_for, public, require_declared_roles, safe_next
from nurture.web.auth.forms import NewPasswordForm, ResetRequestForm, SignInForm
from nurture.web.auth.mail import send_reset_email
from nurture.web.security import SIGN_IN_LIMIT, limiter, login_manager, protect

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth", template_folder="templates")
protect(bp)
require_declared_roles(bp)
_post_only = limiter.shared_limit(SIGN_IN_LIMIT, scope="sign-in",
                                  exempt_when=lambda: request.method != "POST")


@login_manager.user_loader
def _load_user(session_id: str) -> SignedIn | None:
    user_id, _, fingerprint = session_id.partition(".")
    if not user_id.isdigit():
        return None
    user = db_session().get(User, int(user_id))
    if user is None or not user.is_active or password_fingerprint(user) != fingerprint:
        return None  # gone, deactivated, or the password changed since: signed out
    return SignedIn.of(user, fingerprint)


@bp.route("/sign-in", methods=["GET", "POST"])
@public
@_post_only
def sign_in() -> Any:
    form = SignInForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        if current_user.is_authenticated:
            return redirect(safe_next(form.next.data) or home_for(current_user.role))
    if form.validate_on_submit():
        user = check_password(db_session(), form.email.data or "", form.password.data or "")
        if user is None:
            form.password.errors.append("That email and password do not match an active account.")
        else:
            session.clear()  # nothing of the anonymous session carries over
            login_user(SignedIn.of(user, password_fingerprint(user)))
            return redirect(safe_next(form.next.data) or home_for(user.role))
    return render_template("auth/sign_in.html", form=form), 200 if not form.errors else 422


@bp.post("/sign-out")
@allow(*Role)
def sign_out() -> Any:
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.sign_in"))


@bp.get("/account")
@allow(*Role)
def account() -> Any:
    return render_template("auth/account.html")


@bp.route("/reset", methods=["GET", "POST"])
@public
@_post_only
def request_reset() -> Any:
    form = ResetRequestForm()
    if form.validate_on_submit():
        _send_reset(form.email.data or "")
        flash("If an account exists for that address, an email with a reset link is on its way. "
              "The link works once, within an hour.", "info")
        return redirect(url_for("auth.sign_in"))
    return render_template("auth/request_reset.html", form=form), 200 if not form.errors else 422


@bp.route("/reset/<token>", methods=["GET", "POST"])
@public
@_post_only
def reset(token: str) -> Any:
    db = db_session()
    try:
        user = user_for_reset(db, token, settings().secret_key, now=utcnow())
    except InvalidInput as exc:
        message = str(exc)
        flash(f"{message[:1].upper()}{message[1:]}: ask for a new one below.", "error")
        return redirect(url_for("auth.request_reset"))
    form = NewPasswordForm()
    if form.validate_on_submit():
        set_password(db, user, form.password.data or "")
        db.commit()
        logout_user()
        session.clear()
        flash("Your password is changed. Sign in with it.", "success")
        return redirect(url_for("auth.sign_in"))
    return render_template("auth/reset.html", form=form, email=user.email), (
        200 if not form.errors else 422)


def _send_reset(email: str) -> None:
    """Email a reset link if the address belongs to an active user; the same answer either
    way, so the form tells no one which addresses have accounts."""
    try:
        user = find_user(db_session(), email)
    except InvalidInput:
        return
    token = reset_token(user, settings().secret_key, now=utcnow())
    link = settings().base_url.rstrip("/") + url_for("auth.reset", token=token)
    try:
        send_reset_email(settings(), user, link)
    except (SendRefused, SendUnknown) as exc:
        log.warning("password reset email to user %s not sent: %s", user.id, exc)
        return
    log.info("password reset link sent to user %s", user.id)
