"""`nurture up`, `serve`, `worker` and `dispatcher`: the processes that run Nurture.

Each command validates the settings before anything starts (a malformed one is one line and
exit status 2) and checks that the services it needs answer (one line and exit status 1).
`up` runs the other three as its supervised children.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import click
from gunicorn.app.base import BaseApplication
from redis import Redis
from sqlalchemy import select

from nurture.accounts.services import create_token
from nurture.cli import SettingsProblem
from nurture.clock import utcnow
from nurture.config import Settings, SettingsError, load_settings, with_secret_key
from nurture.db import Database
from nurture.embedded_redis import EmbeddedRedis, die_with_parent
from nurture.migrate import upgrade_database
from nurture.models import ApiToken, Role, User
from nurture.scoring.lifecycle import ensure_default_model
from workers.connection import redis_connection
from workers.dispatcher import TICK_INTERVAL_S, Dispatcher, StopFlag
from workers.worker import run_worker

DEFAULT_HOST = "127.0.0.1"
"""`serve` listens on loopback unless told otherwise; `up` always does."""

DEFAULT_PORT = 8000
"""Port of `serve` and `up` when neither --port nor the PORT variable is given."""

WEB_WORKERS = 2
"""gunicorn worker processes of `serve`."""

WEB_THREADS = 4
"""Threads per gunicorn worker (gthread): requests mostly wait on the database."""

REQUEST_TIMEOUT_S = 30
"""gunicorn restarts a worker whose request has run this long."""

GRACEFUL_TIMEOUT_S = 3
"""On SIGTERM, gunicorn lets requests in flight finish for this long, then kills them."""

READY_TIMEOUT_S = 30.0
"""How long `up` waits for the web server to answer /healthz."""

CHILD_STOP_TIMEOUT_S = 3.5
"""How long `up` lets its children stop on SIGTERM before it kills them."""

POLL_INTERVAL_S = 0.1
"""How often `up` looks at its children and at the signals it received."""

UP_DEMO_LEADS = 1_000
"""Leads in the demo `up` builds on an empty database: fewer than `nurture seed-demo`'s
2,500, so a first start takes a minute or two rather than several (docs/BENCHMARKS.md)."""

DEMO_TOKEN_NAME = "demo"
"""Name of the API token `up` creates on an empty database."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""Log lines of the worker and the dispatcher (gunicorn keeps its own)."""

PORT = click.IntRange(1, 65535)
"""A TCP port number, as --port takes it."""


def _settings() -> Settings:
    try:
        return with_secret_key(load_settings())
    except SettingsError as exc:
        raise SettingsProblem(str(exc)) from None


def _port(option: int | None) -> int:
    """--port, else the PORT variable (as platforms and fresh-clone checks set it), else 8000."""
    if option is not None:
        return option
    value = os.environ.get("PORT", "").strip()
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise SettingsProblem(f"PORT: must be a port number from 1 to 65535, got {value!r}")
    return int(value)


def _one_line(exc: BaseException) -> str:
    """The first line of an error, without the driver's noise (SQLAlchemy wraps its errors)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")


def _redacted(url: str) -> str:
    return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", url)


def _redis(settings: Settings, command: str) -> Redis:
    if settings.redis_url is None:
        raise SettingsProblem(
            f"REDIS_URL: not set; `nurture {command}` needs Redis (e.g. redis://127.0.0.1:6379/0)"
        )
    connection = redis_connection(settings.redis_url)
    try:
        connection.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the same news
        raise click.ClickException(
            f"Redis at {_redacted(settings.redis_url)} does not answer: {_one_line(exc)}"
        ) from None
    return connection


def _database(settings: Settings) -> Database:
    database = Database.from_settings(settings)
    try:
        database.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the same news
        raise click.ClickException(
            f"the database at {_redacted(settings.database_url)} does not answer: {_one_line(exc)}"
        ) from None
    return database


def _freeze_imports() -> None:
    """Everything imported so far lives as long as the process: keep the garbage collector
    from walking it again, at every full collection and once more at exit, where it slowed
    stopping (of each process in turn: gunicorn worker, gunicorn master, `up`)."""
    gc.freeze()


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)


class WebServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn serving `nurture.create_app()`, built in each worker process (no preload)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from nurture import create_app

        return create_app()


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", type=PORT, help=f"Port to listen on. Default: $PORT, else {DEFAULT_PORT}.")
@click.option("--workers", type=click.IntRange(min=1), default=WEB_WORKERS, show_default=True,
              help="Worker processes.")
@click.option("--threads", type=click.IntRange(min=1), default=WEB_THREADS, show_default=True,
              help="Threads per worker process.")
def serve(host: str, port: int | None, workers: int, threads: int) -> None:
    """The web app alone, under gunicorn."""
    _settings()  # a bad setting is one line here, not a traceback in every gunicorn worker
    _freeze_imports()
    address = f"[{host}]" if ":" in host else host
    WebServer({
        "bind": f"{address}:{_port(port)}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": REQUEST_TIMEOUT_S,
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "nurture-serve",
        # gunicorn's control socket has one default path per user: two servers would clash.
        "control_socket_disable": True,
    }).run()


@click.command()
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (more than one: an RQ worker pool).")
def worker(processes: int) -> None:
    """RQ worker(s) for the project's queues; SIGTERM or SIGINT stops them."""
    connection = _redis(_settings(), "worker")
    _freeze_imports()
    _log_to_stderr()
    run_worker(connection, processes=processes)


@click.command()
@click.option("--interval", type=click.FloatRange(min=0.05), default=TICK_INTERVAL_S,
              show_default=True, help="Seconds between two ticks.")
def dispatcher(interval: float) -> None:
    """The periodic loop that enqueues due work; only one of several acts at a time."""
    settings = _settings()
    connection = _redis(settings, "dispatcher")
    database = _database(settings)
    _freeze_imports()
    _log_to_stderr()
    stop = StopFlag()
    signal.signal(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, stop.set)
    try:
        Dispatcher(connection, database, interval=interval).run(stop)
    finally:
        database.dispose()


@dataclass
class Child:
    """A process `up` started: the leader of a process group of its own."""

    name: str
    process: subprocess.Popen[bytes]


class Supervisor:
    """Starts `up`'s children, watches them, and stops them all (no orphans)."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_requested = False
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stop_requested = True  # a second signal (make forwards one) changes nothing

    def start(self, name: str, env: dict[str, str], *args: str) -> None:
        """Start `nurture ARGS…` with `env`, known to the operator as `name`."""
        process = subprocess.Popen(
            [sys.executable, "-m", "nurture", *args], env=env, stdin=subprocess.DEVNULL,
            # Its own group: a Ctrl-C meant for `up` reaches it only through `up`, in order;
            # die_with_parent: if `up` is killed outright, nothing is left behind.
            process_group=0, preexec_fn=die_with_parent,  # noqa: PLW1509 - one thread
        )
        self.children.append(Child(name, process))

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Poll `condition` until true (True), or timeout, a stop request or a death (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop_requested:
            if self.dead_child() is not None:
                return False
            if condition():
                return True
            time.sleep(POLL_INTERVAL_S)
        return False

    def stop(self) -> None:
        """SIGTERM every child, SIGKILL what is left of its group after the timeout."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
        for child in self.children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                click.echo(f"the {child.name} did not stop in time; killing it", err=True)
        for child in self.children:
            try:
                # also reaps what the child left (gunicorn or RQ processes it forked)
                os.killpg(child.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.process.wait()


@click.command()
@click.option("--port", type=PORT,
              help=f"Port of the web server. Default: $PORT, else {DEFAULT_PORT}.")
@click.option("--no-demo", is_flag=True,
              help="On an empty database, do not build the demo data (nurture seed-demo).")
@click.option("--demo-leads", type=click.IntRange(1, 100_000), default=None,
              help=f"Leads in the demo data built on an empty database. Default: "
                   f"{UP_DEMO_LEADS:,}.")
def up(port: int | None, no_demo: bool, demo_leads: int | None) -> NoReturn:
    """The whole system on one machine: web server, RQ worker and dispatcher. On an empty
    database, first builds six months of demo data and prints the demo sign-in."""
    settings = _settings()
    port = _port(port)
    if not _port_is_free(DEFAULT_HOST, port):
        raise click.ClickException(f"port {port} is in use; choose another with --port or PORT")
    _freeze_imports()
    supervisor = Supervisor()
    embedded: EmbeddedRedis | None = None
    try:
        redis_url = settings.redis_url
        if redis_url is None:
            embedded = EmbeddedRedis(settings.instance_path / "redis").start()
            redis_url = embedded.url
            click.echo(f"embedded Redis on 127.0.0.1:{embedded.port} (nothing kept on disk)")
        else:
            _redis(settings, "up").close()
        _migrate(settings)
        fresh = _is_fresh(settings.database_url)
        # before the worker and dispatcher start: the demo drives the engine with its own clock
        seeded = (_demo(settings, demo_leads, supervisor) if fresh and not no_demo
                  and not supervisor.stop_requested else None)
        env = {
            **os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": redis_url,
            "SECRET_KEY": settings.secret_key,
            "NURTURE_INSTANCE_PATH": str(settings.instance_path), "PYTHONUNBUFFERED": "1",
        }
        url = f"http://{DEFAULT_HOST}:{port}"
        if not supervisor.stop_requested:
            web = ("serve", "--host", DEFAULT_HOST, "--port", str(port))
            supervisor.start("web server", env, *web)
            supervisor.start("worker", env, "worker")
            supervisor.start("dispatcher", env, "dispatcher")
        if supervisor.wait_until(lambda: _answers(f"{url}/healthz"), READY_TIMEOUT_S):
            # only now: a token is shown once, so never before the server that accepts it
            _announce(url, _first_token(settings.database_url, fresh=fresh))
            if seeded is not None:
                click.echo(seeded)
            supervisor.wait_until(lambda: False, float("inf"))
        status = _outcome(supervisor)
    finally:
        if supervisor.children:
            click.echo("stopping…", err=True)
        supervisor.stop()
        if embedded is not None:
            embedded.stop()  # last: the worker and dispatcher use it until they exit
    if status == 0:
        click.echo("stopped", err=True)
    sys.exit(status)


def _outcome(supervisor: Supervisor) -> int:
    """0 when asked to stop; else 1, saying which child died or that none answered."""
    if supervisor.stop_requested:
        return 0
    dead = supervisor.dead_child()
    if dead is not None:
        click.echo(
            f"the {dead.name} exited unexpectedly (status {dead.process.returncode}); "
            "stopping the rest", err=True,
        )
    else:
        click.echo(f"the web server did not answer within {READY_TIMEOUT_S:.0f} s", err=True)
    return 1


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _migrate(settings: Settings) -> None:
    try:
        upgrade_database(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - the cause in one line, not a traceback
        raise click.ClickException(
            f"could not migrate the database at {_redacted(settings.database_url)}: "
            f"{_one_line(exc)}"
        ) from None


def _is_fresh(database_url: str) -> bool:
    """Whether the database has no user and no token yet: `up` then makes the first token
    (and, unless told not to, the demo data)."""
    database = Database(database_url)
    try:
        with database.session_scope() as session:
            return all(session.execute(select(model.id).limit(1)).first() is None
                       for model in (User, ApiToken))
    finally:
        database.dispose()


def _demo(settings: Settings, leads: int | None, supervisor: Supervisor) -> str | None:
    """Build the demo data (`nurture seed-demo`); the text that shows its sign-in, or None
    if the database holds other data (sequences, collateral or leads made without users) or
    Ctrl-C stopped it (what was built stays: start again with an empty database)."""
    from nurture.cli.demo import describe, run_demo
    from nurture.demo.seeding import DEFAULT_SEED

    leads = leads or UP_DEMO_LEADS
    click.echo(f"empty database: building six months of demo data ({leads:,} leads; "
               "`nurture up --no-demo` skips this)…", err=True)
    database = Database(settings.database_url)
    try:
        seeded = run_demo(database, settings, seed=DEFAULT_SEED, leads=leads,
                          until=utcnow().date(), stop=lambda: supervisor.stop_requested)
    except click.ClickException as exc:
        click.echo(f"no demo data: {exc.message}", err=True)
        return None
    finally:
        database.dispose()
    return describe(seeded, leads=leads, seed=DEFAULT_SEED)


def _first_token(database_url: str, *, fresh: bool) -> str | None:
    """On a fresh database (`_is_fresh` before anything was made), create the first API
    token and return it; with no scoring model yet, the default one is installed, active
    (docs/SCORING.md)."""
    database = Database(database_url)
    try:
        with database.session_scope() as session:
            ensure_default_model(session, now=utcnow())
            if not fresh:
                return None
            _, token = create_token(session, DEMO_TOKEN_NAME, Role.ADMIN, now=utcnow())
            return token
    finally:
        database.dispose()


def _announce(url: str, token: str | None) -> None:
    click.echo(f"\nNurture is up at {url} (web server, worker, dispatcher; Ctrl-C stops them)")
    click.echo(f"Sign in to the admin at {url}/auth/sign-in")
    if token is None:
        click.echo("API tokens: nurture tokens create --name NAME\n")
        return
    lead = {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
            "company": "Analytical Engines", "source": "nurture-up"}
    click.echo(
        f'\nAPI token "{DEMO_TOKEN_NAME}" (role admin), shown only this once:\n  {token}\n'
        f"Create a lead with it:\n"
        f"  curl -sS {url}/api/v1/leads \\\n"
        f"    -H 'Authorization: Bearer {token}' \\\n"
        f"    -H 'Content-Type: application/json' \\\n"
        f"    -d '{json.dumps(lead)}'\n"
    )


COMMANDS = [up, serve, worker, dispatcher]
