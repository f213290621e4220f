"""Sequence documents: the YAML/JSON a marketer writes, validated whole.

Structure is checked by pydantic (error paths like `stages[1].steps[2].wait.duration`);
references that need the outside world (templates that compile in the sandbox, collateral
that exists, branch targets) are checked by `check_document`, which names paths the same way.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import isodate
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from nurture.fields import forbid_nul_in_json, normalize_country, normalize_timezone
from nurture.models import RejectionReason

MAX_WAIT = timedelta(days=400)
"""Longest single wait: a little over a year (a yearly check-in); more is surely a typo."""

MAX_STEPS = 200
"""Most steps in one sequence document."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


def parse_duration(value: str) -> timedelta | isodate.Duration:
    """An ISO 8601 duration (P3D, PT10S, P3M…); months and years are calendar-aware."""
    try:
        duration = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        raise ValueError(f"{value!r} is not an ISO 8601 duration such as P3D or PT10M") from None
    reference = datetime(2000, 1, 1)
    span = (reference + duration) - reference
    if span <= timedelta(0):
        raise ValueError(f"{value!r} must be longer than zero")
    if span > MAX_WAIT:
        raise ValueError(f"{value!r} is longer than {MAX_WAIT.days} days")
    return duration


def _duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Until(Closed):
    """Wait until the next such weekday and time in the lead's time zone."""

    weekday: Weekday
    time: ClockTime


class EmailStep(Closed):
    type: Literal["email"]
    id: Key
    template: Key
    subject: Annotated[str, StringConstraints(min_length=1, max_length=998)] | None = None
    """Overrides the template's own subject.txt; a Jinja2 template too."""
    collateral: list[Key] = Field(default_factory=list, max_length=10)


class WaitStep(Closed):
    type: Literal["wait"]
    id: Key
    duration: Duration | None = None
    until: Until | None = None

    @model_validator(mode="after")
    def _one_of(self) -> WaitStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give either `duration` (ISO 8601) or `until` (weekday and time)")
        return self


class BranchCondition(Closed):
    """True when the lead engaged with an earlier email step within the window."""

    engaged: Literal["open", "click", "any"]
    step: Key
    collateral: Key | None = None
    within: Duration


class BranchStep(Closed):
    type: Literal["branch"]
    id: Key
    condition: BranchCondition
    then: Key
    otherwise: Key | None = Field(default=None, alias="else")
    """Where to go when the condition stays false; None means the next step."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ExitStep(Closed):
    type: Literal["exit"]
    id: Key
    reason: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")] = "completed"


Step = Annotated[EmailStep | WaitStep | BranchStep | ExitStep, Field(discriminator="type")]


class Stage(Closed):
    key: Key
    name: Name
    steps: list[Step] = Field(min_length=1)


class SizeRange(Closed):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class LeadCriteria(Closed):
    """Conditions on lead fields; every one given must hold (lists mean any of)."""

    country: list[Annotated[str, AfterValidator(normalize_country)]] | None = None
    industry: list[Name] | None = None
    source: list[Name] | None = None
    company_size: SizeRange | None = None
    title_contains: list[Name] | None = None


class Entry(Closed):
    """Who this sequence takes: rejections with these reasons, and/or not-ready leads."""

    reasons: list[RejectionReason] = Field(default_factory=list)
    not_ready: bool = False
    lead: LeadCriteria = Field(default_factory=LeadCriteria)

    @model_validator(mode="after")
    def _someone(self) -> Entry:
        if not self.reasons and not self.not_ready:
            raise ValueError("name at least one rejection reason in `reasons`, or `not_ready: true`")
        return self


class SendWindow(Closed):
    """Days and hours in the lead's time zone (else `timezone`) when emails may go out.

    `end` is exclusive; `24:00` ends the window with the day.
    """

    days: list[Weekday] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"],
                                min_length=1)
    start: ClockTime = "09:00"
    end: Annotated[str, StringConstraints(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")] = "17:00"
    timezone: Annotated[str, AfterValidator(normalize_timezone)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.start >= self.end:
            raise ValueError("`start` must be before `end` (a window within one day)")
        return self


class SequenceDocument(Closed):
    """A whole sequence, as imported, exported and stored in each version."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """PostgreSQL's text and JSONB cannot hold U+0000: refused here, with its path,
        rather than failing on insert."""
        forbid_nul_in_json(data)
        return data

    key: Key
    name: Name
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    priority: int = Field(default=100, ge=0, le=10_000)
    entry: Entry
    send_window: SendWindow = Field(default_factory=SendWindow)
    stages: list[Stage] = Field(min_length=1, max_length=20)

    def steps(self) -> list[tuple[int, int, Step]]:
        """Every step in order, with its stage and step index."""
        return [(si, ti, step) for si, stage in enumerate(self.stages)
                for ti, step in enumerate(stage.steps)]

    def step_ids(self) -> list[str]:
        return [step.id for _, _, step in self.steps()]

    def step(self, step_id: str) -> Step:
        for _, _, step in self.steps():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def next_step_id(self, step_id: str) -> str | None:
        """The step after `step_id` in document order (across stages), None at the end."""
        ids = self.step_ids()
        index = ids.index(step_id)
        return ids[index + 1] if index + 1 < len(ids) else None

    def collateral_keys(self) -> set[str]:
        return {key for _, _, s in self.steps() if isinstance(s, EmailStep) for key in s.collateral}

    def export(self) -> dict[str, Any]:
        """The document as plain data, round-trippable through `SequenceDocument.model_validate`."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def step_path(document: SequenceDocument, step_id: str) -> str:
    for si, ti, step in document.steps():
        if step.id == step_id:
            return f"stages[{si}].steps[{ti}]"
    return "stages"


def check_structure(document: SequenceDocument) -> dict[str, list[str]]:
    """Rules across steps: unique ids and keys, branches that point to real, later steps."""
    errors: dict[str, list[str]] = {}
    seen_stage: set[str] = set()
    for si, stage in enumerate(document.stages):
        if stage.key in seen_stage:
            errors.setdefault(f"stages[{si}].key", []).append(f"stage key {stage.key!r} is used twice")
        seen_stage.add(stage.key)
    steps = document.steps()
    if len(steps) > MAX_STEPS:
        errors.setdefault("stages", []).append(f"at most {MAX_STEPS} steps in a sequence")
    position: dict[str, int] = {}
    for order, (si, ti, step) in enumerate(steps):
        if step.id in position:
            errors.setdefault(f"stages[{si}].steps[{ti}].id", []).append(
                f"step id {step.id!r} is used twice"
            )
        position.setdefault(step.id, order)
    for order, (si, ti, step) in enumerate(steps):
        if not isinstance(step, BranchStep):
            continue
        base = f"stages[{si}].steps[{ti}].branch"
        target = step.condition.step
        if target not in position:
            errors.setdefault(f"{base}.condition.step", []).append(f"no step {target!r}")
        elif position[target] >= order:
            errors.setdefault(f"{base}.condition.step", []).append(
                f"{target!r} must be an email step before this branch"
            )
        elif not isinstance(document.step(target), EmailStep):
            errors.setdefault(f"{base}.condition.step", []).append(f"{target!r} is not an email step")
        elif step.condition.collateral and step.condition.collateral not in document.step(target).collateral:  # type: ignore[union-attr]
            errors.setdefault(f"{base}.condition.collateral", []).append(
                f"step {target!r} does not feature {step.condition.collateral!r}"
            )
        for field, goto in (("then", step.then), ("else", step.otherwise)):
            if goto is None:
                continue
            if goto not in position:
                errors.setdefault(f"{base}.{field}", []).append(f"no step {goto!r} to go to")
            elif position[goto] <= order:
                errors.setdefault(f"{base}.{field}", []).append(
                    f"{goto!r} is not after this branch (loops are not allowed)"
                )
    return errors




class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a 'billion laughs' document cannot expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def parse_document_text(text: str | bytes, *, yaml_format: bool) -> Any:
    """Parse a sequence document sent as JSON or YAML; ValueError with the line on bad syntax."""
    if yaml_format:
        try:
            return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def dump_document(document: dict[str, Any], *, yaml_format: bool) -> str:
    if yaml_format:
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


_PARSED: dict[int, tuple[dict[str, Any], SequenceDocument]] = {}
PARSED_CACHE_SIZE = 512
"""Stored versions whose parsed document a process keeps."""


def version_document(version_id: int, stored: dict[str, Any]) -> SequenceDocument:
    """The parsed document of a stored sequence version, parsed once per process.

    Versions are immutable, but ids can be reused (SQLite after deletes, tests restarting
    sequences), so the stored data is compared too: far cheaper than validating it again.
    """
    cached = _PARSED.get(version_id)
    if cached is not None and cached[0] == stored:
        return cached[1]
    document = SequenceDocument.model_validate(stored)
    if len(_PARSED) >= PARSED_CACHE_SIZE:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[version_id] = (copy.deepcopy(stored), document)  # a copy no caller can change
    return document
