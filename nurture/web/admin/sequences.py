"""Sequences: the list, and the builder on the same sequence documents as the API and `campaigns/`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template

from campaigns.overview import list_sequences
from nurture.clock import utcnow
from nurture.models import Role
from nurture.reports import figures
from nurture.reports.params import Period, ReportQuery
from nurture.web import db_session
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp

REQUALIFICATION_DAYS = 180
"""The sequence list's requalification rate counts the leads enrolled in this many days."""


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
