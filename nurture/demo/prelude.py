"""What exists before the demo's first day: the staff, approved collateral, live sequences.

Made through the same services as the API and the CLI use: users with passwords, collateral
drafted by the marketer and approved by the sales approver (one asset is sent back for
changes first), the library's sequences and the demo's own imported and activated.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

import campaigns
from campaigns import collateral as collateral_service
from campaigns import sequences as sequence_service
from campaigns.documents import parse_document_text
from nurture.accounts.services import Actor, create_user
from nurture.demo.cast import APPROVER, MARKETER, STAFF
from nurture.handoffs.sla import activate_sla, approve_sla, create_sla
from nurture.models import Role
from nurture.scoring.lifecycle import ensure_default_model

SEQUENCE_FOLDERS = (Path(campaigns.__file__).parent / "library", Path(__file__).parent / "sequences")
"""The library's sequences (bad timing, no authority) and the demo's (the other reasons)."""

COLLATERAL = (
    # key, title, funnel stage
    ("planning-guide", "The 2027 planning guide", "awareness"),
    ("executive-summary", "One-page summary for leadership", "consideration"),
    ("industry-benchmark", "Industry benchmark report", "consideration"),
    ("customer-story-logistics", "Customer story: a logistics team's first year", "decision"),
    ("roi-calculator", "ROI calculator", "decision"),
)


@dataclass(frozen=True)
class SignIn:
    email: str
    name: str
    role: Role
    password: str
    team: str | None
    user_id: int


def create_staff(session: Session, *, now: datetime) -> list[SignIn]:
    """The demo's users, each with a fresh random password (returned once, to be printed)."""
    made = []
    for person in STAFF:
        password = secrets.token_urlsafe(12)
        user = create_user(session, person.email, person.role, password=password,
                           name=person.name, timezone=person.timezone, now=now)
        user.team = person.team  # no service sets a team yet (users.team is new)
        made.append(SignIn(person.email, person.name, person.role, password, person.team,
                           user.id))
    return made


def approve_collateral(session: Session, staff: dict[str, int], *, now: datetime) -> None:
    """Each asset drafted and submitted by the marketer, approved by the sales approver; the
    ROI calculator is sent back for changes once, and its second version approved."""
    marketer = Actor(MARKETER.email, Role.MARKETER, staff[MARKETER.email])
    approver = Actor(APPROVER.email, Role.SALES_APPROVER, staff[APPROVER.email])
    for offset, (key, title, stage) in enumerate(COLLATERAL):
        at = now + timedelta(minutes=10 * offset)
        fields = {"title": title, "url": f"https://www.example.com/resources/{key}",
                  "funnel_stage": stage}
        version = collateral_service.create_collateral(session, key, fields, actor=marketer,
                                                       now=at)
        collateral_service.transition(session, version.id, "submit", actor=marketer, now=at)
        if key == "roi-calculator":
            collateral_service.transition(
                session, version.id, "request_changes", actor=approver,
                comment="Use our list prices, not last year's", now=at + timedelta(hours=3))
            version = collateral_service.add_version(
                session, key, {**fields, "title": f"{title} (list prices 2027)"},
                actor=marketer, now=at + timedelta(hours=20))
            collateral_service.transition(session, version.id, "submit", actor=marketer,
                                          now=at + timedelta(hours=20))
            at += timedelta(days=1)
        collateral_service.transition(session, version.id, "approve", actor=approver,
                                      now=at + timedelta(hours=4))


def activate_sequences(session: Session, *, now: datetime) -> list[str]:
    """Import and activate every sequence of `SEQUENCE_FOLDERS`; their keys."""
    keys = []
    for folder in SEQUENCE_FOLDERS:
        for path in sorted(folder.glob("*.yaml")):
            data = parse_document_text(path.read_bytes(), yaml_format=True)
            imported = sequence_service.import_sequence(session, data, actor=MARKETER.email,
                                                        now=now)
            sequence_service.activate_sequence(session, imported.sequence.id, now=now,
                                               today=now.date())
            keys.append(imported.sequence.key)
    return keys


SLA = {
    "name": "Demo SLA: first call within the hour",
    "first_action": {"within": "PT1H", "rules": [{"within": "PT30M", "score_at_least": 80}]},
    "escalation": [{"notify": ["rep"], "within": "PT4H"}],
    "on_last_lapse": "return_to_nurture",
    "stalled_in_sales_days": 20,
    "recycle_cap": 3,
}
"""The one agreed SLA: a rep acts within an hour of business time (half an hour for the
hottest leads), is reminded once, and a lead nobody acts on returns to nurture
(`sla_expired`); an accepted lead with no opportunity after 20 business days returns as
`stalled_in_sales`."""


def agree_sla(session: Session, staff: dict[str, int], *, now: datetime) -> None:
    """The SLA drafted by the marketer, approved by both sides, then activated."""
    marketer = Actor(MARKETER.email, Role.MARKETER, staff[MARKETER.email])
    approver = Actor(APPROVER.email, Role.SALES_APPROVER, staff[APPROVER.email])
    sla = create_sla(session, SLA, actor=MARKETER.email, now=now)
    approve_sla(session, sla.id, actor=marketer, now=now + timedelta(hours=1))
    approve_sla(session, sla.id, actor=approver, now=now + timedelta(hours=26))
    activate_sla(session, sla.id, actor=MARKETER.email, now=now + timedelta(hours=27))


def build_prelude(session: Session, *, now: datetime) -> list[SignIn]:
    """The staff, the scoring model, the SLA, approved collateral and live sequences, as of
    `now` (the sequences go live three days later)."""
    ensure_default_model(session, now=now)
    sign_ins = create_staff(session, now=now)
    staff = {s.email: s.user_id for s in sign_ins}
    approve_collateral(session, staff, now=now + timedelta(hours=1))
    agree_sla(session, staff, now=now + timedelta(hours=2))
    activate_sequences(session, now=now + timedelta(days=3))
    return sign_ins
