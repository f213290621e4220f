"""The SLA document: what marketing and sales agree happens to a lead at every hand-over.

Validated whole by pydantic, so an error names its path (`escalation[1].within`); unknown
fields are refused. Durations are ISO 8601 (`PT1H`, `PT30M`): the rep's windows count
business time (the `business_hours` calendar in the rep's own time zone), the minimum time
in nurture counts calendar days.

    name:                 what people call this version
    business_hours:       days (mon…sun), opens, closes ("09:00"), holidays (dates),
                          timezone (for reps that have none)
    first_action:         within (the default window for a rep's first action), and rules
                          [{within, score_at_least, score_below, source}]: the first that
                          matches the handoff's score and the lead's source wins
    escalation:           [{notify: ["rep" or an email, …], within}]: when a window lapses
                          with no answer, the next step reminds these people and gives
                          `within` more; after the last step's window `on_last_lapse` happens
    on_last_lapse:        `reassign` (round-robin to another active rep, with a fresh first
                          action window) or `return_to_nurture` (reason `sla_expired`)
    stalled_in_sales_days: business days an accepted lead may sit with no opportunity before
                          it returns to nurture (`stalled_in_sales`); absent: never
    min_nurture_days:     per rejection reason, days in nurture before a lead may be recycled
    recycle_cap:          handoffs a lead may have before long-term nurture
"""

from __future__ import annotations

import enum
from datetime import date, time, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from nurture.fields import forbid_nul_in_json, normalize_email
from nurture.handoffs.policy import (
    BUSINESS_CLOSES,
    BUSINESS_OPENS,
    DEFAULT_TIMEZONE,
    MAX_RECYCLES,
    MIN_NURTURE_AFTER_REJECTION,
    BusinessCalendar,
    RecyclePolicy,
)
from nurture.leads.schemas import TimeZone
from nurture.models import RejectionReason

MAX_WINDOW = timedelta(days=366)
"""Longest window of business time a document may give (a year of business hours is more)."""

MAX_STEPS = 10
"""Most escalation steps, first-action rules and people notified at one step."""

MAX_HOLIDAYS = 1000
"""Most holidays in one calendar (decades of them)."""


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEKDAYS = tuple(Weekday)
"""In Python's `date.weekday()` order."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    if value > MAX_WINDOW:
        raise ValueError(f"must be at most {MAX_WINDOW.days} days")
    return value


Window = Annotated[timedelta, AfterValidator(_positive)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Source = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Score = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BusinessHours(Strict):
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1,
                                max_length=7)
    opens: time = BUSINESS_OPENS
    closes: time = BUSINESS_CLOSES
    holidays: list[date] = Field(default_factory=list, max_length=MAX_HOLIDAYS)
    timezone: TimeZone = DEFAULT_TIMEZONE

    @model_validator(mode="after")
    def _opens_before_closing(self) -> BusinessHours:
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("opens and closes are local times, without an offset")
        if self.opens >= self.closes:
            raise ValueError("opens must be before closes")
        return self

    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            days=frozenset(WEEKDAYS.index(day) for day in self.days),
            opens=self.opens, closes=self.closes, holidays=frozenset(self.holidays),
        )


class FirstActionRule(Strict):
    """A window for handoffs whose score is in a band and/or whose lead has a source."""

    within: Window
    score_at_least: Score | None = None
    score_below: Score | None = None
    source: list[Source] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _says_when(self) -> FirstActionRule:
        if self.score_at_least is None and self.score_below is None and self.source is None:
            raise ValueError("give score_at_least, score_below or source")
        if (self.score_at_least is not None and self.score_below is not None
                and self.score_at_least >= self.score_below):
            raise ValueError("score_at_least must be below score_below")
        return self

    def matches(self, score: float | None, source: str | None) -> bool:
        if self.score_at_least is not None and (score is None or score < self.score_at_least):
            return False
        if self.score_below is not None and (score is None or score >= self.score_below):
            return False
        if self.source is not None:
            return source is not None and source.casefold() in {s.casefold() for s in self.source}
        return True


class FirstAction(Strict):
    within: Window
    rules: list[FirstActionRule] = Field(default_factory=list, max_length=MAX_STEPS)


def _rep_or_email(value: str) -> str:
    return value if value == "rep" else normalize_email(value)


Notified = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320),
                     AfterValidator(_rep_or_email)]
"""`rep` (whoever the handoff is with) or a person's email address."""


class EscalationStep(Strict):
    notify: list[Notified] = Field(default_factory=lambda: ["rep"], min_length=1,
                                   max_length=MAX_STEPS)
    within: Window


class LastLapse(enum.StrEnum):
    REASSIGN = "reassign"
    RETURN_TO_NURTURE = "return_to_nurture"


class SlaDocument(Strict):
    """One version of the agreement (module docstring)."""

    name: Name
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    first_action: FirstAction
    escalation: list[EscalationStep] = Field(default_factory=list, max_length=MAX_STEPS)
    on_last_lapse: LastLapse = LastLapse.REASSIGN
    stalled_in_sales_days: Annotated[int, Field(ge=1, le=366, strict=True)] | None = None
    min_nurture_days: dict[RejectionReason, Annotated[int, Field(ge=0, le=3660, strict=True)]] = (
        Field(default_factory=dict))
    recycle_cap: Annotated[int, Field(ge=1, le=100, strict=True)] = MAX_RECYCLES

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        forbid_nul_in_json(data)
        return data

    def as_data(self) -> dict[str, Any]:
        """The document as stored and shown (everything spelled out; round-trips)."""
        return self.model_dump(mode="json")

    def first_action_window(self, score: float | None, source: str | None) -> timedelta:
        for rule in self.first_action.rules:
            if rule.matches(score, source):
                return rule.within
        return self.first_action.within

    def recycle_policy(self) -> RecyclePolicy:
        """What `recycle` goes by under this agreement."""
        min_nurture = dict(MIN_NURTURE_AFTER_REJECTION)
        min_nurture.update({reason: timedelta(days=days)
                            for reason, days in self.min_nurture_days.items()})
        return RecyclePolicy(min_nurture=min_nurture, max_recycles=self.recycle_cap,
                             sla=self.first_action.within)


def parse_document(data: Any) -> SlaDocument:
    """Validate a decoded document (raises pydantic's ValidationError, paths included)."""
    return SlaDocument.model_validate(data)


def default_document(policy: RecyclePolicy) -> SlaDocument:
    """The agreement in force with no SLA version active: the settings (NURTURE_SLA) as they
    worked before SLA documents existed: remind once, then reassign; never stalled."""
    window = policy.sla
    return SlaDocument(
        name="default (settings)",
        first_action=FirstAction(within=window),
        escalation=[EscalationStep(notify=["rep"], within=window)],
        on_last_lapse=LastLapse.REASSIGN,
        min_nurture_days={reason: max(0, wait.days) for reason, wait in policy.min_nurture.items()},
        recycle_cap=policy.max_recycles,
    )
