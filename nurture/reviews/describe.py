"""Documents in words: a scoring rule or an SLA term as a sentence a sales approver reads, and
the difference between two versions as what was added, removed and changed."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

RULE_KINDS = (("fit", "Fit"), ("engagement", "Engagement"), ("negative", "Negative"))
"""The lists of rules of a scoring model, in the order the pages show them."""

OPERATORS = {
    "equals": "is", "in": "is one of", "not_in": "is not one of", "contains": "contains",
    "contains_any": "contains any of", "starts_with": "starts with", "matches": "matches",
    "gte": "is at least", "lte": "is at most", "between": "is between", "present": "is set",
    "absent": "is not set",
}


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def points_text(points: Any) -> str:
    number = _value(points)
    return number if number.startswith("-") else f"+{number}"


def condition_text(condition: dict[str, Any]) -> str:
    op = condition.get("op", "")
    words = OPERATORS.get(op, op)
    if op in ("present", "absent"):
        return f"{condition.get('field')} {words}"
    value = condition.get("value")
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return f"{condition.get('field')} {words} {_value(value[0])} and {_value(value[1])}"
    if op == "matches":
        return f"{condition.get('field')} {words} /{value}/"
    return f"{condition.get('field')} {words} {_value(value)}"


def rule_text(kind: str, rule: dict[str, Any]) -> str:
    """`title matches /\\bvp\\b/ → +15`; `page_view or click where url contains /pricing →
    +15, at most 15 a day and 30 a week`."""
    if kind == "fit":
        when = " and ".join(condition_text(c) for c in rule.get("when", []))
        return f"{when} → {points_text(rule.get('points'))}"
    events = rule.get("event", [])
    events = [events] if isinstance(events, str) else events
    text = " or ".join(str(e) for e in events)
    where = rule.get("where") or []
    if where:
        text += " where " + " and ".join(condition_text(c) for c in where)
    text += f" → {points_text(rule.get('points'))}"
    cap = rule.get("cap") or {}
    limits = [f"{_value(cap[k])} a {k.removeprefix('per_')}" for k in ("per_day", "per_week")
              if cap.get(k) is not None]
    if limits:
        text += ", at most " + " and ".join(limits)
    decays = rule.get("decays", kind != "negative")
    if kind == "negative" and decays:
        text += ", decaying"
    if kind == "engagement" and not decays:
        text += ", kept (no decay)"
    if rule.get("include_machine"):
        text += ", machine events included"
    return text


@dataclass(frozen=True)
class Change:
    """One line of a readable diff: `added`, `removed` or `changed`."""

    change: str
    what: str
    before: str | None
    after: str | None


def _rules(document: dict[str, Any] | None) -> dict[str, tuple[str, dict[str, Any]]]:
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for kind, _ in RULE_KINDS:
        for rule in (document or {}).get(kind, []) or []:
            found[str(rule.get("rule"))] = (kind, rule)
    return found


def scoring_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[Change]:
    """What a scoring model changes against another (None: everything is new): its settings,
    then each rule added, removed or changed, by rule name."""
    changes: list[Change] = []
    old = before or {}
    settings = (("name", "Name"), ("half_life_days", "Half-life (days)"),
                ("thresholds.total", "Recycled at a total of"),
                ("thresholds.fit", "with a fit of at least"), ("description", "Description"))
    for path, label in settings:
        was, now = _get(old, path) if before is not None else None, _get(after, path)
        if was != now:
            changes.append(Change("changed" if was is not None else "added", label,
                                  _shown(was), _shown(now)))
    old_rules, new_rules = _rules(before), _rules(after)
    for name, (kind, rule) in new_rules.items():
        if name not in old_rules:
            changes.append(Change("added", f"{kind} rule {name}", None, rule_text(kind, rule)))
        elif old_rules[name] != (kind, rule):
            old_kind, old_rule = old_rules[name]
            changes.append(Change("changed", f"{kind} rule {name}", rule_text(old_kind, old_rule),
                                  rule_text(kind, rule)))
    for name, (kind, rule) in old_rules.items():
        if name not in new_rules:
            changes.append(Change("removed", f"{kind} rule {name}", rule_text(kind, rule), None))
    return changes


def _get(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _shown(value: Any) -> str | None:
    return None if value is None else _value(value)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A document as `path: value` lines (`business_hours.opens: 09:00`,
    `escalation[1].notify: rep, head@x`)."""
    lines: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            lines.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        for index, item in enumerate(value):
            lines.update(flatten(item, f"{prefix}[{index}]"))
    else:
        lines[prefix] = _value(value)
    return lines


def term_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[Change]:
    """What an SLA changes against another, term by term (its paths)."""
    old, new = flatten(before or {}), flatten(after)
    changes = []
    for path, value in new.items():
        if path not in old:
            changes.append(Change("added", path, None, value))
        elif old[path] != value:
            changes.append(Change("changed", path, old[path], value))
    changes.extend(Change("removed", path, value, None)
                   for path, value in old.items() if path not in new)
    return changes


def as_yaml(document: dict[str, Any] | None) -> str:
    if document is None:
        return ""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def text_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[tuple[str, str]]:
    """The documents' YAML, line by line: (`+`, `-` or ` `, line); unchanged stretches kept
    to three lines of context."""
    lines = difflib.unified_diff(as_yaml(before).splitlines(), as_yaml(after).splitlines(),
                                 "approved", "this version", lineterm="", n=3)
    found = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        mark = line[:1] if line[:1] in "+-@" else " "
        found.append((mark, line[1:] if mark != "@" else "…"))
    return found


_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def duration_text(value: Any) -> str:
    """`PT2H30M` (or a timedelta) as `2 h 30 min`; `P1D` as `1 day`; anything else as is."""
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
    else:
        match = _ISO_DURATION.match(str(value))
        if not match or not any(match.groups()):
            return str(value)
        days, hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes else []
    return " ".join(parts) or f"{seconds} s"
