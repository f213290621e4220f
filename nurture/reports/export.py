"""A report as CSV: the same columns and values the JSON answer holds."""

from __future__ import annotations

import csv
import io
from typing import Any

from nurture.reports.figures import Report


def to_csv(report: Report) -> str:
    """A header of the report's columns, then one line per row; an absent figure is empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow([_cell(row.get(column)) for column in report.columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
