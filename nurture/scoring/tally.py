"""A lead's score in memory: the arithmetic live scoring, rebuilds and backtests share.

Engagement decays with a half-life h: points p given at time t are worth p·2^-(T-t)/h at T.
A sum of such points is kept as (value, reference time): adding p at t is
`value + p·2^-(ref-t)/h` if t is not after ref, else `value·2^-(t-ref)/h + p` with t the new
reference. Each is exact, so the sum does not depend on the order events arrive in, and a
late event costs the same as any other.

Caps bound the points (in absolute value) a rule gives per UTC day and per ISO week: each
event takes what is left of both; the total is min(week cap, Σ days' min(day cap, raw)),
whatever the order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nurture.scoring.document import EventRule
from nurture.scoring.rules import FIT

DAY = timedelta(days=1)


def decay(value: float, since: datetime | None, until: datetime, half_life_s: float) -> float:
    """`value` kept since `since`, as worth at `until` (later or earlier)."""
    if since is None or value == 0.0:
        return value
    return value * math.exp2(-(until - since).total_seconds() / half_life_s)


def add_decayed(
    value: float, ref: datetime | None, points: float, at: datetime, half_life_s: float
) -> tuple[float, datetime]:
    """(value, ref) with `points` given at `at` added; O(1) and order-free."""
    if ref is None:
        return points, at
    if at <= ref:
        return value + decay(points, at, ref, half_life_s), ref
    return decay(value, ref, at, half_life_s) + points, at


@dataclass(slots=True)
class Part:
    """One rule's share of the score."""

    kind: str
    decays: bool
    value: float = 0.0
    ref_at: datetime | None = None
    last_at: datetime | None = None
    changed: bool = False

    def worth(self, at: datetime, half_life_s: float) -> float:
        return decay(self.value, self.ref_at, at, half_life_s) if self.decays else self.value


@dataclass
class Tally:
    """A lead's score under one model, with each rule's part."""

    half_life_s: float
    fit: float = 0.0
    decayed: float = 0.0
    decayed_at: datetime | None = None
    steady: float = 0.0
    parts: dict[str, Part] = field(default_factory=dict)

    def engagement(self, at: datetime) -> float:
        return decay(self.decayed, self.decayed_at, at, self.half_life_s) + self.steady

    def total(self, at: datetime) -> float:
        return self.fit + self.engagement(at)

    def add(self, rule: str, kind: str, decays: bool, points: float, at: datetime) -> None:
        """Engagement (or negative) points given at `at`."""
        part = self.parts.get(rule)
        if part is None:
            part = self.parts[rule] = Part(kind=kind, decays=decays)
        if decays:
            self.decayed, self.decayed_at = add_decayed(
                self.decayed, self.decayed_at, points, at, self.half_life_s)
            part.value, part.ref_at = add_decayed(
                part.value, part.ref_at, points, at, self.half_life_s)
        else:
            self.steady += points
            part.value += points
        part.last_at = at if part.last_at is None else max(part.last_at, at)
        part.changed = True

    def set_fit(self, points: dict[str, float], at: datetime) -> dict[str, float]:
        """The fit rules met now; returns each rule's change (what the ledger records)."""
        changes: dict[str, float] = {}
        fit_rules = {name for name, part in self.parts.items() if part.kind == FIT}
        for rule in fit_rules | set(points):
            old = self.parts[rule].value if rule in self.parts else 0.0
            new = points.get(rule, 0.0)
            if new != old:
                changes[rule] = new - old
                part = self.parts.setdefault(rule, Part(kind=FIT, decays=False))
                part.value = new
                part.last_at = at
                part.changed = True
        self.fit = sum(p.value for p in self.parts.values() if p.kind == FIT)
        return changes

    def explanation(self, at: datetime) -> list[dict[str, object]]:
        """The rules that contributed, with their points as worth at `at`, largest first."""
        items = [
            (name, round(part.worth(at, self.half_life_s), 2), part.last_at)
            for name, part in self.parts.items()
        ]
        items = [item for item in items if item[1] != 0]
        items.sort(key=lambda item: (-abs(item[1]), item[0]))
        return [{"rule": name, "points": points, "at": last} for name, points, last in items]


def day_start(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def week_start(at: datetime) -> datetime:
    return day_start(at) - timedelta(days=at.weekday())


UsageLoader = Callable[[str, datetime, datetime], float]
"""(rule, start, end) → points (absolute) the rule already gave in [start, end)."""


class CapBook:
    """What each capped rule has given per day and week; `load` reads what was given before
    (from the ledger), once per bucket."""

    def __init__(self, load: UsageLoader | None = None) -> None:
        self._load = load
        self._used: dict[tuple[str, str, datetime], float] = {}

    def _usage(self, rule: str, kind: str, start: datetime, length: timedelta) -> float:
        key = (rule, kind, start)
        if key not in self._used:
            self._used[key] = self._load(rule, start, start + length) if self._load else 0.0
        return self._used[key]

    def allow(self, rule: EventRule, at: datetime) -> float:
        """The points the rule gives for an event at `at`, once its caps are applied."""
        cap = rule.cap
        if cap is None:
            return rule.points
        allowed = abs(rule.points)
        buckets: list[tuple[str, str, datetime]] = []
        for kind, limit, start, length in (
            ("d", cap.per_day, day_start(at), DAY),
            ("w", cap.per_week, week_start(at), 7 * DAY),
        ):
            if limit is None:
                continue
            allowed = min(allowed, max(0.0, limit - self._usage(rule.rule, kind, start, length)))
            buckets.append((rule.rule, kind, start))
        for key in buckets:
            self._used[key] += allowed
        return math.copysign(allowed, rule.points)
