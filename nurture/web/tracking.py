"""Links inside sent emails (CONTRACT.md: Tracking and unsubscribe)."""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request

from campaigns import tracking
from nurture.clock import utcnow
from nurture.engagement import tracking as engagement
from nurture.errors import NotFound
from nurture.tracking.tokens import Signer
from nurture.web import db_session, settings
from nurture.web.engagement import hand_on

bp = Blueprint("tracking", __name__, template_folder="templates")

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1×1 GIF."""

NO_STORE = {"Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer"}


def _signer() -> Signer:
    return Signer(settings().secret_key)


@bp.get("/t/o/<token>")
def open_pixel(token: str) -> Any:
    """The pixel is answered whatever the token: an image must never break an email."""
    message_id = _signer().read_open(token)
    if message_id is not None:
        session = db_session()
        try:
            stored = engagement.record_open(session, message_id, ip=request.remote_addr,
                                            user_agent=request.user_agent.string, now=utcnow())
            session.commit()
            hand_on(stored)
        except NotFound:
            session.rollback()
    return Response(PIXEL, mimetype="image/gif", headers=NO_STORE)


@bp.get("/t/c/<token>")
def click(token: str) -> Any:
    """302 to the URL recorded at send time; a forged or unknown token is 404, never a redirect."""
    decoded = _signer().read_click(token)
    if decoded is None:
        abort(404)
    session = db_session()
    try:
        url, stored = engagement.record_click(session, *decoded, ip=request.remote_addr,
                                              user_agent=request.user_agent.string, now=utcnow())
    except NotFound:
        abort(404)
    session.commit()
    hand_on(stored)
    return _redirect(url)


def _redirect(url: str) -> Response:
    response = redirect(url, code=302)
    response.headers.update(NO_STORE)
    return response


@bp.get("/u/<token>")
def unsubscribe_page(token: str) -> Any:
    """Asks before acting: link scanners follow GETs, and must not unsubscribe anyone."""
    if _signer().read_unsubscribe(token) is None:
        abort(404)
    return render_template("tracking/unsubscribe.html", token=token, done=False), 200, NO_STORE


@bp.post("/u/<token>")
def unsubscribe(token: str) -> Any:
    """RFC 8058 one-click (and the page's button): suppress the address, answer 200."""
    message_id = _signer().read_unsubscribe(token)
    if message_id is None:
        abort(404)
    session = db_session()
    try:
        address = tracking.unsubscribe(session, message_id, now=utcnow())
    except NotFound:
        abort(404)
    session.commit()
    return render_template("tracking/unsubscribe.html", token=token, done=True,
                           address=address), 200, NO_STORE
