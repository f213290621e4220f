"""The collateral library: files and links, their versions, sales approval, use and numbers."""

from __future__ import annotations

from nurture.web.admin.blueprint import bp  # noqa: F401  (pages are added here)
