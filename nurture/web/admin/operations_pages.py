"""What every operators' page renders with: times in the operator's own time zone, and how
long ago something happened."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template
from flask_login import current_user

from nurture.clock import utcnow
from nurture.models import User
from nurture.web import db_session


def render(template: str, **context: Any) -> str:
    """`render_template` with `when(at)` (a time in the operator's zone) and `ago(at)`."""
    zone = _zone()
    return render_template(template, when=lambda at: when(at, zone), ago=ago, **context)


def when(at: datetime | None, zone: ZoneInfo) -> str:
    if at is None:
        return "—"
    return at.astimezone(zone).strftime("%d %b %Y, %H:%M:%S %Z")


def ago(at: datetime | None) -> str:
    if at is None:
        return "never"
    seconds = int((utcnow() - at).total_seconds())
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now" if seconds >= 0 else "in the future"


def _zone() -> ZoneInfo:
    user = db_session().get(User, current_user.id)
    try:
        return ZoneInfo(user.timezone if user else "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")
