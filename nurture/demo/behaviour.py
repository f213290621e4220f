"""How the demo's people answer: leads to the emails they get, reps to the leads they get.

Each function takes the simulation's `random.Random` and returns what happens and when, as
plain values; the simulation turns them into calls of the real services. The rates are made
up but plausible, so every report has something to show: most emails are never opened, a
third of the "opens" are machines, a few people click, fewer book a meeting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from nurture.demo.cast import Person
from nurture.models import LossReason, OutcomeKind, RejectionReason

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Safari/605.1.15")
"""A person reading mail in a browser."""

PRIVACY_PROXY = "Mozilla/5.0"
"""Apple's mail privacy proxy (machine rule `privacy_proxy`)."""

SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link protection)"
"""A mail gateway that follows every link (machine rule `scanner_user_agent`)."""


@dataclass(frozen=True)
class Reaction:
    """One thing a person (or their mail system) does with an email, `after` it was sent."""

    kind: str
    """delivered, bounce, machine_open, scanner_click, open, click, unsubscribe, complaint,
    reply."""
    after: timedelta


def react_to_email(rng: random.Random, person: Person, *, first: bool) -> list[Reaction]:
    """What follows one email to `person`, in no particular order."""
    if person.bounces and first:
        return [Reaction("bounce", timedelta(seconds=rng.randint(5, 90)))]
    reactions = [Reaction("delivered", timedelta(seconds=rng.randint(2, 40)))]
    if person.privacy_proxy:
        reactions.append(Reaction("machine_open", timedelta(seconds=rng.randint(30, 300))))
    if person.link_scanner:
        reactions.append(Reaction("scanner_click", timedelta(seconds=rng.randint(3, 60))))
    if rng.random() < 0.002:
        return [*reactions, Reaction("complaint", timedelta(hours=rng.uniform(1, 30)))]
    if rng.random() > 0.15 + 0.55 * person.interest:
        return reactions  # never opened
    opened = timedelta(minutes=min(5 * 24 * 60, rng.lognormvariate(4.5, 1.4)))
    reactions.append(Reaction("open", opened))
    if rng.random() < 0.012:
        reactions.append(Reaction("unsubscribe", opened + timedelta(minutes=2)))
        return reactions
    if rng.random() < 0.08 + 0.55 * person.interest:
        reactions.append(Reaction("click", opened + timedelta(minutes=rng.uniform(0.5, 8))))
    if person.interest > 0.5 and rng.random() < 0.06:
        reactions.append(Reaction("reply", opened + timedelta(hours=rng.uniform(1, 48))))
    return reactions


@dataclass(frozen=True)
class Visit:
    """A visit to the website (reported through the events API), with what the person did."""

    at: datetime
    events: tuple[tuple[str, str | None], ...]
    """(event type, page) pairs, in the order they happened."""


def website_visits(rng: random.Random, person: Person, *, until: datetime) -> list[Visit]:
    """The person's visits over the months after it entered nurture."""
    visits = []
    count = _poisson(rng, 0.4 + 3.2 * person.interest)
    for _ in range(count):
        at = person.arrives_at + timedelta(days=rng.uniform(2, 175), hours=rng.uniform(-3, 3))
        if at >= until:
            continue
        events: list[tuple[str, str | None]] = [("page_view", "/product")]
        if rng.random() < person.interest:
            events.append(("page_view", "/pricing"))
        if rng.random() < 0.03:
            events.append(("page_view", "/careers"))
        if rng.random() < 0.25 + 0.3 * person.interest:
            events.append(("content_download", "/resources/planning-guide"))
        if rng.random() < 0.1 + 0.2 * person.interest:
            events.append(("webinar_registered", "/webinars/quarterly-planning"))
            if rng.random() < 0.6:
                events.append(("webinar_attended", "/webinars/quarterly-planning"))
        if rng.random() < 0.15 * person.interest:
            events.append(("form_submit", "/contact"))
        if rng.random() < 0.1 * person.interest:
            events.append(("meeting_booked", "/book-a-demo"))
        visits.append(Visit(at.replace(microsecond=0), tuple(events)))
    return sorted(visits, key=lambda v: v.at)


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


RE_REJECTION = (
    (RejectionReason.BAD_TIMING, 30), (RejectionReason.NO_BUDGET, 25),
    (RejectionReason.NO_AUTHORITY, 15), (RejectionReason.CHOSE_COMPETITOR, 10),
    (RejectionReason.UNRESPONSIVE, 10), (RejectionReason.OTHER, 10),
)
"""Why a rep gives a recycled lead back again."""


@dataclass(frozen=True)
class Answer:
    """What a rep does with a handoff: `accept`, `reject` (with a reason) or nothing (None)."""

    action: str | None
    after: timedelta
    reason: RejectionReason | None = None


def answer_handoff(rng: random.Random, *, reassigned: bool) -> Answer:
    """A rep's answer to a recycled lead: most accept, some give it back, some let it lapse
    (a rep who got it by reassignment lets it lapse less often)."""
    roll = rng.random()
    lapse = 0.08 if reassigned else 0.22
    if roll < lapse:
        return Answer(None, timedelta(0))
    speed = rng.random()
    if speed < 0.3:
        after = timedelta(minutes=rng.uniform(0.5, 5))
    elif speed < 0.75:
        after = timedelta(minutes=rng.uniform(5, 55))
    else:
        after = timedelta(hours=rng.uniform(1, 30))
    if roll < lapse + 0.28:
        reason = rng.choices([r for r, _ in RE_REJECTION], [w for _, w in RE_REJECTION])[0]
        return Answer("reject", after, reason)
    return Answer("accept", after)


LOSSES = ((LossReason.PRICE, 30), (LossReason.COMPETITOR, 25), (LossReason.NO_DECISION, 20),
          (LossReason.TIMING, 15), (LossReason.OTHER, 10))
"""Why an opportunity is lost, as the CRM reports it."""


@dataclass(frozen=True)
class Deal:
    """What the CRM later reports about an accepted lead: (kind, after acceptance, amount in
    EUR, loss reason) in order; empty when sales never opens an opportunity (it stalls)."""

    steps: tuple[tuple[OutcomeKind, timedelta, Decimal | None, LossReason | None], ...]


def deal_after_acceptance(rng: random.Random) -> Deal:
    if rng.random() < 0.25:
        return Deal(())  # no opportunity: the SLA's stall timer returns the lead to nurture
    opened = timedelta(days=rng.uniform(1, 18))
    steps: list[tuple[OutcomeKind, timedelta, Decimal | None, LossReason | None]] = [
        (OutcomeKind.OPPORTUNITY_CREATED, opened, None, None)]
    closes = opened + timedelta(days=rng.uniform(10, 60))
    roll = rng.random()
    if roll < 0.38:
        amount = Decimal(rng.randrange(6_000, 96_000, 500))
        steps.append((OutcomeKind.WON, closes, amount, None))
    elif roll < 0.8:
        reason = rng.choices([r for r, _ in LOSSES], [w for _, w in LOSSES])[0]
        steps.append((OutcomeKind.LOST, closes, None, reason))
    return Deal(tuple(steps))
