"""The marketers' admin: server-rendered pages on the same services as the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import select

from campaigns.overview import list_sequences
from nurture.clock import utcnow
from nurture.models import Role, User
from nurture.reports import figures
from nurture.reports.digest import key_numbers
from nurture.reports.params import Period, ReportQuery
from nurture.web import db_session
from nurture.web.access import allow, require_declared_roles
from nurture.web.layout import STAFF
from nurture.web.security import protect

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
protect(bp)
require_declared_roles(bp)

DASHBOARD_DAYS = 30
"""The dashboard's period: the last this many whole days, today included."""

REQUALIFICATION_DAYS = 180
"""The sequence list's requalification rate counts the leads enrolled in this many days."""

NOTHING = ("0", "0.00", "n/a")
"""How the digest's numbers read when nothing happened."""


@bp.get("/")
@allow(*STAFF)
def dashboard() -> Any:
    today = utcnow().date()
    period = Period(today - timedelta(days=DASHBOARD_DAYS - 1), today)
    numbers = key_numbers(db_session(), period)
    empty = all(n.value in NOTHING and n.previous in NOTHING for n in numbers)
    return render_template("admin/dashboard.html", numbers=numbers, period=period,
                           previous=period.previous(), empty=empty)


@bp.get("/sequences")
@allow(Role.MARKETER, Role.ADMIN)
def sequences() -> Any:
    session, today = db_session(), utcnow().date()
    period = Period(today - timedelta(days=REQUALIFICATION_DAYS - 1), today)
    report = figures.sequences(session, ReportQuery(period, None))
    requalified = {r["sequence"]: (r["requalified"], r["enrolled"])
                   for r in report.rows if r["step"] == ""}
    return render_template("admin/sequences.html", sequences=list_sequences(session, today=today),
                           requalified=requalified, requalification_days=REQUALIFICATION_DAYS)


@bp.get("/users")
@allow(Role.ADMIN)
def users() -> Any:
    people = db_session().execute(select(User).order_by(User.role, User.email)).scalars().all()
    return render_template("admin/users.html", users=people)
