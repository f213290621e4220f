"""The reps' pages: the inbox of recycled leads and the lead card, made for a phone as much as a
desk, on the same handoff services as the API."""

from __future__ import annotations

from flask import Blueprint

from nurture.web.access import require_declared_roles
from nurture.web.security import protect

bp = Blueprint("reps", __name__, url_prefix="/reps", template_folder="templates")
protect(bp)
require_declared_roles(bp)

from nurture.web.reps import views  # noqa: E402,F401  (the pages, added to `bp`)
