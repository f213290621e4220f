"""Intake benchmark (prints figures; not a test).

1. POST /api/v1/leads from concurrent clients against `nurture serve` on a free loopback port,
   next to two raw baselines measured in the same run: GET /healthz through the same server,
   and single-row INSERT + COMMIT straight into PostgreSQL from as many connections.
2. `nurture import-leads` of generated files of 10,000, 100,000 and 1,000,000 rows, each next
   to a raw baseline: COPY of the same file straight into a table (a bare one, and one shaped
   like `leads` with its indexes).

Everything runs against a fresh PostgreSQL database created on the server of DATABASE_URL
(default postgresql://postgres@127.0.0.1/postgres) and dropped at the end.

    .venv/bin/python bench/intake.py            # about five minutes on 2 cores
    .venv/bin/python bench/intake.py --quick    # 10k and 100k rows only
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from sqlalchemy.engine import make_url

from nurture.config import load_settings
from nurture.testing import scratch_database

SIZES = (10_000, 100_000, 1_000_000)
"""Rows of the generated files; --quick leaves out the last."""

CLIENTS = 4
"""Concurrent API clients (threads with one keep-alive connection each)."""

REQUESTS = 4_000
"""API requests in all, shared among the clients; the baselines make as many."""

OWNERS = 50
"""Distinct owner_email values in generated rows: reps own many leads each."""

COMPANIES = 5_000
"""Distinct company domains in generated rows."""

TARGET_ROWS_PER_SECOND = 20_000
"""Issue #2: rows/s that import-leads must sustain into PostgreSQL, at 1,000,000 rows."""

TARGET_PEAK_MIB = 200
"""Issue #2: the import's largest process stays under this from 10,000 to 1,000,000 rows."""

FIRST = ["ann", "bob", "chen", "dana", "eve", "farid", "gita", "hugo", "ines", "jon", "kai",
         "lena", "mia", "noor", "oskar", "priya"]
LAST = ["lee", "smith", "garcia", "muller", "rossi", "kowalski", "ng", "okafor", "silva",
        "dubois"]
SYLLABLES = ["no", "va", "ter", "lin", "ko", "ra", "mex", "sol", "tri", "dyn", "ex", "cor", "ad",
             "bel", "on", "ix"]
COUNTRIES = ["US", "DE", "FR", "GB", "NL", "ES", "IT", "CA", "BR", "IN", "JP", "SE"]
TIMEZONES = ["America/New_York", "Europe/Berlin", "Europe/Paris", "Europe/London", "Asia/Tokyo",
             "America/Sao_Paulo"]
INDUSTRIES = ["Software", "Retail", "Manufacturing", "Finance", "Healthcare"]
TITLES = ["CTO", "VP Marketing", "Head of IT", "Buyer", "Engineer", "CFO"]
CSV_HEADER = ["email", "first_name", "last_name", "company", "title", "industry", "company_size",
              "country", "timezone", "source", "owner_email", "crm_id", "attributes.plan"]


# Generated leads: realistic columns, unique emails (about 27 characters), few owners.


def leads(count: int, *, seed: int = 1, prefix: str = "") -> Iterator[list[str]]:
    rnd = random.Random(seed)
    companies = ["".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 4)))
                 for _ in range(COMPANIES)]
    for i in range(count):
        first, last, company = rnd.choice(FIRST), rnd.choice(LAST), rnd.choice(companies)
        yield [f"{first}.{last}.{prefix}{_base36(i)}@{company}.com", first.title(), last.title(),
               f"{company.title()} Inc", rnd.choice(TITLES), rnd.choice(INDUSTRIES),
               str(rnd.randrange(1, 50_000)), rnd.choice(COUNTRIES), rnd.choice(TIMEZONES),
               "webinar", f"rep{rnd.randrange(OWNERS)}@nurture-demo.com", f"CRM-{prefix}{i:08d}",
               rnd.choice(["free", "pro", "enterprise"])]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        n, r = divmod(n, 36)
        text = digits[r] + text
        if not n:
            return text


def write_file(path: Path, count: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_HEADER)
        writer.writerows(leads(count))
    return path


# The database and the processes under test.


def fresh_database(server_url: str) -> AbstractContextManager[str]:
    """A new database on the server of `server_url`, dropped afterwards."""
    return scratch_database(server_url, prefix="nurture_bench")


def nurture(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "nurture", *args], env=env, check=True,
                          capture_output=True, text=True, timeout=600)
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def web_server(env: dict[str, str], log: Path) -> Iterator[int]:
    """`nurture serve` (gunicorn, its default workers and threads) on a free loopback port."""
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "nurture", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=out, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get_status(port, "/healthz") == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nurture serve did not come up; see {log}")
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def get_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


# 1. The API.


def concurrently(clients: int, total: int, work: Callable[[int], Callable[[int], None]]
                 ) -> tuple[float, list[float]]:
    """Run `total` calls shared by `clients` threads; (seconds, per-call latencies).

    `work(client)` prepares a client (its connection) and returns the call, given a number.
    """
    latencies: list[list[float]] = [[] for _ in range(clients)]
    ready = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        call = work(k)
        ready.wait()
        for i in range(k, total, clients):
            start = time.perf_counter()
            call(i)
            latencies[k].append(time.perf_counter() - start)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, [x for per_client in latencies for x in per_client]


def http_calls(port: int, method: str, path: str, token: str, bodies: list[bytes] | None
               ) -> Callable[[int], Callable[[int], None]]:
    def prepare(_client: int) -> Callable[[int], None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def call(i: int) -> None:
            conn.request(method, path, body=bodies[i] if bodies else None, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status not in (200, 201):
                raise RuntimeError(f"{method} {path}: HTTP {response.status}")

        return call

    return prepare


def insert_calls(url: str, rows: list[list[str]]) -> Callable[[int], Callable[[int], None]]:
    def prepare(_client: int) -> Callable[[int], None]:
        conn = psycopg.connect(url, autocommit=True)

        def call(i: int) -> None:
            r = rows[i]
            conn.execute(
                "INSERT INTO bench_plain_leads (email, first_name, company, country, owner_email,"
                " attributes) VALUES (%s, %s, %s, %s, %s, %s)",
                (r[0], r[1], r[3], r[7], r[10], json.dumps({"plan": r[12]})),
            )

        return call

    return prepare


def describe(label: str, seconds: float, latencies: list[float]) -> tuple[str, float]:
    rate = len(latencies) / seconds
    cuts = statistics.quantiles(latencies, n=100)
    return (f"{label}: {rate:,.0f}/s, p50 {cuts[49] * 1000:.1f} ms, "
            f"p99 {cuts[98] * 1000:.1f} ms"), rate


def bench_api(env: dict[str, str], workdir: Path, clients: int, total: int) -> list[str]:
    token = nurture(env, "tokens", "create", "--name", "bench").splitlines()[0].strip()
    rows = list(leads(total, seed=2, prefix="api"))
    bodies = [json.dumps({
        "email": r[0], "first_name": r[1], "last_name": r[2], "company": r[3], "title": r[4],
        "company_size": int(r[6]), "country": r[7], "timezone": r[8], "source": r[9],
        "owner_email": r[10], "crm_id": r[11], "attributes": {"plan": r[12]},
    }).encode() for r in rows]
    plain = psycopg_url(env["DATABASE_URL"])
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_plain_leads (id bigserial PRIMARY KEY, email text NOT NULL"
                     " UNIQUE, first_name text, company text, country text, owner_email text,"
                     " attributes jsonb, created_at timestamptz NOT NULL DEFAULT now())")
    lines = []
    with web_server(env, workdir / "serve.log") as port:
        posted, rate = describe(
            f"POST /api/v1/leads, {clients} clients, {total} leads",
            *concurrently(clients, total, http_calls(port, "POST", "/api/v1/leads", token, bodies)),
        )
        health, health_rate = describe(
            "  baseline GET /healthz, same server and clients",
            *concurrently(clients, total, http_calls(port, "GET", "/healthz", token, None)),
        )
    inserts, insert_rate = describe(
        f"  baseline single-row INSERT + COMMIT, {clients} connections",
        *concurrently(clients, total, insert_calls(plain, rows)),
    )
    with psycopg.connect(plain) as conn:
        stored = conn.execute("SELECT count(*) FROM leads").fetchone()[0]
        assert stored == total, f"{stored} leads stored, {total} posted"
    lines.append(posted)
    lines.append(f"{health} (API at {rate / health_rate:.2f}x of it)")
    lines.append(f"{inserts} (API at {rate / insert_rate:.2f}x of it)")
    return lines


# 2. import-leads.


@dataclass
class ImportRun:
    seconds: float
    largest_rss_kib: int  # the largest single process (main or a worker), from wait4
    tree_rss_kib: int  # all the command's processes together, sampled
    cpu_seconds: float  # user + system of the command's processes
    database_cpu_seconds: float  # user + system of the PostgreSQL backends serving it
    load_average: float  # of the machine when the run started (other work shares the CPUs)
    summary: str


def run_import(env: dict[str, str], path: Path) -> ImportRun:
    database = make_url(env["DATABASE_URL"]).database or ""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "nurture", "import-leads", str(path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    tree_peak, backends = 0, {}
    watched = psutil.Process(proc.pid)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            members = [watched, *watched.children(recursive=True)]
            tree_peak = max(tree_peak, sum(p.memory_info().rss for p in members) // 1024)
        except psutil.Error:
            pass  # a process ended while we looked
        backends.update(_backend_cpu(database))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"import-leads of {path} failed ({proc.returncode}): {out}")
    return ImportRun(seconds, usage.ru_maxrss, tree_peak, usage.ru_utime + usage.ru_stime,
                     sum(backends.values()), load, out.strip())


def _backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to `database`."""
    found = {}
    for process in psutil.process_iter(["cmdline"]):
        try:
            title = " ".join(process.info["cmdline"] or ())
            if title.startswith("postgres:") and f" {database} " in f"{title} ":
                times = process.cpu_times()
                found[process.pid] = times.user + times.system
        except psutil.Error:
            continue
    return found


def copy_file(url: str, path: Path, table: str, columns: str) -> float:
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur, path.open("rb") as file, cur.copy(
            f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER true)"
        ) as copy:
            while chunk := file.read(1024 * 1024):
                copy.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - start
        conn.execute(f"TRUNCATE {table}")
        conn.commit()
    return seconds


def bench_import(env: dict[str, str], workdir: Path, sizes: tuple[int, ...]) -> list[str]:
    url = psycopg_url(env["DATABASE_URL"])
    columns = ", ".join([*CSV_HEADER[:-1], "plan"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_copy_bare (email text, first_name text, last_name text,"
                     " company text, title text, industry text, company_size integer,"
                     " country text, timezone text, source text, owner_email text,"
                     " crm_id text, plan text)")
        conn.execute("CREATE TABLE bench_copy_indexed (LIKE leads INCLUDING ALL)")
        conn.execute("ALTER TABLE bench_copy_indexed ADD COLUMN plan text,"
                     " ALTER lifecycle_stage SET DEFAULT 'lead',"
                     " ALTER attributes SET DEFAULT '{}',"
                     " ALTER created_at SET DEFAULT now(), ALTER updated_at SET DEFAULT now()")
    header_only = write_file(workdir / "leads-0.csv", 0)
    empty_runs = [run_import(env, header_only) for _ in range(3)]
    startup = min(run.seconds for run in empty_runs)
    startup_cpu = min(run.cpu_seconds for run in empty_runs)
    lines = [f"startup of the command (header-only file, best of 3): {startup:.2f} s, "
             f"{startup_cpu:.2f} s of CPU"]
    rates, peaks, ceilings = {}, [], {}
    for count in sizes:
        path = write_file(workdir / f"leads-{count}.csv", count)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE leads, lifecycle_changes CASCADE")
            conn.execute("CHECKPOINT")
        run = run_import(env, path)
        assert f"imported {count} rows" in run.summary, run.summary
        assert f"{count} leads created" in run.summary, run.summary
        rate = count / run.seconds
        steady = count / max(run.seconds - startup, 1e-9)
        python_us = (run.cpu_seconds - startup_cpu) / count * 1e6
        database_us = run.database_cpu_seconds / count * 1e6
        rates[count], ceilings[count] = rate, os.cpu_count() / (python_us + database_us) * 1e6
        peaks.append(run.largest_rss_kib / 1024)
        bare = count / copy_file(url, path, "bench_copy_bare", columns)
        indexed = count / copy_file(url, path, "bench_copy_indexed", columns)
        lines += [
            f"import-leads {count:,} rows ({path.stat().st_size / 2**20:,.0f} MiB), load average "
            f"{run.load_average:.1f} at start: {run.seconds:.1f} s, {rate:,.0f} rows/s "
            f"({steady:,.0f} after startup)",
            f"  peak RSS {run.largest_rss_kib / 1024:,.0f} MiB (largest process), "
            f"{run.tree_rss_kib / 1024:,.0f} MiB (all its processes, shared pages counted "
            "in each)",
            f"  CPU per row, startup aside: {python_us:,.0f} µs in the command's processes + "
            f"{database_us:,.0f} "
            f"µs in PostgreSQL: at most {os.cpu_count() / (python_us + database_us) * 1e6:,.0f} "
            f"rows/s on {os.cpu_count()} otherwise idle cores",
            f"  baseline COPY into a bare table: {bare:,.0f} rows/s "
            f"(import at {rate / bare:.3f}x of it)",
            f"  baseline COPY into a table shaped like leads, with its indexes: {indexed:,.0f} "
            f"rows/s (import at {rate / indexed:.3f}x of it)",
        ]
        if count == 100_000:
            again = run_import(env, path)
            lines.append(f"  the same file again (every row matches an unchanged lead): "
                         f"{again.seconds:.1f} s, {count / again.seconds:,.0f} rows/s; "
                         f"{again.summary.split(': ')[1]}")
        path.unlink()
    return [*lines, verdict(rates, ceilings, peaks)]


def verdict(rates: dict[int, float], ceilings: dict[int, float], peaks: list[float]) -> str:
    """Whether issue #2's import target is met, on the largest file of this run."""
    largest = max(rates)
    speed = rates[largest] >= TARGET_ROWS_PER_SECOND
    memory = max(peaks) < TARGET_PEAK_MIB
    met = "MET" if speed and memory and largest >= 1_000_000 else "NOT MET"
    why = "" if largest >= 1_000_000 else " (no 1,000,000-row file in this run: use the full run)"
    return (f"TARGET {met}{why}: import at {largest:,} rows {rates[largest]:,.0f} rows/s "
            f"(target {TARGET_ROWS_PER_SECOND:,}: {'met' if speed else 'missed'}; CPU per row "
            f"allows {ceilings[largest]:,.0f} on these otherwise idle cores), largest process "
            f"at most {max(peaks):,.0f} MiB (target under {TARGET_PEAK_MIB}: "
            f"{'met' if memory else 'missed'})")


def psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def machine() -> str:
    with psycopg.connect(psycopg_url(load_settings().database_url)) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    memory = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} CPUs, {memory:.1f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, PostgreSQL {version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows only")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
    if not server.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL server")
    os.environ["DATABASE_URL"] = server
    print(f"machine: {machine()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with fresh_database(server) as url, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "DATABASE_URL": url, "NURTURE_INSTANCE_PATH": str(workdir),
               "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789abcdef"}
        nurture(env, "db", "upgrade")
        for line in bench_api(env, workdir, args.clients, args.requests):
            print(line, flush=True)
        for line in bench_import(env, workdir, SIZES[:2] if args.quick else SIZES):
            print(line, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
