"""Scoring benchmark (prints figures; not a test).

1. The re-score of every lead when a model is activated (`rescore_batch` until done, as the
   `rescore_leads` job runs it): first under the default model (leads never scored), then
   under a changed one replacing it. Target (issue #5): 1,000,000 leads in under 2 minutes.
2. A 90-day backtest of a draft model beside the active one over the stored events.
   Target: 10,000,000 events in under 2 minutes.

Data: LEADS leads with varied profiles and EVENTS engagement events spread over 90 days
(page views of pricing, blog and careers pages, opens, clicks, downloads, webinars, some
unsubscribes, 2% flagged as machine), generated in SQL, on a fresh PostgreSQL database created
on the server of DATABASE_URL (default postgresql://postgres@127.0.0.1/postgres), dropped at
the end.

    .venv/bin/python bench/rescore.py                  # 1,000,000 leads, 10,000,000 events
    .venv/bin/python bench/rescore.py --leads 100000 --events 1000000
    .venv/bin/python bench/rescore.py --live      # live scoring: jobs of 25 events, 25 leads

3. `--live`: the cost per event of live scoring (`score_events`, what the `handle_engagement`
   job runs), 40 jobs of 25 page views of the pricing page, each for a distinct lead, under
   the default model: leads never scored, then the same leads again.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time
from datetime import timedelta

import psutil
import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from nurture.clock import utcnow
from nurture.db import Database
from nurture.migrate import upgrade_database
from nurture.models import ApprovalRole, LeadScore, ScoreLedgerEntry, ScoringApproval
from nurture.models import ScoringModelStatus as Status
from nurture.scoring import lifecycle
from nurture.scoring.backtest import request_backtest, run_backtest
from nurture.scoring.document import default_document
from nurture.scoring.rescoring import rescore_batch
from nurture.testing import scratch_database

TARGET_S = 120.0
"""Both targets: two minutes."""

LEADS_SQL = """
INSERT INTO leads (email, title, industry, company_size, country, attributes, lifecycle_stage,
                   created_at, updated_at)
SELECT 'lead' || n || '@' || (ARRAY['gmail.com', 'acme.example', 'globex.example',
                                    'initech.example', 'umbrella.example'])[1 + n %% 5],
       (ARRAY['VP Engineering', 'Engineer', 'Director of IT', 'Head of Sales', 'Analyst',
              NULL])[1 + n %% 6],
       (ARRAY['software', 'retail', 'fintech', 'manufacturing', 'education'])[1 + n %% 5],
       (n * 37) %% 10000,
       (ARRAY['US', 'DE', 'FR', 'BR', 'GB', 'IN'])[1 + n %% 6],
       CASE WHEN n %% 4 = 0 THEN '{"seniority": "director"}'::jsonb ELSE '{}'::jsonb END,
       'nurturing', now() - interval '100 days', now() - interval '100 days'
FROM generate_series(1, %(leads)s) AS n
"""

EVENTS_SQL = """
INSERT INTO engagement_events (lead_id, type, occurred_at, received_at, source,
                               source_event_id, url, is_machine, properties, handled_at,
                               scored_at)
SELECT 1 + (n * 7919) %% %(leads)s,
       t.type,
       now() - (n * 104729 %% 7776000) * interval '1 second',
       now() - (n * 104729 %% 7776000) * interval '1 second',
       'api', 'b' || n,
       CASE WHEN t.type IN ('page_view', 'click')
            THEN (ARRAY['https://x.example/pricing', 'https://x.example/blog/a',
                        'https://x.example/careers', 'https://x.example/',
                        'https://x.example/product'])[1 + (n / 20) %% 5] END,
       n %% 50 = 0, '{}'::jsonb, now(), now()
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
CROSS JOIN LATERAL (SELECT (ARRAY['page_view', 'page_view', 'page_view', 'open', 'open',
                                  'click', 'click', 'content_download', 'webinar_attended',
                                  'webinar_registered', 'form_submit', 'email_reply',
                                  'page_view', 'open', 'click', 'page_view', 'open', 'click',
                                  'page_view', 'unsubscribe'])[1 + n %% 20] AS type) AS t
"""


def _install(session, document, now):
    model = lifecycle.create_model(session, document, actor="bench", now=now)
    for role in ApprovalRole:
        session.add(ScoringApproval(model_id=model.id, role=role, approved_by="bench",
                                    approved_at=now))
    model.status = Status.APPROVED
    session.flush()
    return model.id


def _rescore(database: Database, model_id: int) -> tuple[float, int]:
    started = time.perf_counter()
    batches = 0
    with database.session_scope() as session:
        lifecycle.activate_model(session, model_id, actor="bench", now=utcnow())
    while True:
        with database.session_scope() as session:
            if not rescore_batch(session, model_id, now=utcnow()):
                break
        batches += 1
    return time.perf_counter() - started, batches


def _live(url: str) -> None:
    from itertools import count

    from nurture.engagement.ingest import IncomingEvent, store_events
    from nurture.models import EventType, Lead, LifecycleStage
    from nurture.scoring.rescoring import score_events

    database = Database(url)
    numbers = count()
    now = utcnow()
    with database.session_scope() as session:
        lifecycle.ensure_default_model(session, now=now)
        session.add_all(Lead(email=f"live{i}@x.example", title="Engineer", attributes={},
                             lifecycle_stage=LifecycleStage.NURTURING, created_at=now,
                             updated_at=now) for i in range(1000))
        session.flush()
        ids = list(session.execute(select(Lead.id).order_by(Lead.id)).scalars())
    for label in ("leads never scored", "the same leads again"):
        spent, events = 0.0, 0
        for job in range(40):
            with database.session_scope() as session:
                stored = store_events(session, [
                    IncomingEvent(source="api", source_event_id=f"l{next(numbers)}",
                                  type=EventType.PAGE_VIEW, occurred_at=utcnow(), lead_id=lead,
                                  url="https://x.example/pricing")
                    for lead in ids[job * 25:job * 25 + 25]], now=utcnow())
            started = time.perf_counter()
            with database.session_scope() as session:
                events += score_events(session, *stored.id_range, now=utcnow()).events
            spent += time.perf_counter() - started
        print(f"live scoring, {label}: {spent / events * 1000:.1f} ms per event "
              f"({events} events in jobs of 25); load average {_load()}")
    database.dispose()


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--skip-first", action="store_true",
                        help="time only the activation that replaces a model")
    parser.add_argument("--live", action="store_true", help="only the live scoring cost")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")
    memory = psutil.virtual_memory().total / 2**30
    print(f"{platform.node()}: {psutil.cpu_count()} cores, {memory:.0f} GiB, "
          f"Python {platform.python_version()}; load average {_load()}")
    began = time.perf_counter()
    with scratch_database(server, prefix="nurture_bench") as url:
        upgrade_database(url)
        if args.live:
            _live(url)
            return
        raw = make_url(url).set(drivername="postgresql").render_as_string(False)
        started = time.perf_counter()
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(LEADS_SQL, {"leads": args.leads})
            step = 1_000_000
            for first in range(1, args.events + 1, step):
                conn.execute(EVENTS_SQL, {"leads": args.leads, "first": first,
                                          "last": min(first + step - 1, args.events)})
            conn.execute("VACUUM ANALYZE")
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {version}; generated {args.leads:,} leads and {args.events:,} "
              f"events in {time.perf_counter() - started:.0f} s; load average {_load()}")

        database = Database(url)
        now = utcnow()
        default = default_document().as_data()
        changed = copy.deepcopy(default)
        changed["name"] = "Changed"
        changed["half_life_days"] = 21
        changed["engagement"][0]["points"] = 20
        lenient = copy.deepcopy(changed)
        lenient["name"] = "Lenient"
        lenient["thresholds"] = {"total": 40, "fit": 10}
        with database.session_scope() as session:
            first_id = _install(session, default, now)
            second_id = _install(session, changed, now)
            draft_id = lifecycle.create_model(session, lenient, actor="bench", now=now).id

        if not args.skip_first:
            seconds, batches = _rescore(database, first_id)
            print(f"re-score on activation, leads never scored: {args.leads:,} leads in "
                  f"{seconds:.1f} s ({batches} batches; {args.leads / seconds:,.0f} leads/s); "
                  f"load average {_load()}")
        seconds, batches = _rescore(database, second_id)
        with database.session_scope() as session:
            scored = session.execute(
                select(func.count()).select_from(LeadScore)
                .where(LeadScore.model_id == second_id)).scalar_one()
            ledger = session.execute(select(func.count()).select_from(ScoreLedgerEntry)
                                     ).scalar_one()
        met = "met" if seconds < TARGET_S else "NOT met"
        print(f"re-score on activation replacing a model: {scored:,} leads in {seconds:.1f} s "
              f"({args.leads / seconds:,.0f} leads/s; ledger now {ledger:,} rows); "
              f"target {TARGET_S:.0f} s {met}; load average {_load()}")

        with database.session_scope() as session:
            backtest_id = request_backtest(session, draft_id, days=90, actor="bench",
                                           now=utcnow() + timedelta(seconds=1)).id
        started = time.perf_counter()
        with database.session_scope() as session:
            result = run_backtest(session, backtest_id, now=utcnow() + timedelta(seconds=1)
                                  ).result
        seconds = time.perf_counter() - started
        met = "met" if seconds < TARGET_S else "NOT met"
        print(f"90-day backtest (draft beside the active model): {result['events']:,} events "
              f"in {seconds:.1f} s; draft recycles {result['model']['recycled']:,}, active "
              f"{result['compared']['recycled']:,}; target {TARGET_S:.0f} s {met}; "
              f"load average {_load()}")
        database.dispose()
    print(f"done in {time.perf_counter() - began:.0f} s; load average {_load()}")


if __name__ == "__main__":
    main()
