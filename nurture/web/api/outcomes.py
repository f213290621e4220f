"""What the CRM reports happened to leads after a handoff (CONTRACT: POST /api/v1/outcomes)."""

from __future__ import annotations

from typing import Any

from nurture.clock import utcnow
from nurture.handoffs.outcomes import record_outcomes
from nurture.handoffs.schemas import OutcomesIn
from nurture.models import Role
from nurture.web import db_session
from nurture.web.api import bp, json_body, requires


@bp.post("/outcomes")
@requires(Role.ADMIN, Role.MARKETER)
def report_outcomes() -> Any:
    """200 once the batch is committed: one answer per item, in order (an unknown lead or a
    repeated id is answered for that item; the rest of the batch is recorded)."""
    body = json_body(OutcomesIn)
    session = db_session()
    results = record_outcomes(session, [item.reported() for item in body.outcomes], now=utcnow())
    session.commit()
    counts = {"recorded": 0, "duplicate": 0, "unknown_lead": 0, "ambiguous_lead": 0}
    for result in results:
        counts[result.status] += 1
    return {
        "recorded": counts["recorded"],
        "duplicates": counts["duplicate"],
        "unknown_leads": counts["unknown_lead"] + counts["ambiguous_lead"],
        "results": [result.as_dict() for result in results],
    }
