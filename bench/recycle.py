"""Recycle-to-sales latency benchmark (prints figures; not a test).

The running system as separate processes: `nurture serve` (gunicorn), `nurture worker
--processes N` and `nurture dispatcher`, on a fresh PostgreSQL database and an embedded Redis.
4 clients post mixed engagement to `POST /api/v1/events` at 1,000 events/s in total (batches
of 25 on keep-alive connections, paced by the clock) for 60 s. Most events are noise for
leads that can never qualify (no fit); one batch in ten carries a `meeting_booked` (40
points) for a lead with a good fit, which pushes it over the default model's thresholds. A
CRM receiver (an HTTP server in this process) checks each `lead.recycled` signature.

Printed: p50/p99/max from the acknowledgement of the request that carried the qualifying
event to (a) the handoff stored (the row's `created_at`, the scoring job's clock) and (b) the
signed CRM webhook received; how many qualified, were handed off and reached the CRM, and
any duplicates. Target: p99 < 1 s.

    .venv/bin/python bench/recycle.py            # 60 s
    .venv/bin/python bench/recycle.py --quick    # 15 s
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy.engine import make_url

from nurture.accounts.services import create_token
from nurture.db import Database
from nurture.embedded_redis import EmbeddedRedis, free_port
from nurture.migrate import upgrade_database
from nurture.models import Role
from nurture.scoring.lifecycle import ensure_default_model
from nurture.testing import scratch_database

RATE = 1000
"""Events per second, all clients together."""

CLIENTS = 4
BATCH = 25
"""Events in one request."""

QUALIFYING_EVERY = 10
"""One request in this many carries a qualifying event (4 a second at the default rate)."""

NOISE_LEADS = 20_000
"""Leads with no fit: their engagement never qualifies them."""

TARGET_LEADS = 2_000
"""Leads with a good fit (40 points under the default model), rejected 60 days ago."""

REPS = 5
WORKER_PROCESSES = 2
SETTLE_S = 60.0
"""After the last request: how long to wait for the last handoffs and webhooks."""

SECRET = "bench-crm-secret"

NOISE_TYPES = (("page_view", 0.6), ("content_download", 0.15), ("webinar_registered", 0.15),
               ("email_reply", 0.1))

SEED = """
INSERT INTO users (email, role, timezone, is_active, created_at)
SELECT 'rep' || g || '@bench.example', 'rep', 'UTC', true, now() FROM generate_series(1, {reps}) g;
INSERT INTO leads (email, title, industry, company_size, country, attributes, lifecycle_stage,
                   created_at, updated_at)
SELECT 'noise' || g || '@bench.example', 'Intern', 'retail', 5, 'BR', '{{}}'::jsonb,
       'nurturing', now(), now() FROM generate_series(1, {noise}) g;
INSERT INTO leads (email, title, industry, company_size, country, attributes, lifecycle_stage,
                   created_at, updated_at)
SELECT 'target' || g || '@bench.example', 'VP Sales', 'software', 300, 'DE', '{{}}'::jsonb,
       'nurturing', now(), now() FROM generate_series(1, {targets}) g;
INSERT INTO rejections (lead_id, reason, rep_email, rejected_at, created_at)
SELECT id, 'no_budget', 'rep' || (1 + id % {reps}) || '@bench.example',
       now() - interval '60 days', now() - interval '60 days' FROM leads
"""


# --- the CRM ----------------------------------------------------------------------------------


class Crm:
    """Receives `lead.recycled`, checks the signature, notes when each lead's arrived."""

    def __init__(self) -> None:
        self.received: dict[int, float] = {}
        self.deliveries: dict[str, int] = {}
        self.bad_signatures = 0
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fields = dict(p.split("=", 1) for p in self.headers["Nurture-Signature"].split(","))
                expected = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + body,
                                    hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, fields["v1"]):
                    crm.bad_signatures += 1
                payload = json.loads(body)
                crm.deliveries[payload["id"]] = crm.deliveries.get(payload["id"], 0) + 1
                crm.received.setdefault(payload["lead"]["id"], at)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/crm"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# --- the clients ------------------------------------------------------------------------------


def client(index: int, port: int, token: str, seconds: float, targets: list[int],
           noise: tuple[int, int], rate: int, start: Any, results: Any) -> None:
    """Post batches at this client's share of the rate; note each qualifying lead's ack time."""
    rng = random.Random(index)
    names, weights = zip(*NOISE_TYPES, strict=True)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    interval = BATCH * CLIENTS / rate
    acks: dict[int, float] = {}
    sent = errors = 0
    refused: dict[int, int] = {}
    start.wait()
    began = time.monotonic()
    request = 0
    while time.monotonic() - began < seconds:
        due = began + request * interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the open-loop schedule
        now = datetime.now(UTC).isoformat()
        events = [{"id": f"c{index}-{request}-{n}", "lead_id": rng.randint(*noise),
                   "type": rng.choices(names, weights)[0], "occurred_at": now,
                   "properties": {"url": "https://www.example.com/blog"}}
                  for n in range(BATCH)]
        qualifying = None
        if request % QUALIFYING_EVERY == index % QUALIFYING_EVERY and targets:
            qualifying = targets.pop()
            events[rng.randrange(BATCH)] = {
                "id": f"q-{qualifying}", "lead_id": qualifying, "type": "meeting_booked",
                "occurred_at": now, "properties": {"meeting": "demo"}}
        connection.request("POST", "/api/v1/events", body=json.dumps({"events": events}),
                           headers=headers)
        response = connection.getresponse()
        response.read()
        acked = time.time()
        if response.status != 202:
            errors += 1
            refused[response.status] = refused.get(response.status, 0) + 1
        elif qualifying is not None:
            acks[qualifying] = acked
        sent += BATCH
        request += 1
    results.put((acks, sent, errors, time.monotonic() - began, refused))


# --- the processes ----------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds (user + system) each part of the system spent, sampled from /proc by psutil:
    a process tree per part, and PostgreSQL's backends serving the bench database. The figure
    per event is less affected by the rest of the machine's load than wall time."""

    def __init__(self, parts: dict[str, subprocess.Popen[bytes]], database: str) -> None:
        self.parts = parts
        self.database = database
        self.seen: dict[str, dict[int, float]] = {name: {} for name in (*parts, "postgres")}
        self.base: dict[str, dict[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, process in self.parts.items():
            try:
                root = psutil.Process(process.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in tree:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                self.seen[name][proc.pid] = times.user + times.system
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or ())
            if not cmdline.startswith("postgres:") or f" {self.database} " not in cmdline:
                continue
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            self.seen["postgres"][proc.pid] = times.user + times.system

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def start(self) -> None:
        self._sample()
        self.base = {name: dict(pids) for name, pids in self.seen.items()}
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        return {name: sum(cpu - self.base[name].get(pid, 0.0) for pid, cpu in pids.items())
                for name, pids in self.seen.items()}



def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} cores, "
            f"{memory:.0f} GiB; load average {load}")


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, round(share * (len(values) - 1)))]


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`nurture serve`, once it answers /healthz."""
    process = start(env, log, "serve", "--port", str(port))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nurture serve exited; see {log}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.1)  # polling for readiness
    process.kill()
    raise RuntimeError("nurture serve did not answer /healthz")


# --- the run ----------------------------------------------------------------------------------


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    nurture = Path(sys.executable).with_name("nurture")
    with open(log, "ab") as out:
        return subprocess.Popen([str(nurture), *args], env=env, stdout=out, stderr=out,
                                process_group=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 s instead of 60")
    parser.add_argument("--rate", type=int, default=RATE, help="events per second")
    parser.add_argument("--workers", type=int, default=WORKER_PROCESSES,
                        help="RQ worker processes")
    options = parser.parse_args()
    seconds = 15.0 if options.quick else 60.0
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
    print(f"bench/recycle.py{' --quick' if options.quick else ''} --rate {options.rate} "
          f"--workers {options.workers}: {machine()}")
    crm = Crm()
    with scratch_database(server, prefix="nurture_bench_recycle") as url, \
            tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis:
        upgrade_database(url)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in SEED.format(reps=REPS, noise=NOISE_LEADS,
                                         targets=TARGET_LEADS).split(";"):
                if statement.strip():
                    conn.execute(statement)
            noise = conn.execute("SELECT min(id), max(id) FROM leads WHERE email LIKE "
                                 "'noise%'").fetchone()
            targets = [r[0] for r in conn.execute(
                "SELECT id FROM leads WHERE email LIKE 'target%' ORDER BY id")]
            conn.execute("VACUUM ANALYZE")
        database = Database(url)
        with database.session_scope() as session:
            ensure_default_model(session, now=datetime.now(UTC))
            _, token = create_token(session, "bench", Role.ADMIN, now=datetime.now(UTC))
        database.dispose()
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis.url,
               "NURTURE_INSTANCE_PATH": str(Path(tmp) / "instance"),
               "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789abcdef",
               "CRM_WEBHOOK_URL": crm.url, "CRM_WEBHOOK_SECRET": SECRET}
        port = free_port()
        log = Path(tmp) / "processes.log"
        web = start_server(env, port, log)
        others = [start(env, log, "worker", "--processes", str(options.workers)),
                  start(env, log, "dispatcher")]
        meter = CpuMeter({"web": web, "worker": others[0], "dispatcher": others[1]},
                         make_url(url).database or "")
        try:
            time.sleep(3)  # workers and dispatcher up (setup, not measured)
            meter.start()
            figures = drive(port, token, seconds, targets, noise, options.rate)
            expected = set(figures["acks"])
            deadline = time.monotonic() + SETTLE_S
            while time.monotonic() < deadline and not expected <= set(crm.received):
                time.sleep(0.5)  # waiting for the last webhooks, with a deadline
            figures["cpu"] = meter.stop()
            with psycopg.connect(dsn) as conn:
                stored = {lead: at.timestamp() for lead, at in conn.execute(
                    "SELECT lead_id, created_at FROM handoffs")}
                handoffs_per_lead = conn.execute(
                    "SELECT coalesce(max(c), 0) FROM (SELECT count(*) c FROM handoffs "
                    "GROUP BY lead_id) x").fetchone()[0]
                attempts = conn.execute("SELECT count(*) FROM notification_attempts "
                                        "WHERE NOT ok").fetchone()[0]
        except BaseException:
            print(log.read_text()[-3000:])
            raise
        finally:
            for process in (web, *others):
                process.terminate()
            for process in (web, *others):
                process.wait(timeout=30)
    report(figures, stored, crm, handoffs_per_lead, attempts, options.workers)


def drive(port: int, token: str, seconds: float, targets: list[int],
          noise: tuple[int, int], rate: int) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    go, results = context.Event(), context.Queue()
    shares = [targets[i::CLIENTS] for i in range(CLIENTS)]
    processes = [context.Process(target=client, args=(i, port, token, seconds, shares[i],
                                                      noise, rate, go, results))
                 for i in range(CLIENTS)]
    for process in processes:
        process.start()
    time.sleep(0.5)
    go.set()
    outcomes = [results.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    acks: dict[int, float] = {}
    for outcome in outcomes:
        acks.update(outcome[0])
    refused: dict[int, int] = {}
    for outcome in outcomes:
        for status, n in outcome[4].items():
            refused[status] = refused.get(status, 0) + n
    return {"acks": acks, "sent": sum(o[1] for o in outcomes),
            "errors": sum(o[2] for o in outcomes), "seconds": max(o[3] for o in outcomes),
            "refused": refused}


def report(figures: dict[str, Any], stored: dict[int, float], crm: Crm, per_lead: int,
           failed_attempts: int, workers: int) -> None:
    acks = figures["acks"]
    to_stored = sorted(stored[lead] - at for lead, at in acks.items() if lead in stored)
    to_crm = sorted(crm.received[lead] - at for lead, at in acks.items() if lead in crm.received)
    print(f"\n{figures['sent']:,} events in {figures['seconds']:.1f} s "
          f"({figures['sent'] / figures['seconds']:.0f} events/s sent, {figures['errors']} "
          f"requests refused {figures['refused'] or ''}), {CLIENTS} clients, batches of {BATCH}; "
          f"{workers} worker processes, 1 dispatcher, gunicorn defaults")
    print(f"   qualifying events acknowledged: {len(acks)}; handoffs stored: {len(stored)}; "
          f"webhooks received: {len(crm.received)} (deliveries {sum(crm.deliveries.values())}, "
          f"bad signatures {crm.bad_signatures}, failed attempts {failed_attempts}); "
          f"most handoffs for one lead: {per_lead}")
    stored_to_crm = sorted(crm.received[lead] - at for lead, at in stored.items()
                           if lead in crm.received)
    for name, values in (("ack -> handoff stored", to_stored), ("ack -> CRM webhook", to_crm),
                         ("handoff stored -> CRM webhook", stored_to_crm)):
        if not values:
            print(f"   {name}: no data")
            continue
        p50, p99 = (percentile(values, s) * 1000 for s in (0.5, 0.99))
        print(f"   {name}: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {values[-1] * 1000:.0f} ms "
              f"({len(values)} leads)")
    if to_crm:
        met = percentile(to_crm, 0.99) < 1.0 and len(to_crm) == len(acks)
        print(f"   target p99 < 1 s to the CRM: {'met' if met else 'MISSED'}")
    cpu = figures["cpu"]
    per_event = ", ".join(f"{name} {seconds * 1e6 / figures['sent']:.0f} µs"
                          for name, seconds in cpu.items())
    print(f"   CPU per event sent (user + system, load and backlog included): {per_event}; "
          f"total {sum(cpu.values()) * 1e6 / figures['sent']:.0f} µs")
    print(f"   load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
