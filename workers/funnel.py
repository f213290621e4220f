"""The job that stores the funnel's touched closed months again (docs/REPORTS.md).

Enqueued by the dispatcher's `funnel_months` task when a closed cohort month was touched
since its figures were stored; one at a time (a fixed job id). Safe to repeat or to run
beside another: each month is stored from one snapshot, and a second refresh of the same
month fails to serialize and leaves it.
"""

from __future__ import annotations

from datetime import date

from nurture.config import load_settings
from nurture.reports.funnel_months import refresh
from workers import jobs


def refresh_funnel_months(today: str) -> str:
    """Store every touched month before the month of `today` (the dispatcher's ISO date)."""
    settings = load_settings()
    database = jobs.process_database(settings.database_url)
    stored = refresh(database, today=date.fromisoformat(today))
    return f"stored the funnel of {stored} closed cohort months"
