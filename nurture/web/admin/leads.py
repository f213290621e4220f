"""Leads: search and filter, the lead page with its timeline, bulk actions, CSV import."""

from __future__ import annotations

from nurture.web.admin.blueprint import bp  # noqa: F401  (pages are added here)
