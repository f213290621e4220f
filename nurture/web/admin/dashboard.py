"""The dashboard: the home page of marketers and approvers, the few numbers both teams watch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template

from nurture.clock import utcnow
from nurture.reports.digest import key_numbers
from nurture.reports.params import Period
from nurture.web import db_session
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp
from nurture.web.layout import STAFF

DASHBOARD_DAYS = 30
"""The dashboard's period: the last this many whole days, today included."""

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
