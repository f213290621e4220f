"""Evaluating a scoring document: which fit rules a lead meets, which rules an event meets.

Pure functions over plain values (no session), shared by live scoring and backtests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nurture.models import EventType, Lead
from nurture.scoring.document import Condition, EventRule, ScoringDocument

FIT = "fit"
ENGAGEMENT = "engagement"
NEGATIVE = "negative"


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What an event rule may look at."""

    id: int
    lead_id: int
    type: EventType
    occurred_at: datetime
    is_machine: bool = False
    url: str | None = None
    collateral: str | None = None
    source: str | None = None
    bounce_class: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None

    def get(self, name: str) -> Any:
        if name.startswith("properties."):
            return (self.properties or {}).get(name.removeprefix("properties."))
        return getattr(self, name)


def lead_facts(lead: Lead) -> dict[str, Any]:
    """What a fit rule may look at; `seniority` is the lead's `attributes.seniority`."""
    attributes = lead.attributes or {}
    return {
        "title": lead.title,
        "seniority": attributes.get("seniority"),
        "industry": lead.industry,
        "company_size": lead.company_size,
        "country": lead.country,
        "email_domain": lead.email.rpartition("@")[2] if lead.email else None,
        "source": lead.source,
        "company": lead.company,
        "attributes": attributes,
    }


def _lead_value(facts: dict[str, Any], name: str) -> Any:
    if name.startswith("attributes."):
        return (facts.get("attributes") or {}).get(name.removeprefix("attributes."))
    return facts.get(name)


def _text(value: Any) -> str:
    return str(value).strip().lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def holds(condition: Condition, value: Any) -> bool:
    """Whether `value` meets the condition; text compares case-insensitively."""
    op, expected = condition.op, condition.value
    if op == "absent":
        return value is None or value == ""
    if value is None or value == "":
        return op == "not_in"
    if op == "present":
        return True
    if op in ("gte", "lte", "between"):
        number = _number(value)
        if number is None:
            return False
        if op == "gte":
            return number >= expected
        if op == "lte":
            return number <= expected
        return expected[0] <= number <= expected[1]
    text = _text(value)
    if op == "equals":
        return text == condition.texts[0]
    if op == "in":
        return text in condition.text_set
    if op == "not_in":
        return text not in condition.text_set
    if op == "contains":
        return condition.texts[0] in text
    if op == "contains_any":
        return any(v in text for v in condition.texts)
    if op == "starts_with":
        return text.startswith(condition.texts[0])
    if op == "matches":
        return condition.pattern.search(str(value)) is not None
    raise AssertionError(f"unknown operator {op}")  # the document refuses it first


def fit_points(document: ScoringDocument, facts: dict[str, Any]) -> dict[str, float]:
    """The fit rules the lead meets, with their points."""
    return {
        rule.rule: rule.points
        for rule in document.fit
        if all(holds(c, _lead_value(facts, c.field)) for c in rule.when)
    }


def matching_rules(
    document: ScoringDocument, event: EventFacts
) -> list[tuple[EventRule, str]]:
    """The engagement and negative rules the event meets, each with its kind."""
    found: list[tuple[EventRule, str]] = []
    for kind, rules in ((ENGAGEMENT, document.engagement), (NEGATIVE, document.negative)):
        for rule in rules:
            if event.type not in rule.event_types:
                continue
            if event.is_machine and not rule.include_machine:
                continue
            if all(holds(c, event.get(c.field)) for c in rule.where):
                found.append((rule, kind))
    return found


def needs_collateral(document: ScoringDocument) -> bool:
    """Whether any rule looks at the collateral of an event (it costs a join)."""
    return any(c.field == "collateral"
               for rule in (*document.engagement, *document.negative) for c in rule.where)
