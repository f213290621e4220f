"""`nurture up`, `serve`, `worker` and `dispatcher` as real processes on real ports.

Every wait is on a condition with a deadline; a test that fails shows the process's output.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from rq.job import JobStatus
from sqlalchemy import func, select

from nurture.accounts.services import check_password
from nurture.config import ENV_NAMES
from nurture.models import Lead, Sequence
from workers.connection import redis_connection
from workers.dispatcher import HEARTBEAT_KEY, LEASE_KEY
from workers.queues import QueueName, enqueue, job_id, queue

START_TIMEOUT_S = 60.0
"""Longest a command may take to come up (a loaded CI machine imports slowly)."""

STOP_TIMEOUT_S = 5.0
"""Longest a command may take to stop on SIGTERM/SIGINT (fresh-clone-check allows 5 s)."""

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Poll `condition` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Nurture setting (or PORT), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in (*ENV_NAMES, "PORT")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


class Nurture:
    """`python -m nurture ARGS` in a process of its own; its output is collected as it comes."""

    def __init__(self, args: tuple[str, ...], env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "nurture", *args], env=env, cwd=cwd, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        streams = ((self.popen.stdout, self.stdout), (self.popen.stderr, self.stderr))
        self._readers = [
            threading.Thread(target=self._read, args=pair, daemon=True) for pair in streams
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.stdout + self.stderr)

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match[str]:
        """The first output line matching `pattern`, waiting for it to be printed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.stdout + self.stderr:
                    if match := regex.search(line):
                        return match
                finished = not any(r.is_alive() for r in self._readers)
                remaining = deadline - time.monotonic()
                if finished or remaining <= 0:
                    state = "exited" if finished else f"still running after {timeout:.0f} s"
                    pytest.fail(f"nurture {' '.join(self.args)} {state} without printing "
                                f"{pattern!r}; its output:\n{self.output}")
                self._changed.wait(min(remaining, 0.5))

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.popen.pid).children(recursive=True)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> float:
        """Send `signum`; return how long the process took to exit (fail if it did not)."""
        started = time.monotonic()
        self.popen.send_signal(signum)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"nurture {' '.join(self.args)} still running {timeout:.0f} s after "
                        f"{signal.Signals(signum).name}; its output:\n{self.output}")
        for reader in self._readers:
            reader.join(timeout)
        return time.monotonic() - started


@pytest.fixture()
def nurture(tmp_path: Path) -> Iterator[Callable[..., Nurture]]:
    """Start `nurture` commands; whatever a failed test leaves running is killed."""
    started: list[Nurture] = []

    def start(*args: str, env: dict[str, str]) -> Nurture:
        process = Nurture(args, env, tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.popen.poll() is None:
            leftovers = process.descendants()
            process.popen.kill()
            for child in leftovers:
                child.kill()
            process.popen.wait()


def assert_all_gone(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=STOP_TIMEOUT_S)
    assert alive == [], f"left running: {[(p.pid, p.cmdline()) for p in alive]}"


def by_role(processes: list[psutil.Process]) -> dict[str, list[psutil.Process]]:
    """`up`'s descendants by what they are: serve, worker, dispatcher, redis-server."""
    roles: dict[str, list[psutil.Process]] = {}
    for process in processes:
        cmdline = process.cmdline()
        role = next((r for r in ("serve", "worker", "dispatcher") if r in cmdline), None)
        if role is None and "redis-server" in " ".join(cmdline):
            role = "redis-server"
        roles.setdefault(role or "other", []).append(process)
    return roles


def replay_printed_curl(stdout: list[str]) -> tuple[int, Any]:
    """Run the curl example `up` printed, exactly as printed, with urllib instead of curl."""
    start = next(i for i, line in enumerate(stdout) if line.strip().startswith("curl "))
    end = next(i for i in range(start, len(stdout)) if not stdout[i].rstrip().endswith("\\"))
    words = shlex.split(" ".join(line.rstrip().rstrip("\\") for line in stdout[start:end + 1]))
    assert words[:2] == ["curl", "-sS"]
    url, options = words[2], words[3:]
    headers = dict(v.split(": ", 1) for o, v in itertools.pairwise(options) if o == "-H")
    body = options[options.index("-d") + 1].encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_up_runs_everything_on_sqlite_and_embedded_redis_and_stops_on_sigterm(nurture, tmp_path):
    port = free_port()
    instance = tmp_path / "instance"
    up = nurture("up", "--no-demo",
                 env=clean_env(PORT=str(port), NURTURE_INSTANCE_PATH=str(instance)))
    url = up.wait_for(r"Nurture is up at (http://127\.0\.0\.1:\d+)")[1]

    assert url == f"http://127.0.0.1:{port}"  # PORT is the default port
    assert get(f"{url}/healthz") == (200, {"status": "ok"})
    status, ready = get(f"{url}/readyz")
    assert (status, ready["checks"]) == (200, {"database": "ok", "redis": "ok"})
    assert (instance / "nurture.db").is_file()
    status, created = replay_printed_curl(up.stdout)
    assert status == 201, created
    assert created["email"] == "ada@example.com"
    assert created["score"]["model_version"] == 1  # a fresh installation scores by the default
    children = up.descendants()
    roles = by_role(children)
    assert set(roles) == {"serve", "worker", "dispatcher", "redis-server"}, roles

    assert up.stop(signal.SIGTERM) < STOP_TIMEOUT_S
    assert up.popen.returncode == 0, up.output
    assert_all_gone(children)


def test_up_with_configured_services_stops_on_sigint(nurture, service_env, app, count):
    port = free_port()
    up = nurture("up", "--port", str(port), "--no-demo", env=clean_env(**service_env))
    url = up.wait_for(r"Nurture is up at (\S+)")[1]
    token = up.wait_for(r"Bearer (nrt_[\w-]+)")[1]

    request = urllib.request.Request(
        f"{url}/api/v1/leads", data=b'{"email": "grace@example.com"}', method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    assert count(Lead) == 1  # in the configured database, not one of its own
    children = up.descendants()
    assert "redis-server" not in by_role(children)  # REDIS_URL is set: nothing embedded

    assert up.stop(signal.SIGINT) < STOP_TIMEOUT_S
    assert up.popen.returncode == 0, up.output
    assert_all_gone(children)


def test_up_stops_the_rest_and_fails_when_a_child_dies(nurture, service_env, app):
    up = nurture("up", "--port", str(free_port()), "--no-demo", env=clean_env(**service_env))
    up.wait_for(r"Nurture is up at")
    children = up.descendants()

    by_role(children)["dispatcher"][0].kill()

    up.wait_for(r"the dispatcher exited unexpectedly", timeout=STOP_TIMEOUT_S)
    assert up.popen.wait(STOP_TIMEOUT_S) == 1
    assert_all_gone(children)


def test_up_builds_the_demo_on_an_empty_database_and_prints_its_sign_in(nurture, service_env,
                                                                       db, count):
    up = nurture("up", "--port", str(free_port()), "--demo-leads", "25",
                 env=clean_env(**service_env))
    up.wait_for(r"Nurture is up at", timeout=START_TIMEOUT_S * 3)
    up.wait_for(r"Bearer (nrt_[\w-]+)")  # the first API token as before
    up.wait_for(r"demo sign-in")
    marketer = up.wait_for(r"marketer\s+(\S+@demo\.example\.com)\s+(\S+)")
    reps = [line for line in up.stdout if re.match(r"\s+rep\s+\S+@demo", line)]

    assert count(Lead) == 25
    with db.session_scope() as session:
        assert check_password(session, marketer[1], marketer[2]) is not None
        assert session.execute(select(func.count()).select_from(Sequence)
                               .where(Sequence.status == "active")).scalar_one() >= 4
    assert len(reps) == 6
    assert up.stop(signal.SIGTERM) < STOP_TIMEOUT_S
    assert up.popen.returncode == 0, up.output


def test_up_refuses_a_port_in_use(nurture, service_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = nurture("up", "--port", str(port), env=clean_env(**service_env))
        assert up.popen.wait(START_TIMEOUT_S) == 1
    up.wait_for(rf"port {port} is in use")


def test_serve_answers_and_stops_on_sigterm(nurture, service_env, app):
    port = free_port()
    serve = nurture("serve", "--port", str(port), "--workers", "2", "--threads", "2",
                    env=clean_env(**service_env))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(f"{url}/healthz"), START_TIMEOUT_S, "serve to answer")

    assert get(f"{url}/readyz")[0] == 200
    wait_until(lambda: any("GET /readyz" in line for line in serve.stdout), 5, "access log")
    workers = wait_until(lambda: len(serve.descendants()) == 2 and serve.descendants(), 10,
                         "two gunicorn workers")

    assert serve.stop(signal.SIGTERM) < STOP_TIMEOUT_S
    assert serve.popen.returncode == 0, serve.output
    assert_all_gone(workers)


@pytest.mark.parametrize(("processes", "signum"), [(1, signal.SIGTERM), (2, signal.SIGINT)])
def test_worker_runs_jobs_and_stops_on_a_signal(nurture, service_env, app, processes, signum):
    connection = redis_connection(service_env["REDIS_URL"])
    worker = nurture("worker", "--processes", str(processes), env=clean_env(**service_env))
    worker.wait_for(r"Listening on notify, scoring, engagement, sending, intake, default")

    job, created = enqueue(connection, "ping", f"w{processes}")
    assert created
    wait_until(lambda: job.get_status() == JobStatus.FINISHED, 30, "the ping job to run")
    assert job.return_value() == f"pong w{processes}"
    forked = worker.descendants()

    assert worker.stop(signum) < STOP_TIMEOUT_S
    assert worker.popen.returncode == 0, worker.output
    assert_all_gone(forked)


def test_enqueue_gives_one_job_per_id_until_it_has_run(app):
    connection = app.extensions["nurture.redis"]

    first, created = enqueue(connection, "ping", 42)
    again, created_again = enqueue(connection, "ping", 42)

    assert (first.id, created) == (job_id("ping", 42), True) == ("ping-42", True)
    assert (again.id, created_again) == (first.id, False)
    assert queue(connection, QueueName.DEFAULT).count == 1
    assert first.timeout == 10 and first.result_ttl == 600  # from the table, not the caller
    first.set_status(JobStatus.FINISHED)
    _, created_after_run = enqueue(connection, "ping", 42)  # the database says it is due again
    assert created_after_run
    with pytest.raises(ValueError):
        job_id("ping", "not an id")


def test_only_one_dispatcher_acts_and_another_takes_over(nurture, service_env, app):
    redis = app.extensions["nurture.redis"]
    redis.delete(LEASE_KEY, HEARTBEAT_KEY)
    env = clean_env(**service_env)

    first = nurture("dispatcher", "--interval", "0.2", env=env)
    leader = first.wait_for(r"dispatcher (\S+) acting")[1]
    second = nurture("dispatcher", "--interval", "0.2", env=env)
    waiting = second.wait_for(r"dispatcher (\S+) waiting: (\S+) holds the lease")
    follower = waiting[1]
    assert waiting[2] == leader == redis.get(LEASE_KEY).decode()

    # several ticks of both: every heartbeat is the leader's
    seen: set[tuple[bytes, bytes]] = set()

    def heartbeats() -> bool:
        beat = redis.hgetall(HEARTBEAT_KEY)
        seen.add((beat[b"at"], beat[b"by"]))
        return len(seen) >= 5

    wait_until(heartbeats, 10, "five heartbeats")
    assert {by.decode() for _, by in seen} == {leader}
    assert not any("acting" in line for line in second.stderr)

    assert first.stop(signal.SIGTERM) < 1.0
    assert first.popen.returncode == 0, first.output
    second.wait_for(rf"dispatcher {re.escape(follower)} acting", timeout=5)
    wait_until(lambda: redis.hget(HEARTBEAT_KEY, "by") == follower.encode(), 5,
               "the new leader's heartbeat")
    assert second.stop(signal.SIGINT) < 1.0
    assert second.popen.returncode == 0, second.output
    assert redis.get(LEASE_KEY) is None  # released on stop, not left to expire


def run_to_the_end(
    command: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`nurture COMMAND` run until it exits by itself."""
    return subprocess.run(
        [sys.executable, "-m", "nurture", command], env=env, cwd=cwd, capture_output=True,
        text=True, timeout=START_TIMEOUT_S, check=False,
    )


@pytest.mark.parametrize("command", ["up", "serve", "worker", "dispatcher"])
def test_a_malformed_setting_stops_each_command_with_one_line(command, service_env, tmp_path):
    env = clean_env(**{**service_env, "DATABASE_URL": "mysql://x"})
    result = run_to_the_end(command, env, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "DATABASE_URL" in result.stderr


@pytest.mark.parametrize(
    ("command", "setting", "status", "says"),
    [
        ("worker", {"REDIS_URL": ""}, 2, "REDIS_URL: not set; `nurture worker` needs Redis"),
        ("dispatcher", {"REDIS_URL": ""}, 2, "REDIS_URL: not set; `nurture dispatcher`"),
        ("worker", {"REDIS_URL": "redis://127.0.0.1:1/0"}, 1, "does not answer"),
        ("dispatcher", {"REDIS_URL": "redis://127.0.0.1:1/0"}, 1, "Redis at redis://127.0.0.1:1/0"),
        ("dispatcher", {"DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x"}, 1,
         "the database at postgresql+psycopg://u:***@127.0.0.1:1/x does not answer"),
        ("up", {"PORT": "eighty"}, 2, "PORT: must be a port number"),
    ],
)
def test_a_missing_or_silent_service_is_one_clear_line(
    command, setting, status, says, service_env, tmp_path
):
    env = clean_env(**{**service_env, **setting})
    result = run_to_the_end(command, env, tmp_path)
    assert result.returncode == status, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr

