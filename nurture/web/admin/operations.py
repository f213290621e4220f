"""The operators' pages (admin role): users and roles, API tokens, integrations, outbound CRM
webhook deliveries, the mail outbox, the queues and workers, the suppression list."""

from __future__ import annotations

from typing import Any

from flask import render_template
from sqlalchemy import select

from nurture.models import Role, User
from nurture.web import db_session
from nurture.web.access import allow
from nurture.web.admin.blueprint import bp


@bp.get("/users")
@allow(Role.ADMIN)
def users() -> Any:
    people = db_session().execute(select(User).order_by(User.role, User.email)).scalars().all()
    return render_template("admin/users.html", users=people)
