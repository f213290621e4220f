"""Who appears in the demo: the staff, the companies and the people sales gave back.

Everything here is made from one `random.Random`, so a seed gives the same cast every time.
Every address is under `example.com` (reserved for documentation, RFC 2606): nothing the
demo makes can reach a real mailbox, whatever SMTP server is configured later.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from nurture.models import RejectionReason, Role

DOMAIN = "demo.example.com"
"""The demo company's own staff addresses."""


@dataclass(frozen=True)
class Staff:
    email: str
    name: str
    role: Role
    timezone: str
    team: str | None = None


STAFF = (
    Staff(f"marketer@{DOMAIN}", "Mara Marketing", Role.MARKETER, "Europe/Berlin"),
    Staff(f"approver@{DOMAIN}", "Sam Sales-Approver", Role.SALES_APPROVER, "Europe/London"),
    Staff(f"rep.emea1@{DOMAIN}", "Elena Fischer", Role.REP, "Europe/Berlin", "EMEA"),
    Staff(f"rep.emea2@{DOMAIN}", "Oliver Hughes", Role.REP, "Europe/London", "EMEA"),
    Staff(f"rep.emea3@{DOMAIN}", "Camille Martin", Role.REP, "Europe/Paris", "EMEA"),
    Staff(f"rep.amer1@{DOMAIN}", "Jordan Lee", Role.REP, "America/New_York", "Americas"),
    Staff(f"rep.amer2@{DOMAIN}", "Priya Shah", Role.REP, "America/Chicago", "Americas"),
    Staff(f"rep.amer3@{DOMAIN}", "Diego Alvarez", Role.REP, "America/Los_Angeles", "Americas"),
    Staff(f"admin@{DOMAIN}", "Ada Admin", Role.ADMIN, "UTC"),
)
"""The demo sign-in: a marketer, a sales approver, six reps in two teams and an admin."""

REPS = tuple(s for s in STAFF if s.role == Role.REP)
MARKETER = STAFF[0]
APPROVER = STAFF[1]

FIRST_NAMES = (
    "Aiko", "Amara", "Anders", "Beatriz", "Bruno", "Chen", "Clara", "Dario", "Dev", "Eitan",
    "Elif", "Farah", "Finn", "Greta", "Hana", "Hugo", "Ines", "Ivan", "Jonas", "Kai", "Lena",
    "Leon", "Lucia", "Malik", "Maya", "Mateo", "Nadia", "Nils", "Noor", "Omar", "Paula",
    "Quinn", "Rafael", "Rosa", "Sofia", "Tariq", "Theo", "Uma", "Vera", "Wen", "Yara", "Zoe",
)
LAST_NAMES = (
    "Andersen", "Baker", "Costa", "Dubois", "Eriksen", "Fontaine", "Garcia", "Haddad",
    "Ibrahim", "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov",
    "Quintero", "Rossi", "Schmidt", "Tanaka", "Underwood", "Varga", "Weber", "Xu", "Yilmaz",
    "Zimmermann", "Novak", "Silva", "Murphy", "Kim",
)
BRANDS = (
    "Northwind", "Contoso", "Fabrikam", "Globex", "Initech", "Hooli", "Vandelay", "Wonka",
    "Cyberdyne", "Aperture", "Tyrell", "Soylent", "Umbrella", "Gringotts", "Dunder",
    "Monarch", "Blue Harbor", "Redwood", "Kestrel", "Lumen", "Polaris", "Summit", "Atlas",
    "Meridian", "Orchid", "Quarry", "Sable", "Tidewater", "Vertex", "Willow",
)
INDUSTRIES = (
    # (word in the company name, industry, weight); the first seven are the default model's ICP
    ("Logistics", "logistics", 5), ("Software", "software", 5), ("Cloud", "saas", 4),
    ("Pay", "fintech", 3), ("Capital", "financial services", 2), ("Shop", "ecommerce", 3),
    ("Works", "manufacturing", 4), ("Health", "healthcare", 2), ("Foods", "food", 1),
    ("Energy", "energy", 1), ("Studio", "media", 1), ("Academy", "education", 1),
)
PLACES = (
    # (country, time zone, weight); the last two are outside the default model's countries
    ("US", "America/New_York", 6), ("US", "America/Chicago", 3), ("US", "America/Los_Angeles", 3),
    ("CA", "America/Toronto", 2), ("GB", "Europe/London", 4), ("DE", "Europe/Berlin", 4),
    ("FR", "Europe/Paris", 2), ("NL", "Europe/Amsterdam", 2), ("SE", "Europe/Stockholm", 1),
    ("AU", "Australia/Sydney", 1), ("BR", "America/Sao_Paulo", 1), ("IN", "Asia/Kolkata", 1),
)
SENIOR_TITLES = ("VP Operations", "Head of Logistics", "Director of IT", "CFO", "Founder",
                 "Chief Operating Officer", "VP Engineering", "Head of Supply Chain")
OTHER_TITLES = ("Operations Manager", "Business Analyst", "Software Engineer",
                "Procurement Specialist", "Office Manager", "IT Administrator", "Intern")
SOURCES = ("webinar", "trade_show", "website", "partner", "outbound", "paid_search")

REASONS = (
    # how often sales gives a lead back for each reason (every reason appears)
    (RejectionReason.BAD_TIMING, 24), (RejectionReason.NO_BUDGET, 17),
    (RejectionReason.NO_AUTHORITY, 15), (RejectionReason.NO_NEED, 9),
    (RejectionReason.UNRESPONSIVE, 11), (RejectionReason.CHOSE_COMPETITOR, 8),
    (RejectionReason.NOT_ICP, 7), (RejectionReason.OTHER, 9),
)
NOTES = {
    RejectionReason.BAD_TIMING: "Budget opens next quarter",
    RejectionReason.NO_BUDGET: "No budget this year",
    RejectionReason.NO_AUTHORITY: "Contact likes it; the CFO decides",
    RejectionReason.NO_NEED: "Happy with spreadsheets for now",
    RejectionReason.UNRESPONSIVE: "Three calls, no answer",
    RejectionReason.CHOSE_COMPETITOR: "Signed with a competitor, renews in a year",
    RejectionReason.NOT_ICP: "Too small for us",
    RejectionReason.OTHER: "Reorganisation under way",
}

NOT_READY_SHARE = 0.15
"""Leads marketing puts into nurture as not ready, rather than sales rejecting them."""


@dataclass(frozen=True)
class Person:
    """One lead of the demo, with how it will behave (hidden from Nurture)."""

    number: int
    email: str
    fields: dict[str, object]
    arrives_at: datetime
    reason: RejectionReason | None
    """Why sales gave it back; None: marketing put it into nurture as not ready."""
    rep_email: str
    revisit_on: date | None
    interest: float
    """0 to 1: how likely this person engages with what Nurture sends and looks further."""
    privacy_proxy: bool
    """Reads mail through Apple's proxy: every email is 'opened' by a machine at delivery."""
    link_scanner: bool
    """The company's mail gateway follows every link of every email within seconds."""
    bounces: bool
    """The address no longer exists: the first email bounces hard."""


def _pick(rng: random.Random, weighted: tuple[tuple[object, ...], ...]) -> tuple[object, ...]:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]  # type: ignore[list-item]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def make_people(rng: random.Random, count: int, *, start: datetime, end: datetime) -> list[Person]:
    """`count` people arriving over the period (the last ones a few weeks before its end),
    in the order they arrive."""
    companies = []
    for index in range(max(8, count // 4)):
        word, industry, _ = _pick(rng, INDUSTRIES)
        brand = BRANDS[index % len(BRANDS)]
        name = f"{brand} {word}" + (f" {index // len(BRANDS) + 1}" if index >= len(BRANDS) else "")
        country, zone, _ = _pick(rng, PLACES)
        size = int(min(20_000, max(3, rng.lognormvariate(5.0, 1.4))))
        companies.append((name, industry, country, zone, size, rng.random() < 0.12))
    arrivals = sorted(_working_moment(rng, start, end - timedelta(days=21)) for _ in range(count))
    people = []
    for number, arrives_at in enumerate(arrivals, start=1):
        name, industry, country, zone, size, scanner = rng.choice(companies)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        senior = rng.random() < 0.45
        title = rng.choice(SENIOR_TITLES if senior else OTHER_TITLES)
        reason = None if rng.random() < NOT_READY_SHARE else _pick(rng, REASONS)[0]
        rep = rng.choice([r for r in REPS if (r.team == "EMEA") == zone.startswith("Europe")]
                         or list(REPS))
        revisit = None
        if reason == RejectionReason.BAD_TIMING and rng.random() < 0.6:
            revisit = (arrives_at + timedelta(days=rng.randint(20, 100))).date()
        fit = (0.25 if senior else 0.0) + (0.15 if industry in _ICP else 0.0)
        interest = min(1.0, rng.betavariate(1.3, 4.0) + fit * rng.random())
        fields: dict[str, object] = {
            "first_name": first, "last_name": last, "company": name, "title": title,
            "industry": industry, "company_size": size, "country": country, "timezone": zone,
            "source": rng.choice(SOURCES),
        }
        if senior and rng.random() < 0.5:
            fields["attributes"] = {"seniority": rng.choice(("director", "vp", "executive"))}
        people.append(Person(
            number=number,
            email=f"{_slug(first)}.{_slug(last)}.{number}@{_slug(name)}.example.com",
            fields=fields, arrives_at=arrives_at, reason=reason,  # type: ignore[arg-type]
            rep_email=rep.email, revisit_on=revisit, interest=interest,
            privacy_proxy=rng.random() < 0.3, link_scanner=scanner,
            bounces=rng.random() < 0.015,
        ))
    return people


_ICP = {"logistics", "software", "saas", "fintech", "financial services", "ecommerce",
        "manufacturing"}


def _working_moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A moment between `start` and `end` on a weekday between 08:00 and 18:00 UTC."""
    while True:
        moment = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
        if moment.weekday() < 5 and 8 <= moment.hour < 18:
            return moment.replace(microsecond=0)
