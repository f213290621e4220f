"""Engagement ingest benchmark (prints figures; not a test).

`nurture serve` (gunicorn, as in production) receives SendGrid Event Webhook batches of 1,000
signed events from 4 concurrent clients (processes, keep-alive connections, bodies signed
before the clock starts). Printed: events/s stored (from the first request to the last
answer, every event checked in the database afterwards), p50/p99 time to acknowledge a batch,
and, in the same run on the same database, the raw rate: the same rows (lead and message
resolved beforehand) inserted with one psycopg `executemany` per batch and a commit, from 4
processes. The events name 10,000 seeded leads and their messages; a tenth are redeliveries
of events already sent (duplicates, as SendGrid's retries make).

Runs against a fresh PostgreSQL database on the server of DATABASE_URL (default
postgresql://postgres@127.0.0.1/postgres), dropped at the end, and an embedded Redis.

    .venv/bin/python bench/ingest.py            # 100 batches (100,000 events)
    .venv/bin/python bench/ingest.py --quick    # 24 batches
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import make_url

from nurture.embedded_redis import EmbeddedRedis, free_port
from nurture.migrate import upgrade_database
from nurture.testing import scratch_database

CLIENTS = 4
"""Concurrent webhook clients, and raw inserting processes."""

BATCH = 1000
"""Events in one SendGrid request."""

LEADS = 10_000
"""Seeded leads, one sent message each; events name them."""

BATCHES = 100
"""Batches posted in a run (--quick: 24)."""

REDELIVERED = 0.1
"""Share of each batch that repeats events of an earlier batch."""

TYPES = (("delivered", 0.35), ("open", 0.35), ("click", 0.2), ("processed", 0.09),
         ("bounce", 0.01))
"""The mix of SendGrid event types in a batch."""

READY_TIMEOUT_S = 30.0

SEED = """
INSERT INTO sequences (key, name, status, priority, created_at, updated_at)
VALUES ('bench', 'Bench', 'active', 100, now(), now());
INSERT INTO sequence_versions (sequence_id, version, document, created_at)
SELECT id, 1, '{}'::jsonb, now() FROM sequences;
INSERT INTO leads (email, attributes, lifecycle_stage, created_at, updated_at)
SELECT 'lead' || g || '@bench.example', '{}'::jsonb, 'nurturing', now(), now()
FROM generate_series(1, {leads}) AS g;
INSERT INTO enrollments (lead_id, sequence_id, version_id, status, step_id, enrolled_at,
                         next_due_at)
SELECT l.id, 1, 1, 'active', 'wait', now(), now() + interval '30 days' FROM leads l;
INSERT INTO messages (message_id, enrollment_id, step_id, lead_id, to_address, subject, status,
                      attempts, links, created_at, sent_at)
SELECT 'bench-' || e.lead_id, e.id, 'hello', e.lead_id, 'lead' || e.lead_id || '@bench.example',
       'Hello', 'sent', 1, '{}'::jsonb, now() - interval '1 day', now() - interval '1 day'
FROM enrollments e
"""

RAW_INSERT = """
INSERT INTO engagement_events (lead_id, message_id, type, occurred_at, received_at, source,
    source_event_id, url, collateral_version_id, bounce_class, is_machine, machine_reason,
    properties, handled_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, %s, false, NULL, %s, NULL)
"""
"""The raw baseline's statement: the columns the ingest stores, straight through psycopg."""

STORED_TYPES = {"delivered": "delivered", "open": "open", "click": "click",
                "processed": "processed", "bounce": "bounce"}


# --- the events -------------------------------------------------------------------------------


def make_batches(count: int, rng: random.Random) -> list[list[dict[str, Any]]]:
    """`count` SendGrid batches; after the first, a tenth of each repeats earlier events."""
    names, weights = zip(*TYPES, strict=True)
    now = int(time.time())
    batches: list[list[dict[str, Any]]] = []
    serial = 0
    for index in range(count):
        batch: list[dict[str, Any]] = []
        if index:
            batch += rng.sample(batches[index - 1], int(BATCH * REDELIVERED))
        while len(batch) < BATCH:
            serial += 1
            lead = rng.randint(1, LEADS)
            kind = rng.choices(names, weights)[0]
            event = {
                "email": f"lead{lead}@bench.example", "timestamp": now - rng.randint(0, 3600),
                "smtp-id": f"<{serial}.bench@ismtpd>", "event": kind,
                "category": ["nurture"], "sg_event_id": f"bench-{serial:012d}",
                "sg_message_id": f"{serial:x}.filter0001.bench.0",
                "nurture_message_id": f"bench-{lead}",
            }
            if kind in ("open", "click"):
                event["useragent"] = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) "
                                      "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari")
                event["ip"] = f"198.51.100.{serial % 250}"
            if kind == "click":
                event["url"] = f"https://www.example.com/guide?l={lead}"
            if kind == "bounce":
                event |= {"type": "blocked", "reason": "450 mailbox busy", "status": "4.2.0"}
            batch.append(event)
        rng.shuffle(batch)
        batches.append(batch)
    return batches


def signed_requests(
    batches: list[list[dict[str, Any]]], key: ec.EllipticCurvePrivateKey
) -> list[tuple[bytes, dict[str, str]]]:
    """Each batch's body and the two headers SendGrid signs it with."""
    requests = []
    for batch in batches:
        body = json.dumps(batch).encode()
        stamp = str(int(time.time()))
        signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        requests.append((body, {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }))
    return requests


# --- the webhook clients ----------------------------------------------------------------------


def post_batches(port: int, requests: list[tuple[bytes, dict[str, str]]],
                 start: Any, results: Any) -> None:
    """One client: its share of the batches, one after the other on a keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start.wait()
    times, accepted = [], 0
    for body, headers in requests:
        began = time.perf_counter()
        connection.request("POST", "/webhooks/sendgrid", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        times.append(time.perf_counter() - began)
        if response.status != 200:
            results.put(f"answered {response.status}: {answer[:300]!r}")
            return
        accepted += json.loads(answer)["accepted"]
    results.put((times, accepted, time.perf_counter()))


def webhook_run(port: int, requests: list[tuple[bytes, dict[str, str]]]) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    shares = [requests[i::CLIENTS] for i in range(CLIENTS)]
    clients = [context.Process(target=post_batches, args=(port, share, start, results))
               for share in shares]
    for client in clients:
        client.start()
    time.sleep(0.5)  # every client connected and waiting (setup, not measured)
    began = time.perf_counter()
    start.set()
    outcomes = [results.get(timeout=600) for _ in clients]
    for client in clients:
        client.join()
    failures = [outcome for outcome in outcomes if isinstance(outcome, str)]
    if failures:
        raise RuntimeError("; ".join(failures))
    ended = max(outcome[2] for outcome in outcomes)
    times = sorted(t for outcome in outcomes for t in outcome[0])
    return {"seconds": ended - began, "accepted": sum(o[1] for o in outcomes), "times": times}


# --- the raw baseline -------------------------------------------------------------------------


def raw_rows(batches: list[list[dict[str, Any]]], now: datetime) -> list[list[tuple[Any, ...]]]:
    """The rows the ingest stores for each batch (new events only), lead and message resolved
    from the seeded ids (lead n's message has id n), source `raw` so they do not collide."""
    seen: set[str] = set()
    rows = []
    for batch in batches:
        new = []
        for event in batch:
            if event["sg_event_id"] in seen:
                continue
            seen.add(event["sg_event_id"])
            lead = int(event["nurture_message_id"].removeprefix("bench-"))
            properties = {"provider_type": event["event"], "raw": event}
            if "useragent" in event:
                properties |= {"user_agent": event["useragent"], "ip": event["ip"]}
            new.append((lead, lead, STORED_TYPES[event["event"]],
                        datetime.fromtimestamp(event["timestamp"], UTC), now, "raw",
                        event["sg_event_id"], event.get("url"),
                        "soft" if event["event"] == "bounce" else None,
                        json.dumps(properties)))
        rows.append(new)
    return rows


def raw_insert(dsn: str, batches: list[list[tuple[Any, ...]]], start: Any, results: Any) -> None:
    with psycopg.connect(dsn) as conn:
        backend = psutil.Process(conn.info.backend_pid)
        start.wait()
        began, cpu = time.perf_counter(), cpu_seconds([backend])
        for rows in batches:
            with conn.cursor() as cursor:
                cursor.executemany(RAW_INSERT, rows)
            conn.commit()
        results.put((sum(len(r) for r in batches), time.perf_counter() - began,
                     cpu_seconds([backend]) - cpu))


def raw_run(dsn: str, rows: list[list[tuple[Any, ...]]]) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=raw_insert, args=(dsn, rows[i::CLIENTS], start, results))
               for i in range(CLIENTS)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # every process connected
    began = time.perf_counter()
    start.set()
    outcomes = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return {"rows": sum(o[0] for o in outcomes), "seconds": time.perf_counter() - began,
            "db_cpu": sum(o[2] for o in outcomes)}


# --- the server -------------------------------------------------------------------------------


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    nurture = Path(sys.executable).with_name("nurture")
    with open(log, "ab") as out:
        process = subprocess.Popen([str(nurture), "serve", "--port", str(port)], env=env,
                                   stdout=out, stderr=out, process_group=0)
    deadline = time.monotonic() + READY_TIMEOUT_S
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


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU of these processes (those gone meanwhile count as 0)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def server_processes(pid: int) -> list[psutil.Process]:
    """`nurture serve` (the gunicorn master) and its workers."""
    master = psutil.Process(pid)
    return [master, *master.children(recursive=True)]


def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving `database` now (by its process title)."""
    found = {}
    for process in psutil.process_iter(["name", "cmdline"]):
        title = " ".join(process.info["cmdline"] or ())
        if process.info["name"] == "postgres" and f" {database} " in f" {title} ":
            found[process.pid] = cpu_seconds([process])
    return found


def backend_cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the backends used between two snapshots (connections opened meanwhile from 0)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def stored_count(dsn: str, source: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM engagement_events WHERE source = %s",
                            (source,)).fetchone()[0]


# --- the run ----------------------------------------------------------------------------------


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"{memory:.0f} GiB, Python {platform.python_version()}; load average {load}")


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, round(share * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 batches")
    options = parser.parse_args()
    count = 24 if options.quick else BATCHES
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
    print(f"bench/ingest.py{' --quick' if options.quick else ''}: {machine()}")
    rng = random.Random(4)
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    batches = make_batches(count, rng)
    requests = signed_requests(batches, key)
    distinct = len({e["sg_event_id"] for batch in batches for e in batch})
    began = time.perf_counter()
    with scratch_database(server, prefix="nurture_bench_ingest") as url, \
            tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis:
        upgrade_database(url)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in SEED.replace("{leads}", str(LEADS)).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("VACUUM ANALYZE")
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {version}; database {make_url(url).database} (dropped at the end); "
              f"{LEADS:,} leads with a sent message each")
        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis.url,
               "NURTURE_INSTANCE_PATH": str(Path(tmp) / "instance"),
               "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789abcdef",
               "SENDGRID_WEBHOOK_PUBLIC_KEY": public}
        process = start_server(env, port, Path(tmp) / "serve.log")
        try:
            webhook_run(port, requests[:2])  # warm up: each gunicorn worker imports and connects
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE engagement_events, suppressions RESTART IDENTITY CASCADE")
            servers, name = server_processes(process.pid), make_url(url).database
            web_cpu, db_cpu = cpu_seconds(servers), backend_cpu(name)
            figures = webhook_run(port, requests)
            figures["web_cpu"] = cpu_seconds(servers) - web_cpu
            figures["db_cpu"] = backend_cpu_spent(db_cpu, backend_cpu(name))
        except RuntimeError:
            print((Path(tmp) / "serve.log").read_text()[-3000:])
            raise
        finally:
            process.terminate()
            process.wait(timeout=10)
        stored = stored_count(dsn, "sendgrid")
        if stored != distinct or figures["accepted"] != distinct:
            raise RuntimeError(f"{distinct} distinct events sent, {figures['accepted']} accepted, "
                               f"{stored} stored")
        raw = raw_run(dsn, raw_rows(batches, datetime.now(UTC)))
        if stored_count(dsn, "raw") != distinct:
            raise RuntimeError("the raw run did not store every row")

    events = count * BATCH
    rate = stored / figures["seconds"]
    raw_rate = raw["rows"] / raw["seconds"]
    p50, p99 = (percentile(figures["times"], s) * 1000 for s in (0.5, 0.99))
    print(f"\n{count} batches of {BATCH:,} events ({events:,} events, {distinct:,} distinct, "
          f"{events - distinct:,} redelivered), {CLIENTS} concurrent clients, "
          "nurture serve (gunicorn 2 workers x 4 threads)")
    print(f"   stored:  {rate:8.0f} events/s ({stored:,} new events in "
          f"{figures['seconds']:.1f} s; {events / figures['seconds']:.0f} events/s received)")
    print(f"   acknowledgement of a batch: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
          f"max {figures['times'][-1] * 1000:.0f} ms")
    print(f"   raw executemany, {CLIENTS} processes: {raw_rate:8.0f} rows/s "
          f"({raw['rows']:,} rows in {raw['seconds']:.1f} s)")
    print(f"   ratio stored / raw: {rate / raw_rate:.1%}")
    web_ms, db_ms = (figures[k] / count * 1000 for k in ("web_cpu", "db_cpu"))
    print(f"   CPU a batch: nurture serve {web_ms:.0f} ms, PostgreSQL {db_ms:.0f} ms "
          f"(raw: PostgreSQL {raw['db_cpu'] / count * 1000:.0f} ms); the backends of this "
          "database only")
    print(f"   on {os.cpu_count()} cores left to it alone, that CPU would allow about "
          f"{os.cpu_count() * BATCH / ((web_ms + db_ms) / 1000):.0f} events/s")
    print("   targets: >= 10,000 events/s {}; >= 50% of raw {}; p99 < 500 ms {}".format(
        "met" if rate >= 10_000 else "MISSED", "met" if rate >= raw_rate / 2 else "MISSED",
        "met" if p99 < 500 else "MISSED"))
    print(f"\ndone in {time.perf_counter() - began:.0f} s; load average now "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
