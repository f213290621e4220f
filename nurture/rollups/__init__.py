"""Report rollups, kept up to date by the services that write the facts.

Each function here is called in the transaction that stores the fact it counts (a rejection,
an enrollment, an email handed over, a handled engagement event, a handoff and its answer,
an SLA step, a CRM outcome), so a report reads counters and journeys and never the raw
engagement table. `nurture.reports.rebuild` recomputes both tables from the facts; a test
checks that the two agree.

This package sits just above the models, below every service that calls it; it knows
nothing of the reports that read what it writes.
"""

from nurture.rollups.counts import add_counts, count
from nurture.rollups.journeys import (
    HUMAN_ENGAGEMENT,
    SentEmail,
    answered,
    emails_sent,
    engaged,
    enrolled,
    entered_nurture,
    escalated,
    exited,
    exits,
    outcome,
    recycled,
    sla_closed,
    team_of,
)

__all__ = [
    "HUMAN_ENGAGEMENT",
    "SentEmail",
    "add_counts",
    "answered",
    "count",
    "emails_sent",
    "engaged",
    "enrolled",
    "entered_nurture",
    "escalated",
    "exited",
    "exits",
    "outcome",
    "recycled",
    "sla_closed",
    "team_of",
]
