"""The sales approvers' queue: collateral versions, scoring drafts and SLA drafts waiting."""

from __future__ import annotations

from nurture.web.admin.blueprint import bp  # noqa: F401  (pages are added here)
