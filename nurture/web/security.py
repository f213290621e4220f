"""The browser pages' protections: sessions, CSRF, sign-in rate limits and security headers.

Headers are set per blueprint rather than app-wide (as Flask-Talisman would): the same app
serves JSON to integrations and the public unsubscribe page with its own inline style, and the
admin's strict policy is meant for the admin's pages.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from nurture.config import Settings

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
"""No inline script or style, nothing from another origin, never framed."""

SIGN_IN_LIMIT = "10 per minute;60 per hour"
"""Sign-in and reset requests a single address may post (Flask-Limiter's notation)."""

csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[],
                  headers_enabled=True, strategy="moving-window")


def init_app(app: Flask, settings: Settings) -> None:
    secure = settings.base_url.startswith("https://")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # a Secure cookie is never sent over plain http: only where the site is https
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_NAME="nurture_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the session: a long form is not lost
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_KEY_PREFIX="nurture-limits",
    )
    app.config.setdefault("WTF_CSRF_SSL_STRICT", secure)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = "Sign in to see that page."
    login_manager.session_protection = "strong"
    limiter.init_app(app)
    # the API and the webhooks authenticate every request themselves; no browser session
    from nurture.web import api, tracking, webhooks

    for exempt in (api.bp, webhooks.bp, tracking.bp):
        csrf.exempt(exempt)


ERROR_TITLES = {
    400: "That form had expired or was not sent from this site",
    403: "Your role cannot open this page",
    404: "There is nothing at this address",
    429: "Too many attempts",
}
"""What a browser page says for an error, above the error's own description."""


def _error_page(exc: HTTPException) -> Any:
    code = exc.code or 500
    return render_template("layout/error.html", code=code,
                           title=ERROR_TITLES.get(code, exc.name), detail=exc.description), code


def protect(bp: Blueprint) -> None:
    """The security headers on every answer of a browser blueprint, and its errors as pages
    of the layout."""
    bp.register_error_handler(HTTPException, _error_page)

    @bp.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        # a page may set a policy of its own (an email preview framed by the admin's page)
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers["X-Content-Type-Options"] = "nosniff"
        headers.setdefault("X-Frame-Options", "DENY")
        headers["Referrer-Policy"] = "same-origin"  # the reset link never leaves in a Referer
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
        headers.setdefault("Cache-Control", "no-store")
        if request.is_secure:
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response
