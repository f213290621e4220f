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
the end; or, with `--db NAME`, in the database NAME, generated once and kept: a later run with
the same `--db NAME` (and sizes) reuses the data and first empties what scoring wrote (scores,
rule rows, ledger, models, backtests), so runs repeat.

    .venv/bin/python bench/rescore.py                  # 1,000,000 leads, 10,000,000 events
    .venv/bin/python bench/rescore.py --db nurture_bench_scoring --skip-first   # kept
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
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from multiprocessing import get_context

import psutil
import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from nurture.clock import utcnow
from nurture.config import load_settings
from nurture.db import Database
from nurture.migrate import upgrade_database
from nurture.models import ApprovalRole, LeadScore, ScoreLedgerEntry, ScoringApproval
from nurture.models import ScoringModelStatus as Status
from nurture.scoring import lifecycle
from nurture.scoring.backtest import request_backtest, run_backtest
from nurture.scoring.document import default_document
from nurture.scoring.rescoring import rescore_batch
from nurture.testing import scratch_database
from workers.queues import JOB_KINDS

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


def _rescore(database: Database, model_id: int, jobs: int) -> tuple[float, int]:
    """Activate the model and re-score every lead as `jobs` copies of the `rescore_leads` job
    do (each a process taking ranges until none is left)."""
    started = time.perf_counter()
    with database.session_scope() as session:
        lifecycle.activate_model(session, model_id, actor="bench", now=utcnow())
    url = database.engine.url.render_as_string(hide_password=False)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        batches = sum(pool.map(_rescore_job, [url] * jobs, [model_id] * jobs))
    return time.perf_counter() - started, batches


def _rescore_job(url: str, model_id: int) -> int:
    """What one `rescore_leads` job does."""
    database = Database(url)
    batches = 0
    while True:
        with database.session_scope() as session:
            if not rescore_batch(session, model_id, now=utcnow()):
                break
        batches += 1
    database.dispose()
    return batches


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


SAMPLE_S = 0.5
"""How often CpuMeter looks at the processes."""


class CpuMeter:
    """CPU seconds spent by this process (and its children) and by the PostgreSQL backends of
    one database, with their parallel workers, between `start()` and `stop()`.

    Backends are found by their process title (`postgres: [CLUSTER:] USER DATABASE …`,
    `parallel worker for PID N`) and sampled every SAMPLE_S: a parallel worker is counted up
    to its last sample (it undercounts, never overcounts). The sampling thread's own CPU is
    not counted as Python's."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._seen: dict[int, float] = {}
        self._base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._python = 0.0

    def _backends(self) -> dict[int, float]:
        found: dict[int, float] = {}
        leaders: set[int] = set()
        workers: dict[int, tuple[int, float]] = {}
        for proc in psutil.process_iter(["cmdline", "cpu_times"]):
            title = " ".join(proc.info["cmdline"] or [])
            times = proc.info["cpu_times"]
            if not title.startswith("postgres: ") or times is None:
                continue
            spent = times.user + times.system
            parts = title.split()[1:]
            if parts and parts[0].endswith(":"):  # the cluster's name (Debian: `15/main:`)
                parts = parts[1:]
            if len(parts) > 1 and parts[1] == self.database:
                found[proc.pid] = spent
                leaders.add(proc.pid)
            elif "parallel worker for PID" in title:
                workers[proc.pid] = (int(parts[-1]), spent)
        for pid, (leader, spent) in workers.items():
            if leader in leaders:
                found[pid] = spent
        return found

    def _sample(self) -> None:
        self._sampler = threading.get_native_id()
        while not self._stop.is_set():
            for pid, spent in self._backends().items():
                self._seen[pid] = spent
            self._stop.wait(SAMPLE_S)

    def _sampling(self) -> float:
        """CPU seconds of the sampling thread itself (not the work measured)."""
        for thread in psutil.Process().threads():
            if thread.id == self._sampler:
                return thread.user_time + thread.system_time
        return 0.0

    @staticmethod
    def _own() -> float:
        me = psutil.Process()
        times = me.cpu_times()
        spent = times.user + times.system + times.children_user + times.children_system
        for child in me.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            spent += child_times.user + child_times.system
        return spent

    def start(self) -> CpuMeter:
        self._base = self._backends()
        self._seen = dict(self._base)
        self._python = self._own()
        self._stop.clear()
        self._sampler = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> str:
        sampling = self._sampling()
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        for pid, spent in self._backends().items():
            self._seen[pid] = spent
        postgres = sum(spent - self._base.get(pid, 0.0) for pid, spent in self._seen.items())
        python = self._own() - self._python - sampling
        return f"CPU: PostgreSQL {postgres:.1f} s, Python {python:.1f} s"


DATASET_SQL = """
CREATE TABLE IF NOT EXISTS bench_dataset (leads bigint NOT NULL, events bigint NOT NULL,
                                          generated_at timestamptz NOT NULL)
"""

RESET_SQL = """
TRUNCATE lead_score_rules, lead_scores, score_ledger, scoring_backtests, scoring_approvals,
         scoring_rescore_ranges,
         scoring_models
"""
"""What a run writes (the generated leads and events stay)."""


def _admin_url(server: str) -> str:
    url = make_url(load_settings({"DATABASE_URL": server}).database_url)
    return url.set(drivername="postgresql", database="postgres").render_as_string(False)


@contextmanager
def _bench_database(server: str, name: str | None) -> Iterator[str]:
    """The database to run in: a scratch one (dropped after), or NAME, created if missing and
    kept."""
    if name is None:
        with scratch_database(server, prefix="nurture_bench") as url:
            yield url
        return
    with psycopg.connect(_admin_url(server), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(load_settings({"DATABASE_URL": server}).database_url)
    yield url.set(database=name).render_as_string(hide_password=False)


def _generate(raw: str, leads: int, events: int) -> bool:
    """Generate the leads and events unless this database holds them already (True if it
    did); a kept database holding another size is refused."""
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(DATASET_SQL)
        kept = conn.execute("SELECT leads, events, generated_at FROM bench_dataset").fetchone()
        if kept is not None:
            if (kept[0], kept[1]) != (leads, events):
                raise SystemExit(f"this database holds {kept[0]:,} leads and {kept[1]:,} "
                                 "events: use those sizes or another --db")
            conn.execute(RESET_SQL)
            conn.execute("VACUUM ANALYZE lead_scores, lead_score_rules, score_ledger")
            print(f"reusing {leads:,} leads and {events:,} events generated at {kept[2]}")
            return False
        conn.execute("TRUNCATE leads CASCADE")
        conn.execute(LEADS_SQL, {"leads": leads})
        step = 1_000_000
        for first in range(1, events + 1, step):
            conn.execute(EVENTS_SQL, {"leads": leads, "first": first,
                                      "last": min(first + step - 1, events)})
        conn.execute("VACUUM ANALYZE")
        conn.execute("INSERT INTO bench_dataset VALUES (%s, %s, now())", (leads, events))
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--db", metavar="NAME",
                        help="generate the data once into this database and keep it; reuse it "
                             "when it is there (what scoring wrote is emptied first)")
    parser.add_argument("--skip-first", action="store_true",
                        help="time only the activation that replaces a model")
    parser.add_argument("--only", choices=("rescore", "backtest"),
                        help="run only the re-score or only the backtest")
    parser.add_argument("--jobs", type=int, default=JOB_KINDS["rescore_leads"].copies,
                        help="re-score jobs side by side (default: the copies enqueued)")
    parser.add_argument("--live", action="store_true", help="only the live scoring cost")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")
    memory = psutil.virtual_memory().total / 2**30
    print(f"{platform.node()}: {psutil.cpu_count()} cores, {memory:.0f} GiB, "
          f"Python {platform.python_version()}; load average {_load()}")
    began = time.perf_counter()
    with _bench_database(server, args.db) as url:
        upgrade_database(url)
        if args.live:
            _live(url)
            return
        raw = make_url(url).set(drivername="postgresql").render_as_string(False)
        name = make_url(url).database
        started = time.perf_counter()
        if _generate(raw, args.leads, args.events):
            print(f"generated {args.leads:,} leads and {args.events:,} events in "
                  f"{time.perf_counter() - started:.0f} s; load average {_load()}")
        with psycopg.connect(raw) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {version}; commit {_commit()}")

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

        if args.only == "backtest":
            with database.session_scope() as session:
                lifecycle.activate_model(session, second_id, actor="bench", now=utcnow())
        else:
            if not args.skip_first:
                meter = CpuMeter(name).start()
                seconds, batches = _rescore(database, first_id, args.jobs)
                print(f"re-score on activation, leads never scored: {args.leads:,} leads in "
                      f"{seconds:.1f} s ({batches} ranges, {args.jobs} jobs; {args.leads / seconds:,.0f} "
                      f"leads/s); {meter.stop()}; load average {_load()}")
            meter = CpuMeter(name).start()
            seconds, batches = _rescore(database, second_id, args.jobs)
            cpu = meter.stop()
            with database.session_scope() as session:
                scored = session.execute(
                    select(func.count()).select_from(LeadScore)
                    .where(LeadScore.model_id == second_id)).scalar_one()
                ledger = session.execute(select(func.count()).select_from(ScoreLedgerEntry)
                                         ).scalar_one()
            met = "met" if seconds < TARGET_S else "NOT met"
            what = "leads never scored" if args.skip_first else "replacing a model"
            print(f"re-score on activation, {what}: {scored:,} leads in {seconds:.1f} s "
                  f"({batches} ranges, {args.jobs} jobs; {args.leads / seconds:,.0f} leads/s; "
                  f"ledger now {ledger:,} rows); "
                  f"{cpu}; target {TARGET_S:.0f} s {met}; load average {_load()}")

        if args.only != "rescore":
            with database.session_scope() as session:
                backtest_id = request_backtest(session, draft_id, days=90, actor="bench",
                                               now=utcnow() + timedelta(seconds=1)).id
            meter = CpuMeter(name).start()
            started = time.perf_counter()
            with database.session_scope() as session:
                result = run_backtest(session, backtest_id,
                                      now=utcnow() + timedelta(seconds=1)).result
            seconds = time.perf_counter() - started
            met = "met" if seconds < TARGET_S else "NOT met"
            print(f"90-day backtest (draft beside the active model): {result['events']:,} "
                  f"events in {seconds:.1f} s; draft recycles {result['model']['recycled']:,}, "
                  f"active {result['compared']['recycled']:,}; {meter.stop()}; "
                  f"target {TARGET_S:.0f} s {met}; load average {_load()}")
        database.dispose()
    print(f"done in {time.perf_counter() - began:.0f} s; load average {_load()}")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
