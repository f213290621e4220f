"""The scoring model and the SLA: drafts, backtests, approval and activation."""

from __future__ import annotations

from nurture.web.admin.blueprint import bp  # noqa: F401  (pages are added here)
