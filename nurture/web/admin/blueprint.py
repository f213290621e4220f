"""The admin blueprint itself; each area of the admin adds its pages to it from its own module."""

from __future__ import annotations

from flask import Blueprint

from nurture.web.access import require_declared_roles
from nurture.web.security import protect

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
protect(bp)
require_declared_roles(bp)
