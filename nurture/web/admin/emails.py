"""Email templates: list, edit subject, HTML and text, preview, where each is used."""

from __future__ import annotations

from nurture.web.admin.blueprint import bp  # noqa: F401  (pages are added here)
