"""Dispatch and sending benchmark (prints figures; not a test).

1. Claiming due drip steps: `campaigns.dispatch.claim_due(limit=10_000)`, the dispatcher's one
   statement, timed with 10,000, 100,000 and 1,000,000 active enrollments in the table (the
   10,000 due ones stay the same work; the rest wait up to 90 days), then with a tenth of the
   1,000,000 due, then claim after claim without releasing (a backlog of claimed, still-due
   rows, as when workers fall behind). Next to it, three ways of writing its statement, sent
   through psycopg alone. Medians of several runs, each from released claims.
2. Emails/s rendered and delivered by two real `nurture worker` processes (jobs enqueued by
   `workers.dispatcher.dispatch_due_steps`, the dispatcher's task) to a local SMTP sink in a
   process of its own, next to the raw rate of smtplib handing the same email, prerendered,
   to the same sink from two processes in the same run.

Everything runs against a fresh PostgreSQL database created on the server of DATABASE_URL
(default postgresql://postgres@127.0.0.1/postgres) and dropped at the end, and an embedded
Redis of its own.

    .venv/bin/python bench/dispatch.py           # about four minutes on 2 cores
    .venv/bin/python bench/dispatch.py --quick   # 10k and 100k enrollments, fewer emails
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import platform
import pstats
import re
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from campaigns.dispatch import claim_due
from campaigns.messengers import SmtpMessenger
from campaigns.sending import Sending, run_due
from campaigns.sequences import activate_sequence, import_sequence
from nurture.clock import utcnow
from nurture.config import load_settings, with_secret_key
from nurture.db import Database
from nurture.embedded_redis import EmbeddedRedis, free_port
from nurture.migrate import upgrade_database
from nurture.testing import scratch_database
from workers.connection import redis_connection
from workers.dispatcher import SEND_BATCH, Tick, dispatch_due_steps

SIZES = (10_000, 100_000, 1_000_000)
"""Enrollments in the table at each claim measurement; --quick leaves out the last."""

CLAIM = 10_000
"""Due steps each measured claim finds and takes (`limit`)."""

DUE_FRACTION = 0.1
"""Share of the largest table that is due in the fixed-fraction measurement."""

REPEATS = 5
"""Runs of each claim measurement; the median is printed."""

BACKLOG_CLAIMS = 10
"""Claims in a row without releasing, in the backlog measurement."""

EMAILS = 3_000
"""Emails the two workers send in the sending measurement (--quick: 600)."""

WORKERS = 2
"""`nurture worker` processes, and raw smtplib senders."""

PROFILED = 300
"""Emails sent in-process under cProfile, to say where a worker's time goes."""

JOB_TIME = re.compile(r"Successfully completed send_due_steps.* job in (\d+):(\d+):([\d.]+)s")
"""The line RQ logs when a sending job ends, with how long it ran."""

SENDING_TIMEOUT_S = 300.0
"""Longest the sending measurement may take before the run gives up."""

DOCUMENT = {
    "key": "bench",
    "name": "Bench",
    "entry": {"reasons": ["bad_timing"]},
    "send_window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "start": "00:00", "end": "23:59"},
    "stages": [{"key": "only", "name": "Only", "steps": [
        {"type": "email", "id": "hello", "template": "check-in"},
        {"type": "exit", "id": "done"},
    ]}],
}
"""One email, then done: each due enrollment is one email."""


# --- the database ----------------------------------------------------------------------------


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new database on the server of `server_url`, migrated; dropped on the way out."""
    with scratch_database(server_url, prefix="nurture_bench_dispatch") as database_url:
        upgrade_database(database_url)
        yield database_url


def bench_zone() -> str:
    """A zone in which the all-day window is open for the whole run (not near 23:59)."""
    return "UTC" if utcnow().hour < 23 else "Etc/GMT+12"


def active_sequence(database: Database) -> tuple[int, int]:
    """The benchmark's sequence, imported and active: (sequence id, version id)."""
    document = {**DOCUMENT, "send_window": {**DOCUMENT["send_window"], "timezone": bench_zone()}}
    with database.session_scope() as session:
        imported = import_sequence(session, document, now=utcnow())
        activate_sequence(session, imported.sequence.id, now=utcnow(), today=utcnow().date())
        return imported.sequence.id, imported.version.id


SEED_LEADS = """
INSERT INTO leads (email, first_name, company, attributes, lifecycle_stage, created_at, updated_at)
SELECT 'lead' || g || '@bench.example', 'Lee', 'Company ' || (g %% 5000), '{}'::jsonb,
       'nurturing', now(), now()
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""

SEED_ENROLLMENTS = """
INSERT INTO enrollments (lead_id, sequence_id, version_id, status, step_id, step_started_at,
                         next_due_at, enrolled_at)
SELECT l.id, %(sequence)s, %(version)s, 'active', 'hello', now() - interval '1 day',
       CASE WHEN l.id < %(first)s + %(due)s
            THEN now() - interval '1 day' * random()
            ELSE now() + interval '1 hour' + interval '90 days' * random() END,
       now() - interval '1 day'
FROM leads l WHERE l.id BETWEEN %(first)s AND %(last)s
"""


def seed(conn: psycopg.Connection, sequence: tuple[int, int], first: int, count: int,
         due: int) -> None:
    """Leads `first`… and one active enrollment each; the first `due` are due (in the past
    day), the others wait up to 90 days. Ids are the series' numbers (a fresh database)."""
    values = {"first": first, "last": first + count - 1, "due": due,
              "sequence": sequence[0], "version": sequence[1]}
    conn.execute(SEED_LEADS, values)
    conn.execute(SEED_ENROLLMENTS, values)
    conn.execute("VACUUM ANALYZE leads")
    conn.execute("VACUUM ANALYZE enrollments")


def release_claims(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE enrollments SET claimed_until = NULL WHERE claimed_until IS NOT NULL")
    conn.execute("VACUUM ANALYZE enrollments")


def timed_claim(database: Database, limit: int) -> float:
    """Seconds for claim_due to find and claim `limit` due enrollments, commit included."""
    started = time.perf_counter()
    with database.session_scope() as session:
        claimed = claim_due(session, now=utcnow(), limit=limit)
    elapsed = time.perf_counter() - started
    if len(claimed) != limit:
        raise RuntimeError(f"claimed {len(claimed)}, wanted {limit}")
    return elapsed


DUE_ROWS = """
  SELECT id FROM enrollments
  WHERE status IN ('scheduled', 'active', 'held') AND next_due_at <= now()
    AND (claimed_until IS NULL OR claimed_until < now())
  ORDER BY next_due_at LIMIT {limit} FOR UPDATE SKIP LOCKED"""
"""The search for due rows, the same in every form of the claim below."""

CLAIM_FORMS = {
    # what claim_due sends since 6a4d3e4
    "CTE": "WITH due AS MATERIALIZED (" + DUE_ROWS + ")\n"
           "UPDATE enrollments SET claimed_until = now() + interval '10 minutes' "
           "FROM due WHERE enrollments.id = due.id "
           "RETURNING enrollments.id, enrollments.next_due_at",
    # what claim_due sent before 6a4d3e4
    "IN": "UPDATE enrollments SET claimed_until = now() + interval '10 minutes' "
          "WHERE id IN (" + DUE_ROWS + ") RETURNING id, next_due_at",
    # the chosen ids as an array: always looked up by primary key
    "ANY": "UPDATE enrollments SET claimed_until = now() + interval '10 minutes' "
           "WHERE id = ANY(ARRAY(" + DUE_ROWS + ")) RETURNING id, next_due_at",
}
"""Claim statements, written out: timed through psycopg alone, and EXPLAINed."""


def timed_sql(conn: psycopg.Connection, sql: str, limit: int) -> float:
    """Seconds for one claim statement and its commit, straight through psycopg."""
    started = time.perf_counter()
    with conn.transaction():
        claimed = conn.execute(sql.format(limit=limit)).fetchall()
    elapsed = time.perf_counter() - started
    if len(claimed) != limit:
        raise RuntimeError(f"claimed {len(claimed)}, wanted {limit}")
    return elapsed


def reached_by(conn: psycopg.Connection, sql: str, limit: int) -> str:
    """How the plan reaches the rows it updates: a scan of every enrollment, or by key."""
    for (line,) in conn.execute("EXPLAIN " + sql.format(limit=limit)).fetchall():
        node = line.strip().removeprefix("->").strip().split("  (")[0]
        if node.endswith(" on enrollments") and not node.startswith("Update"):
            # the updated table's rows (the search for due ones reads enrollments_1)
            if node.startswith("Seq Scan"):
                return "scan"
            return "pk" if "pk_enrollments" in node else node
    return "?"


def claims(database: Database, server: str, sizes: tuple[int, ...]) -> None:
    print(f"\n1. Claiming {CLAIM:,} due steps, commit included; median of {REPEATS} runs, each "
          "from released claims (ms).\n   claim_due: the function; CTE: its statement through "
          "psycopg alone; IN: the statement it sent before 6a4d3e4; ANY: id = ANY(ARRAY(...)).\n"
          "   reached by: how each statement's plan reaches the rows it updates (scan of every "
          "enrollment, or pk lookups)")
    forms = ("claim_due", *CLAIM_FORMS)
    print(f"   {'enrollments':>11} {'due':>8} " + " ".join(f"{f:>9}" for f in forms)
          + f"  {'claim_due runs':<26} reached by (CTE IN ANY)")
    sequence = active_sequence(database)
    seeded = 0
    medians: dict[str, dict[str, float]] = {}
    with psycopg.connect(server, autocommit=True) as conn:

        def measure(label: str, total: int, due: int) -> None:
            runs: dict[str, list[float]] = {form: [] for form in forms}
            for _ in range(REPEATS):
                for form in forms:
                    release_claims(conn)
                    runs[form].append(
                        timed_claim(database, CLAIM) if form == "claim_due"
                        else timed_sql(conn, CLAIM_FORMS[form], CLAIM)
                    )
            release_claims(conn)
            medians[label] = {form: statistics.median(runs[form]) * 1000 for form in forms}
            shown = " ".join(f"{r * 1000:.0f}" for r in runs["claim_due"])
            reached = " ".join(reached_by(conn, sql, CLAIM) for sql in CLAIM_FORMS.values())
            print(f"   {total:>11,} {due:>8,} "
                  + " ".join(f"{medians[label][form]:>9.0f}" for form in forms)
                  + f"  {shown:<26} {reached}", flush=True)

        for size in sizes:
            started = time.perf_counter()
            seed(conn, sequence, seeded + 1, size - seeded, CLAIM if seeded == 0 else 0)
            seeded = size
            print(f"   (seeded to {size:,} in {time.perf_counter() - started:.0f} s)", flush=True)
            measure(str(size), size, CLAIM)

        largest = sizes[-1]
        extra = int(largest * DUE_FRACTION) - CLAIM
        conn.execute(
            "UPDATE enrollments SET next_due_at = now() - interval '1 day' * random() "
            "WHERE id IN (SELECT id FROM enrollments WHERE next_due_at > now() "
            f"ORDER BY id LIMIT {extra})"
        )
        conn.execute("VACUUM ANALYZE enrollments")
        measure("fraction", largest, CLAIM + extra)

        backlog = []
        for _ in range(min(BACKLOG_CLAIMS, (CLAIM + extra) // CLAIM)):
            backlog.append(timed_claim(database, CLAIM))
        release_claims(conn)
        print(f"   claim_due claim after claim, none released ({largest:,} enrollments, "
              f"{CLAIM + extra:,} due): " + " ".join(f"{b * 1000:.0f}" for b in backlog) + " ms")

    first, last = medians[str(sizes[0])], medians[str(largest)]
    for form in forms:
        growth = last[form] / first[form]
        verdict = "met" if growth <= 1.5 else "MISSED"
        print(f"   {form}: {sizes[0]:,} -> {largest:,} enrollments x{growth:.2f} "
              f"(target: within x1.5) {verdict}")
    if len(backlog) > 1:
        print(f"   backlog: claim {len(backlog)} takes x{backlog[-1] / backlog[0]:.1f} the first "
              "(claimed rows stay due and are walked past)")


# --- sending ---------------------------------------------------------------------------------


def sink_main(port: int, count: Any, sample_path: str, ready: Any) -> None:
    """An SMTP server that counts what it accepts and keeps the first email (a process)."""
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with count.get_lock():
                count.value += 1
                first = count.value == 1
            if first and not os.path.exists(sample_path):
                Path(sample_path).write_bytes(envelope.content)
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def raw_sender(port: int, message: bytes, count: int, go: Any) -> None:
    """smtplib over one connection: `count` copies of a prerendered email (a process)."""
    connection = smtplib.SMTP("127.0.0.1", port)
    go.wait()
    for number in range(count):
        connection.sendmail("nurture@localhost", [f"raw{number}@bench.example"], message)
    connection.quit()


def raw_rate(port: int, message: bytes, total: int, senders: int, count: Any) -> float:
    """Emails/s of `senders` processes sending `total` prerendered emails to the sink."""
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    share = total // senders
    processes = [context.Process(target=raw_sender, args=(port, message, share, go))
                 for _ in range(senders)]
    for process in processes:
        process.start()
    time.sleep(1.0)  # every sender connected and waiting for the word
    with count.get_lock():
        count.value = 0
    started = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    if count.value != share * senders:
        raise RuntimeError(f"the sink got {count.value} of {share * senders} raw emails")
    return share * senders / elapsed


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "nurture", "worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL what is left (with whatever it forked)."""
    children = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in children:
        if child.is_running():
            child.kill()


def cpu_seconds(pids: list[int]) -> float:
    """CPU (user + system) the processes used so far, their reaped children included."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def postgres_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def sending(database: Database, database_url: str, emails: int, workdir: Path) -> None:
    print(f"\n2. Emails/s: {emails:,} due enrollments, one email each, rendered and sent by "
          f"{WORKERS} `nurture worker` processes (jobs of {SEND_BATCH}) to an SMTP sink in its own "
          "process")
    with database.engine.begin() as conn:
        conn.execute(text("TRUNCATE leads, sequences RESTART IDENTITY CASCADE"))
    sequence = active_sequence(database)
    server = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(server, autocommit=True) as conn:
        seed(conn, sequence, 1, emails, emails)

    context = multiprocessing.get_context("spawn")
    count = context.Value("i", 0)
    ready = context.Event()
    port = free_port()
    sample = workdir / "sample.eml"
    sink = context.Process(target=sink_main, args=(port, count, str(sample), ready), daemon=True)
    sink.start()
    ready.wait(30)
    smtp_url = f"smtp://127.0.0.1:{port}"

    with EmbeddedRedis(workdir / "redis") as redis_server:
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_server.url,
               "SMTP_URL": smtp_url, "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
               "NURTURE_INSTANCE_PATH": str(workdir / "instance"),
               "NURTURE_FREQUENCY_CAP": "100/P1D", "PYTHONUNBUFFERED": "1"}
        logs = [workdir / f"worker{n}.log" for n in range(WORKERS)]
        workers = [start_worker(env, log) for log in logs]
        try:
            wait_until(lambda: all("Listening on" in log.read_text() for log in logs), 60,
                       "the workers to listen")
            redis = redis_connection(redis_server.url)
            groups: dict[str, Callable[[], list[int]]] = {
                "workers": lambda: [w.pid for w in workers], "SMTP sink": lambda: [sink.pid],
                "PostgreSQL": postgres_pids,  # backends that ended count in the postmaster's
            }
            before = {name: cpu_seconds(pids()) for name, pids in groups.items()}
            started = time.perf_counter()
            dispatch_due_steps(Tick(redis, database, "bench", utcnow()))
            wait_until(lambda: count.value >= emails, SENDING_TIMEOUT_S, "every email")
            elapsed = time.perf_counter() - started
            jobs_enqueued = -(-emails // SEND_BATCH)
            wait_until(lambda: len(job_times(logs)) >= jobs_enqueued, 60, "the last jobs to end")
            used = {name: cpu_seconds(pids()) - before[name] for name, pids in groups.items()}
        finally:
            for worker in workers:
                stop(worker)
    time.sleep(1.5)  # the backends flush their table statistics at most once a second
    with database.engine.connect() as conn:
        sent = conn.execute(text("SELECT count(*) FROM messages WHERE status = 'sent'")).scalar()
        updates, in_place = conn.execute(text(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'messages'"
        )).one()
    if sent != emails or count.value != emails:
        raise RuntimeError(f"{count.value} received, {sent} recorded sent, of {emails}")
    nurture_rate = emails / elapsed

    message = sample.read_bytes()
    raw = {senders: raw_rate(port, message, emails, senders, count) for senders in (WORKERS, 1)}
    sink.terminate()

    print(f"   nurture, {WORKERS} workers:  {nurture_rate:8.0f} emails/s  "
          f"({emails:,} in {elapsed:.1f} s, claim and enqueue included)")
    jobs = job_times(logs)
    if jobs:
        print(f"   {len(jobs)} jobs of {emails // len(jobs)}: median {statistics.median(jobs):.1f} s "
              f"a job, {statistics.median(jobs) / (emails / len(jobs)) * 1000:.0f} ms an email "
              "inside a job")
    print(f"   messages updated in place (HOT, no index entry written): {in_place:,} of "
          f"{updates:,} updates ({in_place / max(updates, 1):.0%})")
    print("   CPU an email during that run: " + ", ".join(
        f"{name} {seconds / emails * 1000:.2f} ms" for name, seconds in used.items())
        + f" (of {2 * 1000 / nurture_rate:.2f} ms the two cores had an email)")
    print(f"   raw smtplib, {WORKERS} processes: {raw[WORKERS]:8.0f} emails/s  "
          f"(the same {len(message):,}-byte email, prerendered)")
    print(f"   raw smtplib, 1 process:  {raw[1]:8.0f} emails/s")
    ratio = nurture_rate / raw[WORKERS]
    print(f"   ratio nurture / raw: {ratio:.1%} (target: at least 50%) "
          f"{'met' if ratio >= 0.5 else 'MISSED'}")
    profile(database, database_url, workdir)


def profile(database: Database, database_url: str, workdir: Path) -> None:
    """Where one worker's time goes: `run_due` in this process, timed, then under cProfile."""
    context = multiprocessing.get_context("spawn")
    count = context.Value("i", 0)
    ready = context.Event()
    port = free_port()
    sink = context.Process(target=sink_main, args=(port, count, str(workdir / "p.eml"), ready),
                           daemon=True)
    sink.start()
    ready.wait(30)
    with database.engine.begin() as conn:
        conn.execute(text("TRUNCATE leads, sequences RESTART IDENTITY CASCADE"))
    sequence = active_sequence(database)
    server = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(server, autocommit=True) as conn:
        seed(conn, sequence, 1, 2 * PROFILED, 2 * PROFILED)
    settings = with_secret_key(load_settings({
        "DATABASE_URL": database_url, "SMTP_URL": f"smtp://127.0.0.1:{port}",
        "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
        "NURTURE_FREQUENCY_CAP": "100/P1D", "NURTURE_INSTANCE_PATH": str(workdir / "instance"),
    }))
    with database.session_scope() as session:
        ids = claim_due(session, now=utcnow(), limit=2 * PROFILED)

    def sending_now() -> Sending:
        return Sending.from_settings(settings, messenger=SmtpMessenger(settings.smtp_url or ""))

    statements = {"statements": 0, "commits": 0}

    def on_execute(*_args: Any) -> None:
        statements["statements"] += 1

    def on_commit(*_args: Any) -> None:
        statements["commits"] += 1

    event.listen(database.engine, "before_cursor_execute", on_execute)
    event.listen(database.engine, "commit", on_commit)
    started = time.perf_counter()
    run_due(database, ids[:PROFILED], sending_now(), clock=utcnow)
    plain = (time.perf_counter() - started) / PROFILED
    event.remove(database.engine, "before_cursor_execute", on_execute)
    event.remove(database.engine, "commit", on_commit)
    print(f"   one worker's work in this process, no RQ: {plain * 1000:.1f} ms an email "
          f"({1 / plain:.0f} emails/s), {statements['statements'] / PROFILED:.0f} SQL statements "
          f"and {statements['commits'] / PROFILED:.0f} commits an email")

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    run_due(database, ids[PROFILED:], sending_now(), clock=utcnow)
    profiler.disable()
    elapsed = time.perf_counter() - started
    sink.terminate()
    stats = pstats.Stats(profiler)
    parts = {
        "engine.plan (the batch's state machine, queued rows)": ("campaigns/engine.py", "plan"),
        "sending.compose (render, track, inline CSS, MIME)": ("campaigns/sending.py", "compose"),
        "SmtpMessenger.send (flatten, smtplib)": ("campaigns/messengers.py", "send"),
        "handover.mark_sending (one statement an email)": ("campaigns/handover.py", "mark_sending"),
        "commits (the driver's, all of them)": ("sqlalchemy/engine/base.py", "_commit_impl"),
        "  of all that, waiting on PostgreSQL (psycopg wait)": ("psycopg/connection.py", "wait"),
    }
    print(f"   where that time goes (cProfile, {PROFILED} more emails; shares of the run):")
    for label, (path, name) in parts.items():
        total = sum(row[3] for key, row in stats.stats.items()  # type: ignore[attr-defined]
                    if key[0].endswith(path) and key[2] == name)
        print(f"     {label:<54} {total / elapsed:6.1%}")


def job_times(logs: list[Path]) -> list[float]:
    """Seconds each sending job ran, as the workers logged them."""
    times = []
    for log in logs:
        for hours, minutes, seconds in JOB_TIME.findall(log.read_text()):
            times.append(int(hours) * 3600 + int(minutes) * 60 + float(seconds))
    return times


# --- the run ---------------------------------------------------------------------------------


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"{memory:.0f} GiB, Python {platform.python_version()}; load average {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10k and 100k enrollments, 600 emails")
    parser.add_argument("--sending", action="store_true",
                        help="only the sending part (3,000 emails, or 600 with --quick)")
    options = parser.parse_args()
    sizes = SIZES[:2] if options.quick else SIZES
    emails = 600 if options.quick else EMAILS
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
    flags = "".join(f" --{name}" for name in ("quick", "sending") if getattr(options, name))
    print(f"bench/dispatch.py{flags}: {machine()}")
    began = time.perf_counter()
    with fresh_database(server) as database_url, tempfile.TemporaryDirectory() as tmp:
        database = Database(database_url)
        try:
            with database.engine.connect() as conn:
                print(f"PostgreSQL {conn.execute(text('SHOW server_version')).scalar()}; "
                      f"database {make_url(database_url).database} (dropped at the end)")
            plain = make_url(database_url).set(drivername="postgresql").render_as_string(False)
            if not options.sending:
                claims(database, plain, sizes)
            sending(database, database_url, emails, Path(tmp))
        finally:
            database.dispose()
    print(f"\ndone in {time.perf_counter() - began:.0f} s; load average now "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
