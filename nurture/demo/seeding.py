"""`seed_demo`: check the database is empty, build the prelude, run the six months, count."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.sending import Sending
from nurture.config import Settings
from nurture.db import Database
from nurture.demo.cast import make_people
from nurture.demo.prelude import SignIn, build_prelude
from nurture.demo.simulation import Simulation, Sink
from nurture.errors import Conflict
from nurture.handoffs.delivery import Channels
from nurture.handoffs.policy import RecyclePolicy
from nurture.models import Collateral, Lead, Sequence, User

DEFAULT_LEADS = 2_500
"""Leads in the demo unless told otherwise: a few thousand, built in under two minutes."""

DEFAULT_SEED = 7
"""The seed of `nurture seed-demo` and of `nurture up`'s demo."""

DAYS = 182
"""Six months of history, ending at the start of the last day (UTC)."""

OCCUPIED_BY = (Lead, User, Sequence, Collateral)
"""A database holding any of these is not empty: the demo refuses to mix with real data.
(API tokens and the scoring model do not count: `nurture up` makes them first.)"""


class DemoDatabase(Database):
    """The demo's own engine on the caller's PostgreSQL database: its commits do not wait
    for the server's disk (`synchronous_commit = off`; a crash could lose the last commits of
    a history the seed makes again, never mix or corrupt them) and it does not ping the server
    before each transaction. Every row is the same as through the caller's engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=2, max_overflow=2, connect_args={
            "connect_timeout": 10, "options": "-c synchronous_commit=off"})
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)


@dataclass(frozen=True)
class Seeded:
    sign_ins: list[SignIn]
    start: datetime
    end: datetime
    emails_sunk: int
    wall_s: float
    cpu_s: float


def occupied(session: Session) -> list[str]:
    """The tables that make the database non-empty for the demo (empty list: it is empty)."""
    return [model.__tablename__ for model in OCCUPIED_BY
            if session.execute(select(func.count()).select_from(model)).scalar_one() > 0]


def seed_demo(
    db: Database, settings: Settings, *, seed: int = DEFAULT_SEED, leads: int = DEFAULT_LEADS,
    until: date, progress: Callable[[datetime], None] = lambda _: None,
    stop: Callable[[], bool] = lambda: False,
) -> Seeded:
    """Build the demo's six months ending at the start of `until` (UTC); Conflict if the
    database holds leads, users, sequences or collateral already (nothing is changed then).
    `stop` is asked every simulated hour: True raises `Interrupted`, leaving a partial history."""
    if db.dialect == "postgresql":
        demo = DemoDatabase(db.engine.url.render_as_string(hide_password=False))
        try:
            return _seed(demo, settings, seed=seed, leads=leads, until=until,
                         progress=progress, stop=stop)
        finally:
            demo.dispose()
    return _seed(db, settings, seed=seed, leads=leads, until=until, progress=progress,
                 stop=stop)


def _seed(db: Database, settings: Settings, *, seed: int, leads: int, until: date,
          progress: Callable[[datetime], None], stop: Callable[[], bool]) -> Seeded:
    started, cpu_started = time.perf_counter(), time.process_time()
    end = datetime.combine(until, clock_time(0), tzinfo=UTC)
    start = end - timedelta(days=DAYS)
    with db.session_scope() as session:
        found = occupied(session)
        if found:
            raise Conflict(f"the database is not empty ({', '.join(found)}); the demo is only "
                           "built into an empty one")
        sign_ins = build_prelude(session, now=start - timedelta(days=7))
    rng = random.Random(seed)
    sink = Sink()
    simulation = Simulation(
        db=db,
        sending=Sending.from_settings(settings, messenger=sink),
        channels=Channels(crm_url=None, crm_secret=None, messenger=lambda: sink,
                          mail_from=settings.mail_from, base_url=settings.base_url),
        policy=RecyclePolicy(sla=settings.sla),
        rng=rng,
        people=make_people(rng, leads, start=start, end=end),
        end=end,
        progress=progress,
        stop=stop,
        reps={s.email: s.user_id for s in sign_ins},
    )
    simulation.run(start)
    return Seeded(sign_ins, start, end, sink.count, time.perf_counter() - started,
                  time.process_time() - cpu_started)
