"""What every browser page shares: the base template, the stylesheet, the navigation by role.

The base template is `templates/layout/base.html`; each blueprint's pages extend it from their
own folder. The stylesheet is a static file of the project (no CDN, no inline style: the
Content-Security-Policy forbids both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, redirect, request, url_for
from flask_login import current_user

from nurture.models import Role
from nurture.web.access import home_for, public, require_declared_roles
from nurture.web.security import protect

bp = Blueprint("layout", __name__, template_folder="templates", static_folder="static",
               static_url_path="/assets")
protect(bp)
require_declared_roles(bp)

STAFF = (Role.MARKETER, Role.SALES_APPROVER, Role.ADMIN)
"""Roles that use the admin (reps get their own pages)."""


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    roles: tuple[Role, ...]


MARKETING = (Role.MARKETER, Role.ADMIN)

NAVIGATION = (
    NavItem("admin.dashboard", "Dashboard", STAFF),
    NavItem("admin.approvals", "Approvals", (Role.SALES_APPROVER, Role.ADMIN)),
    NavItem("admin.sequences", "Sequences", MARKETING),
    NavItem("admin.templates", "Templates", MARKETING),
    NavItem("admin.collateral", "Collateral", STAFF),
    NavItem("admin.leads", "Leads", STAFF),
    NavItem("admin.scoring", "Scoring & SLA", STAFF),
    NavItem("admin.reports", "Reports", STAFF),
    NavItem("reps.inbox", "Inbox", (Role.REP,)),
    NavItem("admin.operations", "Operations", (Role.ADMIN,)),
    NavItem("admin.users", "Users", (Role.ADMIN,)),
)
"""The main navigation; each user sees the items of their role whose page exists."""


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    from flask import current_app

    items: list[dict[str, Any]] = []
    if current_user.is_authenticated:
        for item in NAVIGATION:
            if current_user.role in item.roles and item.endpoint in current_app.view_functions:
                items.append({"url": url_for(item.endpoint), "label": item.label,
                              "current": _is_current(item.endpoint)})
    return {"navigation": items}


@bp.get("/")
@public
def index() -> Any:
    """The address `nurture up` prints: the sign-in page, or one's home when signed in."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    return redirect(url_for("auth.sign_in"))


SECTIONS = {"admin.templates": "admin.template", "admin.collateral": "admin.collateral_",
            "admin.leads": "admin.lead", "admin.sequences": "admin.sequence",
            "admin.scoring": "admin.scoring", "admin.reports": "admin.report",
            "admin.approvals": "admin.approval", "admin.operations": "admin.operations",
            "admin.users": "admin.user_",
            "reps.inbox": "reps."}
"""A navigation item stays current on its section's inner pages: endpoints with this prefix."""


def _is_current(endpoint: str) -> bool:
    here = request.endpoint or ""
    return here == endpoint or here.startswith(SECTIONS.get(endpoint, "\0"))
