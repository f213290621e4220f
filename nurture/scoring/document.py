"""The scoring model document: what a marketer writes and a sales approver signs, validated whole.

Structure is checked by pydantic, so errors name the path (`engagement[2].points`); unknown
fields and operators are refused. A rule is a name, conditions (all must hold) and points:

    fit:         conditions on the lead (title, seniority, industry, company_size, country,
                 email_domain, source, attributes.<key>)
    engagement:  an event type and conditions on the event (url, collateral, source,
                 bounce_class, properties.<key>); points; optional caps per day and per week
    negative:    the same as engagement, for points taken away (unsubscribe, hard bounce…)

Engagement decays with `half_life_days`; a rule with `decays: false` keeps its points.
"""

from __future__ import annotations

import json
import math
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from nurture.fields import forbid_nul_in_json
from nurture.models import EventType

DEFAULT_MODEL_PATH = Path(__file__).with_name("default_model.yaml")
"""The model a fresh installation starts with (docs/SCORING.md)."""

MAX_RULES = 200
"""Most rules in one list of a document."""

MAX_LIST = 1000
"""Most values in one condition's list."""

MAX_POINTS = 1000.0
"""Largest number of points one rule may give or take."""

RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Points = Annotated[float, Field(ge=-MAX_POINTS, le=MAX_POINTS, allow_inf_nan=False, strict=True)]
Flag = Annotated[bool, Field(strict=True)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]

LEAD_FIELDS = ("title", "seniority", "industry", "company_size", "country", "email_domain",
               "source", "company")
"""What a fit condition may look at (plus `attributes.<key>`)."""

EVENT_FIELDS = ("url", "collateral", "source", "bounce_class")
"""What an event condition may look at (plus `properties.<key>`)."""

Operator = Literal["equals", "in", "not_in", "contains", "contains_any", "starts_with",
                   "matches", "gte", "lte", "between", "present", "absent"]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(Closed):
    """`field op value`; text compares case-insensitively; a missing field matches nothing
    but `absent` (and `not_in`)."""

    field: Annotated[str, StringConstraints(pattern=r"^[a-z_]+(\.[A-Za-z0-9_-]{1,64})?$")]
    op: Operator
    value: Any = None
    """Text or a number, or a list of them, as the operator takes (checked below)."""

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        op, value = self.op, self.value
        if op in ("present", "absent"):
            if value is not None:
                raise ValueError(f"`{op}` takes no value")
        elif op in ("in", "not_in", "contains_any"):
            if (not isinstance(value, list) or not 0 < len(value) <= MAX_LIST
                    or not all(_is_text(v) or _is_number(v) for v in value)):
                raise ValueError(f"`{op}` takes a list of 1 to {MAX_LIST} texts or numbers")
        elif op == "between":
            if (not isinstance(value, list) or len(value) != 2
                    or not all(_is_number(v) for v in value) or value[0] > value[1]):
                raise ValueError("`between` takes [low, high] numbers, low <= high")
        elif op in ("gte", "lte"):
            if not _is_number(value):
                raise ValueError(f"`{op}` takes a number")
        elif not _is_text(value):
            raise ValueError(f"`{op}` takes a text value (1 to 500 characters)")
        if op == "matches":
            try:
                re.compile(str(value))
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return self

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(str(self.value), re.IGNORECASE)

    @cached_property
    def texts(self) -> tuple[str, ...]:
        """The value, or each value of a list, as text compares it (trimmed, lower case):
        worked out once per document, not once per lead or event it is checked against."""
        values = self.value if isinstance(self.value, list) else [self.value]
        return tuple(str(v).strip().lower() for v in values)

    @cached_property
    def text_set(self) -> frozenset[str]:
        return frozenset(self.texts)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 500


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_fields(conditions: list[Condition], allowed: tuple[str, ...], prefix: str) -> None:
    for condition in conditions:
        if condition.field not in allowed and not condition.field.startswith(prefix):
            raise ValueError(
                f"unknown field {condition.field!r}; one of {', '.join(allowed)} or {prefix}<key>"
            )


class FitRule(Closed):
    rule: RuleName
    when: Annotated[list[Condition], Field(min_length=1, max_length=20)]
    points: Points
    description: Text | None = None

    @model_validator(mode="after")
    def _lead_fields(self) -> FitRule:
        _check_fields(self.when, LEAD_FIELDS, "attributes.")
        return self


class Cap(Closed):
    """Most points (in absolute value) the rule gives a lead per UTC day and ISO week."""

    per_day: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False, strict=True)] | None = None
    per_week: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False, strict=True)] | None = None


class EventRule(Closed):
    rule: RuleName
    event: Annotated[list[EventType], BeforeValidator(_as_list), Field(min_length=1, max_length=30)]
    """One event type or a list of them."""
    where: Annotated[list[Condition], Field(max_length=20)] = []
    points: Points
    cap: Cap | None = None
    decays: Flag = True
    include_machine: Flag = False
    """Count events flagged as made by a machine (scanners, privacy proxies); off by default."""
    description: Text | None = None

    @model_validator(mode="after")
    def _event_fields(self) -> EventRule:
        _check_fields(self.where, EVENT_FIELDS, "properties.")
        return self

    @cached_property
    def event_types(self) -> frozenset[EventType]:
        return frozenset(self.event)


class NegativeRule(EventRule):
    points: Annotated[float, Field(ge=-MAX_POINTS, lt=0, allow_inf_nan=False, strict=True)]
    decays: Flag = False


class Thresholds(Closed):
    """A lead is recycled to sales when its total >= `total` and its fit >= `fit`."""

    total: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False, strict=True)]
    fit: Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False, strict=True)] = 0


class ScoringDocument(Closed):
    name: Name
    description: Text | None = None
    half_life_days: Annotated[float, Field(gt=0, le=3650, allow_inf_nan=False, strict=True)]
    thresholds: Thresholds
    fit: Annotated[list[FitRule], Field(max_length=MAX_RULES)] = []
    engagement: Annotated[list[EventRule], Field(max_length=MAX_RULES)] = []
    negative: Annotated[list[NegativeRule], Field(max_length=MAX_RULES)] = []

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """PostgreSQL's text and JSONB cannot hold U+0000: refused here, with its path, rather
        than failing on insert (found by schemathesis: a name of one NUL was a 500)."""
        forbid_nul_in_json(data)
        return data

    @model_validator(mode="after")
    def _unique_rule_names(self) -> ScoringDocument:
        seen: set[str] = set()
        for rule in (*self.fit, *self.engagement, *self.negative):
            if rule.rule in seen:
                raise ValueError(f"rule name {rule.rule!r} is used twice")
            seen.add(rule.rule)
        return self

    def as_data(self) -> dict[str, Any]:
        """The document as stored and exported (defaults left out; round-trips)."""
        return self.model_dump(mode="json", exclude_defaults=True)


def parse_document(data: Any) -> ScoringDocument:
    """Validate a decoded document (raises pydantic's ValidationError, paths included)."""
    return ScoringDocument.model_validate(data)


def load_text(raw: bytes | str, *, yaml_format: bool) -> Any:
    """Decode a YAML or JSON document (ValueError on bad syntax); YAML 1.1 surprises are the
    caller's risk: `yes` is a boolean, so quote event names that look like one."""
    try:
        return yaml.safe_load(raw) if yaml_format else json.loads(raw)
    except (yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"not valid {'YAML' if yaml_format else 'JSON'}: {exc}") from None


def default_document() -> ScoringDocument:
    return parse_document(yaml.safe_load(DEFAULT_MODEL_PATH.read_text(encoding="utf-8")))
