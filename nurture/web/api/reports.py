"""The numbers both teams know: `GET /api/v1/reports/{name}`, as JSON or CSV."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from nurture.clock import utcnow
from nurture.models import Role
from nurture.reports.export import to_csv
from nurture.reports.figures import REPORTS, build_report, definition
from nurture.reports.params import parse_query
from nurture.web import db_session
from nurture.web.api import bp, requires
from nurture.web.problems import ProblemError

READERS = (Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER)


@bp.get("/reports")
@requires(*READERS)
def list_reports() -> Any:
    return {"reports": [{"name": name, "description": d.description, "group_by": list(d.groupings)}
                        for name, d in REPORTS.items()]}


@bp.get("/reports/<name>")
@requires(*READERS)
def get_report(name: str) -> Any:
    report_definition = definition(name)
    wanted = request.args.get("format", "json")
    if wanted not in ("json", "csv"):
        raise ProblemError(422, "invalid report query", errors={"format": ["json or csv"]})
    query = parse_query(request.args, today=utcnow().date(), groupings=report_definition.groupings)
    report = build_report(db_session(), name, query)
    if wanted == "csv":
        filename = f"{name}_{query.period.start}_{query.period.end}.csv"
        return Response(to_csv(report), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return {"report": name, "from": query.period.start.isoformat(),
            "to": query.period.end.isoformat(), "group_by": query.group_by,
            "columns": report.columns, "rows": report.rows}
