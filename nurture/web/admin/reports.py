"""Reports: every revenue-loop number as a chart, a table beside it and a CSV download."""

from __future__ import annotations

from nurture.web.admin.blueprint import bp  # noqa: F401  (pages are added here)
