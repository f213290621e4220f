"""The drip engine end to end, on real processes: `nurture serve`, `worker`, `dispatcher`.

A real SMTP server (the `smtp_server` fixture) receives what the worker sends; the test talks
to the web server over HTTP, as a CRM, a marketer and a recipient would. Every wait is on a
condition with a deadline, and every process started is stopped when the test ends.

Two shortcuts, each standing for time passing, not for a change of behaviour:
- a claim's lease (campaigns.dispatch.CLAIM_LEASE, 10 minutes, not a setting) is what frees
  the rows of a batch whose worker died or whose job Redis lost; the fault tests end the
  leases in the database instead of waiting for them;
- a refused email is retried after a minute (campaigns.engine.RETRY_BACKOFF); the test moves
  the retry to now instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import pytest
from sqlalchemy import func, select, update

from campaigns.intake import reject_lead
from campaigns.sequences import activate_sequence, import_sequence
from nurture.clock import utcnow
from nurture.config import DEFAULT_SMTP_CONNECTIONS
from nurture.models import (
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    RejectionReason,
    Role,
)
from tests.test_processes import Nurture, clean_env, free_port, wait_until
from workers.connection import redis_connection
from workers.dispatcher import SEND_BATCH
from workers.queues import QueueName, queue

START_TIMEOUT_S = 60.0
"""Longest a process may take to come up (a loaded CI machine imports slowly)."""

FLOW_TIMEOUT_S = 30.0
"""Longest the test waits for something the engine does within seconds."""

BATCH_TIMEOUT_S = 180.0
"""Longest a fault test waits for its whole batch (1,200 emails) to be settled."""

FAULT_LEADS = SEND_BATCH + 100
"""Leads rejected at once in the fault tests: two sending jobs, one running, one waiting."""

FAULT_AFTER = 20
"""The fault strikes once this many emails have arrived (inside the job)."""

WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

COLLATERAL = {
    "key": "planning-guide",
    "title": "The 2027 planning guide",
    "url": "https://cdn.example.com/planning-guide.pdf",
    "funnel_stage": "consideration",
}

BAD_TIMING = {
    "key": "e2e-bad-timing",
    "name": "Bad timing, end to end",
    "entry": {"reasons": ["bad_timing"]},
    "send_window": {"days": WEEK, "start": "00:00", "end": "23:59"},  # timezone: see below
    "stages": [
        {"key": "re-engage", "name": "Re-engage", "steps": [
            {"type": "email", "id": "hello", "template": "check-in",
             "collateral": ["planning-guide"]},
            {"type": "wait", "id": "pause", "duration": "PT2S"},
            {"type": "branch", "id": "clicked", "then": "proof",
             "condition": {"engaged": "click", "step": "hello", "within": "PT1M"}},
            {"type": "email", "id": "nudge", "template": "champion-kit"},
        ]},
        {"key": "prove", "name": "Prove", "steps": [
            {"type": "email", "id": "proof", "template": "case-study"},
            {"type": "wait", "id": "linger", "duration": "PT4S"},
            {"type": "email", "id": "last", "template": "decision-guide"},
            {"type": "exit", "id": "done"},
        ]},
    ],
}
"""Two stages; a click on the first email's collateral takes the lead straight to proof."""

TWO_EMAILS = {
    "key": "e2e-two-emails",
    "name": "Two emails",
    "entry": {"reasons": ["bad_timing"]},
    "send_window": {"days": WEEK, "start": "00:00", "end": "23:59"},
    "stages": [
        {"key": "only", "name": "Only", "steps": [
            {"type": "email", "id": "first", "template": "check-in"},
            {"type": "wait", "id": "pause", "duration": "PT2S"},
            {"type": "email", "id": "second", "template": "case-study"},
            {"type": "exit", "id": "done"},
        ]},
    ],
}
"""The fault tests' sequence: two emails separated by a short wait."""


def zone_inside_the_day() -> str:
    """A time zone in which now is far from 23:59, so an all-day window is open all test long."""
    return "UTC" if utcnow().hour < 23 else "Etc/GMT+12"


# --- the processes ---------------------------------------------------------------------------


class System:
    """`nurture serve`, `worker` and `dispatcher` on the test's services and SMTP server."""

    def __init__(self, service_env: dict[str, str], smtp_url: str, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(**service_env, SMTP_URL=smtp_url, NURTURE_BASE_URL=self.url,
                             NURTURE_FREQUENCY_CAP="100/P1D")
        self.cwd = cwd
        self.started: list[Nurture] = []

    def _start(self, *args: str) -> Nurture:
        process = Nurture(args, self.env, self.cwd)
        self.started.append(process)
        return process

    def start(self, *roles: str) -> dict[str, Nurture]:
        """Start `serve`, `worker` and/or `dispatcher` together; return once each is ready."""
        commands = {
            "serve": ("serve", "--port", str(self.port), "--workers", "1"),
            "worker": ("worker",),
            "dispatcher": ("dispatcher", "--interval", "0.5"),
        }
        processes = {role: self._start(*commands[role]) for role in roles}
        if "serve" in processes:
            wait_until(lambda: answers(f"{self.url}/healthz"), START_TIMEOUT_S, "serve to answer")
        if "worker" in processes:
            processes["worker"].wait_for(r"Listening on notify, scoring, engagement, sending")
        if "dispatcher" in processes:
            processes["dispatcher"].wait_for(r"dispatcher \S+ acting")
        return processes

    def stop(self) -> None:
        """SIGTERM what still runs; SIGKILL it and what it forked if it does not stop."""
        for process in self.started:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in self.started:
            kill_with_children(process, timeout=5)


def kill_with_children(process: Nurture, *, timeout: float = 0) -> None:
    """Wait up to `timeout` for the process to exit, then SIGKILL it and its descendants."""
    try:
        leftovers = process.descendants()
    except psutil.NoSuchProcess:
        leftovers = []
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.popen.wait(timeout)
    for child in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.popen.kill()
    process.popen.wait()
    wait_until(lambda: all(_dead(child) for child in leftovers), 10, "the children to die")


def _dead(process: psutil.Process) -> bool:
    """Gone, or a zombie (it does nothing more; its new parent reaps it in its own time)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture()
def system(service_env, smtp_server, app, tmp_path) -> Iterator[System]:
    """The processes, started by the test as it needs them, always stopped at its end."""
    running = System(service_env, smtp_server[1], tmp_path)
    try:
        yield running
    finally:
        running.stop()


# --- HTTP as the outside world speaks it -----------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # a 3xx is an answer to look at, not to follow


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, *, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


def answers(url: str) -> bool:
    try:
        return http("GET", url).status == 200
    except OSError:
        return False


@dataclass(frozen=True)
class Client:
    """A bearer-token client of the real server's API."""

    base: str
    token: str

    def get(self, path: str) -> Answer:
        return http("GET", self.base + path, headers={"Authorization": f"Bearer {self.token}"})

    def post(self, path: str, document: Any = None) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}"}
        body = None
        if document is not None:
            body = json.dumps(document).encode()
            headers["Content-Type"] = "application/json"
        return http("POST", self.base + path, body=body, headers=headers)


# --- the database, as the test checks it -----------------------------------------------------


def reject_many(db, count: int, now: datetime) -> list[int]:
    """`count` leads rejected for bad timing in one transaction; their enrollment ids."""
    ids = []
    with db.session_scope() as session:
        for number in range(count):
            intake = reject_lead(session, f"lead{number:04d}@example.com", {"first_name": "Lee"},
                                 rep_email="rep@example.com", reason=RejectionReason.BAD_TIMING,
                                 now=now)
            assert intake.enrollment is not None, intake.routing_reason
            ids.append(intake.enrollment["id"])
    return ids


def import_active(db, document: dict[str, Any]) -> None:
    document = copy.deepcopy(document)
    document["send_window"]["timezone"] = zone_inside_the_day()
    with db.session_scope() as session:
        imported = import_sequence(session, document, now=utcnow())
        activate_sequence(session, imported.sequence.id, now=utcnow(), today=utcnow().date())


def messages(db) -> list[Message]:
    with db.session_scope() as session:
        return list(session.execute(select(Message).order_by(Message.id)).scalars())


def unfinished(db) -> int:
    with db.session_scope() as session:
        return session.execute(
            select(func.count()).select_from(Enrollment)
            .where(Enrollment.status != EnrollmentStatus.COMPLETED)
        ).scalar_one()


def end_claims(db) -> int:
    """Let every claim's lease pass now (see the module's docstring); how many were held."""
    now = utcnow()
    with db.session_scope() as session:
        return session.execute(
            update(Enrollment).where(Enrollment.claimed_until > now).values(claimed_until=now)
        ).rowcount


def assert_each_step_sent_once(db, sink, total: int) -> list[Message]:
    """Every (lead, step) received at most once; received + unknown-not-received == total.

    Returns the messages whose delivery is unknown (reported, never sent again).
    """
    rows = messages(db)
    assert len(rows) == total
    received = Counter(str(m["X-Nurture-Message-Id"]) for m in sink.messages)
    assert max(received.values()) == 1, [mid for mid, n in received.items() if n > 1]
    by_id = {row.message_id: row for row in rows}
    assert set(received) <= set(by_id)  # nothing arrived that the database does not know
    per_step = Counter((by_id[mid].lead_id, by_id[mid].step_id) for mid in received)
    assert max(per_step.values()) == 1
    statuses = Counter(row.status for row in rows)
    assert set(statuses) <= {MessageStatus.SENT, MessageStatus.UNKNOWN}, statuses
    assert all(row.message_id in received for row in rows if row.status == MessageStatus.SENT)
    unknown = [row for row in rows if row.status == MessageStatus.UNKNOWN]
    not_received = [row for row in unknown if row.message_id not in received]
    assert len(received) + len(not_received) == total
    return unknown


# --- the tests -------------------------------------------------------------------------------


def test_a_rejection_is_nurtured_by_email_until_a_one_click_unsubscribe(
    system, smtp_server, make_token
):
    sink, _ = smtp_server
    system.start("serve", "worker", "dispatcher")
    marketer = Client(system.url, make_token(Role.MARKETER, "marketer"))
    approver = Client(system.url, make_token(Role.SALES_APPROVER, "approver"))
    crm = Client(system.url, make_token(Role.REP, "crm"))

    # sales approves the collateral the first email features
    draft = marketer.post("/api/v1/collateral", COLLATERAL)
    assert draft.status == 201, draft.json
    assert marketer.post(f"/api/v1/collateral/versions/{draft.json['id']}/submit").status == 200
    approved = approver.post(f"/api/v1/collateral/versions/{draft.json['id']}/approve")
    assert (approved.status, approved.json["status"]) == (200, "approved")

    # one sequence whose window is open now, one whose window is closed until the day after next
    zone = zone_inside_the_day()
    open_now = copy.deepcopy(BAD_TIMING)
    open_now["send_window"]["timezone"] = zone
    opens_on = (utcnow() + timedelta(days=2)).date()
    closed_now = copy.deepcopy(BAD_TIMING) | {"key": "e2e-no-budget", "name": "No budget"}
    closed_now["entry"] = {"reasons": ["no_budget"]}
    closed_now["send_window"] = {"days": [WEEK[opens_on.weekday()]], "start": "09:00",
                                 "end": "10:00", "timezone": "UTC"}
    for document in (open_now, closed_now):
        imported = marketer.post("/api/v1/sequences", document)
        assert imported.status == 201, imported.json
        activated = marketer.post(f"/api/v1/sequences/{imported.json['id']}/activate")
        assert activated.status == 200, activated.json

    def reject(email: str, reason: str) -> int:
        answer = crm.post("/api/v1/rejections", {
            "lead": {"email": email, "first_name": "Ada", "company": "Analytical Engines"},
            "rep_email": "rep@example.com", "reason": reason,
        })
        assert answer.status == 201, answer.json
        assert answer.json["enrollment"] is not None, answer.json["routing"]
        return answer.json["lead"]["id"]

    ada = reject("ada@example.com", "bad_timing")
    grace = reject("grace@example.com", "no_budget")

    def received(address: str) -> list[Any]:
        return [m for m in list(sink.messages) if address in str(m["To"])]

    hello = wait_until(lambda: received("ada@example.com"), FLOW_TIMEOUT_S, "the first email")[0]
    assert hello["Subject"] == "Still on your radar, Ada?"

    # the recipient clicks the collateral link: the real server redirects to the collateral
    html = hello.get_body(("html",)).get_content()
    click_url = html.split(f'href="{system.url}/t/c/')[1].split('"')[0]
    clicked = http("GET", f"{system.url}/t/c/{click_url}")
    assert clicked.status == 302
    assert clicked.headers["Location"] == COLLATERAL["url"]

    # the click takes the branch to the second stage (not the nudge)
    two = wait_until(lambda: len(received("ada@example.com")) >= 2 and received("ada@example.com"),
                     FLOW_TIMEOUT_S, "the second stage's email")
    proof = two[1]
    assert proof["Subject"] == "How a team like Analytical Engines did it"

    # RFC 8058 one-click unsubscribe from the List-Unsubscribe header
    assert proof["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = str(proof["List-Unsubscribe"]).strip("<>")
    assert unsubscribe_url.startswith(f"{system.url}/u/")
    unsubscribed = http("POST", unsubscribe_url, body=b"List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert unsubscribed.status == 200

    def enrollment_of(lead_id: int) -> dict[str, Any]:
        answer = marketer.get(f"/api/v1/leads/{lead_id}")
        assert answer.status == 200, answer.json
        (enrollment,) = answer.json["enrollments"]
        return enrollment

    # the wait after the second email ends, and the sequence stops instead of sending `last`
    exited = wait_until(lambda: (e := enrollment_of(ada))["status"] == "exited" and e,
                        FLOW_TIMEOUT_S, "the enrollment to exit")
    assert exited["exit_reason"] == "unsubscribed"
    assert exited["step_id"] == "linger"  # stopped when the wait before `last` ended
    assert [m["Subject"] for m in received("ada@example.com")] == [
        hello["Subject"], proof["Subject"]]

    # in order, the wait between them kept, both inside the (all-day) window
    sent_at = [parsedate_to_datetime(m["Date"]) for m in (hello, proof)]
    assert sent_at[1] - sent_at[0] >= timedelta(seconds=2)
    for moment in sent_at:
        local = moment.astimezone(ZoneInfo(zone))
        assert WEEK[local.weekday()] in open_now["send_window"]["days"]
        assert time(0, 0) <= local.time() <= time(23, 59, 59)

    # the closed window: the engine has looked at Grace's enrollment and sent nothing
    opens_at = datetime.combine(opens_on, time(9, 0), tzinfo=UTC)
    expected = opens_at.isoformat().replace("+00:00", "Z")
    waiting = wait_until(lambda: (e := enrollment_of(grace))["next_due_at"] == expected and e,
                         FLOW_TIMEOUT_S, "the closed window's enrollment to be put off")
    assert (waiting["status"], waiting["step_id"]) == ("active", "hello")
    assert received("grace@example.com") == []


@pytest.fixture()
def two_emails(db, system) -> Callable[[], list[int]]:
    """The fault tests' sequence, active; calling the fixture rejects the batch of leads."""
    import_active(db, TWO_EMAILS)
    return lambda: reject_many(db, FAULT_LEADS, utcnow())


def test_a_worker_killed_mid_batch_sends_nothing_twice_and_loses_nothing(
    db, system, smtp_server, two_emails
):
    sink, _ = smtp_server
    worker = system.start("worker", "dispatcher")["worker"]
    two_emails()
    wait_until(lambda: len(sink.messages) >= FAULT_AFTER, FLOW_TIMEOUT_S, "the first emails")

    kill_with_children(worker)  # SIGKILL the worker and its work horse, mid-job

    # the dead job's rows stay claimed until the lease passes (10 minutes): let it pass now
    assert end_claims(db) > 0
    system.start("worker")
    wait_until(lambda: unfinished(db) == 0, BATCH_TIMEOUT_S, "every enrollment to complete")

    unknown = assert_each_step_sent_once(db, sink, 2 * FAULT_LEADS)
    # at most the emails in flight when the worker died: one on each of its SMTP connections
    assert len(unknown) <= DEFAULT_SMTP_CONNECTIONS
    for row in unknown:
        assert row.step_id == "first"
        assert row.last_error == "interrupted while sending"


def test_redis_flushed_mid_run_sends_nothing_twice_and_loses_nothing(
    db, system, smtp_server, two_emails, service_env
):
    sink, _ = smtp_server
    system.start("worker", "dispatcher")
    two_emails()
    wait_until(lambda: len(sink.messages) >= FAULT_AFTER, FLOW_TIMEOUT_S, "the first emails")

    redis = redis_connection(service_env["REDIS_URL"])
    assert queue(redis, QueueName.SENDING).count >= 1  # a job waits: it will be lost
    # FLUSHALL on a Redis this run owns; on a shared one, only the test's database
    (redis.flushall if "REDIS_URL" not in os.environ else redis.flushdb)()

    # the lost jobs' rows stay claimed until the lease passes (10 minutes): let it pass now;
    # one worker runs one job at a time, so the running job ends before its rows run again
    assert end_claims(db) > 0
    wait_until(lambda: unfinished(db) == 0, BATCH_TIMEOUT_S, "every enrollment to complete")

    unknown = assert_each_step_sent_once(db, sink, 2 * FAULT_LEADS)
    assert unknown == []  # nothing crashed: every email's fate is known


def test_a_refusing_smtp_server_is_retried_later_and_the_email_sent_once(
    db, system, smtp_server
):
    sink, _ = smtp_server
    import_active(db, TWO_EMAILS)
    system.start("worker", "dispatcher")
    sink.refuse = "451 4.3.0 Try again later"
    (enrollment_id,) = reject_many(db, 1, utcnow())

    def refused() -> Message | None:
        rows = messages(db)
        return rows[0] if rows and rows[0].status == MessageStatus.FAILED else None

    message = wait_until(refused, FLOW_TIMEOUT_S, "the refusal to be recorded")
    assert message.attempts == 1
    assert "451" in (message.last_error or "")
    with db.session_scope() as session:
        retry_at = session.get(Enrollment, enrollment_id).next_due_at
    assert retry_at > utcnow() + timedelta(seconds=30)  # backoff: a minute after the refusal
    assert sink.messages == []

    sink.refuse = None
    with db.session_scope() as session:  # the minute has passed
        session.execute(update(Enrollment).where(Enrollment.id == enrollment_id)
                        .values(next_due_at=utcnow()))

    wait_until(lambda: unfinished(db) == 0, FLOW_TIMEOUT_S, "the sequence to complete")
    first, second = messages(db)
    assert (first.step_id, first.status, first.attempts) == ("first", MessageStatus.SENT, 2)
    assert second.status == MessageStatus.SENT
    assert Counter(str(m["X-Nurture-Message-Id"]) for m in sink.messages) == {
        first.message_id: 1, second.message_id: 1}
