"""The scoring model's editor as a form: rules as table rows, back and forth to the document.

The form's fields are named `<kind>-<row>-<column>` (`engagement-2-points`), so an error of
the validator (the API's: `engagement[2].points`) lands on its field. A condition is one line,
`field op value`: `title matches \\b(vp|director)\\b`, `industry in [software, saas]`,
`company_size between [50, 5000]`, `url contains /pricing`, `email_domain present`.
Adding, removing and moving rows are buttons of the same form (`op`), so the table works
without JavaScript; scoring.js does the same in the page.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from typing import Any

from nurture.reviews.describe import RULE_KINDS

COLUMNS = {
    "fit": ("rule", "when", "points", "description"),
    "engagement": ("rule", "event", "where", "points", "cap_day", "cap_week", "decays",
                   "include_machine", "description"),
    "negative": ("rule", "event", "where", "points", "cap_day", "cap_week", "decays",
                 "include_machine", "description"),
}
"""Each kind's columns, as the form names them."""

MAX_ROWS = 200

SETTINGS = ("name", "description", "half_life_days", "threshold_total", "threshold_fit")


@dataclass
class Table:
    """The editor's state: the settings and each kind's rows (as typed), and the errors."""

    settings: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    """Field name (`fit-0-when`, `threshold_total`, `document`) → messages."""

    def kinds(self) -> list[tuple[str, str, list[dict[str, str]]]]:
        return [(kind, label, self.rows.get(kind, [])) for kind, label in RULE_KINDS]

    def error_count(self) -> int:
        return sum(len(m) for m in self.errors.values())


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value_text(value: Any, *, in_list: bool = False) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(v, in_list=True) for v in value) + "]"
    if isinstance(value, int | float):
        return _number(value)
    text = str(value)
    # quoted where it would otherwise read as a list, a number or two items
    if (in_list and ("," in text or text != text.strip())) or text.startswith(("[", '"')) \
            or isinstance(_parse_number(text), int | float):
        return '"' + text + '"'
    return text


def condition_line(condition: dict[str, Any]) -> str:
    parts = [str(condition.get("field", "")), str(condition.get("op", ""))]
    if condition.get("value") is not None:
        parts.append(_value_text(condition["value"]))
    return " ".join(parts)


def from_document(document: dict[str, Any]) -> Table:
    """The editor's table for a stored document."""
    thresholds = document.get("thresholds") or {}
    table = Table(settings={
        "name": str(document.get("name", "")),
        "description": str(document.get("description") or ""),
        "half_life_days": _number(document.get("half_life_days")),
        "threshold_total": _number(thresholds.get("total")),
        "threshold_fit": _number(thresholds.get("fit", 0)),
    })
    for kind, _ in RULE_KINDS:
        rows = []
        for rule in document.get(kind, []) or []:
            row = {"rule": str(rule.get("rule", "")), "points": _number(rule.get("points")),
                   "description": str(rule.get("description") or "")}
            if kind == "fit":
                row["when"] = "\n".join(condition_line(c) for c in rule.get("when", []))
            else:
                events = rule.get("event", [])
                row["event"] = ", ".join([events] if isinstance(events, str) else events)
                row["where"] = "\n".join(condition_line(c) for c in rule.get("where", []) or [])
                cap = rule.get("cap") or {}
                row["cap_day"] = _number(cap.get("per_day"))
                row["cap_week"] = _number(cap.get("per_week"))
                row["decays"] = "y" if rule.get("decays", kind != "negative") else ""
                row["include_machine"] = "y" if rule.get("include_machine") else ""
            rows.append(row)
        table.rows[kind] = rows
    return table


def from_form(form: Any) -> Table:
    """The table as posted (rows in their posted order; `<kind>-count` says how many)."""
    table = Table(settings={name: str(form.get(name, "")) for name in SETTINGS})
    for kind, _ in RULE_KINDS:
        try:
            count = min(int(form.get(f"{kind}-count", "0")), MAX_ROWS)
        except ValueError:
            count = 0
        table.rows[kind] = [
            {column: str(form.get(f"{kind}-{index}-{column}", "")) for column in COLUMNS[kind]}
            for index in range(max(count, 0))
        ]
    return table


def apply(table: Table, op: str) -> bool:
    """Add, remove or move a row (`add:fit`, `remove:fit:2`, `up:engagement:1`,
    `down:negative:0`); False if `op` is none of these."""
    parts = op.split(":")
    if len(parts) == 2 and parts[0] == "add" and parts[1] in COLUMNS:
        rows = table.rows[parts[1]]
        if len(rows) < MAX_ROWS:
            rows.append({column: "" for column in COLUMNS[parts[1]]}
                        | ({"decays": "y"} if parts[1] == "engagement" else {}))
        return True
    if len(parts) != 3 or parts[1] not in COLUMNS or not parts[2].isdigit():
        return False
    action, rows, index = parts[0], table.rows[parts[1]], int(parts[2])
    if not 0 <= index < len(rows):
        return action in ("remove", "up", "down")
    if action == "remove":
        rows.pop(index)
    elif action == "up" and index > 0:
        rows[index - 1], rows[index] = rows[index], rows[index - 1]
    elif action == "down" and index < len(rows) - 1:
        rows[index + 1], rows[index] = rows[index], rows[index + 1]
    elif action not in ("up", "down"):
        return False
    return True


def _parse_number(text: str) -> Any:
    """A number as typed; what is not one is passed on as text, for the validator to name."""
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def _parse_item(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    number = _parse_number(text)
    return number if isinstance(number, int | float) else text


def _parse_value(text: str) -> Any:
    """`[a, b, "c, d"]` is a list (texts stay texts: no YAML booleans for `NO`), a number is
    a number, `"…"` is a text as written, anything else is the text itself."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        if not inner:
            return []
        return [_parse_item(item) for item in next(csv.reader([inner], skipinitialspace=True))]
    number = _parse_number(text)
    if isinstance(number, int | float):
        return number
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def parse_conditions(text: str) -> list[dict[str, Any]]:
    conditions = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        parts = line.split(None, 2)
        condition: dict[str, Any] = {"field": parts[0], "op": parts[1] if len(parts) > 1 else ""}
        if len(parts) > 2:
            condition["value"] = _parse_value(parts[2])
        conditions.append(condition)
    return conditions


def to_document(table: Table) -> dict[str, Any]:
    """The document the table describes, for the validator (which names what is wrong)."""
    s = table.settings
    document: dict[str, Any] = {"name": s.get("name", "").strip()}
    if s.get("description", "").strip():
        document["description"] = s["description"].strip()
    document["half_life_days"] = _parse_number(s.get("half_life_days", ""))
    document["thresholds"] = {"total": _parse_number(s.get("threshold_total", ""))}
    if s.get("threshold_fit", "").strip():
        document["thresholds"]["fit"] = _parse_number(s["threshold_fit"])
    for kind, _ in RULE_KINDS:
        rules = []
        for row in table.rows.get(kind, []):
            rule: dict[str, Any] = {"rule": row.get("rule", "").strip()}
            if kind == "fit":
                rule["when"] = parse_conditions(row.get("when", ""))
            else:
                rule["event"] = [e.strip() for e in re.split(r"[,\s]+", row.get("event", ""))
                                 if e.strip()]
                where = parse_conditions(row.get("where", ""))
                if where:
                    rule["where"] = where
            rule["points"] = _parse_number(row.get("points", ""))
            if kind != "fit":
                cap = {key: _parse_number(row.get(column, ""))
                       for key, column in (("per_day", "cap_day"), ("per_week", "cap_week"))
                       if row.get(column, "").strip()}
                if cap:
                    rule["cap"] = cap
                rule["decays"] = bool(row.get("decays"))
                if row.get("include_machine"):
                    rule["include_machine"] = True
            if row.get("description", "").strip():
                rule["description"] = row["description"].strip()
            rules.append(rule)
        document[kind] = rules
    return document


PATH = re.compile(r"^(fit|engagement|negative)\[(\d+)\](?:\.(\w+))?(?:\[(\d+)\])?(?:\.(\w+))?")

COLUMN_OF = {"rule": "rule", "when": "when", "where": "where", "event": "event",
             "points": "points", "description": "description", "decays": "decays",
             "include_machine": "include_machine"}


def place_errors(table: Table, errors: dict[str, list[str]]) -> None:
    """Put each of the validator's errors (by path) on the field it is about."""
    for path, messages in errors.items():
        target = _field_of(path)
        shown = [f"{m} ({path})" if path else m for m in messages]
        table.errors.setdefault(target, []).extend(shown)


def _field_of(path: str) -> str:
    if path in ("name", "description", "half_life_days"):
        return path
    if path.startswith("thresholds"):
        return "threshold_fit" if path.endswith(".fit") else "threshold_total"
    match = PATH.match(path)
    if not match:
        return "document"
    kind, row, attribute, _, sub = match.groups()
    prefix = f"{kind}-{row}-"
    if attribute == "cap":
        return prefix + ("cap_week" if sub == "per_week" else "cap_day")
    if attribute in COLUMN_OF:
        return prefix + COLUMN_OF[attribute]
    return prefix + ("when" if kind == "fit" else "where")
